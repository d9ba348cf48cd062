package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/runstatus/servicehooktest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

const (
	hookPassword   = "e2e-service-hook-password-Jd8"
	samplePassword = "demo-service-hook-password" // the events/status samples' (events/README.md)
)

// statusWorld is the status function under the emulator behind an API Gateway
// front, Port's API double behind a switch that can take it down, and Azure's
// service hook sender pointed at the front.
type statusWorld struct {
	sm     *smtest.Server
	port   *porttest.Server
	down   atomic.Int64 // Port answers 503 to this many more requests
	fn     *lambdatest.Function
	sender *servicehooktest.Sender
}

func newStatusWorld(t *testing.T) *statusWorld {
	t.Helper()
	w := &statusWorld{port: porttest.New(portClientID, portSecret)}
	t.Cleanup(w.port.Close)
	target, _ := url.Parse(w.port.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.down.Add(-1) >= 0 {
			http.Error(rw, `{"ok":false,"error":"internal_error"}`, http.StatusServiceUnavailable)
			return
		}
		w.down.Store(0)
		proxy.ServeHTTP(rw, r)
	}))
	t.Cleanup(front.Close)
	sm := smtest.New()
	t.Cleanup(sm.Close)
	w.sm = sm
	sm.Put(secretName, hookSecret(hookPassword))
	w.fn = start(t, statusBin, 10*time.Second, append(sm.Env(),
		"PORT_SECRET_ID="+secretName, "PORT_API_URL="+front.URL, "SECRET_CACHE_TTL=5m", "AZURE_DEVOPS_ORG="+org))
	gw := lambdatest.Gateway(w.fn)
	t.Cleanup(func() { gw.Close() })
	w.sender = &servicehooktest.Sender{
		URL: gw.URL + "/azure/events", Username: "azure-devops", Password: hookPassword,
		Delays: slices.Repeat([]time.Duration{50 * time.Millisecond}, len(servicehooktest.AzureDelays)),
	}
	return w
}

// hookSecret is the status function's secret with the service hook's password.
func hookSecret(password string) string {
	return `{"clientId":"` + portClientID + `","clientSecret":"` + portSecret + `","serviceHookPassword":"` + password + `"}`
}

// azureRun is a pipeline run whose name carries the Port run id, as the README's
// `name:` line makes it. The pipeline's name is the audit marker: it is in the body
// and must never reach a log.
func azureRun(id int, portRunID, state, result string) servicehooktest.Run {
	return servicehooktest.Run{PipelineID: 7, PipelineName: "deploy " + marker, ID: id, Name: "20261201." + "1 " + portRunID, State: state, Result: result}
}

// step is one notification and how it must end.
type step struct {
	body      []byte
	password  *string // nil: the world's
	noAuth    bool    // no Authorization header at all
	statuses  []int   // the status function's answers, attempt by attempt
	answerKey string  // "updated", "ignored" or "error" in the last answer
}

func TestStatusFollowsTheAzureRun(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newStatusWorld(t)
	wrong, empty := "a guessed password", ""

	type want struct {
		status, label string // the Port run after the steps; "" status: Port never asked
		search        bool   // Port is asked for the run by its externalRunId, and nothing changes
	}
	cases := []struct {
		name  string
		steps func(runID string) []step
		want  want
		down  int64 // Port answers 503 this many times at the first step
	}{
		{"inProgress then succeeded: SUCCESS with the link", func(id string) []step {
			return []step{
				{body: servicehooktest.Notification(azureRun(101, id, "inProgress", "")), statuses: []int{200}, answerKey: "updated"},
				{body: servicehooktest.Notification(azureRun(101, id, "completed", "succeeded")), statuses: []int{200}, answerKey: "updated"},
			}
		}, want{"SUCCESS", "Azure DevOps run succeeded", false}, 0},
		{"failed: FAILURE", func(id string) []step {
			return []step{{body: servicehooktest.Notification(azureRun(102, id, "completed", "failed")), statuses: []int{200}, answerKey: "updated"}}
		}, want{"FAILURE", "Azure DevOps run failed", false}, 0},
		{"canceling is ignored, then canceled: FAILURE", func(id string) []step {
			return []step{
				{body: servicehooktest.Notification(azureRun(103, id, "canceling", "")), statuses: []int{200}, answerKey: "ignored"},
				{body: servicehooktest.Notification(azureRun(103, id, "completed", "canceled")), statuses: []int{200}, answerKey: "updated"},
			}
		}, want{"FAILURE", "Azure DevOps run canceled", false}, 0},
		{"partiallySucceeded: SUCCESS, labelled so", func(id string) []step {
			return []step{{body: servicehooktest.Notification(azureRun(108, id, "completed", "partiallySucceeded")), statuses: []int{200}, answerKey: "updated"}}
		}, want{"SUCCESS", "Azure DevOps run partially succeeded", false}, 0},
		{"completed with no result: FAILURE, never in progress forever", func(id string) []step {
			return []step{{body: servicehooktest.Notification(azureRun(109, id, "completed", "")), statuses: []int{200}, answerKey: "updated"}}
		}, want{"FAILURE", "Azure DevOps run completed without a result", false}, 0},
		{"canceling alone leaves the run in progress", func(id string) []step {
			return []step{{body: servicehooktest.Notification(azureRun(104, id, "canceling", "")), statuses: []int{200}, answerKey: "ignored"}}
		}, want{"IN_PROGRESS", "", false}, 0},
		{"the same completion twice: the second is ignored", func(id string) []step {
			ev := servicehooktest.Notification(azureRun(105, id, "completed", "succeeded"))
			return []step{{body: ev, statuses: []int{200}, answerKey: "updated"}, {body: ev, statuses: []int{200}, answerKey: "ignored"}}
		}, want{"SUCCESS", "Azure DevOps run succeeded", false}, 0},
		{"completed before inProgress: the final status stands", func(id string) []step {
			return []step{
				{body: servicehooktest.Notification(azureRun(106, id, "completed", "failed")), statuses: []int{200}, answerKey: "updated"},
				{body: servicehooktest.Notification(azureRun(106, id, "inProgress", "")), statuses: []int{200}, answerKey: "ignored"},
			}
		}, want{"FAILURE", "Azure DevOps run failed", false}, 0},
		{"a run name without a Port run id, and no Port run with its externalRunId, is ignored", func(id string) []step {
			r := azureRun(107, id, "completed", "succeeded")
			r.Name = "20261201.7"
			return []step{{body: servicehooktest.Notification(r), statuses: []int{200}, answerKey: "ignored"}}
		}, want{"IN_PROGRESS", "", true}, 0},
		{"another event type is ignored", func(id string) []step {
			ev := strings.Replace(string(servicehooktest.Notification(azureRun(108, id, "completed", "succeeded"))), servicehooktest.EventType, "build.complete", 1)
			return []step{{body: []byte(ev), statuses: []int{200}, answerKey: "ignored"}}
		}, want{"IN_PROGRESS", "", false}, 0},
		{"a wrong password is 401, not retried, nothing sent to Port", func(id string) []step {
			return []step{{body: servicehooktest.Notification(azureRun(109, id, "completed", "succeeded")), password: &wrong, statuses: []int{401}, answerKey: "error"}}
		}, want{"IN_PROGRESS", "", false}, 0},
		{"an empty password is 401", func(id string) []step {
			return []step{{body: servicehooktest.Notification(azureRun(110, id, "completed", "succeeded")), password: &empty, statuses: []int{401}, answerKey: "error"}}
		}, want{"IN_PROGRESS", "", false}, 0},
		{"no Authorization header is 401", func(id string) []step {
			return []step{{body: servicehooktest.Notification(azureRun(111, id, "completed", "succeeded")), noAuth: true, statuses: []int{401}, answerKey: "error"}}
		}, want{"IN_PROGRESS", "", false}, 0},
		{"a body that is not JSON is 400", func(id string) []step {
			return []step{{body: []byte("run " + id + " finished " + marker), statuses: []int{400}, answerKey: "error"}}
		}, want{"IN_PROGRESS", "", false}, 0},
		{"Port down, then back: Azure's retries carry the run to SUCCESS", func(id string) []step {
			return []step{{body: servicehooktest.Notification(azureRun(112, id, "completed", "succeeded")), statuses: []int{503, 503, 200}, answerKey: "updated"}}
		}, want{"SUCCESS", "Azure DevOps run succeeded", false}, 2},
		{"a Port run that does not exist is ignored", func(string) []step {
			return []step{{body: servicehooktest.Notification(azureRun(113, "r_NoSuchPortRun01", "completed", "succeeded")), statuses: []int{200}, answerKey: "ignored"}}
		}, want{}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runID := "r_status" + strings.ReplaceAll(rand.Text()[:10], "_", "")
			if c.want.status != "" {
				w.port.CreateRuns(runID)
			}
			before := w.port.Requests()
			w.down.Store(c.down)
			for i, s := range c.steps(runID) {
				sender := *w.sender
				if s.password != nil {
					sender.Password = *s.password
				}
				if s.noAuth {
					sender.Username, sender.Password = "", ""
				}
				d, err := sender.Send(context.Background(), s.body)
				if err != nil {
					t.Fatal(err)
				}
				code, body := d.Last()
				var answer map[string]any
				_ = json.Unmarshal(body, &answer)
				if !slices.Equal(d.Statuses, s.statuses) || answer[s.answerKey] == nil {
					t.Fatalf("step %d: answers %v %s, want %v with %q", i, d.Statuses, body, s.statuses, s.answerKey)
				}
				if d.Disabled || (code/100 == 2) != d.Delivered {
					t.Errorf("step %d: the subscription would be disabled or the delivery misjudged: %+v", i, d)
				}
			}
			got, exists := w.port.Run(runID)
			switch {
			case c.want.status == "":
				if exists {
					t.Errorf("Port run %+v exists, want none", got)
				}
			case got.Status != c.want.status || got.StatusLabel != c.want.label:
				t.Errorf("Port run %+v, want %s labelled %q", got, c.want.status, c.want.label)
			case c.want.label != "" && (!strings.Contains(got.Link, "_build/results?buildId=") || got.ExternalRunID == "" ||
				(c.want.status != "IN_PROGRESS" && !strings.Contains(got.Summary, "run 20261201.1 "+runID))):
				t.Errorf("Port run %+v, want the Azure run's link, its id and a summary naming the run", got)
			}
			if c.want.label == "" && c.want.status != "" && !c.want.search && w.port.Requests() != before {
				t.Errorf("Port's API got %d requests, want none", w.port.Requests()-before)
			}
			if strings.Contains(got.Summary, "deploy ") != (c.want.label != "" && c.want.status != "IN_PROGRESS") {
				t.Errorf("summary %q: want the pipeline named in a final summary only", got.Summary)
			}
		})
	}
	statusCases.Add(int64(len(cases)))

	// Every line of the status function is one invocation's: ids and outcomes, no more.
	// The EMF members (_aws, Function, Outcome, RunsUpdated) are the metric of the same outcome;
	// WrongPassword comes with a wrong password only, and "password" names a version, never a value.
	allowed := []string{"time", "level", "msg", "requestId", "outcome", "status", "reason", "runId", "azureRunId", "azureState", "portStatus", "durationMs",
		"_aws", "Function", "Outcome", "RunsUpdated", "WrongPassword", "password"}
	n := 0
	for _, line := range w.fn.Lines() {
		var m map[string]any
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		n++
		for k := range m {
			if !slices.Contains(allowed, k) {
				t.Errorf("status log line has %q: %s", k, line)
			}
		}
		if m["requestId"] == nil || m["outcome"] == nil {
			t.Errorf("status log line without requestId or outcome: %s", line)
		}
		if (m["WrongPassword"] != nil) != (m["reason"] == "auth-wrong") || (m["password"] != nil && m["password"] != "AWSPREVIOUS") {
			t.Errorf("status log line: want WrongPassword 1 exactly for a wrong password, and password only as AWSPREVIOUS: %s", line)
		}
		if m["Outcome"] != m["outcome"] || m["RunsUpdated"] != float64(1) || m["Function"] != "status" {
			t.Errorf("status log line: want RunsUpdated 1 for Function status and Outcome %v: %s", m["outcome"], line)
		}
	}
	if n < len(cases) {
		t.Errorf("%d status log lines for %d cases", n, len(cases))
	}
	statusCases.Add(1)
}

// TestStatusFindsARunStartedByID: a pipeline the relay started by id keeps its own run
// name; the status function finds the Port run through Port's API, by the externalRunId
// the relay set. Port down during that search is a 503 that Azure's retries get past,
// and a completion whose run has no id (Microsoft's current sample) is read from its
// links: the run ends, with no ledger anywhere.
func TestStatusFindsARunStartedByID(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newStatusWorld(t)
	runID := "r_byid" + strings.ReplaceAll(rand.Text()[:10], "_", "")
	other := "r_other" + strings.ReplaceAll(rand.Text()[:10], "_", "")
	w.port.CreateRuns(runID, other)
	port := &portapi.Client{BaseURL: w.port.URL}
	creds := portapi.Credentials{ClientID: portClientID, ClientSecret: portSecret}
	// What the relay does once Azure has queued run 120, and what another organization's relay did for its run 120.
	for id, ext := range map[string]string{runID: portapi.ExternalRunID(org, "120"), other: portapi.ExternalRunID("fabrikam", "120")} {
		if err := port.Update(t.Context(), creds, id, portapi.RunUpdate{StatusLabel: "Queued in Azure DevOps", ExternalRunID: ext}); err != nil {
			t.Fatal(err)
		}
	}
	r := servicehooktest.Run{PipelineID: 7, PipelineName: "deploy " + marker, ID: 120, Name: "20261201.9", State: "inProgress"}
	w.down.Store(2) // Port answers 503 to the first two requests: each attempt's token request
	d, err := w.sender.Send(t.Context(), servicehooktest.Notification(r))
	if _, body := d.Last(); err != nil || !slices.Equal(d.Statuses, []int{503, 503, 200}) || !strings.Contains(string(body), runID) {
		t.Fatalf("inProgress with Port down: %v %s %v, want 503, 503, then 200 updating %s", d.Statuses, body, err, runID)
	}
	r.State, r.Result, r.NoID = "completed", "succeeded", true
	if d, err := w.sender.Send(t.Context(), servicehooktest.Notification(r)); err != nil || !slices.Equal(d.Statuses, []int{200}) {
		code, body := d.Last()
		t.Fatalf("completed, its run without id: %d %s %v, want 200", code, body, err)
	}
	got, _ := w.port.Run(runID)
	if got.Status != "SUCCESS" || got.ExternalRunID != "ado_"+org+"_120" || !strings.Contains(got.Link, "buildId=120") {
		t.Errorf("Port run %+v, want SUCCESS with the Azure run's link and externalRunId", got)
	}
	if o, _ := w.port.Run(other); o.Status != "IN_PROGRESS" {
		t.Errorf("fabrikam's Port run for its own run 120 = %+v, want it untouched", o)
	}
	statusCases.Add(1)
}

// sampleStatusFunction runs the status function for the events/status samples:
// their password, and the Port runs they name.
func sampleStatusFunction(t *testing.T) *lambdatest.Function {
	t.Helper()
	port := porttest.New("demo-client-id", demoSecret)
	t.Cleanup(port.Close)
	port.CreateRuns("r_QvJ5Nn2m8xV3aT1k", "r_Wp7Kd3Ls9Xb2Rt6n", "r_Lm2Hc8Ue4Jw9Qa7b")
	sm := smtest.New()
	t.Cleanup(sm.Close)
	sm.Put(secretName, `{"clientId":"demo-client-id","clientSecret":"`+demoSecret+`","serviceHookPassword":"`+samplePassword+`"}`)
	return start(t, statusBin, faultTimeout, append(sm.Env(), "PORT_SECRET_ID="+secretName, "PORT_API_URL="+port.URL, "AZURE_DEVOPS_ORG=demo-org"))
}
