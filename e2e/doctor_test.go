package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

// The wiring the doctor checks: a stack whose relay and status function have
// these URLs (API Gateway's form; nothing calls them), its secret and credentials.
const (
	wiredRelay    = "https://abc123.execute-api.eu-west-1.amazonaws.com/"
	wiredHook     = "https://abc123.execute-api.eu-west-1.amazonaws.com/azure/events"
	wiredSecret   = "port/azure-relay-doctor"
	wiredClientID = "doctor-client-id"
	wiredPortKey  = "doctor-port-secret-Hq2"
	wiredPAT      = "doctor-azure-pat-Vb8"
	wiredHookPass = "doctor-hook-password-Rt5"
	wiredProject  = "Payments"
)

var (
	doctorOnce sync.Once
	doctorBin  string
	doctorErr  error
)

// buildDoctor builds cmd/doctor once for the host.
func buildDoctor(t *testing.T) string {
	t.Helper()
	doctorOnce.Do(func() {
		dir, err := os.MkdirTemp("", "e2e-doctor-")
		if err != nil {
			doctorErr = err
			return
		}
		doctorBin = filepath.Join(dir, "doctor")
		out, err := exec.Command("go", "build", "-o", doctorBin, "../cmd/doctor").CombinedOutput()
		if err != nil {
			doctorErr = fmt.Errorf("go build ../cmd/doctor: %v\n%s", err, out)
		}
	})
	if doctorErr != nil {
		t.Fatal(doctorErr)
	}
	return doctorBin
}

// wired is a fully wired stack's world: the secret, Azure DevOps with the pipeline
// and both subscriptions, Port with one action calling the relay.
type wired struct {
	sm      *smtest.Server
	az      *azdotest.Server
	port    *porttest.Server
	secret  map[string]string
	pipe    azdotest.RunsPipeline
	subs    map[string]string // event → subscription id
	actions []porttest.Action
	env     []string
	added   bool
}

func newWired(t *testing.T) *wired {
	w := &wired{sm: smtest.New(), az: azdotest.New(org), port: porttest.New(wiredClientID, wiredPortKey), subs: map[string]string{}}
	t.Cleanup(w.sm.Close)
	t.Cleanup(w.az.Close)
	t.Cleanup(w.port.Close)
	w.secret = map[string]string{"clientId": wiredClientID, "clientSecret": wiredPortKey, "serviceHookPassword": wiredHookPass, "azurePat": wiredPAT}
	w.pipe = azdotest.RunsPipeline{Project: wiredProject, ID: 42, Name: "deploy-service"}
	w.az.AddPAT(wiredPAT)
	for _, ev := range []string{"ms.vss-pipelines.run-state-changed-event", "ms.vss-pipelines.stage-state-changed-event"} {
		w.subs[ev] = w.az.AddSubscription(subscription(ev, wiredHook, true))
	}
	w.actions = []porttest.Action{
		webhookAction("deploy_service", wiredRelay+"pipelines/deploy", false, `{"templateParameters":{"service":"{{ .entity.identifier }}"},"port_context":{"runId":"{{ .run.id }}"}}`),
		webhookAction("build_new_service", wiredRelay, false, `{"port_context":{"entity":"{{ .event.diff.after.identifier }}","runId":"{{.run.id}}"}}`),
		{Identifier: "github_only", InvocationMethod: porttest.InvocationMethod{Type: "GITHUB"}},
	}
	return w
}

func subscription(event, url string, basic bool) azdotest.Subscription {
	inputs := map[string]string{"url": url, "resourceDetailsToSend": "all"}
	if basic {
		inputs["basicAuthUsername"], inputs["basicAuthPassword"] = "azure-devops", wiredHookPass
	}
	return azdotest.Subscription{PublisherID: "pipelines", EventType: event, ResourceVersion: "5.1-preview.1",
		ConsumerID: "webHooks", ConsumerActionID: "httpRequest",
		PublisherInputs: map[string]string{"projectId": azdotest.ProjectID(wiredProject)}, ConsumerInputs: inputs}
}

func webhookAction(id, url string, synchronized bool, body string) porttest.Action {
	return porttest.Action{Identifier: id, Trigger: map[string]any{"type": "self-service"},
		InvocationMethod: porttest.InvocationMethod{Type: "WEBHOOK", URL: url, Synchronized: synchronized, Method: "POST", Body: json.RawMessage(body)}}
}

// doctor runs the command against the world, as set up now, and returns its output
// and exit status.
func (w *wired) doctor(t *testing.T, args ...string) (string, int) {
	t.Helper()
	secretJSON, _ := json.Marshal(w.secret)
	arn := w.sm.Put(wiredSecret, string(secretJSON))
	if !w.added {
		w.az.AddPipeline(w.pipe) // registered once, as the test left it before the first run
		w.added = true
	}
	w.port.SetActions(w.actions...)
	env := append(w.sm.Env(), "PATH="+os.Getenv("PATH"), "HOME="+t.TempDir(),
		"PORT_SECRET_ID="+arn, "AZURE_DEVOPS_ORG="+org, "AZURE_DEVOPS_WEBHOOK="+hookDeploy,
		"AZURE_DEVOPS_PIPELINES=deploy="+wiredProject+"/42", "AZURE_DEVOPS_URL="+w.az.URL, "PORT_API_URL="+w.port.URL)
	env = append(env, w.env...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildDoctor(t), append([]string{"-relay-url", wiredRelay, "-hook-url", wiredHook}, args...)...)
	cmd.Env = env
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if stderr.Len() > 0 {
		t.Fatalf("doctor wrote to stderr (status %d): %s", code, stderr.String())
	}
	text := out.String()
	for _, s := range []string{wiredPortKey, wiredPAT, wiredHookPass, "porttest-", "eyJ"} {
		if strings.Contains(text, s) {
			t.Errorf("the doctor's output holds a secret, token or password (%.8s…):\n%s", s, text)
		}
	}
	return text, code
}

// TestDoctorPassesAFullyWiredStack: every link holds, every line is ✓ but the
// password's, which Azure masks, and the status is 0.
func TestDoctorPassesAFullyWiredStack(t *testing.T) {
	w := newWired(t)
	out, code := w.doctor(t)
	t.Log("\n" + out)
	if code != 0 || strings.Contains(out, "✗") {
		t.Fatalf("doctor = %d, want 0 and no ✗:\n%s", code, out)
	}
	for _, want := range []string{
		"✓ secret: ", "✓ Port: Port accepts", "✓ Port action deploy_service: posts to /pipelines/deploy",
		"✓ Port action build_new_service: posts to /", "✓ Azure DevOps: organization " + org + " accepts the secret's azurePat",
		"✓ pipeline deploy (Payments/42): exists", "✓ service hook run-state-changed in Payments:", "✓ service hook stage-state-changed in Payments:",
		"– service hook password: not checked: Azure answers it masked",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "github_only") {
		t.Errorf("an action of another backend is checked:\n%s", out)
	}
}

// TestDoctorFindsEachBrokenLink: each fault, alone, gives its ✗ (or – not checked)
// line and status 1 (0 when nothing failed).
func TestDoctorFindsEachBrokenLink(t *testing.T) {
	run := "ms.vss-pipelines.run-state-changed-event"
	tests := []struct {
		name   string
		break_ func(w *wired)
		want   string
		code   int
	}{
		{"the secret is missing", func(w *wired) { w.env = append(w.env, "PORT_SECRET_ID=port/none") }, "✗ secret: port/none does not exist", 1},
		{"the secret has no serviceHookPassword", func(w *wired) { delete(w.secret, "serviceHookPassword") }, "✗ secret: no serviceHookPassword", 1},
		{"the secret has no clientId", func(w *wired) { delete(w.secret, "clientId") }, "✗ secret: no clientId", 1},
		{"Port refuses the credentials", func(w *wired) { w.secret["clientSecret"] = "not-" + wiredPortKey },
			"✗ Port: Port refused the secret's clientId and clientSecret", 1},
		{"an action posts to another stack", func(w *wired) {
			w.actions[0].InvocationMethod.URL = "https://zzz999.execute-api.eu-west-1.amazonaws.com/pipelines/deploy"
		}, "✗ Port action deploy_service: posts /pipelines/deploy to another relay, zzz999.execute-api.eu-west-1.amazonaws.com", 1},
		{"an action is synchronized", func(w *wired) { w.actions[0].InvocationMethod.Synchronized = true },
			`✗ Port action deploy_service: is "synchronized": true`, 1},
		{"an action's body has no runId", func(w *wired) {
			w.actions[1].InvocationMethod.Body = json.RawMessage(`{"port_context":{"entity":"x"}}`)
		},
			"✗ Port action build_new_service: its body does not carry port_context.runId", 1},
		{"an action's route names nothing", func(w *wired) { w.actions[0].InvocationMethod.URL = wiredRelay + "webhooks/nightly" },
			"✗ Port action deploy_service: posts to /webhooks/nightly, which names no webhook or pipeline", 1},
		{"Azure refuses the credential", func(w *wired) { w.secret["azurePat"] = "revoked-pat-Xy" },
			"✗ Azure DevOps: Azure DevOps refused the secret's azurePat", 1},
		{"a pipeline is missing", func(w *wired) { w.env = append(w.env, "AZURE_DEVOPS_PIPELINES=deploy=Payments/42,nightly=Payments/57") },
			"✗ pipeline nightly (Payments/57): project Payments shows no pipeline 57", 1},
		{"the identity may not queue the pipeline", func(w *wired) { w.pipe.QueueDenied = true },
			"✗ pipeline deploy (Payments/42): exists (\"deploy-service\"), but the secret's azurePat may not queue it", 1},
		{"a PAT without the hooks scope", func(w *wired) {
			w.az.AddScopedPAT("project-only-pat-Zq", azdotest.ScopeProject)
			w.env = append(w.env, "AZURE_DEVOPS_PAT=project-only-pat-Zq")
		}, "– service hooks: not checked: AZURE_DEVOPS_PAT may not read service hook subscriptions: the PAT lacks the scope → give the PAT Build: Read & execute", 0},
		{"a subscription is missing", func(w *wired) { w.az.DeleteSubscription(w.subs[run]) },
			"✗ service hook run-state-changed in Payments: no subscription posts it to " + wiredHook + " → run with -fix", 1},
		{"a subscription points at another URL", func(w *wired) {
			w.az.SetSubscriptionInput(w.subs[run], "url", "https://zzz999.execute-api.eu-west-1.amazonaws.com/azure/events")
		}, "✗ service hook run-state-changed in Payments: no subscription posts it to " + wiredHook + "; subscription", 1},
		{"a subscription has no Basic auth", func(w *wired) { w.az.SetSubscriptionInput(w.subs[run], "basicAuthPassword", "") },
			"posts without Basic authentication", 1},
		{"a subscription is on probation", func(w *wired) { w.az.SetSubscriptionStatus(w.subs[run], "onProbation") },
			"is onProbation: Azure sends it nothing", 1},
		{"a subscription is disabled by the system", func(w *wired) { w.az.SetSubscriptionStatus(w.subs[run], "disabledBySystem") },
			"is disabledBySystem", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWired(t)
			tt.break_(w)
			out, code := w.doctor(t)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Fatalf("doctor = %d, want %d and a line with %q:\n%s", code, tt.code, tt.want, out)
			}
			if tt.code == 0 && strings.Contains(out, "✗") {
				t.Errorf("a not-checked link is reported as failed:\n%s", out)
			}
		})
	}
}

// TestDoctorFixCreatesAndReEnables: -fix creates the missing subscription with the
// secret's password and re-enables the disabled one, touching nothing else; a
// second -fix changes nothing, and the doctor then passes.
func TestDoctorFixCreatesAndReEnables(t *testing.T) {
	w := newWired(t)
	run, stage := "ms.vss-pipelines.run-state-changed-event", "ms.vss-pipelines.stage-state-changed-event"
	w.az.DeleteSubscription(w.subs[run])
	w.az.SetSubscriptionStatus(w.subs[stage], "disabledBySystem")
	other := w.az.AddSubscription(subscription(run, "https://zzz999.execute-api.eu-west-1.amazonaws.com/azure/events", true))
	w.az.SetSubscriptionStatus(other, "disabledBySystem") // another stack's: not ours to touch

	out, code := w.doctor(t, "-fix")
	if code != 0 || !strings.Contains(out, "✓ service hook run-state-changed in Payments: created") ||
		!strings.Contains(out, "✓ service hook stage-state-changed in Payments: subscription "+w.subs[stage]+" re-enabled (it was disabledBySystem)") {
		t.Fatalf("doctor -fix = %d:\n%s", code, out)
	}
	if got := w.az.SubscriptionWrites(); got != 2 {
		t.Errorf("-fix wrote %d subscriptions, want 2 (one created, one re-enabled)", got)
	}
	var created int
	for _, s := range w.az.Subscriptions() {
		switch {
		case s.ID == other && s.Status != "disabledBySystem":
			t.Errorf("-fix changed another stack's subscription: %+v", s)
		case s.ID == w.subs[stage] && (s.Status != "enabled" || s.ConsumerInputs["basicAuthPassword"] != wiredHookPass):
			t.Errorf("re-enabled subscription = %s with another password, want enabled and its password kept", s.Status)
		case s.ID != other && s.ID != w.subs[stage]:
			created++
			in := s.ConsumerInputs
			if s.EventType != run || s.Status != "enabled" || in["url"] != wiredHook || in["basicAuthPassword"] != wiredHookPass ||
				in["basicAuthUsername"] == "" || in["resourceDetailsToSend"] != "all" || s.PublisherInputs["projectId"] != azdotest.ProjectID(wiredProject) ||
				s.PublisherInputs["pipelineId"] != "" || s.ConsumerID != "webHooks" || s.ConsumerActionID != "httpRequest" {
				t.Errorf("created subscription %+v: want run-state-changed of every pipeline of Payments, to %s, Basic auth with the secret's password", s, wiredHook)
			}
		}
	}
	if created != 1 {
		t.Errorf("%d subscriptions created, want 1", created)
	}

	out, code = w.doctor(t, "-fix")
	if code != 0 || strings.Contains(out, "created") || strings.Contains(out, "re-enabled") || w.az.SubscriptionWrites() != 2 {
		t.Fatalf("a second -fix = %d, %d writes in all, want 0 and nothing changed:\n%s", code, w.az.SubscriptionWrites(), out)
	}
	if out, code = w.doctor(t); code != 0 || strings.Contains(out, "✗") {
		t.Fatalf("doctor after -fix = %d:\n%s", code, out)
	}
}

// TestDoctorOnWebhookOnlyWiring: no pipelines by id, no Azure credential in the
// secret. The service hooks are then not checked, unless AZURE_DEVOPS_PAT names a
// credential; -project says where they belong, without it any project's count.
func TestDoctorOnWebhookOnlyWiring(t *testing.T) {
	w := newWired(t)
	delete(w.secret, "azurePat")
	w.actions = w.actions[1:] // the action of the pipeline by id goes
	w.env = append(w.env, "AZURE_DEVOPS_PIPELINES=")

	out, code := w.doctor(t)
	if code != 0 || !strings.Contains(out, "– service hooks: not checked: the secret holds no azurePat or Entra app") || strings.Contains(out, "✗") {
		t.Fatalf("webhook-only, no credential: doctor = %d:\n%s", code, out)
	}

	w.env = append(w.env, "AZURE_DEVOPS_PAT="+wiredPAT)
	out, code = w.doctor(t)
	if code != 0 || !strings.Contains(out, "✓ service hook run-state-changed in any project:") {
		t.Fatalf("webhook-only with AZURE_DEVOPS_PAT: doctor = %d:\n%s", code, out)
	}
	out, code = w.doctor(t, "-project", wiredProject)
	if code != 0 || !strings.Contains(out, "✓ Azure DevOps: organization "+org+" accepts AZURE_DEVOPS_PAT") ||
		!strings.Contains(out, "✓ service hook stage-state-changed in Payments:") {
		t.Fatalf("webhook-only with -project: doctor = %d:\n%s", code, out)
	}
	w.az.DeleteSubscription(w.subs["ms.vss-pipelines.run-state-changed-event"])
	if out, code = w.doctor(t); code != 1 || !strings.Contains(out, "→ name the project with -project and run with -fix") {
		t.Fatalf("webhook-only, a subscription missing, no project named: doctor = %d:\n%s", code, out)
	}
}
