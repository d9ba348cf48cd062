// Package ststest runs a local AWS STS endpoint for tests, demos and benchmarks: GetWebIdentityToken, the operation
// of IAM outbound identity federation, with the OIDC discovery document and keys that let an outside service (Entra,
// here entratest) verify the tokens it issues.
//
// It speaks what the SDK sends and reads: the Query protocol (POST, application/x-www-form-urlencoded, Action,
// Version=2011-06-15, Audience.member.N, SigningAlgorithm, DurationSeconds, Tags.member.N.Key/Value) signed with
// Signature Version 4 for service sts (awstest.Verify, its refusals renamed to the Query protocol's codes:
// MissingAuthenticationToken, InvalidClientTokenId, IncompleteSignature, SignatureDoesNotMatch), answered in STS's
// XML (GetWebIdentityTokenResponse, GetWebIdentityTokenResult, WebIdentityToken, Expiration; errors as
// ErrorResponse/Error/Type, Code, Message and RequestId, with the x-amzn-RequestId header the SDK reads). Its rules
// are STS's:
//
//   - federation is off until EnableFederation: 403 OutboundWebIdentityFederationDisabledException, the SDK's
//     *types.OutboundWebIdentityFederationDisabledException;
//   - Audience 1 to 10 members of 1 to 1000 characters, SigningAlgorithm RS256 or ES384, DurationSeconds 60 to 3600
//     (300 when absent): else 400 ValidationError;
//   - the caller's identity policy (SetPolicy) as IAM evaluates the template's conditions ForAllValues:StringEquals
//     sts:IdentityTokenAudience and NumericLessThanEquals sts:DurationSeconds: else 403 AccessDenied;
//   - no Action: 400 MissingAction; another Action, or another Version: 400 InvalidAction.
//
// A token is a JWT signed with the algorithm asked for (RS256 or ES384), with a kid, and the claims AWS documents:
// iss (the issuer EnableFederation returns: this server's URL and an account path), sub (the role's ARN, SetRole),
// aud (a string for one audience, else an array), iat, nbf, exp, jti, and under "https://sts.amazonaws.com/" the
// aws_account, source_region, principal_id and request_tags. {iss}/.well-known/openid-configuration and
// {iss}/.well-known/jwks.json serve the keys.
//
// It does not model: GET requests with the query in the URL, session tokens and SessionDurationEscalationException,
// JWTPayloadSizeExceededException, organisations and principal tags, the global endpoint's refusal, and the other
// STS operations (InvalidAction here). All servers of a process share one key pair per algorithm (generating RSA
// keys is slow); each has its own kid and issuer.
package ststest

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/port-azure-relay/relay/shared/awstest"
)

// DefaultRole is the caller's role until SetRole: the relay's function role as the template names it.
const DefaultRole = "arn:aws:iam::" + awstest.AccountID + ":role/relay-RelayFunctionRole-XYZ"

// A Fault is a failure the server injects on the STS API (not on the issuer's discovery), set with SetFault
// (awstest.Fault: Times limits it).
type Fault = awstest.Fault

// The faults the server can inject.
var (
	// None answers normally.
	None = awstest.None
	// Down closes every connection without answering, like an unreachable endpoint.
	Down = awstest.Down
	// Throttle answers 400 Throttling, which the SDK retries with backoff.
	Throttle = Fault{Kind: "throttle"}
	// InternalError answers 500 InternalFailure, which the SDK retries.
	InternalError = Fault{Kind: "internal"}
)

// Slow delays each answer by d, or until the client gives up.
func Slow(d time.Duration) Fault { return awstest.Slow(d) }

// Server is an STS endpoint that answers GetWebIdentityToken, and the issuer of its tokens. It is safe for
// concurrent use.
type Server struct {
	// URL is the endpoint's base URL, http://127.0.0.1:port, for BaseEndpoint or AWS_ENDPOINT_URL_STS.
	URL string

	srv    *httptest.Server
	done   chan struct{}
	keys   *keySet
	calls  atomic.Int64
	issued atomic.Int64
	faults awstest.Faults

	mu      sync.Mutex
	issuer  string // "" while federation is off
	role    string
	policy  *policy // nil: a policy allowing sts:GetWebIdentityToken without conditions
	account string
}

// policy is the caller's identity policy: Allow sts:GetWebIdentityToken on the template's two conditions.
type policy struct {
	audience    string
	maxDuration int
}

// New starts a server on 127.0.0.1 with a random port. Close it when done.
func New() *Server {
	s := newServer()
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// NewTLS is New over HTTPS, as AWS serves it, with config's certificate (httptest's own when config has none). A
// verifier of its tokens then needs a client that trusts that certificate.
func NewTLS(config *tls.Config) *Server {
	s := newServer()
	s.srv.TLS = config
	s.srv.StartTLS()
	s.URL = s.srv.URL
	return s
}

func newServer() *Server {
	s := &Server{done: make(chan struct{}), keys: newKeySet(), role: DefaultRole, account: awstest.AccountID}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	return s
}

// Close stops the server and waits for answers in progress.
func (s *Server) Close() {
	close(s.done)
	s.srv.Close()
}

// Env returns the KEY=VALUE lines that point the real SDK in a child process at this server, with the test
// account's credentials (awstest.Env).
func (s *Server) Env() []string {
	return append(awstest.Env(), "AWS_ENDPOINT_URL_STS="+s.URL)
}

// EnableFederation turns on outbound identity federation for the account, as IAM's
// EnableOutboundWebIdentityFederation does, and returns the account's issuer URL (the same on every call; AWS
// answers FeatureEnabled to a second one).
func (s *Server) EnableFederation() (issuer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.issuer == "" {
		s.issuer = s.URL + "/" + s.keys.issuerID
	}
	return s.issuer
}

// SetRole sets the ARN of the role the caller's credentials belong to: the token's subject.
func (s *Server) SetRole(arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.role = arn
}

// SetPolicy gives the caller's role the template's policy: sts:GetWebIdentityToken allowed only when every
// requested audience equals audience and DurationSeconds is at most maxDuration. As IAM evaluates a numeric
// condition, a request without DurationSeconds lacks the key and is denied; SetPolicy("", 0) allows nothing. Until
// it is called, the role may call GetWebIdentityToken without conditions.
func (s *Server) SetPolicy(audience string, maxDuration int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = &policy{audience: audience, maxDuration: maxDuration}
}

// Calls counts the GetWebIdentityToken requests that passed authentication, faulted or not.
func (s *Server) Calls() int { return int(s.calls.Load()) }

// Issued counts the tokens the server issued.
func (s *Server) Issued() int { return int(s.issued.Load()) }

// SetFault makes the server fail from now on as f says; SetFault(None) heals it.
func (s *Server) SetFault(f Fault) { s.faults.Set(f) }

// inject waits or fails as the fault says; a nil result means answer normally.
func (s *Server) inject(ctx context.Context, f Fault) *awstest.Error {
	f.Wait(ctx, s.done)
	switch f.Kind {
	case "throttle":
		return errThrottled
	case "internal":
		return errInternal
	}
	return nil
}
