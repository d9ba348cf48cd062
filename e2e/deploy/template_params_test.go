package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/relay"
)

// validRelayEnv is a configuration relay.LoadConfig accepts; each check changes one variable.
var validRelayEnv = map[string]string{
	"PORT_SECRET_ID":       "arn:aws:secretsmanager:eu-west-1:123456789012:secret:port/azure-relay-AbCdEf",
	"AZURE_DEVOPS_ORG":     "contoso",
	"AZURE_DEVOPS_WEBHOOK": "port_trigger",
}

func relayAcceptsAll(vars map[string]string) error {
	env := map[string]string{}
	for k, v := range validRelayEnv {
		env[k] = v
	}
	for k, v := range vars {
		env[k] = v
	}
	_, err := relay.LoadConfig(func(k string) string { return env[k] })
	return err
}

func relayAccepts(name, value string) error {
	env := map[string]string{}
	for k, v := range validRelayEnv {
		env[k] = v
	}
	env[name] = value
	_, err := relay.LoadConfig(func(k string) string { return env[k] })
	return err
}

var leadingLookahead = regexp.MustCompile(`^\^\(\?!([A-Za-z0-9/_-]+)\)`)

// paramRules returns a check applying each parameter's AllowedPattern (which
// CloudFormation matches against the whole value) and MaxLength.
func paramRules(t *testing.T) func(param, value string) bool {
	t.Helper()
	tpl := loadTemplate(t)
	type rule struct {
		re        *regexp.Regexp
		maxLen    int
		notPrefix string
	}
	rules := map[string]rule{}
	for _, name := range keys(get(tpl, "Parameters")) {
		p := get(tpl, "Parameters", name)
		r := rule{maxLen: -1}
		if ml := get(p, "MaxLength"); ml != nil {
			r.maxLen, _ = strconv.Atoi(ml.Value)
		}
		if pattern := get(p, "AllowedPattern"); pattern != nil {
			// CloudFormation's regexes are Java's; Go's have no lookahead. A leading
			// literal (?!X) is applied as "does not start with X".
			expr := pattern.Value
			if m := leadingLookahead.FindStringSubmatch(expr); m != nil {
				expr = "^" + strings.TrimPrefix(expr, m[0])
				r.notPrefix = m[1]
			}
			re, err := regexp.Compile(`^(?:` + expr + `)$`)
			if err != nil {
				t.Fatalf("parameter %s AllowedPattern: %v", name, err)
			}
			r.re = re
		}
		rules[name] = r
	}
	return func(param, value string) bool {
		r, ok := rules[param]
		if !ok {
			t.Fatalf("parameter %s is missing", param)
		}
		return (r.maxLen < 0 || len(value) <= r.maxLen) && (r.re == nil || r.re.MatchString(value)) &&
			(r.notPrefix == "" || !strings.HasPrefix(value, r.notPrefix))
	}
}

// TestParameterPatternsAgreeWithConfig: a value the template accepts must start the
// relay. Otherwise the deploy succeeds and every invocation fails. (The template may
// be stricter than the code: that refuses at deploy time what would work.)
func TestParameterPatternsAgreeWithConfig(t *testing.T) {
	samples := map[string][]string{
		"AzureDevOpsOrg":     {"contoso", "my-org-1", "-org", "org_x", "a", strings.Repeat("a", 50), strings.Repeat("a", 51), "org/x", ""},
		"AzureDevOpsWebhook": {"port_trigger", "port-trigger", "a.b", "with space", strings.Repeat("w", 256), strings.Repeat("w", 257), ""},
		"AzureDevOpsWebhooks": {"", "a,b", " a , b ", "a,,b", "a,b.c", "a," + strings.Repeat("w", 257),
			strings.Repeat("w", 256)},
		"AzureDevOpsUrl": {"https://dev.azure.com", "http://127.0.0.1:8080", "https://dev.azure.com/", "https://h/base/path",
			"https://[::1]:443", "https://dev.azure.com?x=1", "https://dev.azure.com/#f", "https://u:p@dev.azure.com",
			"https://dev.azure.com/a%zz", "https://dev.azure.com/a%20b", "ftp://dev.azure.com", "https://", "dev.azure.com",
			"https://dev azure.com", "https://dev.azure.com/\x01"},
		"PortApiUrl":             {"https://api.port.io", "https://api.us.port.io/", "https://api.port.io?x", "https://a@b", "http://api.port.io", "https://api.port.io/%zz"},
		"AzureSignatureHeader":   {"x-port-signature", "X-Hub-Signature", "x_sig", "bad header", "a:b", "", "-x"},
		"MetricsNamespace":       {"PortAzureRelay", "PortAzureRelay/roundtrip", "AWS/Lambda", "a b", "", strings.Repeat("n", 256)},
		"PortSignatureTolerance": {"5m", "1s", "24h", "0s", "48h", "1h30m", "0.5s", "86401s", "1441m", "25h", "5", "5 m", "1e3s"},
		"AllowedSourceIps":       {"", "port-eu", "port-eu,port-us", "192.0.2.0/24", "10.0.0.1/8", "2001:db8::/32", "1:::2", ":1:2", "port-asia", ","},
		"LedgerTtl":              {"24h", "1h", "168h", "0h", "169h", "90m", "1d", "24", ""},
		"AzureDevOpsPipelines": {"", "deploy=Payments/42", "deploy=Payments Team/42@refs/heads/main", " a = P / 1 , b=Q/2@refs/heads/release/1.0 ",
			"deploy=Payments", "deploy=Payments/0", "deploy=Payments/042", "deploy=Payments/1000000000", "de.ploy=P/1", "d=Pa:y/1",
			"d=" + strings.Repeat("p", 64) + "/1", "d=" + strings.Repeat("p", 65) + "/1", "d=P/1@main", "d=P/1@", "d=P/1,,e=Q/2",
			"d=Projé/1", "d=P/1@refs/heads/a b", `d=Pa\y/1`, "d=P\tQ/1", "d=P\x7fQ/1", "d=../3", "d=./3", "d=_P/1", "d=.P/1",
			"d=P./1", "d=P. /1", "d=P /1", "d=P.Q/1", "d=P_Q/1"},
		"AzureAuthorityHost": {"https://login.microsoftonline.com", "https://login.microsoftonline.us", "http://login.microsoftonline.com",
			"https://login.microsoftonline.com/", "https://login.microsoftonline.com/x", "https://login.microsoftonline.com?x", ""},
	}
	vars := map[string]string{
		"AzureDevOpsOrg": "AZURE_DEVOPS_ORG", "AzureDevOpsWebhook": "AZURE_DEVOPS_WEBHOOK", "AzureDevOpsWebhooks": "AZURE_DEVOPS_WEBHOOKS",
		"AzureDevOpsUrl": "AZURE_DEVOPS_URL", "PortApiUrl": "PORT_API_URL", "AzureSignatureHeader": "AZURE_SIGNATURE_HEADER",
		"PortSignatureTolerance": "PORT_SIGNATURE_TOLERANCE", "MetricsNamespace": "METRICS_NAMESPACE", "AllowedSourceIps": "ALLOWED_SOURCE_IPS",
		"LedgerTtl": "LEDGER_TTL", "AzureDevOpsPipelines": "AZURE_DEVOPS_PIPELINES", "AzureAuthorityHost": "AZURE_AUTHORITY_HOST",
	}
	// Every whole number of each unit around the bounds, as the regex spells them out digit by digit.
	for _, unit := range []struct {
		suffix string
		max    int
	}{{"s", 86400}, {"m", 1440}, {"h", 24}} {
		for n := 0; n <= unit.max+200; n++ {
			samples["PortSignatureTolerance"] = append(samples["PortSignatureTolerance"], strconv.Itoa(n)+unit.suffix)
		}
	}
	paramAccepts := paramRules(t)
	for param, values := range samples {
		accepted := 0
		for _, v := range values {
			tpl := paramAccepts(param, v)
			// An empty required value is refused by CloudFormation itself (no default).
			err := relayAccepts(vars[param], v)
			if param == "AzureDevOpsWebhook" && v == "" {
				// The template's Rule WebhookOrPipelines refuses it without pipelines; with them
				// the relay takes the first pipeline as its default.
				err = relayAcceptsAll(map[string]string{"AZURE_DEVOPS_WEBHOOK": "", "AZURE_DEVOPS_PIPELINES": "deploy=Payments/42"})
			}
			var cfgErr *config.Error
			if tpl && err != nil && errors.As(err, &cfgErr) && !(v == "" && cfgErr.Reason == "is required") {
				t.Errorf("%s=%q: the template accepts it, the relay refuses it at start-up: %v", param, v, err)
			}
			if tpl {
				accepted++
			}
		}
		if accepted == 0 {
			t.Errorf("%s: the template accepts none of the samples", param)
		}
	}
	// One thing no pattern can say: a pipeline name listed twice. The template lets it through,
	// and the relay refuses it at start-up with a line that names it.
	if err := relayAccepts("AZURE_DEVOPS_PIPELINES", "d=P/1,d=Q/2"); err == nil || !strings.Contains(err.Error(), `names "d" twice`) {
		t.Errorf("a pipeline name twice: %v, want the relay to name it at start-up", err)
	}
	// Exactly the whole hours config accepts for LEDGER_TTL pass the template.
	for n := 0; n <= 300; n++ {
		v := strconv.Itoa(n) + "h"
		if got, want := paramAccepts("LedgerTtl", v), relayAccepts("LEDGER_TTL", v) == nil; got != want {
			t.Errorf("LedgerTtl=%s: template accepts %v, the relay %v", v, got, want)
		}
	}
	// And exactly the whole-unit tolerances config accepts pass the template.
	for _, unit := range []string{"s", "m", "h"} {
		for n := 0; n <= 90000; n += 1 {
			v := strconv.Itoa(n) + unit
			d, _ := time.ParseDuration(v)
			want := d >= time.Second && d <= 24*time.Hour
			if got := paramAccepts("PortSignatureTolerance", v); got != want {
				t.Fatalf("PortSignatureTolerance=%s: template accepts %v, want %v", v, got, want)
			}
			if unit != "s" && n > 2000 {
				break
			}
		}
	}
}

// TestTemplateLintsAndTransforms runs cfn-lint and the AWS SAM transform (the
// aws-sam-translator library that `sam deploy` and CloudFormation use) on the
// template, where they are installed.
func TestTemplateLintsAndTransforms(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := []string{"PATH=" + pathEnv(), "HOME=" + emptyHome(t), "XDG_CONFIG_HOME=", "AWS_DEFAULT_REGION=eu-west-1"}
	t.Run("cfn-lint", func(t *testing.T) {
		bin, err := exec.LookPath("cfn-lint")
		if err != nil {
			t.Skip("cfn-lint is not installed (pip install cfn-lint): the template is not linted here")
		}
		cmd := exec.CommandContext(ctx, bin, templatePath)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("cfn-lint %s: %v\n%s", templatePath, err, out)
		}
	})
	t.Run("SAM transform", func(t *testing.T) {
		check := exec.CommandContext(ctx, "python3", "-c", "import samtranslator")
		check.Env = env
		if err := check.Run(); err != nil {
			t.Skip("python3 with aws-sam-translator is not installed (pip install aws-sam-translator): the SAM transform is not checked here")
		}
		cmd := exec.CommandContext(ctx, "python3", "testdata/sam_transform.py", templatePath)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("SAM transform: %v\n%s", err, ee.Stderr)
			}
			t.Fatal(err)
		}
		types := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			name, typ, _ := strings.Cut(line, " ")
			types[name] = typ
		}
		for name, want := range map[string]string{
			"RelayFunction": "AWS::Lambda::Function", "RelayApi": "AWS::ApiGatewayV2::Api",
			"RelayFunctionEventInvokeConfig": "AWS::Lambda::EventInvokeConfig", "RelayFunctionSchedule": "AWS::Scheduler::Schedule",
		} {
			if types[name] != want {
				t.Errorf("transformed template: %s is %q, want %s", name, types[name], want)
			}
		}
		// RelayApi's RouteSettings name "POST /azure/events": on a first deploy the stage is made
		// right after the API, so the route must come in the API's own body (SAM's events do),
		// never as a separate AWS::ApiGatewayV2::Route the stage could be made before
		// (aws/serverless-application-model#2479: "Unable to find Route by key").
		for name, typ := range types {
			if typ == "AWS::ApiGatewayV2::Route" {
				t.Errorf("transformed template: %s is a separate route: the stage's RouteSettings would fail a first deploy", name)
			}
		}
		if t.Failed() {
			fmt.Println(string(out))
		}
	})
}

// pathEnv is this process's PATH, where the linters are found; nothing else of the
// machine's environment is passed on.
func pathEnv() string { return os.Getenv("PATH") }

// emptyHome is a HOME of the test's own for the make and go commands it runs, with Go's
// telemetry off: otherwise the go command's telemetry child may still be writing under
// it when the test removes it.
func emptyHome(t *testing.T) string {
	home := t.TempDir()
	dir := filepath.Join(home, ".config", "go", "telemetry")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mode"), []byte("off"), 0o644); err != nil {
		t.Fatal(err)
	}
	return home
}

// TestCitedDocsExist: every docs/*.md that code, tests or the README cite exists.
func TestCitedDocsExist(t *testing.T) {
	cited := regexp.MustCompile(`docs/[A-Za-z0-9_-]+\.md`)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".md") || d.Name() == "Makefile") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, doc := range cited.FindAllString(string(b), -1) {
			if _, err := os.Stat(filepath.Join(root, doc)); err != nil {
				t.Errorf("%s cites %s, which does not exist", path, doc)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
