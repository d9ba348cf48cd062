package porttest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/port-azure-relay/relay/shared/portapi/porttest"
)

// do sends a request as Port's clients do, with token "" meaning no Authorization header.
func do(t *testing.T, method, url, token, contentType, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func token(t *testing.T, s *porttest.Server) string {
	t.Helper()
	resp, err := http.Post(s.URL+"/v1/auth/access_token", "application/json",
		strings.NewReader(`{"clientId":"id","clientSecret":"secret"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		AccessToken string `json:"accessToken"`
		ExpiresIn   int    `json:"expiresIn"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != 200 || answer.AccessToken == "" || answer.ExpiresIn != porttest.TokenLifetime {
		t.Fatalf("token: status %d, %+v, %v", resp.StatusCode, answer, err)
	}
	return answer.AccessToken
}

func TestServerChecksEveryRequest(t *testing.T) {
	const jsonType = "application/json"
	tests := []struct {
		name                          string
		method, path, token, ct, body string // token "valid" is replaced by a fresh one
		want                          int
	}{
		{"a log with a message is created", "POST", "/v1/actions/runs/r_1/logs", "valid", jsonType, `{"message":"hi"}`, 201},
		{"a log ending the run is created", "POST", "/v1/actions/runs/r_1/logs", "valid", jsonType, `{"message":"hi","terminationStatus":"SUCCESS","statusLabel":"ok"}`, 201},
		{"an update with every documented key is accepted", "PATCH", "/v1/actions/runs/r_1", "valid", jsonType, `{"status":"FAILURE","statusLabel":"l","link":"https://x","summary":"s","externalRunId":"7"}`, 200},
		{"a log without a token is refused", "POST", "/v1/actions/runs/r_1/logs", "", jsonType, `{"message":"hi"}`, 401},
		{"a log with an unknown token is refused", "POST", "/v1/actions/runs/r_1/logs", "made-up", jsonType, `{"message":"hi"}`, 401},
		{"a log with an undocumented key is refused", "POST", "/v1/actions/runs/r_1/logs", "valid", jsonType, `{"message":"hi","status":"FAILURE"}`, 422},
		{"an update with the deprecated message key is refused", "PATCH", "/v1/actions/runs/r_1", "valid", jsonType, `{"status":"FAILURE","message":"m"}`, 422},
		{"a log without a message is refused", "POST", "/v1/actions/runs/r_1/logs", "valid", jsonType, `{"statusLabel":"x"}`, 422},
		{"an unknown final status is refused", "PATCH", "/v1/actions/runs/r_1", "valid", jsonType, `{"status":"FAILED"}`, 422},
		{"a body that is not JSON is refused", "POST", "/v1/actions/runs/r_1/logs", "valid", "text/plain", `message=hi`, 415},
		{"two JSON objects are refused", "POST", "/v1/actions/runs/r_1/logs", "valid", jsonType, `{"message":"a"}{"message":"b"}`, 422},
		{"a body over 1 MiB is too large", "PATCH", "/v1/actions/runs/r_1", "valid", jsonType, `{"summary":"` + strings.Repeat("x", 1<<20) + `"}`, 413},
		{"a GET of the run answers it", "GET", "/v1/actions/runs/r_1", "valid", jsonType, ``, 200},
		{"a GET of a run that does not exist is not found", "GET", "/v1/actions/runs/r_2", "valid", jsonType, ``, 404},
		{"a GET of the logs is not allowed", "GET", "/v1/actions/runs/r_1/logs", "valid", jsonType, ``, 405},
		{"a POST to the run is not allowed", "POST", "/v1/actions/runs/r_1", "valid", jsonType, `{"status":"FAILURE"}`, 405},
		{"a log to a run that does not exist is not found", "POST", "/v1/actions/runs/r_2/logs", "valid", jsonType, `{"message":"hi"}`, 404},
		{"an update of a run that does not exist is not found", "PATCH", "/v1/actions/runs/r_2", "valid", jsonType, `{"link":"https://x"}`, 404},
		{"an unknown path is not found", "POST", "/v1/runs/r_1/logs", "valid", jsonType, `{"message":"hi"}`, 404},
		{"a run search by externalRunId answers", "GET", "/v1/actions/runs?version=v2&external_run_id=ado_contoso_7&limit=1", "valid", jsonType, ``, 200},
		{"a run search without a token is refused", "GET", "/v1/actions/runs?version=v2&external_run_id=ado_contoso_7", "", jsonType, ``, 401},
		{"a run search in a version Port does not have is refused", "GET", "/v1/actions/runs?version=v3&external_run_id=ado_contoso_7", "valid", jsonType, ``, 422},
		{"a run search with a limit over 1000 is refused", "GET", "/v1/actions/runs?version=v2&external_run_id=ado_contoso_7&limit=1001", "valid", jsonType, ``, 422},
		{"a run search with a limit of 0 is refused", "GET", "/v1/actions/runs?version=v2&external_run_id=ado_contoso_7&limit=0", "valid", jsonType, ``, 422},
		{"a run search by another filter is refused", "GET", "/v1/actions/runs?version=v2&external_run_id=ado_contoso_7&entity=svc", "valid", jsonType, ``, 422},
		{"a run search without external_run_id is refused", "GET", "/v1/actions/runs?version=v2", "valid", jsonType, ``, 422},
		{"a run search with two ids is refused", "GET", "/v1/actions/runs?version=v2&external_run_id=a&external_run_id=b", "valid", jsonType, ``, 422},
		{"a run search cannot be posted", "POST", "/v1/actions/runs?version=v2&external_run_id=a", "valid", jsonType, `{}`, 405},
		{"wrong credentials get no token", "POST", "/v1/auth/access_token", "", jsonType, `{"clientId":"id","clientSecret":"wrong"}`, 401},
		{"an undocumented key in the token request is refused", "POST", "/v1/auth/access_token", "", jsonType, `{"clientId":"id","clientSecret":"secret","scope":"x"}`, 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := porttest.New("id", "secret")
			defer s.Close()
			s.CreateRuns("r_1")
			tok := tt.token
			if tok == "valid" {
				tok = token(t, s)
			}
			if got := do(t, tt.method, s.URL+tt.path, tok, tt.ct, tt.body); got != tt.want {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.path, got, tt.want)
			}
		})
	}
}

func TestRunEndsOnlyOnce(t *testing.T) {
	tests := []struct {
		name        string
		first, then string // request bodies: a log has "message", an update "status"
		want        int
	}{
		{"a log after a terminating log is refused", `{"message":"a","terminationStatus":"FAILURE"}`, `{"message":"b"}`, 422},
		{"a final status after a terminating log is refused", `{"message":"a","terminationStatus":"SUCCESS"}`, `{"status":"FAILURE"}`, 422},
		{"a second final status is refused", `{"status":"FAILURE"}`, `{"status":"SUCCESS"}`, 422},
		{"a link after the final status is refused", `{"status":"FAILURE"}`, `{"link":"https://x"}`, 422},
		{"a label after a terminating log is refused", `{"message":"a","terminationStatus":"SUCCESS"}`, `{"statusLabel":"late"}`, 422},
		{"a link before the final status is accepted", `{"link":"https://x"}`, `{"status":"SUCCESS"}`, 200},
		{"logs that do not end the run may follow each other", `{"message":"a"}`, `{"message":"b"}`, 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := porttest.New("id", "secret")
			defer s.Close()
			s.CreateRuns("r_1")
			tok := token(t, s)
			send := func(body string) int {
				if strings.Contains(body, `"message"`) {
					return do(t, "POST", s.URL+"/v1/actions/runs/r_1/logs", tok, "application/json", body)
				}
				return do(t, "PATCH", s.URL+"/v1/actions/runs/r_1", tok, "application/json", body)
			}
			if got := send(tt.first); got/100 != 2 {
				t.Fatalf("first %s = %d, want 2xx", tt.first, got)
			}
			if got := send(tt.then); got != tt.want {
				t.Errorf("then %s = %d, want %d", tt.then, got, tt.want)
			}
			accepted := 1
			if tt.want/100 == 2 {
				accepted = 2
			}
			if n := len(s.Logs("r_1")) + len(s.Updates("r_1")); n != accepted {
				t.Errorf("recorded %d requests, want the %d accepted", n, accepted)
			}
		})
	}
}

func TestExpireTokensRefusesOldTokens(t *testing.T) {
	s := porttest.New("id", "secret")
	defer s.Close()
	s.CreateRuns("r_1")
	old := token(t, s)
	s.ExpireTokens()
	if got := do(t, "POST", s.URL+"/v1/actions/runs/r_1/logs", old, "application/json", `{"message":"hi"}`); got != 401 {
		t.Errorf("log with an expired token = %d, want 401", got)
	}
	if got := do(t, "POST", s.URL+"/v1/actions/runs/r_1/logs", token(t, s), "application/json", `{"message":"hi"}`); got != 201 {
		t.Errorf("log with a new token = %d, want 201", got)
	}
	if got := s.TokenRequests(); got != 2 {
		t.Errorf("TokenRequests() = %d, want 2", got)
	}
	if got := s.Requests(); got != 4 {
		t.Errorf("Requests() = %d, want 4", got)
	}
}

// TestRunSearchFindsTheExternalRunIDLastSet: a search by externalRunId answers the runs
// whose externalRunId, as last set, is the one asked, newest first, in Port's shape.
func TestRunSearchFindsTheExternalRunIDLastSet(t *testing.T) {
	s := porttest.New("id", "secret")
	defer s.Close()
	s.CreateRuns("r_old", "r_moved", "r_new", "r_other")
	tok := token(t, s)
	for run, id := range map[string]string{"r_old": "ado_contoso_7", "r_moved": "ado_contoso_7", "r_new": "ado_contoso_7", "r_other": "ado_fabrikam_7"} {
		if got := do(t, "PATCH", s.URL+"/v1/actions/runs/"+run, tok, "application/json", `{"externalRunId":"`+id+`"}`); got != 200 {
			t.Fatalf("PATCH %s = %d", run, got)
		}
	}
	if got := do(t, "PATCH", s.URL+"/v1/actions/runs/r_moved", tok, "application/json", `{"externalRunId":"ado_contoso_8"}`); got != 200 {
		t.Fatalf("PATCH r_moved = %d", got)
	}
	search := func(query string) []string {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/v1/actions/runs?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var answer struct {
			OK   *bool `json:"ok"`
			Runs []struct {
				ID            string `json:"id"`
				Status        string `json:"status"`
				ExternalRunID string `json:"externalRunId"`
			} `json:"runs"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != 200 || answer.OK == nil || !*answer.OK || answer.Runs == nil {
			t.Fatalf("%s: %d %+v %v, want 200 {ok: true, runs: [...]}", query, resp.StatusCode, answer, err)
		}
		var ids []string
		for _, r := range answer.Runs {
			if r.Status != "IN_PROGRESS" {
				t.Errorf("%s: run %+v, want its status", query, r)
			}
			ids = append(ids, r.ID)
		}
		return ids
	}
	for _, tc := range []struct{ query, want string }{
		{"version=v2&external_run_id=ado_contoso_7", "r_new r_old"},
		{"version=v2&external_run_id=ado_contoso_7&limit=1", "r_new"},
		{"external_run_id=ado_contoso_8&version=v2", "r_moved"},
		{"version=v2&external_run_id=ado_fabrikam_7", "r_other"},
		{"version=v2&external_run_id=ado_contoso_9", ""},
	} {
		if got := strings.Join(search(tc.query), " "); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.query, got, tc.want)
		}
	}
}
