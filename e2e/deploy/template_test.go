// Package deploy_test checks what `sam deploy` gets: template.yaml and samconfig.toml, read as a reviewer would: each
// property the deployment promises (runtime, routes, schedule, failure handling, least privilege,
// configuration, outputs) is asserted on its own, with short-form tags (!Ref, !Sub, !If, !GetAtt) kept.
package deploy_test

import (
	"bufio"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/queue"
	"github.com/port-azure-relay/relay/shared/secret"

	"gopkg.in/yaml.v3"

	"github.com/port-azure-relay/relay/shared/config"
)

const (
	root          = "../.." // the repository, where the design puts template.yaml and samconfig.toml
	templatePath  = root + "/template.yaml"
	samconfigPath = root + "/samconfig.toml"
)

// loadTemplate parses template.yaml into a node tree, so CloudFormation's tags survive.
func loadTemplate(t *testing.T) *yaml.Node {
	t.Helper()
	raw, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatalf("read %s: %v", templatePath, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse %s: %v", templatePath, err)
	}
	return &doc
}

// get follows mapping keys from n; nil when any step is missing.
func get(n *yaml.Node, path ...string) *yaml.Node {
	for _, key := range path {
		if n != nil && n.Kind == yaml.DocumentNode {
			n = n.Content[0]
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// keys lists a mapping's keys in order.
func keys(n *yaml.Node) []string {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var ks []string
	for i := 0; i < len(n.Content); i += 2 {
		ks = append(ks, n.Content[i].Value)
	}
	return ks
}

// render prints a node compactly, intrinsics in short form whichever form the file uses:
// `!If [ScheduleOn, ENABLED, DISABLED]`, `!GetAtt ScheduleDLQ.Arn`, `""` for an empty string.
func render(n *yaml.Node) string {
	if n == nil {
		return "<missing>"
	}
	tag := ""
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		tag = n.Tag + " "
	}
	switch n.Kind {
	case yaml.DocumentNode:
		return render(n.Content[0])
	case yaml.ScalarNode:
		if n.Value == "" {
			return tag + `""`
		}
		return tag + n.Value
	case yaml.SequenceNode:
		parts := make([]string, len(n.Content))
		for i, c := range n.Content {
			parts[i] = render(c)
		}
		if n.Tag == "!GetAtt" {
			return "!GetAtt " + strings.Join(parts, ".")
		}
		return tag + "[" + strings.Join(parts, ", ") + "]"
	case yaml.MappingNode:
		if len(n.Content) == 2 {
			k := n.Content[0].Value
			if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
				short := n.Content[1]
				if k == "Fn::GetAtt" && short.Kind == yaml.SequenceNode {
					return "!GetAtt " + strings.Join([]string{render(short.Content[0]), render(short.Content[1])}, ".")
				}
				return "!" + strings.TrimPrefix(k, "Fn::") + " " + render(short)
			}
		}
		parts := make([]string, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			parts = append(parts, n.Content[i].Value+": "+render(n.Content[i+1]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return "<alias>"
}

// ifParts splits `!If [cond, then, else]` (short or long form); ok is false for anything else.
func ifParts(n *yaml.Node) (cond string, then, otherwise *yaml.Node, ok bool) {
	if n == nil {
		return "", nil, nil, false
	}
	if n.Kind == yaml.MappingNode && len(n.Content) == 2 && n.Content[0].Value == "Fn::If" {
		n = n.Content[1]
	} else if n.Tag != "!If" {
		return "", nil, nil, false
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) != 3 {
		return "", nil, nil, false
	}
	return n.Content[0].Value, n.Content[1], n.Content[2], true
}

func scalars(n *yaml.Node) []string {
	switch {
	case n == nil:
		return nil
	case n.Kind == yaml.SequenceNode:
		var out []string
		for _, c := range n.Content {
			out = append(out, render(c))
		}
		return out
	default:
		return []string{render(n)}
	}
}

func TestTransformIsSAM(t *testing.T) {
	tpl := loadTemplate(t)
	if got := render(get(tpl, "Transform")); got != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform = %s, want AWS::Serverless-2016-10-31", got)
	}
}

func TestGlobalsFunction(t *testing.T) {
	tpl := loadTemplate(t)
	atMost := func(limit int) func(string) bool {
		return func(v string) bool { n, err := strconv.Atoi(v); return err == nil && n <= limit }
	}
	tests := []struct {
		path []string
		want string
		ok   func(string) bool
	}{
		{[]string{"Runtime"}, "provided.al2023", nil},
		{[]string{"Architectures"}, "[arm64]", nil},
		{[]string{"Handler"}, "bootstrap", nil},
		{[]string{"Timeout"}, "under API Gateway's 29 s", atMost(28)},
		{[]string{"MemorySize"}, "at most 256 MB", atMost(256)},
		{[]string{"LoggingConfig", "LogFormat"}, "JSON", nil},
	}
	for _, tt := range tests {
		name := strings.Join(tt.path, ".")
		t.Run(name, func(t *testing.T) {
			got := render(get(tpl, append([]string{"Globals", "Function"}, tt.path...)...))
			if tt.ok == nil && got != tt.want || tt.ok != nil && !tt.ok(got) {
				t.Errorf("Globals.Function.%s = %s, want %s", name, got, tt.want)
			}
		})
	}
}

func TestFunctionsBuildWithMakefileFromRepositoryRoot(t *testing.T) {
	tpl := loadTemplate(t)
	for _, fn := range []string{"RelayFunction", "VerifierFunction", "StatusFunction", "HookCheckFunction"} {
		t.Run(fn, func(t *testing.T) {
			res := get(tpl, "Resources", fn)
			if got := render(get(res, "Type")); got != "AWS::Serverless::Function" {
				t.Fatalf("%s.Type = %s, want AWS::Serverless::Function", fn, got)
			}
			if got := render(get(res, "Metadata", "BuildMethod")); got != "makefile" {
				t.Errorf("%s.Metadata.BuildMethod = %s, want makefile (go1.x can't pass -tags lambda.norpc)", fn, got)
			}
			codeURI := get(res, "Properties", "CodeUri")
			if codeURI == nil {
				t.Fatalf("%s.Properties.CodeUri is missing", fn)
			}
			if _, err := os.Stat(filepath.Join(root, codeURI.Value, "go.mod")); err != nil {
				t.Errorf("%s.CodeUri = %s, want the directory holding go.mod: %v", fn, codeURI.Value, err)
			}
			// A function-level list would be appended to the Globals list by SAM, not replace it.
			if arch := get(res, "Properties", "Architectures"); arch != nil {
				t.Errorf("%s.Properties.Architectures = %s, want unset so Globals' [arm64] applies alone", fn, render(arch))
			}
			for _, key := range []string{"Runtime", "Handler", "Timeout", "MemorySize", "Role"} {
				// The status function answers Azure's service hook, which waits only seconds.
				if fn == "StatusFunction" && key == "Timeout" {
					continue
				}
				if v := get(res, "Properties", key); v != nil {
					t.Errorf("%s.Properties.%s = %s, want unset (Globals decide; Role would bypass Policies)", fn, key, render(v))
				}
			}
		})
	}
}

// httpRoutes lists "METHOD /path on <ApiId>" for a function's HttpApi events.
func httpRoutes(tpl *yaml.Node, fn string) []string {
	events := get(tpl, "Resources", fn, "Properties", "Events")
	var routes []string
	for _, name := range keys(events) {
		ev := get(events, name)
		if render(get(ev, "Type")) != "HttpApi" {
			continue
		}
		p := get(ev, "Properties")
		routes = append(routes, render(get(p, "Method"))+" "+render(get(p, "Path"))+" on "+render(get(p, "ApiId")))
	}
	return routes
}

func TestHTTPRoutes(t *testing.T) {
	tpl := loadTemplate(t)
	tests := []struct {
		fn, api string
		want    []string
	}{
		{"RelayFunction", "RelayApi", []string{"POST / on !Ref RelayApi", "POST /webhooks/{name} on !Ref RelayApi"}},
		{"VerifierFunction", "VerifierApi", []string{"ANY /{proxy+} on !Ref VerifierApi", "POST / on !Ref VerifierApi"}},
		{"StatusFunction", "RelayApi", []string{"POST /azure/events on !Ref RelayApi"}},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			if got := render(get(tpl, "Resources", tt.api, "Type")); got != "AWS::Serverless::HttpApi" {
				t.Errorf("%s.Type = %s, want AWS::Serverless::HttpApi", tt.api, got)
			}
			got := httpRoutes(tpl, tt.fn)
			for _, route := range tt.want {
				if !slices.Contains(got, route) {
					t.Errorf("%s HTTP routes = %q, missing %q", tt.fn, got, route)
				}
			}
		})
	}
}

func TestRelayAPIThrottlingFromParameters(t *testing.T) {
	tpl := loadTemplate(t)
	for _, setting := range []string{"ThrottlingBurstLimit", "ThrottlingRateLimit"} {
		got := render(get(tpl, "Resources", "RelayApi", "Properties", "DefaultRouteSettings", setting))
		if want := "!Ref " + setting; got != want {
			t.Errorf("RelayApi DefaultRouteSettings.%s = %s, want %s", setting, got, want)
		}
		if get(tpl, "Parameters", setting) == nil {
			t.Errorf("parameter %s is missing", setting)
		}
	}
	// Azure's service hook has its own bucket: a flood of Port's routes must not make Azure get
	// 429, which puts its subscription on probation. The route key is the status function's event.
	route := get(tpl, "Resources", "StatusFunction", "Properties", "Events", "AzureEvents", "Properties")
	key := render(get(route, "Method")) + " " + render(get(route, "Path"))
	settings := get(tpl, "Resources", "RelayApi", "Properties", "RouteSettings", key)
	if settings == nil {
		t.Fatalf("RelayApi RouteSettings has no %q: Azure's service hook shares Port's throttle", key)
	}
	for setting, param := range map[string]string{"ThrottlingBurstLimit": "AzureEventsBurstLimit", "ThrottlingRateLimit": "AzureEventsRateLimit"} {
		if got, want := render(get(settings, setting)), "!Ref "+param; got != want {
			t.Errorf("RelayApi RouteSettings[%q].%s = %s, want %s", key, setting, got, want)
		}
		if get(tpl, "Parameters", param) == nil {
			t.Errorf("parameter %s is missing", param)
		}
	}
	// High enough for an automation firing for many entities at once.
	for param, atLeast := range map[string]int{"ThrottlingBurstLimit": 100, "ThrottlingRateLimit": 50, "AzureEventsBurstLimit": 100, "AzureEventsRateLimit": 50} {
		if got, _ := strconv.Atoi(render(get(tpl, "Parameters", param, "Default"))); got < atLeast {
			t.Errorf("%s default = %d, want at least %d", param, got, atLeast)
		}
	}
}

func TestScheduleIsOffByDefaultAndKeepsFailures(t *testing.T) {
	tpl := loadTemplate(t)
	events := get(tpl, "Resources", "RelayFunction", "Properties", "Events")
	var sched *yaml.Node
	var typ string
	for _, name := range keys(events) {
		if typ = render(get(events, name, "Type")); typ == "ScheduleV2" || typ == "Schedule" {
			sched = get(events, name, "Properties")
			break
		}
	}
	if sched == nil {
		t.Fatalf("RelayFunction has no Schedule or ScheduleV2 event")
	}

	if got := render(get(tpl, "Parameters", "ScheduleEnabled", "Default")); got != "false" {
		t.Errorf("ScheduleEnabled default = %s, want false", got)
	}
	switchNode, on, off := get(sched, "State"), "ENABLED", "DISABLED"
	if switchNode == nil {
		switchNode, on, off = get(sched, "Enabled"), "true", "false"
	}
	cond, then, otherwise, ok := ifParts(switchNode)
	if !ok || render(then) != on || render(otherwise) != off {
		t.Fatalf("schedule State/Enabled = %s, want !If [<condition>, %s, %s]", render(switchNode), on, off)
	}
	if got, want := render(get(tpl, "Conditions", cond)), `!Equals [!Ref ScheduleEnabled, true]`; got != want {
		t.Errorf("condition %s = %s, want %s", cond, got, want)
	}
	if got := render(get(sched, "Input")); got != "!Ref ScheduleInput" {
		t.Errorf("schedule Input = %s, want !Ref ScheduleInput", got)
	}
	if get(sched, "RetryPolicy") == nil {
		t.Errorf("schedule has no RetryPolicy")
	}
	dlq := render(get(sched, "DeadLetterConfig", "Arn"))
	if dlq != "!GetAtt ScheduleDLQ.Arn" {
		t.Errorf("schedule DeadLetterConfig.Arn = %s, want !GetAtt ScheduleDLQ.Arn", dlq)
	}
	queue := get(tpl, "Resources", "ScheduleDLQ")
	for path, want := range map[string]string{
		"Type":                              "AWS::SQS::Queue",
		"Properties.SqsManagedSseEnabled":   "true",
		"Properties.MessageRetentionPeriod": "1209600",
	} {
		if got := render(get(queue, strings.Split(path, ".")...)); got != want {
			t.Errorf("ScheduleDLQ.%s = %s, want %s", path, got, want)
		}
	}
}

func TestRelayAsyncFailuresGoToTheQueue(t *testing.T) {
	tpl := loadTemplate(t)
	cfg := get(tpl, "Resources", "RelayFunction", "Properties", "EventInvokeConfig")
	for path, want := range map[string]string{
		"DestinationConfig.OnFailure.Type":        "SQS",
		"DestinationConfig.OnFailure.Destination": "!GetAtt ScheduleDLQ.Arn",
		"MaximumRetryAttempts":                    "2",
	} {
		if got := render(get(cfg, strings.Split(path, ".")...)); got != want {
			t.Errorf("RelayFunction EventInvokeConfig.%s = %s, want %s", path, got, want)
		}
	}
}

type statement struct {
	fn, cond string // cond: the !If condition guarding it, "" if unconditional
	node     *yaml.Node
}

// policyStatements collects every inline statement of a function, failing on anything that is not
// an inline document (managed policy names, SAM policy templates).
func policyStatements(t *testing.T, tpl *yaml.Node, fn string) []statement {
	t.Helper()
	policies := get(tpl, "Resources", fn, "Properties", "Policies")
	if policies == nil || policies.Kind != yaml.SequenceNode {
		t.Fatalf("%s.Policies = %s, want a list of inline policy documents", fn, render(policies))
	}
	var out []statement
	for _, doc := range policies.Content {
		list := get(doc, "Statement")
		if list == nil || list.Kind != yaml.SequenceNode {
			t.Errorf("%s policy %s is not an inline document with a Statement list", fn, render(doc))
			continue
		}
		for _, st := range list.Content {
			if cond, then, otherwise, ok := ifParts(st); ok {
				if render(otherwise) != "!Ref AWS::NoValue" {
					t.Errorf("%s statement %s: want !If [cond, statement, !Ref AWS::NoValue]", fn, render(st))
				}
				out = append(out, statement{fn, cond, then})
				continue
			}
			out = append(out, statement{fn, "", st})
		}
	}
	return out
}

// calls names the IAM actions of the methods of the SDK client's subset iface (a nil
// pointer to the interface): what code holding it can call.
func calls(service string, iface any) []string {
	typ := reflect.TypeOf(iface).Elem()
	var out []string
	for i := range typ.NumMethod() {
		out = append(out, service+":"+typ.Method(i).Name)
	}
	return out
}

// pollerCalls are what Lambda's poller calls on an event source mapping's queue, with
// the function's role.
var pollerCalls = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}

// onBehalf reports whether AWS, not the function's code, makes the call with the
// function's role: kms:Decrypt (Secrets Manager's, for a customer key), the schedule
// dead-letter queue's sqs:SendMessage (Lambda's, for the relay's failed async events)
// and the poller's calls on the delivery queue (DeliveryQueueMapping's).
func onBehalf(action string, resources []string) bool {
	switch {
	case action == "kms:Decrypt":
		return true
	case action == "sqs:SendMessage":
		return slices.Equal(resources, []string{"!GetAtt ScheduleDLQ.Arn"})
	case slices.Contains(pollerCalls, action):
		return slices.Equal(resources, []string{"!GetAtt DeliveryQueue.Arn"})
	}
	return false
}

// TestEachFunctionMayMakeExactlyItsCalls: a function's rights are the AWS calls its
// code can make, as the small interfaces at its boundaries declare them, and no more:
// besides those, only what AWS calls on its behalf (onBehalf).
func TestEachFunctionMayMakeExactlyItsCalls(t *testing.T) {
	tpl := loadTemplate(t)
	secretCalls := calls("secretsmanager", (*secret.Getter)(nil))
	want := map[string][]string{
		"RelayFunction": slices.Concat(secretCalls, calls("dynamodb", (*ledger.DB)(nil)), calls("sts", (*entra.STSClient)(nil)),
			calls("sqs", (*queue.SQS)(nil))),
		"VerifierFunction": secretCalls,
		"StatusFunction":   secretCalls,
	}
	for fn, calls := range want {
		var granted []string
		for _, st := range policyStatements(t, tpl, fn) {
			resources := scalars(get(st.node, "Resource"))
			for _, a := range scalars(get(st.node, "Action")) {
				if !onBehalf(a, resources) && !slices.Contains(granted, a) {
					granted = append(granted, a)
				}
			}
		}
		slices.Sort(granted)
		slices.Sort(calls)
		if !slices.Equal(granted, calls) {
			t.Errorf("%s may call %q, want exactly the calls its code makes, %q", fn, granted, calls)
		}
	}
}

func TestLeastPrivilege(t *testing.T) {
	tpl := loadTemplate(t)
	ledgerActions := calls("dynamodb", (*ledger.DB)(nil))
	allowed := append([]string{"secretsmanager:GetSecretValue", "kms:Decrypt", "sts:GetWebIdentityToken"}, ledgerActions...)
	wantResource := map[string]string{
		"secretsmanager:GetSecretValue": "!Ref PortSecretArn",
		"kms:Decrypt":                   "!Ref SecretKmsKeyArn",
		// It has no resource: the token is the caller's own. Its conditions hold it instead.
		"sts:GetWebIdentityToken": "*",
	}
	// Each SQS right, the relay's alone: "action queue" and the condition it is under.
	sqsRights := map[string]string{
		"sqs:SendMessage !GetAtt ScheduleDLQ.Arn": "", // Lambda's, for failed async events
		// The relay's code (queue.SQS): put a delivery aside, set when it comes round, bury it.
		"sqs:SendMessage !GetAtt DeliveryQueue.Arn":             "QueueOn",
		"sqs:ChangeMessageVisibility !GetAtt DeliveryQueue.Arn": "QueueOn",
		"sqs:SendMessage !GetAtt DeliveryDLQ.Arn":               "QueueOn",
	}
	for _, a := range pollerCalls {
		sqsRights[a+" !GetAtt DeliveryQueue.Arn"] = "QueueOn" // Lambda's poller, for DeliveryQueueMapping
	}
	sqsGranted := map[string]int{}
	for _, a := range ledgerActions {
		wantResource[a] = "!GetAtt LedgerTable.Arn" // the ledger's table alone, only when it exists
	}
	kmsCondition := `!Not [!Equals [!Ref SecretKmsKeyArn, ""]]`
	if got := render(get(tpl, "Parameters", "SecretKmsKeyArn", "Default")); got != `""` {
		t.Errorf(`SecretKmsKeyArn default = %s, want "" (no customer key, no kms grant)`, got)
	}

	for _, fn := range []string{"RelayFunction", "VerifierFunction", "StatusFunction", "HookCheckFunction"} {
		t.Run(fn, func(t *testing.T) {
			readsSecret := false
			for _, st := range policyStatements(t, tpl, fn) {
				where := fn + " statement " + render(st.node)
				if got := render(get(st.node, "Effect")); got != "Allow" {
					t.Errorf("%s: Effect = %s, want Allow", where, got)
				}
				for _, k := range []string{"NotAction", "NotResource"} {
					if get(st.node, k) != nil {
						t.Errorf("%s: has %s, which grants everything else", where, k)
					}
				}
				resources := scalars(get(st.node, "Resource"))
				for _, action := range scalars(get(st.node, "Action")) {
					if strings.HasPrefix(action, "sqs:") {
						key := action + " " + strings.Join(resources, ", ")
						cond, ok := sqsRights[key]
						switch {
						case fn != "RelayFunction":
							t.Errorf("%s: %s for %s, want the relay alone to touch a queue", where, action, fn)
						case !ok:
							t.Errorf("%s: %s on %q, want it on exactly one of its queues (%q)", where, action, resources, slices.Sorted(maps.Keys(sqsRights)))
						case st.cond != cond:
							t.Errorf("%s: %s under condition %q, want %q", where, key, st.cond, cond)
						}
						sqsGranted[key]++
						continue
					}
					if !slices.Contains(allowed, action) {
						t.Errorf("%s: action %s is not in the allowed set %q", where, action, allowed)
						continue
					}
					if want := wantResource[action]; !slices.Equal(resources, []string{want}) {
						t.Errorf("%s: %s on %q, want exactly [%s]", where, action, resources, want)
					}
					if slices.Contains(ledgerActions, action) && (st.cond != "LedgerOn" || fn != "RelayFunction") {
						// The status function finds Port runs through Port's API, by externalRunId.
						t.Errorf("%s: %s for %s under condition %q, want the relay alone under LedgerOn: no other function touches the ledger", where, action, fn, st.cond)
					}
					switch action {
					case "sts:GetWebIdentityToken":
						// The audience key is multivalued: a set operator, and Null false, or an empty list would pass.
						aud := render(get(st.node, "Condition", "ForAllValues:StringEquals", "sts:IdentityTokenAudience"))
						present := render(get(st.node, "Condition", "Null", "sts:IdentityTokenAudience"))
						dur := render(get(st.node, "Condition", "NumericLessThanEquals", "sts:DurationSeconds"))
						// The relay, and the hook check, which signs in to Azure DevOps as the relay does.
						if fn != "RelayFunction" && fn != "HookCheckFunction" || st.cond != "FederationOn" || aud != entra.TokenExchangeAudience || present != "false" ||
							dur != strconv.Itoa(entra.AssertionDurationSeconds) || len(get(st.node, "Condition").Content) != 6 {
							t.Errorf("%s: want the relay and the hook check alone, under FederationOn, held to audience %s and at most %d s (got %q, %q)",
								where, entra.TokenExchangeAudience, entra.AssertionDurationSeconds, aud, dur)
						}
					case "secretsmanager:GetSecretValue":
						readsSecret = true
					case "kms:Decrypt":
						if got := render(get(tpl, "Conditions", st.cond)); st.cond == "" || got != kmsCondition {
							t.Errorf("%s: kms:Decrypt guarded by condition %q = %s, want one defined as %s", where, st.cond, got, kmsCondition)
						}
						if via := render(get(st.node, "Condition", "StringEquals", "kms:ViaService")); !strings.Contains(via, "secretsmanager.") {
							t.Errorf("%s: kms:ViaService = %s, want the Secrets Manager endpoint", where, via)
						}
					}
				}
				for _, r := range resources {
					if strings.Contains(r, "*") && !slices.Contains(scalars(get(st.node, "Action")), "sts:GetWebIdentityToken") {
						t.Errorf("%s: resource %s has a wildcard", where, r)
					}
				}
			}
			if !readsSecret {
				t.Errorf("%s has no secretsmanager:GetSecretValue statement", fn)
			}
		})
	}
	// Every SQS right is granted once: without the poller's, Lambda refuses to create the mapping.
	for key := range sqsRights {
		if sqsGranted[key] != 1 {
			t.Errorf("the relay is granted %s %d times, want once", key, sqsGranted[key])
		}
	}
	if got := render(get(tpl, "Conditions", "QueueOn")); got != "!And [!Equals [!Ref QueuedDelivery, true], !Condition LedgerOn]" {
		t.Errorf("QueueOn = %s, want QueuedDelivery true and the ledger on", got)
	}
}

func TestParameterDefaultsMatchTheContract(t *testing.T) {
	tpl := loadTemplate(t)
	tests := []struct{ param, want string }{
		{"AzureDevOpsWebhooks", `""`},
		{"AzureSignatureHeader", "x-port-signature"},
		{"AzureDevOpsUrl", "https://dev.azure.com"},
		{"PortApiUrl", "https://api.port.io"},
		{"PortSignatureTolerance", "5m"},
		{"RoundTrip", "false"},
		// A new account's quota may be 10 with 10 kept unreserved: any reservation fails the deploy.
		{"ReservedConcurrency", `""`},
		// The verifier is a public, unauthenticated endpoint whose role reads the secret: tests only.
		{"DeployVerifier", "false"},
		// A webhook, pipelines by id, or both: the Rule WebhookOrPipelines requires one.
		{"AzureDevOpsWebhook", `""`},
		{"AzureDevOpsPipelines", `""`},
		{"AzureAuthorityHost", "https://login.microsoftonline.com"},
	}
	for _, tt := range tests {
		if got := render(get(tpl, "Parameters", tt.param, "Default")); got != tt.want {
			t.Errorf("parameter %s default = %s, want %s", tt.param, got, tt.want)
		}
	}
	rule := render(get(tpl, "Rules", "WebhookOrPipelines", "Assertions"))
	if !strings.Contains(rule, `!Not [!And [!Equals [!Ref AzureDevOpsWebhook, ""], !Equals [!Ref AzureDevOpsPipelines, ""]]]`) {
		t.Errorf("Rules.WebhookOrPipelines = %s, want it to refuse a stack with neither a webhook nor pipelines", rule)
	}
	for _, required := range []string{"AzureDevOpsOrg", "PortSecretArn"} {
		p := get(tpl, "Parameters", required)
		if p == nil {
			t.Errorf("parameter %s is missing", required)
		} else if get(p, "Default") != nil {
			t.Errorf("parameter %s has a default; the contract makes it required", required)
		}
	}
	pattern := get(tpl, "Parameters", "PortSecretArn", "AllowedPattern")
	if re, err := regexp.Compile(render(pattern)); err != nil || !re.MatchString("arn:aws:secretsmanager:eu-west-1:123456789012:secret:port-AbCdEf") || re.MatchString("*") {
		t.Errorf("PortSecretArn AllowedPattern = %s, want a secret ARN pattern (err %v)", render(pattern), err)
	}
}

func TestRoundTripPointsTheRelayAtTheVerifier(t *testing.T) {
	tpl := loadTemplate(t)
	url := get(tpl, "Resources", "RelayFunction", "Properties", "Environment", "Variables", "AZURE_DEVOPS_URL")
	cond, then, otherwise, ok := ifParts(url)
	if !ok || !strings.Contains(render(then), "${VerifierApi}") || render(otherwise) != "!Ref AzureDevOpsUrl" {
		t.Fatalf("AZURE_DEVOPS_URL = %s, want !If [<RoundTrip>, <verifier API URL>, !Ref AzureDevOpsUrl]", render(url))
	}
	if got, want := render(get(tpl, "Conditions", cond)), "!Equals [!Ref RoundTrip, true]"; got != want {
		t.Errorf("condition %s = %s, want %s", cond, got, want)
	}
	// Whatever gates the verifier must give way to a round trip.
	for _, res := range []string{"VerifierFunction", "VerifierApi"} {
		if gate := get(tpl, "Resources", res, "Condition"); gate != nil {
			if def := render(get(tpl, "Conditions", gate.Value)); !strings.Contains(def, "!Condition "+cond) {
				t.Errorf("%s is deployed under %s = %s, which does not include %s", res, gate.Value, def, cond)
			}
		}
	}
}

func TestReservedConcurrencyIsTunable(t *testing.T) {
	tpl := loadTemplate(t)
	if get(tpl, "Parameters", "ReservedConcurrency") == nil {
		t.Fatalf("parameter ReservedConcurrency is missing")
	}
	rc := get(tpl, "Resources", "RelayFunction", "Properties", "ReservedConcurrentExecutions")
	cond, then, otherwise, ok := ifParts(rc)
	if !ok || render(then) != "!Ref ReservedConcurrency" || render(otherwise) != "!Ref AWS::NoValue" {
		t.Fatalf("ReservedConcurrentExecutions = %s, want !If [<cond>, !Ref ReservedConcurrency, !Ref AWS::NoValue]", render(rc))
	}
	if def := render(get(tpl, "Conditions", cond)); !strings.Contains(def, "!Ref ReservedConcurrency") {
		t.Errorf("condition %s = %s, want it to test ReservedConcurrency", cond, def)
	}
}

func TestFunctionsLogToRetainedGroups(t *testing.T) {
	tpl := loadTemplate(t)
	for _, fn := range []string{"RelayFunction", "VerifierFunction", "StatusFunction", "HookCheckFunction"} {
		ref := get(tpl, "Resources", fn, "Properties", "LoggingConfig", "LogGroup")
		if ref == nil || ref.Tag != "!Ref" {
			t.Errorf("%s LoggingConfig.LogGroup = %s, want !Ref <log group>", fn, render(ref))
			continue
		}
		group := get(tpl, "Resources", ref.Value)
		if got := render(get(group, "Type")); got != "AWS::Logs::LogGroup" {
			t.Errorf("%s logs to %s of type %s, want AWS::Logs::LogGroup", fn, ref.Value, got)
		}
		if got := render(get(group, "Properties", "RetentionInDays")); got != "!Ref LogRetentionDays" {
			t.Errorf("%s RetentionInDays = %s, want !Ref LogRetentionDays", ref.Value, got)
		}
		if got := render(get(group, "Properties", "LogGroupName")); !strings.Contains(got, "/aws/lambda/") {
			t.Errorf("%s LogGroupName = %s, want it under /aws/lambda/", ref.Value, got)
		}
	}
}

func TestOutputs(t *testing.T) {
	tpl := loadTemplate(t)
	tests := []struct{ output, want string }{
		{"RelayUrl", "https://${RelayApi}.execute-api."},
		{"RelayWebhookUrlTemplate", "/webhooks/{name}"},
		{"VerifierUrl", "https://${VerifierApi}.execute-api."},
		{"AzureServiceHookUrl", "https://${RelayApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/azure/events"},
		{"RelayFunctionArn", "!GetAtt RelayFunction.Arn"},
		{"ScheduleDeadLetterQueueUrl", "!Ref ScheduleDLQ"},
		{"DashboardUrl", "#dashboards:name=${Dashboard}"},
		{"AlarmTopicArn", "!Ref AlarmTopic"},
		{"HookCheckRoleArn", "!GetAtt HookCheckFunctionRole.Arn"},
	}
	for _, tt := range tests {
		if got := render(get(tpl, "Outputs", tt.output, "Value")); !strings.Contains(got, tt.want) {
			t.Errorf("output %s = %s, want it to contain %s", tt.output, got, tt.want)
		}
	}
}

// TestReferencesResolve catches typos a deploy would find late: every !Ref, !GetAtt, ${…} in !Sub
// and !If condition names something the template defines.
func TestReferencesResolve(t *testing.T) {
	tpl := loadTemplate(t)
	defined := func(name string) bool {
		// SAM makes <Function>Role for a function without a Role of its own.
		if fn, ok := strings.CutSuffix(name, "Role"); ok && render(get(tpl, "Resources", fn, "Type")) == "AWS::Serverless::Function" {
			return true
		}
		return strings.HasPrefix(name, "AWS::") || get(tpl, "Parameters", name) != nil || get(tpl, "Resources", name) != nil
	}
	subVar := regexp.MustCompile(`\$\{([^}!]+)\}`)
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Tag {
		case "!Ref":
			if !defined(n.Value) {
				t.Errorf("line %d: !Ref %s names no parameter or resource", n.Line, n.Value)
			}
		case "!GetAtt":
			if res, _, _ := strings.Cut(n.Value, "."); !defined(res) || get(tpl, "Parameters", res) != nil {
				t.Errorf("line %d: !GetAtt %s names no resource", n.Line, n.Value)
			}
		case "!Sub":
			for _, m := range subVar.FindAllStringSubmatch(n.Value, -1) {
				if res, _, _ := strings.Cut(m[1], "."); !defined(res) {
					t.Errorf("line %d: !Sub uses ${%s}, which is not defined", n.Line, m[1])
				}
			}
		case "!If", "!Condition":
			name := n.Value
			if n.Kind == yaml.SequenceNode && len(n.Content) > 0 {
				name = n.Content[0].Value
			}
			if get(tpl, "Conditions", name) == nil {
				t.Errorf("line %d: condition %s is not defined", n.Line, name)
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(tpl)
}

// TestSAMConfig reads samconfig.toml line by line (no TOML parser in the module): the default
// deploy and the round-trip environment exist, and the round trip turns RoundTrip on.
func TestSAMConfig(t *testing.T) {
	f, err := os.Open(samconfigPath)
	if err != nil {
		t.Fatalf("open %s: %v", samconfigPath, err)
	}
	defer f.Close()

	sections := map[string][]string{} // section header -> its non-comment lines
	section, version := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
			sections[section] = nil
		case section == "" && strings.HasPrefix(line, "version"):
			version = line
		default:
			sections[section] = append(sections[section], line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", samconfigPath, err)
	}
	if strings.ReplaceAll(version, " ", "") != "version=0.1" {
		t.Errorf("%s: version line = %q, want version = 0.1", samconfigPath, version)
	}
	has := func(section, fragment string) bool {
		return slices.ContainsFunc(sections[section], func(l string) bool { return strings.Contains(l, fragment) })
	}

	const deploy, roundtrip = "[default.deploy.parameters]", "[roundtrip.deploy.parameters]"
	for _, s := range []string{"[default.build.parameters]", deploy, "[default.local_invoke.parameters]", roundtrip} {
		if _, ok := sections[s]; !ok {
			t.Errorf("%s: section %s is missing", samconfigPath, s)
		}
	}
	tests := []struct{ section, fragment string }{
		{deploy, `stack_name = "port-azure-relay"`},
		{deploy, `capabilities = "CAPABILITY_IAM"`},
		{deploy, "confirm_changeset = true"},
		{deploy, "resolve_s3 = true"},
		{deploy, "parameter_overrides"},
		{roundtrip, `stack_name = "port-azure-relay-roundtrip"`},
		{roundtrip, `RoundTrip=\"true\"`},
	}
	for _, tt := range tests {
		if !has(tt.section, tt.fragment) {
			t.Errorf("%s: %s has no line with %s", samconfigPath, tt.section, tt.fragment)
		}
	}
	if has(deploy, `RoundTrip=\"true\"`) {
		t.Errorf("%s: the default deploy turns RoundTrip on; only the roundtrip environment should", samconfigPath)
	}
	checkOverrides(t, sections)
}

var overridePair = regexp.MustCompile(`(\w+)=\\"([^"\\]*)\\"`)

// overrides reads a section's parameter_overrides into a map.
func overrides(lines []string) map[string]string {
	out := map[string]string{}
	for _, l := range lines {
		if strings.HasPrefix(l, "parameter_overrides") {
			for _, m := range overridePair.FindAllStringSubmatch(l, -1) {
				out[m[1]] = m[2]
			}
		}
	}
	return out
}

// wiringDocs are where the webhook is wired: the README in brief, docs/azure.md and
// docs/port.md in full. Each must wire the webhook samconfig deploys.
var wiringDocs = [][]string{{"README.md"}, {"docs/azure.md", "docs/port.md"}}

// checkOverrides: what samconfig deploys is what the README and the wiring guides wire,
// and a first deploy on a new account works once the placeholders are replaced.
func checkOverrides(t *testing.T, sections map[string][]string) {
	t.Helper()
	accepts := paramRules(t)
	def := overrides(sections["[default.deploy.parameters]"])
	hook := def["AzureDevOpsWebhook"]
	for _, files := range wiringDocs {
		var text strings.Builder
		for _, f := range files {
			b, err := os.ReadFile(root + "/" + f)
			if err != nil {
				t.Fatal(err)
			}
			text.Write(b)
		}
		for _, wired := range []string{"webhook: " + hook, "/webhooks/" + hook, "**WebHook Name**: `" + hook + "`"} {
			if !strings.Contains(text.String(), wired) {
				t.Errorf("samconfig deploys AzureDevOpsWebhook=%s, but %q is not in %s", hook, wired, strings.Join(files, " or "))
			}
		}
	}
	if rc := def["ReservedConcurrency"]; rc != "" && rc != "0" {
		t.Errorf("samconfig reserves concurrency %s: a new account with a quota of 10 cannot deploy it", rc)
	}
	if def["DeployVerifier"] == "true" {
		t.Errorf("samconfig's default deploys the verifier, a public test endpoint that reads the secret")
	}
	for _, section := range []string{"[default.deploy.parameters]", "[roundtrip.deploy.parameters]"} {
		for name, value := range overrides(sections[section]) {
			placeholder := strings.Contains(value, "YOUR_") || strings.Contains(value, "ACCOUNT_ID")
			if ok := accepts(name, value); ok == placeholder {
				t.Errorf("%s %s=%q: the template accepts it: %v, want %v (placeholders must be refused, the rest accepted)", section, name, value, ok, !placeholder)
			}
		}
	}
	for name, value := range overrides(sections["[default.local_invoke.parameters]"]) {
		if !accepts(name, value) {
			t.Errorf("local_invoke %s=%q: the template refuses it", name, value)
		}
	}
	// sam local resolves !Ref of a resource to its logical id: no table, no queue locally.
	for _, section := range []string{"[default.local_invoke.parameters]", "[default.local_start_api.parameters]"} {
		if o := overrides(sections[section]); o["Ledger"] != "false" || o["QueuedDelivery"] != "false" {
			t.Errorf("%s sets Ledger=%q QueuedDelivery=%q, want both \"false\": sam local has neither the table nor the queue", section, o["Ledger"], o["QueuedDelivery"])
		}
	}
}

// TestAllowedSourceIps: the parameter reaches the relay, sits in a parameter group, is
// empty by default, and its pattern refuses what config refuses: the same samples go
// through both.
func TestAllowedSourceIps(t *testing.T) {
	tpl := loadTemplate(t)
	param := get(tpl, "Parameters", "AllowedSourceIps")
	if got := render(get(param, "Default")); got != `""` {
		t.Errorf("AllowedSourceIps default = %s, want \"\" (everyone, as without the option)", got)
	}
	if got := render(get(tpl, "Resources", "RelayFunction", "Properties", "Environment", "Variables", "ALLOWED_SOURCE_IPS")); got != "!Ref AllowedSourceIps" {
		t.Errorf("RelayFunction ALLOWED_SOURCE_IPS = %s, want !Ref AllowedSourceIps", got)
	}
	grouped := false
	for _, g := range get(tpl, "Metadata", "AWS::CloudFormation::Interface", "ParameterGroups").Content {
		grouped = grouped || slices.Contains(scalars(get(g, "Parameters")), "AllowedSourceIps")
	}
	if !grouped {
		t.Error("AllowedSourceIps is in no parameter group")
	}
	re, err := regexp.Compile(render(get(param, "AllowedPattern")))
	if err != nil {
		t.Fatalf("AllowedSourceIps AllowedPattern: %v", err)
	}
	load := func(v string) error {
		_, err := config.AllowedSources(func(name string) string {
			if name == "ALLOWED_SOURCE_IPS" {
				return v
			}
			return ""
		})
		return err
	}
	agree := []string{
		"", "   ", "port-eu", "port-us", "port-eu,port-us", " port-eu , 192.0.2.1 ", "192.0.2.1", "192.0.2.0/24", "port-eu,",
		"0.0.0.0/0", "255.255.255.255/32", "10.0.0.0/8", "10.0.0.1/8", "2001:db8::1", "2001:db8::/32", "2001:db8::1/64",
		"2001:DB8::A/128", "::", "::1", "::/0", "1:2:3:4:5:6:7:8", "1::", "1::8", "1:2:3:4:5:6::8", "::2:3:4:5:6:7:8",
		"::ffff:192.0.2.1", "::ffff:192.0.2.0/120", "1:2:3:4:5:6:192.0.2.1", "1::192.0.2.1", "1:2::3:4:192.0.2.1",
		"44.221.30.248,3.251.12.205/32, 2001:db8::/64",
		// refused by both
		"port-asia", "PORT-EU", ",", " , ", "192.0.2", "192.0.2.256", "192.0.2.07", "192.0.2.0/33", "192.0.2.0/",
		"192.0.2.0/024", "2001:db8::/129", "2001:db8::g", "1:2", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "2001::db8::1",
		"1:::2", ":1:2", "1:2:3:4:5:6:7:192.0.2.1", "::1:2:3:4:5:6:192.0.2.1", "12345::1", "fe80::1%eth0", "api.port.io",
		"192.0.2.1 192.0.2.2", "192.0.2.1;192.0.2.2", "192.0.2.1-192.0.2.9", "*", "any",
	}
	for _, v := range agree {
		if byPattern, byConfig := re.MatchString(v), load(v) == nil; byPattern != byConfig {
			t.Errorf("AllowedSourceIps=%q: the pattern accepts it %v, config %v (%v)", v, byPattern, byConfig, load(v))
		}
	}
	// Stricter than config, which skips empty entries: refused at deploy time, fine at start-up.
	for _, v := range []string{"192.0.2.1,,192.0.2.2", ", port-eu"} {
		if re.MatchString(v) || load(v) != nil {
			t.Errorf("AllowedSourceIps=%q: pattern %v, config error %v; want the pattern to refuse it, config to accept it", v, re.MatchString(v), load(v))
		}
	}
}

// TestTheLedger: the delivery ledger is an on-demand DynamoDB table keyed by id, with
// DynamoDB's TTL on expiresAt and AWS's default encryption, on by default, named to the
// relay, with an alarm when the relay cannot reach it; off, nothing of it is made.
func TestTheLedger(t *testing.T) {
	tpl := loadTemplate(t)
	table := get(tpl, "Resources", "LedgerTable")
	props := get(table, "Properties")
	for path, want := range map[string]string{
		"Type":      "AWS::DynamoDB::Table",
		"Condition": "LedgerOn",
	} {
		if got := render(get(table, path)); got != want {
			t.Errorf("LedgerTable.%s = %s, want %s", path, got, want)
		}
	}
	for path, want := range map[string]string{
		"BillingMode":                           "PAY_PER_REQUEST",
		"AttributeDefinitions":                  "[{AttributeName: id, AttributeType: S}]",
		"KeySchema":                             "[{AttributeName: id, KeyType: HASH}]",
		"TimeToLiveSpecification.AttributeName": "expiresAt",
		"TimeToLiveSpecification.Enabled":       "true",
	} {
		if got := render(get(props, strings.Split(path, ".")...)); got != want {
			t.Errorf("LedgerTable.Properties.%s = %s, want %s", path, got, want)
		}
	}
	if sse := get(props, "SSESpecification"); sse != nil {
		t.Errorf("LedgerTable.SSESpecification = %s, want none: AWS's default encryption at rest", render(sse))
	}
	if got := render(get(tpl, "Conditions", "LedgerOn")); got != `!Equals [!Ref Ledger, true]` {
		t.Errorf("LedgerOn = %s", got)
	}
	if got := render(get(tpl, "Parameters", "Ledger", "Default")); got != "true" {
		t.Errorf("Ledger default = %s, want true: never two runs for one Port run is the default", got)
	}
	env := get(tpl, "Resources", "RelayFunction", "Properties", "Environment", "Variables")
	if got := render(get(env, "LEDGER_TABLE")); got != `!If [LedgerOn, !Ref LedgerTable, ""]` {
		t.Errorf("LEDGER_TABLE = %s, want the table when the ledger is on, empty when off", got)
	}
	if got := render(get(env, "LEDGER_TTL")); got != "!Ref LedgerTtl" {
		t.Errorf("LEDGER_TTL = %s, want !Ref LedgerTtl", got)
	}
	if got := render(get(tpl, "Parameters", "LedgerTtl", "Default")); got != "24h" {
		t.Errorf("LedgerTtl default = %s, want 24h", got)
	}
	if v := get(tpl, "Resources", "VerifierFunction", "Properties", "Environment", "Variables", "LEDGER_TABLE"); v != nil {
		t.Errorf("VerifierFunction has LEDGER_TABLE: it has nothing to do with the ledger")
	}
	if v := get(tpl, "Resources", "StatusFunction", "Properties", "Environment", "Variables", "LEDGER_TABLE"); v != nil {
		t.Errorf("StatusFunction has LEDGER_TABLE: it finds Port runs through Port's API, not the ledger")
	}
	alarm := get(tpl, "Resources", "LedgerUnavailableAlarm")
	if render(get(alarm, "Condition")) != "LedgerOn" || render(get(alarm, "Properties", "MetricName")) != metrics.LedgerUnavailable ||
		render(get(alarm, "Properties", "Dimensions")) != "[{Name: Function, Value: relay}]" {
		t.Errorf("LedgerUnavailableAlarm = %s, want LedgerUnavailable of the relay, under LedgerOn", render(alarm))
	}
	// The schedule's input carries an id that is the same on every retry of one due time.
	if in := render(get(tpl, "Parameters", "ScheduleInput", "Default")); !strings.Contains(in, `"id":"<aws.scheduler.schedule-arn>/<aws.scheduler.scheduled-time>"`) {
		t.Errorf("ScheduleInput default = %s, want an id from the schedule and its due time", in)
	}
}

// TestTheSecretsKeysAreDocumented: every key the secret may hold is named where an
// operator sets it up: the PortSecretArn parameter's description and docs/deploy.md.
func TestTheSecretsKeysAreDocumented(t *testing.T) {
	tpl := loadTemplate(t)
	desc := render(get(tpl, "Parameters", "PortSecretArn", "Description"))
	deploy, err := os.ReadFile(root + "/docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"clientId", "clientSecret", "azureWebhookSecret", "serviceHookPassword",
		"azurePat", "azureTenantId", "azureClientId", "azureClientSecret"} {
		if !strings.Contains(desc, `"`+key+`"`) {
			t.Errorf("PortSecretArn's description does not name the secret's key %s", key)
		}
		if !strings.Contains(string(deploy), "`"+key+"`") {
			t.Errorf("docs/deploy.md does not name the secret's key %s", key)
		}
	}
}
