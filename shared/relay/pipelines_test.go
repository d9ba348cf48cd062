package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/entra/entratest"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/secret"
)

const (
	tenant      = "8f3c2a1b-4d5e-4f60-9a7b-1c2d3e4f5a6b"
	appID       = "0e1d2c3b-4a59-4687-9584-a3b2c1d0e9f8"
	appSecret   = "entra-app-secret-Qx7"
	pat         = "azure-pat-Kd2Vb9"
	pipelineRun = `{"templateParameters":{"service":"payments","replicas":3,"dryRun":false},"env":"prod","port_context":{"runId":"r_unit1"}}`
)

// pipelineFixture is a relay whose Azure is the stand-in (webhooks and the Runs API
// on one server), with Entra's stand-in for an Entra app, through the real clients.
type pipelineFixture struct {
	*fixture
	az    *azdotest.Server
	entra *entratest.Server
}

func newPipelineFixture(t *testing.T, creds secret.Credentials) *pipelineFixture {
	t.Helper()
	az := azdotest.New("contoso")
	t.Cleanup(az.Close)
	az.AddPipeline(azdotest.RunsPipeline{Project: "Payments", ID: 42, Name: "deploy-service", Parameters: []string{"service", "replicas", "dryRun"}, DefaultBranch: "refs/heads/main"})
	az.AddPAT(pat)
	en := entratest.New()
	t.Cleanup(en.Close)
	en.AddApp(tenant, appID, appSecret)
	az.AcceptBearer(func(token string) bool { _, _, ok := en.Valid(token); return ok })

	f := &pipelineFixture{fixture: newFixture(nil), az: az, entra: en}
	f.secrets.creds = creds
	f.useAzure(&azdo.Client{BaseURL: az.URL, Org: "contoso", HTTP: azdo.NewHTTPClient(nil), Backoff: 5 * time.Millisecond},
		[]azdo.Pipeline{{Name: "deploy", Project: "Payments", ID: 42, Branch: "refs/heads/release"}, {Name: "ghost", Project: "Payments", ID: 99}},
		&entra.Client{AuthorityHost: en.URL, HTTP: &http.Client{Timeout: 5 * time.Second}})
	f.relay.Report = f.reports
	return f
}

func (f *pipelineFixture) handle(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.logs.Reset()
	resp := f.relay.Handle(ctx, "req", httpEvent("POST", path, body, key, now))
	var m map[string]any
	_ = json.Unmarshal(resp.Body, &m)
	return resp.Status, m
}

func TestAPipelineStartedByID(t *testing.T) {
	for _, tt := range []struct {
		name  string
		creds secret.Credentials
		auth  string
	}{
		{"with a PAT", secret.Credentials{ClientID: "id", ClientSecret: key, AzurePAT: pat}, azdotest.AuthPAT},
		{"with an Entra app", secret.Credentials{ClientID: "id", ClientSecret: key, AzureTenantID: tenant, AzureClientID: appID, AzureClientSecret: appSecret}, azdotest.AuthBearer},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newPipelineFixture(t, tt.creds)
			status, body := f.handle(t, "/pipelines/deploy", pipelineRun)
			if status != 200 || body["forwarded"] != true || body["pipeline"] != "deploy" || body["azureRunId"] == nil ||
				!strings.Contains(body["link"].(string), "_build/results?buildId=") || body["runId"] != "r_unit1" || body["webhook"] != nil {
				t.Fatalf("%d %v, want 200 with the pipeline, the Azure run id and link", status, body)
			}
			runs := f.az.Runs()
			if len(runs) != 1 || runs[0].Auth != tt.auth || runs[0].RefName != "refs/heads/release" {
				t.Fatalf("Azure queued %+v, want one run by %s on the configured branch", runs, tt.auth)
			}
			// Only the run parameters, as strings; port_context and the rest stay with the relay.
			tp := runs[0].TemplateParameters
			if tp["service"] != "payments" || tp["replicas"] != "3" || tp["dryRun"] != "false" || len(tp) != 3 {
				t.Errorf("templateParameters = %v, want the three as strings", tp)
			}
			for _, m := range runs[0].Members {
				if !slices.Contains([]string{"templateParameters", "variables", "resources", "stagesToSkip"}, m) {
					t.Errorf("the body sent to Azure has %q (members %q), want only Azure's run parameters", m, runs[0].Members)
				}
			}
			got := strings.Join(f.reports.calls, "\n")
			if !strings.HasPrefix(got, "label r_unit1: Queued in Azure DevOps") || !strings.Contains(got, "started pipeline deploy: run") {
				t.Errorf("Port heard %q, want the link and run id at once, then a log line", got)
			}
			if strings.Contains(f.logs.String(), pat) || strings.Contains(f.logs.String(), appSecret) || strings.Contains(f.logs.String(), "payments") {
				t.Errorf("the log line holds a credential or a payload value: %s", f.logs)
			}
		})
	}
}

// TestAzureRunsAPIAnswers: each of Azure's refusals is one clear sentence that echoes no
// payload value, with the status the contract gives it.
func TestAzureRunsAPIAnswers(t *testing.T) {
	full := secret.Credentials{ClientID: "id", ClientSecret: key, AzurePAT: pat}
	tests := []struct {
		name   string
		creds  secret.Credentials
		path   string
		body   string
		script []azdotest.Step
		status int
		words  []string
	}{
		{"an unknown pipeline name is 404 before any work", full, "/pipelines/nope", pipelineRun, nil, 404, []string{"AZURE_DEVOPS_PIPELINES", "nope"}},
		{"a revoked PAT: Azure's sign-in page", secret.Credentials{ClientID: "id", ClientSecret: key, AzurePAT: "revoked-pat"}, "/pipelines/deploy", pipelineRun, nil, 502, []string{"refused the credentials", "Build: Read & execute"}},
		{"an Entra app with a wrong secret: named as Entra's refusal", secret.Credentials{ClientID: "id", ClientSecret: key, AzureTenantID: tenant, AzureClientID: appID, AzureClientSecret: "wrong"}, "/pipelines/deploy", pipelineRun, nil, 502, []string{"Entra ID refused", "AADSTS7000215"}},
		{"an undeclared template parameter: 422 naming it, not its value", full, "/pipelines/deploy", `{"templateParameters":{"colour":"secret-value-7"}}`, nil, 422, []string{"colour"}},
		{"a pipeline Azure does not have: 502 naming the entry", full, "/pipelines/ghost", pipelineRun, nil, 502, []string{"cannot find", "ghost=Payments/99"}},
		{"templateParameters not an object: 400 naming the key", full, "/pipelines/deploy", `{"templateParameters":["x"]}`, nil, 400, []string{"templateParameters"}},
		{"no credential in the secret: 503", secret.Credentials{ClientID: "id", ClientSecret: key}, "/pipelines/deploy", pipelineRun, nil, 503, []string{"azurePat"}},
		{"throttled past the deadline: 502 throttled", full, "/pipelines/deploy", pipelineRun, []azdotest.Step{azdotest.Status(429).RetryAfter(30)}, 502, []string{"throttling"}},
		{"a bare 500: the run may have been queued", full, "/pipelines/deploy", pipelineRun, []azdotest.Step{azdotest.Status(500)}, 502, []string{"may have been queued"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newPipelineFixture(t, tt.creds)
			f.az.Script(tt.script...)
			status, body := f.handle(t, tt.path, tt.body)
			say, _ := body["error"].(string)
			if status != tt.status {
				t.Fatalf("%d %v, want %d", status, body, tt.status)
			}
			for _, w := range tt.words {
				if !strings.Contains(say, w) {
					t.Errorf("error %q: want it to say %q", say, w)
				}
			}
			for _, leak := range []string{"secret-value-7", pat, "revoked-pat", appSecret, "payments"} {
				if strings.Contains(say, leak) || strings.Contains(f.logs.String(), leak) {
					t.Errorf("answer %q or log %s holds %q", say, f.logs, leak)
				}
			}
			if tt.status == 404 && (f.az.RunRequests() != 0 || f.entra.Requests("") != 0) {
				t.Errorf("an unknown name reached Azure or Entra")
			}
		})
	}
}

// TestTheEntraTokenIsCachedAcrossInvocations: one Entra request for many runs.
func TestTheEntraTokenIsCachedAcrossInvocations(t *testing.T) {
	f := newPipelineFixture(t, secret.Credentials{ClientID: "id", ClientSecret: key, AzureTenantID: tenant, AzureClientID: appID, AzureClientSecret: appSecret})
	for i := range 5 {
		body := strings.Replace(pipelineRun, "r_unit1", "r_unit"+string(rune('a'+i)), 1)
		if status, got := f.handle(t, "/pipelines/deploy", body); status != 200 {
			t.Fatalf("run %d: %d %v", i, status, got)
		}
	}
	if n := f.entra.Requests(""); n != 1 {
		t.Errorf("%d Entra token requests for 5 runs, want 1", n)
	}
	if n := f.az.RunCount(); n != 5 {
		t.Errorf("%d runs, want 5", n)
	}
}

// TestTheLedgerRecordsTheAzureRun: a pipeline started by id is recorded with its Azure
// run id and link, and a repeat gets them back; nothing else is written: the status
// function finds the Port run through Port's API, not the ledger.
func TestTheLedgerRecordsTheAzureRun(t *testing.T) {
	f := newPipelineFixture(t, secret.Credentials{ClientID: "id", ClientSecret: key, AzurePAT: pat})
	db := dynamotest.New()
	t.Cleanup(db.Close)
	db.CreateTable(ledgerTable, "id")
	f.relay.Ledger = &ledger.Ledger{DB: db.Client(), Table: ledgerTable}
	_, first := f.handle(t, "/pipelines/deploy", pipelineRun)
	status, again := f.handle(t, "/pipelines/deploy", pipelineRun)
	if status != 200 || again["duplicate"] != true || again["azureRunId"] != first["azureRunId"] || again["link"] != first["link"] || again["pipeline"] != "deploy" {
		t.Fatalf("repeat: %d %v, want the first answer (%v) and duplicate", status, again, first)
	}
	items := db.Items(ledgerTable)
	if len(items) != 1 {
		t.Errorf("%d ledger items, want the delivery's record alone: %v", len(items), items)
	}
	if n := f.az.RunCount(); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

// TestTheExternalRunIDNamesTheOrganization: the Port run of a pipeline started by id
// gets externalRunId ado_<org>_<azureRunId> at once, through Port's API: Azure's run
// ids are unique only within one organization.
func TestTheExternalRunIDNamesTheOrganization(t *testing.T) {
	f := newPipelineFixture(t, secret.Credentials{ClientID: "id", ClientSecret: key, AzurePAT: pat})
	port := porttest.New("id", key)
	t.Cleanup(port.Close)
	port.CreateRuns("r_unit1")
	f.relay.Report = &portapi.Client{BaseURL: port.URL}
	status, body := f.handle(t, "/pipelines/deploy", pipelineRun)
	if status != 200 {
		t.Fatalf("%d %v, want 200", status, body)
	}
	want := "ado_contoso_" + strconvItoa(int(body["azureRunId"].(float64)))
	if run, _ := port.Run("r_unit1"); run.ExternalRunID != want || run.Link != body["link"] || run.Status != "IN_PROGRESS" {
		t.Errorf("Port run = %+v, want externalRunId %s and the link, in progress", run, want)
	}
}

func strconvItoa(n int) string { b, _ := json.Marshal(n); return string(b) }
