package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"gopkg.in/yaml.v3"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/queue"
	"github.com/port-azure-relay/relay/shared/queue/sqstest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
	"github.com/port-azure-relay/relay/shared/signature"
)

var queueCases atomic.Int64

const (
	deliveryQueue = "e2e-relay-delivery"     // the template's DeliveryQueue
	deliveryDLQ   = "e2e-relay-delivery-dlq" // its DeliveryDLQ
	queuePipeline = "release"                // AZURE_DEVOPS_PIPELINES' entry: Payments Team/42
	throttleWait  = 30                       // the Retry-After Azure throttles with: past the relay's 2 s, so queued
)

// queueWorld is a stack deployed with the ledger and queued delivery: two relay
// containers taking Port's invocations and AWS events, and the delivery queue's event
// source mapping invoking drainers (each its own bootstrap under its own emulator, one
// per concurrent invocation), sharing Secrets Manager, Azure (webhooks and the Runs
// API), Port's API, the ledger and the queues. The queues run on a clock the test
// advances: Azure's Retry-After passes at once, while the relay keeps the real time.
type queueWorld struct {
	sm            *smtest.Server
	az            *azdotest.Server
	port          *porttest.Server
	db            *dynamotest.Server
	sqs           *sqstest.Server
	clock         *sqstest.Clock
	client        *sqs.Client
	queueURL, dlq string
	batchSize     int
	relay, second *lambdatest.Function
	drainers      []*lambdatest.Function
	batches       chan lambdatest.Batch // what the mapping took, as it takes it
	replay        atomic.Bool           // invoke each batch twice
}

// newQueueWorld starts the world with drainers concurrent drain invocations; queued
// false leaves DELIVERY_QUEUE_URL and DELIVERY_DLQ_URL unset (QueuedDelivery=false),
// the queues still there to show that nothing reaches them.
func newQueueWorld(t *testing.T, queued bool, drainers int, extraEnv ...string) *queueWorld {
	t.Helper()
	w := &queueWorld{sm: smtest.New(), az: newAzure(t, false), port: porttest.New(portClientID, portSecret), db: dynamotest.New(), sqs: sqstest.New()}
	for _, c := range []func(){w.sm.Close, w.port.Close, w.db.Close, w.sqs.Close} {
		t.Cleanup(c)
	}
	w.sm.Put(secretName, `{"clientId":"`+portClientID+`","clientSecret":"`+portSecret+`","azurePat":"`+e2ePAT+`"}`)
	w.az.AddPipeline(azdotest.RunsPipeline{Project: "Payments Team", ID: 42, Name: "deploy-service", Parameters: []string{"service", "replicas"}, DefaultBranch: "refs/heads/main"})
	w.az.AddPAT(e2ePAT)
	w.db.CreateTable(ledgerTable, "id")
	w.db.EnableTTL(ledgerTable, "expiresAt")
	w.clock = sqstest.NewClock(time.Now())
	w.sqs.Now = w.clock.Now
	queueAttrs, dlqAttrs, batchSize := templateQueues(t)
	w.dlq = w.sqs.CreateQueue(deliveryDLQ, dlqAttrs)
	w.queueURL = w.sqs.CreateQueue(deliveryQueue, queueAttrs)
	w.client, w.batchSize = w.sqs.Client(), batchSize

	env := append(w.sm.Env(), dynamoEndpoint(w.db), "AWS_ENDPOINT_URL_SQS="+w.sqs.URL,
		"PORT_SECRET_ID="+secretName,
		"PORT_API_URL="+w.port.URL,
		"PORT_SIGNATURE_TOLERANCE=5m",
		"AZURE_DEVOPS_ORG="+org,
		"AZURE_DEVOPS_URL="+w.az.URL,
		"AZURE_DEVOPS_WEBHOOK="+hookDeploy,
		"AZURE_DEVOPS_WEBHOOKS="+allowedHooks,
		"AZURE_DEVOPS_PIPELINES="+queuePipeline+"=Payments Team/42",
		"LEDGER_TABLE="+ledgerTable,
		"LEDGER_TTL=2h")
	if queued {
		env = append(env, "DELIVERY_QUEUE_URL="+w.queueURL, "DELIVERY_DLQ_URL="+w.dlq)
	}
	env = append(env, extraEnv...)
	w.relay = start(t, relayBin, faultTimeout, env)
	w.second = start(t, relayBin, faultTimeout, env)
	for range drainers {
		w.drainers = append(w.drainers, start(t, relayBin, 10*time.Second, env))
	}
	if drainers > 0 {
		w.run(t)
	}
	return w
}

// templateQueues reads template.yaml's DeliveryQueue and DeliveryDLQ properties as
// CreateQueue attributes, and the batch size of the relay's mapping on the queue.
// SqsManagedSseEnabled is left out: encryption at rest changes nothing the relay sees.
func templateQueues(t *testing.T) (queueAttrs, dlqAttrs map[string]string, batchSize int) {
	t.Helper()
	raw, err := os.ReadFile("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	attrs := func(resource string) map[string]string {
		props := yamlGet(&doc, "Resources", resource, "Properties")
		if props == nil {
			t.Fatalf("template.yaml: no %s properties", resource)
		}
		out := map[string]string{}
		for i := 0; i+1 < len(props.Content); i += 2 {
			k, v := props.Content[i].Value, props.Content[i+1]
			switch {
			case k == "SqsManagedSseEnabled":
			case k == "RedrivePolicy":
				target := yamlGet(v, "deadLetterTargetArn")
				if target == nil || target.Tag != "!GetAtt" || target.Value != "DeliveryDLQ.Arn" {
					t.Fatalf("template.yaml: %s's dead-letter target is not DeliveryDLQ", resource)
				}
				out[k] = `{"deadLetterTargetArn":"` + sqstest.ARN(deliveryDLQ) + `","maxReceiveCount":` + yamlGet(v, "maxReceiveCount").Value + `}`
			case v.Kind == yaml.ScalarNode && v.Tag == "!!int":
				out[k] = v.Value
			default:
				t.Fatalf("template.yaml: %s.%s is not something this test models", resource, k)
			}
		}
		return out
	}
	queueAttrs, dlqAttrs = attrs("DeliveryQueue"), attrs("DeliveryDLQ")
	if queueAttrs["RedrivePolicy"] == "" || queueAttrs["VisibilityTimeout"] == "" {
		t.Fatal("template.yaml: DeliveryQueue has no RedrivePolicy or VisibilityTimeout")
	}
	mapping := yamlGet(&doc, "Resources", "DeliveryQueueMapping", "Properties")
	if batchSize, err = strconv.Atoi(yamlGet(mapping, "BatchSize").Value); err != nil ||
		!slices.ContainsFunc(yamlGet(mapping, "FunctionResponseTypes").Content, func(n *yaml.Node) bool { return n.Value == "ReportBatchItemFailures" }) {
		t.Fatal("template.yaml: DeliveryQueueMapping needs a BatchSize and ReportBatchItemFailures")
	}
	return queueAttrs, dlqAttrs, batchSize
}

// yamlGet follows mapping keys from n; nil when a step is missing.
func yamlGet(n *yaml.Node, path ...string) *yaml.Node {
	for _, key := range path {
		if n != nil && n.Kind == yaml.DocumentNode {
			n = n.Content[0]
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// run starts the queue's event source mapping (lambdatest.SQSMapping, configured as the
// template's) over the drainers, for the rest of the test, as Lambda runs it beside the
// function; each batch it takes is sent on w.batches. With w.replay set, each drainer is
// invoked twice with the same batch, as Lambda may (an invocation whose answer was lost).
func (w *queueWorld) run(t *testing.T) {
	fns := make([]lambdatest.Invoker, len(w.drainers))
	for i, d := range w.drainers {
		fns[i] = lambdatest.InvokerFunc(func(ctx context.Context, ev []byte) ([]byte, error) {
			out, err := d.Invoke(ctx, ev)
			if w.replay.Load() {
				out, err = d.Invoke(ctx, ev)
			}
			return out, err
		})
	}
	w.batches = make(chan lambdatest.Batch, 100)
	m := &lambdatest.SQSMapping{Client: w.client, QueueURL: w.queueURL, Functions: fns, BatchSize: w.batchSize, ReportBatchItemFailures: true,
		OnBatch: func(b lambdatest.Batch) { w.batches <- b }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// drain waits for the mapping's next n batches, at most 20 s, and returns them; each
// must have ended without a function error.
func (w *queueWorld) drain(t *testing.T, n int) []lambdatest.Batch {
	t.Helper()
	var got []lambdatest.Batch
	timeout := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case b := <-w.batches:
			if b.Err != nil {
				t.Errorf("batch %v: %v", b.MessageIDs, b.Err)
			}
			got = append(got, b)
		case <-timeout:
			t.Fatalf("the mapping took %d batches in 20 s, want %d", len(got), n)
		}
	}
	return got
}

// drainMessages waits for batches until n messages were handed to the relay, and
// returns how many of them it took off the queue.
func (w *queueWorld) drainMessages(t *testing.T, n int) int {
	t.Helper()
	seen, deleted := 0, 0
	for seen < n {
		b := w.drain(t, 1)[0]
		seen += len(b.MessageIDs)
		deleted += len(b.Deleted)
	}
	return deleted
}

// quiet returns the batches the mapping takes in the next half second.
func (w *queueWorld) quiet() []lambdatest.Batch {
	var got []lambdatest.Batch
	timeout := time.After(500 * time.Millisecond)
	for {
		select {
		case b := <-w.batches:
			got = append(got, b)
		case <-timeout:
			return got
		}
	}
}

// holds asserts how many messages the queue at url has visible, in flight and delayed.
func (w *queueWorld) holds(t *testing.T, url string, visible, inFlight, delayed int) {
	t.Helper()
	out, err := w.client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"}})
	if err != nil {
		t.Fatal(err)
	}
	got := out.Attributes["ApproximateNumberOfMessages"] + " visible, " + out.Attributes["ApproximateNumberOfMessagesNotVisible"] + " in flight, " +
		out.Attributes["ApproximateNumberOfMessagesDelayed"] + " delayed"
	if want := fmt.Sprintf("%d visible, %d in flight, %d delayed", visible, inFlight, delayed); got != want {
		name := "the delivery queue"
		if url == w.dlq {
			name = "the dead-letter queue"
		}
		t.Errorf("%s holds %s, want %s", name, got, want)
	}
}

// empty asserts that neither queue holds anything.
func (w *queueWorld) empty(t *testing.T) {
	t.Helper()
	w.holds(t, w.queueURL, 0, 0, 0)
	w.holds(t, w.dlq, 0, 0, 0)
}

// record is the ledger's item for key, nil when there is none.
func (w *queueWorld) record(key string) map[string]types.AttributeValue {
	for _, item := range w.db.Items(ledgerTable) {
		if id, _ := item["id"].(*types.AttributeValueMemberS); id != nil && id.Value == key {
			return item
		}
	}
	return nil
}

// wantState asserts the ledger's record of key is in state.
func (w *queueWorld) wantState(t *testing.T, key string, state ledger.State) {
	t.Helper()
	item := w.record(key)
	got, _ := item["state"].(*types.AttributeValueMemberS)
	if got == nil || got.Value != string(state) {
		fields := map[string]string{}
		for k, v := range item {
			switch v := v.(type) {
			case *types.AttributeValueMemberS:
				fields[k] = v.Value
			case *types.AttributeValueMemberN:
				fields[k] = v.Value
			}
		}
		t.Errorf("the ledger's record of %s: %v, want state %s", key, fields, state)
	}
}

// drainLines are the drainers' JSON log lines about run runID, oldest first per drainer.
func (w *queueWorld) drainLines(runID string) []map[string]any {
	var out []map[string]any
	for _, d := range w.drainers {
		for _, l := range d.Lines() {
			var m map[string]any
			if strings.HasPrefix(l, "{") && json.Unmarshal([]byte(l), &m) == nil && m["runId"] == runID {
				out = append(out, m)
			}
		}
	}
	return out
}

// click is a Port invocation of run runID during a throttle: Azure answers it 429
// with Retry-After 30 s, so the relay puts it on the queue.
func (w *queueWorld) click(t *testing.T, fn *lambdatest.Function, shape int, path string, body []byte) result {
	t.Helper()
	w.az.Script(azdotest.Status(429).RetryAfter(throttleWait))
	return invoke(t, fn, signedEvent(shape, path, body))
}

// wantQueuedAnswer asserts a 202 {"queued":true,…} with Azure's wait, for runID, to
// the target of door.
func wantQueuedAnswer(t *testing.T, r result, door, target, runID string) {
	t.Helper()
	if r.status != 202 || r.body["queued"] != true || r.body["retryAfter"] != float64(throttleWait) || r.body[door] != target ||
		r.body["runId"] != runID || r.body["azureStatus"] != float64(429) || r.body["forwarded"] != false || r.body["duplicate"] != nil {
		t.Fatalf("%d %v, want 202 queued, retryAfter %d, %s %s, run %s", r.status, r.body, throttleWait, door, target, runID)
	}
	if line := oneLogLine(t, r); line != nil && (line["msg"] != "queued" || line["level"] != "WARN" || line["retryAfter"] != float64(throttleWait) || line["Queued"] != float64(1)) {
		t.Errorf("log line %v: want WARN queued, retryAfter, counted Queued", line)
	}
}

// byWhen matches what the Port run is told of when it ends at the latest.
var byWhen = regexp.MustCompile(`ends FAILURE by (\d\d:\d\d) UTC \(QUEUE_MAX_AGE\)`)

// wantToldQueued asserts the Port run was told it is queued, why, and by when (QUEUE_MAX_AGE
// after the click, which was between before and now), its status left in progress.
func (w *queueWorld) wantToldQueued(t *testing.T, runID string, before time.Time, maxAge time.Duration) {
	t.Helper()
	logs, updates := w.port.Logs(runID), w.port.Updates(runID)
	run, _ := w.port.Run(runID)
	if len(logs) != 1 || len(updates) != 1 || run.Status != "IN_PROGRESS" || run.StatusLabel != "Queued: Azure DevOps is busy (throttled)" {
		t.Fatalf("the Port run: %+v, logs %+v, updates %+v; want one log, the label queued, in progress", run, logs, updates)
	}
	hasWords(t, "the Port run's log", logs[0].Message, "throttl", "The relay queued this run", "the pipeline starts when Azure DevOps takes it")
	m := byWhen.FindStringSubmatch(logs[0].Message)
	if m == nil || m[1] != before.Add(maxAge).UTC().Format("15:04") && m[1] != time.Now().Add(maxAge).UTC().Format("15:04") {
		t.Errorf("the Port run's log %q: want it to end FAILURE by %s UTC at the latest", logs[0].Message, before.Add(maxAge).UTC().Format("15:04"))
	}
	if strings.Contains(strings.ToLower(logs[0].Message), "try again") {
		// The relay starts it: a user who clicks again starts a second run.
		t.Errorf("the Port run's log %q tells the user to try again, for a run the relay will start itself", logs[0].Message)
	}
}

// wantDeliveredOnce asserts Azure took exactly body, verified, as its last delivery,
// and that it got n requests in all.
func (w *queueWorld) wantDeliveredOnce(t *testing.T, body []byte, n int) {
	t.Helper()
	d := w.az.Deliveries()
	if len(d) != n {
		t.Fatalf("Azure got %d requests, want %d", len(d), n)
	}
	taken := 0
	for _, x := range d {
		if x.Status == 200 && x.Verified && string(x.Body) == string(body) {
			taken++
		}
	}
	if taken != 1 || d[len(d)-1].Status != 200 {
		t.Errorf("Azure took the body %d times (the last request answered %d), want once, last", taken, d[len(d)-1].Status)
	}
}

// wantStartedLine asserts the Port run's last log line is the delivery's, after attempts.
func (w *queueWorld) wantStartedLine(t *testing.T, runID, line string) {
	t.Helper()
	logs := w.port.Logs(runID)
	if len(logs) == 0 || logs[len(logs)-1].Message != line {
		t.Errorf("the Port run's logs %+v, want the last %q", logs, line)
	}
	n := 0
	for _, l := range logs {
		if strings.Contains(l.Message, "attempts.") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the Port run was told %d times that its pipeline started, want once", n)
	}
}

func newRunID(prefix string) string {
	return prefix + strings.ReplaceAll(rand.Text()[:10], "_", "")
}

// TestQueuedDelivery: during an Azure throttle every delivery is put aside on the
// delivery queue, answered 202 queued (an AWS event a result saying so), and drained
// when Azure opens, through the queue's event source mapping: once, whatever SQS and
// replays do, Azure not asked while it still throttles.
func TestQueuedDelivery(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newQueueWorld(t, true, 2)

	// The click, its replay and the drain are one story: a subtest each, in order.
	runID := newRunID("r_q_click")
	body := portBody(runID)
	ev := signedEvent(1, "/", body)
	t.Run("a click during a throttle: 202 queued, the Port run told by when", func(t *testing.T) {
		w.az.Reset()
		w.port.CreateRuns(runID)
		before := time.Now()
		w.az.Script(azdotest.Status(429).RetryAfter(throttleWait))
		r := invoke(t, w.relay, ev)
		wantQueuedAnswer(t, r, "webhook", hookDeploy, runID)
		w.wantToldQueued(t, runID, before, time.Hour)
		w.wantState(t, ledger.RunKey(runID), ledger.Queued)
		if n := w.az.Count(); n != 1 {
			t.Errorf("Azure got %d requests, want the one it throttled", n)
		}
		w.holds(t, w.queueURL, 0, 0, 1) // delayed by Azure's Retry-After
		w.holds(t, w.dlq, 0, 0, 0)
		queueCases.Add(1)
	})
	t.Run("the queued click replayed at a second container: 202 queued, duplicate, nothing sent", func(t *testing.T) {
		r := invoke(t, w.second, ev)
		if r.status != 202 || r.body["queued"] != true || r.body["duplicate"] != true || r.body["webhook"] != hookDeploy || r.body["runId"] != runID {
			t.Fatalf("%d %v, want 202 queued duplicate", r.status, r.body)
		}
		if line := oneLogLine(t, r); line != nil && (line["msg"] != "duplicate" || line["firstOutcome"] != "queued") {
			t.Errorf("log line %v: want a duplicate of a queued delivery", line)
		}
		if n := w.az.Count(); n != 1 {
			t.Errorf("Azure got %d requests, want still 1", n)
		}
		if n := len(w.port.Logs(runID)); n != 1 {
			t.Errorf("the Port run has %d log lines, want still 1: the replay tells it nothing", n)
		}
		w.wantState(t, ledger.RunKey(runID), ledger.Queued)
		w.holds(t, w.queueURL, 0, 0, 1)
		queueCases.Add(1)
	})
	t.Run("Azure opens: the drain starts it once, the Port run told after how many attempts", func(t *testing.T) {
		if b := w.quiet(); len(b) != 0 {
			t.Fatalf("the mapping took %+v before Azure's Retry-After passed", b)
		}
		w.clock.Advance((throttleWait + 1) * time.Second)
		b := w.drain(t, 1)
		if len(b[0].MessageIDs) != 1 || len(b[0].Deleted) != 1 {
			t.Fatalf("batch %+v, want the one message, processed", b[0])
		}
		w.wantDeliveredOnce(t, body, 2)
		w.wantStartedLine(t, runID, "Azure DevOps accepted webhook "+hookDeploy+" (pipeline queued), after 2 attempts.")
		if run, _ := w.port.Run(runID); run.Status != "IN_PROGRESS" || strings.HasPrefix(run.StatusLabel, "Queued: Azure DevOps is busy") {
			t.Errorf("the Port run after the drain: %+v; want it in progress, left to the pipeline, its label no longer saying it waits for Azure", run)
		}
		w.wantState(t, ledger.RunKey(runID), ledger.Delivered)
		w.empty(t)
		queueCases.Add(1)
	})

	t.Run("the same batch invoked twice: one run", func(t *testing.T) {
		w.az.Reset()
		runID := newRunID("r_q_batch")
		w.port.CreateRuns(runID)
		body := portBody(runID)
		wantQueuedAnswer(t, w.click(t, w.second, 2, "/", body), "webhook", hookDeploy, runID)
		w.replay.Store(true)
		defer w.replay.Store(false)
		w.clock.Advance((throttleWait + 1) * time.Second)
		if b := w.drain(t, 1); len(b[0].Deleted) != 1 {
			t.Fatalf("batch %+v, want the message taken off after the second invocation", b[0])
		}
		var msgs []string
		for _, l := range w.drainLines(runID) {
			msgs = append(msgs, fmt.Sprint(l["msg"]))
		}
		if !slices.Equal(msgs, []string{"forwarded", "duplicate"}) {
			t.Errorf("the two invocations logged %q, want forwarded, then duplicate", msgs)
		}
		w.wantDeliveredOnce(t, body, 2)
		w.wantStartedLine(t, runID, "Azure DevOps accepted webhook "+hookDeploy+" (pipeline queued), after 2 attempts.")
		w.wantState(t, ledger.RunKey(runID), ledger.Delivered)
		w.empty(t)
		queueCases.Add(1)
	})

	t.Run("still throttled at the drain: the batch comes back after Retry-After, Azure not asked meanwhile", func(t *testing.T) {
		w.az.Reset()
		var runIDs []string
		var bodies [][]byte
		for i := range 3 {
			runID := newRunID("r_q_batch" + strconv.Itoa(i))
			w.port.CreateRuns(runID)
			runIDs, bodies = append(runIDs, runID), append(bodies, portBody(runID))
			wantQueuedAnswer(t, w.click(t, w.relay, i, "/", bodies[i]), "webhook", hookDeploy, runID)
		}
		w.clock.Advance((throttleWait + 1) * time.Second)
		w.az.Script(azdotest.Status(429).RetryAfter(60))
		b := w.drain(t, 1)
		if len(b[0].MessageIDs) != 3 || len(b[0].Deleted) != 0 {
			t.Fatalf("batch %+v, want all three back on the queue", b[0])
		}
		if n := w.az.Count(); n != 4 {
			t.Errorf("Azure got %d requests, want 4: three throttled clicks and the batch's first record alone", n)
		}
		w.holds(t, w.queueURL, 0, 3, 0)
		w.clock.Advance(59 * time.Second)
		if b := w.quiet(); len(b) != 0 {
			t.Errorf("the mapping took %+v before Azure's 60 s passed", b)
		}
		if n := w.az.Count(); n != 4 {
			t.Errorf("Azure got %d requests while it throttled, want none more", n)
		}
		w.clock.Advance(2 * time.Second)
		b = w.drain(t, 1)
		if len(b[0].MessageIDs) != 3 || len(b[0].Deleted) != 3 {
			t.Fatalf("batch %+v, want the three delivered", b[0])
		}
		if n := w.az.Count(); n != 7 {
			t.Errorf("Azure got %d requests, want 7: each body taken once", n)
		}
		for i, runID := range runIDs {
			taken := 0
			for _, d := range w.az.Deliveries() {
				if d.Status == 200 && d.Verified && string(d.Body) == string(bodies[i]) {
					taken++
				}
			}
			if taken != 1 {
				t.Errorf("run %s: Azure took its body %d times, want once", runID, taken)
			}
			w.wantStartedLine(t, runID, "Azure DevOps accepted webhook "+hookDeploy+" (pipeline queued), after 3 attempts.")
			w.wantState(t, ledger.RunKey(runID), ledger.Delivered)
		}
		w.empty(t)
		queueCases.Add(1)
	})

	t.Run("a scheduled event during a throttle: a result saying queued, delivered later", func(t *testing.T) {
		w.az.Reset()
		ev := lambdatest.ScheduledEvent("nightly-queued-" + rand.Text()[:8])
		var id struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(ev, &id)
		w.az.Script(azdotest.Status(429).RetryAfter(throttleWait))
		r := invoke(t, w.relay, ev)
		if r.fnErr != nil || r.body["queued"] != true || r.body["retryAfter"] != float64(throttleWait) || r.body["webhook"] != hookDeploy {
			t.Fatalf("%v %v, want a result saying queued, no function error (Lambda would retry it beside the queue)", r.body, r.fnErr)
		}
		w.wantState(t, ledger.EventKey(id.ID), ledger.Queued)
		w.holds(t, w.queueURL, 0, 0, 1)
		// Lambda retries only a function error; an asynchronous event it invokes again regardless
		// (at least once) is a duplicate.
		if r := invoke(t, w.second, ev); r.fnErr != nil || r.body["queued"] != true || r.body["duplicate"] != true {
			t.Errorf("the event again: %v %v, want a result saying queued, duplicate", r.body, r.fnErr)
		}
		w.clock.Advance((throttleWait + 1) * time.Second)
		w.drain(t, 1)
		w.wantDeliveredOnce(t, ev, 2)
		w.wantState(t, ledger.EventKey(id.ID), ledger.Delivered)
		w.empty(t)
		queueCases.Add(1)
	})

	t.Run("a pipeline by id during a throttle: queued, then started, its link and externalRunId on the Port run", func(t *testing.T) {
		w.az.Reset()
		runID := newRunID("r_q_byid")
		w.port.CreateRuns(runID)
		before := time.Now()
		r := w.click(t, w.second, 1, "/pipelines/"+queuePipeline, pipelineBody(runID))
		wantQueuedAnswer(t, r, "pipeline", queuePipeline, runID)
		w.wantToldQueued(t, runID, before, time.Hour)
		if n := w.az.RunCount(); n != 0 {
			t.Fatalf("Azure queued %d runs while it throttled", n)
		}
		w.clock.Advance((throttleWait + 1) * time.Second)
		w.drain(t, 1)
		runs := w.az.Runs()
		if len(runs) != 1 || w.az.RunRequests() != 2 || runs[0].Auth != azdotest.AuthPAT || runs[0].TemplateParameters["replicas"] != "3" {
			t.Fatalf("Azure queued %+v after %d Runs requests, want one run by PAT after 2", runs, w.az.RunRequests())
		}
		run, _ := w.port.Run(runID)
		if run.Status != "IN_PROGRESS" || run.ExternalRunID != "ado_"+org+"_"+strconv.Itoa(runs[0].ID) || !strings.HasSuffix(run.Link, "buildId="+strconv.Itoa(runs[0].ID)) ||
			run.StatusLabel != "Queued in Azure DevOps" {
			t.Errorf("the Port run: %+v, want the Azure run's link and externalRunId ado_%s_%d, in progress", run, org, runs[0].ID)
		}
		w.wantStartedLine(t, runID, fmt.Sprintf("Azure DevOps started pipeline %s: run %d, after 2 attempts.", queuePipeline, runs[0].ID))
		w.wantState(t, ledger.RunKey(runID), ledger.Delivered)
		w.empty(t)
		queueCases.Add(1)
	})

	t.Run("the queue cannot be written: today's 502, the Port run FAILURE, nothing on any queue", func(t *testing.T) {
		w.az.Reset()
		w.sqs.SetFault(sqstest.Down)
		defer w.sqs.SetFault(sqstest.None)
		runID := newRunID("r_q_down")
		w.port.CreateRuns(runID)
		r := w.click(t, w.relay, 2, "/", portBody(runID))
		if r.status != 502 || r.body["queued"] != nil {
			t.Fatalf("%d %v, want 502", r.status, r.body)
		}
		hasWords(t, "error", r.errMsg, "throttling", "nothing was queued")
		if line := oneLogLine(t, r); line != nil && (line["msg"] != "failed" || line["ledgerError"] != nil) {
			t.Errorf("log line %v: want failed, with no ledger error beside it", line)
		}
		if run, _ := w.port.Run(runID); run.Status != "FAILURE" || run.StatusLabel != "Throttled" {
			t.Errorf("the Port run: %+v, want FAILURE Throttled: the user knows to try again", run)
		}
		w.wantState(t, ledger.RunKey(runID), ledger.Refused)
		if n := w.az.Count(); n != 1 {
			t.Errorf("Azure got %d requests, want 1", n)
		}
		w.sqs.SetFault(sqstest.None)
		w.empty(t)
		queueCases.Add(1)
	})

	t.Run("the queue cannot be written for a scheduled event: a function error, and Lambda's retry is delivered", func(t *testing.T) {
		w.az.Reset()
		w.sqs.SetFault(sqstest.Down)
		defer w.sqs.SetFault(sqstest.None)
		ev := lambdatest.ScheduledEvent("nightly-down-" + rand.Text()[:8])
		w.az.Script(azdotest.Status(429).RetryAfter(throttleWait))
		if r := invoke(t, w.relay, ev); r.fnErr == nil {
			t.Fatalf("%v, want a function error: Lambda retries it, nothing lost", r.body)
		}
		w.sqs.SetFault(sqstest.None)
		// Azure opens; Lambda invokes the event again.
		if r := invoke(t, w.second, ev); r.fnErr != nil || r.body["forwarded"] != true || r.body["duplicate"] != nil {
			t.Errorf("Lambda's retry: %v %v, want it delivered", r.body, r.fnErr)
		}
		if n := w.az.Count(); n != 2 {
			t.Errorf("Azure got %d requests, want 2: the throttled one and the retry", n)
		}
		w.empty(t)
		queueCases.Add(1)
	})
}

// TestQueuedDeliveryWhileAzureIsSlow: Azure delays requests (as it does before it
// throttles): a drain still at Azure when its record's visibility lapses meets the
// record again at another drainer, which leaves it; a drain whose slow answer is a
// throttle puts the record back for Retry-After. One run each.
func TestQueuedDeliveryWhileAzureIsSlow(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newQueueWorld(t, true, 2)
	t.Run("a record SQS hands over again while the first drain is slow: one run", func(t *testing.T) {
		w.az.Reset()
		runID := newRunID("r_q_twice")
		w.port.CreateRuns(runID)
		body := portBody(runID)
		wantQueuedAnswer(t, w.click(t, w.relay, 0, "/", body), "webhook", hookDeploy, runID)
		w.clock.Advance((throttleWait + 1) * time.Second)
		w.az.Script(azdotest.Delay(2 * time.Second)) // the first drain's delivery, slow
		queueAttrs, _, _ := templateQueues(t)
		visibility, _ := strconv.Atoi(queueAttrs["VisibilityTimeout"])
		// Once the first drain's delivery is at Azure, its message's visibility lapses: SQS
		// hands it to the mapping's other poller, and so to the other drainer.
		for deadline := time.Now().Add(10 * time.Second); w.az.Count() < 2 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		w.clock.Advance(time.Duration(visibility+1) * time.Second)
		batches := w.drain(t, 2)
		deleted := 0
		for _, b := range batches {
			deleted += len(b.Deleted)
			if len(b.MessageIDs) != 1 || b.MessageIDs[0] != batches[0].MessageIDs[0] {
				t.Errorf("batches %+v, want the same message twice", batches)
			}
		}
		if deleted != 1 {
			t.Errorf("batches %+v: want one that delivered it and one that left it (in progress elsewhere)", batches)
		}
		// SQS may keep a message deleted with an older receipt than its latest: it comes
		// round once more at most, a duplicate.
		w.clock.Advance(time.Duration(visibility+1) * time.Second)
		if b := w.quiet(); len(b) > 1 || len(b) == 1 && len(b[0].Deleted) != 1 {
			t.Errorf("after the visibility lapsed again: %+v, want nothing, or the message taken off", b)
		}
		w.wantDeliveredOnce(t, body, 2)
		w.wantStartedLine(t, runID, "Azure DevOps accepted webhook "+hookDeploy+" (pipeline queued), after 2 attempts.")
		w.wantState(t, ledger.RunKey(runID), ledger.Delivered)
		var msgs []string
		for _, l := range w.drainLines(runID) {
			msgs = append(msgs, fmt.Sprint(l["msg"], "/", l["ledger"], "/", l["ledgerError"]))
		}
		if slices.Sort(msgs); len(msgs) < 2 || !slices.Equal(msgs[:2], []string{"forwarded/claimed/<nil>", "refused/inProgress/<nil>"}) {
			t.Errorf("the drains logged %q (msg/ledger/ledgerError), want one delivery and one that found it in progress elsewhere", msgs)
		}
		w.empty(t)
		queueCases.Add(1)
	})

	t.Run("Azure slow, then throttling still, at the drain: the record waits for Retry-After, then is delivered", func(t *testing.T) {
		w.az.Reset()
		runID := newRunID("r_q_slow")
		w.port.CreateRuns(runID)
		body := portBody(runID)
		wantQueuedAnswer(t, w.click(t, w.relay, 1, "/", body), "webhook", hookDeploy, runID)
		w.clock.Advance((throttleWait + 1) * time.Second)
		// Azure delays requests before it throttles them.
		w.az.Script(azdotest.Status(429).RetryAfter(60).After(1500 * time.Millisecond))
		if b := w.drain(t, 1); len(b[0].Deleted) != 0 {
			t.Fatalf("batch %+v, want the record back on the queue", b[0])
		}
		w.wantState(t, ledger.RunKey(runID), ledger.Queued)
		w.holds(t, w.queueURL, 0, 1, 0)
		w.clock.Advance(61 * time.Second)
		if b := w.drain(t, 1); len(b[0].Deleted) != 1 {
			t.Fatalf("batch %+v, want it delivered", b[0])
		}
		w.wantDeliveredOnce(t, body, 3)
		w.wantStartedLine(t, runID, "Azure DevOps accepted webhook "+hookDeploy+" (pipeline queued), after 3 attempts.")
		w.wantState(t, ledger.RunKey(runID), ledger.Delivered)
		w.empty(t)
		queueCases.Add(1)
	})
}

// TestQueuedDeliveryTooOld: a queued delivery older than QUEUE_MAX_AGE is not sent: its
// Port run ends FAILURE naming the age, the message goes to the dead-letter queue, the
// record to expired. Redriven after the fix, as make redrive does, a click whose Port
// run has ended is not sent (whoever clicked was told FAILURE), and a scheduled event,
// which has no Port run, is sent once; a second redrive sends nothing.
func TestQueuedDeliveryTooOld(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newQueueWorld(t, true, 1, "QUEUE_MAX_AGE=1m")
	ctx := context.Background()
	runID := newRunID("r_q_old")
	w.port.CreateRuns(runID)
	body := portBody(runID)
	key := ledger.RunKey(runID)

	// What a click during a throttle two minutes ago left, written as the relay writes it:
	// the ledger's record queued for this body, then the message, first queued then.
	l := &ledger.Ledger{DB: w.db.Client(), Table: ledgerTable, TTL: 2 * time.Hour}
	claim, err := l.Claim(ctx, ledger.Record{Key: key, Target: hookDeploy, Door: "webhook", RunID: runID}, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Complete(ctx, claim, ledger.Record{State: ledger.Queued, AzureStatus: 429, Digest: queue.Message{Kind: "httpapi", Body: body}.Digest()}); err != nil {
		t.Fatal(err)
	}
	q := &queue.Queue{SQS: w.client, URL: w.queueURL, DeadLetter: w.dlq}
	if err := q.Put(ctx, queue.Message{Door: "webhook", Target: hookDeploy, Kind: "httpapi", RunID: runID, Key: key, Queued: time.Now().Add(-2 * time.Minute), Body: body}, 0); err != nil {
		t.Fatal(err)
	}
	// And what a scheduled event during that throttle left.
	event := lambdatest.ScheduledEvent("old-" + rand.Text()[:8])
	var ids struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(event, &ids)
	eventKey := ledger.EventKey(ids.ID)
	eclaim, err := l.Claim(ctx, ledger.Record{Key: eventKey, Target: hookDeploy, Door: "webhook"}, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Complete(ctx, eclaim, ledger.Record{State: ledger.Queued, AzureStatus: 429, Digest: queue.Message{Kind: "schedule", Body: event}.Digest()}); err != nil {
		t.Fatal(err)
	}
	if err := q.Put(ctx, queue.Message{Door: "webhook", Target: hookDeploy, Kind: "schedule", Key: eventKey, Queued: time.Now().Add(-2 * time.Minute), Body: event}, 0); err != nil {
		t.Fatal(err)
	}

	t.Run("too old: not sent, the Port run FAILURE naming the age, the message dead-lettered, the record expired", func(t *testing.T) {
		if deleted := w.drainMessages(t, 2); deleted != 2 {
			t.Fatalf("%d messages taken off the queue, want both", deleted)
		}
		if n := w.az.Count(); n != 0 {
			t.Errorf("Azure got %d requests, want none", n)
		}
		run, _ := w.port.Run(runID)
		if run.Status != "FAILURE" || run.StatusLabel != "Not started in time" {
			t.Errorf("the Port run: %+v, want FAILURE Not started in time", run)
		}
		hasWords(t, "the Port run's summary", run.Summary, "did not take this run in time", "waited 2m", "QUEUE_MAX_AGE 1m0s", "dead-letter queue")
		w.wantState(t, key, ledger.Expired)
		w.wantState(t, eventKey, ledger.Expired)
		w.holds(t, w.queueURL, 0, 0, 0)
		w.holds(t, w.dlq, 2, 0, 0)
		queueCases.Add(1)
	})

	var dead string // the dead letter, as an operator reads it
	t.Run("the dead letter says why, and holds no secret", func(t *testing.T) {
		out, err := w.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &w.dlq, MaxNumberOfMessages: 10})
		if err != nil || len(out.Messages) != 2 {
			t.Fatalf("received %v %v, want the two dead letters", out, err)
		}
		// Read, not taken: visible again at once (the SDK does not send a ReceiveMessage's
		// VisibilityTimeout of 0, the CLI's --visibility-timeout 0).
		for _, m := range out.Messages {
			if _, err := w.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &w.dlq, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(aws.ToString(m.Body), runID) {
				dead = aws.ToString(m.Body)
			}
		}
		m, err := queue.Decode([]byte(dead))
		if err != nil || m.Reason != "age" || m.DeadLettered.IsZero() || m.Key != key || string(m.Body) != string(body) {
			t.Fatalf("the dead letter %+v %v, want reason age, the key and Port's body", m, err)
		}
		for _, leak := range []string{portSecret, e2ePAT, signature.PortSignatureHeader, "v1,"} {
			if strings.Contains(dead, leak) {
				t.Errorf("the dead letter holds %q", leak)
			}
		}
		queueCases.Add(1)
	})

	redrive := func(t *testing.T) {
		t.Helper()
		if _, err := w.client.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{
			SourceArn: aws.String(sqstest.ARN(deliveryDLQ)), DestinationArn: aws.String(sqstest.ARN(deliveryQueue))}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("redriven after the fix: the scheduled event delivered once, the ended click not sent", func(t *testing.T) {
		redrive(t)
		w.holds(t, w.dlq, 0, 0, 0)
		if deleted := w.drainMessages(t, 2); deleted != 2 {
			t.Fatalf("want both messages processed, %d were", deleted)
		}
		w.wantDeliveredOnce(t, event, 1)
		w.wantState(t, eventKey, ledger.Delivered)
		w.wantState(t, key, ledger.Expired)
		if run, _ := w.port.Run(runID); run.Status != "FAILURE" {
			t.Errorf("the Port run: %+v; it ended FAILURE, and Port changes no ended run", run)
		}
		w.empty(t)
		queueCases.Add(1)
	})
	t.Run("the same dead letters redriven again: nothing sent", func(t *testing.T) {
		if _, err := w.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &w.dlq, MessageBody: &dead}); err != nil {
			t.Fatal(err)
		}
		redrive(t)
		if deleted := w.drainMessages(t, 1); deleted != 1 {
			t.Fatalf("want the message taken off the queue, %d were", deleted)
		}
		if n := w.az.Count(); n != 1 {
			t.Errorf("Azure got %d requests, want still 1", n)
		}
		w.wantState(t, key, ledger.Expired)
		w.empty(t)
		queueCases.Add(1)
	})
}

// TestQueuedDeliveryOff: with QUEUE unset (QueuedDelivery=false) every answer is
// today's: a throttled click 502 and its Port run FAILURE, a throttled scheduled event
// a function error for Lambda to retry, a pipeline by id 502; SQS is never called.
func TestQueuedDeliveryOff(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newQueueWorld(t, false, 0)
	for i, tc := range []struct {
		name, door, target string
		body               func(string) []byte
	}{
		{"a webhook", "webhook", hookDeploy, portBody},
		{"a pipeline by id", "pipeline", queuePipeline, pipelineBody},
	} {
		t.Run(tc.name+": 502 throttled, the Port run FAILURE", func(t *testing.T) {
			runID := newRunID("r_q_off")
			w.port.CreateRuns(runID)
			path := "/" + tc.door + "s/" + tc.target
			r := w.click(t, w.relay, i, path, tc.body(runID))
			if r.status != 502 || r.body["queued"] != nil {
				t.Fatalf("%d %v, want 502", r.status, r.body)
			}
			hasWords(t, "error", r.errMsg, "throttling", "nothing was queued", "try again later")
			if line := oneLogLine(t, r); line != nil && (line["msg"] != "failed" || line["ledgerError"] != nil) {
				t.Errorf("log line %v: want failed", line)
			}
			if run, _ := w.port.Run(runID); run.Status != "FAILURE" || run.StatusLabel != "Throttled" {
				t.Errorf("the Port run: %+v, want FAILURE Throttled", run)
			}
			w.wantState(t, ledger.RunKey(runID), ledger.Refused)
			queueCases.Add(1)
		})
	}
	t.Run("a scheduled event: a function error, Lambda's retry delivered", func(t *testing.T) {
		w.az.Reset()
		ev := lambdatest.ScheduledEvent("nightly-off-" + rand.Text()[:8])
		w.az.Script(azdotest.Status(429).RetryAfter(throttleWait))
		if r := invoke(t, w.relay, ev); r.fnErr == nil {
			t.Fatalf("%v, want a function error", r.body)
		}
		if r := invoke(t, w.second, ev); r.fnErr != nil || r.body["forwarded"] != true {
			t.Errorf("Lambda's retry: %v %v, want delivered", r.body, r.fnErr)
		}
		queueCases.Add(1)
	})
	if n := w.sqs.Calls(""); n != 0 {
		t.Errorf("SQS got %d calls, want none", n)
	}
	w.empty(t)
}
