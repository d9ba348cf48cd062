package entra_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/entra/entratest"
	"github.com/port-azure-relay/relay/shared/entra/ststest"
)

const (
	tenantID    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	clientID    = "a8fdfbd0-da97-42d9-8f1a-fd6a7cb650b4"
	fedClientID = "9d6c9d56-6a1c-4f7e-8a3c-4b1f2e0d7a11"
	secret      = "Qv8Q~s3cret.value_for-tests"
)

// sentinels are the package's errors; each failure must wrap exactly one.
var sentinels = []error{entra.ErrConfig, entra.ErrRefused, entra.ErrFederatedCredential, entra.ErrUnavailable,
	entra.ErrBadAnswer, entra.ErrFederationDisabled, entra.ErrAWSDenied, entra.ErrSTSRefused, entra.ErrSTSUnavailable}

// clock is a settable clock for the caches.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder is an AssertionSource that remembers what it returned, for the audit of error messages.
type recorder struct {
	src  entra.AssertionSource
	mu   sync.Mutex
	seen []string
}

func (r *recorder) Assertion(ctx context.Context) (string, error) {
	a, err := r.src.Assertion(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if a != "" {
		r.seen = append(r.seen, a)
	}
	return a, err
}

// fixture is Entra's stand-in with an app that has a secret, and one that signs in with the AWS role (STS's
// stand-in with federation on and the template's policy), and a client for both.
type fixture struct {
	t         *testing.T
	entra     *entratest.Server
	sts       *ststest.Server
	issuer    string
	clock     *clock
	source    *recorder
	assertion *entra.AWSAssertion
	client    *entra.Client
	secretApp entra.App
	fedApp    entra.App
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, entra: entratest.New(), sts: ststest.New(), clock: newClock()}
	t.Cleanup(f.entra.Close)
	t.Cleanup(f.sts.Close)
	f.issuer = f.sts.EnableFederation()
	f.sts.SetPolicy(entra.TokenExchangeAudience, entra.AssertionDurationSeconds)
	f.entra.AddApp(tenantID, clientID, secret)
	f.entra.AddApp(tenantID, fedClientID, "")
	f.assertion = &entra.AWSAssertion{STS: f.sts.Client(func(o *sts.Options) { o.RetryMaxAttempts = 1 }), Now: f.clock.Now}
	f.source = &recorder{src: f.assertion}
	f.client = &entra.Client{AuthorityHost: f.entra.URL, Assertion: f.source, Now: f.clock.Now}
	f.secretApp = entra.App{TenantID: tenantID, ClientID: clientID, ClientSecret: secret}
	f.fedApp = entra.App{TenantID: tenantID, ClientID: fedClientID}
	return f
}

// register adds the federated credential the relay's deployment creates: this account's issuer, the role, Entra's
// audience.
func (f *fixture) register() {
	f.entra.AddFederatedCredential(tenantID, fedClientID, f.issuer, ststest.DefaultRole, entra.TokenExchangeAudience)
}

func TestASecretGetsAnAzureDevOpsToken(t *testing.T) {
	f := newFixture(t)
	tok, err := f.client.Token(t.Context(), f.secretApp)
	if err != nil {
		t.Fatalf("Token() = %v", err)
	}
	if tenant, client, ok := f.entra.Valid(tok); !ok || tenant != tenantID || client != clientID {
		t.Errorf("Valid(token) = %q, %q, %v, want %s, %s, true", tenant, client, ok, tenantID, clientID)
	}
	if got := f.entra.Requests(entratest.GrantSecret); got != 1 {
		t.Errorf("Requests(GrantSecret) = %d, want 1", got)
	}
}

func TestAnAWSRoleGetsATokenWithoutASecret(t *testing.T) {
	f := newFixture(t)
	f.register()
	tok, err := f.client.Token(t.Context(), f.fedApp)
	if err != nil {
		t.Fatalf("Token() = %v", err)
	}
	if _, client, ok := f.entra.Valid(tok); !ok || client != fedClientID {
		t.Errorf("Valid(token) = %q, %v, want %s, true", client, ok, fedClientID)
	}
	if f.sts.Issued() != 1 || f.entra.Requests(entratest.GrantAssertion) != 1 || f.entra.Requests(entratest.GrantSecret) != 0 {
		t.Errorf("STS issued %d, Entra saw %d assertion and %d secret requests, want 1, 1, 0",
			f.sts.Issued(), f.entra.Requests(entratest.GrantAssertion), f.entra.Requests(entratest.GrantSecret))
	}
}

// A cold container whose invocations all need a token at once makes one STS call and one Entra call; later calls
// in the token's life make none; once it is within TokenMargin of its end, one of each again.
func TestConcurrentCallersShareOneSignIn(t *testing.T) {
	for _, federated := range []bool{false, true} {
		t.Run(fmt.Sprintf("federated=%v", federated), func(t *testing.T) {
			f := newFixture(t)
			f.register()
			app := f.secretApp
			if federated {
				app = f.fedApp
			}
			f.entra.SetFault(entratest.Slow(100 * time.Millisecond).Times(1)) // so that every caller arrives while it is in flight
			const callers = 50
			tokens := make([]string, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					tok, err := f.client.Token(context.Background(), app)
					if err != nil {
						t.Errorf("Token() = %v", err)
					}
					tokens[i] = tok
				})
			}
			wg.Wait()
			for _, tok := range tokens {
				if tok != tokens[0] {
					t.Fatalf("callers got different tokens")
				}
			}
			wantSTS := map[bool]int{false: 0, true: 1}[federated]
			if f.entra.Requests("") != 1 || f.sts.Calls() != wantSTS {
				t.Fatalf("%d callers: %d Entra requests, %d STS calls, want 1, %d", callers, f.entra.Requests(""), f.sts.Calls(), wantSTS)
			}

			// Entra's tokens last 3599 s and are used until 5 minutes before that.
			f.clock.Add(3599*time.Second - entra.TokenMargin - time.Second)
			if tok, err := f.client.Token(t.Context(), app); err != nil || tok != tokens[0] || f.entra.Requests("") != 1 {
				t.Fatalf("Token() within the life = %v, %d requests, want the same token from memory", err, f.entra.Requests(""))
			}
			f.clock.Add(time.Second)
			tok, err := f.client.Token(t.Context(), app)
			if err != nil || tok == tokens[0] || f.entra.Requests("") != 2 || f.sts.Calls() != 2*wantSTS {
				t.Fatalf("Token() at the margin = %v, %d Entra requests, %d STS calls, want a new token, 2, %d",
					err, f.entra.Requests(""), f.sts.Calls(), 2*wantSTS)
			}
		})
	}
}

func TestAShortLivedTokenIsUsedForHalfItsLife(t *testing.T) {
	f := newFixture(t)
	f.entra.SetTokenLifetime(2 * time.Minute)
	if _, err := f.client.Token(t.Context(), f.secretApp); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(59 * time.Second)
	f.client.Token(t.Context(), f.secretApp)
	f.clock.Add(time.Second)
	f.client.Token(t.Context(), f.secretApp)
	if got := f.entra.Requests(""); got != 2 {
		t.Errorf("requests after 0, 59 and 60 s of a 120 s token = %d, want 2", got)
	}
}

func TestARotatedSecretGetsItsOwnTokenAtOnce(t *testing.T) {
	f := newFixture(t)
	old, err := f.client.Token(t.Context(), f.secretApp)
	if err != nil {
		t.Fatal(err)
	}
	f.entra.AddApp(tenantID, clientID, "rotated-secret")
	rotated := f.secretApp
	rotated.ClientSecret = "rotated-secret"
	tok, err := f.client.Token(t.Context(), rotated)
	if err != nil || tok == old || f.entra.Requests(entratest.GrantSecret) != 2 {
		t.Fatalf("Token(rotated) = %v, %d requests, want a new token from a second request", err, f.entra.Requests(entratest.GrantSecret))
	}
	// The old secret's token is forgotten: asked for again, the old secret is sent again (and Entra, once the
	// secret is deleted, refuses it).
	f.entra.RemoveSecret(tenantID, clientID, secret)
	if _, err := f.client.Token(t.Context(), f.secretApp); !errors.Is(err, entra.ErrRefused) {
		t.Errorf("Token(old secret) after the rotation = %v, want %v", err, entra.ErrRefused)
	}
}

func TestInvalidateForgetsARefusedToken(t *testing.T) {
	f := newFixture(t)
	first, _ := f.client.Token(t.Context(), f.secretApp)
	f.client.Invalidate(f.secretApp, "a token it no longer holds")
	if tok, _ := f.client.Token(t.Context(), f.secretApp); tok != first || f.entra.Requests("") != 1 {
		t.Fatalf("after Invalidate(another token): %d requests, want the same token from memory", f.entra.Requests(""))
	}
	f.client.Invalidate(f.secretApp, first)
	second, err := f.client.Token(t.Context(), f.secretApp)
	if err != nil || second == first || f.entra.Requests("") != 2 {
		t.Fatalf("after Invalidate(token): %v, %d requests, want a new token", err, f.entra.Requests(""))
	}
	f.client.Invalidate(f.secretApp, first) // a second caller that saw the first token refused: no effect
	if tok, _ := f.client.Token(t.Context(), f.secretApp); tok != second {
		t.Error("Invalidate(an old token) dropped the new one")
	}
}

// Every failure wraps one sentinel that names the side that refused, carries Entra's code or STS's, and none of the
// credentials, tokens or Entra's description.
func TestEachFailureNamesTheSideThatRefused(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name      string
		federated bool
		setup     func(f *fixture)
		timeout   time.Duration
		want      error
		text      string // a part of the message
	}{
		{name: "an unknown tenant", setup: func(f *fixture) { f.secretApp.TenantID = "11111111-2222-3333-4444-555555555555" },
			want: entra.ErrRefused, text: "invalid_tenant AADSTS90002 (status 400)"},
		{name: "an unknown tenant domain", setup: func(f *fixture) { f.secretApp.TenantID = "fabrikam.onmicrosoft.com" },
			want: entra.ErrRefused, text: "AADSTS90002"},
		{name: "an application not in the tenant", setup: func(f *fixture) { f.secretApp.ClientID = "00000000-0000-0000-0000-000000000001" },
			want: entra.ErrRefused, text: "unauthorized_client AADSTS700016"},
		{name: "a wrong secret", setup: func(f *fixture) { f.secretApp.ClientSecret = "wrong-secret-value" },
			want: entra.ErrRefused, text: "invalid_client AADSTS7000215 (status 401)"},
		{name: "Entra failing", setup: func(f *fixture) { f.entra.SetFault(entratest.InternalError) },
			want: entra.ErrUnavailable, text: "server_error AADSTS50000 (status 500)"},
		{name: "Entra throttling", setup: func(f *fixture) { f.entra.SetFault(entratest.Throttle(time.Second)) },
			want: entra.ErrUnavailable, text: "(status 429)"},
		{name: "Entra dropping the connection", setup: func(f *fixture) { f.entra.SetFault(entratest.Down) },
			want: entra.ErrUnavailable, text: "request failed"},
		{name: "Entra not listening", setup: func(f *fixture) { f.client.AuthorityHost = closed.URL },
			want: entra.ErrUnavailable, text: "connection refused"},
		{name: "Entra slower than the deadline", setup: func(f *fixture) { f.entra.SetFault(entratest.Slow(time.Minute)) },
			timeout: 100 * time.Millisecond, want: entra.ErrUnavailable, text: "context deadline exceeded"},

		{name: "no federated credential yet", federated: true, setup: func(*fixture) {},
			want: entra.ErrFederatedCredential, text: "invalid_request AADSTS70021"},
		{name: "a federated credential for another role", federated: true, setup: func(f *fixture) {
			f.entra.AddFederatedCredential(tenantID, fedClientID, f.issuer, "arn:aws:iam::123456789012:role/other", entra.TokenExchangeAudience)
		}, want: entra.ErrFederatedCredential, text: "invalid_client AADSTS700213"},
		{name: "a federated credential for another issuer", federated: true, setup: func(f *fixture) {
			f.entra.AddFederatedCredential(tenantID, fedClientID, "https://abc123.tokens.sts.global.api.aws", ststest.DefaultRole, entra.TokenExchangeAudience)
		}, want: entra.ErrFederatedCredential, text: "AADSTS700211"},
		{name: "a federated credential for another audience", federated: true, setup: func(f *fixture) {
			f.entra.AddFederatedCredential(tenantID, fedClientID, f.issuer, ststest.DefaultRole, "api://other")
		}, want: entra.ErrFederatedCredential, text: "AADSTS700212"},
		{name: "an AWS token expired on arrival", federated: true, setup: func(f *fixture) {
			f.register()
			f.entra.SetClock(func() time.Time { return time.Now().Add(time.Hour) })
		}, want: entra.ErrFederatedCredential, text: "AADSTS700024"},
		{name: "federation off in the AWS account", federated: true, setup: func(f *fixture) {
			f.sts = ststest.New() // another account, where federation is off
			f.t.Cleanup(f.sts.Close)
			f.assertion.STS = f.sts.Client()
		}, want: entra.ErrFederationDisabled, text: "OutboundWebIdentityFederationDisabledException"},
		{name: "a policy for another audience", federated: true, setup: func(f *fixture) { f.sts.SetPolicy("api://other", 300) },
			want: entra.ErrAWSDenied, text: "AccessDenied"},
		{name: "a policy capping the duration below the request's", federated: true, setup: func(f *fixture) { f.sts.SetPolicy(entra.TokenExchangeAudience, 120) },
			want: entra.ErrAWSDenied, text: "AccessDenied"},
		{name: "STS throttling", federated: true, setup: func(f *fixture) { f.sts.SetFault(ststest.Throttle) },
			want: entra.ErrSTSUnavailable, text: "Throttling"},
		{name: "STS failing", federated: true, setup: func(f *fixture) { f.sts.SetFault(ststest.InternalError) },
			want: entra.ErrSTSUnavailable, text: "InternalFailure"},
		{name: "STS dropping the connection", federated: true, setup: func(f *fixture) { f.sts.SetFault(ststest.Down) },
			want: entra.ErrSTSUnavailable, text: "request failed"},
		{name: "STS refusing the function's own credentials", federated: true, setup: func(f *fixture) {
			cfg := aws.Config{Region: awstest.Region, Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, "wrong", "")}
			f.assertion.STS = sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(f.sts.URL) })
		}, want: entra.ErrSTSRefused, text: "SignatureDoesNotMatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.setup(f)
			app := f.secretApp
			if tt.federated {
				app = f.fedApp
			}
			ctx := t.Context()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			tok, err := f.client.Token(ctx, app)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) || tok != "" {
				t.Fatalf("Token() = %q, %v, want %v with %q", tok, err, tt.want, tt.text)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("Token() = %v also wraps %v", err, s)
				}
			}
			audit(t, err, f, app)
		})
	}
}

// audit fails if an error message shows a secret, an assertion, a token, or any of Entra's or STS's own text.
func audit(t *testing.T, err error, f *fixture, app entra.App) {
	t.Helper()
	msg := err.Error()
	forbidden := []string{secret, "wrong-secret-value", "Trace ID", "Correlation ID", "Ensure the secret",
		"No matching federated", "not authorized", "User: arn", "assumed-role", "validation error", "signature we calculated"}
	if app.ClientSecret != "" {
		forbidden = append(forbidden, app.ClientSecret)
	}
	f.source.mu.Lock()
	forbidden = append(forbidden, f.source.seen...)
	f.source.mu.Unlock()
	for _, s := range forbidden {
		if strings.Contains(msg, s) {
			t.Errorf("error %q shows %q", msg, s)
		}
	}
	// No JWT (header.payload.signature, base64url) and no opaque token of the stand-in's length either.
	for word := range strings.FieldsSeq(msg) {
		if strings.Count(word, ".") == 2 && len(word) > 100 || len(word) > 60 && !strings.Contains(word, "-") {
			t.Errorf("error %q has a token-like word %q", msg, word)
		}
	}
}

func TestAFailureIsRememberedBriefly(t *testing.T) {
	f := newFixture(t)
	app := f.secretApp
	app.ClientSecret = "wrong-secret-value"
	_, first := f.client.Token(t.Context(), app)
	_, second := f.client.Token(t.Context(), app)
	if !errors.Is(first, entra.ErrRefused) || second != first || f.entra.Requests("") != 1 {
		t.Fatalf("two Token() calls = %v, %v with %d requests, want one refusal remembered", first, second, f.entra.Requests(""))
	}
	f.clock.Add(entra.RetryAfterFailure)
	if _, err := f.client.Token(t.Context(), app); !errors.Is(err, entra.ErrRefused) || f.entra.Requests("") != 2 {
		t.Fatalf("after RetryAfterFailure: %v with %d requests, want Entra asked again", err, f.entra.Requests(""))
	}
}

func TestA429IsRememberedForItsRetryAfter(t *testing.T) {
	f := newFixture(t)
	f.entra.SetFault(entratest.Throttle(30 * time.Second).Times(1))
	if _, err := f.client.Token(t.Context(), f.secretApp); !errors.Is(err, entra.ErrUnavailable) {
		t.Fatalf("Token() = %v, want %v", err, entra.ErrUnavailable)
	}
	f.clock.Add(29 * time.Second)
	f.client.Token(t.Context(), f.secretApp)
	if f.entra.Requests("") != 1 {
		t.Fatalf("29 s after a 429 with Retry-After 30: %d requests, want 1", f.entra.Requests(""))
	}
	f.clock.Add(time.Second)
	if _, err := f.client.Token(t.Context(), f.secretApp); err != nil || f.entra.Requests("") != 2 {
		t.Fatalf("30 s after: %v with %d requests, want a token from a second request", err, f.entra.Requests(""))
	}
}

// The caller whose request is in flight may run out of time; the others, with time left, must not inherit its
// failure, nor must it be remembered.
func TestACutOffRequestIsNotRememberedForOthers(t *testing.T) {
	f := newFixture(t)
	f.entra.SetFault(entratest.Slow(time.Minute).Times(1))
	leaderCtx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	var leaderErr error
	done := make(chan struct{})
	go func() {
		_, leaderErr = f.client.Token(leaderCtx, f.secretApp)
		close(done)
	}()
	for f.entra.Requests("") == 0 { // the leader's request is in flight
		time.Sleep(time.Millisecond)
	}
	tok, err := f.client.Token(t.Context(), f.secretApp)
	<-done
	if !errors.Is(leaderErr, entra.ErrUnavailable) || !errors.Is(leaderErr, context.DeadlineExceeded) {
		t.Errorf("the leader's Token() = %v, want %v and the deadline", leaderErr, entra.ErrUnavailable)
	}
	if err != nil || tok == "" || f.entra.Requests("") != 2 {
		t.Fatalf("the waiter's Token() = %v with %d requests, want a token from a second request", err, f.entra.Requests(""))
	}
}

func TestAWaiterGivesUpOnItsOwnContext(t *testing.T) {
	f := newFixture(t)
	f.entra.SetFault(entratest.Slow(500 * time.Millisecond).Times(1))
	go f.client.Token(context.Background(), f.secretApp)
	for f.entra.Requests("") == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := f.client.Token(ctx, f.secretApp); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 400*time.Millisecond {
		t.Errorf("a waiter's Token() = %v after %v, want its own deadline, soon", err, time.Since(start))
	}
}

// answering is an Entra impostor: a server that answers every token request with one fixed answer.
func answering(t *testing.T, status int, contentType, body string, header ...string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestAnswersThatAreNotEntrasAreErrors(t *testing.T) {
	elsewhere, elsewhereHits := answering(t, 200, "application/json", `{"token_type":"Bearer","expires_in":3599,"access_token":"stolen"}`)
	tests := []struct {
		name, contentType, body string
		status                  int
		header                  []string
		want                    error
	}{
		{name: "a redirect is not followed: it would carry the secret elsewhere", status: http.StatusTemporaryRedirect,
			header: []string{"Location", elsewhere.URL + "/token"}, want: entra.ErrBadAnswer},
		{name: "an HTML sign-in page is not a token", status: 200, contentType: "text/html", body: "<html><body>Sign in</body></html>", want: entra.ErrBadAnswer},
		{name: "an HTML 400 is not Entra's refusal", status: 400, contentType: "text/html", body: "<html>Bad Request</html>", want: entra.ErrBadAnswer},
		{name: "an HTML 502 from a proxy is unavailability", status: 502, contentType: "text/html", body: "<html>Bad Gateway</html>", want: entra.ErrUnavailable},
		{name: "a 200 without a token", status: 200, contentType: "application/json", body: `{"token_type":"Bearer","expires_in":3599}`, want: entra.ErrBadAnswer},
		{name: "a token that is not a Bearer token", status: 200, contentType: "application/json",
			body: `{"token_type":"pop","expires_in":3599,"access_token":"eyJ0.eyJ1.c2ln"}`, want: entra.ErrBadAnswer},
		{name: "a token that would break the Authorization header", status: 200, contentType: "application/json",
			body: `{"token_type":"Bearer","expires_in":3599,"access_token":"abc\r\nX-Injected: 1"}`, want: entra.ErrBadAnswer},
		{name: "a token without expires_in", status: 200, contentType: "application/json",
			body: `{"token_type":"Bearer","access_token":"eyJ0.eyJ1.c2ln"}`, want: entra.ErrBadAnswer},
		{name: "an answer too large", status: 200, contentType: "application/json",
			body: `{"token_type":"Bearer","expires_in":3599,"access_token":"` + strings.Repeat("a", 70<<10) + `"}`, want: entra.ErrBadAnswer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := answering(t, tt.status, tt.contentType, tt.body, tt.header...)
			c := &entra.Client{AuthorityHost: srv.URL}
			tok, err := c.Token(t.Context(), entra.App{TenantID: tenantID, ClientID: clientID, ClientSecret: secret})
			if !errors.Is(err, tt.want) || tok != "" {
				t.Fatalf("Token() = %q, %v, want %v", tok, err, tt.want)
			}
			if strings.Contains(err.Error(), "html") || strings.Contains(err.Error(), "Sign in") {
				t.Errorf("error %q shows the answer", err)
			}
		})
	}
	if elsewhereHits.Load() != 0 {
		t.Errorf("the redirect's target was asked %d times, want 0", elsewhereHits.Load())
	}
}

// Entra's v1 endpoint sent expires_in as a string: it is still a number of seconds.
func TestExpiresInAsAStringIsRead(t *testing.T) {
	srv, hits := answering(t, 200, "application/json", `{"token_type":"Bearer","expires_in":"3599","access_token":"eyJ0.eyJ1.c2ln"}`)
	c := &entra.Client{AuthorityHost: srv.URL}
	app := entra.App{TenantID: tenantID, ClientID: clientID, ClientSecret: secret}
	for range 2 {
		if tok, err := c.Token(t.Context(), app); err != nil || tok != "eyJ0.eyJ1.c2ln" {
			t.Fatalf("Token() = %q, %v", tok, err)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("%d requests, want 1", hits.Load())
	}
}

func TestTheConfigurationIsCheckedBeforeAnyRequest(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		host   string
		app    entra.App
		noAsrt bool
	}{
		{name: "a tenant that would change the path", app: entra.App{TenantID: "../evil", ClientID: clientID, ClientSecret: secret}},
		{name: "a tenant with a query", app: entra.App{TenantID: "contoso.com?x=1", ClientID: clientID, ClientSecret: secret}},
		{name: "a single-label tenant", app: entra.App{TenantID: "common", ClientID: clientID, ClientSecret: secret}},
		{name: "an empty tenant", app: entra.App{ClientID: clientID, ClientSecret: secret}},
		{name: "a domain label starting with a hyphen", app: entra.App{TenantID: "-contoso.com", ClientID: clientID, ClientSecret: secret}},
		{name: "a client id that is not a GUID", app: entra.App{TenantID: tenantID, ClientID: "my-app", ClientSecret: secret}},
		{name: "the secret in the client id's place", app: entra.App{TenantID: tenantID, ClientID: secret, ClientSecret: clientID}},
		{name: "the secret in the tenant's place", app: entra.App{TenantID: secret, ClientID: clientID, ClientSecret: tenantID}},
		{name: "a GUID with a wrong separator", app: entra.App{TenantID: tenantID, ClientID: strings.Replace(clientID, "-", "_", 1), ClientSecret: secret}},
		{name: "no secret and no assertion source", app: entra.App{TenantID: tenantID, ClientID: clientID}, noAsrt: true},
		{name: "an http authority off loopback", host: "http://login.microsoftonline.com", app: entra.App{TenantID: tenantID, ClientID: clientID, ClientSecret: secret}},
		{name: "an authority with a path", host: f.entra.URL + "/common", app: entra.App{TenantID: tenantID, ClientID: clientID, ClientSecret: secret}},
		{name: "an authority that is not a URL", host: "login.microsoftonline.com", app: entra.App{TenantID: tenantID, ClientID: clientID, ClientSecret: secret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &entra.Client{AuthorityHost: f.entra.URL, Assertion: f.source}
			if tt.host != "" {
				c.AuthorityHost = tt.host
			}
			if tt.noAsrt {
				c.Assertion = nil
			}
			if _, err := c.Token(t.Context(), tt.app); !errors.Is(err, entra.ErrConfig) {
				t.Errorf("Token(%v) = %v, want %v", tt.app, err, entra.ErrConfig)
			} else if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
	if f.entra.Requests("") != 0 || f.sts.Calls() != 0 {
		t.Errorf("%d Entra requests, %d STS calls, want none", f.entra.Requests(""), f.sts.Calls())
	}
}

func TestTheDefaultAuthorityHostIsEntrasGlobalCloud(t *testing.T) {
	var got string
	c := &entra.Client{HTTP: &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		got = r.URL.String()
		return nil, errors.New("offline")
	})}}
	c.Token(t.Context(), entra.App{TenantID: "contoso.onmicrosoft.com", ClientID: clientID, ClientSecret: secret})
	if want := "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"; got != want {
		t.Errorf("token request to %q, want %q", got, want)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestAnAppNeverPrintsItsSecret(t *testing.T) {
	app := entra.App{TenantID: tenantID, ClientID: clientID, ClientSecret: secret}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, app); strings.Contains(s, secret) || !strings.Contains(s, clientID) {
			t.Errorf("Sprintf(%s, app) = %q, want the client id and no secret", verb, s)
		}
	}
}

// A token being renewed while Entra is down still has minutes left: it is served on
// until it ends, and Entra asked again each RetryAfterFailure.
func TestATokenWithTimeLeftOutlivesEntraBeingDown(t *testing.T) {
	f := newFixture(t)
	f.entra.SetTokenLifetime(time.Hour)
	first, err := f.client.Token(t.Context(), f.secretApp)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(56 * time.Minute) // past the margin: renewed
	f.entra.SetFault(entratest.InternalError)
	if tok, err := f.client.Token(t.Context(), f.secretApp); err != nil || tok != first || f.entra.Requests("") != 2 {
		t.Fatalf("renewal while Entra fails: same token %v, %v, %d requests; want the token in hand, Entra asked once more", tok == first, err, f.entra.Requests(""))
	}
	f.clock.Add(entra.RetryAfterFailure / 2)
	f.client.Token(t.Context(), f.secretApp)
	if got := f.entra.Requests(""); got != 2 {
		t.Errorf("within RetryAfterFailure: %d requests, want Entra left alone", got)
	}
	f.clock.Add(entra.RetryAfterFailure)
	if tok, err := f.client.Token(t.Context(), f.secretApp); err != nil || tok != first || f.entra.Requests("") != 3 {
		t.Errorf("after RetryAfterFailure: same token %v, %v, %d requests; want Entra asked again, the token still served", tok == first, err, f.entra.Requests(""))
	}
	f.clock.Add(4 * time.Minute) // the token has ended
	if _, err := f.client.Token(t.Context(), f.secretApp); !errors.Is(err, entra.ErrUnavailable) {
		t.Errorf("after the token ended: %v, want ErrUnavailable", err)
	}
	f.entra.SetFault(entratest.None)
	f.clock.Add(entra.RetryAfterFailure)
	if tok, err := f.client.Token(t.Context(), f.secretApp); err != nil || tok == first {
		t.Errorf("Entra back: %v, new token %v; want a new token", err, tok != first)
	}
}
