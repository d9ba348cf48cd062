package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/signature"
)

// badCase is one row of the bad-input matrix. status is the HTTP status, or for an
// AWS event the status in the function error (errorType "Failure").
type badCase struct {
	name    string
	event   func() []byte
	status  int
	awsFail bool // an AWS-event invocation: a function error, not an HTTP answer
	words   []string
}

// withHeaders builds an event in shape i whose headers are those of a valid
// signature for body, changed by edit.
func withHeaders(i int, method, path string, body []byte, edit func(h http.Header)) func() []byte {
	return func() []byte {
		h := portHeaders(portSecret, time.Now().Unix(), body)
		edit(h)
		return shapes[i%3].make(method, path, h, body)
	}
}

// signedAt signs body at ts with secret, in shape i.
func signedAt(i int, secret string, ts func() int64, body []byte) func() []byte {
	return func() []byte {
		return shapes[i%3].make("POST", "/", portHeaders(secret, ts(), body), body)
	}
}

// signed is a correctly signed body, in shape i, to path.
func signed(i int, path string, body []byte) func() []byte {
	return func() []byte { return signedEvent(i, path, body) }
}

// raw is an event given as bytes, with fresh signature values spliced in where the
// template holds SIG and TS.
func raw(template string, body []byte) func() []byte {
	return func() []byte {
		ts := time.Now().Unix()
		s := strings.ReplaceAll(template, "TS", strconv.FormatInt(ts, 10))
		s = strings.ReplaceAll(s, "SIG", signature.SignPort([]byte(portSecret), ts, body))
		return []byte(s)
	}
}

func now() int64 { return time.Now().Unix() }

func badInputCases() []badCase {
	good := portBody("r_bad")
	sig := func(h http.Header) string { return h.Get(signature.PortSignatureHeader) }
	deep := []byte(`{"marker":"` + marker + `","a":` + strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100) + `}`)
	big := []byte(`{"marker":"` + marker + `","pad":"` + strings.Repeat("x", 1<<20) + `"}`)
	return []badCase{
		// Signature.
		{"signature missing", withHeaders(0, "POST", "/", good, func(h http.Header) { h.Del(signature.PortSignatureHeader) }), 401, false, []string{"signature missing"}},
		{"signature empty", withHeaders(1, "POST", "/", good, func(h http.Header) { h.Set(signature.PortSignatureHeader, "") }), 401, false, []string{"signature missing"}},
		{"signature in another scheme (v2)", withHeaders(2, "POST", "/", good, func(h http.Header) { h.Set(signature.PortSignatureHeader, "v2,"+sig(h)[3:]) }), 401, false, []string{"malformed", "v1,"}},
		{"signature in Azure's form (sha1=hex)", withHeaders(0, "POST", "/", good, func(h http.Header) {
			h.Set(signature.PortSignatureHeader, signature.SignAzure([]byte(portSecret), good))
		}), 401, false, []string{"malformed"}},
		{"signature made with another secret", signedAt(1, otherSecret, now, good), 401, false, []string{"does not match"}},
		{"signature truncated", withHeaders(2, "POST", "/", good, func(h http.Header) { h.Set(signature.PortSignatureHeader, sig(h)[:20]) }), 401, false, []string{"malformed"}},
		{"signature not base64", withHeaders(0, "POST", "/", good, func(h http.Header) { h.Set(signature.PortSignatureHeader, "v1,!!not*base64!!") }), 401, false, []string{"malformed"}},
		{"several entries, none matching", withHeaders(1, "POST", "/", good, func(h http.Header) {
			h.Set(signature.PortSignatureHeader, signature.SignPort([]byte(otherSecret), now(), good)+" "+signature.SignPort([]byte("third"), now(), good))
		}), 401, false, []string{"does not match"}},
		{"signature of another body (tampered payload)", withHeaders(2, "POST", "/", good, func(h http.Header) {
			h.Set(signature.PortSignatureHeader, signature.SignPort([]byte(portSecret), now(), portBody("r_other")))
		}), 401, false, []string{"does not match"}},
		{"timestamp missing", withHeaders(0, "POST", "/", good, func(h http.Header) { h.Del(signature.PortTimestampHeader) }), 401, false, []string{"x-port-timestamp"}},
		{"timestamp not numeric", withHeaders(1, "POST", "/", good, func(h http.Header) { h.Set(signature.PortTimestampHeader, "yesterday") }), 401, false, []string{"whole seconds"}},
		{"timestamp 10 minutes old", signedAt(2, portSecret, func() int64 { return now() - 600 }, good), 401, false, []string{"expired", "tolerance"}},
		{"timestamp 10 minutes ahead", signedAt(0, portSecret, func() int64 { return now() + 600 }, good), 401, false, []string{"future"}},
		{"timestamp in milliseconds", signedAt(1, portSecret, func() int64 { return time.Now().UnixMilli() }, good), 401, false, []string{"whole seconds"}},

		// Body, correctly signed.
		{"body empty", signed(2, "/", nil), 400, false, []string{"empty"}},
		{"body not JSON", signed(0, "/", []byte("deploy "+marker+" please")), 400, false, []string{"not valid JSON"}},
		{"body a JSON array", signed(1, "/", []byte(`["`+marker+`"]`)), 400, false, []string{"not a JSON object"}},
		{"body a JSON string", signed(2, "/", []byte(`"`+marker+`"`)), 400, false, []string{"not a JSON object"}},
		{"body not UTF-8 (sent base64)", signed(0, "/", []byte("{\"m\":\""+marker+"\xff\xfe\"}")), 400, false, []string{"UTF-8"}},
		{"body starts with a byte-order mark", signed(1, "/", append([]byte("\xef\xbb\xbf"), good...)), 400, false, []string{"byte-order mark"}},
		{"body followed by garbage", signed(2, "/", append(append([]byte(nil), good...), " trailing"...)), 400, false, []string{"not valid JSON"}},
		{"body over 1 MiB", signed(0, "/", big), 413, false, []string{"larger than", "1 MiB"}},
		{"reserved key eventType a number", signed(1, "/", []byte(`{"eventType":5,"m":"`+marker+`"}`)), 422, false, []string{"eventType", "drop the run"}},
		{"reserved key projectId not a GUID", signed(2, "/", []byte(`{"projectId":"payments","m":"`+marker+`"}`)), 422, false, []string{"projectId", "guid"}},
		{"reserved key tags not a string array", signed(0, "/", []byte(`{"tags":"prod","m":"`+marker+`"}`)), 422, false, []string{"tags"}},
		{"reserved key run a string", signed(1, "/", []byte(`{"run":"nightly","m":"`+marker+`"}`)), 422, false, []string{`"run"`}},
		{"reserved key spelled with a JSON escape", signed(0, "/", []byte(`{"event\u0054ype":5,"m":"`+marker+`"}`)), 422, false, []string{"eventType"}},
		{"reserved key eventPayload present", signed(2, "/", []byte(`{"eventPayload":{},"m":"`+marker+`"}`)), 422, false, []string{"eventPayload", "must not be present"}},
		{"body nested 100 levels deep", signed(0, "/", deep), 400, false, []string{"nests deeper"}},

		// Event.
		{"wrong method (GET)", withHeaders(1, "GET", "/", good, func(http.Header) {}), 405, false, []string{"POST"}},
		{"wrong method (PUT)", withHeaders(0, "PUT", "/", good, func(http.Header) {}), 405, false, []string{"POST"}},
		{"unknown webhook in the path", signed(2, "/prod/webhooks/not-allowed", portBody("r_bad")), 404, false, []string{"AZURE_DEVOPS_WEBHOOKS", "not-allowed"}},
		{"invalid webhook name in the path", signed(1, "/webhooks/bad.name", portBody("r_bad")), 404, false, []string{"[-_A-Za-z0-9]+"}},
		{"base64 flag with invalid base64", raw(`{"httpMethod":"POST","path":"/","headers":{"x-port-timestamp":"TS","x-port-signature":"SIG"},"body":"%%%`+marker+`%%%","isBase64Encoded":true}`, good), 400, false, []string{"base64"}},
		{"headers missing", func() []byte { return stripKey(lambdatest.HTTPAPIEvent("POST", "/", nil, good), "headers") }, 401, false, []string{"signature missing"}},
		{"headers of the wrong type", raw(`{"httpMethod":"POST","path":"/","headers":["x-port-signature"],"body":"{\"m\":\"`+marker+`\"}"}`, good), 400, false, []string{"malformed", "headers"}},
		{"one header twice with different values", raw(`{"httpMethod":"POST","path":"/","headers":{"X-Port-Signature":"SIG","x-port-signature":"v1,AAAA","x-port-timestamp":"TS"},"body":"{}"}`, []byte("{}")), 400, false, []string{"given twice"}},
		{"HTTP-looking event without a method", raw(`{"requestContext":{},"body":"{\"m\":\"`+marker+`\"}"}`, good), 400, false, []string{"malformed", "method"}},
		{"event not JSON", func() []byte { return []byte("POST / " + marker) }, 400, true, []string{"not a JSON object"}},
		{"event a JSON array", func() []byte { return []byte(`[{"m":"` + marker + `"}]`) }, 400, true, []string{"not a JSON object"}},
		{"direct invoke with a reserved key of the wrong type", func() []byte { return []byte(`{"stages":"all","m":"` + marker + `"}`) }, 422, true, []string{"stages"}},
		{"direct invoke nested too deep", func() []byte { return deep }, 400, true, []string{"nests deeper"}},
	}
}

// reasons are the Reason classes a refusal with each status may carry
// (docs/operations.md): 400 is a bad body or a bad event.
var reasons = map[int][]string{
	400: {"payload", "event"}, 401: {"signature"}, 404: {"route"}, 405: {"method"}, 413: {"size"}, 422: {"payload"},
}

// stripKey removes a top-level key from a JSON object.
func stripKey(ev []byte, key string) []byte {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(ev, &m)
	delete(m, key)
	out, _ := json.Marshal(m)
	return out
}

func TestBadInput(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newWorld(t, faultTimeout)
	served(t, w.relay, w.az)
	for _, tc := range badInputCases() {
		t.Run(tc.name, func(t *testing.T) {
			w.az.Reset()
			r := invoke(t, w.relay, tc.event())
			if tc.awsFail {
				if r.fnErr == nil || r.fnErr.Type != "Failure" {
					t.Fatalf("got %d %v, want a function error of type Failure", r.status, r.body)
				}
				hasWords(t, "errorMessage", r.fnErr.Message, tc.words...)
				if strings.Contains(r.fnErr.Message, marker) {
					t.Errorf("errorMessage repeats the payload: %q", r.fnErr.Message)
				}
			} else {
				if r.fnErr != nil || r.status != tc.status {
					t.Fatalf("got %d %v %v, want %d", r.status, r.body, r.fnErr, tc.status)
				}
				hasWords(t, "error", r.errMsg, tc.words...)
			}
			if n := w.az.Count(); n != 0 {
				t.Errorf("%d deliveries, want none", n)
			}
			line := oneLogLine(t, r)
			if line != nil && line["status"] != float64(tc.status) {
				t.Errorf("log line %v: want status %d", line, tc.status)
			}
			wantOutcome(t, line, "Refused", "Reason", reasons[tc.status]...)
			served(t, w.relay, w.az)
			badCases.Add(1)
		})
	}
}

// TestAWSEvents: scheduled events and direct invocations carry no Port signature and
// are forwarded as they came; a failure that queued nothing is a function error
// Lambda can retry (TestScheduledNeverQueuedTwice has those that may have queued).
func TestAWSEvents(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newWorld(t, faultTimeout)
	direct := []byte(`{"trigger":"manual","m":"` + marker + `","html":"<b>&</b>"}`)
	cases := []struct {
		name  string
		event []byte
		kind  string
	}{
		{"EventBridge scheduled event", lambdatest.ScheduledEvent("nightly-" + marker), "schedule"},
		{"EventBridge Scheduler input", []byte(`{"trigger":"schedule","m":"` + marker + `"}`), "direct"},
		{"direct invoke", direct, "direct"},
		{"direct invoke with keys an HTTP event also has", []byte(`{"path":"/x","body":"` + marker + `"}`), "direct"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.az.Reset()
			r := invoke(t, w.relay, tc.event)
			if r.fnErr != nil || r.status != 0 || r.body["forwarded"] != true || r.body["webhook"] != hookDeploy {
				t.Fatalf("got %d %v %v, want a JSON result forwarded to %s", r.status, r.body, r.fnErr, hookDeploy)
			}
			d := w.az.Deliveries()
			if len(d) != 1 || !d[0].Verified || !bytes.Equal(d[0].Body, tc.event) {
				t.Fatalf("deliveries %d: want exactly the event, verified", len(d))
			}
			line := oneLogLine(t, r)
			if line != nil && line["kind"] != tc.kind {
				t.Errorf("log line %v: want kind %s", line, tc.kind)
			}
			wantOutcome(t, line, "Forwarded", "")
			awsCases.Add(1)
		})
	}
	t.Run("Azure refuses a scheduled event: nothing queued, so a function error Lambda retries", func(t *testing.T) {
		w.az.Reset()
		w.az.Script(azdotest.Status(500).Message("Cannot find webhook for the given webHookId " + hookDeploy))
		r := invoke(t, w.relay, lambdatest.ScheduledEvent("nightly-"+marker))
		if r.fnErr == nil || r.fnErr.Type != "Failure" {
			t.Fatalf("got %d %v, want a function error", r.status, r.body)
		}
		hasWords(t, "errorMessage", r.fnErr.Message, "cannot find this webhook")
		line := oneLogLine(t, r)
		if line != nil && line["level"] != "ERROR" {
			t.Errorf("log line %v: want ERROR", line)
		}
		wantOutcome(t, line, "Failed", "Cause", "notfound")
		served(t, w.relay, w.az)
		awsCases.Add(1)
	})
}

// TestReplayIsRefused sends one signed request twice, as an attacker who captured
// it would: the first starts a run, the second is refused and forwards nothing.
func TestReplayIsRefused(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newWorld(t, faultTimeout)
	for shape := range shapes {
		w.az.Reset()
		ev := signedEvent(shape, "/", portBody("r_replay"))
		first, again := invoke(t, w.relay, ev), invoke(t, w.relay, ev)
		if first.status != 200 || again.status != 401 {
			t.Fatalf("%s: statuses %d then %d, want 200 then 401", shapes[shape].name, first.status, again.status)
		}
		hasWords(t, "error", checkErrorBody(t, mustJSON(t, again.body)), "already received", "replay")
		if n := w.az.Count(); n != 1 {
			t.Errorf("%s: %d deliveries, want 1", shapes[shape].name, n)
		}
		wantOutcome(t, oneLogLine(t, again), "Refused", "Reason", "replay")
		badCases.Add(1)
	}
	served(t, w.relay, w.az)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
