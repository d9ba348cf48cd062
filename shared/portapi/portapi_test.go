package portapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
)

const runID = "r_jE5FhDURh4Uen2Qr"

var creds = portapi.Credentials{ClientID: "client-id", ClientSecret: "s3cr3t-value"}

func newPort(t *testing.T) (*porttest.Server, *portapi.Client) {
	t.Helper()
	port := porttest.New(creds.ClientID, creds.ClientSecret)
	t.Cleanup(port.Close)
	port.CreateRuns(runID)
	return port, &portapi.Client{BaseURL: port.URL}
}

func TestLogAddsALineToTheRun(t *testing.T) {
	port, c := newPort(t)
	if err := c.Log(t.Context(), creds, runID, "Azure DevOps accepted webhook deploy (pipeline queued)"); err != nil {
		t.Fatalf("Log() = %v, want nil", err)
	}
	logs := port.Logs(runID)
	if len(logs) != 1 || logs[0].Message != "Azure DevOps accepted webhook deploy (pipeline queued)" || logs[0].TerminationStatus != "" {
		t.Errorf("Logs(%q) = %+v, want one line without terminationStatus", runID, logs)
	}
	if got := port.Updates(runID); len(got) != 0 {
		t.Errorf("Updates(%q) = %+v, want none: a log leaves the final status to the pipeline", runID, got)
	}
}

func TestUpdateEndsTheRunWithFailure(t *testing.T) {
	port, c := newPort(t)
	failure := portapi.RunUpdate{Status: "FAILURE", StatusLabel: "Azure refused", Summary: "Register webhook deploy in Azure DevOps."}
	if err := c.Update(t.Context(), creds, runID, failure); err != nil {
		t.Fatalf("Update() = %v, want nil", err)
	}
	want := porttest.Update{Status: "FAILURE", StatusLabel: "Azure refused", Summary: "Register webhook deploy in Azure DevOps."}
	if got := port.Updates(runID); len(got) != 1 || got[0] != want {
		t.Errorf("Updates(%q) = %+v, want [%+v]", runID, got, want)
	}

	// The run has ended: Port refuses a second final status and further logs.
	if err := c.Update(t.Context(), creds, runID, failure); !errors.Is(err, portapi.ErrRunEnded) {
		t.Errorf("second Update() = %v, want %v", err, portapi.ErrRunEnded)
	}
	if err := c.Log(t.Context(), creds, runID, "late"); !errors.Is(err, portapi.ErrRunEnded) {
		t.Errorf("Log() after the final status = %v, want %v", err, portapi.ErrRunEnded)
	}
}

func TestUpdateSaysWhyPortRefused(t *testing.T) {
	running := portapi.RunUpdate{StatusLabel: "Running in Azure DevOps", Link: "https://dev.azure.com/o/p/_build/results?buildId=7", ExternalRunID: "7"}
	final := portapi.RunUpdate{Status: "SUCCESS", StatusLabel: "Azure DevOps run succeeded", Link: running.Link, ExternalRunID: "7", Summary: "deploy: run 7 succeeded."}
	tests := []struct {
		name   string
		runID  string
		before []portapi.RunUpdate
		update portapi.RunUpdate
		want   error // nil: accepted
	}{
		{"a run in progress takes its link", runID, nil, running, nil},
		{"a run in progress takes its final status", runID, []portapi.RunUpdate{running}, final, nil},
		{"a run that does not exist is ErrRunNotFound", "r_unknown", nil, running, portapi.ErrRunNotFound},
		{"a second final status is ErrRunEnded", runID, []portapi.RunUpdate{final}, final, portapi.ErrRunEnded},
		{"a link after the final status is ErrRunEnded", runID, []portapi.RunUpdate{final}, running, portapi.ErrRunEnded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newPort(t)
			for _, u := range tt.before {
				if err := c.Update(t.Context(), creds, tt.runID, u); err != nil {
					t.Fatalf("Update(%+v) = %v, want nil", u, err)
				}
			}
			err := c.Update(t.Context(), creds, tt.runID, tt.update)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && (!errors.Is(err, tt.want) || !errors.Is(err, portapi.ErrRejected))) {
				t.Errorf("Update() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestUpdateClassifiesPortsAnswers(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		runStatus string // what GET /v1/actions/runs/{id} says of the run; "" answers 404
		want      error
	}{
		{"503 is ErrUnavailable", 503, `{"ok":false,"error":"internal_error"}`, "IN_PROGRESS", portapi.ErrUnavailable},
		{"500 is ErrUnavailable", 500, ``, "IN_PROGRESS", portapi.ErrUnavailable},
		{"429 is ErrUnavailable", 429, `{"ok":false,"error":"rate_limit"}`, "IN_PROGRESS", portapi.ErrUnavailable},
		{"404 is ErrRunNotFound", 404, `{"ok":false,"error":"not_found","message":"The action run was not found"}`, "", portapi.ErrRunNotFound},
		{"422 for a run Port shows as SUCCESS is ErrRunEnded", 422, `{"ok":false,"error":"run_already_finished"}`, "SUCCESS", portapi.ErrRunEnded},
		{"409 for a run Port shows as FAILURE is ErrRunEnded", 409, `{"ok":false,"error":"conflict"}`, "FAILURE", portapi.ErrRunEnded},
		{"400 for a run Port shows as FAILURE is ErrRunEnded", 400, `{"ok":false,"error":"bad_request"}`, "FAILURE", portapi.ErrRunEnded},
		{"422 for a run still in progress is only ErrRejected: the body broke the schema", 422, `{"ok":false,"error":"invalid_request","message":"body/x"}`, "IN_PROGRESS", portapi.ErrRejected},
		{"422 when the run cannot be read is only ErrRejected", 422, `{"ok":false,"error":"run_already_finished"}`, "", portapi.ErrRejected},
		{"413 is only ErrRejected, whatever the run", 413, `{"ok":false,"error":"too_large"}`, "SUCCESS", portapi.ErrRejected},
		{"403 for a run in progress is only ErrRejected", 403, `{"ok":false,"error":"forbidden"}`, "IN_PROGRESS", portapi.ErrRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/v1/auth/access_token":
					w.Write([]byte(`{"accessToken":"tok","expiresIn":10800}`))
				case r.Method == http.MethodGet && tt.runStatus != "":
					w.Write([]byte(`{"ok":true,"run":{"id":"` + runID + `","status":"` + tt.runStatus + `"}}`))
				case r.Method == http.MethodGet:
					w.WriteHeader(404)
				default:
					w.WriteHeader(tt.status)
					w.Write([]byte(tt.body))
				}
			}))
			defer srv.Close()
			c := &portapi.Client{BaseURL: srv.URL}
			err := c.Update(t.Context(), creds, runID, portapi.RunUpdate{StatusLabel: "x"})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Update() = %v, want %v", err, tt.want)
			}
			for _, other := range []error{portapi.ErrUnavailable, portapi.ErrRunNotFound, portapi.ErrRunEnded} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("Update() = %v, also %v", err, other)
				}
			}
			if strings.Contains(err.Error(), "body/x") || strings.Contains(err.Error(), "run_already_finished") {
				t.Errorf("Update() = %q, shows Port's answer", err)
			}
		})
	}
}

func TestPortUnreachableIsErrUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there now
	c := &portapi.Client{BaseURL: base}
	if err := c.Update(t.Context(), creds, runID, portapi.RunUpdate{StatusLabel: "x"}); !errors.Is(err, portapi.ErrUnavailable) {
		t.Errorf("Update() = %v, want %v", err, portapi.ErrUnavailable)
	}
}

func TestOneTokenServesManyConcurrentCalls(t *testing.T) {
	port, c := newPort(t)
	const calls = 20
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for range calls {
		wg.Go(func() { errs <- c.Log(t.Context(), creds, runID, "line") })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Log() = %v, want nil", err)
		}
	}
	if got := port.TokenRequests(); got != 1 {
		t.Errorf("TokenRequests() = %d, want 1", got)
	}
	if got := len(port.Logs(runID)); got != calls {
		t.Errorf("len(Logs) = %d, want %d", got, calls)
	}
}

func TestTokenIsRenewedBeforeItExpires(t *testing.T) {
	tests := []struct {
		name  string
		later time.Duration
		want  int // token requests in all
	}{
		{"a token 2 hours old is reused", 2 * time.Hour, 1},
		{"a token 2h54m old is reused", 2*time.Hour + 54*time.Minute, 1},
		{"a token within 5 minutes of its 3 hours is replaced", 2*time.Hour + 56*time.Minute, 2},
		{"a token past its 3 hours is replaced", 4 * time.Hour, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, c := newPort(t)
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			c.Now = func() time.Time { return now }
			if err := c.Log(t.Context(), creds, runID, "first"); err != nil {
				t.Fatalf("Log() = %v, want nil", err)
			}
			now = now.Add(tt.later)
			if err := c.Log(t.Context(), creds, runID, "second"); err != nil {
				t.Fatalf("Log() = %v, want nil", err)
			}
			if got := port.TokenRequests(); got != tt.want {
				t.Errorf("TokenRequests() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRefusedTokenIsRefreshedOnce(t *testing.T) {
	port, c := newPort(t)
	if err := c.Log(t.Context(), creds, runID, "first"); err != nil {
		t.Fatalf("Log() = %v, want nil", err)
	}
	port.ExpireTokens()
	if err := c.Log(t.Context(), creds, runID, "second"); err != nil {
		t.Fatalf("Log() after ExpireTokens = %v, want nil", err)
	}
	// token, log; then log (401), token, log.
	if got, want := port.TokenRequests(), 2; got != want {
		t.Errorf("TokenRequests() = %d, want %d", got, want)
	}
	if got, want := port.Requests(), 5; got != want {
		t.Errorf("Requests() = %d, want %d", got, want)
	}
	if got := len(port.Logs(runID)); got != 2 {
		t.Errorf("len(Logs) = %d, want 2", got)
	}
}

func TestSecondRefusalIsAnErrorNotALoop(t *testing.T) {
	var mu sync.Mutex
	tokens, runs := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/v1/auth/access_token" {
			tokens++
			w.Write([]byte(`{"accessToken":"tok-abc","expiresIn":10800}`))
			return
		}
		runs++
		// An upstream echoing what it got must not reach our errors.
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(r.Header.Get("Authorization")))
	}))
	defer srv.Close()

	c := &portapi.Client{BaseURL: srv.URL}
	err := c.Log(t.Context(), creds, runID, "line")
	if !errors.Is(err, portapi.ErrRejected) {
		t.Fatalf("Log() = %v, want %v", err, portapi.ErrRejected)
	}
	if strings.Contains(err.Error(), "tok-abc") {
		t.Errorf("Log() = %q, shows the token", err)
	}
	if tokens != 2 || runs != 2 {
		t.Errorf("token requests = %d, run requests = %d; want 2 and 2", tokens, runs)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		creds    portapi.Credentials
		runID    string
		want     error
		requests int // reaching the double
	}{
		{"a wrong secret gets no token", portapi.Credentials{ClientID: creds.ClientID, ClientSecret: "wrong-s3cr3t"}, runID, portapi.ErrToken, 1},
		{"a wrong client id gets no token", portapi.Credentials{ClientID: "other", ClientSecret: creds.ClientSecret}, runID, portapi.ErrToken, 1},
		{"an empty secret is refused before any request", portapi.Credentials{ClientID: creds.ClientID}, runID, portapi.ErrNoCredentials, 0},
		{"an empty client id is refused before any request", portapi.Credentials{ClientSecret: creds.ClientSecret}, runID, portapi.ErrNoCredentials, 0},
		{"an empty run id is refused", creds, "", portapi.ErrBadRunID, 0},
		{"a run id with a slash is refused", creds, "r_1/../../auth", portapi.ErrBadRunID, 0},
		{"a run id with a query is refused", creds, "r_1?x=1", portapi.ErrBadRunID, 0},
		{"a run id with an escape is refused", creds, "r_1%2F", portapi.ErrBadRunID, 0},
		{"a run id with a space is refused", creds, "r 1", portapi.ErrBadRunID, 0},
		{"a run id of 101 characters is refused", creds, strings.Repeat("r", 101), portapi.ErrBadRunID, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, c := newPort(t)
			for _, call := range []func() error{
				func() error { return c.Log(t.Context(), tt.creds, tt.runID, "line") },
				func() error {
					return c.Update(t.Context(), tt.creds, tt.runID, portapi.RunUpdate{Status: "FAILURE", StatusLabel: "label", Summary: "summary"})
				},
			} {
				err := call()
				if !errors.Is(err, tt.want) {
					t.Errorf("err = %v, want %v", err, tt.want)
				}
				if err != nil && tt.creds.ClientSecret != "" && strings.Contains(err.Error(), tt.creds.ClientSecret) {
					t.Errorf("err = %q, shows the client secret", err)
				}
			}
			if got, want := port.Requests(), 2*tt.requests; got != want {
				t.Errorf("Requests() = %d, want %d", got, want)
			}
		})
	}
}

func TestChangedSecretIsNotServedTheCachedToken(t *testing.T) {
	port, c := newPort(t)
	if err := c.Log(t.Context(), creds, runID, "line"); err != nil {
		t.Fatalf("Log() = %v, want nil", err)
	}
	rotated := portapi.Credentials{ClientID: creds.ClientID, ClientSecret: "rotated-s3cr3t"}
	if err := c.Log(t.Context(), rotated, runID, "line"); !errors.Is(err, portapi.ErrToken) {
		t.Errorf("Log(rotated secret) = %v, want %v", err, portapi.ErrToken)
	}
	if got := port.TokenRequests(); got != 2 {
		t.Errorf("TokenRequests() = %d, want 2", got)
	}
}

func TestCancelledContextIsReported(t *testing.T) {
	_, c := newPort(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Log(ctx, creds, runID, "line"); !errors.Is(err, context.Canceled) {
		t.Errorf("Log(cancelled) = %v, want %v", err, context.Canceled)
	}
}

// TestRedirectsAreRefused: a redirect from PORT_API_URL must not carry the token
// request (whose body holds the clientSecret) or the bearer token to another host,
// whatever HTTP client the caller gives.
func TestRedirectsAreRefused(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+r.URL.Path, code)
			}))
			defer redirecting.Close()
			for name, hc := range map[string]*http.Client{"nil": nil, "a plain client": {Timeout: time.Second}} {
				c := &portapi.Client{BaseURL: redirecting.URL, HTTP: hc}
				err := c.Log(context.Background(), creds, "r_redirect", "hello")
				if !errors.Is(err, portapi.ErrToken) {
					t.Errorf("%s: Log = %v, want %v", name, err, portapi.ErrToken)
				}
			}
			if n := elsewhere.Load(); n != 0 {
				t.Errorf("the redirect target got %d requests, want none", n)
			}
		})
	}
}

// TestRefusedCredentialsAtTheEUAPINameTheUSRegion: a US organization left on the
// default (EU) API gets its credentials refused; the error says where to look.
func TestRefusedCredentialsAtTheEUAPINameTheUSRegion(t *testing.T) {
	port := porttest.New("another-id", "another-secret")
	t.Cleanup(port.Close)
	port.CreateRuns(runID)
	for _, tt := range []struct {
		name, base string
		hint       bool
	}{
		{"Port's EU API (the default) names the US region", portapi.DefaultBaseURL, true},
		{"the US API does not", "https://api.us.port.io", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The request goes to the double whatever the base URL says.
			target, _ := url.Parse(port.URL)
			c := &portapi.Client{BaseURL: tt.base, HTTP: &http.Client{Transport: rewriteHost(target)}}
			err := c.Log(t.Context(), creds, runID, "line")
			if !errors.Is(err, portapi.ErrToken) {
				t.Fatalf("Log() = %v, want %v", err, portapi.ErrToken)
			}
			if got := strings.Contains(err.Error(), "https://api.us.port.io"); got != tt.hint {
				t.Errorf("Log() = %q: names the US API %v, want %v", err, got, tt.hint)
			}
			if strings.Contains(err.Error(), creds.ClientSecret) {
				t.Errorf("Log() = %q shows the client secret", err)
			}
		})
	}
}

// rewriteHost sends every request to target, as if DNS named it.
func rewriteHost(target *url.URL) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
		return http.DefaultTransport.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestEnded(t *testing.T) {
	srv := porttest.New("id", "secret")
	t.Cleanup(srv.Close)
	srv.CreateRuns("r_open", "r_done")
	c := &portapi.Client{BaseURL: srv.URL}
	creds := portapi.Credentials{ClientID: "id", ClientSecret: "secret"}
	if err := c.Update(t.Context(), creds, "r_done", portapi.RunUpdate{Status: "FAILURE"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		run   string
		ended bool
		err   error
	}{{"r_open", false, nil}, {"r_done", true, nil}, {"r_none", false, portapi.ErrRunNotFound}, {"r bad", false, portapi.ErrBadRunID}} {
		ended, err := c.Ended(t.Context(), creds, tt.run)
		if ended != tt.ended || (tt.err == nil) != (err == nil) || tt.err != nil && !errors.Is(err, tt.err) {
			t.Errorf("Ended(%s) = %v, %v; want %v, %v", tt.run, ended, err, tt.ended, tt.err)
		}
	}
}
