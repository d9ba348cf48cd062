package e2e

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

// faultTimeout is the function timeout of the fault matrix: the relay keeps 2.3 s
// (answer margin and the Port report budget), so it works for 2.7 s.
const faultTimeout = 5 * time.Second

// TestFaultSecretsManager: each case starts a fresh relay, whose secret cache is cold.
func TestFaultSecretsManager(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	cases := []struct {
		name  string
		fault func(sm *smtest.Server)
		heal  func(sm *smtest.Server)
		words []string
	}{
		{"Secrets Manager is down", func(sm *smtest.Server) { sm.SetFault(smtest.Down) }, nil,
			[]string{"could not read its secret", "try again"}},
		{"Secrets Manager is slower than the deadline", func(sm *smtest.Server) { sm.SetFault(smtest.Slow(4 * time.Second)) }, nil,
			[]string{"could not read its secret"}},
		{"Secrets Manager throttles", func(sm *smtest.Server) { sm.SetFault(smtest.Throttle) }, nil,
			[]string{"could not read its secret"}},
		{"IAM denies GetSecretValue", func(sm *smtest.Server) { sm.SetFault(smtest.AccessDenied) }, nil,
			[]string{"could not read its secret"}},
		{"Secrets Manager fails inside (500)", func(sm *smtest.Server) { sm.SetFault(smtest.InternalError) }, nil,
			[]string{"could not read its secret"}},
		{"the secret does not exist", func(sm *smtest.Server) { sm.Delete(secretName) }, func(sm *smtest.Server) { sm.Put(secretName, portSecret) },
			[]string{"not found", "PORT_SECRET_ID"}},
		{"the secret is empty", func(sm *smtest.Server) { sm.Put(secretName, "") }, func(sm *smtest.Server) { sm.Put(secretName, portSecret) },
			[]string{"empty"}},
		{"the secret is JSON without clientSecret", func(sm *smtest.Server) { sm.Put(secretName, `{"clientId":"abc"}`) }, func(sm *smtest.Server) { sm.Put(secretName, portSecret) },
			[]string{"clientSecret"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, faultTimeout)
			tc.fault(w.sm)
			r := invoke(t, w.relay, signedEvent(0, "/", portBody("r_sm")))
			if r.status != 503 {
				t.Fatalf("status %d %v %v, want 503", r.status, r.body, r.fnErr)
			}
			hasWords(t, "error", r.errMsg, tc.words...)
			if r.took > faultTimeout-time.Second {
				t.Errorf("answered after %v, too close to the %v timeout", r.took, faultTimeout)
			}
			if n := w.az.Count(); n != 0 {
				t.Errorf("%d deliveries, want none", n)
			}
			line := oneLogLine(t, r)
			if line["secretId"] != secretName || line["level"] != "ERROR" {
				t.Errorf("log line %v: want level ERROR and secretId %q", line, secretName)
			}
			wantOutcome(t, line, "Failed", "Cause", "secret")
			failedAt := time.Now()
			w.sm.SetFault(smtest.None)
			if tc.heal != nil {
				tc.heal(w.sm)
			}
			// The failure is remembered for secret.FailureTTL: a flood of requests
			// meanwhile costs no Secrets Manager call.
			// A read cut off by the invocation's own deadline (a slow Secrets Manager,
			// or the SDK's backoff after throttling running past it) is not remembered:
			// its error names the deadline, and the next request reads again.
			errText, _ := line["error"].(string)
			if cut := strings.Contains(errText, "deadline exceeded") || strings.Contains(errText, "canceled"); !cut {
				calls := w.sm.Calls()
				if again := invoke(t, w.relay, signedEvent(1, "/", portBody("r_sm"))); again.status != 503 || w.sm.Calls() != calls {
					t.Errorf("right after the failure: status %d with %d more Secrets Manager calls, want 503 and none", again.status, w.sm.Calls()-calls)
				}
				time.Sleep(time.Until(failedAt.Add(secret.FailureTTL)))
			}
			served(t, w.relay, w.az)
			faultCases.Add(1)
		})
	}
}

// TestFaultAzure runs Azure's misbehaviours against one relay, one after another.
func TestFaultAzure(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newWorld(t, faultTimeout)
	served(t, w.relay, w.az) // warm: the secret is cached from here on

	cases := []struct {
		name       string
		path       string
		script     []azdotest.Step
		status     int
		words      []string
		deliveries int
		cause      string // the Failed metric's Cause; "" for Forwarded
	}{
		{"Azure cannot find the webhook", "/webhooks/" + hookMissing, nil, 502,
			[]string{"cannot find this webhook", "run the pipeline once"}, 1, "notfound"},
		{"Azure's hash does not match (the service connection has another secret)", "/webhooks/" + hookRotated, nil, 502,
			[]string{"refused the signature", "clientSecret"}, 1, "signature"},
		{"Azure answers 400", "/", []azdotest.Step{azdotest.Status(400)}, 502,
			[]string{"refused the request"}, 1, "refused"},
		{"Azure answers 429 with Retry-After, then accepts", "/", []azdotest.Step{azdotest.Status(429).RetryAfter(1)}, 200,
			nil, 2, ""},
		{"Azure answers 429 with a Retry-After past the deadline", "/", []azdotest.Step{azdotest.Status(429).RetryAfter(30)}, 502,
			[]string{"throttling", "nothing was queued"}, 1, "throttled"},
		{"Azure answers 503, then accepts", "/", []azdotest.Step{azdotest.Status(503)}, 200,
			nil, 2, ""},
		{"Azure keeps answering 503", "/", []azdotest.Step{azdotest.Status(503), azdotest.Status(503), azdotest.Status(503)}, 502,
			[]string{"unavailable", "nothing was queued"}, 3, "unavailable"},
		{"Azure is slower than the deadline", "/", []azdotest.Step{azdotest.Delay(4 * time.Second)}, 504,
			[]string{"did not answer in time", "did not retry"}, 1, "timeout"},
		{"Azure drops the connection after the request", "/", []azdotest.Step{azdotest.Drop()}, 502,
			[]string{"broke after the request was sent", "did not retry"}, 1, "connection"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.az.Reset()
			w.az.Script(tc.script...)
			callsBefore := w.sm.Calls()
			r := invoke(t, w.relay, signedEvent(2, tc.path, portBody("r_az")))
			if r.status != tc.status {
				t.Fatalf("status %d %v %v, want %d", r.status, r.body, r.fnErr, tc.status)
			}
			if tc.status == 200 {
				if r.body["forwarded"] != true || r.body["azureStatus"] != float64(200) {
					t.Errorf("body %v: want forwarded with azureStatus 200", r.body)
				}
			} else {
				hasWords(t, "error", r.errMsg, tc.words...)
			}
			time.Sleep(100 * time.Millisecond) // a retry, if any, would arrive by now
			if n := w.az.Count(); n != tc.deliveries {
				t.Errorf("%d deliveries, want %d", n, tc.deliveries)
			}
			line := oneLogLine(t, r)
			if line["attempts"] != float64(tc.deliveries) {
				t.Errorf("log line %v: want attempts %d", line, tc.deliveries)
			}
			if tc.cause == "" {
				wantOutcome(t, line, "Forwarded", "")
			} else {
				wantOutcome(t, line, "Failed", "Cause", tc.cause)
			}
			// A refused signature reads the secret again at once, and asks for AWSPREVIOUS
			// (a rotation under way), which this secret, never rotated, does not have.
			wantCalls := callsBefore
			if strings.Contains(tc.name, "hash") {
				wantCalls += 2
			}
			if w.sm.Calls() != wantCalls {
				t.Errorf("Secrets Manager called %d times on a warm invocation, want %d", w.sm.Calls()-callsBefore, wantCalls-callsBefore)
			}
			w.az.Reset()
			served(t, w.relay, w.az)
			if w.sm.Calls() != wantCalls {
				t.Errorf("the next invocation called Secrets Manager again (calls %d → %d)", wantCalls, w.sm.Calls())
			}
			faultCases.Add(1)
		})
	}
}

// TestFaultAzureRefused: nothing listens at AZURE_DEVOPS_URL; then Azure comes back
// at that address and the same relay delivers.
func TestFaultAzureRefused(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	sm, az := newSM(t), newAzure(t, false)
	fn := start(t, relayBin, faultTimeout, relayEnv(sm, "http://"+addr))

	r := invoke(t, fn, signedEvent(0, "/", portBody("r_refused")))
	if r.status != 502 {
		t.Fatalf("status %d %v, want 502", r.status, r.body)
	}
	hasWords(t, "error", r.errMsg, "unavailable", "nothing was queued")
	line := oneLogLine(t, r)
	if line["attempts"] != float64(3) {
		t.Errorf("log line %v: want 3 attempts (refused connections are retried)", line)
	}
	wantOutcome(t, line, "Failed", "Cause", "unavailable")

	// Azure comes back at the same address.
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", addr, err)
	}
	target, _ := url.Parse(az.URL)
	proxy := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}
	go proxy.Serve(l)
	t.Cleanup(func() { proxy.Close() })
	served(t, fn, az)
	faultCases.Add(1)
}

// TestFaultAzureUntrustedTLS: Azure's certificate is one no system trusts.
func TestFaultAzureUntrustedTLS(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	sm, az := newSM(t), newAzure(t, true)
	fn := start(t, relayBin, faultTimeout, relayEnv(sm, az.URL))
	for i := range 2 { // the second shows the function still serves, and the same way
		r := invoke(t, fn, signedEvent(i, "/", portBody("r_tls")))
		if r.status != 502 {
			t.Fatalf("status %d %v, want 502", r.status, r.body)
		}
		hasWords(t, "error", r.errMsg, "TLS certificate is not trusted", "AZURE_DEVOPS_URL")
		line := oneLogLine(t, r)
		if line["attempts"] != float64(1) {
			t.Errorf("log line %v: want 1 attempt", line)
		}
		wantOutcome(t, line, "Failed", "Cause", "tls")
	}
	if n := az.Count(); n != 0 {
		t.Errorf("%d requests reached Azure past a refused handshake", n)
	}
	faultCases.Add(1)
}

// TestFaultDeadline: with a short function timeout and Azure hanging, the relay
// answers 504 itself, before the emulator's "Task timed out".
func TestFaultDeadline(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	const timeout = 3 * time.Second // the relay works for 0.7 s of it
	w := newWorld(t, timeout)
	w.az.Script(azdotest.Hang())
	r := invoke(t, w.relay, signedEvent(1, "/", portBody("r_deadline")))
	if r.fnErr != nil || r.status != 504 {
		t.Fatalf("status %d %v %v, want 504 from the relay", r.status, r.body, r.fnErr)
	}
	hasWords(t, "error", r.errMsg, "did not answer in time")
	if r.took >= timeout-200*time.Millisecond {
		t.Errorf("answered after %v: too close to the %v timeout", r.took, timeout)
	}
	for _, l := range w.relay.Lines() {
		if strings.Contains(l, "Task timed out") {
			t.Errorf("the emulator timed the function out: %s", l)
		}
	}
	if n := w.az.Count(); n != 1 {
		t.Errorf("%d deliveries, want exactly 1", n)
	}
	wantOutcome(t, oneLogLine(t, r), "Failed", "Cause", "timeout")
	w.az.Reset()
	served(t, w.relay, w.az)
	faultCases.Add(1)
}

// TestFaultSIGTERM sends SIGTERM to the bootstrap while Azure is delaying its answer.
func TestFaultSIGTERM(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newWorld(t, faultTimeout)
	served(t, w.relay, w.az) // the bootstrap runs from here on
	pid, err := w.relay.BootstrapPID()
	if err != nil {
		t.Fatal(err)
	}
	w.az.Reset()
	w.az.Script(azdotest.Delay(800 * time.Millisecond))
	done := make(chan result, 1)
	go func() {
		defer close(done) // invoke's t.Fatal ends this goroutine without a result
		done <- invoke(t, w.relay, signedEvent(0, "/", portBody("r_sigterm")))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for w.az.Count() == 0 && time.Now().Before(deadline) { // Azure holds the request
		time.Sleep(5 * time.Millisecond)
	}
	if err := w.relay.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r, ok := <-done
	if !ok {
		t.FailNow()
	}
	if r.status != 200 || r.body["forwarded"] != true {
		t.Fatalf("status %d %v %v, want 200 forwarded", r.status, r.body, r.fnErr)
	}
	if r.took < 700*time.Millisecond {
		t.Errorf("answered after %v: the signal did not arrive during Azure's 800ms delay", r.took)
	}
	// The SIGTERM handler's line and the invocation's own line.
	var own, sigterm int
	for _, l := range r.logs {
		switch {
		case l["requestId"] == r.id:
			own++
		case strings.Contains(l["msg"].(string), "SIGTERM"):
			sigterm++
		default:
			t.Errorf("unexpected log line %v", l)
		}
	}
	if own != 1 || sigterm != 1 {
		t.Errorf("%d lines of the invocation and %d SIGTERM lines, want 1 and 1: %v", own, sigterm, r.logs)
	}
	if n := w.az.Count(); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
	w.az.Reset()
	served(t, w.relay, w.az)
	// Passing, it says nothing: a line naming SIGTERM in `make test` reads like a failure.
	if now, err := w.relay.BootstrapPID(); err != nil || now != pid {
		t.Errorf("bootstrap pid %d → %d (%v): the process did not survive SIGTERM", pid, now, err)
	}
	faultCases.Add(1)
}

// TestFaultAzureWrongOrg: AZURE_DEVOPS_ORG names an organization Azure does not
// serve here, so the webhook URL is unknown (404).
func TestFaultAzureWrongOrg(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newWorld(t, faultTimeout, "AZURE_DEVOPS_ORG=fabrikam")
	for i := range 2 { // the second shows the function still serves, and the same way
		r := invoke(t, w.relay, signedEvent(i, "/", portBody("r_org")))
		if r.status != 502 {
			t.Fatalf("status %d %v, want 502", r.status, r.body)
		}
		hasWords(t, "error", r.errMsg, "refused the request", "AZURE_DEVOPS_ORG")
		line := oneLogLine(t, r)
		if line["azureStatus"] != float64(404) {
			t.Errorf("log line %v: want azureStatus 404", line)
		}
		wantOutcome(t, line, "Failed", "Cause", "refused")
	}
	if d := w.az.Deliveries(); len(d) != 2 || d[0].Status != 404 {
		t.Errorf("deliveries %v: want 2 answered 404", d)
	}
	faultCases.Add(1)
}
