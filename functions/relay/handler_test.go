package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/relay"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

// The samples in events/ are signed with this secret at this time (events/README.md).
const (
	sampleSecret = "demo-port-client-secret"
	sampleTime   = 1764201600
	clientID     = "demo-client-id"
)

type env struct {
	invoke func(ctx context.Context, raw json.RawMessage) (any, error)
	azure  *azdotest.Server
	port   *porttest.Server
	sm     *smtest.Server
	logs   *bytes.Buffer
}

// newEnv wires the relay as main does, against local doubles of Secrets Manager,
// Azure DevOps and Port's API, with the clock at the samples' signing time.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		azure: azdotest.New("demo-org",
			azdotest.Webhook{Name: "port_trigger", Secret: sampleSecret, Header: "x-port-signature"},
			azdotest.Webhook{Name: "deploy_service", Secret: sampleSecret, Header: "x-port-signature"}),
		port: porttest.New(clientID, sampleSecret),
		sm:   smtest.New(),
		logs: &bytes.Buffer{},
	}
	t.Cleanup(e.azure.Close)
	t.Cleanup(e.port.Close)
	t.Cleanup(e.sm.Close)
	arn := e.sm.Put("port/relay", `{"clientId":"`+clientID+`","clientSecret":"`+sampleSecret+`"}`)
	vars := map[string]string{
		"PORT_SECRET_ID":        arn,
		"AZURE_DEVOPS_ORG":      "demo-org",
		"AZURE_DEVOPS_WEBHOOK":  "port_trigger",
		"AZURE_DEVOPS_WEBHOOKS": "deploy_service",
		"AZURE_DEVOPS_URL":      e.azure.URL,
		"PORT_API_URL":          e.port.URL,
	}
	cfg, err := relay.LoadConfig(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	core := newRelay(cfg, newAzure(cfg), e.sm.Client(), nil, nil, handler.Logger(e.logs))
	core.Port.Now = func() time.Time { return time.Unix(sampleTime, 0) }
	e.invoke = handler.Invoke(core)
	return e
}

func invokeCtx(t *testing.T, id string) context.Context {
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: id})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// want is what one sample must produce.
type want struct {
	status   int    // HTTP status; 0 for AWS events, which return a JSON result
	webhook  string // where it is delivered; "" for nothing
	runID    string
	reported string // "log" or "label": what Port's API sees for runID
}

var samples = map[string]want{
	"httpapi.json":              {200, "port_trigger", "r_QvJ5Nn2m8xV3aT1k", "log"},
	"httpapi-webhook-path.json": {200, "deploy_service", "r_Wp7Kd3Ls9Xb2Rt6n", "log"},
	"rest.json":                 {200, "port_trigger", "r_Lm2Hc8Ue4Jw9Qa7b", "log"},
	"function-url.json":         {200, "port_trigger", "r_Fn4Uq8Zc1Yh5Mv0e", "log"},
	"schedule.json":             {0, "port_trigger", "", ""},
	"scheduler-input.json":      {0, "port_trigger", "", ""},
	"direct.json":               {0, "port_trigger", "", ""},
	"bad-signature.json":        {401, "", "", ""},
	"bad-reserved-key.json":     {422, "", "r_Bad0ReservedKey1", "label"},
}

// TestEverySampleEvent loads every file in events/relay, so that the samples users
// pass to sam local invoke cannot drift from what the relay accepts.
func TestEverySampleEvent(t *testing.T) {
	files, err := filepath.Glob("../../events/relay/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in events/relay: %v", err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		w, ok := samples[name]
		if !ok {
			t.Errorf("%s has no expectation in this test: add it to samples", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			if w.runID != "" {
				e.port.CreateRuns(w.runID)
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out, err := e.invoke(invokeCtx(t, "req-"+name), raw)
			if err != nil {
				t.Fatalf("invoke = %v, want a result", err)
			}
			if w.status == 0 {
				var res struct {
					Forwarded bool   `json:"forwarded"`
					Webhook   string `json:"webhook"`
				}
				if err := json.Unmarshal(out.(json.RawMessage), &res); err != nil || !res.Forwarded || res.Webhook != w.webhook {
					t.Fatalf("result = %s, want forwarded to %s", out, w.webhook)
				}
			} else {
				// The response as Lambda serialises it: 1.0 for REST, 2.0 for the others.
				b, _ := json.Marshal(out)
				var resp struct {
					StatusCode int               `json:"statusCode"`
					Headers    map[string]string `json:"headers"`
					Body       string            `json:"body"`
					Cookies    *json.RawMessage  `json:"cookies"`
				}
				if err := json.Unmarshal(b, &resp); err != nil {
					t.Fatalf("response %s: %v", b, err)
				}
				if isREST := strings.Contains(name, "rest"); isREST != !bytes.Contains(b, []byte(`"cookies"`)) {
					t.Errorf("response %s: a REST event must get the 1.0 shape (no cookies), the others the 2.0 shape", b)
				}
				status, body, headers := resp.StatusCode, resp.Body, resp.Headers
				if status != w.status {
					t.Fatalf("status = %d (%s), want %d", status, body, w.status)
				}
				if !json.Valid([]byte(body)) || headers["Content-Type"] != "application/json" {
					t.Errorf("body %q is not a JSON answer", body)
				}
			}
			checkDelivery(t, e, raw, w)
			checkReport(t, e, w)
			checkLog(t, e, "req-"+name, raw)
		})
	}
}

func checkDelivery(t *testing.T, e *env, raw []byte, w want) {
	t.Helper()
	got := e.azure.Deliveries()
	if w.webhook == "" {
		if len(got) != 0 {
			t.Fatalf("%d deliveries, want none", len(got))
		}
		return
	}
	if len(got) != 1 || got[0].Webhook != w.webhook || !got[0].Verified {
		t.Fatalf("deliveries = %+v, want one verified to %s", got, w.webhook)
	}
	if w.status == 0 && !bytes.Equal(got[0].Body, raw) {
		t.Errorf("AWS event delivered as %q, want it as it came", got[0].Body)
	}
}

func checkReport(t *testing.T, e *env, w want) {
	t.Helper()
	if w.runID == "" {
		return
	}
	logs, updates := e.port.Logs(w.runID), e.port.Updates(w.runID)
	switch w.reported {
	case "log":
		if len(logs) != 1 || !strings.Contains(logs[0].Message, w.webhook) || len(updates) != 0 {
			t.Errorf("Port saw logs %+v and updates %+v, want one log naming %s", logs, updates, w.webhook)
		}
	case "label":
		// Without a ledger (as sam local invoke runs it) a refusal is told, not made the run's end.
		if len(logs) != 1 || len(updates) != 1 || updates[0].Status != "" || updates[0].StatusLabel == "" {
			t.Errorf("Port saw logs %+v and updates %+v, want the reason as a log line and a label, the run not ended", logs, updates)
		}
	}
}

// checkLog asserts one line for the invocation, with its request id, and neither
// the secret nor the body in any line.
func checkLog(t *testing.T, e *env, requestID string, raw []byte) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(e.logs.String()), "\n")
	var mine int
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON", line)
		}
		if rec["requestId"] == requestID {
			mine++
			if rec["level"] == nil || rec["status"] == nil || rec["durationMs"] == nil {
				t.Errorf("log line %s lacks level, status or durationMs", line)
			}
		}
		if strings.Contains(line, sampleSecret) || strings.Contains(line, "payments-api") || strings.Contains(line, "nightly") {
			t.Errorf("log line leaks the secret or the payload: %s", line)
		}
	}
	if mine != 1 {
		t.Errorf("%d log lines for %s, want 1:\n%s", mine, requestID, e.logs)
	}
}

func TestAWSEventFailureIsAFunctionError(t *testing.T) {
	e := newEnv(t)
	e.sm.Delete("port/relay")
	_, err := e.invoke(invokeCtx(t, "req-sched"), mustRead(t, "../../events/relay/schedule.json"))
	var failure *handler.Failure
	if !errors.As(err, &failure) || failure.Status != 503 || !strings.Contains(failure.Message, "Secrets Manager") {
		t.Fatalf("invoke = %v, want a 503 Failure naming Secrets Manager", err)
	}
	if n := e.azure.Count(); n != 0 {
		t.Errorf("%d deliveries, want none", n)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
