package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/queue"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

const (
	key = "unit-test-secret"
	now = 1764201600
)

// fakeSecrets serves fixed credentials or an error, and counts invalidations.
type fakeSecrets struct {
	creds       secret.Credentials
	rotated     secret.Credentials // what Renew finds, if set
	err         error
	invalidated int
	renewed     int
	gets        int
}

func (f *fakeSecrets) Get(context.Context) (secret.Credentials, error) {
	f.gets++
	return f.creds, f.err
}
func (f *fakeSecrets) Renew(context.Context) (secret.Credentials, bool, error) {
	f.renewed++
	if f.rotated.ClientSecret == "" {
		return f.creds, false, nil
	}
	f.creds = f.rotated
	return f.creds, true, nil
}
func (f *fakeSecrets) Invalidate() {
	f.invalidated++
	if f.rotated.ClientSecret != "" { // the next Get reads what is stored now
		f.creds = f.rotated
	}
}
func (f *fakeSecrets) ID() string { return "port/relay" }

// deliverFunc is a Deliverer from a function.
type deliverFunc func(ctx context.Context, webhook string, body, secret []byte) (azdo.Result, error)

func (f deliverFunc) Deliver(ctx context.Context, webhook string, body, secret []byte) (azdo.Result, error) {
	return f(ctx, webhook, body, secret)
}

// Run: these fixtures start no pipeline (pipelines_test.go uses azdo's client on azdotest).
func (f deliverFunc) Run(context.Context, azdo.Pipeline, []byte, azdo.Auth) (azdo.RunResult, error) {
	return azdo.RunResult{}, errors.New("deliverFunc starts no pipeline")
}

// reports records what the relay tells Port, and which runs it ended.
type reports struct {
	mu    sync.Mutex
	calls []string
	err   error
	ended map[string]bool
}

func (r *reports) Ended(_ context.Context, _ portapi.Credentials, runID string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended[runID], nil
}

func (r *reports) Log(_ context.Context, _ portapi.Credentials, runID, message string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "log "+runID+": "+message)
	return r.err
}

// Update records an update that ends the run as "fail", any other as "label".
func (r *reports) Update(_ context.Context, _ portapi.Credentials, runID string, u portapi.RunUpdate) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u.Status != "" && r.err == nil {
		if r.ended == nil {
			r.ended = map[string]bool{}
		}
		r.ended[runID] = true
	}
	switch u.Status {
	case "FAILURE":
		r.calls = append(r.calls, "fail "+runID+": "+u.StatusLabel+": "+u.Summary)
	case "":
		r.calls = append(r.calls, "label "+runID+": "+u.StatusLabel)
	default:
		r.calls = append(r.calls, u.Status+" "+runID)
	}
	return r.err
}

type fixture struct {
	relay     *Relay
	secrets   *fakeSecrets
	reports   *reports
	delivered []string // webhook names
	logs      *bytes.Buffer
}

func newFixture(azureErr error) *fixture {
	f := &fixture{
		secrets: &fakeSecrets{creds: secret.Credentials{ClientID: "id", ClientSecret: key}},
		reports: &reports{},
		logs:    &bytes.Buffer{},
	}
	f.relay = &Relay{
		Secrets: f.secrets,
		Port:    signature.Port{Now: func() time.Time { return time.Unix(now, 0) }},
		Report:  f.reports,
		Log:     slog.New(slog.NewJSONHandler(f.logs, nil)),
	}
	f.useAzure(deliverFunc(func(_ context.Context, webhook string, body, secret []byte) (azdo.Result, error) {
		f.delivered = append(f.delivered, webhook)
		if azureErr != nil {
			return azdo.Result{}, &azdo.Error{Status: 500, Attempts: 1, Err: azureErr}
		}
		return azdo.Result{Status: 200, Attempts: 1}, nil
	}), nil, nil)
	return f
}

// useAzure routes the fixture's webhooks (port_trigger, the default, and deploy) and
// pipelines to az.
func (f *fixture) useAzure(az Azure, pipelines []azdo.Pipeline, tokens *entra.Client) {
	f.relay.Routes = NewRoutes("contoso", "port_trigger", []string{"port_trigger", "deploy"}, pipelines, az, tokens)
}

// httpEvent is an HTTP API event for body, signed with secret at ts.
func httpEvent(method, path, body, secret string, ts int64) []byte {
	headers := map[string]string{"content-type": "application/json"}
	if secret != "" {
		headers["x-port-timestamp"] = strconv.FormatInt(ts, 10)
		headers["x-port-signature"] = signature.SignPort([]byte(secret), ts, []byte(body))
	}
	ev, _ := json.Marshal(map[string]any{
		"version": "2.0", "rawPath": path, "headers": headers, "body": body,
		"requestContext": map[string]any{"http": map[string]string{"method": method, "path": path}},
	})
	return ev
}

const goodBody = `{"env":"prod","port_context":{"runId":"r_unit1"}}`

func TestHandleHTTP(t *testing.T) {
	cases := []struct {
		name      string
		event     []byte
		azure     error
		status    int
		delivered string // webhook, "" for none
		report    string // prefix of what Port hears, "" for nothing
	}{
		{"a signed body goes to the default webhook", httpEvent("POST", "/", goodBody, key, now), nil, 200, "port_trigger", "log r_unit1: Azure DevOps accepted webhook port_trigger"},
		{"the path selects an allowed webhook", httpEvent("POST", "/prod/webhooks/deploy", goodBody, key, now), nil, 200, "deploy", "log r_unit1"},
		{"a webhook not in the allow list is 404", httpEvent("POST", "/webhooks/other", goodBody, key, now), nil, 404, "", "fail r_unit1: Unknown webhook"},
		{"an invalid webhook name is 404", httpEvent("POST", "/webhooks/a.b", goodBody, key, now), nil, 404, "", "fail r_unit1"},
		{"GET is 405", httpEvent("GET", "/", goodBody, key, now), nil, 405, "", ""},
		{"no signature is 401 and reports nothing", httpEvent("POST", "/", goodBody, "", now), nil, 401, "", ""},
		{"another secret is 401 and reports nothing", httpEvent("POST", "/", goodBody, "guess", now), nil, 401, "", ""},
		{"an old timestamp is 401", httpEvent("POST", "/", goodBody, key, now-600), nil, 401, "", ""},
		{"a reserved key is 422 and fails the run", httpEvent("POST", "/", `{"run":1,"port_context":{"runId":"r_unit1"}}`, key, now), nil, 422, "", "fail r_unit1: Payload rejected"},
		{"an array body is 400", httpEvent("POST", "/", `[1]`, key, now), nil, 400, "", ""},
		{"a body over 1 MiB is 413 before any secret is read", httpEvent("POST", "/", `{"a":"`+strings.Repeat("x", 1<<20)+`"}`, key, now), nil, 413, "", ""},
		{"an unknown webhook at Azure is 502 and fails the run", httpEvent("POST", "/", goodBody, key, now), azdo.ErrWebhookNotFound, 502, "port_trigger", "fail r_unit1: Webhook not found"},
		{"an Azure timeout is 504 and leaves the run in progress, saying where to look", httpEvent("POST", "/", goodBody, key, now), azdo.ErrNoAnswer, 504, "port_trigger",
			"log r_unit1: Azure DevOps did not answer in time. The run may have been queued, so the relay did not retry: check the pipeline's runs before trying again. The pipeline behind webhook port_trigger may be running: look at its runs in Azure DevOps before you run this action again. If it runs, this run follows it to its end.\nlabel r_unit1: May have been queued: check Azure DevOps (timed out)"},
		{"a bare 500 from Azure leaves the run in progress", httpEvent("POST", "/", goodBody, key, now), azdo.ErrServerError, 502, "port_trigger", "log r_unit1: Azure DevOps failed with a server error."},
		{"a connection broken after sending leaves the run in progress", httpEvent("POST", "/", goodBody, key, now), azdo.ErrConnection, 502, "port_trigger", "log r_unit1: The connection to Azure DevOps broke after the request was sent."},
		{"nothing sent in time ends the run", httpEvent("POST", "/", goodBody, key, now), azdo.ErrNoTime, 504, "port_trigger", "fail r_unit1: Timed out"},
		{"a malformed HTTP event is 400", []byte(`{"requestContext":{"http":{}},"version":"2.0"}`), nil, 400, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newContainers(t).container(c.azure) // with the ledger, as deployed by default
			resp := f.relay.Handle(context.Background(), "req-1", c.event)
			if resp.Status != c.status || !resp.HTTP {
				t.Fatalf("Handle = %d (HTTP %v) %s, want %d", resp.Status, resp.HTTP, resp.Body, c.status)
			}
			var body map[string]any
			if err := json.Unmarshal(resp.Body, &body); err != nil {
				t.Fatalf("body %s is not JSON", resp.Body)
			}
			if say, _ := body["error"].(string); c.status != 200 && say == "" {
				t.Errorf("error body %s has no sentence", resp.Body)
			}
			if (c.status == 405 || c.status == 413) && f.secrets.gets != 0 {
				t.Errorf("the secret was read %d times, want none before the request is refused", f.secrets.gets)
			}
			if got := strings.Join(f.delivered, ","); got != c.delivered {
				t.Errorf("delivered to %q, want %q", got, c.delivered)
			}
			got := strings.Join(f.reports.calls, "\n")
			if (c.report == "") != (got == "") || !strings.HasPrefix(got, c.report) {
				t.Errorf("Port heard %q, want %q…", got, c.report)
			}
			if n := strings.Count(f.logs.String(), `"requestId":"req-1"`); n != 1 {
				t.Errorf("%d log lines for the invocation, want 1:\n%s", n, f.logs)
			}
			if strings.Contains(f.logs.String(), key) || strings.Contains(f.logs.String(), `"env":"prod"`) {
				t.Errorf("log leaks the secret or the body: %s", f.logs)
			}
		})
	}
}

// Without a ledger the relay cannot tell a first request from a replay of a run it
// delivered in another container: a refusal is told to the run, not made its end.
func TestWithoutALedgerARefusalDoesNotEndTheRun(t *testing.T) {
	for _, tt := range []struct {
		name  string
		path  string
		azure error
		want  string
	}{
		{"a route refused", "/webhooks/other", nil, "log r_unit1: Webhook not allowed: the path names a webhook that is not in AZURE_DEVOPS_WEBHOOKS: \"other\".\nlabel r_unit1: Unknown webhook"},
		{"Azure refused", "/", azdo.ErrWebhookNotFound, "log r_unit1: Azure DevOps cannot find this webhook: check the name in the service connection, and run the pipeline once from its default branch so that Azure registers it.\nlabel r_unit1: Webhook not found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.azure)
			handle(f, httpEvent("POST", tt.path, goodBody, key, now))
			if got := strings.Join(f.reports.calls, "\n"); got != tt.want {
				t.Errorf("Port heard %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHandleAWSEvents(t *testing.T) {
	cases := []struct {
		name   string
		event  string
		azure  error
		status int
	}{
		{"a scheduled event is forwarded as it came", `{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}`, nil, 200},
		{"a direct invoke is forwarded", `{"service":"payments"}`, nil, 200},
		{"a direct invoke with a reserved key fails", `{"tags":"x"}`, nil, 422},
		{"an Azure refusal fails the invocation", `{"service":"payments"}`, azdo.ErrSignatureRefused, 502},
		{"throttling fails the invocation", `{"service":"payments"}`, azdo.ErrThrottled, 502},
		{"an Azure timeout may have queued the run: a result", `{"service":"payments"}`, azdo.ErrNoAnswer, 504},
		{"a connection broken after sending may have queued the run: a result", `{"service":"payments"}`, azdo.ErrConnection, 502},
		{"a bare Azure 5xx may have queued the run: a result", `{"service":"payments"}`, azdo.ErrServerError, 502},
		{"an array event fails", `[1,2]`, nil, 400},
		{"a non-JSON event fails", `not json`, nil, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(c.azure)
			resp := f.relay.Handle(context.Background(), "req-2", []byte(c.event))
			if resp.HTTP || resp.Status != c.status {
				t.Fatalf("Handle = %d (HTTP %v), want %d as an AWS result", resp.Status, resp.HTTP, c.status)
			}
			if c.status >= 300 && resp.Error == "" {
				t.Error("a failed AWS event has no error sentence")
			}
			ambiguous := errors.Is(c.azure, azdo.ErrNoAnswer) || errors.Is(c.azure, azdo.ErrConnection) || errors.Is(c.azure, azdo.ErrServerError)
			if resp.MayHaveQueued != ambiguous {
				t.Errorf("MayHaveQueued = %v, want %v: only a failure after which Azure may have queued the run is kept from Lambda's retries", resp.MayHaveQueued, ambiguous)
			}
			if ambiguous {
				var result map[string]any
				if json.Unmarshal(resp.Body, &result) != nil || result["mayHaveQueued"] != true || result["forwarded"] != false {
					t.Errorf("result %s: want forwarded false and mayHaveQueued true", resp.Body)
				}
				if !strings.Contains(f.logs.String(), `"level":"ERROR"`) || !strings.Contains(f.logs.String(), `"mayHaveQueued":true`) {
					t.Errorf("log %s: want ERROR with mayHaveQueued", f.logs)
				}
			}
			if len(f.reports.calls) != 0 {
				t.Errorf("Port heard %v about an AWS event, want nothing", f.reports.calls)
			}
		})
	}
}

func TestSecretErrorsAre503WithTheSecretIDLogged(t *testing.T) {
	for _, err := range []error{secret.ErrNotFound, secret.ErrEmpty, secret.ErrMalformed, fmt.Errorf("%w: ThrottlingException", secret.ErrUnavailable)} {
		t.Run(err.Error(), func(t *testing.T) {
			f := newFixture(nil)
			f.secrets.err = err
			resp := f.relay.Handle(context.Background(), "req-3", httpEvent("POST", "/", goodBody, key, now))
			if resp.Status != 503 || len(f.delivered) != 0 {
				t.Fatalf("Handle = %d with %d deliveries, want 503 and none", resp.Status, len(f.delivered))
			}
			if !strings.Contains(f.logs.String(), `"secretId":"port/relay"`) || !strings.Contains(f.logs.String(), `"level":"ERROR"`) {
				t.Errorf("log %s does not name the secret at ERROR", f.logs)
			}
		})
	}
}

func TestSignatureRefusalInvalidatesTheSecret(t *testing.T) {
	f := newFixture(azdo.ErrSignatureRefused)
	f.relay.Handle(context.Background(), "req-4", httpEvent("POST", "/", goodBody, key, now))
	if f.secrets.invalidated != 1 {
		t.Errorf("invalidated %d times, want 1", f.secrets.invalidated)
	}
}

func TestReportFailureIsLoggedAndDoesNotChangeTheAnswer(t *testing.T) {
	f := newFixture(nil)
	f.reports.err = errors.New("port is down")
	resp := f.relay.Handle(context.Background(), "req-5", httpEvent("POST", "/", goodBody, key, now))
	if resp.Status != 200 {
		t.Fatalf("status = %d, want 200", resp.Status)
	}
	if !strings.Contains(f.logs.String(), `"level":"ERROR","msg":"forwarded"`) || !strings.Contains(f.logs.String(), `"reportError":"port is down"`) ||
		!strings.Contains(f.logs.String(), `"runId":"r_unit1"`) || strings.Count(f.logs.String(), "\n") != 1 {
		t.Errorf("log %s: want the invocation's one line at ERROR, with the run id and the report's error", f.logs)
	}
}

func TestWithoutClientIDNothingIsReported(t *testing.T) {
	f := newFixture(nil)
	f.secrets.creds.ClientID = ""
	f.relay.Handle(context.Background(), "req-6", httpEvent("POST", "/", goodBody, key, now))
	if len(f.reports.calls) != 0 {
		t.Errorf("Port heard %v, want nothing without a clientId", f.reports.calls)
	}
}

func TestWorkContextKeepsTheMargins(t *testing.T) {
	deadline := time.Now().Add(10 * time.Second)
	parent, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for _, c := range []struct {
		reporting bool
		keep      time.Duration
	}{{false, Margin}, {true, Margin + ReportBudget}} {
		ctx, cancel := workContext(parent, c.reporting)
		got, _ := ctx.Deadline()
		cancel()
		if d := deadline.Sub(got); d < c.keep-10*time.Millisecond || d > c.keep {
			t.Errorf("workContext(reporting=%v) deadline = %v before, want %v", c.reporting, d, c.keep)
		}
	}
	short, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	ctx, cancelWork := workContext(short, true)
	defer cancelWork()
	if left := time.Until(mustDeadline(ctx)); left < 900*time.Millisecond {
		t.Errorf("with 1.5 s left, the work gets %v, want about 1 s", left)
	}
}

func mustDeadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func TestEveryRuleHasAStatusAndASentence(t *testing.T) {
	for err, r := range answers.Rows {
		if r.Status < 400 || r.Say == "" {
			t.Errorf("answer to %v: status %d, sentence %q", err, r.Status, r.Say)
		}
		if r.Status >= 500 && r.Label == "" {
			t.Errorf("answer to %v has no label for Port", err)
		}
	}
	_, say := classify(fmt.Errorf("%w: %q", ErrRoute, "other"))
	if want := `Webhook not allowed: the path names a webhook that is not in AZURE_DEVOPS_WEBHOOKS: "other".`; say != want {
		t.Errorf("classify = %q, want %q", say, want)
	}
	if r, _ := classify(errors.New("surprise")); r.Status != 500 {
		t.Errorf("an unknown error maps to %d, want 500", r.Status)
	}
}

func TestReportContextEndsBeforeTheLambdaDeadline(t *testing.T) {
	near, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ctx, cancelReport := reportContext(near)
	defer cancelReport()
	if left := time.Until(mustDeadline(ctx)); left > time.Second-Margin {
		t.Errorf("with 1 s left the report may take %v, want at most %v", left, time.Second-Margin)
	}
	far, cancelFar := context.WithTimeout(context.Background(), time.Minute)
	defer cancelFar()
	ctx, cancelReport = reportContext(far)
	defer cancelReport()
	if left := time.Until(mustDeadline(ctx)); left > ReportBudget {
		t.Errorf("with a minute left the report may take %v, want at most %v", left, ReportBudget)
	}
}

func TestAReplayedRequestIsRefusedAndNotDelivered(t *testing.T) {
	f := newFixture(nil)
	f.relay.Port.Replays = &signature.Replays{}
	ev := httpEvent("POST", "/", goodBody, key, now)
	first := f.relay.Handle(context.Background(), "req-7", ev)
	again := f.relay.Handle(context.Background(), "req-8", ev)
	if first.Status != 200 || again.Status != 401 || len(f.delivered) != 1 {
		t.Fatalf("statuses %d then %d with %d deliveries, want 200 then 401 and one delivery", first.Status, again.Status, len(f.delivered))
	}
	if !strings.Contains(string(again.Body), "replay") {
		t.Errorf("body %s does not say it is a replay", again.Body)
	}
}

func TestARotatedSecretIsReadAgainOnAMismatch(t *testing.T) {
	f := newFixture(nil)
	f.secrets.creds.ClientSecret = "the-old-secret"
	f.secrets.rotated = secret.Credentials{ClientID: "id", ClientSecret: key}
	resp := f.relay.Handle(context.Background(), "req-9", httpEvent("POST", "/", goodBody, key, now))
	if resp.Status != 200 || f.secrets.renewed != 1 || len(f.delivered) != 1 {
		t.Fatalf("status %d after %d renewals with %d deliveries, want 200 after 1 renewal and 1 delivery", resp.Status, f.secrets.renewed, len(f.delivered))
	}
	f = newFixture(nil)
	resp = f.relay.Handle(context.Background(), "req-10", httpEvent("POST", "/", goodBody, "guess", now))
	if resp.Status != 401 || f.secrets.renewed != 1 || len(f.delivered) != 0 {
		t.Fatalf("a wrong signature: status %d after %d renewals, want 401 after 1 renewal that found nothing new", resp.Status, f.secrets.renewed)
	}
}

// storedSecrets is a Secrets whose cache and store differ, as in a warm container
// after put-secret-value: Get answers the cache until Invalidate.
type storedSecrets struct {
	cached, stored secret.Credentials
	stale          bool
	reads          int
}

func (s *storedSecrets) Get(context.Context) (secret.Credentials, error) {
	if s.stale {
		s.cached, s.stale = s.stored, false
		s.reads++
	}
	return s.cached, nil
}
func (s *storedSecrets) Renew(context.Context) (secret.Credentials, bool, error) {
	return s.cached, false, nil
}
func (s *storedSecrets) Invalidate() { s.stale = true }
func (s *storedSecrets) ID() string  { return "port/relay" }

// previousFunc is a PreviousSecrets from a function.
type previousFunc func(ctx context.Context, current secret.Credentials) (secret.Credentials, error)

func (f previousFunc) Get(ctx context.Context, current secret.Credentials) (secret.Credentials, error) {
	return f(ctx, current)
}

func TestAzureRotation(t *testing.T) {
	withAzure := func(azure string) secret.Credentials {
		return secret.Credentials{ClientID: "id", ClientSecret: key, AzureWebhookSecret: azure}
	}
	tests := []struct {
		name          string
		cached        secret.Credentials // the container's copy
		stored        secret.Credentials // AWSCURRENT now
		previous      string             // AWSPREVIOUS's azureWebhookSecret; "" for none
		azureHolds    string             // the service connection's secret
		azureErr      error              // Azure fails so, whatever the signature
		status        int
		signed        []string // the keys Azure saw, in order
		previousReads int
		logs          string // in the log line
	}{
		{name: "azureWebhookSecret signs, not the clientSecret, and AWSPREVIOUS is not read",
			cached: withAzure("az-new"), stored: withAzure("az-new"), previous: "az-old", azureHolds: "az-new",
			status: 200, signed: []string{"az-new"}},
		{name: "without azureWebhookSecret the clientSecret signs, as in Port's own setup",
			cached: withAzure(""), stored: withAzure(""), azureHolds: key,
			status: 200, signed: []string{key}},
		{name: "Azure still holds the previous value: refused, then signed with AWSPREVIOUS and queued",
			cached: withAzure("az-new"), stored: withAzure("az-new"), previous: "az-old", azureHolds: "az-old",
			status: 200, signed: []string{"az-new", "az-old"}, previousReads: 1, logs: `"attempts":2,"azureSecret":"AWSPREVIOUS"`},
		{name: "Azure was changed while this container held the old value: it reads the current one again",
			cached: withAzure("az-old"), stored: withAzure("az-new"), previous: "az-old", azureHolds: "az-new",
			status: 200, signed: []string{"az-old", "az-new"}, logs: `"azureSecret":"AWSCURRENT"`},
		{name: "no AWSPREVIOUS: one attempt, 502",
			cached: withAzure("az-new"), stored: withAzure("az-new"), azureHolds: "az-other",
			status: 502, signed: []string{"az-new"}, previousReads: 1},
		{name: "AWSPREVIOUS with the same Azure key is not tried again: 502",
			cached: withAzure("az-new"), stored: withAzure("az-new"), previous: "az-new", azureHolds: "az-other",
			status: 502, signed: []string{"az-new"}, previousReads: 1},
		{name: "both refused: each signed once, 502",
			cached: withAzure("az-new"), stored: withAzure("az-new"), previous: "az-old", azureHolds: "az-other",
			status: 502, signed: []string{"az-new", "az-old"}, previousReads: 1, logs: `"attempts":2`},
		{name: "a stale copy, then both values refused: never more than two signatures",
			cached: withAzure("az-older"), stored: withAzure("az-new"), previous: "az-old", azureHolds: "az-other",
			status: 502, signed: []string{"az-older", "az-new"}},
		{name: "an ambiguous server error is never sent again",
			cached: withAzure("az-new"), stored: withAzure("az-new"), previous: "az-old", azureErr: azdo.ErrServerError,
			status: 502, signed: []string{"az-new"}},
		{name: "a timeout is never sent again",
			cached: withAzure("az-new"), stored: withAzure("az-new"), previous: "az-old", azureErr: azdo.ErrNoAnswer,
			status: 504, signed: []string{"az-new"}},
		{name: "a dropped connection is never sent again",
			cached: withAzure("az-new"), stored: withAzure("az-new"), previous: "az-old", azureErr: azdo.ErrConnection,
			status: 502, signed: []string{"az-new"}},
		{name: "an unknown webhook is not signed again",
			cached: withAzure("az-new"), stored: withAzure("az-new"), previous: "az-old", azureErr: azdo.ErrWebhookNotFound,
			status: 502, signed: []string{"az-new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(nil)
			secrets := &storedSecrets{cached: tt.cached, stored: tt.stored}
			var signed []string
			previousReads := 0
			f.relay.Secrets = secrets
			f.relay.Previous = previousFunc(func(_ context.Context, current secret.Credentials) (secret.Credentials, error) {
				previousReads++
				if current != tt.stored {
					t.Errorf("AWSPREVIOUS asked beside %+v, want the current value", current)
				}
				if tt.previous == "" {
					return secret.Credentials{}, secret.ErrNotFound
				}
				return withAzure(tt.previous), nil
			})
			f.useAzure(deliverFunc(func(_ context.Context, webhook string, body, key []byte) (azdo.Result, error) {
				signed = append(signed, string(key))
				switch {
				case tt.azureErr != nil:
					return azdo.Result{}, &azdo.Error{Status: 500, Attempts: 1, Err: tt.azureErr}
				case string(key) != tt.azureHolds:
					return azdo.Result{}, &azdo.Error{Status: 500, Attempts: 1, Err: azdo.ErrSignatureRefused}
				}
				return azdo.Result{Status: 200, Attempts: 1}, nil
			}), nil, nil)
			resp := f.relay.Handle(context.Background(), "req-rot", httpEvent("POST", "/", goodBody, key, now))
			if resp.Status != tt.status || !slices.Equal(signed, tt.signed) {
				t.Fatalf("Handle = %d %s, signed with %q; want %d, signed with %q", resp.Status, resp.Body, signed, tt.status, tt.signed)
			}
			if previousReads != tt.previousReads {
				t.Errorf("AWSPREVIOUS read %d times, want %d", previousReads, tt.previousReads)
			}
			if !strings.Contains(f.logs.String(), tt.logs) {
				t.Errorf("log %s lacks %s", f.logs, tt.logs)
			}
			for _, v := range []string{key, "az-new", "az-old", "az-older", "az-other"} {
				if strings.Contains(f.logs.String(), v) || strings.Contains(string(resp.Body), v) {
					t.Errorf("log or answer holds the secret value %q", v)
				}
			}
		})
	}
}

// An EventBridge event takes the same second chance: the run is queued, no function error.
func TestAzureRotationForAWSEvents(t *testing.T) {
	f := newFixture(nil)
	creds := secret.Credentials{ClientSecret: key, AzureWebhookSecret: "az-new"}
	f.relay.Secrets = &storedSecrets{cached: creds, stored: creds}
	f.relay.Previous = previousFunc(func(context.Context, secret.Credentials) (secret.Credentials, error) {
		return secret.Credentials{ClientSecret: key, AzureWebhookSecret: "az-old"}, nil
	})
	var signed []string
	f.useAzure(deliverFunc(func(_ context.Context, _ string, _, k []byte) (azdo.Result, error) {
		signed = append(signed, string(k))
		if string(k) != "az-old" {
			return azdo.Result{}, &azdo.Error{Status: 500, Attempts: 1, Err: azdo.ErrSignatureRefused}
		}
		return azdo.Result{Status: 200, Attempts: 1}, nil
	}), nil, nil)
	resp := f.relay.Handle(context.Background(), "req-ev", []byte(`{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}`))
	if resp.HTTP || resp.Status != 200 || !slices.Equal(signed, []string{"az-new", "az-old"}) {
		t.Fatalf("Handle = %+v, signed with %q; want a result after az-new then az-old", resp, signed)
	}
}

// TestEveryErrorHasAnAnswer: a sentinel of a package the relay calls that the table
// forgot would fall through to a 500 "failed unexpectedly".
func TestEveryErrorHasAnAnswer(t *testing.T) {
	for pkg, errs := range map[string][]error{"azdo": azdo.Errors, "entra": entra.Errors, "ledger": ledger.Errors, "secret": secret.Errors, "queue": queue.Errors} {
		for _, err := range answers.Missing(errs...) {
			t.Errorf("%s's %q has no answer in the relay's table", pkg, err)
		}
	}
}
