package e2e

import (
	"net/http"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
)

// maxRetryAttempts is the relay's EventInvokeConfig MaximumRetryAttempts in
// template.yaml: how often Lambda invokes an asynchronous event again after a
// function error.
func maxRetryAttempts(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`EventInvokeConfig:\s+MaximumRetryAttempts: (\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("template.yaml: no EventInvokeConfig MaximumRetryAttempts")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// invokeAsync invokes ev as Lambda does an asynchronous (EventBridge) event: again
// after each function error, up to retries times. It returns every result.
func invokeAsync(t *testing.T, fn *lambdatest.Function, ev []byte, retries int) []result {
	t.Helper()
	var out []result
	for range 1 + retries {
		r := invoke(t, fn, ev)
		out = append(out, r)
		if r.fnErr == nil {
			break
		}
	}
	return out
}

// TestScheduledNeverQueuedTwice: a scheduled event whose delivery may have queued a
// run is not a function error, so Lambda's retries cannot queue it again; one that
// certainly queued nothing is, so that Lambda retries it and the dead-letter queue
// keeps it.
func TestScheduledNeverQueuedTwice(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	retries := maxRetryAttempts(t)
	if retries == 0 {
		t.Fatal("template.yaml retries nothing: this test would prove nothing")
	}
	w := newWorld(t, 3*time.Second)
	ambiguous := []struct {
		name   string
		script []azdotest.Step
		words  []string
	}{
		{"Azure times out", []azdotest.Step{azdotest.Delay(10 * time.Second)}, []string{"did not answer in time", "may have been queued"}},
		{"Azure drops the connection after the request", []azdotest.Step{azdotest.Drop()}, []string{"broke after the request was sent", "may have been queued"}},
		{"Azure answers a bare 500", []azdotest.Step{azdotest.Status(500)}, []string{"server error", "may have been queued"}},
	}
	for _, tc := range ambiguous {
		t.Run(tc.name, func(t *testing.T) {
			w.az.Reset()
			w.az.Script(tc.script...)
			rs := invokeAsync(t, w.relay, lambdatest.ScheduledEvent("nightly-"+marker), retries)
			if len(rs) != 1 {
				t.Fatalf("Lambda invoked %d times, want 1: the first answer must not be a function error", len(rs))
			}
			r := rs[0]
			if r.body["forwarded"] != false || r.body["mayHaveQueued"] != true || r.body["webhook"] != hookDeploy {
				t.Errorf("result %v: want forwarded false, mayHaveQueued true, webhook %s", r.body, hookDeploy)
			}
			say, _ := r.body["error"].(string)
			hasWords(t, "error", say, tc.words...)
			time.Sleep(200 * time.Millisecond) // a retry, if any, would arrive by now
			if n := w.az.Count(); n != 1 {
				t.Errorf("%d deliveries, want exactly 1", n)
			}
			if line := oneLogLine(t, r); line != nil && (line["level"] != "ERROR" || line["mayHaveQueued"] != true) {
				t.Errorf("log line %v: want ERROR with mayHaveQueued", line)
			}
			awsCases.Add(1)
		})
	}
	t.Run("Azure keeps answering 503: nothing queued, so Lambda retries", func(t *testing.T) {
		w.az.Reset()
		for range 1 + retries {
			w.az.Script(azdotest.Status(503), azdotest.Status(503), azdotest.Status(503))
		}
		rs := invokeAsync(t, w.relay, lambdatest.ScheduledEvent("nightly-"+marker), retries)
		if len(rs) != 1+retries {
			t.Fatalf("Lambda invoked %d times, want %d", len(rs), 1+retries)
		}
		for _, r := range rs {
			if r.fnErr == nil || r.fnErr.Type != "Failure" {
				t.Errorf("got %v %v, want a function error", r.body, r.fnErr)
			}
		}
		for _, d := range w.az.Deliveries() {
			if d.Status != http.StatusServiceUnavailable {
				t.Errorf("a delivery was answered %d: want only 503s, which queue nothing", d.Status)
			}
		}
		awsCases.Add(1)
	})
	for _, tc := range []struct {
		name string
		path func() *azdotest.Path
	}{
		{"Azure's TLS handshake never answers: nothing sent, so Lambda retries", azdotest.SilentHandshake},
		{"Azure's TLS handshake is reset: nothing sent, so Lambda retries", azdotest.ResetHandshake},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.path()
			t.Cleanup(p.Close)
			fn := start(t, relayBin, 3*time.Second, relayEnv(w.sm, p.URL))
			rs := invokeAsync(t, fn, lambdatest.ScheduledEvent("nightly-"+marker), retries)
			if len(rs) != 1+retries {
				t.Fatalf("Lambda invoked %d times, want %d: a failure before sending must be a function error", len(rs), 1+retries)
			}
			for _, r := range rs {
				if r.fnErr == nil || r.fnErr.Type != "Failure" || r.body["mayHaveQueued"] != nil {
					t.Errorf("got %v %v, want a function error", r.body, r.fnErr)
					continue
				}
				hasWords(t, "error", r.fnErr.Message, "nothing was")
				if line := oneLogLine(t, r); line != nil && line["mayHaveQueued"] != nil {
					t.Errorf("log line %v: want no mayHaveQueued", line)
				}
			}
			awsCases.Add(1)
		})
	}
	w.az.Reset()
	served(t, w.relay, w.az)
}

// TestRESTAPIFront: behind an API Gateway REST API, which refuses a response with
// keys it does not know, Port gets the relay's answers, not a 502.
func TestRESTAPIFront(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newWorld(t, faultTimeout)
	gw := lambdatest.RESTGateway(w.relay)
	t.Cleanup(func() { gw.Close() })
	for _, tc := range []struct {
		name   string
		secret string
		status int
	}{{"signed by Port", portSecret, 200}, {"signed with another secret", otherSecret, 401}} {
		t.Run(tc.name, func(t *testing.T) {
			w.az.Reset()
			status, b, v := postSigned(t, gw.URL+"/webhooks/"+hookDeploy, tc.secret, portBody("r_rest_front"))
			if status != tc.status || v == nil {
				t.Fatalf("%d %s, want %d with the relay's JSON", status, b, tc.status)
			}
			if tc.status == 200 && (v["forwarded"] != true || w.az.Count() != 1) {
				t.Errorf("body %v, %d deliveries: want forwarded once", v, w.az.Count())
			}
			if tc.status != 200 {
				checkErrorBody(t, string(b))
			}
			acceptedCases.Add(1)
		})
	}
}
