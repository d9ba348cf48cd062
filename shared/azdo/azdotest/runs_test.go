package azdotest

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	runsOrg     = "contoso"
	runsProject = "Fabrikam Web"
	goodPAT     = "g00dpat52characterslongxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	revokedPAT  = "revokedpat"
	goodToken   = "eyJ0eXAi.good.token"
)

var deployPipeline = RunsPipeline{
	Project:           runsProject,
	ID:                7,
	Name:              "deploy-service",
	Parameters:        []string{"env", "replicas", "config"},
	SettableVariables: []string{"LOG_LEVEL"},
	DefaultBranch:     "refs/heads/main",
}

func newRunsServer(t *testing.T) *Server {
	t.Helper()
	srv := New(runsOrg)
	t.Cleanup(srv.Close)
	srv.AddPipeline(deployPipeline)
	srv.AddPAT(goodPAT)
	srv.AddPAT(revokedPAT)
	srv.RevokePAT(revokedPAT)
	srv.AcceptBearer(func(tok string) bool { return tok == goodToken })
	return srv
}

func basic(user, pat string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pat))
}

// runHeaders are those the relay sends, with a good PAT.
func runHeaders(extra ...string) map[string]string {
	h := map[string]string{
		"Authorization":         basic("", goodPAT),
		"Content-Type":          "application/json",
		"X-TFS-FedAuthRedirect": "Suppress",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(h, extra[i])
		} else {
			h[extra[i]] = extra[i+1]
		}
	}
	return h
}

func TestRunsAPI(t *testing.T) {
	path := "/contoso/Fabrikam%20Web/_apis/pipelines/7/runs?api-version=7.1"
	const body = `{"templateParameters":{"env":"prod"}}`
	tests := []struct {
		name        string
		method      string // POST unless set
		path        string // path unless set
		header      map[string]string
		body        *string // body unless set
		wantStatus  int
		wantKey     string // typeKey of Azure's envelope; empty for none
		wantMessage string // part of the envelope's message
		wantType    string // the Content-Type's media type, if not JSON
	}{
		{name: "a registered PAT with an empty user name queues a run", header: runHeaders(), wantStatus: 200},
		{name: "a registered PAT with any user name queues a run",
			header: runHeaders("Authorization", basic("relay", goodPAT)), wantStatus: 200},
		{name: "an accepted Bearer token queues a run",
			header: runHeaders("Authorization", "Bearer "+goodToken), wantStatus: 200},
		{name: "the organization and project match in any case",
			path: "/Contoso/fabrikam%20WEB/_apis/pipelines/7/runs?api-version=7.1", header: runHeaders(), wantStatus: 200},
		{name: "7.1-preview.1 is accepted",
			path: "/contoso/Fabrikam%20Web/_apis/pipelines/7/runs?api-version=7.1-preview.1", header: runHeaders(), wantStatus: 200},
		{name: "a 6.0 preview is accepted",
			path: "/contoso/Fabrikam%20Web/_apis/pipelines/7/runs?api-version=6.0-preview.1", header: runHeaders(), wantStatus: 200},
		{name: "the api-version may come in the Accept header",
			path:   "/contoso/Fabrikam%20Web/_apis/pipelines/7/runs",
			header: runHeaders("Accept", "application/json; api-version=7.1"), wantStatus: 200},

		{name: "a wrong PAT without Suppress is the sign-in page, 203",
			header: runHeaders("Authorization", basic("", "wrong"), "X-TFS-FedAuthRedirect", ""), wantStatus: 203, wantType: "text/html"},
		{name: "a revoked PAT without Suppress is the sign-in page, 203",
			header: runHeaders("Authorization", basic("", revokedPAT), "X-TFS-FedAuthRedirect", ""), wantStatus: 203, wantType: "text/html"},
		{name: "no credentials without Suppress is the sign-in page, 203",
			header: runHeaders("Authorization", "", "X-TFS-FedAuthRedirect", ""), wantStatus: 203, wantType: "text/html"},
		{name: "Basic that is not base64 is the sign-in page, 203",
			header: runHeaders("Authorization", "Basic %%%", "X-TFS-FedAuthRedirect", ""), wantStatus: 203, wantType: "text/html"},
		{name: "a wrong PAT with Suppress is a 401",
			header: runHeaders("Authorization", basic("", "wrong")), wantStatus: 401},
		{name: "a revoked PAT with Suppress is a 401",
			header: runHeaders("Authorization", basic("", revokedPAT)), wantStatus: 401},
		{name: "no credentials with Suppress is a 401",
			header: runHeaders("Authorization", ""), wantStatus: 401},
		{name: "a refused Bearer token is a 401 even without Suppress",
			header: runHeaders("Authorization", "Bearer expired", "X-TFS-FedAuthRedirect", ""), wantStatus: 401},
		{name: "credentials are checked before the api-version",
			path:   "/contoso/Fabrikam%20Web/_apis/pipelines/7/runs?api-version=1.0",
			header: runHeaders("Authorization", basic("", "wrong")), wantStatus: 401},

		{name: "no api-version is a 400",
			path: "/contoso/Fabrikam%20Web/_apis/pipelines/7/runs", header: runHeaders(),
			wantStatus: 400, wantKey: "VssVersionNotSpecifiedException", wantMessage: `No api-version was supplied for the "POST" request.`},
		{name: "a malformed api-version is a 400",
			path: "/contoso/Fabrikam%20Web/_apis/pipelines/7/runs?api-version=latest", header: runHeaders(),
			wantStatus: 400, wantKey: "VssInvalidApiVersionException", wantMessage: `Invalid api version string: "latest".`},
		{name: "a released version before 7.1 is a 400: the resource was in preview",
			path: "/contoso/Fabrikam%20Web/_apis/pipelines/7/runs?api-version=6.0", header: runHeaders(),
			wantStatus: 400, wantKey: "VssInvalidPreviewVersionException", wantMessage: "The -preview flag must be supplied"},
		{name: "a version after 7.1 is a 400",
			path: "/contoso/Fabrikam%20Web/_apis/pipelines/7/runs?api-version=7.2", header: runHeaders(),
			wantStatus: 400, wantKey: "VssVersionOutOfRangeException", wantMessage: "The requested REST API version of 7.2 is out of range"},
		{name: "a version before the resource existed is a 400",
			path: "/contoso/Fabrikam%20Web/_apis/pipelines/7/runs?api-version=5.0-preview", header: runHeaders(),
			wantStatus: 400, wantKey: "VssVersionOutOfRangeException"},
		{name: "a GET is not modelled", method: http.MethodGet, header: runHeaders(), wantStatus: 405},

		{name: "an unknown project is a 404",
			path: "/contoso/Nope/_apis/pipelines/7/runs?api-version=7.1", header: runHeaders(),
			wantStatus: 404, wantKey: "ProjectDoesNotExistWithNameException", wantMessage: "TF200016: The following project does not exist: Nope."},
		{name: "an unknown pipeline is a 404",
			path: "/contoso/Fabrikam%20Web/_apis/pipelines/8/runs?api-version=7.1", header: runHeaders(),
			wantStatus: 404, wantKey: "PipelineNotFoundException", wantMessage: "A pipeline with id 8 was not found."},
		{name: "a pipeline id that is not a number matches no route",
			path: "/contoso/Fabrikam%20Web/_apis/pipelines/seven/runs?api-version=7.1", header: runHeaders(), wantStatus: 404},
		{name: "a pipeline id of zero is a 400",
			path: "/contoso/Fabrikam%20Web/_apis/pipelines/0/runs?api-version=7.1", header: runHeaders(),
			wantStatus: 400, wantKey: "ArgumentOutOfRangeException", wantMessage: "Parameter name: pipelineId"},

		{name: "an empty body binds to null: a 400", header: runHeaders(), body: ptr(""),
			wantStatus: 400, wantKey: "ArgumentNullException", wantMessage: "Value cannot be null.\r\nParameter name: runParameters"},
		{name: "an empty object is a run with defaults", header: runHeaders(), body: ptr("{}"), wantStatus: 200},
		{name: "a body that is not an object binds to null: a 400", header: runHeaders(), body: ptr(`[]`),
			wantStatus: 400, wantKey: "ArgumentNullException"},
		{name: "a body that is not JSON binds to null: a 400", header: runHeaders(), body: ptr(`{"templateParameters":`),
			wantStatus: 400, wantKey: "ArgumentNullException"},
		{name: "another content type is a 415", header: runHeaders("Content-Type", "text/plain"), wantStatus: 415},
		{name: "an object where a parameter's string goes binds to null: a 400", header: runHeaders(),
			body: ptr(`{"templateParameters":{"config":{"a":1}}}`), wantStatus: 400, wantKey: "ArgumentNullException"},
		{name: "an array where a parameter's string goes binds to null: a 400", header: runHeaders(),
			body: ptr(`{"templateParameters":{"config":[1]}}`), wantStatus: 400, wantKey: "ArgumentNullException"},
		{name: "a number where a parameter's string goes is read as its text", header: runHeaders(),
			body: ptr(`{"templateParameters":{"replicas":3}}`), wantStatus: 200},
		{name: "a plain string for a variable binds to null: a 400", header: runHeaders(),
			body: ptr(`{"variables":{"LOG_LEVEL":"debug"}}`), wantStatus: 400, wantKey: "ArgumentNullException"},
		{name: "templateParameters as a string binds to null: a 400", header: runHeaders(),
			body: ptr(`{"templateParameters":"env=prod"}`), wantStatus: 400, wantKey: "ArgumentNullException"},
		{name: "names of the body match in any case", header: runHeaders(),
			body: ptr(`{"TemplateParameters":{"ENV":"prod"},"Variables":{"log_level":{"Value":"debug"}}}`), wantStatus: 200},
		{name: "unknown members are ignored", header: runHeaders(),
			body: ptr(`{"port_context":{"runId":"r_1"},"templateParameters":{"env":"prod"}}`), wantStatus: 200},
		{name: "an undeclared template parameter is a 400", header: runHeaders(),
			body:       ptr(`{"templateParameters":{"env":"prod","region":"eu"}}`),
			wantStatus: 400, wantKey: "PipelineValidationException", wantMessage: "Unexpected parameter 'region'"},
		{name: "an undeclared template parameter with a null value is a 400 all the same", header: runHeaders(),
			body:       ptr(`{"templateParameters":{"region":null}}`),
			wantStatus: 400, wantKey: "PipelineValidationException", wantMessage: "Unexpected parameter 'region'"},
		{name: "each undeclared parameter has a line", header: runHeaders(),
			body:       ptr(`{"templateParameters":{"a":"1","env":"x","b":"2"}}`),
			wantStatus: 400, wantKey: "PipelineValidationException", wantMessage: "Unexpected parameter 'a'\nUnexpected parameter 'b'"},
		{name: "a variable not settable at queue time is a 400", header: runHeaders(),
			body:       ptr(`{"variables":{"SECRET":{"value":"x"}}}`),
			wantStatus: 400, wantKey: "PipelineValidationException", wantMessage: "You can't set the following variables (SECRET)."},
		{name: "a variable settable at queue time is set", header: runHeaders(),
			body: ptr(`{"variables":{"LOG_LEVEL":{"value":"debug","isSecret":false}}}`), wantStatus: 200},
		{name: "yamlOverride without previewRun is a 400", header: runHeaders(),
			body:       ptr(`{"yamlOverride":"steps: []"}`),
			wantStatus: 400, wantKey: "ArgumentException", wantMessage: "allowed only for dry run builds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRunsServer(t)
			method, p, b := cmp.Or(tt.method, http.MethodPost), cmp.Or(tt.path, path), body
			if tt.body != nil {
				b = *tt.body
			}
			resp, got, err := post(t, http.DefaultClient, method, srv.URL+p, tt.header, b)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s = %d %s, want %d", method, p, resp.StatusCode, got, tt.wantStatus)
			}
			mt := strings.Split(resp.Header.Get("Content-Type"), ";")[0]
			switch {
			case tt.wantType != "":
				if mt != tt.wantType {
					t.Errorf("Content-Type = %q, want %s", resp.Header.Get("Content-Type"), tt.wantType)
				}
			case tt.wantStatus == 200:
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || !strings.Contains(ct, "api-version=") {
					t.Errorf("Content-Type = %q, want application/json with the api-version", ct)
				}
			}
			if tt.wantKey != "" {
				e := decodeEnvelope(t, got)
				if e.TypeKey != tt.wantKey || !strings.Contains(e.Message, tt.wantMessage) {
					t.Errorf("envelope = %+v, want typeKey %q and a message containing %q", e, tt.wantKey, tt.wantMessage)
				}
			}
			if tt.wantStatus == 401 {
				if a := strings.Join(resp.Header.Values("WWW-Authenticate"), ", "); !strings.Contains(a, "Bearer authorization_uri=") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", a)
				}
				if !strings.Contains(resp.Header.Get("X-TFS-FedAuthRedirect"), "/_signin") {
					t.Errorf("X-TFS-FedAuthRedirect = %q, want the sign-in page", resp.Header.Get("X-TFS-FedAuthRedirect"))
				}
			}
			if n, want := srv.RunCount(), map[bool]int{true: 1}[tt.wantStatus == 200]; n != want {
				t.Errorf("RunCount() = %d, want %d", n, want)
			}
			if n := srv.RunRequests(); n != 1 {
				t.Errorf("RunRequests() = %d, want 1", n)
			}
			if n := srv.Count(); n != 0 {
				t.Errorf("Count() = %d, want 0: Runs requests are not webhook deliveries", n)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// runJSON is what a test reads of Azure's Run.
type runJSON struct {
	Links map[string]struct {
		Href string `json:"href"`
	} `json:"_links"`
	TemplateParameters map[string]string `json:"templateParameters"`
	Pipeline           struct {
		URL      string `json:"url"`
		ID       int    `json:"id"`
		Revision int    `json:"revision"`
		Name     string `json:"name"`
		Folder   string `json:"folder"`
	} `json:"pipeline"`
	State       string `json:"state"`
	CreatedDate string `json:"createdDate"`
	URL         string `json:"url"`
	Resources   struct {
		Repositories map[string]struct {
			RefName string `json:"refName"`
			Version string `json:"version"`
		} `json:"repositories"`
	} `json:"resources"`
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func TestRunsAnswerIsAzuresRun(t *testing.T) {
	srv := newRunsServer(t)
	body := `{"templateParameters":{"env":"prod","replicas":3,"config":"{\"a\":[1,2]}"},` +
		`"variables":{"LOG_LEVEL":{"value":"debug","isSecret":true}},` +
		`"resources":{"repositories":{"self":{"refName":"refs/heads/release"}},"pipelines":{"upstream":{"version":"20261201.3"}}},` +
		`"stagesToSkip":["Smoke","smoke","Perf"]}`
	var answers []runJSON
	for i := range 2 {
		resp, got, err := post(t, http.DefaultClient, http.MethodPost, srv.RunsURL(runsProject, 7), runHeaders(), body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST %d = %v %s %v, want 200", i, resp, got, err)
		}
		if prefix := `{"_links":{"self":{"href":`; !strings.HasPrefix(got, prefix) {
			t.Errorf("answer = %s, want it to start as Azure's, %s", got, prefix)
		}
		var r runJSON
		if err := json.Unmarshal([]byte(got), &r); err != nil {
			t.Fatalf("answer = %s: %v", got, err)
		}
		answers = append(answers, r)
	}
	runs := srv.Runs()
	if len(runs) != 2 {
		t.Fatalf("Runs() = %d runs, want 2", len(runs))
	}
	day := time.Now().UTC().Format("20060102")
	for i, r := range answers {
		q := runs[i]
		if r.ID != firstRunID+i || q.ID != r.ID {
			t.Errorf("run %d: id %d (recorded %d), want %d", i, r.ID, q.ID, firstRunID+i)
		}
		if want := fmt.Sprintf("%s.%d", day, i+1); r.Name != want || q.Name != want {
			t.Errorf("run %d: name %q (recorded %q), want %q", i, r.Name, q.Name, want)
		}
		if r.State != "inProgress" {
			t.Errorf("run %d: state %q, want inProgress", i, r.State)
		}
		if _, err := time.Parse(time.RFC3339Nano, r.CreatedDate); err != nil {
			t.Errorf("run %d: createdDate %q: %v", i, r.CreatedDate, err)
		}
		web := r.Links["web"].Href
		if web != q.WebURL || !strings.HasPrefix(web, srv.URL+"/contoso/") || !strings.HasSuffix(web, fmt.Sprintf("/_build/results?buildId=%d", r.ID)) {
			t.Errorf("run %d: _links.web.href = %q (recorded %q), want the server's results page of the run", i, web, q.WebURL)
		}
		for _, k := range []string{"self", "pipeline.web", "pipeline"} {
			if !strings.HasPrefix(r.Links[k].Href, srv.URL+"/contoso/") {
				t.Errorf("run %d: _links.%s = %q, want an address on the server", i, k, r.Links[k].Href)
			}
		}
		if r.URL != r.Links["self"].Href {
			t.Errorf("run %d: url %q, want _links.self %q", i, r.URL, r.Links["self"].Href)
		}
		if p := r.Pipeline; p.ID != 7 || p.Name != "deploy-service" || p.Folder != `\` || p.Revision != 1 || p.URL != r.Links["pipeline"].Href {
			t.Errorf("run %d: pipeline = %+v, want deploy-service, 7, folder \\, revision 1", i, p)
		}
		if ref := r.Resources.Repositories["self"].RefName; ref != "refs/heads/release" || q.RefName != ref {
			t.Errorf("run %d: refName %q (recorded %q), want the body's refs/heads/release", i, ref, q.RefName)
		}
		if want := map[string]string{"env": "prod", "replicas": "3", "config": `{"a":[1,2]}`}; !mapsEqual(r.TemplateParameters, want) || !mapsEqual(q.TemplateParameters, want) {
			t.Errorf("run %d: templateParameters %v (recorded %v), want %v", i, r.TemplateParameters, q.TemplateParameters, want)
		}
	}
	q := runs[0]
	if q.Project != runsProject || q.PipelineID != 7 || q.Auth != AuthPAT {
		t.Errorf("run = {Project:%q PipelineID:%d Auth:%q}, want {%q 7 PAT}", q.Project, q.PipelineID, q.Auth, runsProject)
	}
	if v := q.Variables["LOG_LEVEL"]; v != (Variable{Value: "debug", IsSecret: true}) {
		t.Errorf("variable LOG_LEVEL = %+v, want debug, secret", v)
	}
	if v := q.Resources.Pipelines["upstream"]; v != "20261201.3" {
		t.Errorf("resources.pipelines.upstream = %q, want 20261201.3", v)
	}
	if want := []string{"Smoke", "Perf"}; !slices.Equal(q.StagesToSkip, want) {
		t.Errorf("stagesToSkip = %q, want %q: a set that ignores case", q.StagesToSkip, want)
	}
	if s := fmt.Sprintf("%+v %#v", runs, runs); strings.Contains(s, goodPAT) || strings.Contains(s, basic("", goodPAT)) {
		t.Error("the runs recorded hold the PAT")
	}
	// Copies: changing them changes nothing recorded.
	runs[0].TemplateParameters["env"] = "tampered"
	if srv.Runs()[0].TemplateParameters["env"] != "prod" {
		t.Error("Runs() returned the server's own map")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestRunsUseTheDefaultBranchAndRecordTheAuthKind(t *testing.T) {
	srv := newRunsServer(t)
	srv.AddPipeline(RunsPipeline{Project: runsProject, ID: 8, Name: "no-branch"})
	for _, c := range []struct {
		id   int
		auth string
	}{{7, basic("x", goodPAT)}, {8, "Bearer " + goodToken}} {
		resp, got, err := post(t, http.DefaultClient, http.MethodPost, srv.RunsURL(runsProject, c.id), runHeaders("Authorization", c.auth), `{}`)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST = %v %s %v, want 200", resp, got, err)
		}
	}
	runs := srv.Runs()
	if runs[0].RefName != "refs/heads/main" || runs[0].Auth != AuthPAT {
		t.Errorf("run 0 = {RefName:%q Auth:%q}, want the default branch and PAT", runs[0].RefName, runs[0].Auth)
	}
	if runs[1].RefName != "refs/heads/main" || runs[1].Auth != AuthBearer {
		t.Errorf("run 1 = {RefName:%q Auth:%q}, want refs/heads/main and Bearer", runs[1].RefName, runs[1].Auth)
	}
	if strings.Contains(fmt.Sprintf("%#v", runs), goodToken) {
		t.Error("the runs recorded hold the Bearer token")
	}
}

func TestRunsScript(t *testing.T) {
	tests := []struct {
		name       string
		step       Step
		timeout    time.Duration
		wantStatus int // 0: the request fails
		wantQueued int
		wantHeader [2]string // a header and a part of its value
	}{
		{name: "a 503 queues nothing", step: Status(503), wantStatus: 503},
		{name: "a 429 carries Retry-After and queues nothing", step: Status(429).RetryAfter(2),
			wantStatus: 429, wantHeader: [2]string{"Retry-After", "2"}},
		{name: "a 500 queues nothing here, though Azure may have", step: Status(500), wantStatus: 500},
		{name: "the sign-in page answers whatever the credentials", step: SignInPage(),
			wantStatus: 203, wantHeader: [2]string{"Content-Type", "text/html"}},
		{name: "the sign-in redirect answers whatever the credentials", step: SignInRedirect(),
			wantStatus: 302, wantHeader: [2]string{"Location", "/_signin?"}},
		{name: "a delay queues the run on arrival and answers late", step: Delay(100 * time.Millisecond),
			wantStatus: 200, wantQueued: 1},
		{name: "a delay past the client's patience leaves the run queued", step: Delay(time.Minute),
			timeout: 200 * time.Millisecond, wantQueued: 1},
		{name: "a delay may carry Retry-After on its 200", step: Delay(time.Millisecond).RetryAfter(1),
			wantStatus: 200, wantQueued: 1, wantHeader: [2]string{"Retry-After", "1"}},
		{name: "a hang queues nothing", step: Hang(), timeout: 200 * time.Millisecond},
		{name: "a drop queues nothing", step: Drop()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRunsServer(t)
			srv.Script(tt.step)
			c := &http.Client{Timeout: tt.timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, got, err := post(t, c, http.MethodPost, srv.RunsURL(runsProject, 7), runHeaders(), `{}`)
			switch {
			case tt.wantStatus == 0 && err == nil:
				t.Fatalf("POST = %d %s, want an error", resp.StatusCode, got)
			case tt.wantStatus != 0 && err != nil:
				t.Fatalf("POST: %v", err)
			case tt.wantStatus != 0 && resp.StatusCode != tt.wantStatus:
				t.Fatalf("POST = %d %s, want %d", resp.StatusCode, got, tt.wantStatus)
			}
			if h := tt.wantHeader; h[0] != "" && !strings.Contains(resp.Header.Get(h[0]), h[1]) {
				t.Errorf("%s = %q, want it to contain %q", h[0], resp.Header.Get(h[0]), h[1])
			}
			if n := srv.RunCount(); n != tt.wantQueued {
				t.Errorf("RunCount() = %d, want %d", n, tt.wantQueued)
			}
			// The step is spent: the next request queues a run.
			resp, got, err = post(t, http.DefaultClient, http.MethodPost, srv.RunsURL(runsProject, 7), runHeaders(), `{}`)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("second POST = %v %s %v, want 200", resp, got, err)
			}
			if n := srv.RunRequests(); n != 2 {
				t.Errorf("RunRequests() = %d, want 2", n)
			}
		})
	}
}

func TestRunsScriptSharesTheQueueWithWebhooks(t *testing.T) {
	srv := New(runsOrg, Webhook{Name: "open"})
	defer srv.Close()
	srv.AddPipeline(deployPipeline)
	srv.AddPAT(goodPAT)
	srv.Script(Status(503), SignInPage())
	resp, _, err := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("open"), nil, msBody)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("webhook POST = %v %v, want the first step, 503", resp, err)
	}
	resp, _, err = post(t, http.DefaultClient, http.MethodPost, srv.RunsURL(runsProject, 7), runHeaders(), `{}`)
	if err != nil || resp.StatusCode != 203 {
		t.Fatalf("Runs POST = %v %v, want the second step, 203", resp, err)
	}
	if srv.Count() != 1 || srv.RunRequests() != 1 || srv.RunCount() != 0 {
		t.Errorf("Count, RunRequests, RunCount = %d, %d, %d; want 1, 1, 0", srv.Count(), srv.RunRequests(), srv.RunCount())
	}
}

func TestRunsReset(t *testing.T) {
	srv := newRunsServer(t)
	if resp, _, err := post(t, http.DefaultClient, http.MethodPost, srv.RunsURL(runsProject, 7), runHeaders(), `{}`); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST = %v %v, want 200", resp, err)
	}
	srv.Script(Status(503))
	srv.Reset()
	if srv.RunCount() != 0 || srv.RunRequests() != 0 || len(srv.Runs()) != 0 {
		t.Fatalf("after Reset: RunCount %d, RunRequests %d, want 0", srv.RunCount(), srv.RunRequests())
	}
	resp, got, err := post(t, http.DefaultClient, http.MethodPost, srv.RunsURL(runsProject, 7), runHeaders(), `{}`)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after Reset: POST = %v %v, want 200: registrations stay, the script is gone", resp, err)
	}
	var r runJSON
	if err := json.Unmarshal([]byte(got), &r); err != nil || r.ID != firstRunID+1 {
		t.Errorf("after Reset: run id %d, want %d: ids keep increasing", r.ID, firstRunID+1)
	}
}

func TestRunsConcurrently(t *testing.T) {
	srv := newRunsServer(t)
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			resp, got, err := post(t, http.DefaultClient, http.MethodPost, srv.RunsURL(runsProject, 7), runHeaders(), `{"templateParameters":{"env":"x"}}`)
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("%d %s", resp.StatusCode, got)
			}
			errs <- err
		})
		wg.Go(func() { _ = srv.Runs() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	seen := map[int]bool{}
	names := map[string]bool{}
	for _, r := range srv.Runs() {
		seen[r.ID], names[r.Name] = true, true
	}
	if len(seen) != n || len(names) != n {
		t.Errorf("%d distinct ids and %d distinct names, want %d of each", len(seen), len(names), n)
	}
}

func TestRunsSignInRedirectPointsAtTheServer(t *testing.T) {
	srv := newRunsServer(t)
	srv.Script(SignInRedirect())
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _, err := post(t, c, http.MethodPost, srv.RunsURL(runsProject, 7), runHeaders(), `{}`)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Host != strings.TrimPrefix(srv.URL, "http://") || loc.Path != "/_signin" {
		t.Fatalf("Location = %q, want the server's /_signin", resp.Header.Get("Location"))
	}
	if !regexp.MustCompile(`reply_to=.*pipelines`).MatchString(loc.RawQuery) {
		t.Errorf("Location = %q, want a reply_to the request", loc)
	}
}

func TestAddPipelineRefusesWhatAzureCouldNotServe(t *testing.T) {
	for _, p := range []RunsPipeline{{Project: "", ID: 1}, {Project: "a/b", ID: 1}, {Project: "p", ID: 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AddPipeline(%+v) did not panic", p)
				}
			}()
			srv := New(runsOrg)
			defer srv.Close()
			srv.AddPipeline(p)
		}()
	}
	srv := New(runsOrg)
	defer srv.Close()
	srv.AddPipeline(deployPipeline)
	defer func() {
		if recover() == nil {
			t.Error("AddPipeline of a pipeline registered twice did not panic")
		}
	}()
	srv.AddPipeline(RunsPipeline{Project: strings.ToUpper(runsProject), ID: 7})
}
