package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
)

// TestConfig: a missing or invalid required variable fails at start-up with one
// log line that names it; Lambda reports the invocation as Runtime.ExitError.
func TestConfig(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	sm := newSM(t)
	// without returns env with the variable removed, or set to value when given.
	without := func(env []string, name string, value ...string) []string {
		var out []string
		for _, e := range env {
			if !strings.HasPrefix(e, name+"=") {
				out = append(out, e)
			}
		}
		if len(value) > 0 {
			out = append(out, name+"="+value[0])
		}
		return out
	}
	relay := relayEnv(sm, "http://127.0.0.1:9")
	verifier := append(sm.Env(), "PORT_SECRET_ID="+secretName)
	status := append(sm.Env(), "PORT_SECRET_ID="+secretName, "AZURE_DEVOPS_ORG="+org)
	cases := []struct {
		name string
		bin  string
		env  []string
		want string // the variable the log line names
	}{
		{"relay without PORT_SECRET_ID", relayBin, without(relay, "PORT_SECRET_ID"), "PORT_SECRET_ID"},
		{"relay without AZURE_DEVOPS_ORG", relayBin, without(relay, "AZURE_DEVOPS_ORG"), "AZURE_DEVOPS_ORG"},
		{"relay without AZURE_DEVOPS_WEBHOOK", relayBin, without(relay, "AZURE_DEVOPS_WEBHOOK"), "AZURE_DEVOPS_WEBHOOK"},
		{"relay with an invalid AZURE_DEVOPS_WEBHOOK", relayBin, without(relay, "AZURE_DEVOPS_WEBHOOK", "deploy prod"), "AZURE_DEVOPS_WEBHOOK"},
		{"relay with an invalid name in AZURE_DEVOPS_WEBHOOKS", relayBin, without(relay, "AZURE_DEVOPS_WEBHOOKS", "deploy,../x"), "AZURE_DEVOPS_WEBHOOKS"},
		{"relay with an AZURE_DEVOPS_URL that is not http(s)", relayBin, without(relay, "AZURE_DEVOPS_URL", "ftp://127.0.0.1"), "AZURE_DEVOPS_URL"},
		{"relay with an invalid PORT_SIGNATURE_TOLERANCE", relayBin, without(relay, "PORT_SIGNATURE_TOLERANCE", "5 minutes"), "PORT_SIGNATURE_TOLERANCE"},
		{"relay with an invalid AZURE_SIGNATURE_HEADER", relayBin, without(relay, "AZURE_SIGNATURE_HEADER", "x port signature"), "AZURE_SIGNATURE_HEADER"},
		{"verifier without PORT_SECRET_ID", verifierBin, without(verifier, "PORT_SECRET_ID"), "PORT_SECRET_ID"},
		{"status without AZURE_DEVOPS_ORG", statusBin, without(status, "AZURE_DEVOPS_ORG"), "AZURE_DEVOPS_ORG"},
		{"status with an AZURE_DEVOPS_ORG that is no organization name", statusBin, without(status, "AZURE_DEVOPS_ORG", "contoso_eu"), "AZURE_DEVOPS_ORG"},
		{"relay without AWS_REGION", relayBin, without(relay, "AWS_REGION"), "AWS_REGION"},
		{"relay with an unknown shorthand in ALLOWED_SOURCE_IPS", relayBin, without(relay, "ALLOWED_SOURCE_IPS", "port-eu,port-asia"), "ALLOWED_SOURCE_IPS"},
		{"relay with an IPv4 block over /32 in ALLOWED_SOURCE_IPS", relayBin, without(relay, "ALLOWED_SOURCE_IPS", "192.0.2.0/33"), "ALLOWED_SOURCE_IPS"},
		{"relay with only commas in ALLOWED_SOURCE_IPS", relayBin, without(relay, "ALLOWED_SOURCE_IPS", ","), "ALLOWED_SOURCE_IPS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fn := start(t, tc.bin, faultTimeout, tc.env)
			_, err := fn.Invoke(context.Background(), signedEvent(0, "/", portBody("r_config")))
			var fe *lambdatest.FunctionError
			if !errors.As(err, &fe) || fe.Type != "Runtime.ExitError" {
				t.Fatalf("invoke: %v, want a Runtime.ExitError", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := fn.WaitLine(ctx, 0, "Invoke DONE failed"); err != nil {
				t.Fatal(err)
			}
			var lines []map[string]any
			for _, l := range fn.Lines() {
				var m map[string]any
				if strings.HasPrefix(l, "{") && json.Unmarshal([]byte(l), &m) == nil {
					lines = append(lines, m)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("%d JSON lines, want 1: %v", len(lines), lines)
			}
			if msg, _ := lines[0]["error"].(string); lines[0]["level"] != "ERROR" || !strings.HasPrefix(msg, tc.want+" ") {
				t.Errorf("log line %v: want ERROR naming %s", lines[0], tc.want)
			}
			configCases.Add(1)
		})
	}
}
