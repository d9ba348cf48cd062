package azdo_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/entra/entratest"
)

const (
	project = "Fabrikam Web"
	pat     = "x7kq3vbnm2plmnbvcxzqwertyuiopasdfghjklzxcvbnmqwerty"
	tenant  = "contoso.onmicrosoft.com"
	appID   = "a8fdfbd0-da97-42d9-8f1a-fd6a7cb650b4"
	appPass = "entra-s3cret-value"
	// portValue is a value of Port's body outside the run parameters: it must never
	// reach Azure or an error.
	portValue = "r_QOz6WoOB1Q2lmhZZ"
	// paramValue is a parameter's value: Azure's messages may quote it, errors never do.
	paramValue = "v4lue-0f-env"
)

var deploy = azdo.Pipeline{Name: "deploy", Project: project, ID: 7, Branch: "refs/heads/main"}

// portBody is what a Port action sends: run parameters beside Port's own context.
var portBody = []byte(`{"port_context":{"runId":"` + portValue + `","entity":"svc"},"templateParameters":{"env":"` + paramValue + `","replicas":3}}`)

// newRunsServer starts a double with the deploy pipeline and the PAT.
func newRunsServer(t *testing.T) *azdotest.Server {
	t.Helper()
	srv := azdotest.New(org)
	t.Cleanup(srv.Close)
	srv.AddPipeline(azdotest.RunsPipeline{
		Project:           project,
		ID:                7,
		Name:              "deploy-service",
		Parameters:        []string{"env", "replicas", "config"},
		SettableVariables: []string{"LOG_LEVEL"},
	})
	srv.AddPAT(pat)
	return srv
}

func runBody(t *testing.T, port []byte) []byte {
	t.Helper()
	b, err := azdo.RunBody(port, deploy.Branch)
	if err != nil {
		t.Fatalf("RunBody(%s) = %v", port, err)
	}
	return b
}

// auditError fails the test if err's text holds a secret or a value of the body.
func auditError(t *testing.T, err error, secrets ...string) {
	t.Helper()
	msg := fmt.Sprintf("%v %+v %#v", err, err, err)
	for _, s := range append([]string{pat, base64.StdEncoding.EncodeToString([]byte(":" + pat)), appPass, portValue, paramValue}, secrets...) {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("error %q holds %q", err, s)
		}
	}
}

func TestRunQueuesARun(t *testing.T) {
	srv := newRunsServer(t)
	c := newClient(srv.URL)

	res, err := c.Run(ctxTimeout(t, 5*time.Second), deploy, runBody(t, portBody), azdo.PAT(pat))
	if err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	runs := srv.Runs()
	if len(runs) != 1 {
		t.Fatalf("the double queued %d runs, want 1", len(runs))
	}
	q := runs[0]
	want := azdo.RunResult{Status: 200, Attempts: 1, ID: q.ID, Name: q.Name, State: "inProgress", WebURL: q.WebURL}
	if res != want {
		t.Errorf("Run = %+v, want %+v", res, want)
	}
	if !regexp.MustCompile(`^\d{8}\.1$`).MatchString(res.Name) {
		t.Errorf("Run name = %q, want Azure's yyyyMMdd.1", res.Name)
	}
	if q.Auth != azdotest.AuthPAT || q.RefName != "refs/heads/main" || q.PipelineID != 7 {
		t.Errorf("queued = {Auth:%q RefName:%q PipelineID:%d}, want {PAT refs/heads/main 7}", q.Auth, q.RefName, q.PipelineID)
	}
	if q.TemplateParameters["env"] != paramValue || q.TemplateParameters["replicas"] != "3" || len(q.TemplateParameters) != 2 {
		t.Errorf("templateParameters = %v, want env and replicas only, as strings", q.TemplateParameters)
	}
	if strings.Contains(fmt.Sprintf("%#v", q), portValue) {
		t.Errorf("queued run %+v holds port_context", q)
	}
}

func TestRunSendsWhatAzureExpects(t *testing.T) {
	srv := newRunsServer(t)
	var got http.Header
	var path string
	var mu sync.Mutex
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got, path = r.Header.Clone(), r.URL.RequestURI()
		mu.Unlock()
		srv.Handler().ServeHTTP(w, r)
	}))
	defer front.Close()
	c := newClient(front.URL)

	if _, err := c.Run(ctxTimeout(t, 5*time.Second), deploy, nil, azdo.PAT(pat)); err != nil {
		t.Fatalf("Run with no body = %v, want nil: it is sent as {}", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "/contoso/Fabrikam%20Web/_apis/pipelines/7/runs?api-version=7.1"; path != want {
		t.Errorf("request URI = %q, want %q", path, want)
	}
	for k, v := range map[string]string{
		"Authorization":         "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+pat)),
		"Content-Type":          "application/json",
		"Accept":                "application/json",
		"X-Tfs-Fedauthredirect": "Suppress",
	} {
		if got.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, got.Get(k), v)
		}
	}
}

func TestRunURL(t *testing.T) {
	srv := newRunsServer(t)
	c := newClient(srv.URL)
	if got, want := c.RunURL(deploy), srv.RunsURL(project, 7); got != want {
		t.Errorf("RunURL = %q, want the double's %q", got, want)
	}
	c = &azdo.Client{Org: "my org"}
	if got, want := c.RunURL(azdo.Pipeline{Project: "a/b", ID: 12}), "https://dev.azure.com/my%20org/a%2Fb/_apis/pipelines/12/runs?api-version=7.1"; got != want {
		t.Errorf("RunURL = %q, want %q", got, want)
	}
}

// TestRunRefused: each refusal is one attempt, queues nothing, and names its cause
// without a secret or a value of the body.
func TestRunRefused(t *testing.T) {
	tests := []struct {
		name      string
		auth      azdo.Auth // PAT(pat) when nil
		pipeline  *azdo.Pipeline
		body      string // runBody(portBody) when empty
		script    []azdotest.Step
		want      error
		wantNot   error
		status    int
		wantName  *string // the ParameterError's Name
		wantInErr string
	}{
		{name: "a wrong PAT is ErrCredentials, a 401 as Suppress asks",
			auth: azdo.PAT("wrong"), want: azdo.ErrCredentials, status: 401},
		{name: "the sign-in page is ErrCredentials", script: []azdotest.Step{azdotest.SignInPage()},
			want: azdo.ErrCredentials, status: 203, wantInErr: "sign-in page"},
		{name: "a redirect to sign in is ErrCredentials, never followed", script: []azdotest.Step{azdotest.SignInRedirect()},
			want: azdo.ErrCredentials, status: 302, wantInErr: "redirected to sign in"},
		{name: "a 2xx that is not JSON is ErrCredentials", script: []azdotest.Step{azdotest.Status(200)},
			want: azdo.ErrCredentials, status: 200},
		{name: "a 403 is ErrForbidden", script: []azdotest.Step{azdotest.Status(403)},
			want: azdo.ErrForbidden, status: 403},
		{name: "an undeclared template parameter is a ParameterError naming it",
			body: `{"templateParameters":{"env":"` + paramValue + `","region":"` + paramValue + `"}}`,
			want: azdo.ErrUnexpectedParameter, status: 400, wantName: ptr("region")},
		{name: "a parameter named in another case is named as the body names it",
			body: `{"templateParameters":{"Region":"x"}}`,
			want: azdo.ErrUnexpectedParameter, status: 400, wantName: ptr("Region")},
		{name: "a parameter name with other characters is withheld",
			body: `{"templateParameters":{"re gion":"` + paramValue + `"}}`,
			want: azdo.ErrUnexpectedParameter, status: 400, wantName: ptr("")},
		{name: "a parameter name over 100 characters is withheld",
			body: `{"templateParameters":{"` + strings.Repeat("p", 101) + `":"x"}}`,
			want: azdo.ErrUnexpectedParameter, status: 400, wantName: ptr("")},
		{name: "an Unexpected parameter message naming no key of the body names none",
			script: []azdotest.Step{azdotest.Status(400).Message("Unexpected parameter '" + portValue + "'")},
			want:   azdo.ErrUnexpectedParameter, status: 400, wantName: ptr("")},
		{name: "a template's own undeclared parameter, with a file position, is the pipeline's ErrRefused",
			script: []azdotest.Step{azdotest.Status(400).Message("/t.yml (Line: 3, Col: 5): Unexpected parameter 'env'")},
			want:   azdo.ErrRefused, wantNot: azdo.ErrUnexpectedParameter, status: 400},
		{name: "an unknown pipeline is ErrPipelineNotFound, not ErrProjectNotFound",
			pipeline: &azdo.Pipeline{Project: project, ID: 8},
			want:     azdo.ErrPipelineNotFound, wantNot: azdo.ErrProjectNotFound, status: 404, wantInErr: "PipelineNotFoundException"},
		{name: "an unknown project is ErrProjectNotFound, an ErrPipelineNotFound",
			pipeline: &azdo.Pipeline{Project: "Nope", ID: 7},
			want:     azdo.ErrProjectNotFound, status: 404},
		{name: "a variable not settable at queue time is ErrRefused with Azure's typeKey",
			body: `{"variables":{"SECRET":{"value":"` + paramValue + `"}}}`,
			want: azdo.ErrRefused, wantNot: azdo.ErrUnexpectedParameter, status: 400, wantInErr: "PipelineValidationException"},
		{name: "a body Azure cannot bind is ErrRefused with Azure's typeKey",
			body: `{"templateParameters":{"config":{"k":"` + paramValue + `"}}}`,
			want: azdo.ErrRefused, status: 400, wantInErr: "ArgumentNullException"},
		{name: "another 4xx is ErrRefused", script: []azdotest.Step{azdotest.Status(409)},
			want: azdo.ErrRefused, status: 409, wantInErr: "VssServiceException"},
		{name: "a redirect elsewhere is ErrRefused", script: []azdotest.Step{azdotest.Status(307)},
			want: azdo.ErrRefused, wantNot: azdo.ErrCredentials, status: 307, wantInErr: "not followed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRunsServer(t)
			srv.Script(tt.script...)
			auth := tt.auth
			if auth == nil {
				auth = azdo.PAT(pat)
			}
			p := deploy
			if tt.pipeline != nil {
				p = *tt.pipeline
			}
			body := runBody(t, portBody)
			if tt.body != "" {
				body = []byte(tt.body)
			}

			_, err := newClient(srv.URL).Run(ctxTimeout(t, 5*time.Second), p, body, auth)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			if tt.wantNot != nil && errors.Is(err, tt.wantNot) {
				t.Errorf("Run = %v, want it not to be %v", err, tt.wantNot)
			}
			e := deliveryError(t, err)
			if e.Status != tt.status || e.Attempts != 1 {
				t.Errorf("Run = {Status:%d Attempts:%d}, want {%d 1}", e.Status, e.Attempts, tt.status)
			}
			if tt.wantName != nil {
				var pe *azdo.ParameterError
				if !errors.As(err, &pe) || pe.Name != *tt.wantName {
					t.Errorf("Run = %#v, want a ParameterError named %q", err, *tt.wantName)
				}
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("Run = %q, want it to mention %q", err, tt.wantInErr)
			}
			if azdo.MayHaveQueued(err) {
				t.Errorf("MayHaveQueued(%v) = true, want false: Azure refused, nothing was queued", err)
			}
			if n := srv.RunRequests(); n != 1 {
				t.Errorf("the double received %d requests, want 1: a refusal is not retried", n)
			}
			if n := srv.RunCount(); n != 0 {
				t.Errorf("the double queued %d runs, want 0", n)
			}
			if n := srv.Count(); n != 0 {
				t.Errorf("the double received %d other requests, want 0: a redirect is never followed", n)
			}
			auditError(t, err)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestRunChecksItsInputs(t *testing.T) {
	srv := newRunsServer(t)
	tests := []struct {
		name string
		org  string
		p    azdo.Pipeline
		auth azdo.Auth
		want error
	}{
		{"no organization is ErrBadPipeline", "", deploy, azdo.PAT(pat), azdo.ErrBadPipeline},
		{"no project is ErrBadPipeline", org, azdo.Pipeline{ID: 7}, azdo.PAT(pat), azdo.ErrBadPipeline},
		{"a pipeline id of zero is ErrBadPipeline", org, azdo.Pipeline{Project: project}, azdo.PAT(pat), azdo.ErrBadPipeline},
		{"no Auth is ErrNoCredentials", org, deploy, nil, azdo.ErrNoCredentials},
		{"an empty PAT is ErrNoCredentials", org, deploy, azdo.PAT(""), azdo.ErrNoCredentials},
		{"an Entra Auth without a client is ErrNoCredentials", org, deploy, azdo.Entra(nil, entra.App{}), azdo.ErrNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(srv.URL)
			c.Org = tt.org
			_, err := c.Run(ctxTimeout(t, 5*time.Second), tt.p, []byte(`{}`), tt.auth)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			if e := deliveryError(t, err); e.Attempts != 0 || e.Status != 0 {
				t.Errorf("Run = {Status:%d Attempts:%d}, want {0 0}", e.Status, e.Attempts)
			}
			if azdo.MayHaveQueued(err) {
				t.Errorf("MayHaveQueued(%v) = true, want false", err)
			}
		})
	}
	if n := srv.RunRequests(); n != 0 {
		t.Errorf("the double received %d requests, want 0", n)
	}
}

// entraFixture is an Entra stand-in with the app, and a client of it.
type entraFixture struct {
	login  *entratest.Server
	tokens *entra.Client
	app    entra.App
}

func newEntra(t *testing.T) *entraFixture {
	t.Helper()
	login := entratest.New()
	t.Cleanup(login.Close)
	login.AddApp(tenant, appID, appPass)
	return &entraFixture{
		login:  login,
		tokens: &entra.Client{AuthorityHost: login.URL},
		app:    entra.App{TenantID: tenant, ClientID: appID, ClientSecret: appPass},
	}
}

// valid is what an organization with the service principal added accepts.
func (f *entraFixture) valid(tok string) bool {
	_, client, ok := f.login.Valid(tok)
	return ok && client == appID
}

func TestRunWithAnEntraToken(t *testing.T) {
	srv := newRunsServer(t)
	f := newEntra(t)
	srv.AcceptBearer(f.valid)
	c := newClient(srv.URL)
	auth := azdo.Entra(f.tokens, f.app)

	for i := range 2 {
		res, err := c.Run(ctxTimeout(t, 5*time.Second), deploy, runBody(t, portBody), auth)
		if err != nil {
			t.Fatalf("Run %d = %v, want nil", i, err)
		}
		if res.Attempts != 1 || res.ID == 0 {
			t.Errorf("Run %d = %+v, want a run at the first attempt", i, res)
		}
	}
	if n := f.login.Requests(""); n != 1 {
		t.Errorf("Entra received %d token requests, want 1: the token is cached", n)
	}
	for _, q := range srv.Runs() {
		if q.Auth != azdotest.AuthBearer {
			t.Errorf("queued with %q, want Bearer", q.Auth)
		}
	}
}

// TestRunReplacesARefusedToken: a cached token that Azure refuses (revoked, or cached
// past a change of the service principal) is dropped and a new one tried once; a
// refusal queued nothing, so trying again is safe.
func TestRunReplacesARefusedToken(t *testing.T) {
	srv := newRunsServer(t)
	f := newEntra(t)
	var first atomic.Value // the first token seen, which Azure refuses
	srv.AcceptBearer(func(tok string) bool {
		first.CompareAndSwap(nil, tok)
		return tok != first.Load() && f.valid(tok)
	})
	c := newClient(srv.URL)

	res, err := c.Run(ctxTimeout(t, 5*time.Second), deploy, runBody(t, portBody), azdo.Entra(f.tokens, f.app))
	if err != nil {
		t.Fatalf("Run = %v, want nil after a new token", err)
	}
	if res.Attempts != 2 || res.Status != 200 {
		t.Errorf("Run = %+v, want {Status:200 Attempts:2}", res)
	}
	if n := f.login.Requests(""); n != 2 {
		t.Errorf("Entra received %d token requests, want 2: the refused token was dropped", n)
	}
	if srv.RunRequests() != 2 || srv.RunCount() != 1 {
		t.Errorf("the double received %d requests and queued %d runs, want 2 and 1", srv.RunRequests(), srv.RunCount())
	}
}

func TestRunTriesARefusedTokenOnce(t *testing.T) {
	srv := newRunsServer(t)
	f := newEntra(t)
	srv.AcceptBearer(func(string) bool { return false }) // the service principal is not in the organization
	c := newClient(srv.URL)

	_, err := c.Run(ctxTimeout(t, 5*time.Second), deploy, runBody(t, portBody), azdo.Entra(f.tokens, f.app))
	if !errors.Is(err, azdo.ErrCredentials) {
		t.Fatalf("Run = %v, want %v", err, azdo.ErrCredentials)
	}
	if e := deliveryError(t, err); e.Status != 401 || e.Attempts != 2 {
		t.Errorf("Run = {Status:%d Attempts:%d}, want {401 2}", e.Status, e.Attempts)
	}
	if azdo.MayHaveQueued(err) {
		t.Errorf("MayHaveQueued(%v) = true, want false", err)
	}
	if n := f.login.Requests(""); n != 2 {
		t.Errorf("Entra received %d token requests, want 2", n)
	}
	auditError(t, err, tokensOf(t, f)...)
}

// tokensOf returns a token f issues for the app now, to look for in errors.
func tokensOf(t *testing.T, f *entraFixture) []string {
	tok, err := (&entra.Client{AuthorityHost: f.login.URL}).Token(context.Background(), f.app)
	if err != nil {
		t.Fatal(err)
	}
	return []string{tok}
}

func TestRunDoesNotRetryARefusedPAT(t *testing.T) {
	srv := newRunsServer(t)
	srv.Script(azdotest.SignInPage())
	_, err := newClient(srv.URL).Run(ctxTimeout(t, 5*time.Second), deploy, runBody(t, portBody), azdo.PAT(pat))
	if !errors.Is(err, azdo.ErrCredentials) {
		t.Fatalf("Run = %v, want %v", err, azdo.ErrCredentials)
	}
	if e := deliveryError(t, err); e.Attempts != 1 {
		t.Errorf("Run made %d attempts, want 1: the same PAT would be refused again", e.Attempts)
	}
}

func TestRunWhenEntraRefuses(t *testing.T) {
	srv := newRunsServer(t)
	f := newEntra(t)
	srv.AcceptBearer(f.valid)
	app := f.app
	app.ClientSecret = "wrong-entra-secret"

	_, err := newClient(srv.URL).Run(ctxTimeout(t, 5*time.Second), deploy, runBody(t, portBody), azdo.Entra(f.tokens, app))
	if !errors.Is(err, entra.ErrRefused) {
		t.Fatalf("Run = %v, want %v", err, entra.ErrRefused)
	}
	if errors.Is(err, azdo.ErrCredentials) || azdo.MayHaveQueued(err) {
		t.Errorf("Run = %v: Entra refused, not Azure DevOps, and nothing was sent", err)
	}
	if e := deliveryError(t, err); e.Attempts != 0 {
		t.Errorf("Run made %d attempts, want 0", e.Attempts)
	}
	if n := srv.RunRequests(); n != 0 {
		t.Errorf("the double received %d requests, want 0", n)
	}
	auditError(t, err, "wrong-entra-secret")
}

func TestRunRetries(t *testing.T) {
	tests := []struct {
		name     string
		script   []azdotest.Step
		deadline time.Duration
		want     error // nil: success
		status   int
		attempts int
		atLeast  time.Duration
		atMost   time.Duration
	}{
		{name: "a 503 then a run succeeds on the second attempt",
			script: []azdotest.Step{azdotest.Status(503)}, status: 200, attempts: 2},
		{name: "three 503s are ErrUnavailable after three attempts",
			script: []azdotest.Step{azdotest.Status(503), azdotest.Status(503), azdotest.Status(503)},
			want:   azdo.ErrUnavailable, status: 503, attempts: 3},
		{name: "a 429 with Retry-After within the deadline is waited for",
			script: []azdotest.Step{azdotest.Status(429).RetryAfter(1)}, deadline: 10 * time.Second,
			status: 200, attempts: 2, atLeast: 950 * time.Millisecond, atMost: 2500 * time.Millisecond},
		{name: "a 429 with Retry-After past the deadline is ErrThrottled at once",
			script: []azdotest.Step{azdotest.Status(429).RetryAfter(30)}, deadline: 3 * time.Second,
			want: azdo.ErrThrottled, status: 429, attempts: 1, atMost: time.Second},
		{name: "a Retry-After on a 200 is no reason to wait",
			script: []azdotest.Step{azdotest.Delay(time.Millisecond).RetryAfter(30)},
			status: 200, attempts: 1, atMost: time.Second},
		{name: "a refusal after a 503 ends the retries: the same PAT would be refused again",
			script: []azdotest.Step{azdotest.Status(503), azdotest.Status(401)},
			want:   azdo.ErrCredentials, status: 401, attempts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRunsServer(t)
			srv.Script(tt.script...)
			deadline := tt.deadline
			if deadline == 0 {
				deadline = 5 * time.Second
			}

			start := time.Now()
			res, err := newClient(srv.URL).Run(ctxTimeout(t, deadline), deploy, runBody(t, portBody), azdo.PAT(pat))
			elapsed := time.Since(start)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Run = %v, want nil", err)
				}
				if res.Status != tt.status || res.Attempts != tt.attempts {
					t.Errorf("Run = %+v, want {Status:%d Attempts:%d}", res, tt.status, tt.attempts)
				}
			} else {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Run = %v, want %v", err, tt.want)
				}
				if e := deliveryError(t, err); e.Status != tt.status || e.Attempts != tt.attempts {
					t.Errorf("Run = {Status:%d Attempts:%d}, want {%d %d}", e.Status, e.Attempts, tt.status, tt.attempts)
				}
				if azdo.MayHaveQueued(err) {
					t.Errorf("MayHaveQueued(%v) = true, want false", err)
				}
			}
			if elapsed < tt.atLeast || (tt.atMost > 0 && elapsed > tt.atMost) {
				t.Errorf("Run took %v, want between %v and %v", elapsed, tt.atLeast, tt.atMost)
			}
			if n := srv.RunRequests(); n != tt.attempts {
				t.Errorf("the double received %d requests, want %d", n, tt.attempts)
			}
		})
	}
}

// TestRunNeverRetriesAnAmbiguousFailure: once Azure may have queued the run, trying
// again could start a second one.
func TestRunNeverRetriesAnAmbiguousFailure(t *testing.T) {
	tests := []struct {
		name       string
		step       azdotest.Step
		deadline   time.Duration
		want       error
		status     int
		wantQueued int
	}{
		{"a request that hangs is ErrNoAnswer", azdotest.Hang(), 300 * time.Millisecond, azdo.ErrNoAnswer, 0, 0},
		{"an answer later than the deadline is ErrNoAnswer, and the run is queued", azdotest.Delay(3 * time.Second),
			300 * time.Millisecond, azdo.ErrNoAnswer, 0, 1},
		{"a connection dropped after the request is ErrConnection", azdotest.Drop(), 5 * time.Second, azdo.ErrConnection, 0, 0},
		{"a 500 is ErrServerError", azdotest.Status(500), 5 * time.Second, azdo.ErrServerError, 500, 0},
		{"a 502 is ErrServerError", azdotest.Status(502), 5 * time.Second, azdo.ErrServerError, 502, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRunsServer(t)
			srv.Script(tt.step)

			_, err := newClient(srv.URL).Run(ctxTimeout(t, tt.deadline), deploy, runBody(t, portBody), azdo.PAT(pat))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			if !azdo.MayHaveQueued(err) {
				t.Errorf("MayHaveQueued(%v) = false, want true", err)
			}
			if e := deliveryError(t, err); e.Status != tt.status || e.Attempts != 1 {
				t.Errorf("Run = {Status:%d Attempts:%d}, want {%d 1}", e.Status, e.Attempts, tt.status)
			}
			time.Sleep(50 * time.Millisecond) // a retry in the background would show up now
			if n := srv.RunRequests(); n != 1 {
				t.Errorf("the double received %d requests, want 1", n)
			}
			if n := srv.RunCount(); n != tt.wantQueued {
				t.Errorf("the double queued %d runs, want %d", n, tt.wantQueued)
			}
			auditError(t, err)
		})
	}
}

// TestRunNothingSentIsNotAmbiguous: a connection that fails before the request is
// written cannot have queued a run, and is tried again as for webhooks.
func TestRunNothingSentIsNotAmbiguous(t *testing.T) {
	tests := []struct {
		name     string
		path     func() *azdotest.Path
		deadline time.Duration
		attempts int
		want     error
	}{
		{"a TLS handshake reset is unavailable, and tried again", azdotest.ResetHandshake, 5 * time.Second, 3, azdo.ErrUnavailable},
		{"a dial cut off by the deadline is out of time", azdotest.Unanswered, 300 * time.Millisecond, 1, azdo.ErrNoTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.path()
			t.Cleanup(p.Close)
			_, err := newClient(p.URL).Run(ctxTimeout(t, tt.deadline), deploy, runBody(t, portBody), azdo.PAT(pat))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			if azdo.MayHaveQueued(err) {
				t.Errorf("MayHaveQueued(%v) = true, want false: no request byte left the client", err)
			}
			if e := deliveryError(t, err); e.Status != 0 || (tt.want == azdo.ErrUnavailable && e.Attempts != tt.attempts) {
				t.Errorf("Run = {Status:%d Attempts:%d}, want {0 %d}", e.Status, e.Attempts, tt.attempts)
			}
		})
	}
	t.Run("a refused connection is unavailable, and tried again", func(t *testing.T) {
		t.Parallel()
		_, err := newClient("http://"+closedAddr(t)).Run(ctxTimeout(t, 5*time.Second), deploy, runBody(t, portBody), azdo.PAT(pat))
		if !errors.Is(err, azdo.ErrUnavailable) || azdo.MayHaveQueued(err) {
			t.Fatalf("Run = %v, want %v and not ambiguous", err, azdo.ErrUnavailable)
		}
		if e := deliveryError(t, err); e.Attempts != 3 {
			t.Errorf("Run made %d attempts, want 3", e.Attempts)
		}
	})
	t.Run("an untrusted certificate is ErrTLS and nothing is sent", func(t *testing.T) {
		t.Parallel()
		srv := azdotest.NewTLS(org)
		t.Cleanup(srv.Close)
		srv.AddPipeline(azdotest.RunsPipeline{Project: project, ID: 7})
		srv.AddPAT(pat)
		_, err := newClient(srv.URL).Run(ctxTimeout(t, 5*time.Second), deploy, runBody(t, portBody), azdo.PAT(pat))
		if !errors.Is(err, azdo.ErrTLS) || azdo.MayHaveQueued(err) {
			t.Fatalf("Run = %v, want %v and not ambiguous", err, azdo.ErrTLS)
		}
		if n := srv.RunRequests(); n != 0 {
			t.Errorf("the double received %d requests, want 0", n)
		}
	})
}

// TestRunReadsAzuresAnswerWarily: what Azure's 2xx says is kept only in the shape
// Azure gives it; a 2xx JSON without a run id may follow a queued run.
func TestRunReadsAzuresAnswerWarily(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		want        error
		wantResult  azdo.RunResult
	}{
		{name: "a Run is read", contentType: "application/json; charset=utf-8; api-version=7.1",
			body:       `{"_links":{"web":{"href":"https://dev.azure.com/contoso/p/_build/results?buildId=11"}},"state":"inProgress","id":11,"name":"20261206.1"}`,
			wantResult: azdo.RunResult{Status: 200, Attempts: 1, ID: 11, Name: "20261206.1", State: "inProgress", WebURL: "https://dev.azure.com/contoso/p/_build/results?buildId=11"}},
		{name: "a byte order mark is skipped", contentType: "application/json",
			body: "\xef\xbb\xbf" + `{"id":12}`, wantResult: azdo.RunResult{Status: 200, Attempts: 1, ID: 12}},
		{name: "JSON without a content type is read", body: ` {"id":13}`,
			wantResult: azdo.RunResult{Status: 200, Attempts: 1, ID: 13}},
		{name: "a web link that is not http or https is dropped", contentType: "application/json",
			body: `{"_links":{"web":{"href":"javascript:alert(1)"}},"id":14}`, wantResult: azdo.RunResult{Status: 200, Attempts: 1, ID: 14}},
		{name: "a web link with credentials is dropped", contentType: "application/json",
			body: `{"_links":{"web":{"href":"https://user:pw@dev.azure.com/x"}},"id":15}`, wantResult: azdo.RunResult{Status: 200, Attempts: 1, ID: 15}},
		{name: "a name with control characters and a state that is no identifier are dropped", contentType: "application/json",
			body: `{"id":16,"name":"a\u0007b","state":"<b>"}`, wantResult: azdo.RunResult{Status: 200, Attempts: 1, ID: 16}},
		{name: "JSON without an id is ErrNoRunID", contentType: "application/json", body: `{"state":"inProgress"}`, want: azdo.ErrNoRunID},
		{name: "JSON with an id of zero is ErrNoRunID", contentType: "application/json", body: `{"id":0}`, want: azdo.ErrNoRunID},
		{name: "JSON cut off is ErrNoRunID", contentType: "application/json", body: `{"id":17,"name":"20261`, want: azdo.ErrNoRunID},
		{name: "an id written as a string of digits is read: the run was delivered", contentType: "application/json",
			body: `{"id":"42","name":"20261206.2","state":"inProgress","pipeline":{"id":"7"}}`, wantResult: azdo.RunResult{Status: 200, Attempts: 1, ID: 42, Name: "20261206.2", State: "inProgress"}},
		{name: "a member of another type leaves it out, not the run", contentType: "application/json",
			body: `{"id":18,"name":20261206,"_links":"x"}`, wantResult: azdo.RunResult{Status: 200, Attempts: 1, ID: 18}},
		{name: "an id that is not a number is ErrNoRunID", contentType: "application/json", body: `{"id":"x17"}`, want: azdo.ErrNoRunID},
		{name: "a signed id is ErrNoRunID", contentType: "application/json", body: `{"id":"+17"}`, want: azdo.ErrNoRunID},
		{name: "a negative id is ErrNoRunID", contentType: "application/json", body: `{"id":-17}`, want: azdo.ErrNoRunID},
		{name: "a fractional id is ErrNoRunID", contentType: "application/json", body: `{"id":17.5}`, want: azdo.ErrNoRunID},
		{name: "an id past Azure's 32 bits is ErrNoRunID", contentType: "application/json", body: `{"id":"4294967297"}`, want: azdo.ErrNoRunID},
		{name: "HTML is ErrCredentials", contentType: "text/html", body: `<html>Sign in</html>`, want: azdo.ErrCredentials},
		{name: "an empty 2xx is ErrCredentials", body: ``, want: azdo.ErrCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				} else {
					w.Header()["Content-Type"] = nil // no sniffing: no Content-Type at all
				}
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			res, err := newClient(srv.URL).Run(ctxTimeout(t, 5*time.Second), deploy, runBody(t, portBody), azdo.PAT(pat))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %+v, %v; want %v", res, err, tt.want)
			}
			if tt.want == nil && res != tt.wantResult {
				t.Errorf("Run = %+v, want %+v", res, tt.wantResult)
			}
			if got, want := azdo.MayHaveQueued(err), errors.Is(tt.want, azdo.ErrNoRunID); got != want {
				t.Errorf("MayHaveQueued(%v) = %v, want %v", err, got, want)
			}
			if n.Load() != 1 {
				t.Errorf("%d requests, want 1", n.Load())
			}
		})
	}
}

func TestRunDoesNotFollowRedirects(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		location string
		want     error
	}{
		{"a 302 to Azure's sign-in is ErrCredentials", http.StatusFound, "https://app.vssps.visualstudio.com/_signin?realm=dev.azure.com", azdo.ErrCredentials},
		{"a 302 to Entra is ErrCredentials", http.StatusFound, "https://login.microsoftonline.com/common/oauth2/authorize", azdo.ErrCredentials},
		{"a 307 elsewhere, which would re-POST the body, is ErrRefused", http.StatusTemporaryRedirect, "/elsewhere", azdo.ErrRefused},
		{"a 308 elsewhere is ErrRefused", http.StatusPermanentRedirect, "/elsewhere", azdo.ErrRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var elsewhere atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					elsewhere.Add(1)
					return
				}
				http.Redirect(w, r, tt.location, tt.status)
			}))
			defer srv.Close()
			c := newClient(srv.URL)
			c.HTTP = nil // the default client refuses redirects too

			_, err := c.Run(ctxTimeout(t, 5*time.Second), deploy, runBody(t, portBody), azdo.PAT(pat))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			if e := deliveryError(t, err); e.Status != tt.status || e.Attempts != 1 {
				t.Errorf("Run = {Status:%d Attempts:%d}, want {%d 1}", e.Status, e.Attempts, tt.status)
			}
			if n := elsewhere.Load(); n != 0 {
				t.Errorf("the redirect target received %d requests, want 0", n)
			}
		})
	}
}

// TestRunAndDeliverShareTheServer: one stand-in for https://dev.azure.com serves the
// webhook and the Runs API, so that a relay points AZURE_DEVOPS_URL at one URL.
func TestRunAndDeliverShareTheServer(t *testing.T) {
	srv := azdotest.New(org, azdotest.Webhook{Name: hook, Secret: key, Header: header})
	t.Cleanup(srv.Close)
	srv.AddPipeline(azdotest.RunsPipeline{Project: project, ID: 7, Parameters: []string{"env", "replicas"}})
	srv.AddPAT(pat)
	c := newClient(srv.URL)
	ctx := ctxTimeout(t, 5*time.Second)
	if _, err := c.Deliver(ctx, hook, payload, []byte(key)); err != nil {
		t.Fatalf("Deliver = %v", err)
	}
	if _, err := c.Run(ctx, deploy, runBody(t, portBody), azdo.PAT(pat)); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if srv.Count() != 1 || srv.RunCount() != 1 {
		t.Errorf("Count() = %d, RunCount() = %d; want 1 and 1", srv.Count(), srv.RunCount())
	}
}

func TestParameterError(t *testing.T) {
	err := error(&azdo.ParameterError{Name: "region"})
	if !errors.Is(err, azdo.ErrUnexpectedParameter) || err.Error() != `azdo: the pipeline declares no such template parameter: "region"` {
		t.Errorf("ParameterError = %q, want it to wrap ErrUnexpectedParameter and name the parameter", err)
	}
	if err := (&azdo.ParameterError{}); err.Error() != azdo.ErrUnexpectedParameter.Error() {
		t.Errorf("unnamed ParameterError = %q, want %q", err, azdo.ErrUnexpectedParameter)
	}
	if !errors.Is(azdo.ErrProjectNotFound, azdo.ErrPipelineNotFound) {
		t.Error("ErrProjectNotFound is not an ErrPipelineNotFound")
	}
}
