package entratest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/awstest"
)

const (
	maxBody   = 1 << 20
	jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// Entra's timestamp format in error answers: "2023-02-20 07:21:29Z".
	timestampFormat = "2006-01-02 15:04:05Z"
)

// refusal is an Entra error answer: HTTP status, OAuth error code, AADSTS number and description.
type refusal struct {
	status int
	code   string
	aadsts int
	msg    string
}

func badRequest(aadsts int, format string, args ...any) *refusal {
	return &refusal{http.StatusBadRequest, "invalid_request", aadsts, fmt.Sprintf(format, args...)}
}

// invalidClient is 401 invalid_client, Entra's answer to a credential it does not accept.
func invalidClient(aadsts int, format string, args ...any) *refusal {
	return &refusal{http.StatusUnauthorized, "invalid_client", aadsts, fmt.Sprintf(format, args...)}
}

func missing(name string) *refusal {
	return badRequest(900144, "The request body must contain the following parameter: '%s'.", name)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	tenantName, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/oauth2/v2.0/token")
	if !ok || tenantName == "" || strings.Contains(tenantName, "/") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		s.writeError(w, r, badRequest(900561, "The endpoint only accepts POST, OPTIONS requests. Received a %s request.", r.Method))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.writeError(w, r, &refusal{http.StatusRequestEntityTooLarge, "invalid_request", 9002313, "Invalid request. Request is malformed or invalid."})
		return
	}
	// Entra reads its parameters from a form body only: a JSON body, or parameters in the query string, are
	// missing parameters to it.
	form := url.Values{}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/x-www-form-urlencoded" {
		if form, err = url.ParseQuery(string(body)); err != nil {
			form = url.Values{}
		}
	}
	s.count(form)

	fault := s.takeFault()
	if s.inject(w, r, fault) {
		return
	}
	if e := s.check(r.Context(), tenantName, form); e != nil {
		s.writeError(w, r, e)
		return
	}
	s.issue(w, tenantName, form.Get("client_id"))
}

func (s *Server) count(form url.Values) {
	kind := GrantNone
	switch {
	case form.Has("client_assertion"):
		kind = GrantAssertion
	case form.Has("client_secret"):
		kind = GrantSecret
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[kind]++
}

// inject fails as the fault says and reports whether it answered.
func (s *Server) inject(w http.ResponseWriter, r *http.Request, f Fault) bool {
	switch f.kind {
	case "down":
		drop(w)
		return true
	case "slow":
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		case <-s.done:
		}
	case "internal":
		s.writeError(w, r, &refusal{http.StatusInternalServerError, "server_error", 50000,
			"There was an error issuing a token or an issue with our sign-in service."})
		return true
	case "throttle":
		w.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter/time.Second)))
		s.writeError(w, r, &refusal{http.StatusTooManyRequests, "temporarily_unavailable", 90055,
			"There are too many incoming requests. Please try again later."})
		return true
	}
	return false
}

// check applies Entra's rules to a token request, in the order Entra reports them, and returns the first refusal.
func (s *Server) check(ctx context.Context, tenantName string, form url.Values) *refusal {
	if !validTenant(tenantName) {
		return badRequest(900023, "Specified tenant identifier '%s' is neither a valid DNS name, nor a valid external domain.", tenantName)
	}
	s.mu.Lock()
	t := s.tenants[strings.ToLower(tenantName)]
	s.mu.Unlock()
	if t == nil {
		return &refusal{http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenantName)}
	}
	switch grant := form.Get("grant_type"); {
	case grant == "":
		return missing("grant_type")
	case grant != "client_credentials":
		return &refusal{http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", grant)}
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		return missing("client_id")
	}
	s.mu.Lock()
	a := t.apps[strings.ToLower(clientID)]
	var secrets []string
	var creds []federated
	if a != nil {
		secrets, creds = append(secrets, a.secrets...), append(creds, a.creds...)
	}
	replication, now := s.replication, s.now()
	s.mu.Unlock()
	if a == nil {
		return &refusal{http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, t.name)}
	}
	if e := checkScope(form.Get("scope"), t.name); e != nil {
		return e
	}

	secret, assertion := form.Get("client_secret"), form.Get("client_assertion")
	switch {
	case secret != "" && assertion != "":
		return badRequest(9002313, "Invalid request. Request is malformed or invalid.")
	case secret != "":
		for _, v := range secrets {
			if v == secret {
				return nil
			}
		}
		return invalidClient(7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", a.clientID)
	case assertion != "":
		switch typ := form.Get("client_assertion_type"); {
		case typ == "":
			return missing("client_assertion_type")
		case typ != jwtBearer:
			return badRequest(90011, "Unexpected client assertion type.")
		}
		var visible []federated
		for _, c := range creds {
			if !now.Before(c.added.Add(replication)) {
				visible = append(visible, c)
			}
		}
		return s.verifyAssertion(ctx, assertion, visible, now)
	default:
		return invalidClient(7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
	}
}

// checkScope accepts Azure DevOps' /.default, the only form the client credentials grant takes.
func checkScope(scope, tenantName string) *refusal {
	switch {
	case scope == "":
		return badRequest(90014, "The required field 'scope' is missing from the credential. Ensure that you have all the necessary parameters for the login request.")
	case strings.ContainsAny(scope, " \t"):
		return &refusal{http.StatusBadRequest, "invalid_scope", 70011, fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", scope)}
	}
	resource, ok := strings.CutSuffix(scope, "/.default")
	switch {
	case !ok:
		return &refusal{http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)}
	case !strings.EqualFold(resource, AzureDevOpsResource):
		return &refusal{http.StatusBadRequest, "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, tenantName)}
	}
	return nil
}

// issue answers 200 with a new token, as Entra does for the client credentials grant.
func (s *Server) issue(w http.ResponseWriter, tenantName, clientID string) {
	s.mu.Lock()
	tok := newToken()
	secs := int(s.lifetime / time.Second)
	s.tokens[tok] = issued{tenant: tenantName, clientID: clientID, expires: s.now().Add(time.Duration(secs) * time.Second)}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, struct {
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
		ExtExpiresIn int    `json:"ext_expires_in"`
		AccessToken  string `json:"access_token"`
	}{"Bearer", secs, secs, tok})
}

// writeError answers in Entra's JSON error shape. The correlation id is the client's client-request-id when it
// sent one, as Entra echoes it.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *refusal) {
	s.mu.Lock()
	ts := s.now().UTC().Format(timestampFormat)
	s.mu.Unlock()
	trace := awstest.NewUUID()
	correlation := r.Header.Get("client-request-id")
	if correlation == "" {
		correlation = awstest.NewUUID()
	}
	writeJSON(w, e.status, struct {
		Error         string `json:"error"`
		Description   string `json:"error_description"`
		Codes         []int  `json:"error_codes"`
		Timestamp     string `json:"timestamp"`
		TraceID       string `json:"trace_id"`
		CorrelationID string `json:"correlation_id"`
		ErrorURI      string `json:"error_uri"`
	}{
		Error:         e.code,
		Description:   fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", e.aadsts, e.msg, trace, correlation, ts),
		Codes:         []int{e.aadsts},
		Timestamp:     ts,
		TraceID:       trace,
		CorrelationID: correlation,
		ErrorURI:      "https://login.microsoftonline.com/error?code=" + strconv.Itoa(e.aadsts),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write(b)
}

// drop closes the connection without a word, so the client sees a reset or EOF, not an HTTP answer.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	conn.Close()
}

// validTenant accepts what Entra takes as a tenant in the path: a GUID, or a DNS domain.
func validTenant(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	if isGUID(s) {
		return true
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
