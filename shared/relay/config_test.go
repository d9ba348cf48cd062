package relay_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/allowlist"
	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/relay"
)

// env is a map-backed getenv.
type env map[string]string

func (e env) get(name string) string { return e[name] }

// with returns a copy of e with name set to value, or removed when value is unset.
func (e env) with(name, value string) env {
	out := make(env, len(e)+1)
	for k, v := range e {
		out[k] = v
	}
	if value == unset {
		delete(out, name)
	} else {
		out[name] = value
	}
	return out
}

const unset = "\x00"

func relayEnv() env {
	return env{
		"PORT_SECRET_ID":        "port/client-secret",
		"AZURE_DEVOPS_ORG":      "contoso",
		"AZURE_DEVOPS_WEBHOOK":  "port-deploy",
		"AZURE_DEVOPS_WEBHOOKS": "",
	}
}

func TestLoadRelay(t *testing.T) {
	defaults := relay.Config{
		SecretID:      "port/client-secret",
		Org:           "contoso",
		Webhook:       "port-deploy",
		Webhooks:      []string{"port-deploy"},
		AzureURL:      "https://dev.azure.com",
		Header:        "x-port-signature",
		Tolerance:     5 * time.Minute,
		SecretTTL:     5 * time.Minute,
		PortAPIURL:    "https://api.port.io",
		Namespace:     "PortAzureRelay",
		LedgerTTL:     24 * time.Hour,
		AuthorityHost: "https://login.microsoftonline.com",
		MaxAge:        time.Hour,
	}
	tests := []struct {
		name   string
		set    string // the variable the row changes
		value  string // its value, or unset
		change func(*relay.Config)
	}{
		{name: "the minimal environment takes the defaults"},
		{name: "the secret id is trimmed", set: "PORT_SECRET_ID", value: "  arn:aws:secretsmanager:eu-west-1:1:secret:port  ",
			change: func(c *relay.Config) { c.SecretID = "arn:aws:secretsmanager:eu-west-1:1:secret:port" }},
		{name: "an org with digits and hyphens is kept", set: "AZURE_DEVOPS_ORG", value: "Contoso-2",
			change: func(c *relay.Config) { c.Org = "Contoso-2" }},
		{name: "extra webhooks follow the default", set: "AZURE_DEVOPS_WEBHOOKS", value: "nightly, release_2 ,",
			change: func(c *relay.Config) { c.Webhooks = []string{"port-deploy", "nightly", "release_2"} }},
		{name: "the default webhook listed again is kept once", set: "AZURE_DEVOPS_WEBHOOKS", value: "port-deploy,nightly,port-deploy",
			change: func(c *relay.Config) { c.Webhooks = []string{"port-deploy", "nightly"} }},
		{name: "an Azure URL is kept", set: "AZURE_DEVOPS_URL", value: "http://127.0.0.1:9000",
			change: func(c *relay.Config) { c.AzureURL = "http://127.0.0.1:9000" }},
		{name: "an Azure URL loses its trailing slashes", set: "AZURE_DEVOPS_URL", value: "https://azdo.example.com/tfs//",
			change: func(c *relay.Config) { c.AzureURL = "https://azdo.example.com/tfs" }},
		{name: "a Port API URL loses its trailing slash", set: "PORT_API_URL", value: "https://api.us.port.io/",
			change: func(c *relay.Config) { c.PortAPIURL = "https://api.us.port.io" }},
		{name: "a signature header is lower-cased", set: "AZURE_SIGNATURE_HEADER", value: "X-Hub-Signature",
			change: func(c *relay.Config) { c.Header = "x-hub-signature" }},
		{name: "a tolerance is read as a Go duration", set: "PORT_SIGNATURE_TOLERANCE", value: "90s",
			change: func(c *relay.Config) { c.Tolerance = 90 * time.Second }},
		{name: "a tolerance of one second is the lowest", set: "PORT_SIGNATURE_TOLERANCE", value: "1s",
			change: func(c *relay.Config) { c.Tolerance = time.Second }},
		{name: "a tolerance of a day is the highest", set: "PORT_SIGNATURE_TOLERANCE", value: "24h",
			change: func(c *relay.Config) { c.Tolerance = 24 * time.Hour }},
		{name: "a secret cache TTL is read", set: "SECRET_CACHE_TTL", value: "1m",
			change: func(c *relay.Config) { c.SecretTTL = time.Minute }},
		{name: "a metrics namespace is read and trimmed", set: "METRICS_NAMESPACE", value: " Ops/port-relay ",
			change: func(c *relay.Config) { c.Namespace = "Ops/port-relay" }},
		{name: "a source allow-list is read", set: "ALLOWED_SOURCE_IPS", value: "port-eu, 192.0.2.0/24",
			change: func(c *relay.Config) { c.Sources = mustList("port-eu,192.0.2.0/24") }},
		{name: "a blank source allow-list allows everyone", set: "ALLOWED_SOURCE_IPS", value: " "},
		{name: "pipelines by id are read", set: "AZURE_DEVOPS_PIPELINES", value: " deploy = Payments Team/42@refs/heads/main , nightly=Ops/7",
			change: func(c *relay.Config) {
				c.Pipelines = []azdo.Pipeline{{Name: "deploy", Project: "Payments Team", ID: 42, Branch: "refs/heads/main"}, {Name: "nightly", Project: "Ops", ID: 7}}
			}},
		{name: "an authority host is read", set: "AZURE_AUTHORITY_HOST", value: "https://login.microsoftonline.us/",
			change: func(c *relay.Config) { c.AuthorityHost = "https://login.microsoftonline.us" }},
		{name: "a ledger table is read and trimmed", set: "LEDGER_TABLE", value: " relay-Ledger_1.x ",
			change: func(c *relay.Config) { c.LedgerTable = "relay-Ledger_1.x" }},
		{name: "a ledger TTL of an hour is the lowest", set: "LEDGER_TTL", value: "1h",
			change: func(c *relay.Config) { c.LedgerTTL = time.Hour }},
		{name: "a ledger TTL of a week is the highest", set: "LEDGER_TTL", value: "168h",
			change: func(c *relay.Config) { c.LedgerTTL = 7 * 24 * time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := relayEnv()
			if tt.set != "" {
				e = e.with(tt.set, tt.value)
			}
			want := defaults
			want.Webhooks = append([]string(nil), defaults.Webhooks...)
			if tt.change != nil {
				tt.change(&want)
			}
			got, err := relay.LoadConfig(e.get)
			if err != nil {
				t.Fatalf("LoadRelay(%s=%q) = %v, want nil", tt.set, tt.value, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LoadRelay(%s=%q) = %+v, want %+v", tt.set, tt.value, got, want)
			}
		})
	}
}

func TestLoadRelayRefuses(t *testing.T) {
	tests := []struct {
		name  string
		set   string
		value string
	}{
		{name: "a missing secret id is refused", set: "PORT_SECRET_ID", value: unset},
		{name: "a blank secret id is refused", set: "PORT_SECRET_ID", value: "  "},
		{name: "a missing org is refused", set: "AZURE_DEVOPS_ORG", value: unset},
		{name: "an empty org is refused", set: "AZURE_DEVOPS_ORG", value: ""},
		{name: "an org with a space is refused", set: "AZURE_DEVOPS_ORG", value: "my org"},
		{name: "an org with a slash is refused", set: "AZURE_DEVOPS_ORG", value: "contoso/_apis"},
		{name: "an org starting with a hyphen is refused", set: "AZURE_DEVOPS_ORG", value: "-contoso"},
		{name: "an org longer than 50 characters is refused", set: "AZURE_DEVOPS_ORG", value: "a234567890123456789012345678901234567890123456789012"},
		{name: "a missing webhook is refused", set: "AZURE_DEVOPS_WEBHOOK", value: unset},
		{name: "a webhook name with a dot is refused", set: "AZURE_DEVOPS_WEBHOOK", value: "port.deploy"},
		{name: "a webhook name with a slash is refused", set: "AZURE_DEVOPS_WEBHOOK", value: "port/deploy"},
		{name: "a webhook list with an invalid name is refused", set: "AZURE_DEVOPS_WEBHOOKS", value: "nightly,rel ease"},
		{name: "a webhook list with a path is refused", set: "AZURE_DEVOPS_WEBHOOKS", value: "../admin"},
		{name: "an Azure URL without a scheme is refused", set: "AZURE_DEVOPS_URL", value: "dev.azure.com"},
		{name: "an Azure URL with ftp is refused", set: "AZURE_DEVOPS_URL", value: "ftp://dev.azure.com"},
		{name: "an Azure URL with a query is refused", set: "AZURE_DEVOPS_URL", value: "https://dev.azure.com/?a=1"},
		{name: "an Azure URL with an empty query is refused", set: "AZURE_DEVOPS_URL", value: "https://dev.azure.com?"},
		{name: "an Azure URL with a fragment is refused", set: "AZURE_DEVOPS_URL", value: "https://dev.azure.com/#x"},
		{name: "an Azure URL with an empty fragment is refused", set: "AZURE_DEVOPS_URL", value: "https://dev.azure.com#"},
		{name: "an Azure URL with credentials is refused", set: "AZURE_DEVOPS_URL", value: "https://user:pat@dev.azure.com"},
		{name: "an Azure URL without a host is refused", set: "AZURE_DEVOPS_URL", value: "https:///path"},
		{name: "a Port API URL without a scheme is refused", set: "PORT_API_URL", value: "api.port.io"},
		{name: "a Port API URL with a query is refused", set: "PORT_API_URL", value: "https://api.port.io?x=1"},
		{name: "a signature header with a space is refused", set: "AZURE_SIGNATURE_HEADER", value: "x port signature"},
		{name: "a signature header with a colon is refused", set: "AZURE_SIGNATURE_HEADER", value: "x-port-signature:"},
		{name: "a tolerance that is not a duration is refused", set: "PORT_SIGNATURE_TOLERANCE", value: "5"},
		{name: "a tolerance of zero is refused", set: "PORT_SIGNATURE_TOLERANCE", value: "0s"},
		{name: "a tolerance under a second is refused", set: "PORT_SIGNATURE_TOLERANCE", value: "500ms"},
		{name: "a negative tolerance is refused", set: "PORT_SIGNATURE_TOLERANCE", value: "-5m"},
		{name: "a tolerance over a day is refused", set: "PORT_SIGNATURE_TOLERANCE", value: "25h"},
		{name: "a secret cache TTL that is not a duration is refused", set: "SECRET_CACHE_TTL", value: "five minutes"},
		{name: "a metrics namespace with a space is refused", set: "METRICS_NAMESPACE", value: "Port Relay"},
		{name: "a metrics namespace in AWS/ is refused", set: "METRICS_NAMESPACE", value: "AWS/Lambda"},
		{name: "a source list with an unknown shorthand is refused", set: "ALLOWED_SOURCE_IPS", value: "port-asia"},
		{name: "a source list with a bad block is refused", set: "ALLOWED_SOURCE_IPS", value: "192.0.2.0/33"},
		{name: "a source list of commas alone is refused", set: "ALLOWED_SOURCE_IPS", value: " , "},
		{name: "a source list with a zone is refused", set: "ALLOWED_SOURCE_IPS", value: "fe80::1%eth0"},
		{name: "a pipeline without an id is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=Payments"},
		{name: "a pipeline with id zero is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=Payments/0"},
		{name: "a pipeline id with a leading zero is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=Payments/042"},
		{name: "a pipeline id of a billion is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=Payments/1000000000"},
		{name: "a pipeline name with a dot is refused", set: "AZURE_DEVOPS_PIPELINES", value: "de.ploy=Payments/1"},
		{name: "a project with a colon is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=Pay:ments/1"},
		{name: "a project of 65 characters is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=" + strings.Repeat("p", 65) + "/1"},
		{name: "a branch that is not a full ref is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=Payments/1@main"},
		{name: "an empty branch is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=Payments/1@"},
		{name: "a pipeline name twice is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=A/1,deploy=B/2"},
		{name: "an empty entry is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=A/1,,b=B/2"},
		{name: "a trailing comma is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=A/1,"},
		{name: "a project that is a path step is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=../3"},
		{name: "a project starting with _ is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=_Payments/3"},
		{name: "a project ending with a period is refused", set: "AZURE_DEVOPS_PIPELINES", value: "deploy=Payments./3"},
		{name: "a project with a backslash is refused", set: "AZURE_DEVOPS_PIPELINES", value: `deploy=Pay\ments/3`},
		{name: "an authority host with a query is refused", set: "AZURE_AUTHORITY_HOST", value: "https://login.microsoftonline.com?x"},
		{name: "a ledger table name of two characters is refused", set: "LEDGER_TABLE", value: "ab"},
		{name: "a ledger table ARN is refused", set: "LEDGER_TABLE", value: "arn:aws:dynamodb:eu-west-1:1:table/ledger"},
		{name: "a ledger TTL under an hour is refused", set: "LEDGER_TTL", value: "59m"},
		{name: "a ledger TTL over a week is refused", set: "LEDGER_TTL", value: "169h"},
		{name: "a ledger TTL that is not a duration is refused", set: "LEDGER_TTL", value: "1 day"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := relay.LoadConfig(relayEnv().with(tt.set, tt.value).get)
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("LoadRelay(%s=%q) = %v, want a *config.Error", tt.set, tt.value, err)
			}
			if cerr.Var != tt.set {
				t.Errorf("LoadRelay(%s=%q) names %s, want %s", tt.set, tt.value, cerr.Var, tt.set)
			}
			if cerr.Error() == "" || cerr.Reason == "" {
				t.Errorf("LoadRelay(%s=%q) = %q, want a reason", tt.set, tt.value, cerr.Error())
			}
		})
	}
}

// TestPipelinesAloneNeedNoWebhook: with pipelines by id, the default webhook may be
// left out; the first pipeline is then the default target. With neither, start-up fails.
func TestPipelinesAloneNeedNoWebhook(t *testing.T) {
	env := relayEnv().with("AZURE_DEVOPS_WEBHOOK", "").with("AZURE_DEVOPS_PIPELINES", "deploy=Payments/42")
	c, err := relay.LoadConfig(env.get)
	if err != nil || c.Webhook != "" || len(c.Webhooks) != 0 || len(c.Pipelines) != 1 || c.Pipelines[0].ID != 42 {
		t.Errorf("LoadRelay = %+v, %v; want no webhook and one pipeline", c, err)
	}
	_, err = relay.LoadConfig(relayEnv().with("AZURE_DEVOPS_WEBHOOK", "").get)
	var cerr *config.Error
	if !errors.As(err, &cerr) || cerr.Var != "AZURE_DEVOPS_WEBHOOK" {
		t.Errorf("LoadRelay with neither = %v, want AZURE_DEVOPS_WEBHOOK named", err)
	}
}

func TestPipelineEntriesReadAsWritten(t *testing.T) {
	got, err := azdo.ParsePipelines(" deploy = Payments Team / 42 @ refs/heads/main , b=Q.R_S/7")
	want := []azdo.Pipeline{{Name: "deploy", Project: "Payments Team", ID: 42, Branch: "refs/heads/main"}, {Name: "b", Project: "Q.R_S", ID: 7}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Pipelines = %+v, %v; want %+v", got, err, want)
	}
	for value, reason := range map[string]string{
		"deploy=A/1,":       "empty entry",
		"deploy=A/x":        "pipeline id",
		"deploy=../1":       "project name",
		"d=A/1,e=B/2,d=C/3": `names "d" twice`,
	} {
		if _, err := azdo.ParsePipelines(value); err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("Pipelines(%q) = %v, want an error about the %s", value, err, reason)
		}
	}
}

func mustList(s string) allowlist.List {
	l, err := allowlist.Parse(s)
	if err != nil {
		panic(err)
	}
	return l
}

// The delivery queue needs its dead-letter queue and the ledger; its maximum age is 1m
// to 24h, as the template's QueueMaxAgeMinutes.
func TestQueueConfiguration(t *testing.T) {
	const q, dlq = "https://sqs.eu-west-1.amazonaws.com/123456789012/delivery", "https://sqs.eu-west-1.amazonaws.com/123456789012/delivery-dlq"
	base := relayEnv().with("LEDGER_TABLE", "relay-ledger")
	got, err := relay.LoadConfig(base.with("DELIVERY_QUEUE_URL", q).with("DELIVERY_DLQ_URL", dlq).with("QUEUE_MAX_AGE", "90m").get)
	if err != nil || got.QueueURL != q || got.DeadLetterURL != dlq || got.MaxAge != 90*time.Minute {
		t.Errorf("LoadConfig = %+v, %v; want the queue, its DLQ and 90m", got, err)
	}
	for _, tt := range []struct {
		name string
		e    env
		want string
	}{
		{"a queue without the ledger", relayEnv().with("DELIVERY_QUEUE_URL", q).with("DELIVERY_DLQ_URL", dlq), "DELIVERY_QUEUE_URL"},
		{"a queue without its dead-letter queue", base.with("DELIVERY_QUEUE_URL", q), "DELIVERY_DLQ_URL"},
		{"a queue URL that is not one", base.with("DELIVERY_QUEUE_URL", "sqs:delivery").with("DELIVERY_DLQ_URL", dlq), "DELIVERY_QUEUE_URL"},
		{"a maximum age under a minute", base.with("QUEUE_MAX_AGE", "30s"), "QUEUE_MAX_AGE"},
		{"a maximum age over a day", base.with("QUEUE_MAX_AGE", "25h"), "QUEUE_MAX_AGE"},
		{"no maximum age", base.with("QUEUE_MAX_AGE", "0m"), "QUEUE_MAX_AGE"},
	} {
		_, err := relay.LoadConfig(tt.e.get)
		var cerr *config.Error
		if !errors.As(err, &cerr) || cerr.Var != tt.want {
			t.Errorf("%s: %v, want an error naming %s", tt.name, err, tt.want)
		}
	}
}
