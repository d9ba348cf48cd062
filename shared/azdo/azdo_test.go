package azdo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/signature"
)

const (
	org    = "contoso"
	hook   = "deploy"
	key    = "s3cret"
	header = "x-custom-sig"
)

// payload has what Go would change if it re-marshalled: key order, <>& and non-ASCII.
var payload = []byte(`{"z":1,"a":"<svc>&é","port_context":{"runId":"r_abc"}}`)

// newServer starts a double with the deploy webhook, signed in the x-custom-sig header.
func newServer(t *testing.T) *azdotest.Server {
	t.Helper()
	srv := azdotest.New(org, azdotest.Webhook{Name: hook, Secret: key, Header: header})
	t.Cleanup(srv.Close)
	return srv
}

// newClient returns the client the relay builds, with short backoffs so that retries are quick.
func newClient(base string) *azdo.Client {
	return &azdo.Client{
		BaseURL: base,
		Org:     org,
		Header:  header,
		HTTP:    azdo.NewHTTPClient(nil),
		Backoff: 5 * time.Millisecond,
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// deliveryError returns err as an *azdo.Error, failing the test if it is not one.
func deliveryError(t *testing.T, err error) *azdo.Error {
	t.Helper()
	var e *azdo.Error
	if !errors.As(err, &e) {
		t.Fatalf("Deliver error = %v (%T), want an *azdo.Error", err, err)
	}
	return e
}

func TestDeliverAccepted(t *testing.T) {
	srv := newServer(t)
	c := newClient(srv.URL)

	res, err := c.Deliver(ctxTimeout(t, 5*time.Second), hook, payload, []byte(key))
	if err != nil {
		t.Fatalf("Deliver = %v, want nil", err)
	}
	if want := (azdo.Result{Status: 200, Attempts: 1}); res != want {
		t.Errorf("Deliver = %+v, want %+v", res, want)
	}
	got := srv.Deliveries()
	if len(got) != 1 {
		t.Fatalf("the double recorded %d deliveries, want 1", len(got))
	}
	d := got[0]
	if !d.Verified || d.Status != http.StatusOK || d.Webhook != hook {
		t.Errorf("delivery = {Webhook:%q Status:%d Verified:%t}, want {%q 200 true}", d.Webhook, d.Status, d.Verified, hook)
	}
	if !bytes.Equal(d.Body, payload) {
		t.Errorf("body sent = %q, want the bytes given, %q", d.Body, payload)
	}
	if ct := d.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if sig, want := d.Header.Get(header), signature.SignAzure([]byte(key), payload); sig != want {
		t.Errorf("%s = %q, want %q", header, sig, want)
	}
	if v := d.Header.Values(signature.AzureDefaultHeader); len(v) != 0 {
		t.Errorf("default header %s = %q, want it absent when Header is set", signature.AzureDefaultHeader, v)
	}
}

func TestDeliverDefaultHeader(t *testing.T) {
	srv := azdotest.New(org, azdotest.Webhook{Name: hook, Secret: key, Header: signature.AzureDefaultHeader})
	t.Cleanup(srv.Close)
	c := newClient(srv.URL)
	c.Header = ""

	if _, err := c.Deliver(ctxTimeout(t, 5*time.Second), hook, payload, []byte(key)); err != nil {
		t.Fatalf("Deliver with no Header set = %v, want nil (the default header, %s)", err, signature.AzureDefaultHeader)
	}
	if d := srv.Deliveries(); len(d) != 1 || !d[0].Verified {
		t.Errorf("deliveries = %+v, want one verified", d)
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		name    string
		base    string
		org     string
		webhook string
		want    string
	}{
		{"an empty base URL is Azure DevOps Services", "", "contoso", "deploy",
			"https://dev.azure.com/contoso/_apis/public/distributedtask/webhooks/deploy?api-version=6.0-preview"},
		{"a base URL keeps its scheme and port", "http://127.0.0.1:8080", "contoso", "deploy",
			"http://127.0.0.1:8080/contoso/_apis/public/distributedtask/webhooks/deploy?api-version=6.0-preview"},
		{"trailing slashes on the base URL are dropped", "http://127.0.0.1:8080//", "contoso", "deploy",
			"http://127.0.0.1:8080/contoso/_apis/public/distributedtask/webhooks/deploy?api-version=6.0-preview"},
		{"a base URL with a path keeps it", "https://tfs.example.com/tfs", "DefaultCollection", "deploy",
			"https://tfs.example.com/tfs/DefaultCollection/_apis/public/distributedtask/webhooks/deploy?api-version=6.0-preview"},
		{"an organization with a space is escaped", "", "my org", "deploy",
			"https://dev.azure.com/my%20org/_apis/public/distributedtask/webhooks/deploy?api-version=6.0-preview"},
		{"an organization with a slash or query stays one segment", "", "a/b?c#d", "deploy",
			"https://dev.azure.com/a%2Fb%3Fc%23d/_apis/public/distributedtask/webhooks/deploy?api-version=6.0-preview"},
		{"a webhook name keeps its case, dashes and underscores", "", "contoso", "Deploy-Prod_2",
			"https://dev.azure.com/contoso/_apis/public/distributedtask/webhooks/Deploy-Prod_2?api-version=6.0-preview"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &azdo.Client{BaseURL: tt.base, Org: tt.org}
			if got := c.URL(tt.webhook); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.webhook, got, tt.want)
			}
		})
	}
}

func TestURLMatchesTheDouble(t *testing.T) {
	srv := newServer(t)
	if got, want := newClient(srv.URL).URL(hook), srv.WebhookURL(hook); got != want {
		t.Errorf("URL(%q) = %q, want the double's %q", hook, got, want)
	}
}

func TestDeliverRefused(t *testing.T) {
	tests := []struct {
		name    string
		hooks   []azdotest.Webhook // nil: the deploy webhook with header and key
		webhook string             // "": hook
		secret  string             // "": key
		body    string             // "": payload
		script  []azdotest.Step
		want    error
		status  int
	}{
		{name: "an unknown webhook is ErrWebhookNotFound", webhook: "other",
			want: azdo.ErrWebhookNotFound, status: 500},
		{name: "a webhook named like another error is still ErrWebhookNotFound", webhook: "HashMismatch",
			want: azdo.ErrWebhookNotFound, status: 500},
		{name: "a wrong secret is ErrSignatureRefused", secret: "wrong",
			want: azdo.ErrSignatureRefused, status: 500},
		{name: "a wrong secret with a payload quoting Azure's not-found message is ErrSignatureRefused",
			secret: "wrong", body: `{"note":"Cannot find webhook for the given webHookId x"}`,
			want: azdo.ErrSignatureRefused, status: 500},
		{name: "a webhook expecting another header is ErrSignatureRefused",
			hooks: []azdotest.Webhook{{Name: hook, Secret: key, Header: "x-other-sig"}},
			want:  azdo.ErrSignatureRefused, status: 500},
		{name: "a 400 about a non-hex signature is ErrRefused: the relay always sends hex, so it says nothing of the secret",
			script: []azdotest.Step{azdotest.Status(400).Message("The signature is not a valid hexadecimal string.")},
			want:   azdo.ErrRefused, status: 400},
		{name: "a 400 echoing a payload that holds the word signature is ErrRefused, not a refused signature",
			script: []azdotest.Step{azdotest.Status(400).Message(`Bad request. Received Event payload: {"signature":"svc"}`)},
			want:   azdo.ErrRefused, status: 400},
		{name: "any other 400 is ErrRefused", script: []azdotest.Step{azdotest.Status(400)},
			want: azdo.ErrRefused, status: 400},
		{name: "a 401 is ErrRefused", script: []azdotest.Step{azdotest.Status(401)},
			want: azdo.ErrRefused, status: 401},
		{name: "a 403 is ErrRefused", script: []azdotest.Step{azdotest.Status(403)},
			want: azdo.ErrRefused, status: 403},
		{name: "a 404 is ErrRefused", script: []azdotest.Step{azdotest.Status(404)},
			want: azdo.ErrRefused, status: 404},
		{name: "a 500 with no known message is ErrServerError, not retried", script: []azdotest.Step{azdotest.Status(500)},
			want: azdo.ErrServerError, status: 500},
		{name: "a 302 without Location is ErrRefused", script: []azdotest.Step{azdotest.Status(302)},
			want: azdo.ErrRefused, status: 302},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hooks := tt.hooks
			if hooks == nil {
				hooks = []azdotest.Webhook{{Name: hook, Secret: key, Header: header}}
			}
			srv := azdotest.New(org, hooks...)
			defer srv.Close()
			srv.Script(tt.script...)
			webhook, secret, body := or(tt.webhook, hook), or(tt.secret, key), or(tt.body, string(payload))

			_, err := newClient(srv.URL).Deliver(ctxTimeout(t, 5*time.Second), webhook, []byte(body), []byte(secret))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Deliver(%q) = %v, want %v", webhook, err, tt.want)
			}
			e := deliveryError(t, err)
			if e.Status != tt.status || e.Attempts != 1 {
				t.Errorf("Deliver(%q) = {Status:%d Attempts:%d}, want {%d 1}", webhook, e.Status, e.Attempts, tt.status)
			}
			if n := srv.Count(); n != 1 {
				t.Errorf("the double recorded %d deliveries, want 1: a refusal is not retried", n)
			}
			// Azure's answer repeats the payload: the error must not.
			if strings.Contains(err.Error(), body) || strings.Contains(err.Error(), "svc") {
				t.Errorf("Deliver error %q repeats the payload", err)
			}
		})
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestDeliverRetries(t *testing.T) {
	tests := []struct {
		name     string
		script   []azdotest.Step
		want     error // nil: success
		status   int   // the *azdo.Error's Status, or the Result's
		attempts int
	}{
		{name: "a 503 then a 200 succeeds on the second attempt",
			script: []azdotest.Step{azdotest.Status(503)}, status: 200, attempts: 2},
		{name: "a 429 without Retry-After then a 200 succeeds on the second attempt",
			script: []azdotest.Step{azdotest.Status(429)}, status: 200, attempts: 2},
		{name: "two 503s then a 200 succeeds on the third attempt",
			script: []azdotest.Step{azdotest.Status(503), azdotest.Status(503)}, status: 200, attempts: 3},
		{name: "three 503s is ErrUnavailable after three attempts",
			script: []azdotest.Step{azdotest.Status(503), azdotest.Status(503), azdotest.Status(503)},
			want:   azdo.ErrUnavailable, status: 503, attempts: 3},
		{name: "three 429s is ErrThrottled after three attempts",
			script: []azdotest.Step{azdotest.Status(429), azdotest.Status(429), azdotest.Status(429)},
			want:   azdo.ErrThrottled, status: 429, attempts: 3},
		{name: "a 503 then a refusal stops at the refusal",
			script: []azdotest.Step{azdotest.Status(503), azdotest.Status(403)},
			want:   azdo.ErrRefused, status: 403, attempts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			srv.Script(tt.script...)

			res, err := newClient(srv.URL).Deliver(ctxTimeout(t, 5*time.Second), hook, payload, []byte(key))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Deliver = %v, want nil", err)
				}
				if res.Status != tt.status || res.Attempts != tt.attempts {
					t.Errorf("Deliver = %+v, want {Status:%d Attempts:%d}", res, tt.status, tt.attempts)
				}
			} else {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Deliver = %v, want %v", err, tt.want)
				}
				if e := deliveryError(t, err); e.Status != tt.status || e.Attempts != tt.attempts {
					t.Errorf("Deliver = {Status:%d Attempts:%d}, want {%d %d}", e.Status, e.Attempts, tt.status, tt.attempts)
				}
			}
			got := srv.Deliveries()
			if len(got) != tt.attempts {
				t.Fatalf("the double recorded %d deliveries, want %d", len(got), tt.attempts)
			}
			for i, d := range got {
				if !bytes.Equal(d.Body, payload) {
					t.Errorf("delivery %d body = %q, want %q", i, d.Body, payload)
				}
			}
		})
	}
}

func TestDeliverWaitsRetryAfter(t *testing.T) {
	srv := newServer(t)
	srv.Script(azdotest.Status(429).RetryAfter(1))

	start := time.Now()
	res, err := newClient(srv.URL).Deliver(ctxTimeout(t, 10*time.Second), hook, payload, []byte(key))
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Deliver = %v, want nil", err)
	}
	if want := (azdo.Result{Status: 200, Attempts: 2}); res != want {
		t.Errorf("Deliver = %+v, want %+v", res, want)
	}
	if n := srv.Count(); n != 2 {
		t.Errorf("the double recorded %d deliveries, want 2", n)
	}
	if elapsed < 950*time.Millisecond || elapsed > 2500*time.Millisecond {
		t.Errorf("Deliver took %v, want about the 1s Retry-After", elapsed)
	}
}

func TestDeliverGivesUpWhenRetryAfterPassesTheDeadline(t *testing.T) {
	srv := newServer(t)
	srv.Script(azdotest.Status(429).RetryAfter(30))

	start := time.Now()
	_, err := newClient(srv.URL).Deliver(ctxTimeout(t, 3*time.Second), hook, payload, []byte(key))
	elapsed := time.Since(start)
	if !errors.Is(err, azdo.ErrThrottled) {
		t.Fatalf("Deliver = %v, want %v", err, azdo.ErrThrottled)
	}
	if e := deliveryError(t, err); e.Status != 429 || e.Attempts != 1 {
		t.Errorf("Deliver = {Status:%d Attempts:%d}, want {429 1}", e.Status, e.Attempts)
	}
	if elapsed > time.Second {
		t.Errorf("Deliver took %v, want an answer at once, well before the 3s deadline", elapsed)
	}
	if n := srv.Count(); n != 1 {
		t.Errorf("the double recorded %d deliveries, want 1", n)
	}
}

// With MaxWait, a wait longer than it ends the call at once, the wait Azure asked for
// on the error, so that the caller can put the delivery aside rather than wait.
func TestDeliverStopsAtMaxWaitAndSaysWhenToRetry(t *testing.T) {
	for _, tt := range []struct {
		name     string
		script   []azdotest.Step
		attempts int
		wait     time.Duration
	}{
		{"429 asking for a minute", []azdotest.Step{azdotest.Status(429).RetryAfter(60)}, 1, time.Minute},
		{"503 asking for 5 s", []azdotest.Step{azdotest.Status(503).RetryAfter(5)}, 1, 5 * time.Second},
		{"429 asking for 1 s is waited for, then 429 for 900 s", []azdotest.Step{azdotest.Status(429).RetryAfter(1), azdotest.Status(429).RetryAfter(900)}, 2, 15 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			srv.Script(tt.script...)
			c := newClient(srv.URL)
			c.MaxWait = 2 * time.Second
			start := time.Now()
			_, err := c.Deliver(ctxTimeout(t, 20*time.Second), hook, payload, []byte(key))
			if e := deliveryError(t, err); e.Attempts != tt.attempts || e.RetryAfter != tt.wait {
				t.Errorf("Deliver = %+v, want %d attempts and RetryAfter %v", e, tt.attempts, tt.wait)
			}
			if took := time.Since(start); took > time.Duration(tt.attempts)*1500*time.Millisecond {
				t.Errorf("Deliver took %v: it waited longer than MaxWait", took)
			}
		})
	}
}

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDeliverRetriesRefusedConnections(t *testing.T) {
	c := newClient("http://" + closedAddr(t))
	c.MaxAttempts = 4

	start := time.Now()
	_, err := c.Deliver(ctxTimeout(t, 5*time.Second), hook, payload, []byte(key))
	elapsed := time.Since(start)
	if !errors.Is(err, azdo.ErrUnavailable) {
		t.Fatalf("Deliver = %v, want %v", err, azdo.ErrUnavailable)
	}
	if e := deliveryError(t, err); e.Status != 0 || e.Attempts != 4 {
		t.Errorf("Deliver = {Status:%d Attempts:%d}, want {0 4}", e.Status, e.Attempts)
	}
	if elapsed > time.Second {
		t.Errorf("Deliver took %v, want well under a second with 5ms backoff", elapsed)
	}
}

// TestDeliverNeverRetriesAnAmbiguousFailure: once Azure may have the request, a
// retry could start a second run, as nothing deduplicates.
func TestDeliverNeverRetriesAnAmbiguousFailure(t *testing.T) {
	tests := []struct {
		name     string
		step     azdotest.Step
		deadline time.Duration
		want     error
	}{
		{"a request that hangs is ErrNoAnswer", azdotest.Hang(), 300 * time.Millisecond, azdo.ErrNoAnswer},
		{"an answer later than the deadline is ErrNoAnswer", azdotest.Delay(3 * time.Second), 300 * time.Millisecond, azdo.ErrNoAnswer},
		// Time enough for retries: only the kind of failure may prevent them.
		{"a connection dropped after the request is ErrConnection", azdotest.Drop(), 5 * time.Second, azdo.ErrConnection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			srv.Script(tt.step)

			start := time.Now()
			_, err := newClient(srv.URL).Deliver(ctxTimeout(t, tt.deadline), hook, payload, []byte(key))
			elapsed := time.Since(start)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Deliver = %v, want %v", err, tt.want)
			}
			if e := deliveryError(t, err); e.Status != 0 || e.Attempts != 1 {
				t.Errorf("Deliver = {Status:%d Attempts:%d}, want {0 1}", e.Status, e.Attempts)
			}
			if elapsed > tt.deadline+time.Second {
				t.Errorf("Deliver took %v, want about the %v deadline at most", elapsed, tt.deadline)
			}
			if n := srv.Count(); n != 1 {
				t.Errorf("the double recorded %d deliveries on return, want 1", n)
			}
			time.Sleep(100 * time.Millisecond) // a retry in the background would show up now
			if n := srv.Count(); n != 1 {
				t.Errorf("the double recorded %d deliveries after return, want 1", n)
			}
		})
	}
}

func TestDeliverDoesNotRetryADropOnAReusedConnection(t *testing.T) {
	srv := newServer(t)
	c := newClient(srv.URL)
	ctx := ctxTimeout(t, 5*time.Second)
	if _, err := c.Deliver(ctx, hook, payload, []byte(key)); err != nil {
		t.Fatalf("first Deliver = %v, want nil", err)
	}
	srv.Script(azdotest.Drop())
	_, err := c.Deliver(ctx, hook, payload, []byte(key))
	if !errors.Is(err, azdo.ErrConnection) {
		t.Fatalf("second Deliver = %v, want %v", err, azdo.ErrConnection)
	}
	time.Sleep(50 * time.Millisecond)
	if n := srv.Count(); n != 2 {
		t.Errorf("the double recorded %d deliveries, want 2: net/http must not replay the POST", n)
	}
}

// TestDeliverAfterAFreeze: a keep-alive connection idle through a long freeze may
// have been forgotten on the way to Azure, and a POST on it is lost after it was
// sent. After an idle gap longer than IdleReset the client dials anew, so the
// delivery is not a "may have been queued" failure for a request Azure never saw.
func TestDeliverAfterAFreeze(t *testing.T) {
	const forget = 100 * time.Millisecond
	tests := []struct {
		name      string
		idleReset time.Duration
		want      error
	}{
		{"idle connections are closed after the idle gap", forget / 2, nil},
		{"the double does forget: a client that keeps them loses the request", time.Hour, azdo.ErrConnection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			srv.ForgetIdle(forget)
			c := newClient(srv.URL)
			c.IdleReset = tt.idleReset
			ctx := ctxTimeout(t, 5*time.Second)
			if _, err := c.Deliver(ctx, hook, payload, []byte(key)); err != nil {
				t.Fatalf("first Deliver = %v, want nil", err)
			}
			time.Sleep(2 * forget) // the container is frozen
			_, err := c.Deliver(ctx, hook, payload, []byte(key))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Deliver after the freeze = %v, want %v", err, tt.want)
			}
			if tt.want == nil {
				if d := srv.Deliveries(); len(d) != 2 || !d[1].Verified {
					t.Errorf("Azure got %d deliveries, want 2, the second verified", len(d))
				}
			}
		})
	}
}

func TestDeliverTLS(t *testing.T) {
	srv := azdotest.NewTLS(org, azdotest.Webhook{Name: hook, Secret: key, Header: header})
	t.Cleanup(srv.Close)

	t.Run("an untrusted certificate is ErrTLS and nothing is sent", func(t *testing.T) {
		_, err := newClient(srv.URL).Deliver(ctxTimeout(t, 5*time.Second), hook, payload, []byte(key))
		if !errors.Is(err, azdo.ErrTLS) {
			t.Fatalf("Deliver = %v, want %v", err, azdo.ErrTLS)
		}
		if e := deliveryError(t, err); e.Attempts != 1 {
			t.Errorf("Deliver Attempts = %d, want 1", e.Attempts)
		}
		if n := srv.Count(); n != 0 {
			t.Errorf("the double recorded %d deliveries, want 0: the handshake fails first", n)
		}
	})
	t.Run("a trusted certificate is accepted", func(t *testing.T) {
		trusted := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		c := newClient(srv.URL)
		c.HTTP = azdo.NewHTTPClient(trusted)
		res, err := c.Deliver(ctxTimeout(t, 5*time.Second), hook, payload, []byte(key))
		if err != nil {
			t.Fatalf("Deliver = %v, want nil", err)
		}
		if res.Status != 200 {
			t.Errorf("Deliver Status = %d, want 200", res.Status)
		}
		if d := srv.Deliveries(); len(d) != 1 || !d[0].Verified {
			t.Errorf("deliveries = %d, want 1 verified", len(d))
		}
	})
}

func TestDeliverChecksItsInputs(t *testing.T) {
	tests := []struct {
		name    string
		webhook string
		secret  []byte
		want    error
	}{
		{"an empty webhook name is ErrBadName", "", []byte(key), azdo.ErrBadName},
		{"a webhook name with a slash is ErrBadName", "a/b", []byte(key), azdo.ErrBadName},
		{"a webhook name climbing the path is ErrBadName", "..", []byte(key), azdo.ErrBadName},
		{"a webhook name with a space is ErrBadName", "a b", []byte(key), azdo.ErrBadName},
		{"a webhook name with a query is ErrBadName", "a?api-version=1.0", []byte(key), azdo.ErrBadName},
		{"a webhook name with non-ASCII is ErrBadName", "déploy", []byte(key), azdo.ErrBadName},
		{"a webhook name with a trailing newline is ErrBadName", "deploy\n", []byte(key), azdo.ErrBadName},
		{"a webhook name over 256 characters is ErrBadName", strings.Repeat("a", 257), []byte(key), azdo.ErrBadName},
		{"an empty secret is ErrNoSecret", hook, []byte{}, signature.ErrNoSecret},
		{"a nil secret is ErrNoSecret", hook, nil, signature.ErrNoSecret},
	}
	srv := newServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newClient(srv.URL).Deliver(ctxTimeout(t, 5*time.Second), tt.webhook, payload, tt.secret)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Deliver(%q) = %v, want %v", tt.webhook, err, tt.want)
			}
			deliveryError(t, err)
			if n := srv.Count(); n != 0 {
				t.Errorf("the double recorded %d deliveries, want 0", n)
			}
		})
	}
}

// TestDeliverDoesNotFollowRedirects: a redirect would move the signed payload elsewhere.
func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		defaultHTTP bool
	}{
		{"a 301 is ErrRefused", http.StatusMovedPermanently, false},
		{"a 302 is ErrRefused", http.StatusFound, false},
		{"a 307, which would re-POST the body, is ErrRefused", http.StatusTemporaryRedirect, false},
		{"a 308, which would re-POST the body, is ErrRefused", http.StatusPermanentRedirect, false},
		{"a 307 is ErrRefused by a Client with no HTTP client set", http.StatusTemporaryRedirect, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var elsewhere atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" {
					elsewhere.Add(1)
					return
				}
				http.Redirect(w, r, "/elsewhere", tt.status)
			}))
			defer srv.Close()
			c := newClient(srv.URL)
			if tt.defaultHTTP {
				c.HTTP = nil
			}

			_, err := c.Deliver(ctxTimeout(t, 5*time.Second), hook, payload, []byte(key))
			if !errors.Is(err, azdo.ErrRefused) {
				t.Fatalf("Deliver = %v, want %v", err, azdo.ErrRefused)
			}
			if e := deliveryError(t, err); e.Status != tt.status || e.Attempts != 1 {
				t.Errorf("Deliver = {Status:%d Attempts:%d}, want {%d 1}", e.Status, e.Attempts, tt.status)
			}
			if n := elsewhere.Load(); n != 0 {
				t.Errorf("the redirect target received %d requests, want 0", n)
			}
		})
	}
}

func TestDeliverConcurrently(t *testing.T) {
	const n = 100
	srv := newServer(t)
	c := newClient(srv.URL)
	ctx := ctxTimeout(t, 10*time.Second)

	bodies := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		bodies[i] = fmt.Appendf(nil, `{"n":%d,"pad":%q}`, i, strings.Repeat("x", i*37))
		wg.Go(func() {
			_, errs[i] = c.Deliver(ctx, hook, bodies[i], []byte(key))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Deliver %d = %v, want nil", i, err)
		}
	}

	seen := make(map[string]int, n)
	for _, d := range srv.Deliveries() {
		if !d.Verified {
			t.Errorf("delivery %q not verified: its signature does not match its body", d.Body)
		}
		seen[string(d.Body)]++
	}
	if len(seen) != n {
		t.Errorf("the double recorded %d distinct bodies, want %d", len(seen), n)
	}
	for i, b := range bodies {
		if seen[string(b)] != 1 {
			t.Errorf("body %d was recorded %d times, want 1", i, seen[string(b)])
		}
	}
}

func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	c := newClient(srv.URL)
	ctx := context.Background()
	for _, bm := range []struct {
		name string
		size int
	}{{"1KiB", 1 << 10}, {"16KiB", 16 << 10}, {"1MiB", 1 << 20}} {
		size := bm.size
		body := bytes.Repeat([]byte("a"), size)
		copy(body, `{"a":"`)
		copy(body[size-2:], `"}`)
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Deliver(ctx, hook, body, []byte(key)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDeliverNothingSentIsNotAmbiguous: when the connection fails before the request
// is written (a dial that times out, a TLS handshake reset or never answered, the
// deadline passing mid-dial), Azure cannot have queued a run. That failure must not
// read as "may have been queued", or a scheduled event would not be retried by
// Lambda and would never reach the dead-letter queue.
func TestDeliverNothingSentIsNotAmbiguous(t *testing.T) {
	tests := []struct {
		name     string
		path     func() *azdotest.Path
		deadline time.Duration
		attempts int
		want     error
	}{
		{"a TLS handshake never answered until the deadline is out of time", azdotest.SilentHandshake, 500 * time.Millisecond, 3, azdo.ErrNoTime},
		{"a TLS handshake never answered past the handshake timeout is unavailable", azdotest.SilentHandshake, 5 * time.Second, 1, azdo.ErrUnavailable},
		{"a TLS handshake reset is unavailable, and tried again", azdotest.ResetHandshake, 5 * time.Second, 3, azdo.ErrUnavailable},
		{"a dial cut off by the deadline is out of time", azdotest.Unanswered, 500 * time.Millisecond, 3, azdo.ErrNoTime},
		{"a dial past the dial timeout is unavailable", azdotest.Unanswered, 5 * time.Second, 1, azdo.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.path()
			t.Cleanup(p.Close)
			c := newClient(p.URL)
			c.MaxAttempts = tt.attempts
			_, err := c.Deliver(ctxTimeout(t, tt.deadline), hook, payload, []byte(key))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Deliver = %v, want %v", err, tt.want)
			}
			if azdo.MayHaveQueued(err) {
				t.Errorf("MayHaveQueued(%v) = true, want false: no request byte left the client", err)
			}
			if e := deliveryError(t, err); e.Status != 0 {
				t.Errorf("Deliver = {Status:%d}, want 0", e.Status)
			}
			if tt.want == azdo.ErrUnavailable && tt.attempts > 1 {
				if e := deliveryError(t, err); e.Attempts != tt.attempts {
					t.Errorf("Deliver made %d attempts, want %d: nothing was sent, so trying again is safe", e.Attempts, tt.attempts)
				}
			}
		})
	}
}
