package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/port-azure-relay/relay/shared/metrics"
)

// The queued delivery's parts, all under the condition QueueOn.
var (
	queueResources = []string{"DeliveryQueue", "DeliveryDLQ", "DeliveryQueueMapping", "DeliveryDLQAlarm", "DeliveryQueueAgeAlarm"}
	queueOutputs   = []string{"DeliveryQueueUrl", "DeliveryQueueArn", "DeliveryDLQUrl", "DeliveryDLQArn"}
)

// relayTimeout is the relay's Timeout in seconds: its own, or else Globals'.
func relayTimeout(t *testing.T, tpl *yaml.Node) int {
	t.Helper()
	n := get(tpl, "Resources", "RelayFunction", "Properties", "Timeout")
	if n == nil {
		n = get(tpl, "Globals", "Function", "Timeout")
	}
	s, err := strconv.Atoi(render(n))
	if err != nil {
		t.Fatalf("the relay's Timeout = %s, want a number of seconds", render(n))
	}
	return s
}

// TestQueuedDeliveryParameters: on by default, concurrency within what Lambda takes,
// the age limit from 1 minute to 24 hours, grouped, and the ledger named as a need.
func TestQueuedDeliveryParameters(t *testing.T) {
	tpl := loadTemplate(t)
	for _, tt := range []struct{ param, path, want string }{
		{"QueuedDelivery", "Type", "String"},
		{"QueuedDelivery", "Default", "true"},
		{"QueuedDelivery", "AllowedValues", "[true, false]"},
		// Lambda's ScalingConfig.MaximumConcurrency range.
		{"QueueConcurrency", "Type", "Number"},
		{"QueueConcurrency", "Default", "2"},
		{"QueueConcurrency", "MinValue", "2"},
		{"QueueConcurrency", "MaxValue", "1000"},
		{"QueueMaxAgeMinutes", "Type", "Number"},
		{"QueueMaxAgeMinutes", "Default", "60"},
		{"QueueMaxAgeMinutes", "MinValue", "1"},
		{"QueueMaxAgeMinutes", "MaxValue", "1440"},
	} {
		if got := render(get(tpl, "Parameters", tt.param, tt.path)); got != tt.want {
			t.Errorf("%s.%s = %s, want %s", tt.param, tt.path, got, tt.want)
		}
	}
	if desc := render(get(tpl, "Parameters", "QueuedDelivery", "Description")); !strings.Contains(desc, `Ledger "true"`) {
		t.Errorf("QueuedDelivery's description does not say it needs Ledger \"true\": %s", desc)
	}
	for _, p := range []string{"QueuedDelivery", "QueueConcurrency", "QueueMaxAgeMinutes"} {
		grouped := false
		for _, g := range get(tpl, "Metadata", "AWS::CloudFormation::Interface", "ParameterGroups").Content {
			grouped = grouped || slices.Contains(scalars(get(g, "Parameters")), p)
		}
		if !grouped {
			t.Errorf("%s is in no parameter group", p)
		}
	}
}

// TestQueueMaxAgeAgreesWithTheRelay: QUEUE_MAX_AGE is QueueMaxAgeMinutes in minutes, so
// the whole numbers the template takes are exactly the durations from 1m to 24h, and
// each one the template takes starts the relay.
func TestQueueMaxAgeAgreesWithTheRelay(t *testing.T) {
	tpl := loadTemplate(t)
	v := get(tpl, "Resources", "RelayFunction", "Properties", "Environment", "Variables", "QUEUE_MAX_AGE")
	if v == nil || v.Tag != "!Sub" || v.Kind != yaml.ScalarNode || !strings.Contains(v.Value, "${QueueMaxAgeMinutes}") {
		t.Fatalf("QUEUE_MAX_AGE = %s, want !Sub of ${QueueMaxAgeMinutes} as a duration", render(v))
	}
	p := get(tpl, "Parameters", "QueueMaxAgeMinutes")
	lo, _ := strconv.Atoi(render(get(p, "MinValue")))
	hi, _ := strconv.Atoi(render(get(p, "MaxValue")))
	for n := 0; n <= 1600; n++ {
		value := strings.ReplaceAll(v.Value, "${QueueMaxAgeMinutes}", strconv.Itoa(n))
		d, err := time.ParseDuration(value)
		if err != nil {
			t.Fatalf("QueueMaxAgeMinutes=%d gives QUEUE_MAX_AGE=%q, not a Go duration: %v", n, value, err)
		}
		takes := n >= lo && n <= hi
		if want := d >= time.Minute && d <= 24*time.Hour; takes != want {
			t.Errorf("QueueMaxAgeMinutes=%d (QUEUE_MAX_AGE=%s): the template takes it %v, want %v (1m to 24h)", n, value, takes, want)
		}
		if err := relayAccepts("QUEUE_MAX_AGE", value); takes && err != nil {
			t.Errorf("QueueMaxAgeMinutes=%d: the template takes it, the relay refuses QUEUE_MAX_AGE=%s: %v", n, value, err)
		}
	}
}

// TestTheDeliveryQueue: encrypted by SQS, its messages kept longer than any delivery may
// wait and invisible for six relay timeouts once received, as large as SQS takes, and
// moved to its dead-letter queue only after SQS's most receives, so that the age limit
// decides; the dead-letter queue keeps them 14 days.
func TestTheDeliveryQueue(t *testing.T) {
	tpl := loadTemplate(t)
	q := get(tpl, "Resources", "DeliveryQueue")
	dlq := get(tpl, "Resources", "DeliveryDLQ")
	for name, res := range map[string]*yaml.Node{"DeliveryQueue": q, "DeliveryDLQ": dlq} {
		for path, want := range map[string]string{
			"Type": "AWS::SQS::Queue", "Condition": "QueueOn", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
			"Properties.SqsManagedSseEnabled": "true",
		} {
			if got := render(get(res, strings.Split(path, ".")...)); got != want {
				t.Errorf("%s.%s = %s, want %s", name, path, got, want)
			}
		}
		for _, fifo := range []string{"FifoQueue", "KmsMasterKeyId", "QueueName"} {
			if v := get(res, "Properties", fifo); v != nil {
				t.Errorf("%s.Properties.%s = %s, want it unset (a standard queue, SQS's own encryption, a name per stack)", name, fifo, render(v))
			}
		}
	}
	number := func(res *yaml.Node, path ...string) int {
		n, err := strconv.Atoi(render(get(res, path...)))
		if err != nil {
			t.Errorf("%s is %s, want a number", strings.Join(path, "."), render(get(res, path...)))
		}
		return n
	}
	if vis, timeout := number(q, "Properties", "VisibilityTimeout"), relayTimeout(t, tpl); vis < 6*timeout || vis > 43200 {
		t.Errorf("DeliveryQueue VisibilityTimeout = %d s, want at least six times the relay's timeout (%d s) and at most SQS's 12 h", vis, timeout)
	}
	maxAge, _ := strconv.Atoi(render(get(tpl, "Parameters", "QueueMaxAgeMinutes", "MaxValue")))
	if kept := number(q, "Properties", "MessageRetentionPeriod"); kept != 4*24*3600 || kept <= maxAge*60 {
		t.Errorf("DeliveryQueue MessageRetentionPeriod = %d s, want 4 days, longer than the longest QueueMaxAgeMinutes (%d min)", kept, maxAge)
	}
	if size := number(q, "Properties", "MaximumMessageSize"); size != 1<<20 {
		t.Errorf("DeliveryQueue MaximumMessageSize = %d, want SQS's 1 MiB", size)
	}
	if got := render(get(q, "Properties", "RedrivePolicy", "deadLetterTargetArn")); got != "!GetAtt DeliveryDLQ.Arn" {
		t.Errorf("DeliveryQueue's dead letters go to %s, want !GetAtt DeliveryDLQ.Arn", got)
	}
	if n := number(q, "Properties", "RedrivePolicy", "maxReceiveCount"); n != 1000 {
		t.Errorf("DeliveryQueue maxReceiveCount = %d, want SQS's 1000, so that the age limit decides", n)
	}
	if kept := number(dlq, "Properties", "MessageRetentionPeriod"); kept != 1209600 {
		t.Errorf("DeliveryDLQ MessageRetentionPeriod = %d s, want 14 days (SQS's most)", kept)
	}
	if get(dlq, "Properties", "RedrivePolicy") != nil {
		t.Errorf("DeliveryDLQ has a RedrivePolicy: nothing should move dead letters on by itself")
	}
}

// TestTheDeliveryQueueMapping: the relay drains its queue through an event source mapping
// made only with the queue, after the role that lets Lambda's poller read it.
func TestTheDeliveryQueueMapping(t *testing.T) {
	tpl := loadTemplate(t)
	m := get(tpl, "Resources", "DeliveryQueueMapping")
	for path, want := range map[string]string{
		"Type":                             "AWS::Lambda::EventSourceMapping",
		"Condition":                        "QueueOn",
		"DependsOn":                        "RelayFunctionRole",
		"Properties.EventSourceArn":        "!GetAtt DeliveryQueue.Arn",
		"Properties.FunctionName":          "!Ref RelayFunction",
		"Properties.BatchSize":             "10",
		"Properties.FunctionResponseTypes": "[ReportBatchItemFailures]",
		"Properties.ScalingConfig.MaximumConcurrency": "!Ref QueueConcurrency",
	} {
		if got := render(get(m, strings.Split(path, ".")...)); got != want {
			t.Errorf("DeliveryQueueMapping.%s = %s, want %s", path, got, want)
		}
	}
	// One mapping: a SAM event of type SQS would be a second one, without the condition.
	if got := resourcesOfType(tpl, "AWS::Lambda::EventSourceMapping"); !slices.Equal(got, []string{"DeliveryQueueMapping"}) {
		t.Errorf("event source mappings %q, want DeliveryQueueMapping alone", got)
	}
	events := get(tpl, "Resources", "RelayFunction", "Properties", "Events")
	for _, name := range keys(events) {
		if typ := render(get(events, name, "Type")); typ == "SQS" {
			t.Errorf("RelayFunction event %s is of type SQS: the mapping is DeliveryQueueMapping's alone", name)
		}
	}
}

// TestTheDeliveryQueueAlarms: a dead letter fires one alarm; the oldest message past
// half of QueueMaxAgeMinutes fires the other; both are on the dashboard with a widget of
// the queue's depth and age.
func TestTheDeliveryQueueAlarms(t *testing.T) {
	tpl := loadTemplate(t)
	dlq := get(tpl, "Resources", "DeliveryDLQAlarm")
	for path, want := range map[string]string{
		"Condition":                     "QueueOn",
		"Properties.Namespace":          "AWS/SQS",
		"Properties.MetricName":         "ApproximateNumberOfMessagesVisible",
		"Properties.Dimensions":         "[{Name: QueueName, Value: !GetAtt DeliveryDLQ.QueueName}]",
		"Properties.Statistic":          "Maximum",
		"Properties.Threshold":          "1",
		"Properties.ComparisonOperator": "GreaterThanOrEqualToThreshold",
		"Properties.TreatMissingData":   "notBreaching",
	} {
		if got := render(get(dlq, strings.Split(path, ".")...)); got != want {
			t.Errorf("DeliveryDLQAlarm.%s = %s, want %s", path, got, want)
		}
	}
	if desc := render(get(dlq, "Properties", "AlarmDescription")); !strings.Contains(desc, "make redrive") {
		t.Errorf("DeliveryDLQAlarm's description does not say how to redrive: %s", desc)
	}

	age := get(tpl, "Resources", "DeliveryQueueAgeAlarm")
	if got := render(get(age, "Condition")); got != "QueueOn" {
		t.Errorf("DeliveryQueueAgeAlarm.Condition = %s, want QueueOn", got)
	}
	p := get(age, "Properties")
	queries := get(p, "Metrics")
	var expr *yaml.Node
	stats := map[string]*yaml.Node{} // by Id
	for _, q := range queries.Content {
		switch {
		case get(q, "Expression") != nil && render(get(q, "ReturnData")) == "true":
			expr = q
		case get(q, "MetricStat") != nil && render(get(q, "ReturnData")) == "false":
			stats[render(get(q, "Id"))] = q
		default:
			t.Errorf("DeliveryQueueAgeAlarm query %s: want one expression returned and the metrics it reads", render(q))
		}
	}
	// SQS's oldest age leaves out messages received three times or more, which a throttled
	// delivery is: the relay's own QueueAge stands beside it.
	want := map[string]map[string]string{
		"age":      {"MetricStat.Metric.Namespace": "AWS/SQS", "MetricStat.Metric.MetricName": "ApproximateAgeOfOldestMessage", "MetricStat.Metric.Dimensions": "[{Name: QueueName, Value: !GetAtt DeliveryQueue.QueueName}]", "MetricStat.Stat": "Maximum"},
		"relayAge": {"MetricStat.Metric.Namespace": "!Ref MetricsNamespace", "MetricStat.Metric.MetricName": metrics.QueueAge, "MetricStat.Metric.Dimensions": "[{Name: Function, Value: relay}]", "MetricStat.Stat": "Maximum"},
	}
	if expr == nil || len(stats) != 2 || len(queries.Content) != 3 {
		t.Fatalf("DeliveryQueueAgeAlarm.Metrics = %s, want an expression over SQS's oldest age and the relay's QueueAge", render(queries))
	}
	for id, paths := range want {
		for path, w := range paths {
			if got := render(get(stats[id], strings.Split(path, ".")...)); got != w {
				t.Errorf("DeliveryQueueAgeAlarm's metric %s %s = %s, want %s", id, path, got, w)
			}
		}
	}
	// The expression, with the ages in seconds and the parameter in minutes, must cross
	// the threshold at half the maximum age, whichever age is the older: evaluate it.
	src := get(expr, "Expression")
	threshold, err := strconv.ParseFloat(render(get(p, "Threshold")), 64)
	oldest, rest, ok := strings.Cut(src.Value, " / ")
	if src.Tag != "!Sub" || err != nil || render(get(p, "ComparisonOperator")) != "GreaterThanOrEqualToThreshold" ||
		!ok || oldest != "MAX([age, FILL(relayAge, 0)])" {
		t.Fatalf("DeliveryQueueAgeAlarm = %s ≥? %s, want !Sub MAX([age, FILL(relayAge, 0)]) / … over ${QueueMaxAgeMinutes} and GreaterThanOrEqualToThreshold",
			render(src), render(get(p, "Threshold")))
	}
	for _, minutes := range []int{1, 60, 1440} {
		for _, seconds := range []int{minutes*30 - 1, minutes * 30, minutes*30 + 1} {
			text := strconv.Itoa(seconds) + " / " + strings.ReplaceAll(rest, "${QueueMaxAgeMinutes}", strconv.Itoa(minutes))
			got, err := arith(text)
			if err != nil {
				t.Fatalf("DeliveryQueueAgeAlarm expression %q: %v", src.Value, err)
			}
			if fires, want := got >= threshold, seconds >= minutes*30; fires != want {
				t.Errorf("QueueMaxAgeMinutes=%d, oldest delivery %d s old: the alarm fires %v, want %v (%s = %g, threshold %g)",
					minutes, seconds, fires, want, text, got, threshold)
			}
		}
	}

	// The dashboard shows the queue's depth, its oldest message's age and the dead letters.
	widget := render(get(tpl, "Resources", "Dashboard", "Properties", "DashboardBody"))
	for _, metric := range []string{
		`"AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${DeliveryQueue.QueueName}"`,
		`"AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", "${DeliveryQueue.QueueName}"`,
		`"AWS/SQS", "ApproximateNumberOfMessagesDelayed", "QueueName", "${DeliveryQueue.QueueName}"`,
		`"AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "${DeliveryQueue.QueueName}"`,
		`"AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${DeliveryDLQ.QueueName}"`,
	} {
		if !strings.Contains(widget, metric) {
			t.Errorf("the dashboard has no line [%s]", metric)
		}
	}
}

// arith evaluates + - * / and parentheses over numbers: what the alarm's metric math
// expression becomes once its metric and parameter are numbers.
func arith(s string) (float64, error) {
	toks := regexp.MustCompile(`\d+(\.\d+)?|[-+*/()]|\S`).FindAllString(s, -1)
	pos := 0
	var expr, term, factor func() (float64, error)
	factor = func() (float64, error) {
		if pos >= len(toks) {
			return 0, errors.New("unexpected end")
		}
		tok := toks[pos]
		pos++
		if tok == "(" {
			v, err := expr()
			if err != nil || pos >= len(toks) || toks[pos] != ")" {
				return 0, fmt.Errorf("unbalanced parentheses (%v)", err)
			}
			pos++
			return v, nil
		}
		return strconv.ParseFloat(tok, 64)
	}
	term = func() (float64, error) {
		v, err := factor()
		for err == nil && pos < len(toks) && (toks[pos] == "*" || toks[pos] == "/") {
			op := toks[pos]
			pos++
			var w float64
			if w, err = factor(); op == "*" {
				v *= w
			} else {
				v /= w
			}
		}
		return v, err
	}
	expr = func() (float64, error) {
		v, err := term()
		for err == nil && pos < len(toks) && (toks[pos] == "+" || toks[pos] == "-") {
			op := toks[pos]
			pos++
			var w float64
			if w, err = term(); op == "+" {
				v += w
			} else {
				v -= w
			}
		}
		return v, err
	}
	v, err := expr()
	if err == nil && pos != len(toks) {
		err = fmt.Errorf("unexpected %q", toks[pos])
	}
	return v, err
}

func TestTheDeliveryQueueOutputs(t *testing.T) {
	tpl := loadTemplate(t)
	for output, want := range map[string]string{
		"DeliveryQueueUrl": "!Ref DeliveryQueue",
		"DeliveryQueueArn": "!GetAtt DeliveryQueue.Arn",
		"DeliveryDLQUrl":   "!Ref DeliveryDLQ",
		"DeliveryDLQArn":   "!GetAtt DeliveryDLQ.Arn",
	} {
		o := get(tpl, "Outputs", output)
		if got := render(get(o, "Value")); got != want {
			t.Errorf("output %s = %s, want %s", output, got, want)
		}
		if got := render(get(o, "Condition")); got != "QueueOn" {
			t.Errorf("output %s under %s, want QueueOn", output, got)
		}
	}
}

// TestQueueOnDecidesEverything deploys the template in thought: with the conditions
// evaluated for the parameters given, queued delivery is all there (queues, mapping,
// rights, variables, alarms, dashboard, outputs) or none of it is, and nothing left
// names what is gone. It reads the template as written and, where aws-sam-translator is
// installed, as the SAM transform hands it to CloudFormation.
func TestQueueOnDecidesEverything(t *testing.T) {
	cases := []struct {
		params   map[string]string
		on, both bool // both: the transformed template too (each transform takes seconds)
	}{
		{map[string]string{}, true, true},
		{map[string]string{"QueuedDelivery": "false"}, false, true},
		{map[string]string{"Ledger": "false"}, false, true},
		{map[string]string{"QueuedDelivery": "false", "Ledger": "false"}, false, false},
		{map[string]string{"QueuedDelivery": "true", "Ledger": "true", "HookCheck": "true", "DeployVerifier": "true"}, true, false},
	}
	written := longForm(loadTemplate(t)).(map[string]any)
	sam := exec.Command("python3", "-c", "import samtranslator")
	sam.Env = []string{"PATH=" + pathEnv()}
	samErr := sam.Run()
	for _, tc := range cases {
		name := fmt.Sprint(tc.params)
		t.Run("written "+name, func(t *testing.T) { checkQueueOn(t, deploy(t, written, tc.params), false, tc.on) })
		if !tc.both {
			continue
		}
		t.Run("transformed "+name, func(t *testing.T) {
			if samErr != nil {
				t.Skip("python3 with aws-sam-translator is not installed (pip install aws-sam-translator): the transformed template is not checked here")
			}
			checkQueueOn(t, deploy(t, samTransform(t, tc.params), tc.params), true, tc.on)
		})
	}
}

// samParams are the required parameters, as testdata/sam_transform.py sets them.
var samParams = map[string]string{
	"AzureDevOpsOrg":     "contoso",
	"AzureDevOpsWebhook": "port_trigger",
	"PortSecretArn":      "arn:aws:secretsmanager:eu-west-1:123456789012:secret:port/azure-relay-AbCdEf",
}

// samTransform runs the SAM transform with params and returns the template it makes.
func samTransform(t *testing.T, params map[string]string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"testdata/sam_transform.py", templatePath, "--json"}
	for k, v := range params {
		args = append(args, k+"="+v)
	}
	cmd := exec.CommandContext(ctx, "python3", args...)
	cmd.Env = []string{"PATH=" + pathEnv(), "HOME=" + emptyHome(t), "XDG_CONFIG_HOME=", "AWS_DEFAULT_REGION=eu-west-1"}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("SAM transform: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("SAM transform's output: %v", err)
	}
	return doc
}

// longForm turns a template node into the form JSON templates use ({"Ref": …},
// {"Fn::If": […]}, {"Fn::GetAtt": [resource, attribute]}), as the SAM transform prints it.
func longForm(n *yaml.Node) any {
	switch n.Kind {
	case yaml.DocumentNode:
		return longForm(n.Content[0])
	case yaml.AliasNode:
		return longForm(n.Alias)
	}
	var v any
	switch n.Kind {
	case yaml.SequenceNode:
		list := make([]any, len(n.Content))
		for i, c := range n.Content {
			list[i] = longForm(c)
		}
		v = list
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = longForm(n.Content[i+1])
		}
		v = m
	default:
		v = n.Value
	}
	switch tag := n.Tag; {
	case tag == "!Ref" || tag == "!Condition":
		return map[string]any{tag[1:]: v}
	case tag == "!GetAtt":
		if s, ok := v.(string); ok {
			res, attr, _ := strings.Cut(s, ".")
			v = []any{res, attr}
		}
		return map[string]any{"Fn::GetAtt": v}
	case strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!"):
		return map[string]any{"Fn::" + tag[1:]: v}
	}
	return v
}

// noValue stands for !Ref AWS::NoValue once resolved: the key or item is left out.
type noValue struct{}

// deploy evaluates the template's conditions for params (the rest at their defaults, the
// required ones as samParams), keeps the resources and outputs whose condition holds,
// and resolves every Fn::If and AWS::NoValue, as CloudFormation does.
func deploy(t *testing.T, doc map[string]any, params map[string]string) map[string]any {
	t.Helper()
	values := map[string]string{}
	for name, p := range doc["Parameters"].(map[string]any) {
		if d, ok := p.(map[string]any)["Default"]; ok {
			values[name] = fmt.Sprint(d)
		}
	}
	for _, m := range []map[string]string{samParams, params} {
		for k, v := range m {
			values[k] = v
		}
	}
	conds := doc["Conditions"].(map[string]any)
	known := map[string]bool{}
	var named func(string) bool
	var eval func(any) bool
	value := func(v any) string {
		if m, ok := v.(map[string]any); ok {
			name, _ := m["Ref"].(string)
			s, ok := values[name]
			if !ok {
				t.Fatalf("a condition compares %v, not a parameter with a value", v)
			}
			return s
		}
		return fmt.Sprint(v)
	}
	eval = func(v any) bool {
		m, _ := v.(map[string]any)
		if len(m) != 1 {
			t.Fatalf("condition %v is not one function", v)
		}
		for fn, arg := range m {
			if fn == "Condition" {
				return named(arg.(string))
			}
			args, _ := arg.([]any)
			switch fn {
			case "Fn::Equals":
				return value(args[0]) == value(args[1])
			case "Fn::Not":
				return !eval(args[0])
			case "Fn::And", "Fn::Or":
				all := fn == "Fn::And"
				for _, a := range args {
					if eval(a) != all {
						return !all
					}
				}
				return all
			}
			t.Fatalf("condition function %s is not one this test knows", fn)
		}
		return false
	}
	named = func(name string) bool {
		if v, ok := known[name]; ok {
			return v
		}
		c, ok := conds[name]
		if !ok {
			t.Fatalf("condition %s is not defined", name)
		}
		known[name] = eval(c)
		return known[name]
	}
	var resolve func(any) any
	resolve = func(v any) any {
		switch v := v.(type) {
		case []any:
			out := []any{}
			for _, c := range v {
				if r := resolve(c); r != (noValue{}) {
					out = append(out, r)
				}
			}
			return out
		case map[string]any:
			if args, ok := v["Fn::If"].([]any); ok && len(v) == 1 {
				if named(args[0].(string)) {
					return resolve(args[1])
				}
				return resolve(args[2])
			}
			if v["Ref"] == "AWS::NoValue" && len(v) == 1 {
				return noValue{}
			}
			out := map[string]any{}
			for k, c := range v {
				if r := resolve(c); r != (noValue{}) {
					out[k] = r
				}
			}
			return out
		}
		return v
	}
	out := map[string]any{"Parameters": doc["Parameters"]}
	for _, section := range []string{"Resources", "Outputs"} {
		kept := map[string]any{}
		for name, r := range doc[section].(map[string]any) {
			if c, ok := r.(map[string]any)["Condition"].(string); ok && !named(c) {
				continue
			}
			kept[name] = resolve(r)
		}
		out[section] = kept
	}
	return out
}

// checkQueueOn checks a deployed template (deploy's) against QueueOn's value on.
func checkQueueOn(t *testing.T, stack map[string]any, transformed, on bool) {
	t.Helper()
	resources := stack["Resources"].(map[string]any)
	outputs := stack["Outputs"].(map[string]any)
	typeOf := func(name string) string {
		r, _ := resources[name].(map[string]any)
		s, _ := r["Type"].(string)
		return s
	}
	for _, name := range queueResources {
		if _, ok := resources[name]; ok != on {
			t.Errorf("resource %s is made: %v, want %v", name, ok, on)
		}
	}
	for _, name := range queueOutputs {
		if _, ok := outputs[name]; ok != on {
			t.Errorf("output %s is there: %v, want %v", name, ok, on)
		}
	}
	var queues, mappings []string
	for name := range resources {
		switch typeOf(name) {
		case "AWS::SQS::Queue":
			queues = append(queues, name)
		case "AWS::Lambda::EventSourceMapping":
			mappings = append(mappings, name)
		}
	}
	slices.Sort(queues)
	wantQueues, wantMappings := []string{"ScheduleDLQ"}, []string(nil)
	if on {
		wantQueues, wantMappings = []string{"DeliveryDLQ", "DeliveryQueue", "ScheduleDLQ"}, []string{"DeliveryQueueMapping"}
	}
	if !slices.Equal(queues, wantQueues) || !slices.Equal(mappings, wantMappings) {
		t.Errorf("queues %q and event source mappings %q, want %q and %q", queues, mappings, wantQueues, wantMappings)
	}

	// The relay's variables: the queues' URLs, or empty; the age limit always.
	relay := "RelayFunction"
	env, _ := dig(resources, relay, "Properties", "Environment", "Variables").(map[string]any)
	for v, ref := range map[string]string{"DELIVERY_QUEUE_URL": "DeliveryQueue", "DELIVERY_DLQ_URL": "DeliveryDLQ"} {
		want := any("")
		if on {
			want = map[string]any{"Ref": ref}
		}
		if got := env[v]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("the relay's %s = %v, want %v", v, got, want)
		}
	}
	if got := fmt.Sprint(env["QUEUE_MAX_AGE"]); got != fmt.Sprint(map[string]any{"Fn::Sub": "${QueueMaxAgeMinutes}m"}) {
		t.Errorf("the relay's QUEUE_MAX_AGE = %s, want it set whether or not the queue is", got)
	}

	// The relay's SQS rights: each on its queue, only with the queue.
	var statements []any
	if transformed {
		for _, p := range dig(resources, "RelayFunctionRole", "Properties", "Policies").([]any) {
			statements = append(statements, dig(p, "PolicyDocument", "Statement").([]any)...)
		}
	} else {
		for _, p := range dig(resources, relay, "Properties", "Policies").([]any) {
			statements = append(statements, dig(p, "Statement").([]any)...)
		}
	}
	var granted []string
	for _, st := range statements {
		actions, ok := dig(st, "Action").([]any)
		if !ok {
			actions = []any{dig(st, "Action")}
		}
		for _, a := range actions {
			if a := fmt.Sprint(a); strings.HasPrefix(a, "sqs:") {
				right := a + " on " + fmt.Sprint(dig(st, "Resource", "Fn::GetAtt"))
				if !slices.Contains(granted, right) {
					granted = append(granted, right)
				}
			}
		}
	}
	slices.Sort(granted)
	want := []string{"sqs:SendMessage on [ScheduleDLQ Arn]"}
	if on {
		want = []string{"sqs:ChangeMessageVisibility on [DeliveryQueue Arn]", "sqs:DeleteMessage on [DeliveryQueue Arn]",
			"sqs:GetQueueAttributes on [DeliveryQueue Arn]", "sqs:ReceiveMessage on [DeliveryQueue Arn]",
			"sqs:SendMessage on [DeliveryDLQ Arn]", "sqs:SendMessage on [DeliveryQueue Arn]", "sqs:SendMessage on [ScheduleDLQ Arn]"}
	}
	if !slices.Equal(granted, want) {
		t.Errorf("the relay's SQS rights = %q, want %q", granted, want)
	}
	if transformed && on {
		// The mapping waits for the role, and the role holds the poller's rights itself (no
		// separate policy resource the mapping could be made before).
		if got := fmt.Sprint(dig(resources, "DeliveryQueueMapping", "DependsOn")); got != "RelayFunctionRole" {
			t.Errorf("DeliveryQueueMapping DependsOn %s, want RelayFunctionRole", got)
		}
		for name := range resources {
			if typeOf(name) == "AWS::IAM::Policy" || typeOf(name) == "AWS::IAM::ManagedPolicy" {
				t.Errorf("%s is a %s of its own: a right in it could come after the mapping", name, typeOf(name))
			}
		}
	}

	// The dashboard: its body is JSON whichever parts are left out, and lists the queue's
	// alarms and widget only with the queue.
	body := dashboardJSON(t, dig(resources, "Dashboard", "Properties", "DashboardBody"))
	var parsed map[string]any
	if err := json.Unmarshal([]byte(body), &parsed); err != nil {
		t.Errorf("the dashboard's body is not JSON: %v\n%s", err, body)
	}
	for _, part := range []string{"DeliveryDLQAlarm.Arn", "DeliveryQueueAgeAlarm.Arn", "DeliveryQueue.QueueName", "DeliveryDLQ.QueueName"} {
		if got := strings.Contains(body, part); got != on {
			t.Errorf("the dashboard names %s: %v, want %v", part, got, on)
		}
	}

	checkNothingNamesWhatIsGone(t, stack, transformed)
}

// dig follows keys through maps; nil where one is missing.
func dig(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// dashboardJSON renders the dashboard body's Fn::Sub: its own variables substituted
// (each itself a string or a Fn::Sub), every other ${…} kept as its name.
func dashboardJSON(t *testing.T, body any) string {
	t.Helper()
	args, ok := dig(body, "Fn::Sub").([]any)
	if !ok || len(args) != 2 {
		t.Fatalf("the dashboard body is %v, want Fn::Sub [body, variables]", body)
	}
	text := args[0].(string)
	for name, v := range args[1].(map[string]any) {
		if sub, ok := dig(v, "Fn::Sub").(string); ok {
			v = sub
		}
		text = strings.ReplaceAll(text, "${"+name+"}", fmt.Sprint(v))
	}
	return regexp.MustCompile(`\$\{([^}]+)\}`).ReplaceAllString(text, "$1")
}

// checkNothingNamesWhatIsGone: every Ref, GetAtt, ${…} of a Sub and DependsOn in what
// is deployed names a parameter, a pseudo parameter or a resource that is deployed
// (CloudFormation refuses the stack otherwise).
func checkNothingNamesWhatIsGone(t *testing.T, stack map[string]any, transformed bool) {
	t.Helper()
	resources := stack["Resources"].(map[string]any)
	params := stack["Parameters"].(map[string]any)
	exists := func(name string, vars map[string]any) bool {
		if _, ok := resources[name]; ok || strings.HasPrefix(name, "AWS::") {
			return true
		}
		if _, ok := params[name]; ok {
			return true
		}
		if _, ok := vars[name]; ok {
			return true
		}
		// As written, SAM makes <Function>Role for each function.
		fn, isRole := strings.CutSuffix(name, "Role")
		return !transformed && isRole && dig(resources, fn, "Type") == "AWS::Serverless::Function"
	}
	subVar := regexp.MustCompile(`\$\{([^}!]+)\}`)
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case []any:
			for _, c := range v {
				walk(where, c)
			}
		case map[string]any:
			if ref, ok := v["Ref"].(string); ok && len(v) == 1 && !exists(ref, nil) {
				t.Errorf("%s: Ref %s names nothing deployed", where, ref)
			}
			if att, ok := v["Fn::GetAtt"].([]any); ok && !exists(fmt.Sprint(att[0]), nil) {
				t.Errorf("%s: GetAtt %v names nothing deployed", where, att)
			}
			if sub, ok := v["Fn::Sub"]; ok {
				text, vars := sub, map[string]any(nil)
				if list, ok := sub.([]any); ok {
					text, vars = list[0], list[1].(map[string]any)
				}
				for _, m := range subVar.FindAllStringSubmatch(fmt.Sprint(text), -1) {
					if res, _, _ := strings.Cut(m[1], "."); !exists(res, vars) {
						t.Errorf("%s: Sub uses ${%s}, which names nothing deployed", where, m[1])
					}
				}
			}
			for k, c := range v {
				walk(where, c)
				if k == "DependsOn" {
					deps, ok := c.([]any)
					if !ok {
						deps = []any{c}
					}
					for _, d := range deps {
						if !exists(fmt.Sprint(d), nil) {
							t.Errorf("%s: DependsOn %v names nothing deployed", where, d)
						}
					}
				}
			}
		}
	}
	for _, section := range []string{"Resources", "Outputs"} {
		for name, v := range stack[section].(map[string]any) {
			walk(section+"."+name, v)
		}
	}
}
