package azdotest

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RunsAPIVersion is the api-version the relay sends to "Runs - Run Pipeline".
const RunsAPIVersion = "7.1"

// Authentication kinds of a queued run.
const (
	AuthPAT    = "PAT"    // Basic, a registered personal access token as the password
	AuthBearer = "Bearer" // a token AcceptBearer's function accepts
)

// firstRunID is the id of the first run the server queues; ids then increase by one.
const firstRunID = 1001

// RunsPipeline is a pipeline of the organization that the Runs API can start.
type RunsPipeline struct {
	Project string // the project's name, matched in any case
	ID      int    // positive
	Name    string
	Folder  string // `\` when empty
	// Parameters are the runtime parameters the pipeline's YAML declares, matched in
	// any case, each with a default: a run may set any of them and no other.
	Parameters []string
	// SettableVariables are the pipeline's variables marked "Settable at queue time",
	// matched in any case; a run setting any other variable is refused, as in an
	// organization that limits the variables set at queue time (the default).
	SettableVariables []string
	DefaultBranch     string // the ref a run uses when it names none; refs/heads/main when empty
	// QueueDenied takes "Queue builds" away from every identity: a run is 403, and
	// the permissions API answers false.
	QueueDenied bool
}

// Variable is a run's variable as Azure binds it.
type Variable struct {
	Value    string
	IsSecret bool
}

// RepositoryParameters are the fields of resources.repositories.<name> Azure binds.
type RepositoryParameters struct {
	RefName, Token, TokenType, Version string
}

// RunResources are a run's resources as Azure binds them; the other kinds map a
// resource's name to its version.
type RunResources struct {
	Repositories                            map[string]RepositoryParameters
	Pipelines, Builds, Containers, Packages map[string]string
}

// QueuedRun is a run the server queued.
type QueuedRun struct {
	Project            string // the project's name as registered
	PipelineID         int
	ID                 int
	Name               string // yyyyMMdd.n, as Azure's default run name
	RefName            string // the ref the run uses: the body's resources.repositories.self.refName, or the default branch
	WebURL             string // _links.web.href
	Auth               string // AuthPAT or AuthBearer; never the credential itself
	TemplateParameters map[string]string
	Variables          map[string]Variable
	Resources          RunResources
	StagesToSkip       []string
	// Members names the body's top-level members in order, those Azure ignores too
	// (port_context...): what a sender sent, for a test to hold it to what it should.
	Members []string
}

// runsAPI is the Runs API's part of a Server, guarded by Server.mu.
type runsAPI struct {
	pipelines []RunsPipeline
	pats      map[string][]string // scopes of each accepted PAT; nil: revoked
	bearer    func(token string) bool
	queued    []QueuedRun
	requests  int
	lastID    int
	daily     map[string]int // runs by pipeline and UTC day, for the run names
}

// AddPipeline registers a pipeline, and its project if new. It panics on a project
// or id the Runs API could not serve, or a pipeline registered twice.
func (s *Server) AddPipeline(p RunsPipeline) {
	if p.Project == "" || strings.ContainsAny(p.Project, "/?#") || p.ID <= 0 {
		panic(fmt.Sprintf("azdotest: invalid pipeline %q/%d", p.Project, p.ID))
	}
	p.Parameters = slices.Clone(p.Parameters)
	p.SettableVariables = slices.Clone(p.SettableVariables)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pipelineLocked(p.Project, p.ID); ok {
		panic(fmt.Sprintf("azdotest: pipeline %q/%d registered twice", p.Project, p.ID))
	}
	s.runs.pipelines = append(s.runs.pipelines, p)
}

// AddPAT registers a personal access token with the scope to queue runs, "Build:
// Read & execute" (vso.build_execute). Azure takes it with any Basic user name.
func (s *Server) AddPAT(pat string) { s.AddScopedPAT(pat, ScopeBuildExecute) }

// AddScopedPAT registers a personal access token with these scopes (ScopeBuildExecute,
// ScopeHooks, …). A request the scopes do not cover is refused as a wrong PAT is.
func (s *Server) AddScopedPAT(pat string, scopes ...string) {
	if pat == "" || len(scopes) == 0 {
		panic("azdotest: a PAT needs a value and a scope")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs.pats == nil {
		s.runs.pats = map[string][]string{}
	}
	s.runs.pats[pat] = slices.Clone(scopes)
}

// RevokePAT revokes a token, as its owner or an administrator does (or its expiry):
// from the next request on it is refused as a wrong one is.
func (s *Server) RevokePAT(pat string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs.pats != nil {
		s.runs.pats[pat] = nil
	}
}

// AcceptBearer makes the server accept the Bearer tokens valid reports true for: for
// Entra tokens, a service principal added to the organization (entratest's Valid).
// Without it every Bearer token is refused.
func (s *Server) AcceptBearer(valid func(token string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs.bearer = valid
}

// Runs returns the runs queued so far, oldest first.
func (s *Server) Runs() []QueuedRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]QueuedRun, len(s.runs.queued))
	for i, r := range s.runs.queued {
		out[i] = r.clone()
	}
	return out
}

// RunCount is the number of runs queued so far.
func (s *Server) RunCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs.queued)
}

// RunRequests is the number of requests the Runs API received, whatever became of
// them. They are not Deliveries.
func (s *Server) RunRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs.requests
}

// RunsURL is the "Runs - Run Pipeline" address of a pipeline, api-version included.
func (s *Server) RunsURL(project string, id int) string {
	return s.URL + "/" + s.org + "/" + url.PathEscape(project) + "/_apis/pipelines/" + strconv.Itoa(id) +
		"/runs?api-version=" + RunsAPIVersion
}

func (r QueuedRun) clone() QueuedRun {
	c := r
	c.TemplateParameters = cloneMap(r.TemplateParameters)
	c.Variables = cloneMap(r.Variables)
	c.Resources = RunResources{
		Repositories: cloneMap(r.Resources.Repositories),
		Pipelines:    cloneMap(r.Resources.Pipelines),
		Builds:       cloneMap(r.Resources.Builds),
		Containers:   cloneMap(r.Resources.Containers),
		Packages:     cloneMap(r.Resources.Packages),
	}
	c.StagesToSkip = slices.Clone(r.StagesToSkip)
	return c
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// runsRoute returns the project and the pipeline id segment of a path of the form
// /{org}/{project}/_apis/pipelines/{id}/runs.
func (s *Server) runsRoute(path string) (project, id string, ok bool) {
	parts := strings.Split(path, "/")
	if len(parts) != 7 || parts[0] != "" || !strings.EqualFold(parts[1], s.org) || parts[2] == "" ||
		!strings.EqualFold(parts[3], "_apis") || !strings.EqualFold(parts[4], "pipelines") || !strings.EqualFold(parts[6], "runs") {
		return "", "", false
	}
	return parts[2], parts[5], true
}

// runAnswer is what the Runs API answers: a status, headers, a body of a content
// type; and, when accepted, the run to queue.
type runAnswer struct {
	status      int
	header      http.Header
	contentType string
	body        []byte
	accepted    *runRequest
}

// runRequest is a request Azure accepts, before it has a run id.
type runRequest struct {
	pipeline RunsPipeline
	auth     string
	params   boundParams
	version  string
}

func (s *Server) serveRuns(w http.ResponseWriter, r *http.Request, project, id string) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, MaxBody))
	_, _ = io.Copy(io.Discard, r.Body)
	step := s.nextStep()
	a := s.judgeRun(r, project, id, body)
	switch {
	case step.hang || step.drop:
		a.accepted = nil
	case step.signIn:
		a = s.signInPage()
	case step.redirect:
		a = runAnswer{status: http.StatusFound, header: http.Header{"Location": {s.signInURL(r)}}}
	case step.status != 0:
		a = runAnswer{status: step.status}
		if step.status >= 400 {
			msg := step.message
			if msg == "" {
				msg = http.StatusText(step.status)
			}
			a = errorAnswer(step.status, newError("VssServiceException",
				"Microsoft.VisualStudio.Services.Common.VssServiceException, Microsoft.VisualStudio.Services.Common", msg))
		}
	}
	// Queued on arrival, as Azure queues before it answers: a client that gives up
	// waiting on a Delay leaves a run behind, as it would on Azure.
	s.mu.Lock()
	s.runs.requests++
	if a.accepted != nil {
		if blocked := s.blockLocked(); blocked != nil {
			a = errorAnswer(http.StatusTooManyRequests, s.blockedError())
			maps.Copy(a.header, blocked)
		} else {
			a.body = s.queueLocked(*a.accepted)
		}
	}
	s.mu.Unlock()

	if !s.perform(r, step) {
		panic(http.ErrAbortHandler)
	}
	if step.retryAfter != "" {
		w.Header().Set("Retry-After", step.retryAfter)
	}
	for k, v := range a.header {
		w.Header()[k] = v
	}
	if a.contentType != "" {
		w.Header().Set("Content-Type", a.contentType)
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// judgeRun is Azure's answer to a Runs API request, in the order Azure checks:
// credentials, the api-version, the project, the pipeline id, the body, the
// pipeline, then the run's parameters.
func (s *Server) judgeRun(r *http.Request, project, idText string, body []byte) runAnswer {
	kind, refused := s.authenticate(r, ScopeBuildExecute)
	if refused != nil {
		return *refused
	}
	version, e := runsVersion(r)
	if e != nil {
		return errorAnswer(http.StatusBadRequest, e)
	}
	if r.Method != http.MethodPost {
		// GET is "Runs - List", which the server does not model.
		return runAnswer{status: http.StatusMethodNotAllowed, header: http.Header{"Allow": {http.MethodPost}}}
	}
	if !s.hasProject(project) {
		return errorAnswer(http.StatusNotFound, newError("ProjectDoesNotExistWithNameException",
			"Microsoft.TeamFoundation.Core.WebApi.ProjectDoesNotExistWithNameException, Microsoft.TeamFoundation.Core.WebApi",
			fmt.Sprintf("TF200016: The following project does not exist: %s. Verify that the name of the project is correct and that the project exists on the specified Azure DevOps Server.", project)))
	}
	id, err := strconv.Atoi(idText)
	if err != nil || strings.HasPrefix(idText, "+") {
		return runAnswer{status: http.StatusNotFound} // no route has a pipeline id that is not a number
	}
	if id <= 0 {
		return errorAnswer(http.StatusBadRequest, newError("ArgumentOutOfRangeException", "System.ArgumentOutOfRangeException, mscorlib",
			"Specified argument was out of the range of valid values.\r\nParameter name: pipelineId"))
	}
	if !jsonContent(r.Header.Get("Content-Type")) && len(body) > 0 {
		// ASP.NET Web API has no formatter to read the body with.
		return runAnswer{status: http.StatusUnsupportedMediaType}
	}
	params, ok := bindRun(body)
	if !ok {
		// ASP.NET Web API hands the action a null body when it cannot bind it.
		return errorAnswer(http.StatusBadRequest, newError("ArgumentNullException", "System.ArgumentNullException, mscorlib",
			"Value cannot be null.\r\nParameter name: runParameters"))
	}
	if params.yamlOverride != "" && !params.previewRun {
		return errorAnswer(http.StatusBadRequest, newError("ArgumentException", "System.ArgumentException, mscorlib",
			"The request specifies YAML override content but that is allowed only for dry run builds."))
	}
	if params.previewRun {
		return errorAnswer(http.StatusBadRequest, newError("VssServiceException",
			"Microsoft.VisualStudio.Services.Common.VssServiceException, Microsoft.VisualStudio.Services.Common",
			"azdotest: previewRun is not modelled"))
	}
	s.mu.Lock()
	p, found := s.pipelineLocked(project, id)
	s.mu.Unlock()
	if !found {
		return errorAnswer(http.StatusNotFound, newError("PipelineNotFoundException",
			"Microsoft.Azure.Pipelines.WebApi.PipelineNotFoundException, Microsoft.Azure.Pipelines.WebApi",
			fmt.Sprintf("A pipeline with id %d was not found.", id)))
	}
	if p.QueueDenied {
		return errorAnswer(http.StatusForbidden, newError("AccessDeniedException",
			"Microsoft.TeamFoundation.Build.WebApi.AccessDeniedException, Microsoft.TeamFoundation.Build2.WebApi",
			"Access denied: the identity needs Queue builds permissions for this pipeline."))
	}
	if e := p.validate(params); e != nil {
		return errorAnswer(http.StatusBadRequest, e)
	}
	return runAnswer{status: http.StatusOK, contentType: "application/json; charset=utf-8; api-version=" + version,
		accepted: &runRequest{pipeline: p, auth: kind, params: params, version: version}}
}

// authenticate returns the kind of credentials of r, or Azure's refusal. With
// X-TFS-FedAuthRedirect: Suppress, refused credentials are a 401 whose
// WWW-Authenticate names the schemes and X-TFS-FedAuthRedirect the sign-in page
// (Azure DevOps Server's TeamFoundationAuthenticationService); without it a wrong or
// missing PAT is answered with the sign-in page itself, 203 text/html, as users of
// Azure DevOps Services report. A Bearer token is refused with a 401 either way.
// A PAT whose scopes do not cover the request (scope) fails authentication as a
// wrong one does, as Azure DevOps Server's ScopesValidationService makes it.
func (s *Server) authenticate(r *http.Request, scope string) (string, *runAnswer) {
	scheme, credential, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	credential = strings.TrimSpace(credential)
	var kind string
	switch {
	case strings.EqualFold(scheme, "Basic"):
		if raw, err := base64.StdEncoding.DecodeString(credential); err == nil {
			if _, pat, ok := strings.Cut(string(raw), ":"); ok {
				s.mu.Lock()
				if slices.ContainsFunc(s.runs.pats[pat], func(granted string) bool { return covers(granted, scope) }) {
					kind = AuthPAT
				}
				s.mu.Unlock()
			}
		}
	case strings.EqualFold(scheme, "Bearer"):
		s.mu.Lock()
		valid := s.runs.bearer
		s.mu.Unlock()
		// Called without the lock: it may be another server's, entratest's Valid.
		if credential != "" && valid != nil && valid(credential) {
			kind = AuthBearer
		}
	}
	if kind != "" {
		return kind, nil
	}
	suppressed := slices.Contains([]string{"Suppress", "Suppress,Suppress"}, r.Header.Get("X-TFS-FedAuthRedirect"))
	if !suppressed && !strings.EqualFold(scheme, "Bearer") {
		a := s.signInPage()
		return "", &a
	}
	h := http.Header{}
	h.Add("WWW-Authenticate", "Bearer authorization_uri=https://login.microsoftonline.com/common")
	h.Add("WWW-Authenticate", `Basic realm="`+s.URL+`/"`)
	h.Add("WWW-Authenticate", "TFS-Federated")
	h.Set("X-TFS-FedAuthRedirect", s.signInURL(r))
	if scheme != "" {
		h.Set("X-VSS-AuthenticateError", "InvalidToken")
	}
	return "", &runAnswer{status: http.StatusUnauthorized, header: h}
}

func (s *Server) signInURL(r *http.Request) string {
	return s.URL + "/_signin?realm=dev.azure.com&reply_to=" + url.QueryEscape(s.URL+r.URL.RequestURI())
}

// signInPage is the page Azure serves to a browser that must sign in: HTML, in a
// 2xx, which a client reading it for JSON must take as refused credentials.
func (s *Server) signInPage() runAnswer {
	page := `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Azure DevOps Services | Sign In</title></head>` +
		`<body><p>Sign in to continue to Azure DevOps.</p><a href="` + s.URL + `/_signin">Sign in</a></body></html>`
	return runAnswer{status: http.StatusNonAuthoritativeInfo, contentType: "text/html; charset=utf-8", body: []byte(page)}
}

var runsVersionForm = regexp.MustCompile(`^(\d+)\.(\d+)(-preview(\.(\d+))?)?$`)

// runsVersion checks the api-version as Azure checks it for this resource, released
// in 7.1 and served as a preview from 5.1: 7.1, or a preview of 5.1 to 7.1. It
// returns the version to answer in.
func runsVersion(r *http.Request) (string, *apiError) {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		if _, params, err := mime.ParseMediaType(r.Header.Get("Accept")); err == nil {
			v = params["api-version"]
		}
	}
	m := runsVersionForm.FindStringSubmatch(v)
	switch {
	case v == "":
		return "", newError("VssVersionNotSpecifiedException",
			"Microsoft.VisualStudio.Services.WebApi.VssVersionNotSpecifiedException, Microsoft.VisualStudio.Services.WebApi",
			fmt.Sprintf(`No api-version was supplied for the %q request. The version must be supplied either as part of the Accept header (e.g. "application/json; api-version=1.0") or as a query parameter (e.g. "?api-version=1.0").`, r.Method))
	case m == nil:
		return "", newError("VssInvalidApiVersionException",
			"Microsoft.VisualStudio.Services.WebApi.VssInvalidApiVersionException, Microsoft.VisualStudio.Services.WebApi",
			fmt.Sprintf(`Invalid api version string: "%s". Api version string must be in the format: {Major}.{Minor}[-preview[.{ResourceVersion}]].`, v))
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	n := major*100 + minor
	switch {
	case n > 701 || n < 501:
		return "", newError("VssVersionOutOfRangeException",
			"Microsoft.VisualStudio.Services.WebApi.VssVersionOutOfRangeException, Microsoft.VisualStudio.Services.WebApi",
			fmt.Sprintf("The requested REST API version of %s.%s is out of range for this server. The latest REST API version this server supports is 7.1.", m[1], m[2]))
	case m[3] == "" && n < 701:
		return "", newError("VssInvalidPreviewVersionException",
			"Microsoft.VisualStudio.Services.WebApi.VssInvalidPreviewVersionException, Microsoft.VisualStudio.Services.WebApi",
			fmt.Sprintf(`The requested version "%s" of the resource is under preview. The -preview flag must be supplied in the api-version for such requests. For example: "%s-preview"`, v, v))
	}
	return v, nil
}

// boundParams is a body as Azure's RunPipelineParameters binds it.
type boundParams struct {
	templateParameters map[string]string // names as sent; Azure compares them in any case
	names              []string          // templateParameters' names in the body's order, null values included
	variables          map[string]Variable
	resources          RunResources
	stagesToSkip       []string
	previewRun         bool
	yamlOverride       string
	members            []string // every top-level member's name, in order
}

// bindRun binds a body as ASP.NET Web API with Json.NET would: names in any case,
// unknown members ignored, numbers and booleans where a string goes read as their
// text, and any other mismatch (an object for a string, a string for a variable's
// object), a body that is not a JSON object or an empty one failing the whole
// binding.
func bindRun(body []byte) (boundParams, bool) {
	var p boundParams
	top, ok := objectMembers(body)
	if !ok {
		return p, false
	}
	for _, m := range top {
		p.members = append(p.members, m.key)
		var ok bool
		switch {
		case strings.EqualFold(m.key, "templateParameters"):
			ok = bindStrings(m.value, &p)
		case strings.EqualFold(m.key, "variables"):
			p.variables, ok = bindVariables(m.value)
		case strings.EqualFold(m.key, "resources"):
			p.resources, ok = bindResources(m.value)
		case strings.EqualFold(m.key, "stagesToSkip"):
			p.stagesToSkip, ok = bindStringList(m.value)
		case strings.EqualFold(m.key, "previewRun"):
			ok = json.Unmarshal(m.value, &p.previewRun) == nil
		case strings.EqualFold(m.key, "yamlOverride"):
			var s *string
			ok = json.Unmarshal(m.value, &s) == nil
			if s != nil {
				p.yamlOverride = *s
			}
		default:
			ok = true
		}
		if !ok {
			return boundParams{}, false
		}
	}
	return p, true
}

func jsonContent(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || mt == "text/json")
}

func bindStrings(raw json.RawMessage, p *boundParams) bool {
	if isNullJSON(raw) {
		return true
	}
	ms, ok := objectMembers(raw)
	if !ok {
		return false
	}
	p.templateParameters = map[string]string{}
	for _, m := range ms {
		v, isNull, ok := scalarText(m.value)
		if !ok {
			return false
		}
		setFold(p.templateParameters, m.key, v, isNull)
		p.names = append(p.names, m.key)
	}
	return true
}

// setFold sets key in m as a dictionary that ignores case does, the later name
// replacing the earlier; a null value removes nothing and sets nothing.
func setFold[V any](m map[string]V, key string, v V, isNull bool) {
	for k := range m {
		if strings.EqualFold(k, key) {
			delete(m, k)
		}
	}
	if !isNull {
		m[key] = v
	}
}

func bindVariables(raw json.RawMessage) (map[string]Variable, bool) {
	if isNullJSON(raw) {
		return nil, true
	}
	ms, ok := objectMembers(raw)
	if !ok {
		return nil, false
	}
	out := map[string]Variable{}
	for _, m := range ms {
		if isNullJSON(m.value) {
			continue
		}
		fields, ok := objectMembers(m.value)
		if !ok {
			return nil, false // Json.NET cannot make a Variable of a string
		}
		var v Variable
		for _, f := range fields {
			switch {
			case strings.EqualFold(f.key, "value"):
				text, _, ok := scalarText(f.value)
				if !ok {
					return nil, false
				}
				v.Value = text
			case strings.EqualFold(f.key, "isSecret"):
				if !bindBool(f.value, &v.IsSecret) {
					return nil, false
				}
			}
		}
		setFold(out, m.key, v, false)
	}
	return out, true
}

func bindBool(raw json.RawMessage, b *bool) bool {
	if json.Unmarshal(raw, b) == nil {
		return true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if v, err := strconv.ParseBool(s); err == nil {
			*b = v
			return true
		}
	}
	return false
}

func bindResources(raw json.RawMessage) (RunResources, bool) {
	var res RunResources
	if isNullJSON(raw) {
		return res, true
	}
	kinds, ok := objectMembers(raw)
	if !ok {
		return res, false
	}
	for _, k := range kinds {
		if isNullJSON(k.value) {
			continue
		}
		items, ok := objectMembers(k.value)
		if !ok {
			return res, false
		}
		repos := strings.EqualFold(k.key, "repositories")
		versions := map[string]string{}
		for _, item := range items {
			fields, ok := objectMembers(item.value)
			if !ok && !isNullJSON(item.value) {
				return res, false
			}
			var rp RepositoryParameters
			for _, f := range fields {
				text, _, ok := scalarText(f.value)
				if !ok {
					return res, false
				}
				switch {
				case repos && strings.EqualFold(f.key, "refName"):
					rp.RefName = text
				case repos && strings.EqualFold(f.key, "token"):
					rp.Token = text
				case repos && strings.EqualFold(f.key, "tokenType"):
					rp.TokenType = text
				case strings.EqualFold(f.key, "version"):
					rp.Version = text
				}
			}
			if repos {
				if res.Repositories == nil {
					res.Repositories = map[string]RepositoryParameters{}
				}
				setFold(res.Repositories, item.key, rp, false)
			} else {
				setFold(versions, item.key, rp.Version, false)
			}
		}
		switch {
		case strings.EqualFold(k.key, "pipelines"):
			res.Pipelines = versions
		case strings.EqualFold(k.key, "builds"):
			res.Builds = versions
		case strings.EqualFold(k.key, "containers"):
			res.Containers = versions
		case strings.EqualFold(k.key, "packages"):
			res.Packages = versions
		}
	}
	return res, true
}

func bindStringList(raw json.RawMessage) ([]string, bool) {
	if isNullJSON(raw) {
		return nil, true
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, false
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		text, isNull, ok := scalarText(it)
		if !ok || isNull {
			return nil, false
		}
		if !slices.ContainsFunc(out, func(s string) bool { return strings.EqualFold(s, text) }) {
			out = append(out, text) // a set that ignores case
		}
	}
	return out, true
}

// scalarText reads a JSON value where Azure binds a string: a string, or a number or
// boolean as its text (Json.NET's ReadAsString); null is no value; an object or
// array cannot be bound.
func scalarText(raw json.RawMessage) (text string, isNull, ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false, false
	}
	switch raw[0] {
	case '"':
		var s string
		return s, false, json.Unmarshal(raw, &s) == nil
	case 'n':
		return "", true, true
	case '{', '[':
		return "", false, false
	default:
		return string(raw), false, json.Valid(raw)
	}
}

func isNullJSON(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

type jsonMember struct {
	key   string
	value json.RawMessage
}

// objectMembers returns the members of a JSON object in order, or false if raw is
// not one JSON object.
func objectMembers(raw []byte) ([]jsonMember, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var ms []jsonMember
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return nil, false
		}
		ms = append(ms, jsonMember{key, v})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return ms, true
}

// validate checks a run's parameters against the pipeline, as Azure's template
// parameters builder does (one error per line of a PipelineValidationException),
// then its variables against those settable at queue time.
func (p RunsPipeline) validate(params boundParams) *apiError {
	var lines []string
	for _, name := range params.names {
		if !slices.ContainsFunc(p.Parameters, func(d string) bool { return strings.EqualFold(d, name) }) {
			lines = append(lines, fmt.Sprintf("Unexpected parameter '%s'", name))
		}
	}
	if len(lines) > 0 {
		return pipelineError(strings.Join(lines, "\n"))
	}
	var unsettable []string
	for name := range params.variables {
		if !slices.ContainsFunc(p.SettableVariables, func(d string) bool { return strings.EqualFold(d, name) }) {
			unsettable = append(unsettable, name)
		}
	}
	if len(unsettable) > 0 {
		slices.Sort(unsettable)
		return pipelineError(fmt.Sprintf("You can't set the following variables (%s). If you want to be able to set these variables, then edit the pipeline and select Settable at queue time on the variables tab of the pipeline editor.",
			strings.Join(unsettable, ", ")))
	}
	return nil
}

func pipelineError(msg string) *apiError {
	return newError("PipelineValidationException",
		"Microsoft.Azure.Pipelines.WebApi.PipelineValidationException, Microsoft.Azure.Pipelines.WebApi", msg)
}

// errorAnswer is Azure's error envelope with its status.
func errorAnswer(status int, e *apiError) runAnswer {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(e)
	return runAnswer{
		status:      status,
		header:      http.Header{"X-Tfs-Serviceerror": {url.QueryEscape(e.Message)}},
		contentType: "application/json; charset=utf-8",
		body:        bytes.TrimSuffix(buf.Bytes(), []byte("\n")),
	}
}

func (s *Server) hasProject(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.runs.pipelines, func(p RunsPipeline) bool { return strings.EqualFold(p.Project, name) })
}

func (s *Server) pipelineLocked(project string, id int) (RunsPipeline, bool) {
	for _, p := range s.runs.pipelines {
		if p.ID == id && strings.EqualFold(p.Project, project) {
			return p, true
		}
	}
	return RunsPipeline{}, false
}

// queueLocked records an accepted run and returns Azure's Run JSON for it.
func (s *Server) queueLocked(req runRequest) []byte {
	if s.runs.lastID == 0 {
		s.runs.lastID = firstRunID - 1
	}
	s.runs.lastID++
	now := time.Now().UTC()
	p := req.pipeline
	day := fmt.Sprintf("%s/%d/%s", strings.ToLower(p.Project), p.ID, now.Format("20060102"))
	if s.runs.daily == nil {
		s.runs.daily = map[string]int{}
	}
	s.runs.daily[day]++
	run := QueuedRun{
		Project:            p.Project,
		PipelineID:         p.ID,
		ID:                 s.runs.lastID,
		Name:               fmt.Sprintf("%s.%d", now.Format("20060102"), s.runs.daily[day]),
		RefName:            p.DefaultBranch,
		Auth:               req.auth,
		TemplateParameters: req.params.templateParameters,
		Variables:          req.params.variables,
		Resources:          req.params.resources,
		StagesToSkip:       req.params.stagesToSkip,
		Members:            req.params.members,
	}
	if run.RefName == "" {
		run.RefName = "refs/heads/main"
	}
	for name, repo := range run.Resources.Repositories {
		if strings.EqualFold(name, "self") && repo.RefName != "" {
			run.RefName = repo.RefName
		}
	}
	base := s.URL + "/" + s.org + "/" + guid(strings.ToLower(p.Project))
	pipelineURL := fmt.Sprintf("%s/_apis/pipelines/%d?revision=1", base, p.ID)
	selfURL := fmt.Sprintf("%s/_apis/pipelines/%d/runs/%d", base, p.ID, run.ID)
	run.WebURL = fmt.Sprintf("%s/_build/results?buildId=%d", base, run.ID)
	s.runs.queued = append(s.runs.queued, run)

	folder := p.Folder
	if folder == "" {
		folder = `\`
	}
	type href struct {
		Href string `json:"href"`
	}
	answer := struct {
		Links struct {
			Self        href `json:"self"`
			Web         href `json:"web"`
			PipelineWeb href `json:"pipeline.web"`
			Pipeline    href `json:"pipeline"`
		} `json:"_links"`
		TemplateParameters map[string]string `json:"templateParameters,omitempty"`
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
			Repositories struct {
				Self struct {
					Repository struct {
						ID   string `json:"id"`
						Type string `json:"type"`
					} `json:"repository"`
					RefName string `json:"refName"`
					Version string `json:"version"`
				} `json:"self"`
			} `json:"repositories"`
		} `json:"resources"`
		ID   int    `json:"id"`
		Name string `json:"name"`
	}{State: "inProgress", CreatedDate: now.Format("2006-01-02T15:04:05.0000000Z"), URL: selfURL, ID: run.ID, Name: run.Name}
	answer.Links.Self.Href = selfURL
	answer.Links.Web.Href = run.WebURL
	answer.Links.PipelineWeb.Href = fmt.Sprintf("%s/_build/definition?definitionId=%d", base, p.ID)
	answer.Links.Pipeline.Href = pipelineURL
	answer.TemplateParameters = run.TemplateParameters
	answer.Pipeline.URL, answer.Pipeline.ID, answer.Pipeline.Revision = pipelineURL, p.ID, 1
	answer.Pipeline.Name, answer.Pipeline.Folder = p.Name, folder
	self := &answer.Resources.Repositories.Self
	self.Repository.ID = guid(fmt.Sprintf("%s/%d/repository", strings.ToLower(p.Project), p.ID))
	self.Repository.Type = "azureReposGit"
	self.RefName = run.RefName
	sum := sha1.Sum([]byte(run.RefName + "@" + strconv.Itoa(run.ID)))
	self.Version = hex.EncodeToString(sum[:])

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // .NET leaves <, > and & alone
	_ = enc.Encode(answer)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// guid is a GUID made from s, the same for the same s.
func guid(s string) string {
	h := sha1.Sum([]byte(s))
	x := hex.EncodeToString(h[:16])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
