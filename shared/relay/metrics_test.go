package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/port-azure-relay/relay/shared/answer"
	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/secret"
)

// The classes docs/operations.md lists: the dashboard and the alarms show them.
var (
	refusalClasses = []string{"signature", "replay", "payload", "event", "route", "size", "method", "source", "inprogress"}
	failureClasses = []string{"notfound", "signature", "throttled", "unavailable", "tls", "server", "refused", "timeout", "connection", "secret", "ledger", "credentials", "entra", "federation", "expired", "queue", "internal"}
)

func TestEveryRuleHasADocumentedClass(t *testing.T) {
	all := map[error]answer.Answer{nil: answers.Otherwise}
	maps.Copy(all, answers.Rows)
	for err, r := range all {
		classes := failureClasses
		if r.Status < 500 {
			classes = refusalClasses
		}
		if !contains(classes, r.Class) {
			t.Errorf("answer to %v (status %d): class %q, want one of %q", err, r.Status, r.Class, classes)
		}
	}
}

func TestTheLogLineCarriesTheMetrics(t *testing.T) {
	cases := []struct {
		name    string
		event   []byte
		azure   error
		secrets error
		metric  string // Forwarded, Refused or Failed
		key     string // Reason or Cause
		class   string
		azure1  bool // AzureLatency and Attempts 1
	}{
		{"a delivery is Forwarded with Azure's latency", httpEvent("POST", "/", goodBody, key, now), nil, nil, metrics.Forwarded, "", "", true},
		{"a wrong signature is Refused for its signature", httpEvent("POST", "/", goodBody, "guess", now), nil, nil, metrics.Refused, metrics.Reason, "signature", false},
		{"GET is Refused for its method", httpEvent("GET", "/", goodBody, key, now), nil, nil, metrics.Refused, metrics.Reason, "method", false},
		{"an unknown path is Refused for its route", httpEvent("POST", "/webhooks/other", goodBody, key, now), nil, nil, metrics.Refused, metrics.Reason, "route", false},
		{"a reserved key is Refused for its payload", httpEvent("POST", "/", `{"run":1}`, key, now), nil, nil, metrics.Refused, metrics.Reason, "payload", false},
		{"a direct invoke with a reserved key is Refused for its payload", []byte(`{"tags":"x"}`), nil, nil, metrics.Refused, metrics.Reason, "payload", false},
		{"an unreadable secret is Failed for the secret", httpEvent("POST", "/", goodBody, key, now), nil, fmt.Errorf("%w: throttled", secret.ErrUnavailable), metrics.Failed, metrics.Cause, "secret", false},
		{"Azure's 404 is Failed as notfound, with the latency", httpEvent("POST", "/", goodBody, key, now), azdo.ErrWebhookNotFound, nil, metrics.Failed, metrics.Cause, "notfound", true},
		{"an Azure timeout is Failed as timeout", httpEvent("POST", "/", goodBody, key, now), azdo.ErrNoAnswer, nil, metrics.Failed, metrics.Cause, "timeout", true},
		{"a scheduled event Azure fails is Failed as server", []byte(`{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}`), azdo.ErrServerError, nil, metrics.Failed, metrics.Cause, "server", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(c.azure)
			f.secrets.err = c.secrets
			f.relay.Metrics = metrics.New("PortAzureRelay", metrics.FunctionRelay)
			f.relay.Handle(context.Background(), "req-m", c.event)
			lines := strings.Split(strings.TrimSpace(f.logs.String()), "\n")
			var line map[string]any
			for _, l := range lines {
				if strings.Contains(l, `"requestId":"req-m"`) {
					if err := json.Unmarshal([]byte(l), &line); err != nil {
						t.Fatal(err)
					}
				}
			}
			if line["_aws"] == nil || line["Function"] != "relay" || line[c.metric] != 1.0 {
				t.Fatalf("log line %v: want _aws, Function relay and %s 1", line, c.metric)
			}
			for _, other := range []string{metrics.Forwarded, metrics.Refused, metrics.Failed} {
				if other != c.metric && line[other] != nil {
					t.Errorf("log line has %s as well as %s", other, c.metric)
				}
			}
			if c.key != "" && line[c.key] != c.class {
				t.Errorf("log line %s = %v, want %s", c.key, line[c.key], c.class)
			}
			latency, _ := line[metrics.AzureLatency].(float64)
			if c.azure1 != (line[metrics.Attempts] == 1.0) || c.azure1 != (line[metrics.AzureLatency] != nil) || latency < 0 {
				t.Errorf("log line Attempts %v AzureLatency %v, want them present: %v", line[metrics.Attempts], line[metrics.AzureLatency], c.azure1)
			}
		})
	}
}

func TestWithoutAnEmitterTheLineHasNoMetrics(t *testing.T) {
	f := newFixture(nil)
	f.relay.Handle(context.Background(), "req-n", httpEvent("POST", "/", goodBody, key, now))
	if strings.Contains(f.logs.String(), "_aws") {
		t.Errorf("log %s has EMF members without an Emitter", f.logs)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
