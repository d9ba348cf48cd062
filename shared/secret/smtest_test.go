package secret_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

// maxAttempts is the SDK's attempts per call in these tests: enough to show retries, few enough to be quick.
const maxAttempts = 2

// newSM returns the real SDK client pointed at srv, signing with the given keys.
func newSM(srv *smtest.Server, accessKey, secretKey string) *secretsmanager.Client {
	cfg := aws.Config{
		Region:      awstest.Region,
		Credentials: credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				o.MaxBackoff = 10 * time.Millisecond
				o.RateLimiter = ratelimit.None
			})
		},
	}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
	})
}

func TestSourceWithSecretsManager(t *testing.T) {
	tests := []struct {
		name    string
		value   string // "": no secret stored
		byARN   bool
		fault   smtest.Fault
		badKeys bool
		want    secret.Credentials
		err     error
		text    string // the error text must contain it
		calls   int    // smtest.Calls after one Get
	}{
		{name: "a plain-text secret is the clientSecret", value: "p0rt-s3cret\n",
			want: secret.Credentials{ClientSecret: "p0rt-s3cret"}, calls: 1},
		{name: "a JSON secret gives clientId and clientSecret", value: `{"clientId":"id-123","clientSecret":"p0rt-s3cret"}`,
			want: secret.Credentials{ClientID: "id-123", ClientSecret: "p0rt-s3cret"}, calls: 1},
		{name: "a secret is found by its ARN", value: "p0rt-s3cret", byARN: true,
			want: secret.Credentials{ClientSecret: "p0rt-s3cret"}, calls: 1},
		{name: "a missing secret is ErrNotFound", err: secret.ErrNotFound, calls: 1},
		{name: "an empty secret is ErrEmpty", value: "\n", err: secret.ErrEmpty, calls: 1},
		{name: "JSON without clientSecret is ErrMalformed", value: `{"clientId":"id-123"}`,
			err: secret.ErrMalformed, calls: 1},
		{name: "a throttled endpoint is ErrUnavailable after the SDK's retries", value: "p0rt-s3cret",
			fault: smtest.Throttle, err: secret.ErrUnavailable, text: "ThrottlingException", calls: maxAttempts},
		{name: "an internal error is ErrUnavailable after the SDK's retries", value: "p0rt-s3cret",
			fault: smtest.InternalError, err: secret.ErrUnavailable, calls: maxAttempts},
		{name: "an endpoint that is down is ErrUnavailable", value: "p0rt-s3cret",
			fault: smtest.Down, err: secret.ErrUnavailable, calls: 0},
		{name: "an access denial is ErrUnavailable", value: "p0rt-s3cret",
			fault: smtest.AccessDenied, err: secret.ErrUnavailable, text: "AccessDeniedException", calls: 1},
		{name: "wrong credentials are ErrUnavailable: the signature is refused", value: "p0rt-s3cret", badKeys: true,
			err: secret.ErrUnavailable, text: "InvalidSignatureException", calls: 0},
		{name: "one throttled attempt is survived", value: "p0rt-s3cret", fault: smtest.Throttle.Times(1),
			want: secret.Credentials{ClientSecret: "p0rt-s3cret"}, calls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtest.New()
			defer srv.Close()
			id := secretID
			if tt.value != "" {
				arn := srv.Put(secretID, tt.value)
				if tt.byARN {
					id = arn
				}
			}
			srv.SetFault(tt.fault)
			accessKey, secretKey := awstest.AccessKeyID, awstest.SecretAccessKey
			if tt.badKeys {
				secretKey = "not-the-secret-key"
			}
			s := secret.NewSource(newSM(srv, accessKey, secretKey), id, 0, nil)

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := s.Get(ctx)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Get(%q) = %+v, %v, want %v", id, got, err, tt.err)
				}
				if !strings.Contains(err.Error(), tt.text) {
					t.Errorf("Get(%q) error %q does not name %q", id, err, tt.text)
				}
				for _, leak := range []string{"p0rt-s3cret", "id-123", "127.0.0.1", "not authorized", awstest.AccessKeyID} {
					if strings.Contains(err.Error(), leak) {
						t.Errorf("Get(%q) error %q contains %q", id, err, leak)
					}
				}
			} else {
				// The version's CreatedDate comes with it: a rotation's grace counts from it.
				if err != nil || got.Created.IsZero() || time.Since(got.Created).Abs() > time.Minute {
					t.Fatalf("Get(%q) = %+v, %v, want the version's creation time, just now", id, got, err)
				}
				if got.Created = (time.Time{}); got != tt.want {
					t.Fatalf("Get(%q) = %+v, want %+v", id, got, tt.want)
				}
			}
			if n := srv.Calls(); n != tt.calls {
				t.Errorf("smtest.Calls() = %d, want %d", n, tt.calls)
			}
		})
	}
}

func TestSourceWithSlowSecretsManager(t *testing.T) {
	const deadline = 300 * time.Millisecond
	srv := smtest.New()
	defer srv.Close()
	srv.Put(secretID, "p0rt-s3cret")
	srv.SetFault(smtest.Slow(5 * time.Second))
	s := secret.NewSource(newSM(srv, awstest.AccessKeyID, awstest.SecretAccessKey), secretID, 0, nil)

	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	_, err := s.Get(ctx)
	elapsed := time.Since(start)
	if !errors.Is(err, secret.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get = %v, want %v wrapping %v", err, secret.ErrUnavailable, context.DeadlineExceeded)
	}
	// Far below the 5 s Secrets Manager takes, with room for a loaded CI machine.
	if elapsed > deadline+2*time.Second {
		t.Errorf("Get took %v, want about its %v deadline, not Secrets Manager's 5 s", elapsed, deadline)
	}

	srv.SetFault(smtest.None)
	if got, err := s.Get(context.Background()); err != nil || got.ClientSecret != "p0rt-s3cret" {
		t.Errorf("Get once healed = %+v, %v, want p0rt-s3cret: the failure must not be cached", got, err)
	}
}

func TestSourceWithSecretsManagerCallsOnceWithinTTL(t *testing.T) {
	const gets = 1000
	srv := smtest.New()
	defer srv.Close()
	srv.Put(secretID, `{"clientSecret":"p0rt-s3cret"}`)
	s := secret.NewSource(newSM(srv, awstest.AccessKeyID, awstest.SecretAccessKey), secretID, time.Minute, nil)

	var wg sync.WaitGroup
	errs := make(chan error, gets)
	for range gets {
		wg.Go(func() {
			got, err := s.Get(context.Background())
			if err == nil && got.ClientSecret != "p0rt-s3cret" {
				err = errors.New("wrong value " + got.ClientSecret)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Get = %v, want p0rt-s3cret", err)
	}
	if n := srv.Calls(); n != 1 {
		t.Errorf("smtest.Calls() = %d after %d Gets within the TTL, want 1", n, gets)
	}
}

// Previous reads AWSPREVIOUS only when asked, caches it, and reads it again once the
// current value it was asked beside has changed (a newer rotation).
func TestPreviousWithSecretsManager(t *testing.T) {
	srv := smtest.New()
	defer srv.Close()
	sm := newSM(srv, awstest.AccessKeyID, awstest.SecretAccessKey)
	c := &clock{t: time.Now()}
	cur := secret.NewSource(sm, secretID, time.Hour, c.Now)
	prev := secret.NewPrevious(sm, secretID, time.Hour, c.Now)
	ctx := context.Background()
	json := func(azure string) string {
		return `{"clientSecret":"p0rt-s3cret","azureWebhookSecret":"` + azure + `"}`
	}

	srv.Put(secretID, json("az-1"))
	c1, err := cur.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if srv.StageCalls("AWSPREVIOUS") != 0 {
		t.Fatal("AWSPREVIOUS was read before anyone asked")
	}
	if _, err := prev.Get(ctx, c1); !errors.Is(err, secret.ErrNotFound) {
		t.Fatalf("Previous before any rotation = %v, want ErrNotFound", err)
	}

	srv.Put(secretID, json("az-2"))
	c2, _, err := cur.Renew(ctx)
	if err != nil || c2.AzureWebhookSecret != "az-2" {
		t.Fatalf("Renew = %+v, %v, want az-2", c2, err)
	}
	c.Advance(secret.FailureTTL) // the ErrNotFound above is remembered that long
	for range 3 {
		if p, err := prev.Get(ctx, c2); err != nil || p.AzureWebhookSecret != "az-1" {
			t.Fatalf("Previous = %+v, %v, want az-1", p, err)
		}
	}
	if n := srv.StageCalls("AWSPREVIOUS"); n != 2 {
		t.Errorf("AWSPREVIOUS read %d times, want 2: once before the rotation, then cached", n)
	}

	srv.Put(secretID, json("az-3"))
	cur.Invalidate()
	c3, _ := cur.Get(ctx)
	if p, err := prev.Get(ctx, c3); err != nil || p.AzureWebhookSecret != "az-2" {
		t.Errorf("Previous after a second rotation = %+v, %v, want az-2, not the cached az-1", p, err)
	}
}
