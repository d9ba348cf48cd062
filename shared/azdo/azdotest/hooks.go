package azdotest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// PAT scopes, as Azure DevOps names them. Each grants what the scopes it inherits
// grant, as Azure's scope definitions chain them: Build (read) inherits Service
// Hooks (read and write), so the relay's PAT may manage subscriptions.
const (
	ScopeBuildExecute = "vso.build_execute" // Build: Read & execute
	ScopeBuild        = "vso.build"         // Build: Read
	ScopeHooksWrite   = "vso.hooks_write"   // Service Hooks: Read & write
	ScopeHooks        = "vso.hooks"         // Service Hooks: Read
	ScopeProject      = "vso.project"       // Project and team: Read
	scopeProfile      = "vso.profile"
	scopeBase         = "vso.base"
)

var scopeParent = map[string]string{
	ScopeBuildExecute: ScopeBuild, ScopeBuild: ScopeHooksWrite, ScopeHooksWrite: ScopeHooks,
	ScopeHooks: scopeProfile, scopeProfile: scopeBase, ScopeProject: scopeBase,
}

// covers reports whether a PAT granted scope may make a request that needs needed.
func covers(granted, needed string) bool {
	for s := granted; s != ""; s = scopeParent[s] {
		if s == needed || needed == scopeProfile && s == ScopeProject {
			return true // projects are read with either
		}
	}
	return false
}

// Subscription is a service hook subscription as the server stores it: the
// password in the clear, which its answers mask as Azure's do.
type Subscription struct {
	ID, Status, PublisherID, EventType, ResourceVersion, ConsumerID, ConsumerActionID string
	PublisherInputs, ConsumerInputs                                                   map[string]string
}

// hooksAPI is the service hooks and read APIs' part of a Server, guarded by Server.mu.
type hooksAPI struct {
	projects []string
	subs     []Subscription
	writes   int // POST and PUT requests answered 200
}

const masked = "********"

// AddProject registers a project with no pipeline; AddPipeline registers its own.
func (s *Server) AddProject(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.ContainsFunc(s.api.projects, func(p string) bool { return strings.EqualFold(p, name) }) {
		s.api.projects = append(s.api.projects, name)
	}
}

// ProjectID is the id the server gives a project, the same for the same name in any case.
func ProjectID(name string) string { return guid(strings.ToLower(name)) }

// AddSubscription stores sub as if made in Azure DevOps' pages; an empty ID gets one,
// an empty Status is enabled. It returns the ID.
func (s *Server) AddSubscription(sub Subscription) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.ID == "" {
		sub.ID = newID()
	}
	if sub.Status == "" {
		sub.Status = "enabled"
	}
	s.api.subs = append(s.api.subs, sub.clone())
	return sub.ID
}

// SetSubscriptionStatus changes a subscription's status, as Azure does after failed
// deliveries (onProbation, then disabledBySystem). It panics on an unknown id.
func (s *Server) SetSubscriptionStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.api.subs {
		if s.api.subs[i].ID == id {
			s.api.subs[i].Status = status
			return
		}
	}
	panic("azdotest: no subscription " + id)
}

// SetSubscriptionInput sets (or, with an empty value, removes) one of a
// subscription's consumer inputs, as an edit in Azure DevOps' pages does. It panics
// on an unknown id.
func (s *Server) SetSubscriptionInput(id, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.api.subs, func(sub Subscription) bool { return sub.ID == id })
	if i < 0 {
		panic("azdotest: no subscription " + id)
	}
	if value == "" {
		delete(s.api.subs[i].ConsumerInputs, key)
	} else {
		s.api.subs[i].ConsumerInputs[key] = value
	}
}

// DeleteSubscription removes a subscription, as deleting it in Azure DevOps does.
func (s *Server) DeleteSubscription(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.api.subs = slices.DeleteFunc(s.api.subs, func(sub Subscription) bool { return sub.ID == id })
}

// Subscriptions returns the stored subscriptions, passwords in the clear.
func (s *Server) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Subscription, len(s.api.subs))
	for i, sub := range s.api.subs {
		out[i] = sub.clone()
	}
	return out
}

// SubscriptionWrites counts the subscriptions created or replaced.
func (s *Server) SubscriptionWrites() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api.writes
}

func (sub Subscription) clone() Subscription {
	sub.PublisherInputs, sub.ConsumerInputs = maps.Clone(sub.PublisherInputs), maps.Clone(sub.ConsumerInputs)
	return sub
}

// serveAPI answers the REST resources besides runs and webhooks: a project, a
// pipeline, a permission evaluation and service hook subscriptions. It reports
// false for any other path.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) bool {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) < 3 || !strings.EqualFold(parts[0], s.org) {
		return false
	}
	var scope string
	var serve func() (int, any)
	switch p := parts[1:]; {
	case len(p) == 3 && p[0] == "_apis" && p[1] == "projects" && r.Method == http.MethodGet:
		scope, serve = scopeProfile, func() (int, any) { return s.project(p[2]) }
	case len(p) == 4 && p[1] == "_apis" && p[2] == "pipelines" && r.Method == http.MethodGet:
		scope, serve = ScopeBuild, func() (int, any) { return s.pipeline(p[0], p[3]) }
	case len(p) == 4 && p[0] == "_apis" && p[1] == "permissions" && r.Method == http.MethodGet:
		scope, serve = scopeBase, func() (int, any) { return s.permission(p[2], p[3], r.URL.Query().Get("tokens")) }
	case len(p) == 3 && p[0] == "_apis" && p[1] == "hooks" && p[2] == "subscriptions" && r.Method == http.MethodGet:
		scope, serve = ScopeHooks, func() (int, any) { return s.listSubscriptions(r.URL.Query().Get("consumerId")) }
	case len(p) == 3 && p[0] == "_apis" && p[1] == "hooks" && p[2] == "subscriptions" && r.Method == http.MethodPost:
		scope, serve = ScopeHooksWrite, func() (int, any) { return s.writeSubscription(r, "") }
	case len(p) == 4 && p[0] == "_apis" && p[1] == "hooks" && p[2] == "subscriptions" && r.Method == http.MethodPut:
		scope, serve = ScopeHooksWrite, func() (int, any) { return s.writeSubscription(r, p[3]) }
	default:
		return false
	}
	if _, refused := s.authenticate(r, scope); refused != nil {
		for k, v := range refused.header {
			w.Header()[k] = v
		}
		if refused.contentType != "" {
			w.Header().Set("Content-Type", refused.contentType)
		}
		w.WriteHeader(refused.status)
		_, _ = w.Write(refused.body)
		return true
	}
	if r.URL.Query().Get("api-version") != "7.1" {
		writeAPI(w, http.StatusBadRequest, newError("VssInvalidApiVersionException",
			"Microsoft.VisualStudio.Services.WebApi.VssInvalidApiVersionException, Microsoft.VisualStudio.Services.WebApi",
			"azdotest: these resources are served at api-version 7.1 only"))
		return true
	}
	status, v := serve()
	writeAPI(w, status, v)
	return true
}

func writeAPI(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8; api-version=7.1")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func projectError(name string) *apiError {
	return newError("ProjectDoesNotExistWithNameException",
		"Microsoft.TeamFoundation.Core.WebApi.ProjectDoesNotExistWithNameException, Microsoft.TeamFoundation.Core.WebApi",
		fmt.Sprintf("TF200016: The following project does not exist: %s.", name))
}

// projectName finds a project by name or id, in any case.
func (s *Server) projectName(nameOrID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := slices.Clone(s.api.projects)
	for _, p := range s.runs.pipelines {
		names = append(names, p.Project)
	}
	for _, n := range names {
		if strings.EqualFold(n, nameOrID) || strings.EqualFold(ProjectID(n), nameOrID) {
			return n, true
		}
	}
	return "", false
}

func (s *Server) project(name string) (int, any) {
	n, ok := s.projectName(name)
	if !ok {
		return http.StatusNotFound, projectError(name)
	}
	return http.StatusOK, map[string]any{"id": ProjectID(n), "name": n, "state": "wellFormed", "visibility": "private",
		"url": s.URL + "/" + s.org + "/_apis/projects/" + ProjectID(n)}
}

func (s *Server) pipeline(project, idText string) (int, any) {
	n, ok := s.projectName(project)
	if !ok {
		return http.StatusNotFound, projectError(project)
	}
	id, err := strconv.Atoi(idText)
	s.mu.Lock()
	p, found := s.pipelineLocked(n, id)
	s.mu.Unlock()
	if err != nil || !found {
		return http.StatusNotFound, newError("PipelineNotFoundException",
			"Microsoft.Azure.Pipelines.WebApi.PipelineNotFoundException, Microsoft.Azure.Pipelines.WebApi",
			fmt.Sprintf("A pipeline with id %s was not found.", idText))
	}
	folder := p.Folder
	if folder == "" {
		folder = `\`
	}
	return http.StatusOK, map[string]any{"url": fmt.Sprintf("%s/%s/%s/_apis/pipelines/%d?revision=1", s.URL, s.org, ProjectID(n), id),
		"id": id, "revision": 1, "name": p.Name, "folder": folder}
}

// permission evaluates the caller's QueueBuilds bit on build definition tokens,
// {projectId}/{folders}/{id}; every other bit and namespace is true.
func (s *Server) permission(namespace, bits, tokens string) (int, any) {
	var value []bool
	for token := range strings.SplitSeq(tokens, ",") {
		allowed := true
		if strings.EqualFold(namespace, "33344d9c-fc72-4d6f-aba5-fa317101a7e9") && bits == "128" {
			parts := strings.Split(token, "/")
			id, _ := strconv.Atoi(parts[len(parts)-1])
			s.mu.Lock()
			for _, p := range s.runs.pipelines {
				if p.ID == id && strings.EqualFold(ProjectID(p.Project), parts[0]) {
					allowed = !p.QueueDenied
				}
			}
			s.mu.Unlock()
		}
		value = append(value, allowed)
	}
	return http.StatusOK, map[string]any{"count": len(value), "value": value}
}

// answer is a subscription as Azure answers it: confidential inputs masked.
func (s *Server) answer(sub Subscription) map[string]any {
	inputs := maps.Clone(sub.ConsumerInputs)
	if _, ok := inputs["basicAuthPassword"]; ok {
		inputs["basicAuthPassword"] = masked
	}
	return map[string]any{"id": sub.ID, "url": s.URL + "/" + s.org + "/_apis/hooks/subscriptions/" + sub.ID,
		"status": sub.Status, "publisherId": sub.PublisherID, "eventType": sub.EventType, "resourceVersion": sub.ResourceVersion,
		"consumerId": sub.ConsumerID, "consumerActionId": sub.ConsumerActionID,
		"publisherInputs": sub.PublisherInputs, "consumerInputs": inputs}
}

func (s *Server) listSubscriptions(consumer string) (int, any) {
	s.mu.Lock()
	subs := slices.Clone(s.api.subs)
	s.mu.Unlock()
	value := []map[string]any{}
	for _, sub := range subs {
		if consumer == "" || consumer == sub.ConsumerID {
			value = append(value, s.answer(sub))
		}
	}
	return http.StatusOK, map[string]any{"count": len(value), "value": value}
}

var hookEvents = []string{"ms.vss-pipelines.run-state-changed-event", "ms.vss-pipelines.stage-state-changed-event", "ms.vss-pipelines.job-state-changed-event"}

// writeSubscription creates (id empty) or replaces a subscription, checking what
// Azure checks: the pipelines publisher's events, the Web Hooks consumer, a url,
// https where Basic auth is set, a known project; on a replace, a masked password
// keeps the stored one unless the url changes, and the status sent is kept.
func (s *Server) writeSubscription(r *http.Request, id string) (int, any) {
	var in Subscription
	b, _ := io.ReadAll(io.LimitReader(r.Body, MaxBody))
	if json.Unmarshal(b, &in) != nil {
		return http.StatusBadRequest, serviceHookError("ArgumentNullException", "Value cannot be null.\r\nParameter name: subscription")
	}
	u, err := url.Parse(in.ConsumerInputs["url"])
	switch {
	case in.PublisherID != "pipelines" || !slices.Contains(hookEvents, in.EventType):
		return http.StatusBadRequest, serviceHookError("ServiceHookException", "azdotest: only the pipelines publisher's events are modelled")
	case in.ConsumerID != "webHooks" || in.ConsumerActionID != "httpRequest":
		return http.StatusBadRequest, serviceHookError("ServiceHookException", "azdotest: only the Web Hooks consumer's httpRequest action is modelled")
	case err != nil || !u.IsAbs():
		return http.StatusBadRequest, serviceHookError("ServiceHookException", "The URL input is not a valid absolute URL.")
	case in.ConsumerInputs["basicAuthPassword"] != "" && u.Scheme != "https":
		return http.StatusBadRequest, serviceHookError("ServiceHookException", "The URL scheme must be HTTPS when confidential inputs are included.")
	}
	if _, ok := s.projectName(in.PublisherInputs["projectId"]); !ok {
		return http.StatusBadRequest, serviceHookError("ServiceHookException", "The project in projectId does not exist.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == "" {
		if in.ConsumerInputs["basicAuthPassword"] == masked {
			return http.StatusBadRequest, serviceHookError("ArgumentException", "A value is required for the confidential input Password.")
		}
		in.ID, in.Status = newID(), "enabled"
		s.api.subs = append(s.api.subs, in.clone())
		s.api.writes++
		return http.StatusOK, s.answer(in)
	}
	i := slices.IndexFunc(s.api.subs, func(sub Subscription) bool { return strings.EqualFold(sub.ID, id) })
	if i < 0 {
		return http.StatusNotFound, serviceHookError("SubscriptionNotFoundException", fmt.Sprintf("Subscription %s does not exist.", id))
	}
	old := s.api.subs[i]
	if in.ConsumerInputs["basicAuthPassword"] == masked {
		if in.ConsumerInputs["url"] != old.ConsumerInputs["url"] {
			return http.StatusBadRequest, serviceHookError("ArgumentException", "A value is required for the confidential input Password.")
		}
		in.ConsumerInputs["basicAuthPassword"] = old.ConsumerInputs["basicAuthPassword"]
	}
	in.ID = old.ID
	if in.Status == "" {
		in.Status = old.Status
	}
	s.api.subs[i] = in.clone()
	s.api.writes++
	return http.StatusOK, s.answer(in)
}

func serviceHookError(key, msg string) *apiError {
	return newError(key, "Microsoft.VisualStudio.Services.ServiceHooks.WebApi."+key+", Microsoft.VisualStudio.Services.ServiceHooks.WebApi", msg)
}

func newID() string { return guid(rand.Text()) }
