package e2e

import (
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdotest"
	"github.com/port-azure-relay/relay/shared/lambdalocal"
	"github.com/port-azure-relay/relay/shared/porttest"
	"github.com/port-azure-relay/relay/shared/smtest"
)

const portClientID = "e2e-client-id"

// TestReportToPort runs the built relay under the emulator with a secret that holds
// clientId and clientSecret, against an independent double of Port's API: it must
// see one token request, the log on success, one FAILURE update for each kind of
// delivery failure, and nothing at all for invocations whose signature fails or
// that have no Port run.
func TestReportToPort(t *testing.T) {
	sm := smtest.New()
	t.Cleanup(sm.Close)
	sm.Put(secretName, `{"clientId":"`+portClientID+`","clientSecret":"`+portSecret+`"}`)
	port := porttest.New(portClientID, portSecret)
	t.Cleanup(port.Close)
	az := newAzure(t, false)
	relay := start(t, relayBin, 5*time.Second, relayEnv(sm, az.URL, "PORT_API_URL="+port.URL))

	cases := []struct {
		name   string
		path   string
		body   func(runID string) []byte
		script []azdotest.Step
		status int
		label  string // the FAILURE's statusLabel; "" for the success log
	}{
		{"Azure accepts: a log line, the run left to the pipeline", "/", portBody, nil, 200, ""},
		{"Azure cannot find the webhook", "/webhooks/" + hookMissing, portBody, nil, 502, "Webhook not found"},
		{"Azure refuses the signature", "/webhooks/" + hookRotated, portBody, nil, 502, "Signature refused"},
		{"Azure answers 400", "/", portBody, []azdotest.Step{azdotest.Status(400)}, 502, "Azure refused"},
		{"Azure throttles past the deadline", "/", portBody, []azdotest.Step{azdotest.Status(429).RetryAfter(30)}, 502, "Throttled"},
		{"Azure fails with a bare 500", "/", portBody, []azdotest.Step{azdotest.Status(500)}, 502, "Azure failed"},
		{"Azure does not answer in time", "/", portBody, []azdotest.Step{azdotest.Hang()}, 504, "Timed out"},
		{"Azure drops the connection", "/", portBody, []azdotest.Step{azdotest.Drop()}, 502, "Azure unreachable"},
		{"the payload has a reserved key", "/", func(runID string) []byte {
			return []byte(`{"run":"nightly","port_context":{"runId":"` + runID + `"}}`)
		}, nil, 422, "Payload rejected"},
		{"the path names a webhook not allowed", "/webhooks/not_allowed", portBody, nil, 404, "Unknown webhook"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			az.Reset()
			az.Script(c.script...)
			runID := "r_report_" + rand.Text()[:10]
			port.CreateRuns(runID)
			r := invoke(t, relay, signedEvent(i, c.path, c.body(runID)))
			if r.status != c.status {
				t.Fatalf("status %d %v, want %d", r.status, r.body, c.status)
			}
			logs, updates := port.Logs(runID), port.Updates(runID)
			if c.label == "" {
				if len(logs) != 1 || !strings.Contains(logs[0].Message, "accepted webhook "+hookDeploy) || len(updates) != 0 {
					t.Fatalf("Port saw logs %+v and updates %+v, want one 'accepted' log and no update", logs, updates)
				}
				return
			}
			if len(updates) != 1 || updates[0].Status != "FAILURE" || updates[0].StatusLabel != c.label || len(updates[0].Summary) < 20 {
				t.Fatalf("Port saw updates %+v, want one FAILURE labelled %q with a summary", updates, c.label)
			}
			if strings.Contains(updates[0].Summary, marker) || len(logs) != 0 {
				t.Errorf("the summary repeats the payload, or a log was added: %+v %+v", updates, logs)
			}
		})
	}

	// Nothing for what Port did not sign, nor for AWS events, which have no run.
	before := port.Requests()
	for _, ev := range [][]byte{
		lambdalocal.HTTPAPIEvent("POST", "/", portHeaders("a guessed secret", time.Now().Unix(), portBody("r_forged")), portBody("r_forged")),
		lambdalocal.HTTPAPIEvent("POST", "/", http.Header{"Content-Type": {"application/json"}}, portBody("r_unsigned")),
		lambdalocal.ScheduledEvent("nightly"),
	} {
		invoke(t, relay, ev)
	}
	if got := port.Requests() - before; got != 0 {
		t.Errorf("Port's API got %d requests for unsigned, forged and scheduled invocations, want none", got)
	}
	if n := port.TokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1: the token is cached below its 3-hour life", n)
	}
	reportCases.Add(int64(len(cases) + 1))
}
