// Package secret reads Port's credentials from AWS Secrets Manager and keeps them
// for a while, so that warm invocations do not call Secrets Manager again.
package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

// DefaultTTL is how long a secret read is reused. A rotated secret reaches every
// container within this time, or at once through Renew.
const DefaultTTL = 5 * time.Minute

// MinRenewAge is how old a cached value must be before Renew reads it again: a
// caller sending bad signatures can cause at most one read per container this often.
const MinRenewAge = 30 * time.Second

// Errors returned by Source.Get and Parse. None of them carries the secret's value.
var (
	ErrUnavailable = errors.New("secret could not be read")
	ErrNotFound    = errors.New("secret not found")
	ErrEmpty       = errors.New("secret is empty")
	ErrMalformed   = errors.New("secret JSON has no clientSecret string")
)

// Credentials are what the secret holds: Port's clientSecret, and its clientId when
// the relay is to report back to Port.
type Credentials struct {
	ClientID     string
	ClientSecret string
	// ServiceHookPassword is the Basic auth password Azure DevOps' service hook sends
	// the status function; empty when the secret has none.
	ServiceHookPassword string
}

// Getter is the one Secrets Manager call the relay makes; *secretsmanager.Client has it.
type Getter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Source reads one secret and caches it for TTL. It is safe for concurrent use:
// concurrent callers on a cold cache share one GetSecretValue call.
type Source struct {
	client Getter
	id     string
	ttl    time.Duration
	now    func() time.Time

	mu       sync.Mutex
	creds    Credentials
	fetched  time.Time // when creds were read
	expires  time.Time
	inflight *fetch
}

type fetch struct {
	done  chan struct{}
	creds Credentials
	err   error
}

// NewSource returns a Source for the secret id (a name or an ARN). A ttl of zero or
// less uses DefaultTTL; now is the clock, nil for time.Now.
func NewSource(client Getter, id string, ttl time.Duration, now func() time.Time) *Source {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Source{client: client, id: id, ttl: ttl, now: now}
}

// ID returns the secret id the source reads, for logs.
func (s *Source) ID() string { return s.id }

// Get returns the credentials, from the cache while it is fresh.
func (s *Source) Get(ctx context.Context) (Credentials, error) {
	s.mu.Lock()
	if !s.expires.IsZero() && s.now().Before(s.expires) {
		creds := s.creds
		s.mu.Unlock()
		return creds, nil
	}
	f := s.inflight
	if f == nil {
		f = &fetch{done: make(chan struct{})}
		s.inflight = f
		s.mu.Unlock()
		f.creds, f.err = s.read(ctx)
		s.mu.Lock()
		if f.err == nil {
			s.creds, s.fetched = f.creds, s.now()
			s.expires = s.fetched.Add(s.ttl)
		}
		s.inflight = nil
		s.mu.Unlock()
		close(f.done)
		return f.creds, f.err
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.creds, f.err
	case <-ctx.Done():
		return Credentials{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// Renew reads the secret again, unless the cached value is younger than
// MinRenewAge, and reports whether it changed: for when Port's signature does not
// verify, which a rotation of Port's credentials causes.
func (s *Source) Renew(ctx context.Context) (Credentials, bool, error) {
	s.mu.Lock()
	old, fetched := s.creds, s.fetched
	recent := !fetched.IsZero() && s.now().Sub(fetched) < MinRenewAge
	if !recent {
		s.expires = time.Time{}
	}
	s.mu.Unlock()
	if recent {
		return old, false, nil
	}
	creds, err := s.Get(ctx)
	if err != nil {
		return old, false, err
	}
	return creds, creds != old, nil
}

// Invalidate drops the cached value, so the next Get reads the secret again: for
// when Azure DevOps says the signature does not match, which a rotation causes.
func (s *Source) Invalidate() {
	s.mu.Lock()
	s.expires = time.Time{}
	s.mu.Unlock()
}

func (s *Source) read(ctx context.Context) (Credentials, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &s.id})
	if err != nil {
		var notFound *types.ResourceNotFoundException
		if errors.As(err, &notFound) {
			return Credentials{}, ErrNotFound
		}
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			return Credentials{}, fmt.Errorf("%w: %s", ErrUnavailable, apiErr.ErrorCode())
		}
		if ctx.Err() != nil {
			return Credentials{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		return Credentials{}, fmt.Errorf("%w: %s", ErrUnavailable, transportError(err))
	}
	if out.SecretString == nil {
		return Credentials{}, fmt.Errorf("%w: no SecretString (binary secrets are not supported)", ErrEmpty)
	}
	return Parse(*out.SecretString)
}

// transportError names the class of a network failure without repeating the SDK's
// text, which carries the endpoint and request details.
func transportError(err error) string {
	var op interface{ Timeout() bool }
	if errors.As(err, &op) && op.Timeout() {
		return "timed out"
	}
	return "request failed"
}

// Parse reads a SecretString: Port's clientSecret as plain text, or a JSON object
// with clientSecret and, optionally, clientId. Surrounding white space is dropped:
// Port's credentials have none, and a secret stored with `echo` ends in a newline.
func Parse(value string) (Credentials, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return Credentials{}, ErrEmpty
	}
	if !strings.HasPrefix(value, "{") {
		return Credentials{ClientSecret: value}, nil
	}
	var doc struct {
		ClientID     *string `json:"clientId"`
		ClientSecret *string `json:"clientSecret"`
		ServiceHook  *string `json:"serviceHookPassword"`
	}
	if err := json.Unmarshal([]byte(value), &doc); err != nil {
		return Credentials{}, fmt.Errorf("%w: it starts with { but is not a JSON object of strings", ErrMalformed)
	}
	if doc.ClientSecret == nil || strings.TrimSpace(*doc.ClientSecret) == "" {
		return Credentials{}, ErrMalformed
	}
	creds := Credentials{ClientSecret: strings.TrimSpace(*doc.ClientSecret)}
	if doc.ClientID != nil {
		creds.ClientID = strings.TrimSpace(*doc.ClientID)
	}
	if doc.ServiceHook != nil {
		creds.ServiceHookPassword = strings.TrimSpace(*doc.ServiceHook)
	}
	return creds, nil
}
