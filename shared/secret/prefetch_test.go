package secret_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

func TestPrefetch(t *testing.T) {
	tests := []struct {
		name      string
		atInit    smtest.Fault // while the prefetch reads
		settle    bool         // the prefetch ends before the first Get
		atFirst   smtest.Fault // when the first invocation comes
		err       error        // the first Get's error
		calls     int          // GetSecretValue calls after the first Get
		remembers bool         // a second Get at once calls no more: the first Get's failure is remembered
	}{
		{name: "a prefetch that ended fills the cache for the first Get",
			settle: true, calls: 1},
		{name: "the first Get joins a prefetch still in flight",
			atInit: smtest.Slow(150 * time.Millisecond), atFirst: smtest.Slow(150 * time.Millisecond), calls: 1},
		{name: "a failed prefetch is not the first Get's answer: it reads again and succeeds",
			atInit: smtest.AccessDenied, settle: true, calls: 2},
		{name: "a prefetch that cannot reach Secrets Manager leaves the first Get to read",
			atInit: smtest.Down, settle: true, calls: 1}, // smtest counts no call it dropped
		{name: "when Secrets Manager still refuses, the first Get answers its own read's error, remembered",
			atInit: smtest.AccessDenied, settle: true, atFirst: smtest.AccessDenied, err: secret.ErrUnavailable, calls: 2, remembers: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtest.New()
			defer srv.Close()
			srv.Put(secretID, "p0rt-s3cret")
			srv.SetFault(tt.atInit)
			s := secret.NewSource(newSM(srv, awstest.AccessKeyID, awstest.SecretAccessKey), secretID, 0, nil)

			start := time.Now()
			s.Prefetch(context.Background())
			if d := time.Since(start); d > 20*time.Millisecond {
				t.Errorf("Prefetch took %v, want it to return at once", d)
			}
			if tt.settle && tt.atInit != smtest.Down {
				waitCalls(t, srv, 1)
			}
			if tt.settle {
				time.Sleep(200 * time.Millisecond) // for the read's outcome (and the SDK's retries) to be over
			}
			srv.SetFault(tt.atFirst)
			got, err := s.Get(context.Background())
			switch {
			case tt.err != nil && !errors.Is(err, tt.err):
				t.Fatalf("Get = %+v, %v, want %v", got, err, tt.err)
			case tt.err == nil && (err != nil || got.ClientSecret != "p0rt-s3cret"):
				t.Fatalf("Get = %+v, %v, want p0rt-s3cret", got, err)
			}
			if n := srv.Calls(); n != tt.calls {
				t.Errorf("GetSecretValue calls after the first Get = %d, want %d", n, tt.calls)
			}
			_, _ = s.Get(context.Background())
			if n := srv.Calls(); tt.remembers && n != tt.calls || !tt.remembers && tt.err == nil && n != tt.calls {
				t.Errorf("GetSecretValue calls after a second Get = %d, want %d", n, tt.calls)
			}
		})
	}
}

// waitCalls waits until srv has seen n GetSecretValue calls.
func waitCalls(t *testing.T, srv *smtest.Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); srv.Calls() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("GetSecretValue calls = %d, want %d", srv.Calls(), n)
		}
	}
}

// gated answers each call when released: the first with err, the next with the value.
type gated struct {
	release chan struct{}
	calls   atomic.Int32
	err     error
}

func (g *gated) GetSecretValue(ctx context.Context, _ *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	n := g.calls.Add(1)
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if n == 1 {
		return nil, g.err
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String("p0rt-s3cret")}, nil
}

func TestPrefetchFailingWhileTheFirstGetWaits(t *testing.T) {
	g := &gated{release: make(chan struct{}), err: errors.New("connection reset")}
	s := secret.NewSource(g, secretID, 0, nil)
	s.Prefetch(context.Background())
	type result struct {
		creds secret.Credentials
		err   error
	}
	done := make(chan result)
	go func() {
		c, err := s.Get(context.Background())
		done <- result{c, err}
	}()
	time.Sleep(20 * time.Millisecond) // the Get joins the prefetch
	if n := g.calls.Load(); n != 1 {
		t.Fatalf("calls while the prefetch is in flight = %d, want 1 (the Get joins it)", n)
	}
	close(g.release)
	r := <-done
	if r.err != nil || r.creds.ClientSecret != "p0rt-s3cret" {
		t.Errorf("Get = %+v, %v, want its own read's p0rt-s3cret, not the prefetch's failure", r.creds, r.err)
	}
	if n := g.calls.Load(); n != 2 {
		t.Errorf("calls = %d, want 2", n)
	}
}

func TestPrefetchDoesNothingWhenNotNeeded(t *testing.T) {
	get, calls := counting("p0rt-s3cret", nil)
	s := secret.NewSource(get, secretID, 0, nil)
	if _, err := s.Get(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Prefetch(context.Background())
	time.Sleep(20 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Errorf("calls after a Prefetch with a cached value = %d, want 1", n)
	}
}

func TestRenewAfterPrefetchReadsAtOnce(t *testing.T) {
	var value atomic.Value
	value.Store("old-s3cret")
	var calls atomic.Int32
	get := getterFunc(func(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
		calls.Add(1)
		return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(value.Load().(string))}, nil
	})
	s := secret.NewSource(get, secretID, 0, nil)
	s.Prefetch(context.Background())
	if c, err := s.Get(context.Background()); err != nil || c.ClientSecret != "old-s3cret" {
		t.Fatalf("Get = %+v, %v", c, err)
	}
	value.Store("new-s3cret")
	c, changed, err := s.Renew(context.Background())
	if err != nil || !changed || c.ClientSecret != "new-s3cret" || calls.Load() != 2 {
		t.Errorf("Renew = %+v, %v, %v after %d calls, want new-s3cret, changed, at once (2 calls)", c, changed, err, calls.Load())
	}
}
