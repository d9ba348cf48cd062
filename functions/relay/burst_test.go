package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/payload"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/queue/sqstest"
	"github.com/port-azure-relay/relay/shared/relay"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
	"github.com/port-azure-relay/relay/shared/signature"
)

// The burst's shape: make bench-burst passes them.
var (
	burstInvocations = flag.Int("burst.invocations", 1000, "BenchmarkBurst: signed Port invocations sent at once")
	burstRuns        = flag.Int("burst.runs", 100, "BenchmarkBurst: runs Azure DevOps takes per window")
	burstWindow      = flag.Duration("burst.window", time.Second, "BenchmarkBurst: Azure DevOps' window")
	burstTimeout     = flag.Duration("burst.timeout", 5*time.Minute, "BenchmarkBurst: how long a burst may take to settle")
	burstLog         = flag.String("burst.log", "", "BenchmarkBurst: a file for the relay's log lines (none when empty)")
)

// lambdaTimeout is the relay's timeout in template.yaml (Globals): the deadline Lambda
// gives each invocation, HTTP or SQS batch.
const lambdaTimeout = 25 * time.Second

// BenchmarkBurst sends burst.invocations signed Port invocations at once to the relay,
// wired as main wires it (ledger on dynamotest, delivery queue on sqstest, Azure's
// client waiting at most QueueMaxWait), against an Azure DevOps that takes burst.runs
// runs per burst.window and answers 429 beyond; Lambda's event source mapping
// (lambdatest.SQSMapping: MaximumConcurrency 2, BatchSize 10) drains the queue into
// the same core. Real time throughout. It reports what Azure took, how long the whole
// burst took against the floor Azure's window allows, and the AWS requests it cost
// (docs/performance.md). It fails on a run taken twice or an invocation lost.
func BenchmarkBurst(b *testing.B) {
	var sum burstResult
	for range b.N {
		r := runBurst(b, *burstInvocations, *burstRuns, *burstWindow)
		r.log(b)
		if r.duplicates > 0 || r.lost > 0 || r.deliveredFailed > 0 {
			b.Errorf("%d runs taken twice, %d invocations lost, %d delivered runs ended FAILURE: want none", r.duplicates, r.lost, r.deliveredFailed)
		}
		sum.add(r)
	}
	n := float64(b.N)
	b.ReportMetric(float64(sum.delivered)/n, "delivered")
	b.ReportMetric(float64(sum.duplicates)/n, "doubled")
	b.ReportMetric(float64(sum.lost)/n, "lost")
	b.ReportMetric(float64(sum.failed)/n, "failed")
	b.ReportMetric(sum.ratio/n, "x-floor")
	b.ReportMetric(sum.elapsed.Seconds()/n, "s-to-last")
	b.ReportMetric(float64(sum.sqs.total())/float64(max(1, sum.delivered)), "sqs-req/delivery")
	b.ReportMetric(float64(sum.ddb.total())/float64(max(1, sum.delivered)), "ddb-req/delivery")
}

// calls counts requests by operation.
type calls map[string]int

func (c calls) total() (n int) {
	for _, v := range c {
		n += v
	}
	return n
}

func (c calls) String() string {
	ops := slices.Sorted(func(yield func(string) bool) {
		for k := range c {
			if !yield(k) {
				return
			}
		}
	})
	var buf bytes.Buffer
	for _, op := range ops {
		fmt.Fprintf(&buf, " %s %d", op, c[op])
	}
	return buf.String()
}

func (c calls) add(o calls) {
	for k, v := range o {
		c[k] += v
	}
}

// burstResult is what one burst came to.
type burstResult struct {
	invocations, direct, queued, otherAnswer int            // the relay's answers: 200, 202 queued, anything else
	delivered, duplicates, failed, lost      int            // by Port run: taken by Azure, taken twice, ended FAILURE, neither
	deliveredFailed                          int            // taken by Azure and yet ended FAILURE
	ambiguous                                int            // of the lost, those whose Port run says the run may have been queued
	ledgerFails                              int            // invocations whose log line names a ledger error
	blocked                                  int            // Azure's 429s
	leftover                                 int            // messages still on either queue at the end
	windows                                  []int          // runs taken in each window from the first
	others                                   map[string]int // the other answers, by status and body
	batches                                  int            // invocations of the mapping
	elapsed, floor                           time.Duration
	ratio                                    float64
	sqs, ddb                                 calls
}

func (s *burstResult) add(r burstResult) {
	if s.sqs == nil {
		s.sqs, s.ddb = calls{}, calls{}
	}
	s.delivered += r.delivered
	s.duplicates += r.duplicates
	s.lost += r.lost
	s.failed += r.failed
	s.ratio += r.ratio
	s.elapsed += r.elapsed
	s.sqs.add(r.sqs)
	s.ddb.add(r.ddb)
}

func (r burstResult) log(b *testing.B) {
	b.Helper()
	per := func(n int) float64 { return float64(n) / float64(max(1, r.delivered)) }
	b.Logf("%d invocations: answered %d delivered, %d queued (202), %d otherwise; Azure took %d runs (%d twice), blocked %d requests (429)",
		r.invocations, r.direct, r.queued, r.otherAnswer, r.delivered, r.duplicates, r.blocked)
	for answer, n := range r.others {
		b.Logf("answered %d times: %s", n, answer)
	}
	b.Logf("ended FAILURE %d, lost %d (of which %d said to Port they may have been queued), delivered yet FAILURE %d; %d messages left on the queues; %d batches drained",
		r.failed, r.lost, r.ambiguous, r.deliveredFailed, r.leftover, r.batches)
	if r.ledgerFails > 0 {
		b.Logf("%d invocations' log lines name a ledger error: a DynamoDB call over relay.LedgerBudget (a claim: sent without one, so not queued; an outcome: the record stays in progress)", r.ledgerFails)
	}
	b.Logf("first invocation to last delivery %.2fs; %.2fs from the first window's start, floor %.2fs: %.3f× the floor",
		r.elapsed.Seconds(), r.ratio*r.floor.Seconds(), r.floor.Seconds(), r.ratio)
	b.Logf("runs taken per window: %v", r.windows)
	b.Logf("SQS %d requests (%.2f per delivery):%v", r.sqs.total(), per(r.sqs.total()), r.sqs)
	b.Logf("DynamoDB %d requests (%.2f per delivery):%v", r.ddb.total(), per(r.ddb.total()), r.ddb)
}

// lineCount passes the relay's log lines on and counts those that name a ledger error:
// slog writes a line a call.
type lineCount struct {
	w           io.Writer
	ledgerFails atomic.Int64
}

func (l *lineCount) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(`"ledgerError":`)) {
		l.ledgerFails.Add(1)
	}
	return l.w.Write(p)
}

// takenWatch sees the relay's requests to Azure and notes when the last one taken was
// answered: the burst's last delivery.
type takenWatch struct {
	next  http.RoundTripper
	mu    sync.Mutex
	times []time.Time // of the answers of runs taken
}

func (t *takenWatch) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusOK {
		t.mu.Lock()
		t.times = append(t.times, time.Now())
		t.mu.Unlock()
	}
	return resp, err
}

func (t *takenWatch) seen() (int, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.times) == 0 {
		return 0, time.Time{}
	}
	return len(t.times), t.times[len(t.times)-1]
}

// perWindow counts the runs taken in each window from first on.
func (t *takenWatch) perWindow(first time.Time, window time.Duration) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []int
	for _, at := range t.times {
		i := int(at.Sub(first) / window)
		for len(out) <= i {
			out = append(out, 0)
		}
		out[i]++
	}
	return out
}

func runBurst(b *testing.B, invocations, perWindow int, window time.Duration) burstResult {
	const (
		secret   = "burst-port-client-secret" // Port's clientSecret, Azure's webhook key too
		clientID = "burst-port-client"
	)
	sm := smtest.New()
	defer sm.Close()
	arn := sm.Put("port/relay", fmt.Sprintf(`{"clientId":%q,"clientSecret":%q}`, clientID, secret))
	port := porttest.New(clientID, secret)
	defer port.Close()
	az := azdotest.New("demo-org", azdotest.Webhook{Name: "port_trigger", Secret: secret, Header: signature.AzureDefaultHeader})
	defer az.Close()
	az.SetThrottle(azdotest.Throttle{Runs: perWindow, Window: window})
	db := dynamotest.New()
	defer db.Close()
	db.CreateTable("relay-ledger", "id")
	db.EnableTTL("relay-ledger", "expiresAt")
	sq := sqstest.New()
	defer sq.Close()
	// As template.yaml makes them: DeliveryDLQ, and DeliveryQueue redriving to it.
	dlqURL := sq.CreateQueue("delivery-dlq", map[string]string{"MessageRetentionPeriod": "1209600"})
	queueURL := sq.CreateQueue("delivery", map[string]string{"VisibilityTimeout": "150", "MessageRetentionPeriod": "345600",
		"RedrivePolicy": `{"deadLetterTargetArn":"` + sqstest.ARN("delivery-dlq") + `","maxReceiveCount":"1000"}`})
	vars := map[string]string{
		"PORT_SECRET_ID":       arn,
		"AZURE_DEVOPS_ORG":     "demo-org",
		"AZURE_DEVOPS_WEBHOOK": "port_trigger",
		"AZURE_DEVOPS_URL":     az.URL,
		"PORT_API_URL":         port.URL,
		"LEDGER_TABLE":         "relay-ledger",
		"DELIVERY_QUEUE_URL":   queueURL,
		"DELIVERY_DLQ_URL":     dlqURL,
	}
	cfg, err := relay.LoadConfig(func(k string) string { return vars[k] })
	if err != nil {
		b.Fatal(err)
	}
	// One process stands in for as many Lambda containers as invocations in flight, each
	// of which keeps its own connections: the clients keep as many idle, where one
	// container keeps a few. With a container's pool, every burst would close and reopen
	// thousands of loopback connections, and the TIME_WAITs they leave slow the next
	// bursts' connects past the ledger's budget.
	pool := func() *http.Client {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = 0, invocations
		return &http.Client{Transport: t}
	}
	azure := newAzure(cfg)
	azure.HTTP.Transport.(*http.Transport).MaxIdleConnsPerHost = invocations
	watch := &takenWatch{next: azure.HTTP.Transport}
	azure.HTTP.Transport = watch
	logs := &lineCount{w: io.Discard}
	if *burstLog != "" {
		f, err := os.OpenFile(*burstLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		logs.w = f
	}
	core := newRelay(cfg, azure, sm.Client(), db.Client(func(o *dynamodb.Options) { o.HTTPClient = pool() }), nil, handler.Logger(logs))
	core.Report.(*portapi.Client).HTTP.Transport = pool().Transport
	withQueue(core, azure, sq.Client(func(o *sqs.Options) { o.HTTPClient = pool() }), cfg)
	warmUp(core, azure)
	invoke := handler.Invoke(core)

	// Lambda's event source mapping on the delivery queue, as template.yaml sets it up,
	// invoking the same core; each invocation gets the function's deadline.
	var inflight atomic.Int64 // batches from their invocation to their deletes
	fn := lambdatest.InvokerFunc(func(ctx context.Context, ev []byte) ([]byte, error) {
		inflight.Add(1)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lambdaTimeout)
		defer cancel()
		return invoke.Invoke(ctx, ev)
	})
	var batches atomic.Int64
	mapping := &lambdatest.SQSMapping{Client: sq.Client(), QueueURL: queueURL, Functions: []lambdatest.Invoker{fn, fn},
		BatchSize: 10, ReportBatchItemFailures: true, OnBatch: func(lambdatest.Batch) { batches.Add(1); inflight.Add(-1) }}
	polling, stopPolling := context.WithCancel(context.Background())
	polled := make(chan error, 1)
	go func() { polled <- mapping.Run(polling) }()

	// Port signs each invocation; the signing is not the relay's work, so it comes first.
	ids := make([]string, invocations)
	signed := make([][]byte, invocations)
	ts := time.Now().Unix()
	for i := range ids {
		ids[i] = fmt.Sprintf("r_%016x", i)
		body := bytes.Replace(porttest.Payload(1<<10), []byte(porttest.RunID), []byte(ids[i]), 1)
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set(signature.PortTimestampHeader, strconv.FormatInt(ts, 10))
		h.Set(signature.PortSignatureHeader, signature.SignPort([]byte(secret), ts, body))
		signed[i] = lambdatest.HTTPAPIEvent(http.MethodPost, "/", h, body)
	}
	port.CreateRuns(ids...)

	r := burstResult{invocations: invocations}
	statuses := make([]int, invocations)
	others := make([]string, invocations) // the answers neither 200 nor 202
	var answered sync.WaitGroup
	// The burst starts as a window of Azure's does, so that the floor, counted from the
	// first window's start, counts from the first invocation too.
	first := time.Unix(0, (time.Now().UnixNano()/int64(window)+1)*int64(window))
	time.Sleep(time.Until(first))
	start := time.Now()
	for i := range signed {
		answered.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), lambdaTimeout)
			defer cancel()
			out, err := invoke(ctx, signed[i])
			if resp, ok := out.(events.APIGatewayV2HTTPResponse); ok && err == nil {
				statuses[i] = resp.StatusCode
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
					others[i] = resp.Body
				}
			}
		})
	}
	// Settled: every invocation answered, every run taken by Azure or ended FAILURE, and
	// no batch in hand.
	failedRun := func(id string) bool { run, _ := port.Run(id); return run.Status == "FAILURE" }
	settled := func() bool {
		taken, _ := watch.seen()
		for _, id := range ids {
			if taken >= invocations {
				break
			}
			if failedRun(id) {
				taken++
			}
		}
		return taken >= invocations && inflight.Load() == 0
	}
	answers := make(chan struct{})
	go func() { answered.Wait(); close(answers) }()
	timeout := time.After(*burstTimeout)
wait:
	for {
		select {
		case <-timeout:
			b.Errorf("the burst did not settle within %s", *burstTimeout)
			break wait
		case <-time.After(20 * time.Millisecond):
		}
		select {
		case <-answers:
			if settled() {
				break wait
			}
		default:
		}
	}
	stopPolling()
	<-polled
	<-answers
	for _, op := range []string{"SendMessage", "ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility", "GetQueueAttributes"} {
		if n := sq.Calls(op); n > 0 {
			if r.sqs == nil {
				r.sqs = calls{}
			}
			r.sqs[op] = n
		}
	}
	r.ddb = calls{}
	for _, op := range []string{"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"} {
		if n := db.Calls(op); n > 0 {
			r.ddb[op] = n
		}
	}
	if all := db.Calls(""); all != r.ddb.total() {
		r.ddb["other"] = all - r.ddb.total()
	}
	r.batches = int(batches.Load())
	r.ledgerFails = int(logs.ledgerFails.Load())

	for i, s := range statuses {
		switch s {
		case http.StatusOK:
			r.direct++
		case http.StatusAccepted:
			r.queued++
		default:
			r.otherAnswer++
			if r.others == nil {
				r.others = map[string]int{}
			}
			r.others[fmt.Sprintf("%d %s", s, others[i])]++
		}
	}
	taken := map[string]int{}
	for _, d := range az.Deliveries() {
		if d.Status == http.StatusOK {
			ids, _ := payload.Read(d.Body)
			taken[ids.RunID]++
		} else if d.Status == http.StatusTooManyRequests {
			r.blocked++
		}
	}
	for _, id := range ids {
		n, failed := taken[id], failedRun(id)
		switch {
		case n > 0 && failed:
			r.deliveredFailed++
		case n == 0 && failed:
			r.failed++
		case n == 0:
			r.lost++
			if run, _ := port.Run(id); strings.HasPrefix(run.StatusLabel, relay.MayHaveQueuedLabel) {
				r.ambiguous++
			}
		}
		if n > 0 {
			r.delivered++
			r.duplicates += n - 1
		}
	}
	for _, u := range []string{queueURL, dlqURL} {
		out, err := sq.Client().GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(u),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"} {
			n, _ := strconv.Atoi(out.Attributes[a])
			r.leftover += n
		}
	}

	_, last := watch.seen()
	r.floor = time.Duration((invocations+perWindow-1)/perWindow) * window
	r.elapsed = last.Sub(start)
	r.ratio = float64(last.Sub(first)) / float64(r.floor)
	r.windows = watch.perWindow(first, window)
	return r
}
