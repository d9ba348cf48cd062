package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
	"github.com/port-azure-relay/relay/shared/signature"
)

// The Azure DevOps organization and webhooks the relay is configured with.
const (
	org          = "contoso"
	hookDeploy   = "deploy"       // the default, registered with Port's secret
	hookRotated  = "rotated"      // registered, but its service connection holds another secret
	hookMissing  = "unregistered" // allowed by the relay, unknown to Azure
	allowedHooks = hookDeploy + "," + hookRotated + "," + hookMissing
)

// world is one relay under the emulator with its doubles.
type world struct {
	sm    *smtest.Server
	az    *azdotest.Server
	relay *lambdatest.Function
}

// newAzure starts the Azure DevOps double with the suite's webhooks.
func newAzure(t *testing.T, tls bool) *azdotest.Server {
	hooks := []azdotest.Webhook{
		{Name: hookDeploy, Secret: portSecret, Header: signature.AzureDefaultHeader},
		{Name: hookRotated, Secret: otherSecret, Header: signature.AzureDefaultHeader},
	}
	var az *azdotest.Server
	if tls {
		az = azdotest.NewTLS(org, hooks...)
	} else {
		az = azdotest.New(org, hooks...)
	}
	t.Cleanup(az.Close)
	return az
}

func newSM(t *testing.T) *smtest.Server {
	sm := smtest.New()
	sm.Put(secretName, portSecret)
	t.Cleanup(sm.Close)
	return sm
}

// relayEnv is the relay's whole configuration: nothing comes from this process's
// environment.
func relayEnv(sm *smtest.Server, azureURL string, extra ...string) []string {
	env := append(sm.Env(),
		"PORT_SECRET_ID="+secretName,
		"AZURE_DEVOPS_ORG="+org,
		"AZURE_DEVOPS_WEBHOOK="+hookDeploy,
		"AZURE_DEVOPS_WEBHOOKS="+allowedHooks,
		"AZURE_DEVOPS_URL="+azureURL,
		"PORT_SIGNATURE_TOLERANCE=5m",
		"SECRET_CACHE_TTL=5m",
		"PORT_API_URL=http://127.0.0.1:9", // never reached: the secret has no clientId
	)
	return append(env, extra...)
}

// start runs bin under its own emulator, closed at the end of the test, with its
// output kept for the log audit.
func start(t *testing.T, bin string, timeout time.Duration, env []string) *lambdatest.Function {
	t.Helper()
	fn, err := lambdatest.Start(context.Background(), lambdatest.Options{
		RIE: rie, Bootstrap: bin, Env: env, Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	addAuditSource(fn.Lines)
	t.Cleanup(func() { fn.Close() })
	return fn
}

// newWorld starts Secrets Manager, Azure and a relay with the given function timeout.
func newWorld(t *testing.T, timeout time.Duration, extraEnv ...string) *world {
	t.Helper()
	w := &world{sm: newSM(t), az: newAzure(t, false)}
	w.relay = start(t, relayBin, timeout, relayEnv(w.sm, w.az.URL, extraEnv...))
	return w
}

// result is one invocation as the caller and the logs saw it.
type result struct {
	id     string
	status int            // the HTTP status, for HTTP invocations
	errMsg string         // the {"error": …} sentence, for HTTP errors
	body   map[string]any // the HTTP body or the AWS result
	fnErr  *lambdatest.FunctionError
	logs   []map[string]any // the function's JSON log lines for this invocation
	took   time.Duration
}

func newRequestID() string { return "e2e-" + rand.Text()[:16] }

// invoke sends ev and collects the answer and the function's JSON lines between the
// emulator's START and END for this request.
func invoke(t *testing.T, fn *lambdatest.Function, ev []byte) result {
	t.Helper()
	r := result{id: newRequestID()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	from := len(fn.Lines())
	begin := time.Now()
	out, err := fn.Invoke(lambdatest.WithRequestID(ctx, r.id), ev)
	r.took = time.Since(begin)
	switch {
	case errors.As(err, &r.fnErr):
	case err != nil:
		t.Fatalf("invoke: %v", err)
	default:
		var resp struct {
			StatusCode *int   `json:"statusCode"`
			Body       string `json:"body"`
		}
		if json.Unmarshal(out, &resp) == nil && resp.StatusCode != nil {
			r.status = *resp.StatusCode
			if err := json.Unmarshal([]byte(resp.Body), &r.body); err != nil {
				t.Fatalf("HTTP body is not a JSON object: %q", resp.Body)
			}
			if _, verifier := r.body["verified"]; r.status >= 300 && !verifier {
				r.errMsg = checkErrorBody(t, resp.Body) // the relay's; the verifier's holds its verdict too
			}
		} else if err := json.Unmarshal(out, &r.body); err != nil {
			t.Fatalf("result is not a JSON object: %q", out)
		}
	}
	r.logs = invocationLogs(t, fn, from, r.id)
	return r
}

// checkErrorBody asserts an error body is {"error": "<one sentence>"} (a replay of a
// refused run adds "duplicate": true) that does not repeat the payload, and returns the
// sentence.
func checkErrorBody(t *testing.T, body string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil || len(m) != 1 && (len(m) != 2 || m["duplicate"] != true) {
		t.Errorf("error body %s: want exactly {\"error\": …}", body)
		return ""
	}
	say, _ := m["error"].(string)
	if len(say) < 20 || !strings.HasSuffix(say, ".") || strings.Count(say, ". ") > 1 ||
		!(strings.ToUpper(say[:1]) == say[:1] || strings.HasPrefix(say, "x-")) { // may start with a header name
		t.Errorf("error %q: want one clear sentence", say)
	}
	if strings.Contains(body, marker) {
		t.Errorf("error body repeats the payload: %s", body)
	}
	return say
}

// invocationLogs returns the JSON lines the function wrote for request id.
func invocationLogs(t *testing.T, fn *lambdatest.Function, from int, id string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	startAt, err := fn.WaitLine(ctx, from, "START RequestId: "+id)
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(fn.Lines()[from:], "\n"))
	}
	end, err := fn.WaitLine(ctx, startAt, "END RequestId: "+id)
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(fn.Lines()[from:], "\n"))
	}
	var out []map[string]any
	for _, line := range fn.Lines()[startAt+1 : end] {
		var m map[string]any
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &m) != nil {
			continue // the emulator's own lines, and aws-lambda-go's plain-text error line
		}
		if m["phase"] == "init" {
			// A start-up line (the emulator starts the function at its first invocation,
			// Lambda before it): not the invocation's. The log audit still reads it.
			continue
		}
		out = append(out, m)
	}
	return out
}

// oneLogLine asserts that the invocation logged exactly one JSON line, with level,
// msg and its request id, and returns it.
func oneLogLine(t *testing.T, r result) map[string]any {
	t.Helper()
	if len(r.logs) != 1 {
		t.Errorf("%d log lines for the invocation, want 1: %v", len(r.logs), r.logs)
		if len(r.logs) == 0 {
			return nil
		}
	}
	line := r.logs[len(r.logs)-1]
	if line["level"] == nil || line["msg"] == nil || line["requestId"] != r.id {
		t.Errorf("log line %v: want level, msg and requestId %q", line, r.id)
	}
	return line
}

// postSigned POSTs body to url signed as Port signs it now with secret, through a
// real HTTP client (a gateway in front of a function), and returns the status, the
// raw answer and the answer as JSON (nil when it is not).
func postSigned(t *testing.T, url, secret string, body []byte) (int, []byte, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header = portHeaders(secret, time.Now().Unix(), body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if json.Unmarshal(b, &v) != nil {
		v = nil
	}
	return resp.StatusCode, b, v
}

// portHeaders signs body as Port does, at ts, with secret.
func portHeaders(secret string, ts int64, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Port-Webhook/1.0")
	h.Set(signature.PortTimestampHeader, strconv.FormatInt(ts, 10))
	h.Set(signature.PortSignatureHeader, signature.SignPort([]byte(secret), ts, body))
	return h
}

// portBody is a Port action payload with the audit marker in it. Each is unique, as
// each of Port's invocations is: the relay refuses a signed request it has seen.
func portBody(runID string) []byte {
	return fmt.Appendf(nil, `{"service":"payments-api","note":"%s <b>&amp;</b> é","invocation":"%s","port_context":{"entity":"payments-api","blueprint":"service","runId":"%s"}}`, marker, rand.Text()[:12], runID)
}

// shapes are the three HTTP event shapes, used in turn across the cases.
var shapes = []struct {
	name string
	make func(method, path string, h http.Header, body []byte) []byte
}{
	{"REST", lambdatest.RESTEvent},
	{"HTTP API", lambdatest.HTTPAPIEvent},
	{"Function URL", lambdatest.FunctionURLEvent},
}

// signedEvent is a valid Port invocation in the given shape.
func signedEvent(shape int, path string, body []byte) []byte {
	return shapes[shape%len(shapes)].make("POST", path, portHeaders(portSecret, time.Now().Unix(), body), body)
}

// served asserts that a valid invocation is forwarded: the function survived
// whatever came before and serves the next one normally.
func served(t *testing.T, fn *lambdatest.Function, az *azdotest.Server) {
	t.Helper()
	before := az.Count()
	runID := "r_next_" + rand.Text()[:8]
	body := portBody(runID)
	r := invoke(t, fn, signedEvent(1, "/", body))
	if r.status != 200 || r.body["forwarded"] != true || r.body["runId"] != runID {
		t.Fatalf("next invocation: %d %v %v, want 200 forwarded", r.status, r.body, r.fnErr)
	}
	if got := az.Count() - before; got != 1 {
		t.Errorf("next invocation: %d deliveries, want 1", got)
	}
	if d := az.Deliveries(); len(d) == 0 || !d[len(d)-1].Verified || !bytes.Equal(d[len(d)-1].Body, body) {
		t.Errorf("next invocation: Azure did not get the bytes Port sent, or its signature check failed")
	}
	wantOutcome(t, oneLogLine(t, r), "Forwarded", "")
}

// hasWords asserts the sentence holds every word, in any case.
func hasWords(t *testing.T, what, sentence string, words ...string) {
	t.Helper()
	for _, w := range words {
		if !strings.Contains(strings.ToLower(sentence), strings.ToLower(w)) {
			t.Errorf("%s %q: want it to say %q", what, sentence, w)
		}
	}
}
