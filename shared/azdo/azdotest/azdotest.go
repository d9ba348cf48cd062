// Package azdotest stands in for Azure DevOps (https://dev.azure.com): its incoming webhooks, which check
// signatures exactly as Azure does, its Runs API ("Runs - Run Pipeline"), and a network path to it that can
// misbehave on demand. One Server serves both, so a test points AZURE_DEVOPS_URL at one URL.
//
// The webhook check follows WebHookHelper.ValidateWebHookPayload of Azure DevOps Server 2022, which cloud reports
// match: a webhook whose service connection has no header name accepts anything; otherwise the header must be
// present, an optional "sha1=" prefix (any case) is stripped, and the hex (any case) must equal HMAC-SHA1(UTF-8
// secret, body). Errors come back in Azure's JSON envelope, and a hash mismatch echoes the whole body, as Azure does,
// so tests can prove the relay never logs or returns what Azure answers.
//
// The Runs API, POST /{org}/{project}/_apis/pipelines/{id}/runs, checks in Azure's order:
//
//   - credentials: a PAT added with AddPAT (Basic, any user name) or a Bearer token AcceptBearer's function accepts.
//     With X-TFS-FedAuthRedirect: Suppress (which Microsoft's clients send) any other is a 401 with WWW-Authenticate
//     (Bearer authorization_uri=…, Basic, TFS-Federated) and X-TFS-FedAuthRedirect naming the sign-in page, as Azure
//     DevOps Server's TeamFoundationAuthenticationService answers; without it a wrong, revoked or missing PAT is the
//     sign-in page itself, 203 text/html, as users of Azure DevOps Services report it (Server's source redirects,
//     302: SignInRedirect scripts that). A refused Bearer token is a 401 either way.
//   - the api-version (query or Accept): 7.1, or a preview of 5.1 to 7.1 (7.1-preview.1); none, a malformed one, one
//     out of range or a released one before 7.1 is a 400 in the envelope and wording of Azure's VssApiVersion
//     exceptions. Other methods than POST are 405 (GET, "Runs - List", is not modelled).
//   - the project, by name in any case: else 404 ProjectDoesNotExistWithNameException (TF200016); the id: not a
//     number is a bare 404, not positive a 400 ArgumentOutOfRangeException.
//   - the body, bound as ASP.NET Web API and Json.NET bind RunPipelineParameters: a body of another content type is a
//     bare 415; one that is empty, not a JSON object, or of a shape Json.NET cannot bind (an object or array where a
//     string goes, a string for a variable) leaves the action a null and is a 400 ArgumentNullException "Value cannot
//     be null.\r\nParameter name: runParameters"; names match in any case, unknown members are ignored, numbers and
//     booleans where a string goes are read as their text. yamlOverride without previewRun is Azure's 400
//     ArgumentException; previewRun is not modelled (400).
//   - the pipeline, by id in the project: else 404 PipelineNotFoundException.
//   - the parameters: a template parameter the pipeline does not declare (any case) is a 400
//     PipelineValidationException with a line "Unexpected parameter 'x'" for each; a variable not settable at queue
//     time is a 400 PipelineValidationException in the wording of Microsoft's documentation.
//
// A run is queued on arrival (a client that gives up on a Delay leaves it queued, as on Azure) and answered 200 with
// Azure's Run JSON: _links (self, web, pipeline.web, pipeline), templateParameters, pipeline, state inProgress,
// createdDate, url, resources.repositories.self, id (from 1001 up) and name (yyyyMMdd.n, no Port run id in it).
// Script's steps apply to Runs requests as to webhook ones; SignInPage and SignInRedirect to Runs requests only.
//
// What the wiring checks read and write is served too, at api-version 7.1 (hooks.go): a project
// (GET _apis/projects/{name or id}, its id derived from its name), a pipeline (GET
// {project}/_apis/pipelines/{id}), the caller's QueueBuilds bit (GET _apis/permissions/{namespace}/128,
// false for a pipeline registered with QueueDenied, whose runs are then 403) and service hook
// subscriptions (GET, POST, PUT _apis/hooks/subscriptions): Azure's statuses, the password masked as
// "********" in every answer and kept when a PUT sends the mask back (refused if the url changed),
// https required with Basic auth, the pipelines publisher and the Web Hooks consumer only. PATs carry
// scopes (AddScopedPAT) chained as Azure's scope definitions chain them (Build inherits Service Hooks
// read and write, which inherits read, then profile); a PAT whose scopes do not cover a request is
// refused as a wrong one is.
//
// SetThrottle limits the runs taken per window, webhook deliveries and Runs API runs alike, and blocks the rest
// with Azure's 429 (throttle.go).
//
// Not modelled: required parameters and typed values (every declared parameter has a default and takes any
// string), stages to skip that do not exist, throttling by TSTUs (SetThrottle counts runs in a fixed window;
// script a single 429 with Status(429).RetryAfter), the
// Build service's own checks (a disabled pipeline, missing queue permission: script Status(403)), and
// Azure's exact answers where no source gave them: the 401's body (empty here), the 404 of an unknown pipeline
// (Runs - Run Pipeline maps PipelineNotFoundException to 404; whether the Build service raises it is unconfirmed) and
// the 415.
package azdotest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// APIVersion is the api-version the relay sends; the resource is preview-only.
const APIVersion = "6.0-preview"

// MaxBody is how much of a body Azure reads; the rest is dropped silently.
const MaxBody = 5 << 20

// Webhook is an incoming webhook registered in the organization, with its service connection's settings.
type Webhook struct {
	Name   string // [-_A-Za-z0-9]+, matched in any case
	Secret string
	Header string // the header carrying the signature; empty means no check at all, as in Azure
}

// Delivery is a request the server received, whatever became of it.
type Delivery struct {
	Webhook  string // the registered name, or the name in the path if none matched; empty if the path was wrong
	Body     []byte
	Header   http.Header
	Status   int  // the status answered; 0 if the connection was dropped or hung
	Verified bool // Azure's check passed: the webhook exists and the signature holds or is not required
}

// Server is a stand-in for https://dev.azure.com on 127.0.0.1 serving one organization's incoming webhooks. It is
// safe for concurrent use, and its accessors return copies.
type Server struct {
	URL string // base URL, e.g. http://127.0.0.1:12345, to use as AZURE_DEVOPS_URL

	srv     *httptest.Server
	org     string
	closing chan struct{} // closed by Close to release hung and delayed requests
	once    sync.Once

	mu         sync.Mutex
	hooks      []Webhook // SetSecret changes them
	script     []Step
	deliveries []*Delivery // guarded by mu, fields included
	forget     time.Duration
	idleSince  map[net.Conn]time.Time // keep-alive connections waiting for their next request
	runs       runsAPI                // the Runs API's registrations and record
	api        hooksAPI               // projects and service hook subscriptions
	throttle   throttleState          // SetThrottle's limit and its window's count
}

var validName = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)

// New starts a plain HTTP server for org with the given webhooks. Close it when done. It panics on an invalid
// organization or webhook name.
func New(org string, hooks ...Webhook) *Server {
	return start(org, hooks, (*httptest.Server).Start)
}

// NewTLS is New over HTTPS with a certificate no system trusts; Client returns a client that trusts it.
func NewTLS(org string, hooks ...Webhook) *Server {
	return start(org, hooks, (*httptest.Server).StartTLS)
}

func start(org string, hooks []Webhook, run func(*httptest.Server)) *Server {
	if org == "" || strings.ContainsAny(org, "/?#") {
		panic(fmt.Sprintf("azdotest: invalid organization %q", org))
	}
	for _, h := range hooks {
		if !validName.MatchString(h.Name) {
			panic(fmt.Sprintf("azdotest: invalid webhook name %q", h.Name))
		}
	}
	s := &Server{org: org, hooks: append([]Webhook(nil), hooks...), closing: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	// Refused certificates and aborted requests are the point of some tests, not news.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.idleSince = map[net.Conn]time.Time{}
	s.srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	s.srv.Config.ConnState = s.connState
	run(s.srv)
	s.URL = s.srv.URL
	return s
}

// ForgetIdle makes the path to the server behave as it does for a Lambda container
// that was frozen between invocations: a keep-alive connection idle for longer than
// d has been forgotten on the way (a load balancer or NAT dropped its flow), so a
// request sent on it is reset without reaching Azure, and the client learns it only
// after sending. Such a request is not a delivery. Zero turns it off.
func (s *Server) ForgetIdle(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget = d
}

type connKey struct{}

// rawConn is the accepted connection, the key of idleSince, also under TLS.
func rawConn(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}

func (s *Server) connState(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch state {
	case http.StateIdle:
		s.idleSince[rawConn(c)] = time.Now()
	case http.StateClosed, http.StateHijacked:
		delete(s.idleSince, rawConn(c))
	}
}

// forgotten reports whether the request came on a connection idle for too long.
func (s *Server) forgotten(r *http.Request) bool {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	s.mu.Lock()
	defer s.mu.Unlock()
	since, reused := s.idleSince[rawConn(c)]
	return s.forget > 0 && reused && time.Since(since) > s.forget
}

// WebhookURL is the address Azure gives the named webhook, api-version included.
func (s *Server) WebhookURL(name string) string {
	return s.URL + "/" + s.org + "/_apis/public/distributedtask/webhooks/" + name + "?api-version=" + APIVersion
}

// Client returns an HTTP client that trusts the server, for servers made by NewTLS.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close releases hung and delayed requests, without answering them, and shuts the server down.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closing) })
	s.srv.Close()
}

// Deliveries returns every request received so far, oldest first.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.deliveries))
	for i, p := range s.deliveries {
		d := *p
		d.Body = bytes.Clone(d.Body)
		d.Header = d.Header.Clone()
		out[i] = d
	}
	return out
}

// Count is the number of requests received so far.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.deliveries)
}

// SetSecret changes the secret of the named webhook's service connection from the
// next request on, as an operator editing it in Azure DevOps does. It panics on a
// webhook the server does not have.
func (s *Server) SetSecret(name, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.hooks {
		if strings.EqualFold(s.hooks[i].Name, name) {
			s.hooks[i].Secret = secret
			return
		}
	}
	panic(fmt.Sprintf("azdotest: no webhook %q", name))
}

// Reset forgets the deliveries, the runs queued, the Runs API requests counted and
// any steps not yet played. Registrations (webhooks, pipelines, PATs) stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliveries, s.script = nil, nil
	s.runs.queued, s.runs.requests = nil, 0
	s.throttle.taken = 0
}

// Script queues steps; each request plays the next one, in order, and then behaves normally.
func (s *Server) Script(steps ...Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, steps...)
}

// Step is one scripted misbehaviour. Build it with Status, Delay, Hang, Drop,
// SignInPage or SignInRedirect.
type Step struct {
	status     int
	retryAfter string
	message    string
	delay      time.Duration
	hang, drop bool
	signIn     bool // the 203 sign-in page
	redirect   bool // a 302 to the sign-in page
}

// Status answers with code, whatever the request, in Azure's error envelope for codes of 400 and up.
func Status(code int) Step { return Step{status: code} }

// RetryAfter adds a Retry-After header of the given seconds.
func (st Step) RetryAfter(seconds int) Step {
	st.retryAfter = strconv.Itoa(seconds)
	return st
}

// Message sets the envelope's message; the default is the status text.
func (st Step) Message(msg string) Step {
	st.message = msg
	return st
}

// Delay waits d, then behaves normally. A client that gives up first gets no answer.
func Delay(d time.Duration) Step { return Step{delay: d} }

// After makes a Status step answer only after d, as Azure delays requests before it
// throttles them. A client that gives up first gets no answer.
func (st Step) After(d time.Duration) Step {
	st.delay = d
	return st
}

// Hang never answers: the request ends when the client gives up or the server closes.
func Hang() Step { return Step{hang: true} }

// Drop closes the connection without answering.
func Drop() Step { return Step{drop: true} }

// SignInPage answers a Runs API request, whatever its credentials, with the sign-in
// page Azure DevOps Services is reported to serve for a refused PAT: 203 text/html.
// Webhook requests, which need no credentials, ignore it (it is used up all the same).
func SignInPage() Step { return Step{signIn: true} }

// SignInRedirect answers a Runs API request with a 302 to the sign-in page, as Azure
// DevOps Server's authentication does for refused credentials without
// X-TFS-FedAuthRedirect: Suppress. Webhook requests ignore it, as SignInPage.
func SignInRedirect() Step { return Step{redirect: true} }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.forgotten(r) {
		panic(http.ErrAbortHandler) // reset: the request never reached Azure
	}
	if s.serveAPI(w, r) {
		return
	}
	if project, id, ok := s.runsRoute(r.URL.Path); ok {
		s.serveRuns(w, r, project, id)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, MaxBody))
	_, _ = io.Copy(io.Discard, r.Body) // drain, so a client sending more than MaxBody still gets its answer

	step := s.nextStep()
	name, status, e := s.judge(r, body)
	d := Delivery{Webhook: name, Body: body, Header: r.Header.Clone(), Status: status, Verified: status == http.StatusOK}
	switch {
	case step.hang || step.drop:
		d.Status = 0
	case step.status != 0:
		status, e = step.status, nil
		if status >= 400 {
			msg := step.message
			if msg == "" {
				msg = http.StatusText(status)
			}
			e = newError("VssServiceException", "Microsoft.VisualStudio.Services.Common.VssServiceException, Microsoft.VisualStudio.Services.Common", msg)
		}
		d.Status = status
	}
	// Recorded on arrival, so a test sees it as soon as the client can time out. A
	// delivery it would take counts against the throttle, and beyond it is blocked
	// before Azure looks at it.
	s.mu.Lock()
	var blocked http.Header
	if d.Status == http.StatusOK {
		if blocked = s.blockLocked(); blocked != nil {
			status, e = http.StatusTooManyRequests, s.blockedError()
			d.Status, d.Verified = status, false
		}
	}
	s.deliveries = append(s.deliveries, &d)
	s.mu.Unlock()

	if !s.perform(r, step) {
		if step.delay > 0 {
			s.mu.Lock()
			d.Status = 0
			s.mu.Unlock()
		}
		panic(http.ErrAbortHandler) // closes the connection; net/http does not log it
	}
	if step.retryAfter != "" {
		w.Header().Set("Retry-After", step.retryAfter)
	}
	for k, v := range blocked {
		w.Header()[k] = v
	}
	reply(w, status, e)
}

// nextStep takes the next scripted step, or a zero Step (behave normally).
func (s *Server) nextStep() Step {
	s.mu.Lock()
	defer s.mu.Unlock()
	var step Step
	if len(s.script) > 0 {
		step, s.script = s.script[0], s.script[1:]
	}
	return step
}

// perform plays a step's drop, hang or delay. It returns false when the request
// must end unanswered: a drop, a hang, or a delay the client or Close cut short.
func (s *Server) perform(r *http.Request, step Step) bool {
	switch {
	case step.drop:
		return false
	case step.hang:
		s.wait(r.Context(), nil)
		return false
	case step.delay > 0:
		t := time.NewTimer(step.delay)
		defer t.Stop()
		return s.wait(r.Context(), t.C)
	}
	return true
}

// wait reports whether done fired before the client left or the server began closing. A nil done never fires.
func (s *Server) wait(ctx context.Context, done <-chan time.Time) bool {
	select {
	case <-done:
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	return false
}

// judge is Azure's answer to a request: its status and, for most failures, its error envelope.
func (s *Server) judge(r *http.Request, body []byte) (name string, status int, e *apiError) {
	name, ok := s.route(r.URL.Path)
	if !ok {
		return "", http.StatusNotFound, nil
	}
	if r.Method != http.MethodPost {
		return name, http.StatusMethodNotAllowed, nil
	}
	if e := checkVersion(r); e != nil {
		return name, http.StatusBadRequest, e
	}
	hook, ok := s.lookup(name)
	if !ok {
		return name, http.StatusInternalServerError, webHookError(fmt.Sprintf(
			"Cannot find webhook for the given webHookId %s. Try enabling CD trigger for this artifact.", name))
	}
	if hook.Header == "" {
		return hook.Name, http.StatusOK, nil
	}
	values := r.Header.Values(hook.Header) // canonical key: any case matches, as in .NET
	if len(values) == 0 {
		// Azure's literal message: the resource lookup is missing in its source.
		return hook.Name, http.StatusInternalServerError, webHookError("Properties.Resources.RequiredHeaderSignatureNotFound")
	}
	sig := values[0] // Azure reads the first value only
	if len(sig) >= 5 && strings.EqualFold(sig[:5], "sha1=") {
		sig = sig[5:]
	}
	if len(body) == 0 {
		return hook.Name, http.StatusInternalServerError, webHookError("Properties.Resources.EmptyWebHookEventPayload")
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return hook.Name, http.StatusBadRequest, newError("ArgumentException", "System.ArgumentException, mscorlib",
			"The signature is not a valid hexadecimal string.")
	}
	payload := asDecoded(body)
	mac := hmac.New(sha1.New, []byte(hook.Secret))
	mac.Write(payload)
	if !hmac.Equal(mac.Sum(nil), got) {
		return hook.Name, http.StatusInternalServerError, webHookError(
			"Payload hash does not match. Received Event payload: " + string(payload))
	}
	return hook.Name, http.StatusOK, nil
}

// route returns the webhook name in a path of the form /{org}/_apis/public/distributedtask/webhooks/{name}.
func (s *Server) route(path string) (string, bool) {
	prefix := "/" + s.org + "/_apis/public/distributedtask/webhooks/"
	if len(path) <= len(prefix) || !strings.EqualFold(path[:len(prefix)], prefix) {
		return "", false
	}
	name := path[len(prefix):]
	return name, !strings.Contains(name, "/")
}

func (s *Server) lookup(name string) (Webhook, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.hooks {
		if strings.EqualFold(h.Name, name) {
			return h, true
		}
	}
	return Webhook{}, false
}

// asDecoded returns the bytes Azure hashes: it reads the body as a UTF-8 string and hashes that string's encoding,
// so invalid bytes become U+FFFD.
func asDecoded(body []byte) []byte {
	if utf8.Valid(body) {
		return body
	}
	var b []byte
	for _, r := range string(body) {
		b = utf8.AppendRune(b, r)
	}
	return b
}

var versionForm = regexp.MustCompile(`^(\d+\.\d+)(-preview(\.\d+)?)?$`)

// checkVersion accepts a preview api-version from the query or, as Azure also does, the Accept header.
func checkVersion(r *http.Request) *apiError {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		if _, params, err := mime.ParseMediaType(r.Header.Get("Accept")); err == nil {
			v = params["api-version"]
		}
	}
	m := versionForm.FindStringSubmatch(v)
	switch {
	case v == "":
		return newError("VssVersionNotSpecifiedException",
			"Microsoft.VisualStudio.Services.WebApi.VssVersionNotSpecifiedException, Microsoft.VisualStudio.Services.WebApi",
			`No api-version was supplied for the "POST" request. The version must be supplied either as part of the Accept header (e.g. "application/json; api-version=1.0") or as a query parameter (e.g. "?api-version=1.0").`)
	case m == nil:
		return newError("VssInvalidApiVersionException",
			"Microsoft.VisualStudio.Services.WebApi.VssInvalidApiVersionException, Microsoft.VisualStudio.Services.WebApi",
			fmt.Sprintf("The api-version %q is not valid.", v))
	case m[2] == "":
		return newError("VssInvalidPreviewVersionException",
			"Microsoft.VisualStudio.Services.WebApi.VssInvalidPreviewVersionException, Microsoft.VisualStudio.Services.WebApi",
			fmt.Sprintf(`The requested version "%s" of the resource is under preview. The -preview flag must be supplied in the api-version for such requests. For example: "%s-preview"`, v, m[1]))
	}
	return nil
}

// apiError is Azure DevOps' error envelope, fields in Azure's order.
type apiError struct {
	ID             string `json:"$id"`
	InnerException any    `json:"innerException"`
	Message        string `json:"message"`
	TypeName       string `json:"typeName"`
	TypeKey        string `json:"typeKey"`
	ErrorCode      int    `json:"errorCode"`
	EventID        int    `json:"eventId"`
}

func newError(key, typeName, msg string) *apiError {
	return &apiError{ID: "1", Message: msg, TypeName: typeName, TypeKey: key, EventID: 3000}
}

func webHookError(msg string) *apiError {
	return newError("WebHookException",
		"Microsoft.TeamFoundation.DistributedTask.Pipelines.Artifacts.WebHooks.WebHookException, Microsoft.TeamFoundation.DistributedTask.Orchestration.Server",
		msg)
}

// reply writes Azure's answer: 200 with an empty body, an error envelope, or a bare status.
func reply(w http.ResponseWriter, status int, e *apiError) {
	switch {
	case e != nil:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // .NET leaves <, > and & alone
		_ = enc.Encode(e)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("X-TFS-ServiceError", url.QueryEscape(e.Message))
		w.WriteHeader(status)
		_, _ = w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	case status == http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, http.StatusText(status), status)
	case status >= 400:
		http.Error(w, http.StatusText(status), status)
	default:
		w.WriteHeader(status)
	}
}
