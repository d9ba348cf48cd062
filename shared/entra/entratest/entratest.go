// Package entratest runs a local Microsoft Entra ID token endpoint for tests, demos and benchmarks: the client
// credentials grant of the Microsoft identity platform, POST {authority}/{tenant}/oauth2/v2.0/token, as
// login.microsoftonline.com serves it.
//
// It refuses what Entra refuses, with Entra's HTTP status, OAuth error code and AADSTS number, in Entra's JSON
// error shape (error, error_description beginning "AADSTSnnn:", error_codes, timestamp, trace_id, correlation_id,
// error_uri):
//
//   - another path: 404; another method: 400 AADSTS900561; a body that is not a form has no parameters;
//   - a tenant that is neither a GUID nor a DNS domain: 400 AADSTS900023; one not registered: 400 invalid_tenant
//     AADSTS90002;
//   - no grant_type or client_id: 400 AADSTS900144; a grant other than client_credentials: 400
//     unsupported_grant_type AADSTS70003;
//   - an application not in the tenant: 400 unauthorized_client AADSTS700016;
//   - no scope: 400 AADSTS90014; several: 400 invalid_scope AADSTS70011; one without /.default: 400 AADSTS1002012;
//     another resource's /.default: 400 invalid_resource AADSTS500011 (the only resource here is Azure DevOps);
//   - no credential: 401 invalid_client AADSTS7000216; a secret the app does not have: 401 AADSTS7000215; a secret
//     and an assertion together: 400 AADSTS9002313; an assertion of another type: 400 AADSTS90011.
//
// An assertion is checked as Entra checks a federated identity credential's token: a well-formed RS256 JWT (else 400
// AADSTS50027); some credential registered on the app and replicated (else 400 AADSTS70021; see
// SetReplicationDelay); one whose issuer equals iss exactly (else 401 AADSTS700211); the issuer's OIDC discovery
// ({iss}/.well-known/openid-configuration naming that issuer, then its jwks_uri) reachable (else 400 AADSTS50166);
// the key named by kid in it (else 401 AADSTS7000272) and the signature good (else 401 AADSTS700027); exp in the
// future and nbf not beyond 5 minutes ahead (else 401 AADSTS700024); then, among the credentials with that issuer,
// one whose subject equals sub exactly, case included (else 401 AADSTS700213), with an audience that aud contains
// (else 401 AADSTS700212).
//
// A token it issues is opaque; Valid tells an Azure DevOps stand-in whose it is while it lasts.
//
// It does not model: other grants, certificate credentials, the v1 endpoint, multi-tenant apps and consent,
// conditional access, a tenant's several domain names (a tenant has the one name it was added under), the
// issuer's https requirement (discovery is fetched from loopback addresses only, over http or https), and Entra's
// caching of discovery documents (fetched on every assertion here). Where no public source gave the code Entra
// answers (a secret together with an assertion; an algorithm other than RS256), the nearest documented one is used.
package entratest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

const (
	// AzureDevOpsResource is the one resource whose /.default scope the server grants.
	AzureDevOpsResource = "499b84ac-1321-427f-aa17-267ca6975798"
	// TokenExchangeAudience is the audience Entra's portal suggests for a federated identity credential.
	TokenExchangeAudience = "api://AzureADTokenExchange"
	// DefaultTokenLifetime is the life of the tokens Entra issues for the client credentials grant (expires_in 3599).
	DefaultTokenLifetime = 3599 * time.Second
)

// Grant kinds counted by Requests.
const (
	GrantSecret    = "client_secret"    // a request with a client_secret
	GrantAssertion = "client_assertion" // a request with a client_assertion
	GrantNone      = "none"             // a request with neither
)

// A Fault is a failure the server injects, set with SetFault. The zero value is None.
type Fault struct {
	kind       string
	delay      time.Duration
	retryAfter time.Duration
	times      int // 0 means until the next SetFault
}

// The faults the server can inject.
var (
	// None answers normally.
	None = Fault{}
	// Down closes every connection without answering, like an unreachable endpoint.
	Down = Fault{kind: "down"}
	// InternalError answers 500 server_error AADSTS50000, as Entra does when its sign-in service fails.
	InternalError = Fault{kind: "internal"}
)

// Throttle answers 429 temporarily_unavailable AADSTS90055 with Retry-After, as Entra does for too many requests.
func Throttle(retryAfter time.Duration) Fault { return Fault{kind: "throttle", retryAfter: retryAfter} }

// Slow delays each answer by d, or until the client gives up.
func Slow(d time.Duration) Fault { return Fault{kind: "slow", delay: d} }

// Times limits f to the next n token requests, after which the server answers normally again.
func (f Fault) Times(n int) Fault {
	f.times = n
	return f
}

// Server is a Microsoft Entra ID token endpoint. It is safe for concurrent use.
type Server struct {
	// URL is the authority host, http://127.0.0.1:port: what AZURE_AUTHORITY_HOST names.
	URL string

	srv  *httptest.Server
	done chan struct{} // closed by Close, so that slow answers don't hold it up

	mu          sync.Mutex
	tenants     map[string]*tenant // by lower-case name
	tokens      map[string]issued
	lifetime    time.Duration
	replication time.Duration
	now         func() time.Time
	discovery   *http.Client
	fault       Fault
	requests    map[string]int // by grant kind
}

type tenant struct {
	name string
	apps map[string]*app // by lower-case client id
}

type app struct {
	clientID string
	secrets  []string
	creds    []federated
}

// federated is a federated identity credential: the issuer, subject and audience a token must have.
type federated struct {
	issuer, subject, audience string
	added                     time.Time
}

type issued struct {
	tenant, clientID string
	expires          time.Time
}

// New starts a server on 127.0.0.1 with a random port. Close it when done.
func New() *Server {
	s := newServer()
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// NewTLS is New over HTTPS, as Entra serves it, with config's certificate (httptest's own when config has none).
func NewTLS(config *tls.Config) *Server {
	s := newServer()
	s.srv.TLS = config
	s.srv.StartTLS()
	s.URL = s.srv.URL
	return s
}

func newServer() *Server {
	s := &Server{
		done:      make(chan struct{}),
		tenants:   make(map[string]*tenant),
		tokens:    make(map[string]issued),
		lifetime:  DefaultTokenLifetime,
		now:       time.Now,
		discovery: loopbackClient(),
		requests:  make(map[string]int),
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	return s
}

// Close stops the server and waits for answers in progress.
func (s *Server) Close() {
	close(s.done)
	s.srv.Close()
}

// Env returns the KEY=VALUE line that points a child process's Entra client at this server, as Azure SDKs read it.
func (s *Server) Env() []string {
	return []string{"AZURE_AUTHORITY_HOST=" + s.URL}
}

// AddApp registers an application (client) id in tenant, adding the tenant if it is new, and gives it secret
// unless that is empty (an app that signs in with a federated credential only). Called again for the same app, it
// adds another secret, as Entra lets an app have several while one is rotated.
func (s *Server) AddApp(tenantName, clientID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[strings.ToLower(tenantName)]
	if t == nil {
		t = &tenant{name: tenantName, apps: make(map[string]*app)}
		s.tenants[strings.ToLower(tenantName)] = t
	}
	a := t.apps[strings.ToLower(clientID)]
	if a == nil {
		a = &app{clientID: clientID}
		t.apps[strings.ToLower(clientID)] = a
	}
	if secret != "" {
		a.secrets = append(a.secrets, secret)
	}
}

// RemoveSecret deletes one of the app's secrets, as deleting it (or its expiry) does in Entra.
func (s *Server) RemoveSecret(tenantName, clientID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(tenantName, clientID)
	for i, v := range a.secrets {
		if v == secret {
			a.secrets = append(a.secrets[:i], a.secrets[i+1:]...)
			return
		}
	}
}

// AddFederatedCredential registers a federated identity credential on the app (which AddApp must have added): a
// token whose iss and sub equal issuer and subject exactly, and whose aud contains audience, signs it in.
func (s *Server) AddFederatedCredential(tenantName, clientID, issuer, subject, audience string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(tenantName, clientID)
	a.creds = append(a.creds, federated{issuer: issuer, subject: subject, audience: audience, added: s.now()})
}

// app returns a registered app; it is called with s.mu held, and panics for one AddApp did not add: a test's mistake.
func (s *Server) app(tenantName, clientID string) *app {
	if t := s.tenants[strings.ToLower(tenantName)]; t != nil {
		if a := t.apps[strings.ToLower(clientID)]; a != nil {
			return a
		}
	}
	panic("entratest: no app " + clientID + " in tenant " + tenantName + ": call AddApp first")
}

// SetReplicationDelay makes a federated credential invisible for d after it is added: Entra answers AADSTS70021
// for a few minutes after a credential is created, until it has replicated.
func (s *Server) SetReplicationDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replication = d
}

// SetTokenLifetime sets the life of the tokens issued from now on (DefaultTokenLifetime until then). Entra
// rounds expires_in down to whole seconds, and so does the server.
func (s *Server) SetTokenLifetime(d time.Duration) {
	if d < time.Second {
		panic("entratest: a token lifetime under a second")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// SetClock replaces the server's clock (time.Now), which dates tokens, judges an assertion's exp and nbf, and
// ages federated credentials.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetDiscoveryClient sets the client that fetches an issuer's OIDC discovery document and keys (by default one that
// dials loopback addresses only), e.g. one that trusts a TLS issuer's certificate.
func (s *Server) SetDiscoveryClient(c *http.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discovery = c
}

// Valid reports whether token is one the server issued and has not expired, and for which app.
func (s *Server) Valid(token string) (tenant, clientID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, found := s.tokens[token]
	if !found || !s.now().Before(t.expires) {
		return "", "", false
	}
	return t.tenant, t.clientID, true
}

// Requests counts the POSTs to a token endpoint that carried a credential of kind (GrantSecret, GrantAssertion,
// GrantNone), or all of them for "", whatever the answer, faults included.
func (s *Server) Requests(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind == "" {
		n := 0
		for _, c := range s.requests {
			n += c
		}
		return n
	}
	return s.requests[kind]
}

// SetFault makes the server fail from now on as f says; SetFault(None) heals it.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// takeFault returns the fault for one request, using up one of its times.
func (s *Server) takeFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fault
	if s.fault.times > 0 {
		s.fault.times--
		if s.fault.times == 0 {
			s.fault = None
		}
	}
	return f
}

// newToken returns an opaque random token, as long as a real one is short.
func newToken() string {
	return rand.Text() + rand.Text() + rand.Text()
}

// loopbackClient fetches discovery documents from loopback addresses only, so that a token naming a real issuer
// never makes a test reach the internet.
func loopbackClient() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				return nil, &net.AddrError{Err: "not a loopback address", Addr: addr}
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{
		Transport:     transport,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
