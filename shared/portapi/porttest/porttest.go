// Package porttest stands in for Port's REST API (https://api.port.io): the token endpoint, the action-run
// routes the relay and the status function call (add a log, update a run, read a run, find runs by
// externalRunId), and the actions list the wiring checks read.
//
// It enforces Port's rules where the relay depends on them, as Port's API spec (port-docs static/apispec.yaml) and
// docs state them: tokens only for the right clientId and clientSecret, a bearer token on every run route, 404 for a
// run that does not exist, 413 over 1 MiB, 422 for a body or query off the route's schema, and no change at all to a
// run that has ended. It is stricter where Port is lenient: bodies with keys Port does not document, and run searches
// by anything but externalRunId or in another version than v2, are refused, so a test passing against it uses only
// what it models.
package porttest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// TokenLifetime is the expiresIn, in seconds, of the tokens the server issues: Port's 3 hours.
const TokenLifetime = 10800

// Log is a run log line the server accepted.
type Log struct {
	Message           string `json:"message"`
	TerminationStatus string `json:"terminationStatus,omitempty"`
	StatusLabel       string `json:"statusLabel,omitempty"`
}

// Update is a run update (PATCH) the server accepted.
type Update struct {
	Status        string `json:"status,omitempty"`
	StatusLabel   string `json:"statusLabel,omitempty"`
	Link          string `json:"link,omitempty"`
	Summary       string `json:"summary,omitempty"`
	ExternalRunID string `json:"externalRunId,omitempty"`
}

// Run is a run as Port shows it: each update replaces the keys it names.
type Run struct {
	Status        string // IN_PROGRESS, SUCCESS or FAILURE
	StatusLabel   string
	Link          string
	Summary       string
	ExternalRunID string
}

// Server is a stand-in for Port's API on 127.0.0.1. A run exists once CreateRuns has made it, as Port makes one
// when a user invokes an action; any other run id is 404. Once a run has a final status it refuses every change,
// as Port does. It is safe for concurrent use, and its accessors return copies.
type Server struct {
	URL string // base URL, e.g. http://127.0.0.1:12345, to use in place of https://api.port.io

	srv          *httptest.Server
	clientID     string
	clientSecret string

	mu            sync.Mutex
	tokens        map[string]bool // tokens that are valid now
	tokenRequests int
	requests      int
	logs          map[string][]Log
	updates       map[string][]Update
	runs          map[string]*Run
	order         []string // run ids, oldest first
	actions       []Action
}

// New starts a server that issues tokens for clientID and clientSecret only. Close it when done.
func New(clientID, clientSecret string) *Server {
	s := &Server{
		clientID:     clientID,
		clientSecret: clientSecret,
		tokens:       make(map[string]bool),
		logs:         make(map[string][]Log),
		updates:      make(map[string][]Update),
		runs:         make(map[string]*Run),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/access_token", s.accessToken)
	mux.HandleFunc("POST /v1/actions/runs/{runId}/logs", s.authorized(s.addLog))
	mux.HandleFunc("PATCH /v1/actions/runs/{runId}", s.authorized(s.updateRun))
	mux.HandleFunc("GET /v1/actions/runs/{runId}", s.authorized(s.getRun))
	mux.HandleFunc("GET /v1/actions/runs", s.authorized(s.findRuns))
	mux.HandleFunc("GET /v1/actions", s.authorized(s.listActions))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	s.URL = s.srv.URL
	return s
}

// CreateRuns makes runs in progress with these ids, as invoking an action does in Port.
func (s *Server) CreateRuns(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if s.runs[id] == nil {
			s.runs[id] = &Run{Status: "IN_PROGRESS"}
			s.order = append(s.order, id)
		}
	}
}

// Run returns the run as Port would show it, and false for a run that does not exist.
func (s *Server) Run(id string) (Run, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.runs[id]; r != nil {
		return *r, true
	}
	return Run{}, false
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// ExpireTokens makes every token issued so far invalid, as if its 3 hours had passed: the next run request with
// one gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// TokenRequests counts the requests to the token endpoint, granted or not.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// Requests counts every request the server received, on any path.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Logs returns the log lines accepted for runID, oldest first.
func (s *Server) Logs(runID string) []Log {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.logs[runID])
}

// Updates returns the updates accepted for runID, oldest first.
func (s *Server) Updates(runID string) []Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.updates[runID])
}

func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokenRequests++
	s.mu.Unlock()
	var creds struct {
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
	}
	if !decode(w, r, &creds) {
		return
	}
	if creds.ClientID != s.clientID || creds.ClientSecret != s.clientSecret {
		reply(w, http.StatusUnauthorized, "invalid client credentials")
		return
	}
	tok := "porttest-" + rand.Text()
	s.mu.Lock()
	s.tokens[tok] = true
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"ok": true, "accessToken": tok, "expiresIn": TokenLifetime, "tokenType": "Bearer",
	})
}

// authorized lets through requests with a valid Bearer token.
func (s *Server) authorized(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		ok = ok && s.tokens[tok]
		s.mu.Unlock()
		if !ok {
			reply(w, http.StatusUnauthorized, "missing, unknown or expired token")
			return
		}
		next(w, r)
	}
}

func (s *Server) addLog(w http.ResponseWriter, r *http.Request) {
	var l Log
	if !decode(w, r, &l) {
		return
	}
	if l.Message == "" || !validStatus(l.TerminationStatus) {
		reply(w, http.StatusUnprocessableEntity, "message is required; terminationStatus is SUCCESS or FAILURE")
		return
	}
	run := r.PathValue("runId")
	s.mu.Lock()
	defer s.mu.Unlock()
	state, ok := s.changeable(w, run)
	if !ok {
		return
	}
	if l.TerminationStatus != "" {
		state.Status = l.TerminationStatus
		if l.StatusLabel != "" {
			state.StatusLabel = l.StatusLabel
		}
	}
	s.logs[run] = append(s.logs[run], l)
	writeJSON(w, http.StatusCreated, map[string]any{"ok": true})
}

func (s *Server) updateRun(w http.ResponseWriter, r *http.Request) {
	var u Update
	if !decode(w, r, &u) {
		return
	}
	if !validStatus(u.Status) {
		reply(w, http.StatusUnprocessableEntity, "status is SUCCESS or FAILURE")
		return
	}
	run := r.PathValue("runId")
	s.mu.Lock()
	defer s.mu.Unlock()
	state, ok := s.changeable(w, run)
	if !ok {
		return
	}
	for _, kv := range []struct {
		to *string
		v  string
	}{
		{&state.Status, u.Status}, {&state.StatusLabel, u.StatusLabel}, {&state.Link, u.Link},
		{&state.Summary, u.Summary}, {&state.ExternalRunID, u.ExternalRunID},
	} {
		if kv.v != "" {
			*kv.to = kv.v
		}
	}
	s.updates[run] = append(s.updates[run], u)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "run": map[string]any{"id": run, "status": u.Status}})
}

// getRun answers GET /v1/actions/runs/{runId} with the run's status and the keys the relay sets.
func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("runId")
	s.mu.Lock()
	state := s.runs[id]
	var run map[string]any
	if state != nil {
		run = view(id, state)
	}
	s.mu.Unlock()
	if run == nil {
		reply(w, http.StatusNotFound, "no action run with this identifier")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "run": run})
}

// findRuns answers GET /v1/actions/runs?version=v2&external_run_id=…[&limit=n]: the runs whose externalRunId is
// the one asked, newest first, at most limit (1 to 1000, as Port's spec bounds it). Any other filter or version
// is refused (422), as Port refuses a query off its schema.
func (s *Server) findRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 1000
	for k, v := range q {
		switch n, err := strconv.Atoi(v[0]); {
		case len(v) != 1 || (k != "version" && k != "external_run_id" && k != "limit"):
			reply(w, http.StatusUnprocessableEntity, "querystring/"+k+": not modelled by porttest")
			return
		case k == "version" && v[0] != "v2", k == "limit" && (err != nil || n < 1 || n > 1000):
			reply(w, http.StatusUnprocessableEntity, "querystring/"+k+" does not match the route's schema")
			return
		case k == "limit":
			limit = n
		}
	}
	if q.Get("version") != "v2" || q.Get("external_run_id") == "" {
		reply(w, http.StatusUnprocessableEntity, "porttest answers version=v2 with an external_run_id only")
		return
	}
	runs := []map[string]any{}
	s.mu.Lock()
	for i := len(s.order) - 1; i >= 0 && len(runs) < limit; i-- {
		if id := s.order[i]; s.runs[id].ExternalRunID == q.Get("external_run_id") {
			runs = append(runs, view(id, s.runs[id]))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "runs": runs})
}

// view is a run as Port's v2 answers show it: the keys the relay and the status function set.
func view(id string, r *Run) map[string]any {
	return map[string]any{"id": id, "status": r.Status, "statusLabel": r.StatusLabel, "link": r.Link,
		"summary": r.Summary, "externalRunId": r.ExternalRunID}
}

// changeable returns the run if it exists and has not ended, or answers 404 or 422. Called with s.mu held.
func (s *Server) changeable(w http.ResponseWriter, id string) (*Run, bool) {
	state := s.runs[id]
	switch {
	case state == nil:
		reply(w, http.StatusNotFound, "no action run with this identifier")
		return nil, false
	case state.Status != "IN_PROGRESS":
		// Port documents that an ended run can no longer be modified, but not the status it answers (its spec
		// lists 401, 404, 413 and 422 for these routes): a 422 here, which a client cannot tell by its status
		// from a body that breaks the schema.
		reply(w, http.StatusUnprocessableEntity, "the run has already ended")
		return nil, false
	}
	return state, true
}

// validStatus accepts a final status or none.
func validStatus(status string) bool {
	return status == "" || status == "SUCCESS" || status == "FAILURE"
}

// decode reads one JSON object with only the keys of v, or answers as Port's API spec says: 413 over 1 MiB,
// 422 for a body that does not match the route's schema (and 415 for another media type).
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		reply(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		reply(w, http.StatusRequestEntityTooLarge, "Request body is too large (limit is 1MiB)")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		reply(w, http.StatusUnprocessableEntity, "body is not a JSON object with only the documented keys")
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		reply(w, http.StatusUnprocessableEntity, "body has data after the JSON object")
		return false
	}
	return true
}

func reply(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]any{"ok": false, "error": http.StatusText(status), "message": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
