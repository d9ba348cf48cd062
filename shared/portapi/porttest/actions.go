package porttest

import (
	"encoding/json"
	"net/http"
	"slices"
)

// Action is an action or automation as Port stores it, in the v2 format that
// GET /v1/actions?version=v2 answers.
type Action struct {
	Identifier       string           `json:"identifier"`
	Title            string           `json:"title,omitempty"`
	Trigger          map[string]any   `json:"trigger,omitempty"`
	InvocationMethod InvocationMethod `json:"invocationMethod"`
}

// InvocationMethod is an action's backend. Synchronized is always present, as Port
// answers it.
type InvocationMethod struct {
	Type         string          `json:"type"`
	URL          string          `json:"url,omitempty"`
	Agent        bool            `json:"agent"`
	Synchronized bool            `json:"synchronized"`
	Method       string          `json:"method,omitempty"`
	Body         json.RawMessage `json:"body,omitempty"`
}

// SetActions replaces the organization's actions and automations.
func (s *Server) SetActions(actions ...Action) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions = slices.Clone(actions)
}

// listActions answers GET /v1/actions as Port's API spec documents it: the query
// parameters it names (action_identifier and trigger_type filter here, the others
// are accepted), version v2 only (v1's per-blueprint format is not modelled), and
// {"ok": true, "actions": […]}.
func (s *Server) listActions(w http.ResponseWriter, r *http.Request) {
	known := []string{"action_identifier", "blueprint_identifier", "operation", "published", "trigger_type",
		"trigger_event", "trigger_event_action_identifier", "version"}
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(known, k) {
			reply(w, http.StatusUnprocessableEntity, "querystring must NOT have additional properties")
			return
		}
	}
	if q.Get("version") != "v2" {
		reply(w, http.StatusUnprocessableEntity, "porttest: only version=v2 is modelled")
		return
	}
	s.mu.Lock()
	var out []Action
	for _, a := range s.actions {
		ids := q["action_identifier"]
		kind, _ := a.Trigger["type"].(string)
		if (len(ids) == 0 || slices.Contains(ids, a.Identifier)) && (q.Get("trigger_type") == "" || q.Get("trigger_type") == kind) {
			out = append(out, a)
		}
	}
	s.mu.Unlock()
	if out == nil {
		out = []Action{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "actions": out})
}
