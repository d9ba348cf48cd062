package e2e

import (
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	relaycore "github.com/port-azure-relay/relay/shared/relay"
	"github.com/port-azure-relay/relay/shared/runstatus/servicehooktest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
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
	db := dynamotest.New() // the ledger, as deployed by default: a refusal it takes ends the run
	t.Cleanup(db.Close)
	db.CreateTable(ledgerTable, "id")
	relay := start(t, relayBin, 5*time.Second, relayEnv(sm, az.URL, "PORT_API_URL="+port.URL, "LEDGER_TABLE="+ledgerTable, dynamoEndpoint(db)))

	cases := []struct {
		name   string
		path   string
		body   func(runID string) []byte
		script []azdotest.Step
		status int
		label  string // the FAILURE's statusLabel; "" for the success log; "may" for a run left in progress
	}{
		{"Azure accepts: a log line, the run left to the pipeline", "/", portBody, nil, 200, ""},
		{"Azure cannot find the webhook", "/webhooks/" + hookMissing, portBody, nil, 502, "Webhook not found"},
		{"Azure refuses the signature", "/webhooks/" + hookRotated, portBody, nil, 502, "Signature refused"},
		{"Azure answers 400", "/", portBody, []azdotest.Step{azdotest.Status(400)}, 502, "Azure refused"},
		{"Azure throttles past the deadline", "/", portBody, []azdotest.Step{azdotest.Status(429).RetryAfter(30)}, 502, "Throttled"},
		{"Azure fails with a bare 500: the run may be queued, so it stays in progress", "/", portBody, []azdotest.Step{azdotest.Status(500)}, 502, "may"},
		{"Azure does not answer in time: the run stays in progress", "/", portBody, []azdotest.Step{azdotest.Hang()}, 504, "may"},
		{"Azure drops the connection: the run stays in progress", "/", portBody, []azdotest.Step{azdotest.Drop()}, 502, "may"},
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
			if c.label == "may" {
				run, _ := port.Run(runID)
				if len(logs) != 1 || !strings.Contains(logs[0].Message, "may be running") || logs[0].TerminationStatus != "" ||
					len(updates) != 1 || updates[0].Status != "" || !strings.HasPrefix(updates[0].StatusLabel, relaycore.MayHaveQueuedLabel) ||
					run.Status != "IN_PROGRESS" {
					t.Fatalf("Port saw logs %+v, updates %+v, run %+v: want one log and one label saying it may have been queued, the run in progress", logs, updates, run)
				}
				if strings.Contains(logs[0].Message, marker) {
					t.Errorf("the log repeats the payload: %+v", logs)
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
		lambdatest.HTTPAPIEvent("POST", "/", portHeaders("a guessed secret", time.Now().Unix(), portBody("r_forged")), portBody("r_forged")),
		lambdatest.HTTPAPIEvent("POST", "/", http.Header{"Content-Type": {"application/json"}}, portBody("r_unsigned")),
		lambdatest.ScheduledEvent("nightly"),
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

// TestWithoutALedgerARefusalIsToldNotEnded: with Ledger=false the relay cannot tell a
// first request from another container's replay of a run it delivered, so a refusal
// reaches the Port run as a log line and a label, and the run keeps its status.
func TestWithoutALedgerARefusalIsToldNotEnded(t *testing.T) {
	sm := smtest.New()
	t.Cleanup(sm.Close)
	sm.Put(secretName, `{"clientId":"`+portClientID+`","clientSecret":"`+portSecret+`"}`)
	port := porttest.New(portClientID, portSecret)
	t.Cleanup(port.Close)
	az := newAzure(t, false)
	relay := start(t, relayBin, 5*time.Second, relayEnv(sm, az.URL, "PORT_API_URL="+port.URL))
	runID := "r_noledger_" + rand.Text()[:10]
	port.CreateRuns(runID)
	if r := invoke(t, relay, signedEvent(0, "/webhooks/"+hookMissing, portBody(runID))); r.status != 502 {
		t.Fatalf("status %d %v, want 502", r.status, r.body)
	}
	logs, updates := port.Logs(runID), port.Updates(runID)
	run, _ := port.Run(runID)
	if len(logs) != 1 || !strings.Contains(logs[0].Message, "cannot find this webhook") || len(updates) != 1 ||
		updates[0].Status != "" || updates[0].StatusLabel != "Webhook not found" || run.Status != "IN_PROGRESS" {
		t.Errorf("Port saw logs %+v, updates %+v, run %+v: want the reason as a log line and a label, the run in progress", logs, updates, run)
	}
	reportCases.Add(1)
}

// TestAmbiguousDeliveryThenThePipelineReports: after a delivery that may have queued a
// run (here a bare 500 from Azure), the Port run stays in progress, so that when the
// pipeline did run, the status function's final result is what the user sees, not a
// FAILURE that the pipeline contradicts.
func TestAmbiguousDeliveryThenThePipelineReports(t *testing.T) {
	sw := newStatusWorld(t)
	sm := smtest.New()
	t.Cleanup(sm.Close)
	sm.Put(secretName, `{"clientId":"`+portClientID+`","clientSecret":"`+portSecret+`"}`)
	az := newAzure(t, false)
	fn := start(t, relayBin, 5*time.Second, relayEnv(sm, az.URL, "PORT_API_URL="+sw.port.URL))

	runID := "r_ambiguous" + rand.Text()[:10]
	sw.port.CreateRuns(runID)
	az.Script(azdotest.Status(500)) // Azure may have queued it: a bare 500
	if r := invoke(t, fn, signedEvent(1, "/", portBody(runID))); r.status != 502 {
		t.Fatalf("relay answered %d %v, want 502", r.status, r.body)
	}
	if run, _ := sw.port.Run(runID); run.Status != "IN_PROGRESS" {
		t.Fatalf("after the ambiguous delivery the Port run is %+v, want IN_PROGRESS", run)
	}
	// The pipeline did run, and succeeds.
	for _, state := range []struct{ state, result string }{{"inProgress", ""}, {"completed", "succeeded"}} {
		if _, err := sw.sender.Send(t.Context(), servicehooktest.Notification(azureRun(901, runID, state.state, state.result))); err != nil {
			t.Fatalf("service hook %s: %v", state.state, err)
		}
	}
	run, _ := sw.port.Run(runID)
	if run.Status != "SUCCESS" || run.Link == "" {
		t.Errorf("the Port run is %+v, want SUCCESS with the pipeline's link", run)
	}
	reportCases.Add(1)
}
