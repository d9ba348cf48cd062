package azdotest

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a time a test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// windowStart is the start of a 10 s window (and of a 1 s one).
var windowStart = time.Unix(1_700_000_000, 0)

func newThrottled(t *testing.T, runs int, window time.Duration, now time.Time) (*Server, *clock) {
	t.Helper()
	srv := New(runsOrg, Webhook{Name: "open"}, Webhook{Name: "port", Secret: "test", Header: "x-port-signature"})
	t.Cleanup(srv.Close)
	srv.AddPipeline(deployPipeline)
	srv.AddPAT(goodPAT)
	c := &clock{now: now}
	srv.SetThrottle(Throttle{Runs: runs, Window: window, Now: c.Now})
	return srv, c
}

// Webhook deliveries and Runs API runs share one count; beyond it, Azure's 429 with
// the rate-limit headers and TF400733, and nothing taken; the next window takes again.
func TestThrottleTakesRunsPerWindowAndBlocksTheRest(t *testing.T) {
	srv, c := newThrottled(t, 2, 10*time.Second, windowStart.Add(3200*time.Millisecond))
	hook := func() (*http.Response, string) {
		t.Helper()
		resp, body, err := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("open"), nil, msBody)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	run := func() (*http.Response, string) {
		t.Helper()
		resp, body, err := post(t, http.DefaultClient, http.MethodPost, srv.RunsURL(runsProject, 7), runHeaders(), `{}`)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	if resp, _ := hook(); resp.StatusCode != 200 || resp.Header.Get("Retry-After") != "" {
		t.Fatalf("first delivery: %d Retry-After %q, want 200 without", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, _ := run(); resp.StatusCode != 200 {
		t.Fatalf("first run: %d, want 200", resp.StatusCode)
	}
	want := map[string]string{
		"Retry-After":           "7", // 6.8 s left in the window
		"X-RateLimit-Resource":  ThrottleResource,
		"X-RateLimit-Limit":     "2",
		"X-RateLimit-Remaining": "0",
		"X-RateLimit-Reset":     "1700000010",
	}
	for name, blocked := range map[string]func() (*http.Response, string){"delivery": hook, "run": run} {
		resp, body := blocked()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%s over the limit: %d, want 429", name, resp.StatusCode)
		}
		for h, v := range want {
			if got := resp.Header.Get(h); got != v {
				t.Errorf("%s over the limit: %s = %q, want %q", name, h, got, v)
			}
		}
		if resp.Header.Get("X-RateLimit-Delay") != "" {
			t.Errorf("%s over the limit has X-RateLimit-Delay: Azure sends it only on a delayed request", name)
		}
		e := decodeEnvelope(t, body)
		if e.TypeKey != "RequestBlockedException" || !strings.HasPrefix(e.Message, "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource") {
			t.Errorf("%s over the limit: envelope %+v, want RequestBlockedException, TF400733", name, e)
		}
	}
	if n := srv.RunCount(); n != 1 {
		t.Errorf("RunCount() = %d, want 1: a blocked run is not queued", n)
	}
	if d := srv.Deliveries(); len(d) != 2 || d[0].Status != 200 || d[1].Status != 429 || d[1].Verified {
		t.Errorf("Deliveries() = %+v, want one taken, one blocked (429, not verified)", d)
	}
	c.set(windowStart.Add(10 * time.Second))
	if resp, _ := run(); resp.StatusCode != 200 || srv.RunCount() != 2 {
		t.Errorf("next window: %d, %d runs; want 200 and the run queued", resp.StatusCode, srv.RunCount())
	}
}

// Retry-After is the whole seconds until the window ends, rounded up, at least 1.
func TestThrottleRetryAfterIsTheRestOfTheWindow(t *testing.T) {
	for _, tt := range []struct {
		name   string
		window time.Duration
		at     time.Duration // into the window
		want   string
	}{
		{"6.8 s left is 7", 10 * time.Second, 3200 * time.Millisecond, "7"},
		{"exactly 3 s left is 3", 10 * time.Second, 7 * time.Second, "3"},
		{"0.2 s left is 1", 10 * time.Second, 9800 * time.Millisecond, "1"},
		{"a window shorter than a second is 1", 250 * time.Millisecond, 0, "1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newThrottled(t, 1, tt.window, windowStart.Add(tt.at))
			if resp, _, err := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("open"), nil, msBody); err != nil || resp.StatusCode != 200 {
				t.Fatalf("first delivery: %v %v, want 200", resp, err)
			}
			resp, _, err := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("open"), nil, msBody)
			if err != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != tt.want {
				t.Fatalf("second delivery: %v %v, want 429 Retry-After %s", resp, err, tt.want)
			}
		})
	}
}

// A request Azure refuses anyway is answered as without a throttle and takes no place.
func TestThrottleCountsOnlyWhatItTakes(t *testing.T) {
	srv, _ := newThrottled(t, 1, time.Second, windowStart)
	refused := []struct {
		name   string
		url    string
		header map[string]string
		body   string
		want   int
	}{
		{"a bad signature", srv.WebhookURL("port"), map[string]string{"x-port-signature": sign("wrong", htBody)}, htBody, 500},
		{"an unknown pipeline", srv.RunsURL(runsProject, 99), runHeaders(), `{}`, 404},
		{"a wrong PAT", srv.RunsURL(runsProject, 7), runHeaders("Authorization", basic("", "wrong")), `{}`, 401},
	}
	for _, r := range refused {
		if resp, _, err := post(t, http.DefaultClient, http.MethodPost, r.url, r.header, r.body); err != nil || resp.StatusCode != r.want {
			t.Errorf("%s: %v %v, want %d", r.name, resp, err, r.want)
		}
	}
	if resp, _, _ := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("port"), map[string]string{"x-port-signature": htSig}, htBody); resp.StatusCode != 200 {
		t.Fatalf("first good delivery: %d, want 200: refusals took its place", resp.StatusCode)
	}
	if resp, _, _ := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("port"), map[string]string{"x-port-signature": htSig}, htBody); resp.StatusCode != 429 {
		t.Fatalf("second good delivery: %d, want 429", resp.StatusCode)
	}
	// Lifted: taken whatever the count.
	srv.SetThrottle(Throttle{})
	if resp, _, _ := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("open"), nil, msBody); resp.StatusCode != 200 {
		t.Errorf("after SetThrottle(Throttle{}): %d, want 200", resp.StatusCode)
	}
}
