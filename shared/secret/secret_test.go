package secret_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/port-azure-relay/relay/shared/secret"
)

const secretID = "relay/port"

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		value     string
		want      secret.Credentials
		err       error
		sensitive string // must not appear in the error text; "" means the value, trimmed
	}{
		{name: "plain text is the clientSecret", value: "p0rt-s3cret",
			want: secret.Credentials{ClientSecret: "p0rt-s3cret"}},
		{name: "plain text loses its trailing newline", value: "p0rt-s3cret\n",
			want: secret.Credentials{ClientSecret: "p0rt-s3cret"}},
		{name: "plain text loses surrounding white space", value: " \tp0rt-s3cret\r\n",
			want: secret.Credentials{ClientSecret: "p0rt-s3cret"}},
		{name: "plain text keeps inner spaces and braces", value: "p0rt s3cret}",
			want: secret.Credentials{ClientSecret: "p0rt s3cret}"}},
		{name: "JSON with clientSecret is read", value: `{"clientSecret":"p0rt-s3cret"}`,
			want: secret.Credentials{ClientSecret: "p0rt-s3cret"}},
		{name: "JSON with clientId and clientSecret is read", value: `{"clientId":"id-123","clientSecret":"p0rt-s3cret"}`,
			want: secret.Credentials{ClientID: "id-123", ClientSecret: "p0rt-s3cret"}},
		{name: "JSON with other keys and a trailing newline is read", value: "{\n  \"clientSecret\": \"p0rt-s3cret\",\n  \"note\": 1\n}\n",
			want: secret.Credentials{ClientSecret: "p0rt-s3cret"}},
		{name: "JSON values lose surrounding white space", value: `{"clientId":" id-123 ","clientSecret":" p0rt-s3cret\n"}`,
			want: secret.Credentials{ClientID: "id-123", ClientSecret: "p0rt-s3cret"}},
		{name: "JSON with serviceHookPassword is read", value: `{"clientId":"id-123","clientSecret":"p0rt-s3cret","serviceHookPassword":" h00k-pass\n"}`,
			want: secret.Credentials{ClientID: "id-123", ClientSecret: "p0rt-s3cret", ServiceHookPassword: "h00k-pass"}},
		{name: "JSON with a PAT for pipelines by id is read", value: `{"clientSecret":"p0rt-s3cret","azurePat":" pat-123\n"}`,
			want: secret.Credentials{ClientSecret: "p0rt-s3cret", AzurePAT: "pat-123"}},
		{name: "JSON with an Entra app and its secret is read", value: `{"clientSecret":"p0rt-s3cret","azureTenantId":"t-1","azureClientId":"c-1","azureClientSecret":"cs-1"}`,
			want: secret.Credentials{ClientSecret: "p0rt-s3cret", AzureTenantID: "t-1", AzureClientID: "c-1", AzureClientSecret: "cs-1"}},
		{name: "JSON with an Entra app and no secret is read (federated)", value: `{"clientSecret":"p0rt-s3cret","azureTenantId":"t-1","azureClientId":"c-1"}`,
			want: secret.Credentials{ClientSecret: "p0rt-s3cret", AzureTenantID: "t-1", AzureClientID: "c-1"}},
		{name: "a tenant without a client id is ErrMalformed", value: `{"clientSecret":"p0rt-s3cret","azureTenantId":"t-1"}`,
			err: secret.ErrMalformed, sensitive: "p0rt-s3cret"},
		{name: "a client secret without the app is ErrMalformed", value: `{"clientSecret":"p0rt-s3cret","azureClientSecret":"cs-1"}`,
			err: secret.ErrMalformed, sensitive: "cs-1"},
		{name: "a blank PAT is ErrMalformed", value: `{"clientSecret":"p0rt-s3cret","azurePat":" "}`,
			err: secret.ErrMalformed, sensitive: "p0rt-s3cret"},
		{name: "JSON without clientSecret is ErrMalformed", value: `{"clientId":"id-123","secret":"p0rt-s3cret"}`,
			err: secret.ErrMalformed, sensitive: "p0rt-s3cret"},
		{name: "JSON with a key only like clientSecret is ErrMalformed", value: `{"ClientSecret ":"p0rt-s3cret"}`,
			err: secret.ErrMalformed, sensitive: "p0rt-s3cret"},
		{name: "JSON with an empty clientSecret is ErrMalformed", value: `{"clientId":"id-123","clientSecret":""}`,
			err: secret.ErrMalformed, sensitive: "id-123"},
		{name: "JSON with a white-space clientSecret is ErrMalformed", value: `{"clientSecret":" \n\t"}`,
			err: secret.ErrMalformed, sensitive: `" \n\t"`},
		{name: "JSON with a null clientSecret is ErrMalformed", value: `{"clientSecret":null}`,
			err: secret.ErrMalformed, sensitive: "null"},
		{name: "JSON with a number clientSecret is ErrMalformed", value: `{"clientSecret":8675309}`,
			err: secret.ErrMalformed, sensitive: "8675309"},
		{name: "JSON with a number clientId is ErrMalformed", value: `{"clientId":8675309,"clientSecret":"p0rt-s3cret"}`,
			err: secret.ErrMalformed, sensitive: "p0rt-s3cret"},
		{name: "invalid JSON starting with { is ErrMalformed", value: `{"clientSecret":"p0rt-s3cret"`,
			err: secret.ErrMalformed, sensitive: "p0rt-s3cret"},
		{name: "a brace and plain text is ErrMalformed", value: `{p0rt-s3cret`,
			err: secret.ErrMalformed, sensitive: "p0rt-s3cret"},
		{name: "JSON with azureWebhookSecret is read", value: `{"clientId":"id-123","clientSecret":"p0rt-s3cret","azureWebhookSecret":" az-hook-s3cret\n"}`,
			want: secret.Credentials{ClientID: "id-123", ClientSecret: "p0rt-s3cret", AzureWebhookSecret: "az-hook-s3cret"}},
		{name: "JSON with a blank azureWebhookSecret is ErrMalformed", value: `{"clientSecret":"p0rt-s3cret","azureWebhookSecret":" "}`,
			err: secret.ErrMalformed, sensitive: "p0rt-s3cret"},
		{name: "JSON with a number azureWebhookSecret is ErrMalformed", value: `{"clientSecret":"p0rt-s3cret","azureWebhookSecret":8675309}`,
			err: secret.ErrMalformed, sensitive: "8675309"},
		{name: "an empty value is ErrEmpty", value: "", err: secret.ErrEmpty},
		{name: "a white-space value is ErrEmpty", value: " \n\t\r\n", err: secret.ErrEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := secret.Parse(tt.value)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Parse(%q) = %+v, %v, want %v", tt.value, got, err, tt.err)
				}
				if got != (secret.Credentials{}) {
					t.Errorf("Parse(%q) = %+v, want no credentials with an error", tt.value, got)
				}
				sensitive := tt.sensitive
				if sensitive == "" {
					sensitive = strings.TrimSpace(tt.value)
				}
				if sensitive != "" && strings.Contains(err.Error(), sensitive) {
					t.Errorf("Parse(%q) error %q contains the secret's value", tt.value, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Parse(%q) = %+v, %v, want %+v, nil", tt.value, got, err, tt.want)
			}
		})
	}
}

func TestAzureKey(t *testing.T) {
	for _, tt := range []struct {
		name  string
		creds secret.Credentials
		want  string
	}{
		{"azureWebhookSecret signs for Azure when present", secret.Credentials{ClientSecret: "port", AzureWebhookSecret: "azure"}, "azure"},
		{"the clientSecret signs for Azure without one, as in Port's own setup", secret.Credentials{ClientSecret: "port"}, "port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.creds.AzureKey()); got != tt.want {
				t.Errorf("AzureKey() = %q, want %q", got, tt.want)
			}
		})
	}
}

// getterFunc is a Secrets Manager fake, as in aws-sdk-go-v2's unit-testing guide.
type getterFunc func(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)

func (f getterFunc) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return f(ctx, in, opts...)
}

// counting returns a fake that answers value, or err when set, and counts its calls.
func counting(value string, err *error) (getterFunc, *atomic.Int32) {
	var calls atomic.Int32
	return func(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
		calls.Add(1)
		if err != nil && *err != nil {
			return nil, *err
		}
		return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(value)}, nil
	}, &calls
}

// clock is a settable time source, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestSourceCaches(t *testing.T) {
	const ttl = time.Minute
	tests := []struct {
		name  string
		ttl   time.Duration
		steps func(s *secret.Source, c *clock)
		calls int32
	}{
		{name: "many Gets within the TTL read once", ttl: ttl,
			steps: func(s *secret.Source, c *clock) { c.Advance(ttl - time.Nanosecond) }, calls: 1},
		{name: "a Get at the TTL reads again", ttl: ttl,
			steps: func(s *secret.Source, c *clock) { c.Advance(ttl) }, calls: 2},
		{name: "a Get after the TTL reads again", ttl: ttl,
			steps: func(s *secret.Source, c *clock) { c.Advance(time.Hour) }, calls: 2},
		{name: "Invalidate makes the next Get read again", ttl: ttl,
			steps: func(s *secret.Source, c *clock) { s.Invalidate() }, calls: 2},
		{name: "a zero TTL is DefaultTTL", ttl: 0,
			steps: func(s *secret.Source, c *clock) { c.Advance(secret.DefaultTTL - time.Nanosecond) }, calls: 1},
		{name: "a Get at DefaultTTL reads again", ttl: -1,
			steps: func(s *secret.Source, c *clock) { c.Advance(secret.DefaultTTL) }, calls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getter, calls := counting("p0rt-s3cret", nil)
			c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			s := secret.NewSource(getter, secretID, tt.ttl, c.Now)
			ctx := context.Background()
			get := func() {
				t.Helper()
				for range 5 {
					got, err := s.Get(ctx)
					if err != nil || got.ClientSecret != "p0rt-s3cret" {
						t.Fatalf("Get = %+v, %v, want p0rt-s3cret", got, err)
					}
				}
			}
			get()
			tt.steps(s, c)
			get()
			if n := calls.Load(); n != tt.calls {
				t.Errorf("GetSecretValue called %d times, want %d", n, tt.calls)
			}
		})
	}
}

func TestSourceAsksForItsID(t *testing.T) {
	const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:relay/port-AbCdEf"
	var got string
	s := secret.NewSource(getterFunc(func(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
		got = aws.ToString(in.SecretId)
		return &secretsmanager.GetSecretValueOutput{SecretString: aws.String("x")}, nil
	}), arn, 0, nil)
	if _, err := s.Get(context.Background()); err != nil {
		t.Fatalf("Get = %v", err)
	}
	if got != arn || s.ID() != arn {
		t.Errorf("SecretId = %q, ID() = %q, want %q", got, s.ID(), arn)
	}
}

func TestSourceErrors(t *testing.T) {
	const leak = "p0rt-s3cret and arn:aws:iam::123456789012:role/relay"
	tests := []struct {
		name string
		out  *secretsmanager.GetSecretValueOutput
		err  error
		want error
		text string // the error text must contain it
	}{
		{name: "a nil SecretString is ErrEmpty",
			out: &secretsmanager.GetSecretValueOutput{SecretBinary: []byte(leak)}, want: secret.ErrEmpty},
		{name: "an empty SecretString is ErrEmpty",
			out: &secretsmanager.GetSecretValueOutput{SecretString: aws.String("")}, want: secret.ErrEmpty},
		{name: "JSON without clientSecret is ErrMalformed",
			out: &secretsmanager.GetSecretValueOutput{SecretString: aws.String(`{"clientId":"` + leak + `"}`)}, want: secret.ErrMalformed},
		{name: "ResourceNotFoundException is ErrNotFound",
			err: &types.ResourceNotFoundException{Message: aws.String(leak)}, want: secret.ErrNotFound},
		{name: "a wrapped ResourceNotFoundException is ErrNotFound",
			err: &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "GetSecretValue",
				Err: &types.ResourceNotFoundException{Message: aws.String(leak)}}, want: secret.ErrNotFound},
		{name: "AccessDeniedException is ErrUnavailable naming the code",
			err: &smithy.GenericAPIError{Code: "AccessDeniedException", Message: leak}, want: secret.ErrUnavailable,
			text: "AccessDeniedException"},
		{name: "DecryptionFailure is ErrUnavailable naming the code",
			err: &types.DecryptionFailure{Message: aws.String(leak)}, want: secret.ErrUnavailable, text: "DecryptionFailure"},
		{name: "a network failure is ErrUnavailable without the SDK's text",
			err: errors.New("dial tcp " + leak), want: secret.ErrUnavailable, text: "request failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := secret.NewSource(getterFunc(func(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
				return tt.out, tt.err
			}), secretID, 0, nil)
			got, err := s.Get(context.Background())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Get = %+v, %v, want %v", got, err, tt.want)
			}
			if got != (secret.Credentials{}) {
				t.Errorf("Get = %+v, want no credentials with an error", got)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("Get error %q does not name %q", err, tt.text)
			}
			if strings.Contains(err.Error(), "p0rt-s3cret") || strings.Contains(err.Error(), "arn:") {
				t.Errorf("Get error %q repeats the secret or the upstream message", err)
			}
		})
	}
}

func TestSourceFetchesOnceForConcurrentGets(t *testing.T) {
	const n = 100
	release := make(chan struct{})
	var calls atomic.Int32
	s := secret.NewSource(getterFunc(func(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
		calls.Add(1)
		<-release
		return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(`{"clientSecret":"p0rt-s3cret"}`)}, nil
	}), secretID, 0, nil)

	var started, done sync.WaitGroup
	got := make([]secret.Credentials, n)
	errs := make([]error, n)
	for i := range n {
		started.Add(1)
		done.Go(func() {
			started.Done()
			got[i], errs[i] = s.Get(context.Background())
		})
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let every goroutine reach Get and wait on the one fetch
	close(release)
	done.Wait()

	if c := calls.Load(); c != 1 {
		t.Errorf("GetSecretValue called %d times for %d concurrent Gets, want 1", c, n)
	}
	for i := range n {
		if errs[i] != nil || got[i].ClientSecret != "p0rt-s3cret" {
			t.Errorf("Get %d = %+v, %v, want p0rt-s3cret", i, got[i], errs[i])
		}
	}
}

func TestSourceWaiterGivesUpWhileTheFetchGoesOn(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	s := secret.NewSource(getterFunc(func(ctx context.Context, _ *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
		calls.Add(1)
		close(entered)
		<-release
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return &secretsmanager.GetSecretValueOutput{SecretString: aws.String("p0rt-s3cret")}, nil
	}), secretID, 0, nil)

	type result struct {
		creds secret.Credentials
		err   error
	}
	first := make(chan result, 1)
	go func() {
		c, err := s.Get(context.Background())
		first <- result{c, err}
	}()
	<-entered

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Get(ctx)
	if !errors.Is(err, secret.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting Get = %v, want %v wrapping %v", err, secret.ErrUnavailable, context.DeadlineExceeded)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("waiting Get took %v, want about its 50ms deadline", elapsed)
	}

	close(release)
	r := <-first
	if r.err != nil || r.creds.ClientSecret != "p0rt-s3cret" {
		t.Fatalf("fetching Get = %+v, %v, want p0rt-s3cret", r.creds, r.err)
	}
	if got, err := s.Get(context.Background()); err != nil || got.ClientSecret != "p0rt-s3cret" {
		t.Errorf("Get after the fetch = %+v, %v, want p0rt-s3cret from the cache", got, err)
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("GetSecretValue called %d times, want 1", c)
	}
}

func TestSourceCanceledContext(t *testing.T) {
	s := secret.NewSource(getterFunc(func(ctx context.Context, _ *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
		<-ctx.Done()
		return nil, &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "GetSecretValue", Err: ctx.Err()}
	}), secretID, 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := s.Get(ctx)
	if !errors.Is(err, secret.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get = %v, want %v wrapping %v", err, secret.ErrUnavailable, context.DeadlineExceeded)
	}
}

// step is one call on a Source in a scripted sequence.
type step struct {
	advance time.Duration // the clock moves first
	value   string        // Secrets Manager holds this from now on, when set
	fail    bool          // Secrets Manager fails reads from now on (false: answers again)
	renew   bool          // Renew, else Get
	want    string        // the value answered
	changed bool          // Renew's changed
	err     bool          // an error is returned
	calls   int32         // GetSecretValue calls so far
}

func runSteps(t *testing.T, ttl time.Duration, steps []step) {
	t.Helper()
	value, failing := "old", false
	var calls atomic.Int32
	getter := getterFunc(func(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
		calls.Add(1)
		if failing {
			return nil, &types.InternalServiceError{Message: aws.String("down")}
		}
		return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(value)}, nil
	})
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := secret.NewSource(getter, secretID, ttl, c.Now)
	for i, st := range steps {
		c.Advance(st.advance)
		if st.value != "" {
			value = st.value
		}
		failing = st.fail
		var got secret.Credentials
		var changed bool
		var err error
		op := "Get"
		if st.renew {
			op = "Renew"
			got, changed, err = s.Renew(context.Background())
		} else {
			got, err = s.Get(context.Background())
		}
		if got.ClientSecret != st.want || changed != st.changed || (err != nil) != st.err {
			t.Errorf("step %d: %s = %q, %v, %v; want %q, %v, error %v", i, op, got.ClientSecret, changed, err, st.want, st.changed, st.err)
		}
		if n := calls.Load(); n != st.calls {
			t.Errorf("step %d: %s: GetSecretValue called %d times so far, want %d", i, op, n, st.calls)
		}
	}
}

func TestSourceRenew(t *testing.T) {
	const ttl = time.Hour
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "the first Renew after a fill reads at once and finds the rotation", steps: []step{
			{want: "old", calls: 1},
			{advance: time.Second, value: "new", renew: true, want: "new", changed: true, calls: 2},
			{want: "new", calls: 2},
		}},
		{name: "a Renew found unchanged is no change", steps: []step{
			{want: "old", calls: 1},
			{renew: true, want: "old", calls: 2},
		}},
		{name: "a second Renew within MinRenewInterval of the last read does not read", steps: []step{
			{want: "old", calls: 1},
			{renew: true, want: "old", calls: 2},
			{advance: secret.MinRenewInterval - time.Second, value: "new", renew: true, want: "old", calls: 2},
			{advance: time.Second, renew: true, want: "new", changed: true, calls: 3},
		}},
		{name: "a failed Renew keeps the old value in the cache", steps: []step{
			{want: "old", calls: 1},
			{value: "new", fail: true, renew: true, want: "old", err: true, calls: 2},
			{fail: true, want: "old", calls: 2},
			{advance: ttl, fail: true, want: "old", calls: 3},   // due, read fails: still served
			{advance: secret.FailureTTL, want: "new", calls: 4}, // Secrets Manager is back
		}},
		{name: "a failed Renew holds back the next one for MinRenewInterval, not from the last success", steps: []step{
			{want: "old", calls: 1},
			{advance: time.Hour / 2, fail: true, renew: true, want: "old", err: true, calls: 2},
			{advance: secret.FailureTTL, fail: true, renew: true, want: "old", calls: 2},
			{advance: secret.MinRenewInterval - secret.FailureTTL - time.Nanosecond, fail: true, renew: true, want: "old", calls: 2},
			{advance: time.Nanosecond, fail: true, renew: true, want: "old", err: true, calls: 3},
		}},
		{name: "a Renew within FailureTTL of a failed Get does not read", steps: []step{
			{want: "old", calls: 1},
			{advance: ttl, fail: true, want: "old", calls: 2},
			{advance: time.Second, fail: true, renew: true, want: "old", err: true, calls: 2},
		}},
		{name: "the first Renew after a refill is not held back by an earlier Renew", steps: []step{
			{want: "old", calls: 1},
			{renew: true, want: "old", calls: 2},
			{advance: ttl, want: "old", calls: 3}, // the TTL ran out: a normal fill
			{value: "new", renew: true, want: "new", changed: true, calls: 4},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runSteps(t, ttl, tt.steps) })
	}
}

func TestSourceRemembersAFailedReadBriefly(t *testing.T) {
	runSteps(t, time.Hour, []step{
		{fail: true, err: true, calls: 1},
		{fail: true, err: true, calls: 1},
		{advance: secret.FailureTTL - time.Nanosecond, err: true, calls: 1},
		{advance: time.Nanosecond, want: "old", calls: 2},
	})
}

// A stream of forged signatures while Secrets Manager fails costs one read per
// MinRenewInterval, and never takes the good value away.
func TestSourceRenewUnderAttackWhileReadsFail(t *testing.T) {
	steps := []step{{want: "old", calls: 1}}
	calls := int32(1)
	for i := range 600 { // a Renew every 100 ms for a minute
		st := step{advance: 100 * time.Millisecond, fail: true, renew: true, want: "old"}
		if i%300 == 0 { // at 0.1 s and at 30.1 s
			calls++
			st.err = true
		} else if (i%300)*100*int(time.Millisecond) < int(secret.FailureTTL) {
			st.err = true // the failure is remembered for FailureTTL
		}
		st.calls = calls
		steps = append(steps, st)
	}
	runSteps(t, time.Hour, steps)
}

// TestSourceRemembersWhatSecretsManagerSaid: a failure Secrets Manager answered is
// remembered even when the caller's deadline passed meanwhile; a read cut off by
// the deadline alone is not, and the next Get reads again.
func TestSourceRemembersWhatSecretsManagerSaid(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   func(ctx context.Context) error
		remember bool
	}{
		{"throttled, then the deadline passed", func(ctx context.Context) error {
			<-ctx.Done()
			return &smithy.GenericAPIError{Code: "ThrottlingException"}
		}, true},
		{"cut off by the deadline", func(ctx context.Context) error {
			<-ctx.Done()
			return &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "GetSecretValue", Err: ctx.Err()}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			failing := true
			s := secret.NewSource(getterFunc(func(ctx context.Context, _ *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
				calls.Add(1)
				if failing {
					return nil, tc.answer(ctx)
				}
				return &secretsmanager.GetSecretValueOutput{SecretString: aws.String("p0rt-s3cret")}, nil
			}), secretID, time.Hour, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			if _, err := s.Get(ctx); !errors.Is(err, secret.ErrUnavailable) {
				t.Fatalf("Get = %v, want %v", err, secret.ErrUnavailable)
			}
			failing = false
			_, err := s.Get(context.Background())
			if remembered := err != nil && calls.Load() == 1; remembered != tc.remember {
				t.Errorf("next Get = %v after %d calls: remembered %v, want %v", err, calls.Load(), remembered, tc.remember)
			}
		})
	}
}
