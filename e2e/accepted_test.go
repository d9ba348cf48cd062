package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/signature"
)

// TestAccepted holds the edges of what the relay must accept: each is forwarded,
// byte for byte, to the webhook it names.
func TestAccepted(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newWorld(t, faultTimeout)
	// A body for each case: the relay refuses a signed request it has already seen.
	body1, body2, body3 := portBody("r_accepted"), portBody("r_accepted"), portBody("r_accepted")
	body4, body5, body6 := portBody("r_accepted"), portBody("r_accepted"), portBody("r_accepted")
	pretty := []byte("{\n  \"m\": \"" + marker + "\",\n  \"port_context\": {\n    \"runId\": \"r_accepted\"\n  }\n}")
	var compact bytes.Buffer
	_ = json.Compact(&compact, pretty)
	exact := []byte(`{"m":"` + marker + `","pad":"`)
	exact = append(exact, bytes.Repeat([]byte("x"), 1<<20-len(exact)-2)...)
	exact = append(exact, `"}`...)
	html := []byte("{\"m\":\"" + marker + "\",\"html\":\"<svc>&amp;\u2028é\"}")
	ts := func() int64 { return time.Now().Unix() }

	cases := []struct {
		name    string
		event   func() []byte
		sent    []byte // what Azure must receive
		webhook string
	}{
		{"a malformed v1 entry beside a valid one", func() []byte {
			h := portHeaders(portSecret, ts(), body1)
			h.Set(signature.PortSignatureHeader, "v1,not*base64! "+h.Get(signature.PortSignatureHeader))
			return lambdatest.RESTEvent("POST", "/", h, body1)
		}, body1, hookDeploy},
		{"the signature only in multiValueHeaders (REST)", func() []byte {
			ev := lambdatest.RESTEvent("POST", "/", portHeaders(portSecret, ts(), body2), body2)
			var m map[string]any
			_ = json.Unmarshal(ev, &m)
			m["headers"] = map[string]string{"Content-Type": "application/json"}
			out, _ := json.Marshal(m)
			return out
		}, body2, hookDeploy},
		{"header names in upper case (REST)", func() []byte {
			h := http.Header{}
			for k, v := range portHeaders(portSecret, ts(), body3) {
				h[strings.ToUpper(k)] = v
			}
			return lambdatest.RESTEvent("POST", "/", h, body3)
		}, body3, hookDeploy},
		{"an indented body signed compact, as Port's agent does", func() []byte {
			return lambdatest.HTTPAPIEvent("POST", "/", portHeaders(portSecret, ts(), compact.Bytes()), pretty)
		}, pretty, hookDeploy},
		{"a UTF-8 body sent base64", func() []byte {
			ev := lambdatest.FunctionURLEvent("POST", "/", portHeaders(portSecret, ts(), body4), body4)
			var m map[string]any
			_ = json.Unmarshal(ev, &m)
			m["body"], m["isBase64Encoded"] = base64.StdEncoding.EncodeToString(body4), true
			out, _ := json.Marshal(m)
			return out
		}, body4, hookDeploy},
		{"HTML and U+2028 in the body", func() []byte { return signedEvent(1, "/", html) }, html, hookDeploy},
		{"a body of exactly 1 MiB", func() []byte { return signedEvent(0, "/", exact) }, exact, hookDeploy},
		{"a timestamp 4 minutes old", func() []byte {
			return lambdatest.HTTPAPIEvent("POST", "/", portHeaders(portSecret, ts()-240, body5), body5)
		}, body5, hookDeploy},
		{"a webhook chosen by path, with a trailing slash", func() []byte { return signedEvent(2, "/prod/webhooks/"+hookDeploy+"/", body6) }, body6, hookDeploy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.az.Reset()
			r := invoke(t, w.relay, tc.event())
			if r.status != 200 || r.body["forwarded"] != true || r.body["webhook"] != tc.webhook {
				t.Fatalf("got %d %v %v, want 200 forwarded to %s", r.status, r.body, r.fnErr, tc.webhook)
			}
			d := w.az.Deliveries()
			if len(d) != 1 || !d[0].Verified || !bytes.Equal(d[0].Body, tc.sent) {
				t.Fatalf("%d deliveries: want exactly the bytes sent, verified by Azure", len(d))
			}
			oneLogLine(t, r)
			acceptedCases.Add(1)
		})
	}
}
