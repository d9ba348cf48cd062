package entratest_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/entra/entratest"
)

const (
	tenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	clientID = "a8fdfbd0-da97-42d9-8f1a-fd6a7cb650b4"
	secret   = "Qv8Q~s3cret.value_for-tests"
	scope    = entratest.AzureDevOpsResource + "/.default"
	subject  = "arn:aws:iam::123456789012:role/relay-RelayFunctionRole-XYZ"
)

func newServer(t *testing.T) *entratest.Server {
	t.Helper()
	srv := entratest.New()
	t.Cleanup(srv.Close)
	srv.AddApp(tenantID, clientID, secret)
	return srv
}

func secretForm() url.Values {
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {clientID},
		"scope":         {scope},
		"client_secret": {secret},
	}
}

// answer is a decoded answer: a token or Entra's error.
type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (a answer) aadsts() int {
	codes, _ := a.body["error_codes"].([]any)
	if len(codes) != 1 {
		return 0
	}
	n, _ := codes[0].(float64)
	return int(n)
}

func post(t *testing.T, srv *entratest.Server, path, contentType, body string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusNotFound {
		if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
			t.Fatalf("%s %s = %d, not JSON: %v", req.Method, req.URL.Path, resp.StatusCode, err)
		}
	}
	return a
}

func token(t *testing.T, srv *entratest.Server, form url.Values) answer {
	t.Helper()
	return post(t, srv, "/"+tenantID+"/oauth2/v2.0/token", "application/x-www-form-urlencoded", form.Encode())
}

var guid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// checkShape checks Entra's JSON error shape around the expected code.
func checkShape(t *testing.T, a answer, code string, aadsts int) {
	t.Helper()
	desc, _ := a.body["error_description"].(string)
	trace, _ := a.body["trace_id"].(string)
	corr, _ := a.body["correlation_id"].(string)
	ts, _ := a.body["timestamp"].(string)
	if a.body["error"] != code || a.aadsts() != aadsts ||
		!strings.HasPrefix(desc, fmt.Sprintf("AADSTS%d: ", aadsts)) ||
		!strings.Contains(desc, " Trace ID: "+trace+" Correlation ID: "+corr+" Timestamp: "+ts) ||
		!guid.MatchString(trace) || corr == "" ||
		a.body["error_uri"] != fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts) {
		t.Errorf("answer %v, want Entra's shape for %s AADSTS%d", a.body, code, aadsts)
	}
	if _, err := time.Parse("2006-01-02 15:04:05Z", ts); err != nil {
		t.Errorf("timestamp %q: %v", ts, err)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestASecretGetsATokenForAzureDevOps(t *testing.T) {
	srv := newServer(t)
	a := token(t, srv, secretForm())
	if a.status != http.StatusOK || a.body["token_type"] != "Bearer" || a.body["expires_in"] != 3599.0 || a.body["ext_expires_in"] != 3599.0 {
		t.Fatalf("token answer %d %v, want 200 Bearer 3599", a.status, a.body)
	}
	if len(a.body) != 4 || a.header.Get("Cache-Control") != "no-store, no-cache" {
		t.Errorf("token answer %v %v, want exactly token_type, expires_in, ext_expires_in, access_token and no caching", a.body, a.header)
	}
	tok, _ := a.body["access_token"].(string)
	if tenant, client, ok := srv.Valid(tok); !ok || tenant != tenantID || client != clientID {
		t.Errorf("Valid(access_token) = %q, %q, %v, want %s, %s, true", tenant, client, ok, tenantID, clientID)
	}
	if _, _, ok := srv.Valid("eyJ0eXAiOiJKV1QifQ.forged.token"); ok {
		t.Error("Valid(a token it did not issue) = true")
	}
	if got := srv.Requests(entratest.GrantSecret); got != 1 || srv.Requests("") != 1 {
		t.Errorf("Requests = %d secret, %d all, want 1, 1", got, srv.Requests(""))
	}
}

// Each row changes one thing of a valid secret request.
func TestRequestsEntraRefusesAreRefusedInItsShape(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	with := func(k, v string) string {
		f := secretForm()
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f.Encode()
	}
	tests := []struct {
		name, method, path, contentType, body string
		status                                int
		code                                  string
		aadsts                                int
	}{
		{name: "the v1 token endpoint is not served", path: "/" + tenantID + "/oauth2/token", status: 404},
		{name: "a path under the endpoint is not served", path: "/" + tenantID + "/oauth2/v2.0/token/x", status: 404},
		{name: "a GET is AADSTS900561", method: http.MethodGet, status: 400, code: "invalid_request", aadsts: 900561},
		{name: "a JSON body has no grant_type", contentType: "application/json",
			body: `{"grant_type":"client_credentials"}`, status: 400, code: "invalid_request", aadsts: 900144},
		{name: "parameters in the query string are not read", path: "/" + tenantID + "/oauth2/v2.0/token?" + secretForm().Encode(),
			body: "", status: 400, code: "invalid_request", aadsts: 900144},
		{name: "a single-label tenant is AADSTS900023", path: "/organizations/oauth2/v2.0/token", status: 400, code: "invalid_request", aadsts: 900023},
		{name: "an unknown tenant is invalid_tenant AADSTS90002", path: "/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token",
			status: 400, code: "invalid_tenant", aadsts: 90002},
		{name: "an unknown domain is invalid_tenant AADSTS90002", path: "/fabrikam.onmicrosoft.com/oauth2/v2.0/token",
			status: 400, code: "invalid_tenant", aadsts: 90002},
		{name: "no grant_type is AADSTS900144", body: with("grant_type", ""), status: 400, code: "invalid_request", aadsts: 900144},
		{name: "another grant is unsupported_grant_type AADSTS70003", body: with("grant_type", "authorization_code"),
			status: 400, code: "unsupported_grant_type", aadsts: 70003},
		{name: "no client_id is AADSTS900144", body: with("client_id", ""), status: 400, code: "invalid_request", aadsts: 900144},
		{name: "an unknown client is unauthorized_client AADSTS700016", body: with("client_id", "00000000-0000-0000-0000-000000000001"),
			status: 400, code: "unauthorized_client", aadsts: 700016},
		{name: "a client of another tenant is AADSTS700016", path: "/contoso.onmicrosoft.com/oauth2/v2.0/token",
			status: 400, code: "unauthorized_client", aadsts: 700016},
		{name: "no scope is AADSTS90014", body: with("scope", ""), status: 400, code: "invalid_request", aadsts: 90014},
		{name: "two scopes are invalid_scope AADSTS70011", body: with("scope", scope+" offline_access"),
			status: 400, code: "invalid_scope", aadsts: 70011},
		{name: "a scope without /.default is AADSTS1002012", body: with("scope", entratest.AzureDevOpsResource+"/vso.build_execute"),
			status: 400, code: "invalid_scope", aadsts: 1002012},
		{name: "another resource is invalid_resource AADSTS500011", body: with("scope", "https://graph.microsoft.com/.default"),
			status: 400, code: "invalid_resource", aadsts: 500011},
		{name: "no credential is invalid_client AADSTS7000216", body: with("client_secret", ""),
			status: 401, code: "invalid_client", aadsts: 7000216},
		{name: "a wrong secret is invalid_client AADSTS7000215", body: with("client_secret", "wrong"),
			status: 401, code: "invalid_client", aadsts: 7000215},
		{name: "a secret and an assertion together are AADSTS9002313", body: with("client_assertion", "a.b.c"),
			status: 400, code: "invalid_request", aadsts: 9002313},
	}
	srv := newServer(t)
	srv.AddApp("contoso.onmicrosoft.com", "9d6c9d56-6a1c-4f7e-8a3c-000000000002", "other")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, ct, body := tt.method, tt.path, tt.contentType, tt.body
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/" + tenantID + "/oauth2/v2.0/token"
			}
			if ct == "" {
				ct = form
			}
			if body == "" && !strings.Contains(path, "?") {
				body = secretForm().Encode()
			}
			req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", ct)
			a := do(t, req)
			if a.status != tt.status || tt.code != "" && (a.body["error"] != tt.code || a.aadsts() != tt.aadsts) {
				t.Fatalf("%s %s = %d %v, want %d %s AADSTS%d", method, path, a.status, a.body, tt.status, tt.code, tt.aadsts)
			}
			if tt.code != "" {
				checkShape(t, a, tt.code, tt.aadsts)
			}
		})
	}
}

func TestEnvNamesTheAuthorityHost(t *testing.T) {
	srv := newServer(t)
	if env := srv.Env(); !slices.Equal(env, []string{"AZURE_AUTHORITY_HOST=" + srv.URL}) {
		t.Errorf("Env() = %q", env)
	}
}

func TestTenantDomainsAndClientIDsMatchWithoutCase(t *testing.T) {
	srv := newServer(t)
	srv.AddApp("contoso.onmicrosoft.com", clientID, secret)
	f := secretForm()
	f.Set("client_id", strings.ToUpper(clientID))
	a := post(t, srv, "/Contoso.OnMicrosoft.com/oauth2/v2.0/token", "application/x-www-form-urlencoded; charset=utf-8", f.Encode())
	if a.status != http.StatusOK {
		t.Fatalf("token = %d %v, want 200", a.status, a.body)
	}
}

func TestAnotherSecretWorksUntilRemoved(t *testing.T) {
	srv := newServer(t)
	srv.AddApp(tenantID, clientID, "rotated") // a second secret, as during a rotation
	for _, s := range []string{secret, "rotated"} {
		f := secretForm()
		f.Set("client_secret", s)
		if a := token(t, srv, f); a.status != http.StatusOK {
			t.Errorf("token with secret %q = %d %v, want 200", s, a.status, a.body)
		}
	}
	srv.RemoveSecret(tenantID, clientID, secret)
	if a := token(t, srv, secretForm()); a.status != http.StatusUnauthorized || a.aadsts() != 7000215 {
		t.Errorf("token with the removed secret = %d %v, want 401 AADSTS7000215", a.status, a.body)
	}
}

func TestTokensExpire(t *testing.T) {
	srv := newServer(t)
	now := time.Now()
	var mu sync.Mutex
	srv.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	srv.SetTokenLifetime(90*time.Second + 500*time.Millisecond)
	a := token(t, srv, secretForm())
	if a.body["expires_in"] != 90.0 {
		t.Fatalf("expires_in = %v, want 90 (whole seconds)", a.body["expires_in"])
	}
	tok := a.body["access_token"].(string)
	mu.Lock()
	now = now.Add(89 * time.Second)
	mu.Unlock()
	if _, _, ok := srv.Valid(tok); !ok {
		t.Error("Valid after 89 s = false, want true")
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if _, _, ok := srv.Valid(tok); ok {
		t.Error("Valid after 90 s = true, want false")
	}
}

func TestFaults(t *testing.T) {
	t.Run("down drops the connection", func(t *testing.T) {
		srv := newServer(t)
		srv.SetFault(entratest.Down)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/"+tenantID+"/oauth2/v2.0/token", strings.NewReader(secretForm().Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("POST while down = %d, want no answer", resp.StatusCode)
		}
		if srv.Requests(entratest.GrantSecret) != 1 {
			t.Errorf("Requests = %d, want 1: faulted requests count", srv.Requests(entratest.GrantSecret))
		}
	})
	t.Run("an internal error is 500 server_error AADSTS50000", func(t *testing.T) {
		srv := newServer(t)
		srv.SetFault(entratest.InternalError.Times(1))
		a := token(t, srv, secretForm())
		if a.status != 500 {
			t.Fatalf("token = %d %v, want 500", a.status, a.body)
		}
		checkShape(t, a, "server_error", 50000)
		if a := token(t, srv, secretForm()); a.status != 200 {
			t.Errorf("after Times(1): token = %d, want 200", a.status)
		}
	})
	t.Run("throttling is 429 with Retry-After", func(t *testing.T) {
		srv := newServer(t)
		srv.SetFault(entratest.Throttle(30 * time.Second))
		a := token(t, srv, secretForm())
		if a.status != 429 || a.header.Get("Retry-After") != "30" {
			t.Fatalf("token = %d Retry-After %q, want 429 30", a.status, a.header.Get("Retry-After"))
		}
		checkShape(t, a, "temporarily_unavailable", 90055)
	})
	t.Run("slow waits until the client gives up", func(t *testing.T) {
		srv := newServer(t)
		srv.SetFault(entratest.Slow(time.Minute))
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/"+tenantID+"/oauth2/v2.0/token", strings.NewReader(secretForm().Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("POST = %v, want the deadline", err)
		}
	})
}

func TestTheClientRequestIDIsTheCorrelationID(t *testing.T) {
	srv := newServer(t)
	f := secretForm()
	f.Set("client_secret", "wrong")
	a := post(t, srv, "/"+tenantID+"/oauth2/v2.0/token", "application/x-www-form-urlencoded", f.Encode(),
		"client-request-id", "5fc87507-4086-4e77-b415-cee677eb232e")
	if a.body["correlation_id"] != "5fc87507-4086-4e77-b415-cee677eb232e" {
		t.Errorf("correlation_id = %v, want the client-request-id", a.body["correlation_id"])
	}
}

// issuer is an OIDC issuer for the assertion tests: discovery, a JWKS with one RSA key, and a minting function.
type issuer struct {
	url string
	kid string
	doc func() map[string]any // the discovery document it serves
}

var testKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var keys [2]*rsa.PrivateKey
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	iss := &issuer{kid: "key-1"}
	key := testKeys()[0]
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(iss.doc())
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{
			{"kty": "EC", "kid": "ec-key", "crv": "P-384", "x": "AA", "y": "AA"}, // skipped: not RSA
			{"kty": "RSA", "kid": iss.kid, "n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes())},
		}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.url = srv.URL
	iss.doc = func() map[string]any {
		return map[string]any{"issuer": iss.url, "jwks_uri": iss.url + "/.well-known/jwks.json"}
	}
	return iss
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwtParts is an assertion before signing; sign writes it.
type jwtParts struct {
	header map[string]any
	claims map[string]any
	key    *rsa.PrivateKey
}

func (iss *issuer) valid(now time.Time) jwtParts {
	return jwtParts{
		header: map[string]any{"alg": "RS256", "kid": iss.kid, "typ": "JWT"},
		claims: map[string]any{"iss": iss.url, "sub": subject, "aud": entratest.TokenExchangeAudience,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": "1"},
		key: testKeys()[0],
	}
}

func (p jwtParts) sign(t *testing.T) string {
	t.Helper()
	h, _ := json.Marshal(p.header)
	c, _ := json.Marshal(p.claims)
	signed := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64(sig)
}

func assertionForm(assertion string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {clientID},
		"scope":                 {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
}

// Each row changes one thing of a valid assertion, of its signing, of the app's federated credentials or of the
// issuer's metadata.
func TestAssertionsAreCheckedAsEntraChecksFederatedCredentials(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name   string
		change func(p *jwtParts, iss *issuer)
		form   func(f url.Values)
		creds  func(srv *entratest.Server, iss *issuer) // instead of the one valid credential
		status int
		code   string
		aadsts int
	}{
		{name: "a valid assertion gets a token", status: 200},
		{name: "an audience among several is found", status: 200,
			change: func(p *jwtParts, _ *issuer) { p.claims["aud"] = []string{"other", entratest.TokenExchangeAudience} }},
		{name: "nbf 4 minutes ahead is within the skew", status: 200,
			change: func(p *jwtParts, _ *issuer) { p.claims["nbf"] = time.Now().Add(4 * time.Minute).Unix() }},
		{name: "one credential of several matches", status: 200, creds: func(srv *entratest.Server, iss *issuer) {
			srv.AddFederatedCredential(tenantID, clientID, iss.url, "other", entratest.TokenExchangeAudience)
			srv.AddFederatedCredential(tenantID, clientID, iss.url, subject, entratest.TokenExchangeAudience)
		}},
		{name: "no client_assertion_type is AADSTS900144", form: func(f url.Values) { f.Del("client_assertion_type") },
			status: 400, code: "invalid_request", aadsts: 900144},
		{name: "another client_assertion_type is AADSTS90011",
			form: func(f url.Values) {
				f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			},
			status: 400, code: "invalid_request", aadsts: 90011},
		{name: "an assertion that is not a JWT is AADSTS50027", form: func(f url.Values) { f.Set("client_assertion", "not-a-jwt") },
			status: 400, code: "invalid_request", aadsts: 50027},
		{name: "a header that is not JSON is AADSTS50027", form: func(f url.Values) {
			parts := strings.SplitN(f.Get("client_assertion"), ".", 2)
			f.Set("client_assertion", b64([]byte("{alg"))+"."+parts[1])
		}, status: 400, code: "invalid_request", aadsts: 50027},
		{name: "alg none is AADSTS50027", change: func(p *jwtParts, _ *issuer) { p.header["alg"] = "none" },
			status: 400, code: "invalid_request", aadsts: 50027},
		{name: "ES384 is refused here (RS256 only)", change: func(p *jwtParts, _ *issuer) { p.header["alg"] = "ES384" },
			status: 400, code: "invalid_request", aadsts: 50027},
		{name: "no exp is AADSTS50027", change: func(p *jwtParts, _ *issuer) { delete(p.claims, "exp") },
			status: 400, code: "invalid_request", aadsts: 50027},
		{name: "an app without federated credentials is AADSTS70021", creds: func(*entratest.Server, *issuer) {},
			status: 400, code: "invalid_request", aadsts: 70021},
		{name: "another issuer is AADSTS700211", change: func(p *jwtParts, iss *issuer) { p.claims["iss"] = iss.url + "/" },
			status: 401, code: "invalid_client", aadsts: 700211},
		{name: "an issuer whose discovery is unreachable is AADSTS50166", creds: func(srv *entratest.Server, _ *issuer) {
			srv.AddFederatedCredential(tenantID, clientID, closed.URL, subject, entratest.TokenExchangeAudience)
		}, change: func(p *jwtParts, _ *issuer) { p.claims["iss"] = closed.URL }, status: 400, code: "invalid_request", aadsts: 50166},
		{name: "an issuer off loopback is never fetched: AADSTS50166", creds: func(srv *entratest.Server, _ *issuer) {
			srv.AddFederatedCredential(tenantID, clientID, "https://abc123.tokens.sts.global.api.aws", subject, entratest.TokenExchangeAudience)
		}, change: func(p *jwtParts, _ *issuer) { p.claims["iss"] = "https://abc123.tokens.sts.global.api.aws" },
			status: 400, code: "invalid_request", aadsts: 50166},
		{name: "discovery naming another issuer is AADSTS50166", change: func(_ *jwtParts, iss *issuer) {
			iss.doc = func() map[string]any {
				return map[string]any{"issuer": "https://elsewhere", "jwks_uri": iss.url + "/.well-known/jwks.json"}
			}
		}, status: 400, code: "invalid_request", aadsts: 50166},
		{name: "a kid not in the JWKS is AADSTS7000272", change: func(p *jwtParts, _ *issuer) { p.header["kid"] = "key-2" },
			status: 401, code: "invalid_client", aadsts: 7000272},
		{name: "no kid is AADSTS7000272", change: func(p *jwtParts, _ *issuer) { delete(p.header, "kid") },
			status: 401, code: "invalid_client", aadsts: 7000272},
		{name: "the EC key's kid does not verify RS256: AADSTS7000272", change: func(p *jwtParts, _ *issuer) { p.header["kid"] = "ec-key" },
			status: 401, code: "invalid_client", aadsts: 7000272},
		{name: "a signature by another key is AADSTS700027", change: func(p *jwtParts, _ *issuer) { p.key = testKeys()[1] },
			status: 401, code: "invalid_client", aadsts: 700027},
		{name: "a payload changed after signing is AADSTS700027", form: func(f url.Values) {
			parts := strings.Split(f.Get("client_assertion"), ".")
			b, _ := base64.RawURLEncoding.DecodeString(parts[1])
			parts[1] = b64([]byte(strings.Replace(string(b), "XYZ", "XYW", 1)))
			f.Set("client_assertion", strings.Join(parts, "."))
		}, status: 401, code: "invalid_client", aadsts: 700027},
		{name: "an expired assertion is AADSTS700024", change: func(p *jwtParts, _ *issuer) { p.claims["exp"] = time.Now().Add(-time.Second).Unix() },
			status: 401, code: "invalid_client", aadsts: 700024},
		{name: "nbf 10 minutes ahead is AADSTS700024", change: func(p *jwtParts, _ *issuer) { p.claims["nbf"] = time.Now().Add(10 * time.Minute).Unix() },
			status: 401, code: "invalid_client", aadsts: 700024},
		{name: "a subject that differs in case is AADSTS700213", change: func(p *jwtParts, _ *issuer) { p.claims["sub"] = strings.ToLower(subject) },
			status: 401, code: "invalid_client", aadsts: 700213},
		{name: "a subject registered under another issuer is AADSTS700213", creds: func(srv *entratest.Server, iss *issuer) {
			srv.AddFederatedCredential(tenantID, clientID, iss.url, "other", entratest.TokenExchangeAudience)
			srv.AddFederatedCredential(tenantID, clientID, "https://other.example", subject, entratest.TokenExchangeAudience)
		}, status: 401, code: "invalid_client", aadsts: 700213},
		{name: "another audience is AADSTS700212", change: func(p *jwtParts, _ *issuer) { p.claims["aud"] = "api://AzureADTokenExchange2" },
			status: 401, code: "invalid_client", aadsts: 700212},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			iss := newIssuer(t)
			if tt.creds != nil {
				tt.creds(srv, iss)
			} else {
				srv.AddFederatedCredential(tenantID, clientID, iss.url, subject, entratest.TokenExchangeAudience)
			}
			p := iss.valid(time.Now())
			if tt.change != nil {
				tt.change(&p, iss)
			}
			f := assertionForm(p.sign(t))
			if tt.form != nil {
				tt.form(f)
			}
			a := token(t, srv, f)
			if a.status != tt.status || tt.code != "" && (a.body["error"] != tt.code || a.aadsts() != tt.aadsts) {
				t.Fatalf("token = %d %v, want %d %s AADSTS%d", a.status, a.body, tt.status, tt.code, tt.aadsts)
			}
			if tt.code != "" {
				checkShape(t, a, tt.code, tt.aadsts)
				return
			}
			if _, client, ok := srv.Valid(a.body["access_token"].(string)); !ok || client != clientID {
				t.Errorf("Valid(access_token) = %q, %v", client, ok)
			}
			if srv.Requests(entratest.GrantAssertion) != 1 {
				t.Errorf("Requests(GrantAssertion) = %d, want 1", srv.Requests(entratest.GrantAssertion))
			}
		})
	}
}

func TestANewFederatedCredentialAnswersAADSTS70021UntilItReplicates(t *testing.T) {
	srv := newServer(t)
	iss := newIssuer(t)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv.SetClock(clock)
	srv.SetReplicationDelay(2 * time.Minute)
	srv.AddFederatedCredential(tenantID, clientID, iss.url, subject, entratest.TokenExchangeAudience)

	if a := token(t, srv, assertionForm(iss.valid(clock()).sign(t))); a.status != 400 || a.aadsts() != 70021 {
		t.Fatalf("token at once = %d %v, want 400 AADSTS70021", a.status, a.body)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if a := token(t, srv, assertionForm(iss.valid(clock()).sign(t))); a.status != 200 {
		t.Fatalf("token two minutes later = %d %v, want 200", a.status, a.body)
	}
}

func TestRequestsAreCountedByGrant(t *testing.T) {
	srv := newServer(t)
	token(t, srv, secretForm())
	token(t, srv, assertionForm("a.b.c"))
	f := secretForm()
	f.Del("client_secret")
	token(t, srv, f)
	got := []int{srv.Requests(entratest.GrantSecret), srv.Requests(entratest.GrantAssertion), srv.Requests(entratest.GrantNone), srv.Requests("")}
	if !slices.Equal(got, []int{1, 1, 1, 3}) {
		t.Errorf("Requests(secret, assertion, none, all) = %v, want [1 1 1 3]", got)
	}
}
