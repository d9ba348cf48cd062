package e2e

import (
	"crypto/rand"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/entra/entratest"
	"github.com/port-azure-relay/relay/shared/entra/ststest"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/runstatus/servicehooktest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

// The Azure credentials the pipeline tests store; the log audit looks for each.
const (
	e2ePAT       = "e2e-azure-pat-Wq8Lm3Zt"
	e2eTenant    = "5b0a7c2e-1d3f-4e58-9a6b-7c8d9e0f1a2b"
	e2eClient    = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
	e2eAppSecret = "e2e-entra-app-secret-Rv5"
)

var azureCredentials = []string{e2ePAT, e2eAppSecret}

// pipelinesWorld is a relay that starts pipelines by id (and has no webhook), with the
// status function, sharing Secrets Manager, Azure (the Runs API), Entra and Port's
// API, and the relay's ledger, as one stack deployed with AzureDevOpsPipelines.
type pipelinesWorld struct {
	sm     *smtest.Server
	az     *azdotest.Server
	entra  *entratest.Server
	port   *porttest.Server
	db     *dynamotest.Server
	relay  *lambdatest.Function
	status *lambdatest.Function
	hook   *servicehooktest.Sender
}

func newPipelinesWorld(t *testing.T, secretJSON string, extraEnv ...string) *pipelinesWorld {
	t.Helper()
	return newPipelinesWorldLedger(t, true, secretJSON, extraEnv...)
}

// newPipelinesWorldLedger is newPipelinesWorld with the ledger on or off (Ledger=false:
// no LEDGER_TABLE for either function).
func newPipelinesWorldLedger(t *testing.T, withLedger bool, secretJSON string, extraEnv ...string) *pipelinesWorld {
	t.Helper()
	w := &pipelinesWorld{sm: smtest.New(), az: azdotest.New(org), entra: entratest.New(), port: porttest.New(portClientID, portSecret), db: dynamotest.New()}
	for _, c := range []func(){w.sm.Close, w.az.Close, w.entra.Close, w.port.Close, w.db.Close} {
		t.Cleanup(c)
	}
	w.sm.Put(secretName, secretJSON)
	w.az.AddPipeline(azdotest.RunsPipeline{Project: "Payments Team", ID: 42, Name: "deploy-service " + marker, Parameters: []string{"service", "replicas"}, DefaultBranch: "refs/heads/main"})
	w.az.AddPAT(e2ePAT)
	w.entra.AddApp(e2eTenant, e2eClient, e2eAppSecret)
	w.az.AcceptBearer(func(token string) bool { _, _, ok := w.entra.Valid(token); return ok })
	w.db.CreateTable(ledgerTable, "id")
	w.db.EnableTTL(ledgerTable, "expiresAt")
	env := append(w.sm.Env(), "PORT_SECRET_ID="+secretName, "PORT_API_URL="+w.port.URL, "AZURE_DEVOPS_ORG="+org)
	relayEnv := append(slices.Clone(env), "AZURE_DEVOPS_URL="+w.az.URL, "AZURE_AUTHORITY_HOST="+w.entra.URL,
		"AZURE_DEVOPS_PIPELINES=deploy=Payments Team/42@refs/heads/release, ghost=Payments Team/99")
	if withLedger {
		relayEnv = append(relayEnv, dynamoEndpoint(w.db), "LEDGER_TABLE="+ledgerTable)
	}
	w.relay = start(t, relayBin, faultTimeout, append(relayEnv, extraEnv...))
	w.status = start(t, statusBin, 10*time.Second, env) // no ledger, no DynamoDB: Port's API finds the runs
	gw := lambdatest.Gateway(w.status)
	t.Cleanup(func() { gw.Close() })
	w.hook = &servicehooktest.Sender{URL: gw.URL + "/azure/events", Username: "azure-devops", Password: hookPassword,
		Delays: slices.Repeat([]time.Duration{50 * time.Millisecond}, len(servicehooktest.AzureDelays))}
	return w
}

func pipelineSecret(azure string) string {
	return `{"clientId":"` + portClientID + `","clientSecret":"` + portSecret + `","serviceHookPassword":"` + hookPassword + `",` + azure + `}`
}

func pipelineBody(runID string) []byte {
	return fmt.Appendf(nil, `{"templateParameters":{"service":"payments %s","replicas":3},"port_context":{"runId":"%s"}}`, marker, runID)
}

// TestAPipelineByIDFollowedToItsEnd: an unchanged pipeline is started by id; the Port
// run gets the Azure link and externalRunId in the same invocation, then each stage and
// the result from the status function, which finds the Port run by that externalRunId
// in Port's API: the run's name carries no Port run id. So it is with the ledger, after
// the ledger's record of the delivery has expired (a run waiting days for an approval),
// and with no ledger at all; the completion event's run has no id, as in Microsoft's
// current sample.
func TestAPipelineByIDFollowedToItsEnd(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	for _, tc := range []struct {
		name   string
		ledger bool
	}{
		{"with the ledger, its record expired before the run ends", true},
		{"with no ledger at all", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			followToTheEnd(t, newPipelinesWorldLedger(t, tc.ledger, pipelineSecret(`"azurePat":"`+e2ePAT+`"`)), tc.ledger)
			pipelineCases.Add(1)
		})
	}
}

func followToTheEnd(t *testing.T, w *pipelinesWorld, withLedger bool) {
	runID := "r_byid" + strings.ReplaceAll(rand.Text()[:10], "_", "")
	w.port.CreateRuns(runID)

	r := invoke(t, w.relay, signedEvent(1, "/pipelines/deploy", pipelineBody(runID)))
	if r.status != 200 || r.body["pipeline"] != "deploy" || r.body["azureRunId"] == nil || r.body["link"] == nil || r.body["runId"] != runID {
		t.Fatalf("%d %v, want 200 with the pipeline, its run id and link", r.status, r.body)
	}
	azureRunID := int(r.body["azureRunId"].(float64))
	run, _ := w.port.Run(runID)
	if run.Link != r.body["link"] || run.ExternalRunID != "ado_"+org+"_"+strconv.Itoa(azureRunID) || run.Status != "IN_PROGRESS" {
		t.Fatalf("the Port run right after: %+v, want the link and externalRunId ado_%s_%d, in progress", run, org, azureRunID)
	}
	queued := w.az.Runs()
	if len(queued) != 1 || queued[0].Auth != azdotest.AuthPAT || queued[0].RefName != "refs/heads/release" ||
		queued[0].TemplateParameters["replicas"] != "3" || strings.Contains(queued[0].Name, runID) {
		t.Fatalf("Azure queued %+v, want one run by PAT on the configured branch, its name the pipeline's own", queued)
	}
	if !slices.Equal(queued[0].Members, []string{"templateParameters", "resources"}) {
		t.Errorf("the body sent to Azure has members %q, want the run parameters and the branch alone (no port_context)", queued[0].Members)
	}
	if items := w.db.Items(ledgerTable); withLedger != (len(items) == 1) || len(items) > 1 {
		t.Errorf("%d ledger records, want the delivery's alone with the ledger on, none without", len(items))
	}

	// The pipeline runs: Azure's service hooks, with a run name that has no Port run id.
	azRun := servicehooktest.Run{Org: org, PipelineID: 42, PipelineName: "deploy-service", ID: azureRunID, Name: queued[0].Name, State: "inProgress"}
	for _, body := range [][]byte{
		servicehooktest.Notification(azRun),
		servicehooktest.StageNotification(azRun, servicehooktest.Stage{Name: "build", State: "running"}),
		servicehooktest.StageNotification(azRun, servicehooktest.Stage{Name: "build", State: "completed", Result: "succeeded"}),
	} {
		if d, err := w.hook.Send(t.Context(), body); err != nil || !d.Delivered {
			code, answer := d.Last()
			t.Fatalf("service hook: %d %s %v", code, answer, err)
		}
	}
	if run, _ := w.port.Run(runID); run.StatusLabel != "Stage build ended: succeeded" {
		t.Errorf("after the stage: %+v, want the stage on the label", run)
	}
	// Days later: DynamoDB's TTL has deleted whatever the ledger held of this delivery.
	if n := w.db.Sweep(time.Now().Add(8 * 24 * time.Hour)); withLedger && n != 1 {
		t.Errorf("the TTL sweep deleted %d records, want the delivery's", n)
	}
	azRun.State, azRun.Result, azRun.NoID = "completed", "succeeded", true
	if d, err := w.hook.Send(t.Context(), servicehooktest.Notification(azRun)); err != nil || !d.Delivered {
		code, answer := d.Last()
		t.Fatalf("completed: %d %s %v", code, answer, err)
	}
	run, _ = w.port.Run(runID)
	if run.Status != "SUCCESS" || run.Link == "" || !strings.Contains(run.Summary, "("+strconv.Itoa(azureRunID)+")") {
		t.Errorf("at the end: %+v, want SUCCESS with the link and a summary naming the Azure run", run)
	}
	var logs []string
	for _, l := range w.port.Logs(runID) {
		logs = append(logs, l.Message)
	}
	if !slices.Contains(logs, "Azure DevOps: stage build running.") || !slices.Contains(logs, "Azure DevOps: stage build ended: succeeded.") {
		t.Errorf("run log %q, want each stage", logs)
	}
}

// TestPipelinesByIDWithAnEntraApp: the Entra token is fetched once and reused by the
// warm container; a wrong client secret is Entra's refusal, named as such.
func TestPipelinesByIDWithAnEntraApp(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newPipelinesWorld(t, pipelineSecret(`"azureTenantId":"`+e2eTenant+`","azureClientId":"`+e2eClient+`","azureClientSecret":"`+e2eAppSecret+`"`))
	for i := range 3 {
		runID := fmt.Sprintf("r_entra%d%s", i, rand.Text()[:8])
		if r := invoke(t, w.relay, signedEvent(i, "/pipelines/deploy", pipelineBody(runID))); r.status != 200 {
			t.Fatalf("run %d: %d %v", i, r.status, r.body)
		}
	}
	if n := w.entra.Requests(""); n != 1 {
		t.Errorf("%d Entra token requests for 3 runs, want 1: the token is cached", n)
	}
	if runs := w.az.Runs(); len(runs) != 3 || runs[0].Auth != azdotest.AuthBearer {
		t.Errorf("Azure queued %d runs by %v, want 3 by Bearer token", len(runs), runs)
	}
	pipelineCases.Add(1)

	bad := newPipelinesWorld(t, pipelineSecret(`"azureTenantId":"`+e2eTenant+`","azureClientId":"`+e2eClient+`","azureClientSecret":"not-the-secret"`))
	r := invoke(t, bad.relay, signedEvent(1, "/pipelines/deploy", pipelineBody("r_entrabad")))
	if r.status != 502 || !strings.Contains(r.errMsg, "Entra ID refused") || bad.az.RunRequests() != 0 {
		t.Errorf("a wrong client secret: %d %q with %d Runs requests, want 502 naming Entra and nothing sent", r.status, r.errMsg, bad.az.RunRequests())
	}
	pipelineCases.Add(1)
}

// TestRunsAPIAnswers: what Azure's Runs API answers becomes one clear sentence.
func TestRunsAPIAnswers(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newPipelinesWorld(t, pipelineSecret(`"azurePat":"`+e2ePAT+`"`))
	for i, tc := range []struct {
		name   string
		path   string
		body   func(string) []byte
		script []azdotest.Step
		revoke bool
		status int
		words  []string
		runs   int // runs queued by the case
	}{
		{"a revoked PAT: the sign-in page, credentials refused", "/pipelines/deploy", pipelineBody, nil, true, 502, []string{"refused the credentials"}, 0},
		{"an undeclared template parameter: 422 naming it", "/pipelines/deploy", func(id string) []byte {
			return fmt.Appendf(nil, `{"templateParameters":{"colour":"%s"},"port_context":{"runId":"%s"}}`, marker, id)
		}, nil, false, 422, []string{"colour"}, 0},
		{"a pipeline Azure does not have: the entry named", "/pipelines/ghost", pipelineBody, nil, false, 502, []string{"ghost=Payments Team/99"}, 0},
		{"a name not configured: 404", "/pipelines/other", pipelineBody, nil, false, 404, []string{"AZURE_DEVOPS_PIPELINES"}, 0},
		{"429 with Retry-After 1: waited for, then queued", "/pipelines/deploy", pipelineBody, []azdotest.Step{azdotest.Status(429).RetryAfter(1)}, false, 200, nil, 1},
		{"429 with Retry-After past the deadline: throttled", "/pipelines/deploy", pipelineBody, []azdotest.Step{azdotest.Status(429).RetryAfter(30)}, false, 502, []string{"throttling"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.revoke {
				w.az.RevokePAT(e2ePAT)
				defer w.az.AddPAT(e2ePAT)
			}
			w.az.Script(tc.script...)
			before := w.az.RunCount()
			r := invoke(t, w.relay, signedEvent(i, tc.path, tc.body("r_ans"+strconv.Itoa(i)+rand.Text()[:8])))
			if r.status != tc.status {
				t.Fatalf("%d %v, want %d", r.status, r.body, tc.status)
			}
			hasWords(t, "error", r.errMsg, tc.words...)
			if n := w.az.RunCount() - before; n != tc.runs {
				t.Errorf("%d runs queued, want %d", n, tc.runs)
			}
			pipelineCases.Add(1)
		})
	}
}

// TestNoAzureSecretAnywhere: the secret holds only the Entra app's tenant and client
// id; the relay's AWS role, through STS's identity token and the app's federated
// credential, is its Azure identity. Both tokens are fetched once for several runs;
// STS refusing and Entra refusing each say which side refused.
func TestNoAzureSecretAnywhere(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	federated := pipelineSecret(`"azureTenantId":"` + e2eTenant + `","azureClientId":"` + e2eClient + `"`)
	world := func(t *testing.T, setUp func(s *ststest.Server, e *entratest.Server)) (*pipelinesWorld, *ststest.Server) {
		s := ststest.New()
		t.Cleanup(s.Close)
		w := newPipelinesWorld(t, federated, stsEndpoint(s))
		setUp(s, w.entra)
		return w, s
	}
	configured := func(s *ststest.Server, e *entratest.Server) {
		s.SetPolicy(entra.TokenExchangeAudience, entra.AssertionDurationSeconds) // the template's conditions
		e.AddFederatedCredential(e2eTenant, e2eClient, s.EnableFederation(), ststest.DefaultRole, entra.TokenExchangeAudience)
	}

	t.Run("queued with no Azure secret stored, both tokens cached", func(t *testing.T) {
		w, s := world(t, configured)
		for i := range 3 {
			if r := invoke(t, w.relay, signedEvent(i, "/pipelines/deploy", pipelineBody(fmt.Sprintf("r_fed%d%s", i, rand.Text()[:8])))); r.status != 200 {
				t.Fatalf("run %d: %d %v", i, r.status, r.body)
			}
		}
		if runs := w.az.Runs(); len(runs) != 3 || runs[2].Auth != azdotest.AuthBearer {
			t.Errorf("Azure queued %v, want 3 runs by Entra's token", runs)
		}
		if s.Issued() != 1 || w.entra.Requests(entratest.GrantAssertion) != 1 || w.entra.Requests(entratest.GrantSecret) != 0 {
			t.Errorf("%d STS tokens and %d Entra exchanges (%d with a secret) for 3 runs, want 1, 1 and 0",
				s.Issued(), w.entra.Requests(entratest.GrantAssertion), w.entra.Requests(entratest.GrantSecret))
		}
		pipelineCases.Add(1)
	})
	for _, tc := range []struct {
		name  string
		setUp func(s *ststest.Server, e *entratest.Server)
		words []string
	}{
		{"the AWS account's federation is off: STS refuses", func(s *ststest.Server, e *entratest.Server) {
			s.SetPolicy(entra.TokenExchangeAudience, entra.AssertionDurationSeconds) // never turned on
			e.AddFederatedCredential(e2eTenant, e2eClient, "https://00000000.tokens.sts.global.api.aws", ststest.DefaultRole, entra.TokenExchangeAudience)
		}, []string{"outbound identity federation", "turned off"}},
		{"the role's policy does not allow it: AWS denies", func(s *ststest.Server, e *entratest.Server) {
			e.AddFederatedCredential(e2eTenant, e2eClient, s.EnableFederation(), ststest.DefaultRole, entra.TokenExchangeAudience)
			s.SetPolicy("api://another-audience", entra.AssertionDurationSeconds)
		}, []string{"AWS denied", "AzureFederation"}},
		{"the federated credential names another subject: Entra refuses", func(s *ststest.Server, e *entratest.Server) {
			s.SetPolicy(entra.TokenExchangeAudience, entra.AssertionDurationSeconds)
			e.AddFederatedCredential(e2eTenant, e2eClient, s.EnableFederation(), "arn:aws:iam::123456789012:role/another-role", entra.TokenExchangeAudience)
		}, []string{"Entra ID refused the relay's AWS identity", "AADSTS700213"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := world(t, tc.setUp)
			r := invoke(t, w.relay, signedEvent(1, "/pipelines/deploy", pipelineBody("r_fedno"+rand.Text()[:8])))
			if r.status != 502 {
				t.Fatalf("%d %v, want 502", r.status, r.body)
			}
			hasWords(t, "error", r.errMsg, tc.words...)
			if n := w.az.RunRequests(); n != 0 {
				t.Errorf("%d requests reached Azure DevOps, want none", n)
			}
			pipelineCases.Add(1)
		})
	}
}

// stsEndpoint is the one line of s.Env() that the relay's environment lacks.
func stsEndpoint(s *ststest.Server) string {
	for _, kv := range s.Env() {
		if strings.HasPrefix(kv, "AWS_ENDPOINT_URL_STS=") {
			return kv
		}
	}
	panic("ststest.Env has no AWS_ENDPOINT_URL_STS")
}
