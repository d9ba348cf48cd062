package porttest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/port-azure-relay/relay/shared/portapi/porttest"
)

// TestActionsListAsPortDocumentsIt: a bearer token, the documented query parameters
// (filters applied), version v2, {"ok": true, "actions": […]}.
func TestActionsListAsPortDocumentsIt(t *testing.T) {
	s := porttest.New("id", "secret")
	defer s.Close()
	s.SetActions(porttest.Action{Identifier: "a", Trigger: map[string]any{"type": "self-service"}},
		porttest.Action{Identifier: "b", Trigger: map[string]any{"type": "automation"}})
	resp, _ := http.Post(s.URL+"/v1/auth/access_token", "application/json", bytes.NewReader([]byte(`{"clientId":"id","clientSecret":"secret"}`)))
	var tok struct{ AccessToken string }
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	get := func(query, token string) (int, []string) {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/actions"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var answer struct {
			OK      bool
			Actions []porttest.Action
		}
		_ = json.NewDecoder(resp.Body).Decode(&answer)
		var ids []string
		for _, a := range answer.Actions {
			ids = append(ids, a.Identifier)
		}
		return resp.StatusCode, ids
	}
	tests := []struct {
		query, token string
		status       int
		ids          int
	}{
		{"?version=v2", tok.AccessToken, 200, 2},
		{"?version=v2&trigger_type=automation", tok.AccessToken, 200, 1},
		{"?version=v2&action_identifier=a", tok.AccessToken, 200, 1},
		{"?version=v2&nope=1", tok.AccessToken, 422, 0},
		{"", tok.AccessToken, 422, 0},
		{"?version=v2", "forged", 401, 0},
	}
	for _, tt := range tests {
		if status, ids := get(tt.query, tt.token); status != tt.status || len(ids) != tt.ids {
			t.Errorf("GET /v1/actions%s = %d %q, want %d with %d actions", tt.query, status, ids, tt.status, tt.ids)
		}
	}
}
