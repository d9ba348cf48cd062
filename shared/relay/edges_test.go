package relay

// Edges where a promise could break (one Port click is one pipeline run; the Port run
// ends with the pipeline's truth; nothing is lost silently), each held by a test.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/runstatus"
	"github.com/port-azure-relay/relay/shared/runstatus/servicehooktest"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
	"github.com/port-azure-relay/relay/shared/signature"
)

// The ledger refuses the claim (DynamoDB throttles it past the SDK's retries): the HTTP
// invocation is delivered anyway, and its outcome is settled, the whole record written
// where the claim is missing. A replay at another container, once DynamoDB answers
// again, gets the first answer; a replay to a wrong path leaves the delivered run alone.
func TestAClaimRefusedOnceStillRecordsTheDelivery(t *testing.T) {
	ev := httpEvent("POST", "/", goodBody, key, now)
	t.Run("a replay at another container is delivered again", func(t *testing.T) {
		c := newContainers(t)
		c.db.SetFault(dynamotest.Throttle.For("PutItem"))
		first := c.container(nil)
		if status, body := handle(first, ev); status != 200 || body["forwarded"] != true {
			t.Fatalf("first, the claim throttled: %d %v, want it delivered (Port does not retry)", status, body)
		}
		c.db.SetFault(dynamotest.None) // DynamoDB answers again
		status, body := handle(c.container(nil), ev)
		if n := c.deliveries(); n != 1 {
			t.Errorf("one signed invocation delivered %d times: the replay at another container got %d %v, want the first answer marked duplicate", n, status, body)
		}
	})
	t.Run("a replay to a wrong path ends the delivered run FAILURE", func(t *testing.T) {
		c := newContainers(t)
		c.db.SetFault(dynamotest.Throttle.For("PutItem"))
		handle(c.container(nil), ev)
		c.db.SetFault(dynamotest.None)
		other := c.container(nil)
		handle(other, rerouted(t, ev, "/webhooks/nope"))
		for _, call := range other.reports.calls {
			if strings.HasPrefix(call, "fail ") {
				t.Errorf("a replay to a wrong path ended a Port run that Azure is running: %q", call)
			}
		}
	})
}

// PORT_SIGNATURE_TOLERANCE may be up to 24h and LEDGER_TTL as little as 1h: a signed
// request replayed after the ledger's record expired, still within the signature's
// tolerance, would reach a container that has not seen it and be delivered again. The
// configuration refuses a ledger that forgets sooner than a signature can be replayed.
func TestALedgerTTLShorterThanTheReplayWindowIsRefused(t *testing.T) {
	for _, tt := range []struct {
		tolerance, ttl string
		ok             bool
	}{{"24h", "1h", false}, {"1h", "1h", false}, {"30m", "1h", true}, {"5m", "24h", true}, {"24h", "48h", true}} {
		_, err := LoadConfig(func(name string) string {
			return map[string]string{
				"PORT_SECRET_ID": "port/relay", "AZURE_DEVOPS_ORG": "contoso", "AZURE_DEVOPS_WEBHOOK": "port_trigger",
				"LEDGER_TABLE": ledgerTable, "PORT_SIGNATURE_TOLERANCE": tt.tolerance, "LEDGER_TTL": tt.ttl,
			}[name]
		})
		var cerr *config.Error
		if got := err == nil; got != tt.ok || (!tt.ok && (!errors.As(err, &cerr) || cerr.Var != "LEDGER_TTL")) {
			t.Errorf("tolerance %s, LEDGER_TTL %s: %v, want accepted %v (refused naming LEDGER_TTL)", tt.tolerance, tt.ttl, err, tt.ok)
		}
	}
}

// Without a ledger, a container refuses a signed request it has accepted. During a
// rotation of Port's secret the header carries a MAC for each value, and once the
// container has read the new value the same request matches the other MAC: the
// container knows the request by its timestamp and covered bytes, so it still refuses it.
func TestTheContainerMemoryKeepsARequestAcrossARotation(t *testing.T) {
	const newSecret = "the-new-port-secret"
	f := newFixture(nil)
	f.relay.Port.Replays = &signature.Replays{}
	f.secrets.rotated = secret.Credentials{ClientID: "id", ClientSecret: newSecret}
	const body = `{"env":"prod","port_context":{"runId":"r_unit1"}}`
	ev := httpEvent("POST", "/", body, key, now)
	var e map[string]any
	if err := json.Unmarshal(ev, &e); err != nil {
		t.Fatal(err)
	}
	h := e["headers"].(map[string]any)
	h["x-port-signature"] = h["x-port-signature"].(string) + " " + signature.SignPort([]byte(newSecret), now, []byte(body))
	both, _ := json.Marshal(e)
	if status, _ := handle(f, both); status != 200 {
		t.Fatalf("first, verified with the old value: %d, want 200", status)
	}
	// Port's next invocation is signed with the new value alone: the container reads it.
	if status, _ := handle(f, httpEvent("POST", "/", `{"env":"prod","port_context":{"runId":"r_unit2"}}`, newSecret, now+1)); status != 200 {
		t.Fatalf("the next invocation, signed with the new value: %d, want 200", status)
	}
	status, got := handle(f, both)
	if len(f.delivered) != 2 {
		t.Errorf("the replay of the first request got %d %v and the container delivered %d times, want 2 (the replay refused as already received)", status, got, len(f.delivered))
	}
}

// A pipeline started by id is followed by the externalRunId the relay sets on its Port
// run right after Azure answered. When Port's API fails that PATCH once, the relay
// tries it again; when the pipeline's completion reaches the status function while
// the PATCH is on its way, the status function looks for the run once more a second
// later. Either way the Port run ends with the pipeline's result.
func TestAPipelineRunIsFollowedWhenItsExternalRunIDIsLate(t *testing.T) {
	for _, tt := range []struct {
		name string
		// patch sees the relay's PATCH of the Port run; it answers it (true), or lets
		// Port's stand-in do so.
		patch func(w http.ResponseWriter, externalRunID string, complete func(azureRunID int)) bool
	}{
		{"Port's API fails the relay's one PATCH", func(w http.ResponseWriter, _ string, _ func(int)) bool {
			http.Error(w, `{"ok":false}`, http.StatusServiceUnavailable)
			return true
		}},
		{"the completion reaches the status function before the relay's PATCH", func(_ http.ResponseWriter, ext string, complete func(int)) bool {
			id, _ := strconv.Atoi(strings.TrimPrefix(ext, "ado_contoso_"))
			complete(id)
			return false
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newPipelineFixture(t, secret.Credentials{ClientID: "id", ClientSecret: key, AzurePAT: pat, ServiceHookPassword: "hook-pw"})
			port := porttest.New("id", key)
			t.Cleanup(port.Close)
			port.CreateRuns("r_unit1")
			follower := &runstatus.Follower{
				Secrets: f.secrets,
				Port:    &portapi.Client{BaseURL: port.URL},
				Org:     "contoso",
				Log:     slog.New(slog.NewJSONHandler(io.Discard, nil)),
			}
			var (
				mu       sync.Mutex
				answered []string
				racing   sync.WaitGroup
			)
			// The pipeline runs and succeeds: Azure's service hook tells the status function.
			complete := func(azureRunID int) {
				done := servicehooktest.Run{PipelineID: 42, PipelineName: "deploy-service", ID: azureRunID, Name: "20261206.4", State: "completed", Result: "succeeded"}
				h := http.Header{"Content-Type": {"application/json"}}
				req, _ := http.NewRequest(http.MethodPost, "/", nil)
				req.SetBasicAuth("azure", "hook-pw")
				h.Set("Authorization", req.Header.Get("Authorization"))
				resp := follower.Handle(context.Background(), "req-hook", lambdatest.HTTPAPIEvent(http.MethodPost, "/azure/events", h, servicehooktest.Notification(done)))
				mu.Lock()
				answered = append(answered, fmt.Sprintf("%d %s", resp.Status, resp.Body))
				mu.Unlock()
			}
			// The notification arrives while the relay's PATCH is on its way to Port.
			meanwhile := func(azureRunID int) {
				racing.Add(1)
				go func() { defer racing.Done(); complete(azureRunID) }()
			}
			upstream, _ := url.Parse(port.URL)
			proxy := httputil.NewSingleHostReverseProxy(upstream)
			var patched atomic.Bool
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPatch && patched.CompareAndSwap(false, true) {
					body, _ := io.ReadAll(r.Body)
					var u struct {
						ExternalRunID string `json:"externalRunId"`
					}
					_ = json.Unmarshal(body, &u)
					r.Body = io.NopCloser(bytes.NewReader(body))
					if tt.patch(w, u.ExternalRunID, meanwhile) {
						return
					}
				}
				proxy.ServeHTTP(w, r)
			}))
			t.Cleanup(front.Close)
			f.relay.Report = &portapi.Client{BaseURL: front.URL}
			status, body := f.handle(t, "/pipelines/deploy", pipelineRun)
			if status != 200 || body["forwarded"] != true {
				t.Fatalf("%d %v, want the pipeline started", status, body)
			}
			racing.Wait()
			if len(answered) == 0 {
				complete(int(body["azureRunId"].(float64)))
			}
			if run, _ := port.Run("r_unit1"); run.Status != "SUCCESS" {
				t.Errorf("the pipeline succeeded, the status function answered Azure %q, and the Port run is %+v: want SUCCESS", answered, run)
			}
		})
	}
}

// Renew reads the secret again at most every 30 s, and a stranger's wrong signature
// may use that read up. A PAT that Azure refuses is read again apart from it, so a
// rotation (a new PAT stored, the old one revoked) within those 30 s refuses nothing.
func TestAStrangersBadSignatureDoesNotHoldBackAPATRotation(t *testing.T) {
	const oldPAT, newPAT = "azure-pat-old-Zq1", "azure-pat-new-Rt5"
	value := func(p string) string {
		return `{"clientId":"id","clientSecret":"` + key + `","azurePat":"` + p + `"}`
	}
	for _, stranger := range []bool{false, true} {
		name := "no stranger: the new PAT is picked up"
		if stranger {
			name = "a stranger's bad signature 10 s before"
		}
		t.Run(name, func(t *testing.T) {
			f := newPipelineFixture(t, secret.Credentials{})
			f.az.AddPAT(oldPAT)
			sm := smtest.New()
			t.Cleanup(sm.Close)
			arn := sm.Put("port/relay", value(oldPAT))
			clock := time.Unix(now, 0)
			f.relay.Secrets = secret.NewSource(sm.Client(), arn, 5*time.Minute, func() time.Time { return clock })
			if status, body := f.handle(t, "/pipelines/deploy", strings.Replace(pipelineRun, "r_unit1", "r_first", 1)); status != 200 {
				t.Fatalf("a run with the old PAT: %d %v, want 200", status, body)
			}
			if stranger {
				clock = clock.Add(10 * time.Second)
				if status := f.relay.Handle(t.Context(), "req", httpEvent("POST", "/pipelines/deploy", pipelineRun, "guess", now)).Status; status != 401 {
					t.Fatalf("the stranger: %d, want 401", status)
				}
			}
			// The operator rotates the PAT: the new one in the secret, the old one revoked.
			sm.Put("port/relay", value(newPAT))
			f.az.AddPAT(newPAT)
			f.az.RevokePAT(oldPAT)
			clock = clock.Add(10 * time.Second)
			if status, body := f.handle(t, "/pipelines/deploy", pipelineRun); status != 200 {
				t.Errorf("a Port run after the rotation: %d %v, want 200 with the PAT the secret holds", status, body)
			}
		})
	}
}
