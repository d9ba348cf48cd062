package lambdatest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/signature"
)

func TestSignPortSignsWhatTheRelayVerifies(t *testing.T) {
	secret, ts := []byte("sign-test-secret"), int64(1764201600)
	pretty := []byte("{\n  \"port_context\": {\"runId\": \"r_1\"},\n  \"name\": \"<svc>&é\"\n}")
	stale := http.Header{"Content-Type": {"application/json"}, "X-Port-Timestamp": {"1"}, "X-Port-Signature": {"v1,AAAA"}}
	port := signature.Port{Now: func() time.Time { return time.Unix(ts, 0) }}
	for _, c := range []struct {
		name    string
		ev      []byte
		compact bool
	}{
		{"a REST event, headers and multiValueHeaders", RESTEvent("POST", "/", stale, pretty), false},
		{"an HTTP API event", HTTPAPIEvent("POST", "/", stale, pretty), false},
		{"a Function URL event signed compact, as Port's agent signs", FunctionURLEvent("POST", "/", stale, pretty), true},
		{"a base64 body", FunctionURLEvent("POST", "/", stale, []byte("{\"bin\":\"\xff\"}")), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := SignPort(c.ev, secret, ts, c.compact)
			if err != nil {
				t.Fatal(err)
			}
			req, err := event.Parse(out)
			if err != nil {
				t.Fatalf("Parse(signed event) = %v", err)
			}
			if err := port.Verify(secret, req.Get(signature.PortSignatureHeader), req.Get(signature.PortTimestampHeader), req.Body); err != nil {
				t.Errorf("Verify(signed event) = %v, want nil", err)
			}
			body, sig, gotTS, err := PortSignature(out)
			if err != nil || gotTS != strconv.FormatInt(ts, 10) || sig != req.Get(signature.PortSignatureHeader) || string(body) != string(req.Body) {
				t.Errorf("PortSignature = %q, %q, %q, %v; want the event's own", body, sig, gotTS, err)
			}
			var m map[string]any
			_ = json.Unmarshal(out, &m)
			if multi, ok := m["multiValueHeaders"].(map[string]any); ok {
				if v, _ := multi["X-Port-Timestamp"].([]any); len(v) != 1 || v[0] != strconv.FormatInt(ts, 10) {
					t.Errorf("multiValueHeaders still has timestamp %v", multi["X-Port-Timestamp"])
				}
			}
		})
	}
	if _, err := SignPort(ScheduledEvent("nightly"), secret, ts, false); err == nil {
		t.Error("SignPort(scheduled event) = nil error, want one: it has no headers")
	}
}
