// Command demo runs the whole chain on one machine, with no AWS account and no
// Docker: the real relay and verifier bootstraps under the Lambda Runtime Interface
// Emulator, each behind a local API Gateway front, the real Secrets Manager client
// against a local endpoint, and a stand-in for Port's API. The verifier plays Azure
// DevOps. It sends one Port-signed invocation, prints the trace, sends the same
// invocation to a second relay container, which the shared ledger (a local DynamoDB)
// answers as a duplicate, then one forged request, refused; then Azure's service hook
// reports the pipeline run to the status function, which ends the Port run SUCCESS
// with the run's link. Last, an existing pipeline is started by id (Azure's Runs API,
// a PAT from the secret): its link and externalRunId reach the Port run at once, and
// SUCCESS comes from the status function, which finds the Port run in Port's API by
// that externalRunId. Then a click during an Azure throttle is answered 202 queued and
// put on the delivery queue (a local SQS), and the queue's event source mapping starts it
// once Azure opens. Last, the doctor checks the demo's own wiring, link by link (all
// ✓), finds the one link broken next (Azure disabling the service hook) and mends it
// with -fix.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/queue/sqstest"
	"github.com/port-azure-relay/relay/shared/runstatus/servicehooktest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
	"github.com/port-azure-relay/relay/shared/signature"
)

const (
	org      = "demo-org"
	webhook  = "port_trigger"
	clientID = "demo-client-id"
	runID    = "r_DemoRun0000001"
	byIDRun  = "r_DemoRun0000002" // the run of the pipeline started by id
	queueRun = "r_DemoRun0000003" // the run clicked while Azure throttles
	hookPass = "demo-service-hook-password"
	demoPAT  = "demo-azure-pat"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	rie, err := lambdatest.FindRIE()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "relay-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	step("building the relay, verifier and status bootstraps (static, -tags lambda.norpc) and the doctor")
	for _, fn := range []string{"relay", "verifier", "status"} {
		if err := lambdatest.Build(ctx, "./functions/"+fn, filepath.Join(dir, fn, "bootstrap")); err != nil {
			return err
		}
	}
	if err := lambdatest.Build(ctx, "./cmd/doctor", filepath.Join(dir, "doctor")); err != nil {
		return err
	}

	secret := randomSecret()
	sm := smtest.New()
	defer sm.Close()
	arn := sm.Put("port/azure-relay", fmt.Sprintf(`{"clientId":%q,"clientSecret":%q,"serviceHookPassword":%q,"azurePat":%q}`, clientID, secret, hookPass, demoPAT))
	step("Secrets Manager (local, SigV4-checked) holds %s", arn)
	port := porttest.New(clientID, secret)
	defer port.Close()
	port.CreateRuns(runID, byIDRun) // the user clicks the actions in Port
	// Azure DevOps' Runs API, for the pipeline started by id; the verifier plays the webhooks.
	runsAPI := azdotest.New(org)
	defer runsAPI.Close()
	runsAPI.AddPipeline(azdotest.RunsPipeline{Project: "Payments", ID: 42, Name: "deploy-service", Parameters: []string{"service"}, DefaultBranch: "refs/heads/main"})
	runsAPI.AddPAT(demoPAT)

	db := dynamotest.New()
	defer db.Close()
	db.CreateTable("relay-ledger", "id")
	db.EnableTTL("relay-ledger", "expiresAt")
	step("DynamoDB (local, SigV4-checked) holds the delivery ledger, table relay-ledger")
	sqsSrv := sqstest.New()
	defer sqsSrv.Close()
	// As the template makes them: the dead-letter queue, then the delivery queue.
	dlqURL := sqsSrv.CreateQueue("relay-delivery-dlq", map[string]string{"MessageRetentionPeriod": "1209600"})
	queueURL := sqsSrv.CreateQueue("relay-delivery", map[string]string{"VisibilityTimeout": "150", "MessageRetentionPeriod": "345600",
		"RedrivePolicy": `{"deadLetterTargetArn":"` + sqstest.ARN("relay-delivery-dlq") + `","maxReceiveCount":1000}`})
	step("SQS (local, SigV4-checked) holds the delivery queue, relay-delivery, and its dead-letter queue")

	logs := &strings.Builder{}
	verifier, err := lambdatest.Start(ctx, lambdatest.Options{
		RIE: rie, Bootstrap: filepath.Join(dir, "verifier", "bootstrap"), Timeout: 10 * time.Second,
		Env: append(sm.Env(), "PORT_SECRET_ID="+arn),
	})
	if err != nil {
		return err
	}
	defer verifier.Close()
	verifierGW := lambdatest.Gateway(verifier)
	defer verifierGW.Close()
	azure := tracing(verifierGW.URL, runsAPI.URL)
	defer azure.Close()

	// Two relay containers, as Lambda runs them, sharing the ledger.
	relayEnv := append(sm.Env(), db.Env()...)
	relayEnv = append(relayEnv,
		"PORT_SECRET_ID="+arn,
		"AZURE_DEVOPS_ORG="+org,
		"AZURE_DEVOPS_WEBHOOK="+webhook,
		"AZURE_DEVOPS_URL="+azure.URL,
		"PORT_API_URL="+port.URL,
		"LEDGER_TABLE=relay-ledger",
		"AWS_ENDPOINT_URL_SQS="+sqsSrv.URL,
		"DELIVERY_QUEUE_URL="+queueURL,
		"DELIVERY_DLQ_URL="+dlqURL,
		"AZURE_DEVOPS_PIPELINES=deploy=Payments/42@refs/heads/main")
	var relayGWs []*lambdatest.Endpoint
	var relays []*lambdatest.Function
	for range 2 {
		relay, err := lambdatest.Start(ctx, lambdatest.Options{
			RIE: rie, Bootstrap: filepath.Join(dir, "relay", "bootstrap"), Timeout: 10 * time.Second, Stdout: logs, Env: relayEnv,
		})
		if err != nil {
			return err
		}
		defer relay.Close()
		relays = append(relays, relay)
		gw := lambdatest.Gateway(relay)
		defer gw.Close()
		relayGWs = append(relayGWs, gw)
	}
	relayGW := relayGWs[0]
	statusFn, err := lambdatest.Start(ctx, lambdatest.Options{
		RIE: rie, Bootstrap: filepath.Join(dir, "status", "bootstrap"), Timeout: 10 * time.Second, Stdout: logs,
		Env: append(sm.Env(), "PORT_SECRET_ID="+arn, "PORT_API_URL="+port.URL, "AZURE_DEVOPS_ORG="+org),
	})
	if err != nil {
		return err
	}
	defer statusFn.Close()
	statusGW := lambdatest.Gateway(statusFn)
	defer statusGW.Close()
	// Azure's service hooks post only to https with Basic authentication: a TLS front.
	statusURL, _ := url.Parse(statusGW.URL)
	hooksFront := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(statusURL))
	defer hooksFront.Close()
	hookURL := hooksFront.URL + "/azure/events"
	step("two relay containers, verifier and status running under the Lambda Runtime Interface Emulator, behind local API Gateway fronts")
	fmt.Println()

	body := fmt.Sprintf(`{"environment":"staging","port_context":{"entity":"payments-api","blueprint":"service","runId":%q}}`, runID)
	ts := time.Now().Unix()
	sig := signature.SignPort([]byte(secret), ts, []byte(body))
	fmt.Printf(hop+"POST /webhooks/%s  x-port-signature: %s…  x-port-timestamp: %d\n", "Port ──► relay", webhook, sig[:12], ts)
	status, answer, took, err := post(ctx, relayGW.URL+"/webhooks/"+webhook, body, ts, sig)
	if err != nil {
		return err
	}
	fmt.Printf(hop+"%d %s  (%s, cold start included)\n", "relay ──► Port", status, answer, took)
	if status != http.StatusOK {
		return fmt.Errorf("the relay answered %d, want 200; its log:\n%s", status, logs)
	}
	for _, l := range port.Logs(runID) {
		fmt.Printf(hop+"run %s log: %q\n", "Port (API)", runID, l.Message)
	}

	// The same invocation reaches another container (a client or proxy retry, a replay):
	// the ledger knows the run, so nothing is sent and the first answer comes back.
	fmt.Println()
	fmt.Printf(hop+"the same request again, at another relay container\n", "Port ──► relay #2")
	status, answer, took, err = post(ctx, relayGWs[1].URL+"/webhooks/"+webhook, body, ts, sig)
	if err != nil {
		return err
	}
	fmt.Printf(hop+"%d %s  (%s, nothing forwarded: the ledger knows run %s)\n", "relay #2 ──► Port", status, answer, took, runID)
	if status != http.StatusOK || !strings.Contains(answer, `"duplicate":true`) {
		return fmt.Errorf("the second container answered %d %s, want 200 duplicate", status, answer)
	}

	fmt.Println()
	status, answer, took, err = post(ctx, relayGW.URL+"/webhooks/"+webhook, body, ts, signature.SignPort([]byte("a guessed secret"), ts, []byte(body)))
	if err != nil {
		return err
	}
	fmt.Printf(hop+"%d %s  (%s, nothing forwarded)\n", "forged ──► relay", status, answer, took)
	if status != http.StatusUnauthorized {
		return fmt.Errorf("the forged request got %d, want 401", status)
	}

	// The pipeline runs; Azure's service hook reports it, with Basic auth, to /azure/events.
	fmt.Println()
	hook := &servicehooktest.Sender{URL: hookURL, Username: "azure-devops", Password: hookPass, HTTP: hooksFront.Client()}
	pipelineRun := servicehooktest.Run{Org: org, PipelineID: 7, PipelineName: "deploy-service", ID: 42, Name: "20261201.1 " + runID}
	for _, state := range []string{"inProgress", "completed"} {
		pipelineRun.State, pipelineRun.Result = state, map[string]string{"completed": "succeeded"}[state]
		fmt.Printf(hop+"POST /azure/events  Basic auth, run-state-changed: run %d %q %s\n", "Azure ──► status", pipelineRun.ID, pipelineRun.Name, strings.TrimSpace(state+" "+pipelineRun.Result))
		start := time.Now()
		d, err := hook.Send(ctx, servicehooktest.Notification(pipelineRun))
		if err != nil {
			return err
		}
		code, answer := d.Last()
		fmt.Printf(hop+"%d %s  (%s)\n", "status ──► Azure", code, strings.TrimSpace(string(answer)), time.Since(start).Round(time.Millisecond))
		if !d.Delivered {
			return fmt.Errorf("the status function answered %d, want 200; its log:\n%s", code, logs)
		}
	}
	run, _ := port.Run(runID)
	fmt.Printf(hop+"run %s: %s %q, link %s\n", "Port (API)", runID, run.Status, run.StatusLabel, run.Link)
	if run.Status != "SUCCESS" {
		return fmt.Errorf("the Port run is %s, want SUCCESS", run.Status)
	}

	// Any pipeline, unchanged: started by id, its link on the Port run at once.
	fmt.Println()
	byID := fmt.Sprintf(`{"templateParameters":{"service":"payments-api"},"port_context":{"runId":%q}}`, byIDRun)
	ts = time.Now().Unix()
	sig = signature.SignPort([]byte(secret), ts, []byte(byID))
	fmt.Printf(hop+"POST /pipelines/deploy  (an existing pipeline, unchanged: started by id)\n", "Port ──► relay")
	status, answer, took, err = post(ctx, relayGW.URL+"/pipelines/deploy", byID, ts, sig)
	if err != nil {
		return err
	}
	fmt.Printf(hop+"%d %s  (%s)\n", "relay ──► Port", status, answer, took)
	run, _ = port.Run(byIDRun)
	fmt.Printf(hop+"run %s: %s %q, externalRunId %s, link %s  (in the same invocation)\n", "Port (API)", byIDRun, run.Status, run.StatusLabel, run.ExternalRunID, run.Link)
	queued := runsAPI.Runs()
	if status != http.StatusOK || len(queued) != 1 || run.Link == "" {
		return fmt.Errorf("the pipeline by id: %d %s, %d runs, Port run %+v; its log:\n%s", status, answer, len(queued), run, logs)
	}
	byIDRunAz := servicehooktest.Run{Org: org, PipelineID: 42, PipelineName: "deploy-service", ID: queued[0].ID, Name: queued[0].Name}
	for _, step := range []struct{ state, result, stage, stageState, stageResult string }{
		{"inProgress", "", "deploy", "running", ""}, {"inProgress", "", "deploy", "completed", "succeeded"}, {"completed", "succeeded", "", "", ""},
	} {
		byIDRunAz.State, byIDRunAz.Result = step.state, step.result
		body := servicehooktest.Notification(byIDRunAz)
		what := strings.TrimSpace(step.state + " " + step.result)
		if step.stage != "" {
			body = servicehooktest.StageNotification(byIDRunAz, servicehooktest.Stage{Name: step.stage, State: step.stageState, Result: step.stageResult})
			what = "stage " + step.stage + " " + strings.TrimSpace(step.stageState+" "+step.stageResult)
		}
		fmt.Printf(hop+"POST /azure/events  run %d %q (no Port run id in its name) %s\n", "Azure ──► status", byIDRunAz.ID, byIDRunAz.Name, what)
		d, err := hook.Send(ctx, body)
		if err != nil {
			return err
		}
		code, answer := d.Last()
		fmt.Printf(hop+"%d %s\n", "status ──► Azure", code, strings.TrimSpace(string(answer)))
		if !d.Delivered {
			return fmt.Errorf("the status function answered %d, want 200; its log:\n%s", code, logs)
		}
	}
	run, _ = port.Run(byIDRun)
	fmt.Printf(hop+"run %s: %s %q, link %s  (found in Port's API by its externalRunId %s)\n", "Port (API)", byIDRun, run.Status, run.StatusLabel, run.Link, run.ExternalRunID)
	if run.Status != "SUCCESS" {
		return fmt.Errorf("the Port run of the pipeline by id is %s, want SUCCESS", run.Status)
	}

	fmt.Printf("\nThe functions' log (one JSON line per invocation; no secret, no payload):\n")
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.HasPrefix(line, "{") {
			fmt.Println("  " + line)
		}
	}
	// Four containers read once each; the forged request's mismatch made the relay read
	// once more, in case Port's secret had been rotated (at most every 30 s after that).
	fmt.Printf("\nSecrets Manager calls: %d: one per function container (the secret is cached for SECRET_CACHE_TTL), and one\n"+
		"more by the relay when the forged signature did not match, in case Port's secret had just been rotated.\n", sm.Calls())
	puts, updates := db.Calls("PutItem"), db.Calls("UpdateItem")
	if other := db.Calls("") - puts - updates; other != 0 {
		return fmt.Errorf("DynamoDB got %d calls other than the relay's claims and outcomes", other)
	}
	fmt.Printf("DynamoDB calls: %d PutItem and %d UpdateItem, all by the relay: a claim and an outcome per delivery (two runs),\n"+
		"and the duplicate's one claim, whose failed condition returned the first answer; none for the forged request,\n"+
		"none by the status function, which has no DynamoDB: it finds the pipeline's Port run in Port's API.\n", puts, updates)
	if err := queuedClick(ctx, secret, relayGW.URL, relays[1], sqsSrv, queueURL, runsAPI, port); err != nil {
		return fmt.Errorf("%w; the relay's log:\n%s", err, logs)
	}
	return doctorRun(ctx, filepath.Join(dir, "doctor"), relayGW.URL, hookURL, arn, sm.Env(), runsAPI, port)
}

func post(ctx context.Context, target, body string, ts int64, sig string) (int, string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return 0, "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(signature.PortTimestampHeader, strconv.FormatInt(ts, 10))
	req.Header.Set(signature.PortSignatureHeader, sig)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), time.Since(start).Round(time.Millisecond), nil
}

// hop lays out one line of the trace: who talks to whom, then what was said.
const hop = "%-18s "

// tracing fronts the verifier's gateway (the webhooks) and the Runs API, and prints
// each hop the relay makes to them.
func tracing(webhooks, runsAPI string) *httptest.Server {
	u, _ := url.Parse(webhooks)
	proxy := httputil.NewSingleHostReverseProxy(u)
	ru, _ := url.Parse(runsAPI)
	runs := httputil.NewSingleHostReverseProxy(ru)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/_apis/pipelines/") {
			scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			fmt.Printf(hop+"POST %s  Authorization: %s …(the PAT, from the secret)\n", "relay ──► Azure", r.URL.RequestURI(), scheme)
			rec := httptest.NewRecorder()
			runs.ServeHTTP(rec, r)
			var run struct {
				ID   int    `json:"id"`
				Name string `json:"name"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &run)
			if rec.Code == http.StatusOK {
				fmt.Printf(hop+"%d run %d %q\n", "Azure (Runs API)", rec.Code, run.ID, run.Name)
			} else {
				fmt.Printf(hop+"%d  Retry-After: %s\n", "Azure (Runs API)", rec.Code, rec.Header().Get("Retry-After"))
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		fmt.Printf(hop+"POST %s  %s: %.17s…\n", "relay ──► Azure", r.URL.RequestURI(), signature.AzureDefaultHeader, r.Header.Get(signature.AzureDefaultHeader))
		start := time.Now()
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r)
		var answer map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &answer)
		delete(answer, "bytes")
		compact, _ := json.Marshal(answer)
		fmt.Printf(hop+"%d %s  (%s)\n", "Azure (verifier)", rec.Code, compact, time.Since(start).Round(time.Millisecond))
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
}

// queuedClick clicks the pipeline's action while Azure throttles: the relay answers 202
// queued and puts the delivery on the queue; when Azure opens, the queue's event source
// mapping (lambdatest.SQSMapping, as the template configures it) invokes the relay
// container drainer, which starts the pipeline, once.
func queuedClick(ctx context.Context, secret, relayURL string, drainer *lambdatest.Function, sqsSrv *sqstest.Server, queueURL string, az *azdotest.Server, port *porttest.Server) error {
	fmt.Println()
	step("a click while Azure DevOps throttles: Azure answers 429 with Retry-After: 5, so the relay puts the run on the delivery queue")
	port.CreateRuns(queueRun)
	az.Script(azdotest.Status(429).RetryAfter(5))
	before, requests := az.RunCount(), az.RunRequests()
	body := fmt.Sprintf(`{"templateParameters":{"service":"payments-api"},"port_context":{"runId":%q}}`, queueRun)
	ts := time.Now().Unix()
	fmt.Printf(hop+"POST /pipelines/deploy  (while Azure DevOps throttles)\n", "Port ──► relay")
	status, answer, took, err := post(ctx, relayURL+"/pipelines/deploy", body, ts, signature.SignPort([]byte(secret), ts, []byte(body)))
	if err != nil {
		return err
	}
	fmt.Printf(hop+"%d %s  (%s)\n", "relay ──► Port", status, answer, took)
	var queued struct {
		Queued     bool `json:"queued"`
		RetryAfter int  `json:"retryAfter"`
	}
	if status != http.StatusAccepted || json.Unmarshal([]byte(answer), &queued) != nil || !queued.Queued {
		return fmt.Errorf("the click during the throttle: %d %s, want 202 queued", status, answer)
	}
	run, _ := port.Run(queueRun)
	fmt.Printf(hop+"run %s: %s %q\n", "Port (API)", queueRun, run.Status, run.StatusLabel)
	for _, l := range port.Logs(queueRun) {
		fmt.Printf(hop+"run %s log: %q\n", "Port (API)", queueRun, l.Message)
	}

	fmt.Println()
	step("Azure DevOps opens; after %d s the queue's event source mapping hands the delivery to the relay (SQS batch, one message)", queued.RetryAfter)
	drained := make(chan lambdatest.Batch, 1)
	drainCtx, stop := context.WithCancel(ctx)
	defer stop()
	m := &lambdatest.SQSMapping{Client: sqsSrv.Client(), QueueURL: queueURL, Functions: []lambdatest.Invoker{drainer}, BatchSize: 10,
		ReportBatchItemFailures: true, OnBatch: func(b lambdatest.Batch) { drained <- b }}
	mapped := make(chan error, 1)
	go func() { mapped <- m.Run(drainCtx) }()
	start := time.Now()
	var b lambdatest.Batch
	select {
	case b = <-drained:
	case <-time.After(time.Duration(queued.RetryAfter)*time.Second + 20*time.Second):
		return errors.New("the queue's mapping took no batch")
	}
	stop()
	if err := <-mapped; err != nil {
		return err
	}
	fmt.Printf(hop+"batch of %d: %d done, deleted from the queue  (%s after the click)\n", "SQS ──► relay", len(b.MessageIDs), len(b.Deleted), time.Since(start).Round(time.Second))
	run, _ = port.Run(queueRun)
	fmt.Printf(hop+"run %s: %s %q, externalRunId %s, link %s\n", "Port (API)", queueRun, run.Status, run.StatusLabel, run.ExternalRunID, run.Link)
	logs := port.Logs(queueRun)
	fmt.Printf(hop+"run %s log: %q\n", "Port (API)", queueRun, logs[len(logs)-1].Message)
	if b.Err != nil || len(b.Deleted) != 1 || az.RunCount()-before != 1 || run.Link == "" {
		return fmt.Errorf("the drain: batch %+v, %d runs, Port run %+v; want one run, its link on the Port run", b, az.RunCount()-before, run)
	}
	fmt.Printf(hop+"%d run queued for the click, after %d requests: the one it throttled, the drain's\n", "Azure (Runs API)", az.RunCount()-before, az.RunRequests()-requests)
	return nil
}

func step(format string, args ...any) { fmt.Printf("· "+format+"\n", args...) }

func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "demo_" + hex.EncodeToString(b)
}

// doctorRun wires the demo as a user would have (the two service hook subscriptions
// of step 4 in Azure DevOps, two Port actions calling the relay), runs the doctor on
// it, then breaks one link as Azure does after failed deliveries and mends it with -fix.
func doctorRun(ctx context.Context, doctor, relayURL, hookURL, secretARN string, awsEnv []string, az *azdotest.Server, port *porttest.Server) error {
	fmt.Println()
	step("the doctor: the demo's wiring, link by link (go run ./cmd/doctor; make doctor STACK=… for a deployed stack)")
	az.AddProject("Payments")
	var runSub string
	for _, event := range []string{azdo.RunStateChangedEvent, azdo.StageStateChangedEvent} {
		id := az.AddSubscription(azdotest.Subscription{PublisherID: azdo.PipelinesPublisher, EventType: event, ResourceVersion: azdo.PipelinesResourceVersion,
			ConsumerID: azdo.WebHooksConsumer, ConsumerActionID: azdo.HTTPRequestAction,
			PublisherInputs: map[string]string{"projectId": azdotest.ProjectID("Payments")},
			ConsumerInputs:  map[string]string{"url": hookURL, "basicAuthUsername": "azure-devops", "basicAuthPassword": hookPass, "resourceDetailsToSend": "all"}})
		if event == azdo.RunStateChangedEvent {
			runSub = id
		}
	}
	body := func(extra string) json.RawMessage {
		return json.RawMessage(`{` + extra + `"port_context":{"entity":"{{ .entity.identifier }}","runId":"{{ .run.id }}"}}`)
	}
	port.SetActions(
		porttest.Action{Identifier: "deploy_service", Trigger: map[string]any{"type": "self-service"}, InvocationMethod: porttest.InvocationMethod{
			Type: "WEBHOOK", URL: relayURL + "/webhooks/" + webhook, Method: "POST", Body: body(`"environment":"{{ .inputs.environment }}",`)}},
		porttest.Action{Identifier: "deploy_by_id", Trigger: map[string]any{"type": "self-service"}, InvocationMethod: porttest.InvocationMethod{
			Type: "WEBHOOK", URL: relayURL + "/pipelines/deploy", Method: "POST", Body: body(`"templateParameters":{"service":"{{ .entity.identifier }}"},`)}})
	env := append(awsEnv, "PORT_SECRET_ID="+secretARN, "AZURE_DEVOPS_ORG="+org, "AZURE_DEVOPS_WEBHOOK="+webhook,
		"AZURE_DEVOPS_PIPELINES=deploy=Payments/42@refs/heads/main", "AZURE_DEVOPS_URL="+az.URL, "PORT_API_URL="+port.URL)
	doctorSays := func(args ...string) (int, error) {
		cmd := exec.CommandContext(ctx, doctor, append([]string{"-relay-url", relayURL + "/", "-hook-url", hookURL}, args...)...)
		cmd.Env = env
		out, err := cmd.Output()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			fmt.Println("  " + line)
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), nil
		}
		return 0, err
	}
	if code, err := doctorSays(); err != nil || code != 0 {
		return fmt.Errorf("the doctor on the demo's wiring: status %d, %v", code, err)
	}
	fmt.Println()
	step("Azure disables the run-state-changed subscription after failed deliveries (disabledBySystem); the doctor finds it")
	az.SetSubscriptionStatus(runSub, azdo.StatusDisabledBySystem)
	if code, err := doctorSays(); err != nil || code != 1 {
		return fmt.Errorf("the doctor with the subscription disabled: status %d, %v; want 1", code, err)
	}
	fmt.Println()
	step("the doctor -fix re-enables it, and changes nothing else")
	if code, err := doctorSays("-fix"); err != nil || code != 0 {
		return fmt.Errorf("the doctor -fix: status %d, %v", code, err)
	}
	return nil
}
