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

// MinRenewInterval is how often Renew may read the secret again, counted from the
// last read attempt, successful or not: a caller sending forged signatures can cause
// at most one read per container this often. The first Renew after a read made for
// Get is not held back, so a rotation is picked up on Port's first new signature.
const MinRenewInterval = 30 * time.Second

// FailureTTL is how long a failed read is remembered: within it Get answers the same
// error (or the value it still has) without calling Secrets Manager again, so
// unauthenticated requests cannot turn a missing or unreadable secret into a stream
// of calls.
const FailureTTL = 5 * time.Second

// Errors returned by Source.Get and Parse. None of them carries the secret's value.
var (
	ErrUnavailable = errors.New("secret could not be read")
	ErrNotFound    = errors.New("secret not found")
	ErrEmpty       = errors.New("secret is empty")
	ErrMalformed   = errors.New("secret JSON is malformed")
)

// Credentials are what the secret holds: Port's clientSecret, and its clientId when
// the relay is to report back to Port.
type Credentials struct {
	ClientID     string
	ClientSecret string
	// ServiceHookPassword is the Basic auth password Azure DevOps' service hook sends
	// the status function; empty when the secret has none.
	ServiceHookPassword string
	// AzureWebhookSecret is the Azure DevOps service connection's own secret, when the
	// secret holds one: then Port's clientSecret never leaves AWS.
	AzureWebhookSecret string
	// The credentials of a pipeline started by id (Azure DevOps' Runs API): a PAT, or
	// a Microsoft Entra app (tenant and client id) with a client secret, or without
	// one (then the relay's AWS identity is federated to it).
	AzurePAT          string
	AzureTenantID     string
	AzureClientID     string
	AzureClientSecret string
	// Created is when Secrets Manager stored this version (its CreatedDate); zero
	// when unknown. A rotation's grace for the previous version counts from it.
	Created time.Time
}

// AzureKey is the key that signs for Azure DevOps (and that the verifier checks):
// azureWebhookSecret when present, else the clientSecret, as Port's own setup has it.
func (c Credentials) AzureKey() []byte {
	if c.AzureWebhookSecret != "" {
		return []byte(c.AzureWebhookSecret)
	}
	return []byte(c.ClientSecret)
}

// Getter is the one Secrets Manager call the relay makes; *secretsmanager.Client has it.
type Getter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Source reads one secret and caches it for TTL. It is safe for concurrent use:
// concurrent callers share one GetSecretValue call. Once it has a value it keeps
// serving it until a new read succeeds: a Secrets Manager outage, or a read that
// Renew asked for, never takes a good value away.
type Source struct {
	client Getter
	id     string
	stage  string // the version stage read; "" is AWSCURRENT
	ttl    time.Duration
	now    func() time.Time

	mu        sync.Mutex
	creds     Credentials
	have      bool      // creds hold a value read successfully
	expires   time.Time // when creds should be read again
	attempted time.Time // when the last read started
	renewed   bool      // a Renew has read since the last read made for Get
	failed    error     // the last read's error, remembered until failUntil
	failUntil time.Time
	inflight  *fetch
}

type fetch struct {
	done     chan struct{}
	creds    Credentials
	err      error
	prefetch bool // made by Prefetch: its failure is nobody's answer
}

// PrefetchTimeout bounds a Prefetch's read. A Get that joined it and sees it fail
// reads the secret itself, so a prefetch stuck in a frozen or slow container costs
// the first invocation at most this long.
const PrefetchTimeout = 3 * time.Second

// Prefetch starts reading the secret in the background, for a container's start:
// the read overlaps the rest of the start-up, and the first Get joins it or finds
// its value. It never blocks. Its success fills the cache as a Get's read would;
// its failure is neither remembered nor answered: a Get that finds it failed reads
// the secret itself, so the first invocation gets its own answer, as without a
// prefetch. It does nothing when the source has a value or a read in flight.
func (s *Source) Prefetch(ctx context.Context) {
	s.mu.Lock()
	if s.have || s.inflight != nil {
		s.mu.Unlock()
		return
	}
	f := s.start(s.now(), false)
	f.prefetch = true
	s.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), PrefetchTimeout)
		defer cancel()
		s.complete(ctx, f)
	}()
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

// Version stages a Source can read; the default is StageCurrent.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS" // the value before the last put-secret-value
)

// NewStageSource is NewSource for one version stage of the secret, e.g. StagePrevious.
// A stage the secret does not have is ErrNotFound, remembered like any failure.
func NewStageSource(client Getter, id, stage string, ttl time.Duration, now func() time.Time) *Source {
	s := NewSource(client, id, ttl, now)
	if stage != StageCurrent {
		s.stage = stage
	}
	return s
}

// Previous reads the secret's previous version (AWSPREVIOUS), only when asked, and
// caches it as a Source does, for as long as the current value it is asked beside
// stays the same: a newer put-secret-value moves AWSPREVIOUS too.
type Previous struct {
	source *Source

	mu     sync.Mutex
	beside Credentials // the current value the cache belongs to
}

// NewPrevious returns the previous version of the secret id; ttl and now as NewSource.
func NewPrevious(client Getter, id string, ttl time.Duration, now func() time.Time) *Previous {
	return &Previous{source: NewStageSource(client, id, StagePrevious, ttl, now)}
}

// Get returns the value that preceded current. ErrNotFound means there is none: the
// secret has never been rotated.
func (p *Previous) Get(ctx context.Context, current Credentials) (Credentials, error) {
	p.mu.Lock()
	if current != p.beside {
		p.source.forget() // what it read, or failed to read, was beside another current value
		p.beside = current
	}
	p.mu.Unlock()
	return p.source.Get(ctx)
}

// ID returns the secret id the source reads, for logs.
func (s *Source) ID() string { return s.id }

// Get returns the credentials, from the cache while it is fresh. When the value is
// due to be read again and the read fails, Get keeps answering the value it has.
func (s *Source) Get(ctx context.Context) (Credentials, error) {
	s.mu.Lock()
	now := s.now()
	switch {
	case s.have && now.Before(s.expires):
		creds := s.creds
		s.mu.Unlock()
		return creds, nil
	case s.failed != nil && now.Before(s.failUntil):
		creds, have, err := s.creds, s.have, s.failed
		s.mu.Unlock()
		if have {
			return creds, nil
		}
		return Credentials{}, err
	}
	creds, have, err := s.refresh(ctx, now, false)
	if err != nil && !have {
		return Credentials{}, err
	}
	return creds, nil
}

// Renew reads the secret again and reports whether the value changed: for when
// Port's signature does not verify with the cached value, which a rotation of Port's
// credentials causes. It reads at once the first time after a read made for Get, and
// then at most once per MinRenewInterval; otherwise, and when the read fails, it
// returns the value it has, unchanged.
func (s *Source) Renew(ctx context.Context) (Credentials, bool, error) {
	s.mu.Lock()
	old, now := s.creds, s.now()
	if s.inflight == nil {
		if s.failed != nil && now.Before(s.failUntil) {
			err := s.failed
			s.mu.Unlock()
			return old, false, err
		}
		if s.renewed && now.Sub(s.attempted) < MinRenewInterval {
			s.mu.Unlock()
			return old, false, nil
		}
	}
	creds, _, err := s.refresh(ctx, now, true)
	if err != nil {
		return old, false, err
	}
	return creds, creds != old, nil
}

// Invalidate makes the next Get read the secret again, keeping the value until a
// read succeeds: for when Azure DevOps says the signature does not match, which a
// rotation causes.
func (s *Source) Invalidate() {
	s.mu.Lock()
	s.expires = time.Time{}
	s.mu.Unlock()
}

// forget is Invalidate that also forgets a remembered failure.
func (s *Source) forget() {
	s.mu.Lock()
	s.expires, s.failed = time.Time{}, nil
	s.mu.Unlock()
}

// refresh is called with s.mu held and releases it. It joins the read in flight or
// makes one, and returns the result with the value the cache has and whether it has
// one. Only a successful read replaces the value.
func (s *Source) refresh(ctx context.Context, now time.Time, renew bool) (Credentials, bool, error) {
	if f := s.inflight; f != nil {
		s.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			s.mu.Lock()
			creds, have := s.creds, s.have
			s.mu.Unlock()
			return creds, have, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		s.mu.Lock()
		if f.err != nil && f.prefetch {
			// Not this caller's read: make its own, as if there had been no prefetch.
			return s.refresh(ctx, s.now(), renew)
		}
		creds, have := s.creds, s.have
		s.mu.Unlock()
		if f.err != nil {
			return creds, have, f.err
		}
		return f.creds, true, nil
	}
	f := s.start(now, renew)
	s.mu.Unlock()
	return s.complete(ctx, f)
}

// start registers a read in flight; s.mu must be held.
func (s *Source) start(now time.Time, renew bool) *fetch {
	f := &fetch{done: make(chan struct{})}
	s.inflight, s.attempted, s.renewed = f, now, renew
	return f
}

// complete makes f's read and stores its outcome; s.mu must not be held.
func (s *Source) complete(ctx context.Context, f *fetch) (Credentials, bool, error) {
	f.creds, f.err = s.read(ctx)

	s.mu.Lock()
	done := s.now()
	switch {
	case f.err == nil:
		s.creds, s.have, s.expires, s.failed = f.creds, true, done.Add(s.ttl), nil
	case !f.prefetch && !errors.Is(f.err, context.Canceled) && !errors.Is(f.err, context.DeadlineExceeded):
		// A read cut off because its caller gave up says nothing of Secrets Manager (its
		// error names the context's), and a prefetch's failure must not become the first
		// invocation's answer. An answer Secrets Manager gave, such as throttling, counts
		// even when the caller's deadline has passed since.
		s.failed, s.failUntil = f.err, done.Add(FailureTTL)
	}
	s.inflight = nil
	creds, have := s.creds, s.have
	s.mu.Unlock()
	close(f.done)
	return creds, have, f.err
}

func (s *Source) read(ctx context.Context) (Credentials, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: &s.id}
	if s.stage != "" {
		in.VersionStage = &s.stage
	}
	out, err := s.client.GetSecretValue(ctx, in)
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
	creds, err := Parse(*out.SecretString)
	if err == nil && out.CreatedDate != nil {
		creds.Created = *out.CreatedDate
	}
	return creds, err
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
// with clientSecret and, optionally, clientId and azureWebhookSecret (which, when
// present, must not be blank: it would sign with nothing). Surrounding white space is dropped:
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
		ClientID           *string `json:"clientId"`
		ClientSecret       *string `json:"clientSecret"`
		AzureWebhookSecret *string `json:"azureWebhookSecret"`
		ServiceHook        *string `json:"serviceHookPassword"`
		AzurePAT           *string `json:"azurePat"`
		AzureTenantID      *string `json:"azureTenantId"`
		AzureClientID      *string `json:"azureClientId"`
		AzureClientSecret  *string `json:"azureClientSecret"`
	}
	if err := json.Unmarshal([]byte(value), &doc); err != nil {
		return Credentials{}, fmt.Errorf("%w: it starts with { but is not a JSON object of strings", ErrMalformed)
	}
	if doc.ClientSecret == nil || strings.TrimSpace(*doc.ClientSecret) == "" {
		return Credentials{}, fmt.Errorf("%w: no clientSecret string", ErrMalformed)
	}
	creds := Credentials{ClientSecret: strings.TrimSpace(*doc.ClientSecret)}
	if doc.ClientID != nil {
		creds.ClientID = strings.TrimSpace(*doc.ClientID)
	}
	if doc.ServiceHook != nil {
		creds.ServiceHookPassword = strings.TrimSpace(*doc.ServiceHook)
	}
	if doc.AzureWebhookSecret != nil {
		if creds.AzureWebhookSecret = strings.TrimSpace(*doc.AzureWebhookSecret); creds.AzureWebhookSecret == "" {
			return Credentials{}, fmt.Errorf("%w: azureWebhookSecret is blank", ErrMalformed)
		}
	}
	for _, k := range []struct {
		name string
		from *string
		to   *string
	}{
		{"azurePat", doc.AzurePAT, &creds.AzurePAT},
		{"azureTenantId", doc.AzureTenantID, &creds.AzureTenantID},
		{"azureClientId", doc.AzureClientID, &creds.AzureClientID},
		{"azureClientSecret", doc.AzureClientSecret, &creds.AzureClientSecret},
	} {
		if k.from == nil {
			continue
		}
		if *k.to = strings.TrimSpace(*k.from); *k.to == "" {
			return Credentials{}, fmt.Errorf("%w: %s is blank", ErrMalformed, k.name)
		}
	}
	// An Entra app needs both its tenant and its client id; a client secret belongs to one.
	if (creds.AzureTenantID == "") != (creds.AzureClientID == "") || (creds.AzureClientSecret != "" && creds.AzureClientID == "") {
		return Credentials{}, fmt.Errorf("%w: azureTenantId and azureClientId go together, and azureClientSecret needs both", ErrMalformed)
	}
	return creds, nil
}

// Errors lists the package's sentinel errors, for the answer tables of the functions
// that meet them: a test fails when one has no answer.
var Errors = []error{
	ErrUnavailable, ErrNotFound, ErrEmpty, ErrMalformed,
}
