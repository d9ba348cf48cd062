package portapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
)

func TestExternalRunIDNamesTheOrganization(t *testing.T) {
	for _, tc := range []struct{ org, id, want string }{
		{"contoso", "42", "ado_contoso_42"},
		{"Contoso", "42", "ado_contoso_42"}, // Azure's organization names are not case-sensitive
		{"fabrikam-eu", "42", "ado_fabrikam-eu_42"},
	} {
		if got := portapi.ExternalRunID(tc.org, tc.id); got != tc.want {
			t.Errorf("ExternalRunID(%q, %q) = %q, want %q", tc.org, tc.id, got, tc.want)
		}
	}
	if portapi.ExternalRunID("contoso", "42") == portapi.ExternalRunID("fabrikam", "42") {
		t.Error("two organizations' run 42 share one externalRunId")
	}
}

// TestRunByExternalIDFindsTheNewestRun: Port's run search, through the stand-in: the
// run whose externalRunId was last set to the one asked, the newest when several are;
// none is false, not an error.
func TestRunByExternalIDFindsTheNewestRun(t *testing.T) {
	port, c := newPort(t)
	port.CreateRuns("r_older", "r_newer", "r_fabrikam")
	for run, id := range map[string]string{runID: "ado_contoso_41", "r_older": "ado_contoso_42", "r_newer": "ado_contoso_42", "r_fabrikam": "ado_fabrikam_42"} {
		if err := c.Update(t.Context(), creds, run, portapi.RunUpdate{ExternalRunID: id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		externalRunID, want string
		found               bool
	}{
		{"ado_contoso_41", runID, true},
		{"ado_contoso_42", "r_newer", true},
		{"ado_fabrikam_42", "r_fabrikam", true},
		{"ado_contoso_43", "", false},
		{"ado_contoso_42&entity=x", "", false}, // the id is one query value, never more of the query
	} {
		got, found, err := c.RunByExternalID(t.Context(), creds, tc.externalRunID)
		if err != nil || got != tc.want || found != tc.found {
			t.Errorf("RunByExternalID(%q) = %q, %v, %v; want %q, %v, nil", tc.externalRunID, got, found, err, tc.want, tc.found)
		}
	}
	if n := port.TokenRequests(); n != 1 {
		t.Errorf("TokenRequests() = %d, want 1: the token is shared with the updates", n)
	}
}

// TestRunByExternalIDSendsThePortQuery: the request is Port's documented one, with the
// bearer token; a refused token is replaced once.
func TestRunByExternalIDSendsThePortQuery(t *testing.T) {
	var searches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/auth/access_token" {
			w.Write([]byte(`{"accessToken":"tok-` + string(rune('a'+searches.Load())) + `","expiresIn":10800}`))
			return
		}
		n := searches.Add(1)
		want := url.Values{"version": {"v2"}, "external_run_id": {"ado_contoso_7"}, "limit": {"1"}}
		if r.Method != http.MethodGet || r.URL.Path != "/v1/actions/runs" || r.URL.Query().Encode() != want.Encode() || r.ContentLength > 0 {
			t.Errorf("%s %s (%d bytes), want GET /v1/actions/runs?%s", r.Method, r.URL, r.ContentLength, want.Encode())
		}
		if n == 1 {
			w.WriteHeader(http.StatusUnauthorized) // the cached token expired
			return
		}
		if r.Header.Get("Authorization") != "Bearer tok-b" {
			t.Errorf("Authorization = %q, want the fresh token", r.Header.Get("Authorization"))
		}
		w.Write([]byte(`{"ok":true,"runs":[{"id":"r_found1","status":"IN_PROGRESS","action":{"identifier":"deploy"},"properties":{},"requiredApproval":false,"source":"UI"},{"id":"r_older1"}]}`))
	}))
	defer srv.Close()
	c := &portapi.Client{BaseURL: srv.URL}
	got, found, err := c.RunByExternalID(t.Context(), creds, "ado_contoso_7")
	if err != nil || !found || got != "r_found1" {
		t.Errorf("RunByExternalID() = %q, %v, %v; want r_found1, the first (newest) run", got, found, err)
	}
	if n := searches.Load(); n != 2 {
		t.Errorf("%d searches, want 2: once more after the 401", n)
	}
}

// TestRunByExternalIDClassifiesPortsAnswers: Port down is ErrUnavailable (the status
// function answers 503 and Azure retries); a refusal is ErrRejected; an answer that
// cannot be read is never taken for "no such run".
func TestRunByExternalIDClassifiesPortsAnswers(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"503 is ErrUnavailable", 503, `{"ok":false,"error":"internal_error"}`, portapi.ErrUnavailable},
		{"500 is ErrUnavailable", 500, ``, portapi.ErrUnavailable},
		{"429 is ErrUnavailable", 429, `{"ok":false,"error":"rate_limit"}`, portapi.ErrUnavailable},
		{"403 is ErrRejected", 403, `{"ok":false,"error":"forbidden","message":"missing read:runs"}`, portapi.ErrRejected},
		{"422 is ErrRejected", 422, `{"ok":false,"error":"invalid_request"}`, portapi.ErrRejected},
		{"a redirect is not followed: ErrRejected", 302, ``, portapi.ErrRejected},
		{"a 200 that is not JSON is ErrUnavailable", 200, `<html>maintenance</html>`, portapi.ErrUnavailable},
		{"a 200 cut off is ErrUnavailable", 200, `{"ok":true,"runs":[{"id":"r_1"`, portapi.ErrUnavailable},
		{"a 200 without ok is ErrUnavailable", 200, `{"runs":[]}`, portapi.ErrUnavailable},
		{"a run id Port does not issue is ErrUnavailable", 200, `{"ok":true,"runs":[{"id":"../auth"}]}`, portapi.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/auth/access_token" {
					w.Write([]byte(`{"accessToken":"tok","expiresIn":10800}`))
					return
				}
				if tt.status == 302 {
					w.Header().Set("Location", "https://elsewhere.example/v1/actions/runs")
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := &portapi.Client{BaseURL: srv.URL}
			got, found, err := c.RunByExternalID(t.Context(), creds, "ado_contoso_7")
			if !errors.Is(err, tt.want) || found || got != "" {
				t.Fatalf("RunByExternalID() = %q, %v, %v; want %v", got, found, err, tt.want)
			}
			if tt.want == portapi.ErrRejected && errors.Is(err, portapi.ErrUnavailable) {
				t.Errorf("RunByExternalID() = %v, also ErrUnavailable", err)
			}
			for _, leak := range []string{"maintenance", "missing read:runs", "../auth"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("RunByExternalID() = %q, shows Port's answer", err)
				}
			}
		})
	}

	t.Run("Port unreachable is ErrUnavailable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		base := srv.URL
		srv.Close()
		c := &portapi.Client{BaseURL: base}
		if _, _, err := c.RunByExternalID(t.Context(), creds, "ado_contoso_7"); !errors.Is(err, portapi.ErrUnavailable) {
			t.Errorf("RunByExternalID() = %v, want %v", err, portapi.ErrUnavailable)
		}
	})
	t.Run("refused credentials are ErrToken", func(t *testing.T) {
		port := porttest.New("another-id", "another-secret")
		defer port.Close()
		c := &portapi.Client{BaseURL: port.URL}
		if _, _, err := c.RunByExternalID(t.Context(), creds, "ado_contoso_7"); !errors.Is(err, portapi.ErrToken) {
			t.Errorf("RunByExternalID() = %v, want %v", err, portapi.ErrToken)
		}
	})
	t.Run("no credentials: no request", func(t *testing.T) {
		port, c := newPort(t)
		if _, _, err := c.RunByExternalID(t.Context(), portapi.Credentials{ClientID: "x"}, "ado_contoso_7"); !errors.Is(err, portapi.ErrNoCredentials) || port.Requests() != 0 {
			t.Errorf("RunByExternalID() = %v with %d requests, want %v and none", err, port.Requests(), portapi.ErrNoCredentials)
		}
	})
}
