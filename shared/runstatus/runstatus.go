// Package runstatus makes a Port action run follow the Azure DevOps pipeline run it
// started, from the run-state-changed notifications of Azure's service hooks.
package runstatus

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/allowlist"
	"github.com/port-azure-relay/relay/shared/answer"
	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/secret"
)

// The service-hook events the function reads; any other is ignored.
const (
	EventType      = "ms.vss-pipelines.run-state-changed-event"   // the run: in progress, completed
	StageEventType = "ms.vss-pipelines.stage-state-changed-event" // a stage: running, completed
)

// PortBudget bounds the calls to Port's API. Azure does not document how long its
// service hook waits: answer within a few seconds.
const PortBudget = 5 * time.Second

// Margin is kept before the Lambda deadline to answer and log.
const Margin = 300 * time.Millisecond

// Errors are the reasons a notification is refused or ignored; rules maps each to
// an answer.
var (
	ErrNotHTTP      = errors.New("not an HTTP event")
	ErrBodyNotJSON  = errors.New("body is not a JSON object")
	ErrNoAuth       = errors.New("no Basic authorization")
	ErrBadAuth      = errors.New("wrong Basic auth password")
	ErrNoPassword   = errors.New("the secret has no serviceHookPassword")
	ErrNoClientID   = errors.New("the secret has no clientId")
	ErrOtherEvent   = errors.New("not a run-state-changed event")
	ErrNoRunID      = errors.New("no Port run id in the run name, nor a Port run with the Azure run's externalRunId")
	ErrCanceling    = errors.New("the run is canceling")
	ErrUnknownState = errors.New("a run state this function does not follow")
	ErrSource       = errors.New("the caller's address is not in ALLOWED_SOURCE_IPS")
)

// Secrets gives the credentials; *secret.Source is one. Renew reads them again
// (at most every 30 s), for when a password does not match a cached secret.
type Secrets interface {
	Get(ctx context.Context) (secret.Credentials, error)
	Renew(ctx context.Context) (secret.Credentials, bool, error)
}

// PreviousSecrets gives the value the secret held before current (AWSPREVIOUS);
// *secret.Previous is one.
type PreviousSecrets interface {
	Get(ctx context.Context, current secret.Credentials) (secret.Credentials, error)
}

// PasswordGrace is how long after a rotation (the current version's CreatedDate) the
// previous version's serviceHookPassword is still accepted: whichever side the
// operator changes first, Azure's service hook and the secret then disagree until
// the other side follows, and a 401 puts Azure's subscription on probation.
const PasswordGrace = 24 * time.Hour

// Updater finds and changes Port runs; *portapi.Client is one. RunByExternalID finds
// the Port run of an Azure run whose name carries no Port run id (a pipeline the
// relay started by id, whose name is the pipeline's own) by the externalRunId the
// relay set on it.
type Updater interface {
	Update(ctx context.Context, creds portapi.Credentials, runID string, u portapi.RunUpdate) error
	Log(ctx context.Context, creds portapi.Credentials, runID, message string) error
	RunByExternalID(ctx context.Context, creds portapi.Credentials, externalRunID string) (string, bool, error)
}

// Follower is the status function's core.
type Follower struct {
	Secrets Secrets
	// Previous, when set, accepts the previous version's serviceHookPassword for
	// PasswordGrace after the current version was stored; nil: the current only.
	Previous PreviousSecrets
	Now      func() time.Time // nil: time.Now
	Port     Updater
	// Org is the Azure DevOps organization (AZURE_DEVOPS_ORG) whose runs the function
	// follows: with the Azure run id, it makes the externalRunId the relay sets
	// (portapi.ExternalRunID).
	Org     string
	Log     *slog.Logger
	Metrics *metrics.Emitter // the log line's EMF members (RunsUpdated by outcome); nil: none
	// Sources may call over HTTP; empty (the default): everyone. Azure's service hooks
	// come from Azure's wide ranges, so Basic auth is the guard; an operator may still
	// set ALLOWED_SOURCE_IPS on the function.
	Sources allowlist.List
	// Relook is how long to wait before looking for the Port run of a completed run
	// once more, when the first look found none: the relay may be setting the
	// externalRunId right then. Zero: DefaultRelook; negative: never.
	Relook time.Duration
}

// DefaultRelook is Follower.Relook's default: the relay sets a pipeline run's
// externalRunId within a second or two of Azure naming the run.
const DefaultRelook = time.Second

// Outcomes, as logged.
const (
	Updated = "updated"
	Ignored = "ignored"
	Refused = "refused" // the request was bad; Azure's retry cannot help
	Failed  = "failed"  // our side or Port's: Azure retries
)

// answers is the one place where the status function's errors become answers. A 200
// is "ignored": Azure must not retry it, and a non-2xx other than 408/502/503/504 puts
// its subscription on probation. Never 410, which disables it. The outcome a log line
// names follows from the status: ignored (200), refused (4xx: Azure's retry cannot
// help), failed (5xx: our side or Port's, and Azure retries).
var answers = answer.Table{
	Rows: map[error]answer.Answer{
		ErrSource:                {Status: http.StatusForbidden, Class: "source", Say: "Forbidden: the caller's address is not in the status function's allow list (ALLOWED_SOURCE_IPS)."},
		event.ErrNotJSON:         {Status: http.StatusBadRequest, Class: "not-json", Say: "The event is not a JSON object."},
		event.ErrMalformed:       {Status: http.StatusBadRequest, Class: "not-json", Say: "The HTTP event is malformed."},
		ErrNotHTTP:               {Status: http.StatusBadRequest, Class: "not-http", Say: "The status function answers Azure DevOps service hooks over HTTP only."},
		ErrBodyNotJSON:           {Status: http.StatusBadRequest, Class: "not-json", Say: "The body is not a JSON service-hook event."},
		ErrNoAuth:                {Status: http.StatusUnauthorized, Class: "auth-missing", Say: "Basic authorization is required: set the service hook's password to the secret's serviceHookPassword."},
		ErrBadAuth:               {Status: http.StatusUnauthorized, Class: "auth-wrong", Say: "The Basic auth password does not match the secret's serviceHookPassword."},
		ErrNoPassword:            {Status: http.StatusServiceUnavailable, Class: "no-password", Say: "The status function's secret has no serviceHookPassword, so it refuses every notification."},
		ErrNoClientID:            {Status: http.StatusServiceUnavailable, Class: "no-client-id", Say: "The status function's secret has no clientId, so it cannot update Port runs."},
		secret.ErrNotFound:       {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The status function's secret was not found in Secrets Manager: check PORT_SECRET_ID."},
		secret.ErrEmpty:          {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The status function's secret in Secrets Manager is empty."},
		secret.ErrMalformed:      {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The status function's secret in Secrets Manager is malformed: it must be a JSON object with a clientSecret string, no blank key, and azureTenantId with azureClientId."},
		secret.ErrUnavailable:    {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The status function could not read its secret from Secrets Manager; try again."},
		ErrOtherEvent:            {Status: http.StatusOK, Class: "event-type", Say: "not a run-state-changed or stage-state-changed event"},
		ErrNoRunID:               {Status: http.StatusOK, Class: "no-run-id", Say: "no Port run id (r_…) in the run name, and no Port run with the Azure run's externalRunId"},
		ErrCanceling:             {Status: http.StatusOK, Class: "canceling", Say: "the run is canceling; its completion will follow"},
		ErrUnknownState:          {Status: http.StatusOK, Class: "unknown-state", Say: "a run state that does not change the Port run"},
		portapi.ErrRunNotFound:   {Status: http.StatusOK, Class: "run-not-found", Say: "the Port run does not exist"},
		portapi.ErrRunEnded:      {Status: http.StatusOK, Class: "run-ended", Say: "the Port run has already ended"},
		portapi.ErrUnavailable:   {Status: http.StatusServiceUnavailable, Class: "port-unavailable", Say: "Port's API could not be reached; try again."},
		portapi.ErrNoCredentials: {Status: http.StatusServiceUnavailable, Class: "no-client-id", Say: "The status function's secret has no clientId, so it cannot update Port runs."},
		portapi.ErrToken:         {Status: http.StatusServiceUnavailable, Class: "port-token", Say: "Port refused the clientId and clientSecret in the status function's secret: check them, and that PORT_API_URL (PortApiUrl) is your Port organization's region, https://api.us.port.io for the US."},
		portapi.ErrBadRunID:      {Status: http.StatusOK, Class: "no-run-id", Say: "the run name's Port run id is not one Port issues"},
		portapi.ErrRejected:      {Status: http.StatusServiceUnavailable, Class: "port-refused", Say: "Port refused the search for the run or its update."},
	},
	Otherwise: answer.Answer{Status: http.StatusInternalServerError, Class: "internal", Say: "The status function failed unexpectedly."},
}

// outcomeOf is what a log line says of an answer.
func outcomeOf(a answer.Answer) string {
	switch {
	case a.Status < 300:
		return Ignored
	case a.Status < 500:
		return Refused
	}
	return Failed
}

// done is what one notification came to, for the answer and the log line.
type done struct {
	http       bool
	kind       event.Kind // the event's shape, for the response's (REST gets 1.0)
	runID      string
	azureRunID string
	state      string
	portStatus string // SUCCESS, FAILURE, or "" while running
	password   string // the version whose serviceHookPassword matched
	err        error
}

// Handle answers one raw Lambda event.
func (f *Follower) Handle(ctx context.Context, requestID string, raw []byte) event.Response {
	start := time.Now()
	ctx, cancel := workContext(ctx)
	defer cancel()
	d := f.follow(ctx, raw)
	resp := respond(d)
	f.logLine(ctx, requestID, d, resp.Status, time.Since(start))
	return resp
}

func (f *Follower) follow(ctx context.Context, raw []byte) done {
	req, err := event.Parse(raw)
	if err == nil && !req.Kind.IsHTTP() {
		err = ErrNotHTTP
	}
	if err != nil {
		// A broken HTTP event is answered in the 1.0 shape, which every API accepts.
		return done{http: errors.Is(err, event.ErrMalformed), kind: event.REST, err: err}
	}
	d := done{http: true, kind: req.Kind}
	if !f.Sources.Allows(req.Source) {
		d.err = ErrSource // before the secret is read
		return d
	}
	creds, password, err := f.authenticate(ctx, req.Get("authorization"))
	d.password = password
	if err != nil {
		d.err = err
		return d
	}
	n, err := parse(req.Body)
	if err != nil {
		d.err = err
		return d
	}
	d.runID, d.azureRunID, d.state = n.portRunID(), n.azureRunID(), n.state()
	u, logLine, err := n.update()
	switch {
	case err != nil:
		d.err = err
		return d
	case d.runID == "" && d.azureRunID == "":
		d.err = ErrNoRunID // nothing to find the Port run by
		return d
	case creds.ClientID == "":
		d.err = ErrNoClientID
		return d
	}
	pc := portapi.Credentials{ClientID: creds.ClientID, ClientSecret: creds.ClientSecret}
	if d.azureRunID != "" && n.ofOrg(f.Org) {
		u.ExternalRunID = portapi.ExternalRunID(f.Org, d.azureRunID)
	}
	d.portStatus = u.Status
	tell := func(runID string) error {
		if logLine != "" {
			// A stage's news goes to the run's log too, so that the run page shows each stage.
			if err := f.Port.Log(ctx, pc, runID, logLine); err != nil {
				return err
			}
		}
		return f.Port.Update(ctx, pc, runID, u)
	}
	if d.runID != "" {
		d.err = tell(d.runID)
		if !errors.Is(d.err, portapi.ErrRunNotFound) || u.ExternalRunID == "" {
			return d
		}
		// The name's word is no Port run: the run may still be one the relay started by id.
	}
	if u.ExternalRunID == "" {
		d.err = ErrNoRunID // another organization's run: its ids are not this one's
		return d
	}
	named := d.err // the run the name gave was not found, or none was named
	d.runID, d.err = f.lookUp(ctx, pc, u.ExternalRunID)
	if errors.Is(d.err, ErrNoRunID) && u.Status != "" && f.wait(ctx) {
		// A run that ended so soon may have beaten the relay's report of its id.
		d.runID, d.err = f.lookUp(ctx, pc, u.ExternalRunID)
	}
	if d.err != nil {
		if errors.Is(d.err, ErrNoRunID) && named != nil {
			d.err = named // it is the name's run that Port does not have
		}
		return d
	}
	d.err = tell(d.runID)
	return d
}

// ofOrg reports whether the notification may be of a run of org: its links name that
// organization (dev.azure.com/{org}/…, {org}.visualstudio.com), or no organization.
// An Azure run id names a run only within its organization.
func (n notification) ofOrg(org string) bool {
	run := n.Resource.Run
	for _, href := range []string{run.Links.Web.Href, run.Links.Self.Href, run.URL} {
		if o := orgOf(href); o != "" {
			return strings.EqualFold(o, org)
		}
	}
	return true
}

// orgOf is the organization an Azure DevOps Services URL names, or "".
func orgOf(href string) string {
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	if host == "dev.azure.com" {
		first, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		return first
	}
	if sub, ok := strings.CutSuffix(host, ".visualstudio.com"); ok && !strings.Contains(sub, ".") {
		return sub
	}
	return ""
}

// wait waits Relook, or reports false when it is never or the context would end first.
func (f *Follower) wait(ctx context.Context) bool {
	d := f.Relook
	switch {
	case d < 0:
		return false
	case d == 0:
		d = DefaultRelook
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < 2*d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// lookUp finds, through Port's API, the Port run of an Azure run whose name carries
// no Port run id: the one whose externalRunId is the Azure run's. None is ErrNoRunID
// (ignored: a run the relay did not start); Port unreachable is portapi's error (503,
// and Azure retries).
func (f *Follower) lookUp(ctx context.Context, creds portapi.Credentials, externalRunID string) (string, error) {
	runID, found, err := f.Port.RunByExternalID(ctx, creds, externalRunID)
	switch {
	case err != nil:
		return "", err
	case !found:
		return "", ErrNoRunID
	}
	return runID, nil
}

// authenticate checks the Basic auth password against the secret's, reading the
// secret again once when it does not match (a rotation), and, within PasswordGrace
// of the current version's creation, against the previous version's: never a
// password older than that. It says which version matched.
func (f *Follower) authenticate(ctx context.Context, authorization string) (secret.Credentials, string, error) {
	creds, err := f.Secrets.Get(ctx)
	if err != nil {
		return creds, "", err
	}
	if creds.ServiceHookPassword == "" {
		return creds, "", ErrNoPassword // fail closed: an empty password would let anyone in
	}
	password, ok := basicPassword(authorization)
	if !ok {
		return creds, "", ErrNoAuth
	}
	if samePassword(password, creds.ServiceHookPassword) {
		return creds, secret.StageCurrent, nil
	}
	if renewed, changed, err := f.Secrets.Renew(ctx); err == nil && changed && renewed.ServiceHookPassword != "" {
		if creds = renewed; samePassword(password, renewed.ServiceHookPassword) {
			return renewed, secret.StageCurrent, nil
		}
	}
	if f.inGrace(creds) {
		if previous, err := f.Previous.Get(ctx, creds); err == nil && previous.ServiceHookPassword != "" &&
			samePassword(password, previous.ServiceHookPassword) {
			return creds, secret.StagePrevious, nil // the current value's clientId and clientSecret serve Port
		}
	}
	return creds, "", ErrBadAuth
}

// inGrace reports whether the previous version may still be accepted beside creds.
func (f *Follower) inGrace(creds secret.Credentials) bool {
	if f.Previous == nil || creds.Created.IsZero() {
		return false
	}
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	age := now().Sub(creds.Created)
	return age >= -time.Minute && age < PasswordGrace // a little clock skew either way
}

// basicPassword reads the password of "Basic base64(user:password)"; the user name
// is not checked. An empty password counts as none.
func basicPassword(header string) (string, bool) {
	scheme, value, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", false
	}
	decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		return "", false
	}
	_, password, ok := strings.Cut(string(decoded), ":")
	return password, ok && password != ""
}

// samePassword compares in constant time; hashing first hides the length too.
func samePassword(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// workContext bounds the work to PortBudget, ending Margin before the Lambda
// deadline at the latest.
func workContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(PortBudget)
	if d, ok := ctx.Deadline(); ok && d.Add(-Margin).Before(deadline) {
		deadline = d.Add(-Margin)
	}
	return context.WithDeadline(ctx, deadline)
}

func respond(d done) event.Response {
	if d.err == nil {
		body, _ := json.Marshal(map[string]any{"updated": true, "runId": d.runID, "status": portStatus(d.portStatus)})
		return event.Response{HTTP: true, Kind: d.kind, Status: http.StatusOK, Body: body}
	}
	r, say, _ := answers.For(d.err)
	if r.Status == http.StatusOK {
		body, _ := json.Marshal(map[string]string{"ignored": say})
		return event.Response{HTTP: true, Kind: d.kind, Status: http.StatusOK, Body: body}
	}
	body, _ := json.Marshal(map[string]string{"error": say})
	return event.Response{HTTP: d.http, Kind: d.kind, Status: r.Status, Body: body, Error: say}
}

func portStatus(s string) string {
	if s == "" {
		return "IN_PROGRESS"
	}
	return s
}

// logLine writes the invocation's one JSON line: ids and outcomes only, never the
// password, the body or Port's answer.
func (f *Follower) logLine(ctx context.Context, requestID string, d done, status int, took time.Duration) {
	outcome, reason, level := Updated, "", slog.LevelInfo
	if d.err != nil {
		r, _, _ := answers.For(d.err)
		outcome, reason = outcomeOf(r), r.Class
		switch outcome {
		case Failed:
			level = slog.LevelError
		case Refused:
			level = slog.LevelWarn
		}
	}
	attrs := []slog.Attr{
		slog.String("requestId", requestID),
		slog.String("outcome", outcome),
		slog.Int("status", status),
	}
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	if d.runID != "" {
		attrs = append(attrs, slog.String("runId", d.runID))
	}
	if d.azureRunID != "" {
		attrs = append(attrs, slog.String("azureRunId", d.azureRunID))
	}
	if d.state != "" {
		attrs = append(attrs, slog.String("azureState", d.state))
	}
	if d.err == nil {
		attrs = append(attrs, slog.String("portStatus", portStatus(d.portStatus)))
	}
	if d.password == secret.StagePrevious {
		// Azure's service hook still sends the password from before the rotation: the
		// runbook's second step (docs/operations.md) is due within PasswordGrace.
		attrs = append(attrs, slog.String("password", secret.StagePrevious))
	}
	attrs = append(attrs, slog.Float64("durationMs", float64(took.Microseconds())/1000))
	groups := []metrics.Group{{Key: metrics.Outcome, Class: outcome, Values: []metrics.Value{metrics.One(metrics.RunsUpdated)}}}
	if errors.Is(d.err, ErrBadAuth) {
		// Its own metric and alarm: a password that Azure and the secret disagree on
		// refuses every notification, and Azure disables the subscription.
		groups = append(groups, metrics.Group{Values: []metrics.Value{metrics.One(metrics.WrongPassword)}})
	}
	attrs = f.Metrics.Append(attrs, groups...)
	f.Log.LogAttrs(ctx, level, "run status "+outcome, attrs...)
}

// notification is what the function reads of a service-hook event. Microsoft's
// samples differ, so every field is optional and checked where used.
type notification struct {
	EventType string `json:"eventType"`
	Resource  struct {
		Run struct {
			ID     flexID `json:"id"`
			Name   string `json:"name"`
			State  string `json:"state"`
			Result string `json:"result"`
			URL    string `json:"url"` // …/_apis/Pipelines/{pipeline}/runs/{id}
			Links  struct {
				Self struct {
					Href string `json:"href"`
				} `json:"self"`
				Web struct {
					Href string `json:"href"`
				} `json:"web"`
			} `json:"_links"`
			Pipeline *pipeline `json:"pipeline"`
		} `json:"run"`
		Pipeline *pipeline `json:"pipeline"`
		Stage    *stage    `json:"stage"` // stage-state-changed events only
	} `json:"resource"`
}

// stage is what a stage-state-changed event says of the stage.
type stage struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	State       string `json:"state"`  // notStarted, waiting, running, completed
	Result      string `json:"result"` // succeeded, failed, canceled, skipped, rejected, …
	Links       struct {
		Web struct {
			Href string `json:"href"`
		} `json:"web"`
	} `json:"_links"`
}

type pipeline struct {
	ID   flexID `json:"id"`
	Name string `json:"name"`
}

// flexID is an id Azure writes as a number or a string.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*f = flexID(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexID(s)
	}
	return nil // anything else: no id
}

func (f flexID) String() string {
	if len(f) > 40 || strings.ContainsAny(string(f), " \t\r\n\"\\") {
		return "" // not an id: keep it out of Port and the log
	}
	return string(f)
}

func parse(body []byte) (notification, error) {
	var n notification
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return n, ErrBodyNotJSON
	}
	// Fields of unexpected types are left empty rather than failing the whole event.
	if err := json.Unmarshal(body, &n); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return n, ErrBodyNotJSON
		}
	}
	return n, nil
}

// runIDWord is a Port run id as a word of the run name.
var runIDWord = regexp.MustCompile(`\br_[A-Za-z0-9]+\b`)

func (n notification) portRunID() string {
	if n.EventType != EventType && n.EventType != StageEventType {
		return ""
	}
	return runIDWord.FindString(n.Resource.Run.Name)
}

// azureRunID is the Azure run's id: run.id, or, in an event whose run has none (as in
// Microsoft's current sample of run-state-changed), the id its links carry: the end
// of its self link or url (…/runs/{id}), its page's buildId, and in a stage event the
// stage's page. "" when none holds a run id.
func (n notification) azureRunID() string {
	run := n.Resource.Run
	if id := runNumber(run.ID.String()); id != "" {
		return id
	}
	candidates := []string{runsPathID(run.Links.Self.Href), runsPathID(run.URL), buildID(run.Links.Web.Href)}
	if st := n.Resource.Stage; st != nil {
		candidates = append(candidates, buildID(st.Links.Web.Href))
	}
	for _, id := range candidates {
		if id != "" {
			return id
		}
	}
	return ""
}

// runsPathID is the id at the end of an Azure REST URL of a run, …/runs/{id}.
func runsPathID(href string) string {
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	segments := strings.Split(strings.TrimSuffix(u.Path, "/"), "/")
	if n := len(segments); n >= 2 && strings.EqualFold(segments[n-2], "runs") {
		return runNumber(segments[n-1])
	}
	return ""
}

// buildID is the buildId of a run's page, …/_build/results?buildId={id}.
func buildID(href string) string {
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	return runNumber(u.Query().Get("buildId"))
}

// runNumber is s as an Azure run id, a positive 32-bit decimal written as the relay
// writes it (no leading zero), or "" when s, digits only, is none.
func runNumber(s string) string {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return ""
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n <= 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

// state is the state the log line names: the run's, or "stage <state>".
func (n notification) state() string {
	if st := n.Resource.Stage; n.EventType == StageEventType && st != nil {
		return "stage " + word(st.State)
	}
	return n.Resource.Run.State
}

// update is the Port run change for the notification, and for a stage a run log line,
// or why there is none. Its externalRunId is set later, from the organization.
func (n notification) update() (portapi.RunUpdate, string, error) {
	switch n.EventType {
	case EventType:
		u, err := n.runUpdate()
		return u, "", err
	case StageEventType:
		return n.stageUpdate()
	}
	return portapi.RunUpdate{}, "", ErrOtherEvent
}

func (n notification) runUpdate() (portapi.RunUpdate, error) {
	run := n.Resource.Run
	u := portapi.RunUpdate{Link: webLink(run.Links.Web.Href)}
	switch strings.ToLower(run.State) {
	case "inprogress":
		u.StatusLabel = "Running in Azure DevOps"
		return u, nil
	case "canceling":
		return portapi.RunUpdate{}, ErrCanceling
	case "completed":
	default:
		return portapi.RunUpdate{}, ErrUnknownState
	}
	// Every completed run ends the Port run: a result this function did not expect
	// must not leave it in progress forever.
	var result string
	switch r := strings.ToLower(run.Result); r {
	case "succeeded":
		u.Status, result = "SUCCESS", "succeeded"
	case "partiallysucceeded": // the Build API's result for a run with warnings or failed steps that continued
		u.Status, result = "SUCCESS", "partially succeeded"
	case "failed", "canceled":
		u.Status, result = "FAILURE", r
	case "":
		u.Status, result = "FAILURE", "completed without a result"
	default:
		u.Status, result = "FAILURE", "completed with result "+resultWord(run.Result)
	}
	u.StatusLabel = "Azure DevOps run " + result
	u.Summary = n.summary(result)
	return u, nil
}

// stageUpdate shows on the Port run which stage runs, and how each ended: a label
// and a log line; never a final status (the run's own event brings that).
func (n notification) stageUpdate() (portapi.RunUpdate, string, error) {
	st := n.Resource.Stage
	if st == nil {
		return portapi.RunUpdate{}, "", ErrUnknownState
	}
	name := clip(st.DisplayName, 100)
	if name == "" {
		name = clip(st.Name, 100)
	}
	if name == "" || name == "__default" {
		name = "(the only stage)"
	}
	u := portapi.RunUpdate{Link: webLink(st.Links.Web.Href)}
	var what string
	switch strings.ToLower(st.State) {
	case "running", "inprogress":
		what = "running"
	case "completed":
		what = "ended: " + stageResult(st.Result)
	case "waiting", "notstarted":
		what = "waiting"
	default:
		return portapi.RunUpdate{}, "", ErrUnknownState
	}
	u.StatusLabel = "Stage " + name + " " + what
	return u, "Azure DevOps: stage " + name + " " + what + ".", nil
}

// stageResult names a completed stage's result; partiallySucceeded reads as such.
func stageResult(r string) string {
	switch strings.ToLower(r) {
	case "succeeded", "failed", "canceled", "skipped", "rejected":
		return strings.ToLower(r)
	case "partiallysucceeded":
		return "partially succeeded"
	case "":
		return "no result"
	}
	return "result " + resultWord(r)
}

// word keeps a state as Azure writes it (a camelCase word), or says it is unreadable.
func word(s string) string {
	if w := resultWord(s); w != "(unreadable)" {
		return s
	}
	return "(unreadable)"
}

// resultWord names a result Azure sent, as far as it is a word (Azure's results
// are camelCase words): anything else is not repeated.
func resultWord(r string) string {
	if len(r) > 40 {
		return "(unreadable)"
	}
	for i := 0; i < len(r); i++ {
		if c := r[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "(unreadable)"
		}
	}
	return strconv.Quote(r)
}

// summary names the pipeline and the run: "Azure DevOps pipeline deploy-service
// (7), run 20261201.1 r_… (11): succeeded."
func (n notification) summary(result string) string {
	p := n.Resource.Pipeline
	if p == nil {
		p = n.Resource.Run.Pipeline
	}
	var b strings.Builder
	b.WriteString("Azure DevOps pipeline")
	if p != nil && p.Name != "" {
		fmt.Fprintf(&b, " %s", clip(p.Name, 200))
	}
	if p != nil && p.ID.String() != "" {
		fmt.Fprintf(&b, " (%s)", p.ID)
	}
	b.WriteString(", run")
	if name := clip(n.Resource.Run.Name, 255); name != "" {
		fmt.Fprintf(&b, " %s", name)
	}
	if id := n.azureRunID(); id != "" {
		fmt.Fprintf(&b, " (%s)", id)
	}
	fmt.Fprintf(&b, ": %s.", result)
	return b.String()
}

// webLink keeps an http(s) URL, the only kind Port should show as the run's link.
func webLink(href string) string {
	u, err := url.Parse(href)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(href) > 2048 {
		return ""
	}
	return href
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
