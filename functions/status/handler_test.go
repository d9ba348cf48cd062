package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/runstatus"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

// The samples in events/status carry this password (events/README.md).
const (
	samplePassword = "demo-service-hook-password"
	sampleSecret   = "demo-port-client-secret"
	clientID       = "demo-client-id"
)

// want is what one sample must produce: the answer, and the Port run after it.
type want struct {
	status  int
	key     string // "updated", "ignored" or "error"
	runID   string
	port    string // the Port run's status after the sample; "" when no Port run changes
	outcome string
	asks    int // requests Port gets when no run changes: a token and the search for the run, or none
}

var samples = map[string]want{
	"in-progress.json":  {200, "updated", "r_QvJ5Nn2m8xV3aT1k", "IN_PROGRESS", "updated", 0},
	"succeeded.json":    {200, "updated", "r_QvJ5Nn2m8xV3aT1k", "SUCCESS", "updated", 0},
	"failed.json":       {200, "updated", "r_Wp7Kd3Ls9Xb2Rt6n", "FAILURE", "updated", 0},
	"canceled.json":     {200, "updated", "r_Lm2Hc8Ue4Jw9Qa7b", "FAILURE", "updated", 0},
	"canceling.json":    {200, "ignored", "r_Lm2Hc8Ue4Jw9Qa7b", "", "ignored", 0},
	"no-run-id.json":    {200, "ignored", "", "", "ignored", 3}, // no Port run has its externalRunId: a token, a search, and a second search a second later
	"bad-password.json": {401, "error", "", "", "refused", 0},
}

// TestSamples runs every events/status sample through the function as main wires
// it, against local doubles of Secrets Manager and Port's API.
func TestSamples(t *testing.T) {
	files, err := filepath.Glob("../../events/status/*.json")
	if err != nil || len(files) != len(samples) {
		t.Fatalf("events/status has %d samples, want %d: %v", len(files), len(samples), err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		w, ok := samples[name]
		if !ok {
			t.Fatalf("%s: no expectation for this sample", name)
		}
		t.Run(name, func(t *testing.T) {
			port := porttest.New(clientID, sampleSecret)
			t.Cleanup(port.Close)
			port.CreateRuns("r_QvJ5Nn2m8xV3aT1k", "r_Wp7Kd3Ls9Xb2Rt6n", "r_Lm2Hc8Ue4Jw9Qa7b")
			sm := smtest.New()
			t.Cleanup(sm.Close)
			arn := sm.Put("port/relay", `{"clientId":"`+clientID+`","clientSecret":"`+sampleSecret+`","serviceHookPassword":"`+samplePassword+`"}`)
			vars := map[string]string{"PORT_SECRET_ID": arn, "PORT_API_URL": port.URL, "AZURE_DEVOPS_ORG": "demo-org"}
			cfg, err := runstatus.LoadConfig(func(k string) string { return vars[k] })
			if err != nil {
				t.Fatal(err)
			}
			logs := &bytes.Buffer{}
			invoke := handler.Invoke(newFollower(cfg, sm.Client(), handler.Logger(logs)))

			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-" + name})
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			out, err := invoke(ctx, raw)
			if err != nil {
				t.Fatalf("invoke = %v, want an HTTP answer", err)
			}
			resp := out.(events.APIGatewayV2HTTPResponse)
			var body map[string]any
			if resp.StatusCode != w.status || json.Unmarshal([]byte(resp.Body), &body) != nil || body[w.key] == nil {
				t.Fatalf("answer %d %s, want %d with %q", resp.StatusCode, resp.Body, w.status, w.key)
			}
			run, _ := port.Run(w.runID)
			if w.port != "" && (run.Status != w.port || !strings.HasPrefix(run.Link, "https://dev.azure.com/demo-org/") || !strings.HasPrefix(run.ExternalRunID, "ado_demo-org_")) {
				t.Errorf("Port run %+v, want %s with the Azure run's link and externalRunId (AZURE_DEVOPS_ORG's)", run, w.port)
			}
			if w.port == "" && port.Requests() != w.asks {
				t.Errorf("Port's API got %d requests, want %d", port.Requests(), w.asks)
			}
			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil || line["outcome"] != w.outcome || line["requestId"] != "req-"+name {
				t.Errorf("log %s: want one JSON line with outcome %q", logs, w.outcome)
			}
			if strings.Contains(logs.String(), samplePassword) || strings.Contains(logs.String(), "deploy-service") {
				t.Errorf("log holds the password or the body: %s", logs)
			}
		})
	}
}
