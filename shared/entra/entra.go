// Package entra gets Azure DevOps access tokens from Microsoft Entra ID for a service principal, signing in with a
// client secret or, with no secret stored, with a token AWS STS issues for the function's role.
package entra

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// DefaultAuthorityHost is Entra's global cloud; AZURE_AUTHORITY_HOST names another (e.g. https://login.microsoftonline.us).
	DefaultAuthorityHost = "https://login.microsoftonline.com"
	// AzureDevOpsScope asks for a token for Azure DevOps (its resource id) with the application permissions granted to
	// the service principal: the client credentials grant accepts only a resource's /.default.
	AzureDevOpsScope = "499b84ac-1321-427f-aa17-267ca6975798/.default"
	// jwtBearer is the client_assertion_type of a federated (or certificate) credential.
	jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// Entra's tokens last about an hour (expires_in 3599). A token is used until TokenMargin before it ends, so that a
// request made with it does not reach Azure DevOps expired; a token that lives less than twice the margin is used
// for half its life.
const TokenMargin = 5 * time.Minute

// RetryAfterFailure is how long a failed sign-in is answered from memory, without asking Entra (or STS) again: a
// burst of invocations with a wrong credential makes one request, not one each, and a fix (a new federated credential,
// a corrected secret) is seen within seconds. A 429's Retry-After lengthens it, up to a minute. A request that the
// caller's context cut off is not remembered. A rotated secret is a new App: it is tried at once.
const RetryAfterFailure = 10 * time.Second

const (
	maxRetryAfter = time.Minute
	maxAnswer     = 64 << 10 // Entra's answers are a few kB; more is not Entra
)

// Errors returned by Client and AWSAssertion, wrapped with context; test for them with errors.Is. The text adds the
// tenant and client id, Entra's OAuth error code and AADSTS number, or STS's error code, and never a secret, an
// assertion, a token or Entra's error_description (it quotes the presented assertion's subject and the app). Each
// names the side that refused, so that a caller can say in one sentence what to fix: the client credentials in Entra
// (ErrRefused), the federated credential in Entra (ErrFederatedCredential), the AWS account's setting
// (ErrFederationDisabled) or the role's IAM policy (ErrAWSDenied); or that a service is down.
var (
	// ErrConfig means the tenant (a GUID or a DNS domain), the client id (a GUID), the authority host (https) or the
	// credential (a secret, or an assertion source for none) is unusable. No request was made.
	ErrConfig = errors.New("invalid Entra configuration")
	// ErrRefused means Entra refused the client credentials: an unknown tenant (AADSTS90002), an application not in it
	// (AADSTS700016), a wrong or expired secret (AADSTS7000215), a scope the application cannot have, or another
	// invalid_client, unauthorized_client, invalid_request or invalid_scope answer.
	ErrRefused = errors.New("client credentials refused by Entra")
	// ErrFederatedCredential means Entra refused the AWS token: no federated identity credential on the application
	// has its issuer (AADSTS700211), its subject, the role's ARN (AADSTS700213), or its audience (AADSTS700212); the
	// application has none Entra can see yet (AADSTS70021, also answered for a few minutes after a credential is
	// added, until it replicates); or the token's signature or lifetime is wrong (AADSTS700027, 7000272, 700024).
	ErrFederatedCredential = errors.New("no federated identity credential in Entra accepts the AWS token")
	// ErrUnavailable means Entra could not be reached, answered 429 or 5xx, or could not reach AWS's OIDC discovery
	// (AADSTS50166): trying again later may succeed.
	ErrUnavailable = errors.New("the Entra ID token endpoint is unavailable")
	// ErrBadAnswer means the answer was not the JSON Entra documents: an HTML page, a redirect (never followed: it
	// would carry the client secret elsewhere), a body too large, or no usable access token.
	ErrBadAnswer = errors.New("unreadable answer from the Entra ID token endpoint")
	// ErrFederationDisabled means the AWS account has outbound identity federation turned off
	// (OutboundWebIdentityFederationDisabledException): an account setting, turned on once with
	// EnableOutboundWebIdentityFederation.
	ErrFederationDisabled = errors.New("outbound identity federation is disabled in the AWS account")
	// ErrAWSDenied means IAM denied sts:GetWebIdentityToken (AccessDenied): the role's policy lacks the action, or
	// its conditions (sts:IdentityTokenAudience, sts:DurationSeconds) exclude the request.
	ErrAWSDenied = errors.New("AWS denied sts:GetWebIdentityToken to the function's role")
	// ErrSTSRefused means STS refused GetWebIdentityToken for another reason: a validation error, or the function's
	// own credentials.
	ErrSTSRefused = errors.New("AWS STS refused GetWebIdentityToken")
	// ErrSTSUnavailable means STS could not be reached, throttled the request or answered 5xx: trying again later may
	// succeed.
	ErrSTSUnavailable = errors.New("AWS STS is unavailable")
)

// App is a service principal: the tenant it lives in, its application (client) id and its client secret. An empty
// ClientSecret means the federated credential: no secret is stored, and Client.Assertion signs in.
type App struct {
	TenantID, ClientID, ClientSecret string
}

// String names the app without its secret, so that printing an App (%v, %+v) shows none.
func (a App) String() string { return "client " + a.ClientID + " in tenant " + a.TenantID }

// GoString is String for %#v.
func (a App) GoString() string { return "entra.App{" + a.String() + "}" }

// An AssertionSource signs in an App that has no secret: it returns a JWT whose issuer, subject and audience match a
// federated identity credential on the application. AWSAssertion is one.
type AssertionSource interface {
	Assertion(ctx context.Context) (string, error)
}

// Client gets tokens from Entra's token endpoint with the client credentials grant. The zero value is ready to use
// (for Apps with a secret) and safe for concurrent use. It keeps one token per App until TokenMargin before it
// expires, and concurrent callers for the same App share one request. Deadlines come from the caller's context;
// nothing is retried (see RetryAfterFailure).
type Client struct {
	AuthorityHost string           // empty means DefaultAuthorityHost; https, or http to a loopback address for tests
	HTTP          *http.Client     // nil means http.DefaultClient; redirects are refused either way
	Assertion     AssertionSource  // signs in Apps without a secret
	Now           func() time.Time // nil means time.Now

	httpOnce sync.Once
	hc       *http.Client

	mu    sync.Mutex
	cache map[cacheKey]*entry
}

// cacheKey names one credential: a rotated secret is another key, so it gets its own token at once.
type cacheKey struct {
	tenant, client string
	secret         [sha256.Size]byte // of the secret, so that the map holds no secret; zero for the federated credential
}

// entry is one sign-in, in flight until done is closed; then token or err, used until until.
type entry struct {
	done    chan struct{}
	token   string
	err     error
	until   time.Time
	expires time.Time // when token itself ends, past the margin
	cut     bool      // the leader's context ended the request: nothing to remember, the waiters ask again
	// last is the token this sign-in renews, still good until last.expires: served on
	// while Entra cannot be reached, rather than failing with a token in hand.
	last *entry
}

// Token returns an access token for Azure DevOps for app, from memory while it lasts. Its errors wrap one of the
// package's sentinels.
func (c *Client) Token(ctx context.Context, app App) (string, error) {
	host, err := c.authority()
	if err != nil {
		return "", err
	}
	if err := c.check(app); err != nil {
		return "", err
	}
	key := keyOf(app)
	for {
		e, leader := c.join(key)
		if leader {
			return c.fetch(ctx, host, app, key, e)
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return "", fmt.Errorf("entra: token for %s: %w: %w", app, ErrUnavailable, ctx.Err())
		}
		if !e.cut {
			return e.token, e.err
		}
	}
}

// Invalidate forgets token, the one Token returned for app, after Azure DevOps refused it: the next Token asks Entra.
// A token that is no longer the remembered one (another caller already replaced it) is ignored.
func (c *Client) Invalidate(app App, token string) {
	key := keyOf(app)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.cache[key]; e != nil && isDone(e) && e.err == nil && e.token == token {
		delete(c.cache, key)
	}
}

// join returns the remembered or in-flight sign-in for key, or a new one that the caller (the leader) must fetch.
func (c *Client) join(key cacheKey) (e *entry, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.cache[key]; e != nil && (!isDone(e) || c.now().Before(e.until)) {
		return e, false
	}
	if c.cache == nil {
		c.cache = make(map[cacheKey]*entry)
	}
	e = &entry{done: make(chan struct{})}
	if old := c.cache[key]; old != nil && isDone(old) && old.token != "" && c.now().Before(old.expires) {
		e.last = old
	}
	// The App's other secrets are old ones: forget their tokens.
	for k := range c.cache {
		if k.tenant == key.tenant && k.client == key.client {
			delete(c.cache, k)
		}
	}
	c.cache[key] = e
	return e, true
}

func isDone(e *entry) bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// fetch asks Entra, then records the outcome in e for the callers waiting on it.
func (c *Client) fetch(ctx context.Context, host string, app App, key cacheKey, e *entry) (string, error) {
	start := c.now()
	tok, life, hold, err := c.request(ctx, host, app)
	if err != nil {
		err = fmt.Errorf("entra: token for %s: %w", app, err)
	}
	c.mu.Lock()
	switch {
	case err == nil:
		e.token, e.until, e.expires = tok, start.Add(life-min(TokenMargin, life/2)), start.Add(life)
	case (errors.Is(err, ErrUnavailable) || errors.Is(err, ErrSTSUnavailable)) && e.last != nil && start.Before(e.last.expires):
		// Entra is down, and the token it renews has time left: use that, asking again
		// after hold (or when it ends).
		tok, err = e.last.token, nil
		e.token, e.expires = tok, e.last.expires
		e.until = start.Add(hold)
		if e.until.After(e.expires) || hold <= 0 {
			e.until = e.expires
		}
	case ctx.Err() != nil:
		e.cut = true
		if c.cache[key] == e {
			delete(c.cache, key)
		}
	default:
		e.err, e.until = err, start.Add(hold)
	}
	e.last = nil
	c.mu.Unlock()
	close(e.done)
	return tok, err
}

// request makes one token request: POST {host}/{tenant}/oauth2/v2.0/token. It returns the token and its life, or an
// error and how long to remember it.
func (c *Client) request(ctx context.Context, host string, app App) (string, time.Duration, time.Duration, error) {
	form := url.Values{
		"grant_type": {"client_credentials"},
		"client_id":  {app.ClientID},
		"scope":      {AzureDevOpsScope},
	}
	if app.ClientSecret != "" {
		form.Set("client_secret", app.ClientSecret)
	} else {
		assertion, err := c.Assertion.Assertion(ctx)
		if err != nil {
			return "", 0, RetryAfterFailure, fmt.Errorf("AWS web identity token: %w", err)
		}
		form.Set("client_assertion_type", jwtBearer)
		form.Set("client_assertion", assertion)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, host+"/"+app.TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, RetryAfterFailure, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return "", 0, RetryAfterFailure, fmt.Errorf("%w: %w", ErrUnavailable, transportError(ctx, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return "", 0, RetryAfterFailure, fmt.Errorf("%w: reading the answer: %w", ErrUnavailable, transportError(ctx, err))
	}
	if len(body) > maxAnswer {
		return "", 0, RetryAfterFailure, fmt.Errorf("%w: answer larger than %d bytes (status %d)", ErrBadAnswer, maxAnswer, resp.StatusCode)
	}
	if resp.StatusCode == http.StatusOK {
		tok, life, err := parseToken(body)
		if err != nil {
			return "", 0, RetryAfterFailure, fmt.Errorf("%w: %w", ErrBadAnswer, err)
		}
		return tok, life, 0, nil
	}
	return "", 0, hold(resp), refusal(resp.StatusCode, body)
}

// refusal classifies an answer other than 200 by its status and Entra's error code and AADSTS number.
func refusal(status int, body []byte) error {
	code, aadsts, ok := parseError(body)
	what := fmt.Sprintf("status %d", status)
	if ok {
		what = describe(code, aadsts) + " (" + what + ")"
	}
	switch {
	case status == http.StatusTooManyRequests || status >= 500 || aadsts == 50166 || aadsts == 90061:
		return fmt.Errorf("%w: %s", ErrUnavailable, what)
	case !ok:
		return fmt.Errorf("%w: not Entra's JSON error (status %d)", ErrBadAnswer, status)
	case federationCode(aadsts):
		return fmt.Errorf("%w: %s", ErrFederatedCredential, what)
	case status >= 400:
		return fmt.Errorf("%w: %s", ErrRefused, what)
	default: // 1xx, 2xx other than 200, 3xx: a redirect is not followed
		return fmt.Errorf("%w: %s", ErrBadAnswer, what)
	}
}

// federationCode tells the AADSTS numbers that concern the federated credential or the presented token.
func federationCode(n int) bool {
	switch n {
	case 70021, // no federated identity credential matches (or none has replicated yet)
		700211, 700212, 700213, // no match for the issuer, the audience, the subject
		7002137, 7002138, // subject variants
		700024,  // the assertion is outside its valid time range
		700027,  // the assertion's signature is invalid
		7000272, // the signing key is not in the issuer's metadata
		50027:   // the assertion is not a well-formed JWT
		return true
	}
	return false
}

// hold is how long a refusal is remembered: RetryAfterFailure, or a 429's Retry-After up to a minute.
func hold(resp *http.Response) time.Duration {
	d := RetryAfterFailure
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if ra := retryAfter(resp.Header.Get("Retry-After")); ra > d {
			d = min(ra, maxRetryAfter)
		}
	}
	return d
}

// retryAfter reads Retry-After in seconds or as an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return time.Duration(min(max(secs, 0), 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// check validates app before any request: the tenant and client id go into the URL and the form.
func (c *Client) check(app App) error {
	switch {
	case !validTenant(app.TenantID):
		// The value is not quoted: a misplaced secret (azureClientSecret in the wrong key) must not reach a log.
		return fmt.Errorf("entra: %w: the tenant (azureTenantId, %d characters) is neither a GUID nor a DNS domain", ErrConfig, len(app.TenantID))
	case !validGUID(app.ClientID):
		return fmt.Errorf("entra: %w: the client id (azureClientId, %d characters) is not a GUID", ErrConfig, len(app.ClientID))
	case app.ClientSecret == "" && c.Assertion == nil:
		return fmt.Errorf("entra: %w: %s has no client secret and the client no assertion source", ErrConfig, app)
	}
	return nil
}

// authority returns the authority host without a trailing slash. It must be https (a secret travels in the body),
// or http to a loopback address, which tests use; a path would change the token endpoint.
func (c *Client) authority() (string, error) {
	host := c.AuthorityHost
	if host == "" {
		host = DefaultAuthorityHost
	}
	u, err := url.Parse(host)
	bad := err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" ||
		!(u.Scheme == "https" || u.Scheme == "http" && loopback(u.Hostname()))
	if bad {
		return "", fmt.Errorf("entra: %w: authority host %q is not an https origin", ErrConfig, host)
	}
	return u.Scheme + "://" + u.Host, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func keyOf(app App) cacheKey {
	k := cacheKey{tenant: strings.ToLower(app.TenantID), client: strings.ToLower(app.ClientID)}
	if app.ClientSecret != "" {
		k.secret = sha256.Sum256([]byte(app.ClientSecret))
	}
	return k
}

// validGUID matches 8-4-4-4-12 hex digits, Entra's form of tenant and application ids.
func validGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// validTenant accepts a GUID or a DNS domain of two labels or more (contoso.onmicrosoft.com), nothing that could
// change the token endpoint's path. The single labels common, organizations and consumers name no tenant, and the
// client credentials grant needs one.
func validTenant(s string) bool {
	if validGUID(s) {
		return true
	}
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// transportError names the class of a failed request (the context's own error when it ended) without the
// transport's text, which holds the URL.
func transportError(ctx context.Context, err error) error {
	var timeout interface{ Timeout() bool }
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.As(err, &timeout) && timeout.Timeout():
		return errors.New("timed out")
	default:
		return errors.New("request failed")
	}
}

// httpClient is c.HTTP refusing redirects: Entra's token endpoint does not redirect, and following one would send
// the client secret or the assertion to whatever host it names.
func (c *Client) httpClient() *http.Client {
	c.httpOnce.Do(func() {
		base := http.DefaultClient
		if c.HTTP != nil {
			base = c.HTTP
		}
		hc := *base
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		c.hc = &hc
	})
	return c.hc
}

func (c *Client) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// Errors lists the package's sentinel errors, for the answer tables of the functions
// that meet them: a test fails when one has no answer.
var Errors = []error{
	ErrConfig, ErrRefused, ErrFederatedCredential, ErrUnavailable, ErrBadAnswer, ErrFederationDisabled, ErrAWSDenied, ErrSTSRefused, ErrSTSUnavailable,
}
