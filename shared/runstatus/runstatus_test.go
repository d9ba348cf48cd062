package runstatus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/allowlist"
	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/runstatus"
	"github.com/port-azure-relay/relay/shared/runstatus/servicehooktest"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

const (
	clientID     = "client-id"
	clientSecret = "port-client-secret-Xy9"
	hookPassword = "hook-password-Qw3"
	portRun      = "r_QOz6WoOB1Q2lmhZZ"
)

type env struct {
	now  time.Time // the secret cache's clock
	f    *runstatus.Follower
	port *porttest.Server
	sm   *smtest.Server
	logs *bytes.Buffer
}

func newEnv(t *testing.T, secretValue string) *env {
	t.Helper()
	e := &env{now: time.Now(), port: porttest.New(clientID, clientSecret), sm: smtest.New(), logs: &bytes.Buffer{}}
	t.Cleanup(e.port.Close)
	t.Cleanup(e.sm.Close)
	arn := e.sm.Put("port/relay", secretValue)
	e.port.CreateRuns(portRun)
	e.f = &runstatus.Follower{
		Secrets: secret.NewSource(e.sm.Client(), arn, 5*time.Minute, func() time.Time { return e.now }),
		Port:    &portapi.Client{BaseURL: e.port.URL, HTTP: &http.Client{Timeout: 2 * time.Second}},
		Org:     "contoso",
		Log:     handler.Logger(e.logs),
		Metrics: metrics.New("PortAzureRelay", metrics.FunctionStatus),
	}
	return e
}

var fullSecret = `{"clientId":"` + clientID + `","clientSecret":"` + clientSecret + `","serviceHookPassword":"` + hookPassword + `"}`

func run(state, result string) servicehooktest.Run {
	return servicehooktest.Run{PipelineID: 7, PipelineName: "deploy-service", ID: 11, Name: "20261201.1 " + portRun, State: state, Result: result}
}

// hookEvent is what API Gateway hands the function for a service-hook POST.
func hookEvent(body []byte, password string) []byte {
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	if password != "" {
		r, _ := http.NewRequest("POST", "/", nil)
		r.SetBasicAuth("azure", password)
		h.Set("Authorization", r.Header.Get("Authorization"))
	}
	return lambdatest.HTTPAPIEvent("POST", "/azure/events", h, body)
}

type answer struct {
	status int
	body   map[string]any
}

func handle(t *testing.T, e *env, ev []byte) answer {
	t.Helper()
	resp := e.f.Handle(context.Background(), "req-1", ev)
	var a answer
	a.status = resp.Status
	if err := json.Unmarshal(resp.Body, &a.body); err != nil {
		t.Fatalf("body %q is not JSON", resp.Body)
	}
	return a
}

func TestFollowsTheAzureRun(t *testing.T) {
	tests := []struct {
		name   string
		events []servicehooktest.Run
		want   porttest.Run
	}{
		{"inProgress gives the link and the Azure run id, the run still in progress", []servicehooktest.Run{run("inProgress", "")},
			porttest.Run{Status: "IN_PROGRESS", StatusLabel: "Running in Azure DevOps", Link: run("", "").WebURL(), ExternalRunID: "ado_contoso_11"}},
		{"inProgress then succeeded ends SUCCESS with the link", []servicehooktest.Run{run("inProgress", ""), run("completed", "succeeded")},
			porttest.Run{Status: "SUCCESS", StatusLabel: "Azure DevOps run succeeded", Link: run("", "").WebURL(), ExternalRunID: "ado_contoso_11",
				Summary: "Azure DevOps pipeline deploy-service (7), run 20261201.1 " + portRun + " (11): succeeded."}},
		{"failed ends FAILURE labelled failed", []servicehooktest.Run{run("completed", "failed")},
			porttest.Run{Status: "FAILURE", StatusLabel: "Azure DevOps run failed", Link: run("", "").WebURL(), ExternalRunID: "ado_contoso_11",
				Summary: "Azure DevOps pipeline deploy-service (7), run 20261201.1 " + portRun + " (11): failed."}},
		{"canceled ends FAILURE labelled canceled", []servicehooktest.Run{run("canceling", ""), run("completed", "canceled")},
			porttest.Run{Status: "FAILURE", StatusLabel: "Azure DevOps run canceled", Link: run("", "").WebURL(), ExternalRunID: "ado_contoso_11",
				Summary: "Azure DevOps pipeline deploy-service (7), run 20261201.1 " + portRun + " (11): canceled."}},
		{"partiallySucceeded ends SUCCESS labelled partially succeeded", []servicehooktest.Run{run("completed", "partiallySucceeded")},
			porttest.Run{Status: "SUCCESS", StatusLabel: "Azure DevOps run partially succeeded", Link: run("", "").WebURL(), ExternalRunID: "ado_contoso_11",
				Summary: "Azure DevOps pipeline deploy-service (7), run 20261201.1 " + portRun + " (11): partially succeeded."}},
		{"an unknown result ends FAILURE naming it", []servicehooktest.Run{run("completed", "unknown")},
			porttest.Run{Status: "FAILURE", StatusLabel: `Azure DevOps run completed with result "unknown"`, Link: run("", "").WebURL(), ExternalRunID: "ado_contoso_11",
				Summary: "Azure DevOps pipeline deploy-service (7), run 20261201.1 " + portRun + ` (11): completed with result "unknown".`}},
		{"no result ends FAILURE saying so", []servicehooktest.Run{run("inProgress", ""), run("completed", "")},
			porttest.Run{Status: "FAILURE", StatusLabel: "Azure DevOps run completed without a result", Link: run("", "").WebURL(), ExternalRunID: "ado_contoso_11",
				Summary: "Azure DevOps pipeline deploy-service (7), run 20261201.1 " + portRun + " (11): completed without a result."}},
		{"a result that is not a word is not repeated", []servicehooktest.Run{run("completed", "<script>alert(1)</script>")},
			porttest.Run{Status: "FAILURE", StatusLabel: "Azure DevOps run completed with result (unreadable)", Link: run("", "").WebURL(), ExternalRunID: "ado_contoso_11",
				Summary: "Azure DevOps pipeline deploy-service (7), run 20261201.1 " + portRun + " (11): completed with result (unreadable)."}},
		{"completed before inProgress: the final status stands", []servicehooktest.Run{run("completed", "succeeded"), run("inProgress", "")},
			porttest.Run{Status: "SUCCESS", StatusLabel: "Azure DevOps run succeeded", Link: run("", "").WebURL(), ExternalRunID: "ado_contoso_11",
				Summary: "Azure DevOps pipeline deploy-service (7), run 20261201.1 " + portRun + " (11): succeeded."}},
		{"the same completion twice: the first stands", []servicehooktest.Run{run("completed", "failed"), run("completed", "failed")},
			porttest.Run{Status: "FAILURE", StatusLabel: "Azure DevOps run failed", Link: run("", "").WebURL(), ExternalRunID: "ado_contoso_11",
				Summary: "Azure DevOps pipeline deploy-service (7), run 20261201.1 " + portRun + " (11): failed."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fullSecret)
			for _, r := range tt.events {
				if a := handle(t, e, hookEvent(servicehooktest.Notification(r), hookPassword)); a.status != 200 {
					t.Fatalf("%s: %d %v, want 200", r.State, a.status, a.body)
				}
			}
			if got, _ := e.port.Run(portRun); got != tt.want {
				t.Errorf("Port run = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	notification := servicehooktest.Notification(run("completed", "succeeded"))
	other := bytes.Replace(notification, []byte(servicehooktest.EventType), []byte("build.complete"), 1)
	noID := servicehooktest.Notification(servicehooktest.Run{ID: 12, Name: "20261201.2", State: "completed", Result: "succeeded"})
	unknown := servicehooktest.Notification(servicehooktest.Run{ID: 13, Name: "20261201.3 r_NotAPortRun0001", State: "completed", Result: "succeeded"})
	// Microsoft's published sample for this event has neither run.id nor run.name; without its links, nothing
	// names the run at all.
	bare := []byte(`{"eventType":"ms.vss-pipelines.run-state-changed-event","resource":{"run":{"state":"completed","result":"succeeded"},"pipeline":{"id":4,"name":"pipeline"}}}`)
	sample := servicehooktest.Notification(servicehooktest.Run{ID: 14, State: "completed", Result: "succeeded", NoID: true})
	stringID := []byte(`{"eventType":"ms.vss-pipelines.run-state-changed-event","resource":{"run":{"id":"11","name":"nightly ` + portRun + `","state":"inProgress","_links":{"web":{"href":"javascript:alert(1)"}}}}}`)
	tests := []struct {
		name    string
		secret  string
		ev      []byte
		status  int
		key     string // "ignored", "error" or "updated" in the answer
		outcome string
		reason  string
		port    bool // Port's API was asked
	}{
		{"a completed run is updated", fullSecret, hookEvent(notification, hookPassword), 200, "updated", "updated", "", true},
		{"a string run id and a link that is not http are read defensively", fullSecret, hookEvent(stringID, hookPassword), 200, "updated", "updated", "", true},
		{"canceling is ignored", fullSecret, hookEvent(servicehooktest.Notification(run("canceling", "")), hookPassword), 200, "ignored", "ignored", "canceling", false},
		{"another event type is ignored", fullSecret, hookEvent(other, hookPassword), 200, "ignored", "ignored", "event-type", false},
		{"a run name without a Port run id, and no Port run with its externalRunId, is ignored", fullSecret, hookEvent(noID, hookPassword), 200, "ignored", "ignored", "no-run-id", true},
		{"Microsoft's sample without run id or name, for a run no Port run follows, is ignored", fullSecret, hookEvent(sample, hookPassword), 200, "ignored", "ignored", "no-run-id", true},
		{"a run without id, name or links is ignored without asking Port", fullSecret, hookEvent(bare, hookPassword), 200, "ignored", "ignored", "no-run-id", false},
		{"a Port run that does not exist is ignored", fullSecret, hookEvent(unknown, hookPassword), 200, "ignored", "ignored", "run-not-found", true},
		{"a wrong password is 401", fullSecret, hookEvent(notification, "guess"), 401, "error", "refused", "auth-wrong", false},
		{"no Authorization is 401", fullSecret, hookEvent(notification, ""), 401, "error", "refused", "auth-missing", false},
		{"a body that is not JSON is 400", fullSecret, hookEvent([]byte("run finished"), hookPassword), 400, "error", "refused", "not-json", false},
		{"an event that is not JSON is 400", fullSecret, []byte("not json"), 400, "error", "refused", "not-json", false},
		{"a secret without serviceHookPassword refuses everything with 503", `{"clientId":"` + clientID + `","clientSecret":"` + clientSecret + `"}`,
			hookEvent(notification, hookPassword), 503, "error", "failed", "no-password", false},
		{"a secret without clientId is 503", `{"clientSecret":"` + clientSecret + `","serviceHookPassword":"` + hookPassword + `"}`,
			hookEvent(notification, hookPassword), 503, "error", "failed", "no-client-id", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.secret)
			a := handle(t, e, tt.ev)
			if a.status != tt.status || a.body[tt.key] == nil {
				t.Fatalf("Handle() = %d %v, want %d with %q", a.status, a.body, tt.status, tt.key)
			}
			if asked := e.port.Requests() > 0; asked != tt.port {
				t.Errorf("Port's API asked: %v, want %v", asked, tt.port)
			}
			line := oneLine(t, e)
			if line["outcome"] != tt.outcome || (tt.reason != "" && line["reason"] != tt.reason) {
				t.Errorf("log line %v, want outcome %q reason %q", line, tt.outcome, tt.reason)
			}
		})
	}
}

// An empty password in the header ("user:") is as good as none.
func TestEmptyBasicPasswordIsRefused(t *testing.T) {
	e := newEnv(t, fullSecret)
	h := http.Header{"Authorization": {"Basic YXp1cmU6"}} // azure:
	a := handle(t, e, lambdatest.HTTPAPIEvent("POST", "/azure/events", h, servicehooktest.Notification(run("inProgress", ""))))
	if a.status != 401 || e.port.Requests() != 0 {
		t.Errorf("Handle() = %d %v with %d Port requests, want 401 and none", a.status, a.body, e.port.Requests())
	}
}

func TestPortDownIs503ThenUpdates(t *testing.T) {
	e := newEnv(t, fullSecret)
	e.f.Port = &portapi.Client{BaseURL: "http://127.0.0.1:9", HTTP: &http.Client{Timeout: time.Second}}
	ev := hookEvent(servicehooktest.Notification(run("completed", "succeeded")), hookPassword)
	if a := handle(t, e, ev); a.status != 503 {
		t.Fatalf("Port down: %d %v, want 503 so that Azure retries", a.status, a.body)
	}
	if line := oneLine(t, e); line["reason"] != "port-unavailable" || line["level"] != "ERROR" {
		t.Errorf("log line %v, want an ERROR port-unavailable", line)
	}
	e.f.Port = &portapi.Client{BaseURL: e.port.URL}
	if a := handle(t, e, ev); a.status != 200 || a.body["updated"] != true {
		t.Fatalf("Port back: %d %v, want 200 updated", a.status, a.body)
	}
	if got, _ := e.port.Run(portRun); got.Status != "SUCCESS" {
		t.Errorf("Port run %+v, want SUCCESS", got)
	}
}

func TestRotatedPasswordIsReadAgain(t *testing.T) {
	e := newEnv(t, fullSecret)
	ev := servicehooktest.Notification(run("inProgress", ""))
	if a := handle(t, e, hookEvent(ev, hookPassword)); a.status != 200 {
		t.Fatalf("before rotation: %d", a.status)
	}
	e.logs.Reset()
	e.sm.Put("port/relay", strings.Replace(fullSecret, hookPassword, "new-hook-password", 1))
	// The first mismatch after a fill reads the secret again at once: the rotation is picked up.
	if a := handle(t, e, hookEvent(ev, "new-hook-password")); a.status != 200 {
		t.Errorf("new password after the rotation: %d %v, want 200: the secret is read again on a mismatch", a.status, a.body)
	}
	if n := e.sm.Calls(); n != 2 {
		t.Errorf("Secrets Manager calls = %d, want 2", n)
	}
	// Then a flood of wrong passwords costs at most one read per MinRenewInterval.
	for range 20 {
		e.logs.Reset()
		if a := handle(t, e, hookEvent(ev, "guess")); a.status != 401 {
			t.Fatalf("a wrong password: %d, want 401", a.status)
		}
	}
	if n := e.sm.Calls(); n != 2 {
		t.Errorf("Secrets Manager calls after 20 wrong passwords = %d, want 2", n)
	}
	e.now = e.now.Add(secret.MinRenewInterval)
	e.logs.Reset()
	if a := handle(t, e, hookEvent(ev, "guess")); a.status != 401 {
		t.Errorf("a wrong password: %d, want 401", a.status)
	}
	if n := e.sm.Calls(); n != 3 {
		t.Errorf("Secrets Manager calls after MinRenewInterval = %d, want 3", n)
	}
}

// TestPreviousPasswordWithinTheGrace: whichever side an operator rotates first, Azure's
// service hook or the secret, notifications are accepted: the previous version's
// password for PasswordGrace after the new version was stored, never one older.
func TestPreviousPasswordWithinTheGrace(t *testing.T) {
	const oldPassword, newPassword, newest = hookPassword, "rotated-hook-password-Zz1", "rotated-again-password-Yy2"
	e := newEnv(t, fullSecret)
	e.f.Previous = secret.NewPrevious(e.sm.Client(), "port/relay", 5*time.Minute, func() time.Time { return e.now })
	e.f.Now = func() time.Time { return e.now }
	e.sm.Now = e.f.Now // versions are dated by the test's clock
	ev := servicehooktest.Notification(run("inProgress", ""))
	check := func(name, password string, want int, wantStage any, wrong float64) {
		t.Helper()
		if a := handle(t, e, hookEvent(ev, password)); a.status != want {
			t.Errorf("%s: %d %v, want %d", name, a.status, a.body, want)
		}
		line := oneLine(t, e)
		if line["password"] != wantStage {
			t.Errorf("%s: log line password = %v, want %v", name, line["password"], wantStage)
		}
		if got, _ := line[metrics.WrongPassword].(float64); got != wrong {
			t.Errorf("%s: %s = %v, want %v", name, metrics.WrongPassword, got, wrong)
		}
		for _, p := range []string{oldPassword, newPassword, newest} {
			if strings.Contains(fmtLine(line), p) {
				t.Errorf("%s: the log line holds a password", name)
			}
		}
	}

	check("before any rotation, another password", newPassword, 401, nil, 1)
	e.sm.Put("port/relay", strings.Replace(fullSecret, oldPassword, newPassword, 1))
	e.now = e.now.Add(time.Minute)
	check("the secret rotated first: Azure still sends the old password, as the cached value has", oldPassword, 200, nil, 0)
	check("Azure follows with the new password, read again at once", newPassword, 200, nil, 0)
	check("Azure's other subscriptions still send the old one", oldPassword, 200, secret.StagePrevious, 0)
	e.now = e.now.Add(PasswordGraceForTest - 2*time.Minute)
	check("the old password just inside the grace", oldPassword, 200, secret.StagePrevious, 0)
	e.now = e.now.Add(2 * time.Minute)
	check("the old password past the grace is wrong", oldPassword, 401, nil, 1)
	check("the new password past the grace", newPassword, 200, nil, 0)

	e.now = e.now.Add(6 * time.Minute) // past the cache: the next read finds the next rotation
	e.sm.Put("port/relay", strings.Replace(fullSecret, oldPassword, newest, 1))
	check("two rotations on: the password before the previous is wrong", oldPassword, 401, nil, 1)
	check("the previous one is accepted", newPassword, 200, secret.StagePrevious, 0)
	check("the newest one is accepted", newest, 200, nil, 0)
}

// PasswordGraceForTest is the grace the test relies on: the documented 24 hours.
const PasswordGraceForTest = 24 * time.Hour

func fmtLine(line map[string]any) string {
	b, _ := json.Marshal(line)
	return string(b)
}

func TestPasswordGraceIsADay(t *testing.T) {
	if runstatus.PasswordGrace != PasswordGraceForTest {
		t.Errorf("PasswordGrace = %v, want %v as docs/operations.md says", runstatus.PasswordGrace, PasswordGraceForTest)
	}
}

func oneLine(t *testing.T, e *env) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(e.logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1: %s", len(lines), e.logs)
	}
	for _, s := range []string{hookPassword, clientSecret, "deploy-service", "dev.azure.com", "guess"} {
		if strings.Contains(lines[0], s) {
			t.Errorf("log line holds %q: %s", s, lines[0])
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil || m["requestId"] != "req-1" {
		t.Fatalf("log line %q: want JSON with requestId", lines[0])
	}
	e.logs.Reset()
	return m
}

// TestLineCountsTheRun: each line is an EMF record counting RunsUpdated under the
// status function and its outcome.
func TestLineCountsTheRun(t *testing.T) {
	e := newEnv(t, fullSecret)
	for _, tc := range []struct{ password, outcome string }{{hookPassword, runstatus.Updated}, {"guess", runstatus.Refused}} {
		e.logs.Reset()
		handle(t, e, hookEvent(servicehooktest.Notification(run("inProgress", "")), tc.password))
		line := oneLine(t, e)
		aws, _ := line["_aws"].(map[string]any)
		if aws == nil || line["Function"] != metrics.FunctionStatus || line["Outcome"] != tc.outcome || line["RunsUpdated"] != float64(1) {
			t.Errorf("line %v: want an EMF record with Function %s, Outcome %s, RunsUpdated 1", line, metrics.FunctionStatus, tc.outcome)
		}
	}
}

// TestSourceAllowList: with ALLOWED_SOURCE_IPS set, a caller outside it is refused
// before the secret is read, whatever its password; one inside is served.
func TestSourceAllowList(t *testing.T) {
	e := newEnv(t, fullSecret)
	list, err := allowlist.Parse("198.51.100.0/24")
	if err != nil {
		t.Fatal(err)
	}
	e.f.Sources = list
	ev := hookEvent(servicehooktest.Notification(run("inProgress", "")), hookPassword)
	if a := handle(t, e, lambdatest.WithSourceIP(ev, "203.0.113.9")); a.status != 403 {
		t.Errorf("a caller outside the list: %d %v, want 403", a.status, a.body)
	}
	if n := e.sm.Calls(); n != 0 {
		t.Errorf("Secrets Manager calls = %d, want none before the caller is allowed", n)
	}
	if a := handle(t, e, lambdatest.WithSourceIP(ev, "198.51.100.7")); a.status != 200 {
		t.Errorf("a caller inside the list: %d %v, want 200", a.status, a.body)
	}
}

// TestAnswersInTheEventsShape: behind a REST API (payload 1.0) the answer must be
// the 1.0 shape, or API Gateway refuses it; the Kind tells the handler which.
func TestAnswersInTheEventsShape(t *testing.T) {
	e := newEnv(t, fullSecret)
	body := servicehooktest.Notification(run("inProgress", ""))
	h := http.Header{"Content-Type": {"application/json"}}
	r, _ := http.NewRequest("POST", "/", nil)
	r.SetBasicAuth("azure", hookPassword)
	h.Set("Authorization", r.Header.Get("Authorization"))
	for _, tc := range []struct {
		ev   []byte
		want event.Kind
	}{
		{lambdatest.RESTEvent("POST", "/azure/events", h, body), event.REST},
		{lambdatest.HTTPAPIEvent("POST", "/azure/events", h, body), event.HTTPAPI},
		{lambdatest.RESTEvent("POST", "/azure/events", http.Header{}, body), event.REST}, // refused: no auth
	} {
		if resp := e.f.Handle(context.Background(), "req-1", tc.ev); !resp.HTTP || resp.Kind != tc.want {
			t.Errorf("Handle = %d, HTTP %v, Kind %q; want Kind %q", resp.Status, resp.HTTP, resp.Kind, tc.want)
		}
	}
}

// TestStagesShowOnThePortRun: each stage's start and end is a label and a log line on
// the Port run, never a final status; a partially succeeded stage says so.
func TestStagesShowOnThePortRun(t *testing.T) {
	e := newEnv(t, fullSecret)
	r := run("inProgress", "")
	for _, st := range []servicehooktest.Stage{
		{Name: "build", State: "running"},
		{Name: "build", State: "completed", Result: "succeeded"},
		{Name: "deploy", DisplayName: "Deploy to prod", State: "running"},
		{Name: "deploy", DisplayName: "Deploy to prod", State: "completed", Result: "partiallySucceeded"},
	} {
		if a := handle(t, e, hookEvent(servicehooktest.StageNotification(r, st), hookPassword)); a.status != 200 || a.body["updated"] != true {
			t.Fatalf("stage %s %s: %d %v, want 200 updated", st.Name, st.State, a.status, a.body)
		}
	}
	got, _ := e.port.Run(portRun)
	if got.Status != "IN_PROGRESS" || got.StatusLabel != "Stage Deploy to prod ended: partially succeeded" || got.Link != r.WebURL() {
		t.Errorf("Port run = %+v, want in progress, labelled with the last stage, linked to the run", got)
	}
	var lines []string
	for _, l := range e.port.Logs(portRun) {
		lines = append(lines, l.Message)
	}
	want := []string{
		"Azure DevOps: stage build running.", "Azure DevOps: stage build ended: succeeded.",
		"Azure DevOps: stage Deploy to prod running.", "Azure DevOps: stage Deploy to prod ended: partially succeeded.",
	}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("run log = %q, want %q", lines, want)
	}
	// The run's own completion ends it.
	handle(t, e, hookEvent(servicehooktest.Notification(run("completed", "succeeded")), hookPassword))
	if got, _ := e.port.Run(portRun); got.Status != "SUCCESS" {
		t.Errorf("after the run completed: %+v, want SUCCESS", got)
	}
}

// TestARunStartedByIDIsFoundThroughPort: a pipeline started by id keeps its own run
// name; the relay set the Port run's externalRunId, and the status function finds the
// Port run by it in Port's API, with no ledger, however long the run took.
func TestARunStartedByIDIsFoundThroughPort(t *testing.T) {
	e := newEnv(t, fullSecret)
	port := &portapi.Client{BaseURL: e.port.URL}
	pc := portapi.Credentials{ClientID: clientID, ClientSecret: clientSecret}
	unnamed := run("inProgress", "")
	unnamed.Name, unnamed.ID = "20261206.4", 777 // no Port run id in it

	if a := handle(t, e, hookEvent(servicehooktest.Notification(unnamed), hookPassword)); a.status != 200 || a.body["ignored"] == nil {
		t.Fatalf("before the relay set the externalRunId: %d %v, want 200 ignored", a.status, a.body)
	}
	oneLine(t, e)
	// What the relay does when Azure has queued the run.
	if err := port.Update(t.Context(), pc, portRun, portapi.RunUpdate{StatusLabel: "Queued in Azure DevOps", ExternalRunID: portapi.ExternalRunID("contoso", "777")}); err != nil {
		t.Fatal(err)
	}
	if a := handle(t, e, hookEvent(servicehooktest.Notification(unnamed), hookPassword)); a.status != 200 || a.body["updated"] != true || a.body["runId"] != portRun {
		t.Fatalf("found: %d %v, want 200 updated", a.status, a.body)
	}
	if line := oneLine(t, e); line["runId"] != portRun || line["azureRunId"] != "777" {
		t.Errorf("log line %v, want the Port run and the Azure run", line)
	}
	if got, _ := e.port.Run(portRun); got.ExternalRunID != "ado_contoso_777" || got.Link == "" || got.StatusLabel != "Running in Azure DevOps" {
		t.Errorf("Port run = %+v, want the Azure run's externalRunId and link", got)
	}
	e.f.Port = &portapi.Client{BaseURL: "http://127.0.0.1:9", HTTP: &http.Client{Timeout: time.Second}}
	unnamed.State, unnamed.Result = "completed", "succeeded"
	if a := handle(t, e, hookEvent(servicehooktest.Notification(unnamed), hookPassword)); a.status != 503 {
		t.Errorf("Port down during the lookup: %d %v, want 503 (Azure retries)", a.status, a.body)
	}
	if line := oneLine(t, e); line["reason"] != "port-unavailable" {
		t.Errorf("log line %v, want port-unavailable", line)
	}
	e.f.Port = port
	if a := handle(t, e, hookEvent(servicehooktest.Notification(unnamed), hookPassword)); a.status != 200 || a.body["status"] != "SUCCESS" {
		t.Errorf("Port back: %d %v, want SUCCESS", a.status, a.body)
	}
	if got, _ := e.port.Run(portRun); got.Status != "SUCCESS" || got.Summary != "Azure DevOps pipeline deploy-service (7), run 20261206.4 (777): succeeded." {
		t.Errorf("Port run = %+v, want SUCCESS with the summary", got)
	}
}

// TestARunWithoutAnIDIsReadFromItsLinks: Microsoft's current sample of the event has a
// run with no id and no name; its id is in its links, and the Port run it belongs to
// is found by it and ended, from stage events too.
func TestARunWithoutAnIDIsReadFromItsLinks(t *testing.T) {
	e := newEnv(t, fullSecret)
	e.port.CreateRuns("r_other")
	pc := portapi.Credentials{ClientID: clientID, ClientSecret: clientSecret}
	for id, ext := range map[string]string{portRun: "ado_contoso_31", "r_other": "ado_contoso_32"} {
		if err := (&portapi.Client{BaseURL: e.port.URL}).Update(t.Context(), pc, id, portapi.RunUpdate{ExternalRunID: ext}); err != nil {
			t.Fatal(err)
		}
	}
	r := servicehooktest.Run{PipelineID: 7, PipelineName: "deploy-service", ID: 31, State: "inProgress", NoID: true}
	if a := handle(t, e, hookEvent(servicehooktest.StageNotification(r, servicehooktest.Stage{Name: "build", State: "running"}), hookPassword)); a.status != 200 || a.body["runId"] != portRun {
		t.Fatalf("stage: %d %v, want the Port run of Azure run 31 updated", a.status, a.body)
	}
	r.State, r.Result = "completed", "failed"
	if a := handle(t, e, hookEvent(servicehooktest.Notification(r), hookPassword)); a.status != 200 || a.body["runId"] != portRun || a.body["status"] != "FAILURE" {
		t.Fatalf("completed: %d %v, want the Port run of Azure run 31 ended FAILURE", a.status, a.body)
	}
	got, _ := e.port.Run(portRun)
	if got.Status != "FAILURE" || got.ExternalRunID != "ado_contoso_31" || got.Summary != "Azure DevOps pipeline deploy-service (7), run (31): failed." {
		t.Errorf("Port run = %+v, want FAILURE, its summary naming run 31", got)
	}
	if other, _ := e.port.Run("r_other"); other.Status != "IN_PROGRESS" {
		t.Errorf("another Port run = %+v, want it untouched", other)
	}
}

// TestTwoOrganizationsRunsAreNotConfused: Azure run ids are unique only within one
// organization; two stacks on one Port organization find each their own Port run.
func TestTwoOrganizationsRunsAreNotConfused(t *testing.T) {
	e := newEnv(t, fullSecret)
	e.port.CreateRuns("r_fabrikam")
	pc := portapi.Credentials{ClientID: clientID, ClientSecret: clientSecret}
	c := &portapi.Client{BaseURL: e.port.URL}
	for id, org := range map[string]string{portRun: "contoso", "r_fabrikam": "fabrikam"} {
		if err := c.Update(t.Context(), pc, id, portapi.RunUpdate{ExternalRunID: portapi.ExternalRunID(org, "500")}); err != nil {
			t.Fatal(err)
		}
	}
	fabrikam := *e.f
	fabrikam.Org = "fabrikam"
	done := servicehooktest.Run{Org: "fabrikam", PipelineID: 7, ID: 500, Name: "20261206.9", State: "completed", Result: "succeeded"}
	if resp := fabrikam.Handle(context.Background(), "req-1", hookEvent(servicehooktest.Notification(done), hookPassword)); resp.Status != 200 {
		t.Fatalf("fabrikam's run 500: %d %s", resp.Status, resp.Body)
	}
	e.logs.Reset()
	if got, _ := e.port.Run("r_fabrikam"); got.Status != "SUCCESS" {
		t.Errorf("fabrikam's Port run = %+v, want SUCCESS", got)
	}
	if got, _ := e.port.Run(portRun); got.Status != "IN_PROGRESS" {
		t.Errorf("contoso's Port run = %+v after fabrikam's run 500 ended, want in progress", got)
	}
	done.Org, done.Result = "contoso", "failed"
	if a := handle(t, e, hookEvent(servicehooktest.Notification(done), hookPassword)); a.status != 200 || a.body["runId"] != portRun {
		t.Fatalf("contoso's run 500: %d %v", a.status, a.body)
	}
	if got, _ := e.port.Run(portRun); got.Status != "FAILURE" {
		t.Errorf("contoso's Port run = %+v, want FAILURE", got)
	}
}
