package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
	"github.com/port-azure-relay/relay/shared/signature"
)

// verifierLines returns the verifier's "verified" log lines.
func verifierLines(fn *lambdatest.Function) []map[string]any {
	var out []map[string]any
	for _, line := range fn.Lines() {
		var m map[string]any
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "verified" {
			out = append(out, m)
		}
	}
	return out
}

// TestRoundTrip: relay → API Gateway stand-in → verifier, each under its own
// emulator, with one secret in Secrets Manager; the relay also reports the run to Port.
func TestRoundTrip(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	sm := smtest.New()
	t.Cleanup(sm.Close)
	sm.Put(secretName, `{"clientId":"e2e-client-id","clientSecret":"`+portSecret+`"}`)
	port := porttest.New("e2e-client-id", portSecret)
	t.Cleanup(port.Close)

	verifier := start(t, verifierBin, faultTimeout, append(sm.Env(), "PORT_SECRET_ID="+secretName))
	gw := lambdatest.Gateway(verifier)
	t.Cleanup(func() { gw.Close() })
	relay := start(t, relayBin, 8*time.Second, append(relayEnv(sm, gw.URL), "PORT_API_URL="+port.URL))

	for i, shape := range shapes {
		t.Run("relay → verifier, "+shape.name, func(t *testing.T) {
			before := len(verifierLines(verifier))
			runID := fmt.Sprintf("r_roundtrip_%d", i)
			port.CreateRuns(runID)
			r := invoke(t, relay, signedEvent(i, "/", portBody(runID)))
			if r.status != 200 || r.body["forwarded"] != true || r.body["runId"] != runID || r.body["azureStatus"] != float64(200) {
				t.Fatalf("relay: %d %v %v, want 200 forwarded", r.status, r.body, r.fnErr)
			}
			oneLogLine(t, r)
			lines := verifierLines(verifier)
			if len(lines) != before+1 {
				t.Fatalf("verifier logged %d verifications, want 1", len(lines)-before)
			}
			if v := lines[len(lines)-1]; v["verified"] != true || v["scheme"] != "sha1" || v["status"] != float64(200) {
				t.Errorf("verifier: %v, want verified sha1", v)
			}
			if logs := port.Logs(runID); len(logs) != 1 || !strings.Contains(logs[0].Message, "queued") {
				t.Errorf("Port run log %v, want one line saying the pipeline was queued", logs)
			}
		})
	}

	t.Run("Port → verifier through the gateway", func(t *testing.T) {
		body := portBody("r_direct")
		for _, tc := range []struct {
			name    string
			secret  string
			status  int
			verdict bool
		}{{"signed by Port", portSecret, 200, true}, {"signed with another secret", otherSecret, 401, false}} {
			status, b, v := postSigned(t, gw.URL+"/any/path", tc.secret, body)
			if status != tc.status || v["verified"] != tc.verdict || (tc.verdict && v["scheme"] != "port-v1") {
				t.Errorf("%s: %d %s, want %d verified=%v scheme port-v1", tc.name, status, b, tc.status, tc.verdict)
			}
		}
	})
}

// The samples in events/ are signed with this secret (events/README.md).
const demoSecret = "demo-port-client-secret"

// sampleExpectations reads events/README.md's table: file → what its function answers.
func sampleExpectations(t *testing.T) map[string]string {
	f, err := os.Open("../events/README.md")
	if err != nil {
		t.Fatalf("events/README.md: %v", err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `((?:relay|verifier|status)/[^`]+)` \\|.*\\| ([^|]+) \\|$")
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := row.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			want[m[1]] = strings.TrimSpace(m[2])
		}
	}
	return want
}

// resign gives an HTTP sample a signature made now, in the form it was made: over
// the body or its compact form, with the demo secret or, for a sample signed with
// another secret, with another secret again. Like cmd/portsign, it sets the headers
// in whatever case the sample uses (and multiValueHeaders too).
func resign(t *testing.T, ev []byte) []byte {
	body, sig, tsText, err := lambdatest.PortSignature(ev)
	if err != nil || !strings.HasPrefix(sig, "v1,") {
		return ev // not Port-signed: nothing to refresh
	}
	ts, _ := strconv.ParseInt(tsText, 10, 64)
	key, compact := demoSecret, false
	switch sig {
	case signature.SignPort([]byte(demoSecret), ts, body):
	case signature.SignPort([]byte(demoSecret), ts, compactJSON(body)):
		compact = true
	default:
		key = "not-the-" + demoSecret
	}
	out, err := lambdatest.SignPort(ev, []byte(key), time.Now().Unix(), compact)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	_ = json.Compact(&buf, b)
	return buf.Bytes()
}

// TestSamples runs every file in events/ through its function under the emulator
// and expects what events/README.md says it answers.
func TestSamples(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	want := sampleExpectations(t)
	sm := smtest.New()
	t.Cleanup(sm.Close)
	sm.Put(secretName, demoSecret)
	az := azdotest.New("demo-org",
		azdotest.Webhook{Name: "port_trigger", Secret: demoSecret, Header: signature.AzureDefaultHeader},
		azdotest.Webhook{Name: "deploy_service", Secret: demoSecret, Header: signature.AzureDefaultHeader})
	t.Cleanup(az.Close)
	env := append(sm.Env(), "PORT_SECRET_ID="+secretName)
	fns := map[string]*lambdatest.Function{
		"relay": start(t, relayBin, faultTimeout, append(env,
			"AZURE_DEVOPS_ORG=demo-org", "AZURE_DEVOPS_WEBHOOK=port_trigger",
			"AZURE_DEVOPS_WEBHOOKS=port_trigger,deploy_service", "AZURE_DEVOPS_URL="+az.URL,
			"PORT_API_URL=http://127.0.0.1:9")),
		"verifier": start(t, verifierBin, faultTimeout, env),
		"status":   sampleStatusFunction(t),
	}
	scheme := regexp.MustCompile("scheme: ([a-z0-9-]+)")
	seen := 0
	for _, dir := range []string{"relay", "verifier", "status"} {
		files, _ := filepath.Glob(filepath.Join("..", "events", dir, "*.json"))
		if len(files) == 0 {
			t.Errorf("no samples in events/%s", dir)
		}
		for _, file := range files {
			name := dir + "/" + filepath.Base(file)
			t.Run(name, func(t *testing.T) {
				expect, ok := want[name]
				if !ok {
					t.Fatalf("events/%s is not in events/README.md's table", name)
				}
				ev, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				az.Reset()
				r := invoke(t, fns[dir], resign(t, ev))
				if r.fnErr != nil {
					t.Fatalf("function error %v, want %s", r.fnErr, expect)
				}
				switch first := strings.Fields(expect)[0]; first {
				case "JSON":
					if r.status != 0 || r.body["forwarded"] != true {
						t.Fatalf("got %d %v, want a JSON result", r.status, r.body)
					}
				default:
					status, err := strconv.Atoi(first)
					if err != nil {
						t.Fatalf("README says %q: neither a status nor a JSON result", expect)
					}
					if r.status != status {
						t.Fatalf("got %d %v, want %d (%s)", r.status, r.body, status, expect)
					}
				}
				if m := scheme.FindStringSubmatch(expect); m != nil && r.body["scheme"] != m[1] {
					t.Errorf("scheme %v, want %s", r.body["scheme"], m[1])
				}
				if dir == "relay" {
					wantDeliveries := 0
					if r.status == 200 || r.status == 0 {
						wantDeliveries = 1
					}
					if d := az.Deliveries(); len(d) != wantDeliveries || (wantDeliveries == 1 && !d[0].Verified) {
						t.Errorf("%d deliveries (verified %v), want %d verified", len(d), len(d) > 0 && d[0].Verified, wantDeliveries)
					}
				}
				oneLogLine(t, r)
				seen++
				sampleCases.Add(1)
			})
		}
	}
	if seen != len(want) {
		t.Errorf("%d samples ran, events/README.md lists %d", seen, len(want))
	}
}
