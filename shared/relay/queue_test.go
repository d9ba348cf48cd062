package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/queue"
	"github.com/port-azure-relay/relay/shared/queue/sqstest"
)

// azure is an Azure that can be opened and closed: closed, it answers 429 with a
// Retry-After, as Azure throttling does; every request reaching it is counted.
type azure struct {
	mu     sync.Mutex
	answer error // nil: it takes the delivery
	wait   time.Duration
	got    int
}

func (a *azure) set(answer error, wait time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.answer, a.wait = answer, wait
}

func (a *azure) requests() int { a.mu.Lock(); defer a.mu.Unlock(); return a.got }

func (a *azure) Deliver(context.Context, string, []byte, []byte) (azdo.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got++
	if a.answer != nil {
		return azdo.Result{}, &azdo.Error{Status: 429, Attempts: 1, Err: a.answer, RetryAfter: a.wait}
	}
	return azdo.Result{Status: 200, Attempts: 1}, nil
}

func (a *azure) Run(context.Context, azdo.Pipeline, []byte, azdo.Auth) (azdo.RunResult, error) {
	return azdo.RunResult{}, azdo.ErrRefused
}

// queued is a relay with the ledger and the delivery queue, on the stand-ins, and a
// clock the queue and the relay share.
type queued struct {
	*fixture
	c      *containers
	sqs    *sqstest.Server
	client *sqs.Client
	q      *queue.Queue
	clock  *sqstest.Clock
	az     *azure
}

func newQueued(t *testing.T) *queued {
	c := newContainers(t)
	f := c.container(nil)
	srv := sqstest.New()
	t.Cleanup(srv.Close)
	clock := sqstest.NewClock(time.Now())
	srv.Now = clock.Now
	dlq := srv.CreateQueue("delivery-dlq", nil)
	url := srv.CreateQueue("delivery", map[string]string{"VisibilityTimeout": "180",
		"RedrivePolicy": `{"deadLetterTargetArn":"` + sqstest.ARN("delivery-dlq") + `","maxReceiveCount":"1000"}`})
	client := srv.Client()
	q := &queued{fixture: f, c: c, sqs: srv, client: client, q: &queue.Queue{SQS: client, URL: url, DeadLetter: dlq}, clock: clock, az: &azure{}}
	f.useAzure(q.az, nil, nil)
	f.relay.Queue, f.relay.Now = q.q, clock.Now
	return q
}

// batch receives what the queue has visible now, as Lambda's poller would, and
// returns the event it would send.
func (q *queued) batch(t *testing.T, url string) ([]byte, []sqstypes.Message) {
	t.Helper()
	out, err := q.client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) == 0 {
		return nil, nil
	}
	return lambdatest.SQSEvent(out.Messages, sqstest.ARN("delivery"), "us-east-1"), out.Messages
}

// drain hands one batch to the relay, deletes what it did not list as failed, as the
// event source mapping does, and returns the failures.
func (q *queued) drain(t *testing.T) (failed []string, received int) {
	t.Helper()
	ev, msgs := q.batch(t, q.q.URL)
	if ev == nil {
		return nil, 0
	}
	return q.drainIn(t, msgs), len(msgs)
}

// drainIn hands msgs to the relay as one batch, in that order (a standard queue and
// Lambda's poller promise no order), and deletes what it did not list as failed, as
// the event source mapping does.
func (q *queued) drainIn(t *testing.T, msgs []sqstypes.Message) (failed []string) {
	t.Helper()
	q.logs.Reset()
	resp := q.relay.Handle(context.Background(), "batch", lambdatest.SQSEvent(msgs, sqstest.ARN("delivery"), "us-east-1"))
	var answer struct {
		Failures []struct {
			ID string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if resp.HTTP || resp.Status != 200 || json.Unmarshal(resp.Body, &answer) != nil {
		t.Fatalf("batch answered %+v %s, want batch item failures", resp, resp.Body)
	}
	for _, m := range msgs {
		keep := false
		for _, f := range answer.Failures {
			keep = keep || f.ID == aws.ToString(m.MessageId)
		}
		if keep {
			failed = append(failed, aws.ToString(m.MessageId))
			continue
		}
		if _, err := q.client.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(q.q.URL), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	return failed
}

// redrive moves the one message on the dead-letter queue back to the delivery queue,
// as make redrive does, and returns it.
func (q *queued) redrive(t *testing.T) queue.Message {
	t.Helper()
	_, dead := q.batch(t, q.q.DeadLetter)
	if len(dead) != 1 {
		t.Fatalf("dead-letter queue holds %d, want 1", len(dead))
	}
	m, err := queue.Decode([]byte(aws.ToString(dead[0].Body)))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.q.Put(context.Background(), m, 0); err != nil {
		t.Fatal(err)
	}
	return m
}

func (q *queued) state(key string) string {
	for _, item := range q.c.db.Items(ledgerTable) {
		if id, _ := item["id"].(*types.AttributeValueMemberS); id != nil && id.Value == key {
			return item["state"].(*types.AttributeValueMemberS).Value
		}
	}
	return ""
}

func portEvent(runID string, ts int64) []byte {
	return httpEvent("POST", "/", strings.Replace(goodBody, "r_unit1", runID, 1), key, ts)
}

// A click while Azure throttles is answered 202 and put aside; when Azure opens, the
// queue's drain starts it, once, and the Port run hears each step.
func TestAThrottledClickIsQueuedThenStartedOnce(t *testing.T) {
	q := newQueued(t)
	q.az.set(azdo.ErrThrottled, 30*time.Second)
	status, body := handle(q.fixture, portEvent("r_unit1", now))
	if status != http.StatusAccepted || body["queued"] != true || body["retryAfter"] != float64(30) || body["webhook"] != "port_trigger" || body["runId"] != "r_unit1" {
		t.Fatalf("throttled click: %d %v, want 202 queued, retryAfter 30", status, body)
	}
	if line := lastLine(t, q.fixture); line["msg"] != "queued" || line["Queued"] != float64(1) || line["Cause"] != "throttled" {
		t.Errorf("log line %v: want msg queued, counted Queued by cause throttled", line)
	}
	if got := strings.Join(q.reports.calls, "\n"); !strings.Contains(got, "The relay queued this run") || strings.Contains(got, "try again") || !strings.Contains(got, "label r_unit1: Queued: Azure DevOps is busy (throttled)") || strings.Contains(got, "fail ") {
		t.Errorf("Port heard %q: want a log line and a label saying it is queued, the run not ended", got)
	}
	if s := q.state(ledger.RunKey("r_unit1")); s != "queued" {
		t.Errorf("ledger state %q, want queued", s)
	}
	// A replay of the queued click: the first answer, nothing sent.
	if status, body := handle(q.c.container(nil), portEvent("r_unit1", now)); status != http.StatusAccepted || body["queued"] != true || body["duplicate"] != true {
		t.Errorf("replay: %d %v, want 202 queued duplicate", status, body)
	}
	// Not visible before Azure's wait; visible after it.
	if _, n := q.drain(t); n != 0 {
		t.Fatalf("the message was visible before its delay")
	}
	q.clock.Advance(31 * time.Second)
	q.az.set(nil, 0)
	q.reports.calls = nil
	if failed, n := q.drain(t); n != 1 || len(failed) != 0 {
		t.Fatalf("drain: received %d, failed %v, want 1 delivered", n, failed)
	}
	if q.az.requests() != 2 || q.state(ledger.RunKey("r_unit1")) != "delivered" {
		t.Errorf("Azure got %d requests, ledger %q: want 2 (one throttled, one taken) and delivered", q.az.requests(), q.state(ledger.RunKey("r_unit1")))
	}
	if got := strings.Join(q.reports.calls, "\n"); !strings.Contains(got, "accepted webhook port_trigger (pipeline queued), after 2 attempts.") ||
		!strings.Contains(got, "label r_unit1: Accepted by Azure DevOps") {
		t.Errorf("Port heard %q, want the delivery with its attempts", got)
	}
	if line := lastLine(t, q.fixture); line["Forwarded"] != float64(1) || line["drained"] != float64(2) {
		t.Errorf("drain's line %v: want Forwarded, drained 2", line)
	}
}

// Put aside, a delivery is tried when Azure said, each time, however soon: Azure is
// not left idle while its window is open. After many tries its remaining receives are
// spread over its maximum age, so that SQS's maxReceiveCount never moves it first.
func TestAQueuedDeliveryIsTriedWhenAzureSaid(t *testing.T) {
	q := newQueued(t)
	q.az.set(azdo.ErrThrottled, 3*time.Second)
	if status, body := handle(q.fixture, portEvent("r_soon", now)); status != http.StatusAccepted || body["retryAfter"] != float64(3) {
		t.Fatalf("throttled click: %d %v, want 202 queued, retryAfter 3", status, body)
	}
	q.clock.Advance(2 * time.Second)
	if _, n := q.drain(t); n != 0 {
		t.Fatalf("tried after 2 s, before Azure's 3 s")
	}
	q.clock.Advance(time.Second)
	if failed, n := q.drain(t); n != 1 || len(failed) != 1 || q.az.requests() != 2 {
		t.Fatalf("after Azure's 3 s: received %d, failed %v, %d requests to Azure; want it tried, and throttled again", n, failed, q.az.requests())
	}
	q.clock.Advance(2 * time.Second)
	if _, n := q.drain(t); n != 0 {
		t.Fatalf("tried again before Azure's second 3 s")
	}
	q.clock.Advance(time.Second)
	q.az.set(nil, 0)
	if failed, n := q.drain(t); n != 1 || len(failed) != 0 || q.state(ledger.RunKey("r_soon")) != "delivered" {
		t.Errorf("after Azure's second 3 s: received %d, failed %v, ledger %q; want it delivered", n, failed, q.state(ledger.RunKey("r_soon")))
	}
	throttled := &azdo.Error{Err: azdo.ErrThrottled, RetryAfter: time.Second}
	q.relay.MaxAge = time.Hour
	for _, tt := range []struct {
		tries int
		want  time.Duration
	}{{1, time.Second}, {249, time.Second}, {250, time.Hour / maxTries}, {900, time.Hour / maxTries}} {
		if got := q.relay.retryWait(throttled, tt.tries); got != tt.want {
			t.Errorf("retryWait(Retry-After 1s, try %d) = %s, want %s", tt.tries, got, tt.want)
		}
	}
}

// SQS delivers at least once: a record that comes twice is sent once.
func TestARecordSeenTwiceIsSentOnce(t *testing.T) {
	q := newQueued(t)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	handle(q.fixture, portEvent("r_twice", now))
	q.clock.Advance(11 * time.Second)
	q.az.set(nil, 0)
	ev, _ := q.batch(t, q.q.URL)
	for range 2 {
		q.relay.Handle(context.Background(), "batch", ev) // the same batch, twice
	}
	if n := q.az.requests(); n != 2 {
		t.Errorf("Azure got %d requests, want 2: the throttled one and one delivery", n)
	}
	if line := lastLine(t, q.fixture); line["msg"] != "duplicate" {
		t.Errorf("the second time: %v, want a duplicate", line)
	}
}

// Still throttled: the record comes round when Azure said, and the rest of the batch
// waits with it, Azure not asked again.
func TestStillThrottledTheBatchWaitsForAzure(t *testing.T) {
	q := newQueued(t)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	for i, id := range []string{"r_a", "r_b", "r_c"} {
		handle(q.fixture, portEvent(id, now+int64(i)))
	}
	q.clock.Advance(11 * time.Second)
	q.az.set(azdo.ErrThrottled, 60*time.Second)
	before := q.az.requests()
	failed, n := q.drain(t)
	if n != 3 || len(failed) != 3 || q.az.requests()-before != 1 {
		t.Fatalf("drain: received %d, %d failed, %d requests to Azure; want all 3 back and only the first sent", n, len(failed), q.az.requests()-before)
	}
	q.clock.Advance(30 * time.Second)
	if _, n := q.drain(t); n != 0 {
		t.Errorf("%d came back before Azure's 60 s", n)
	}
	q.clock.Advance(31 * time.Second)
	q.az.set(nil, 0)
	if failed, n := q.drain(t); n != 3 || len(failed) != 0 {
		t.Errorf("after Azure's wait: received %d, failed %v, want 3 delivered", n, failed)
	}
	for _, id := range []string{"r_a", "r_b", "r_c"} {
		if s := q.state(ledger.RunKey(id)); s != "delivered" {
			t.Errorf("%s: %q, want delivered", id, s)
		}
	}
}

// Older than QUEUE_MAX_AGE: the Port run ends FAILURE naming the age, and the record
// goes to the dead-letter queue. Redriven, a click whose Port run has ended is not
// sent (whoever clicked was told FAILURE, and may have run the action again); an AWS
// event, which has no Port run, is sent once, and never again.
func TestTooOldThenRedriven(t *testing.T) {
	q := newQueued(t)
	q.relay.MaxAge = time.Hour
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	handle(q.fixture, portEvent("r_old", now))
	handle(q.fixture, lambdatest.ScheduledEvent("nightly-old"))
	q.clock.Advance(61 * time.Minute)
	q.reports.calls = nil
	if failed, n := q.drain(t); n != 2 || len(failed) != 0 {
		t.Fatalf("drain: %d, failed %v, want both taken off the queue", n, failed)
	}
	if got := strings.Join(q.reports.calls, "\n"); !strings.Contains(got, "fail r_old: Not started in time") || !strings.Contains(got, "1h1m0s") {
		t.Errorf("Port heard %q, want FAILURE naming the age", got)
	}
	if s := q.state(ledger.RunKey("r_old")); s != "expired" {
		t.Errorf("ledger %q, want expired", s)
	}
	_, dead := q.batch(t, q.q.DeadLetter)
	if len(dead) != 2 {
		t.Fatalf("dead-letter queue holds %d, want 2", len(dead))
	}
	var msgs []queue.Message
	for _, d := range dead {
		m, err := queue.Decode([]byte(aws.ToString(d.Body)))
		if err != nil || m.Reason != "age" || m.DeadLettered.IsZero() {
			t.Fatalf("dead-lettered %+v %v", m, err)
		}
		msgs = append(msgs, m)
	}
	// A replay of the click meanwhile gets the first answer.
	if status, body := handle(q.c.container(nil), portEvent("r_old", now)); status != http.StatusGatewayTimeout || body["duplicate"] != true {
		t.Errorf("replay of an expired click: %d %v, want the first answer (504) marked duplicate", status, body)
	}
	// The operator redrives them after the fix, by mistake twice.
	q.az.set(nil, 0)
	before := q.az.requests()
	for range 2 {
		for _, m := range msgs {
			if err := q.q.Put(context.Background(), m, 0); err != nil {
				t.Fatal(err)
			}
		}
		if failed, n := q.drain(t); n != 2 || len(failed) != 0 {
			t.Fatalf("redriven: %d, failed %v; want both taken off the queue", n, failed)
		}
	}
	if sent := q.az.requests() - before; sent != 1 || q.state(ledger.RunKey("r_old")) != "expired" {
		t.Errorf("redriven twice: %d sent, the click's ledger %q; want only the scheduled event sent, once, and the click left expired", sent, q.state(ledger.RunKey("r_old")))
	}
}

// When the queue cannot be written, the answer is today's: nothing lost silently.
func TestAQueueThatCannotBeWrittenFailsAsBefore(t *testing.T) {
	q := newQueued(t)
	q.sqs.SetFault(sqstest.Down)
	q.az.set(azdo.ErrThrottled, 30*time.Second)
	status, body := handle(q.fixture, portEvent("r_noqueue", now))
	if status != http.StatusBadGateway || body["queued"] != nil || !strings.Contains(body["error"].(string), "throttling") {
		t.Fatalf("%d %v, want 502 throttled", status, body)
	}
	if s := q.state(ledger.RunKey("r_noqueue")); s != "refused" {
		t.Errorf("ledger %q, want refused", s)
	}
	if got := strings.Join(q.reports.calls, "\n"); !strings.Contains(got, "fail r_noqueue: Throttled") {
		t.Errorf("Port heard %q, want FAILURE", got)
	}
}

// slowComplete is a ledger whose record of an outcome takes delay more: a DynamoDB
// write retried after a throttle.
type slowComplete struct {
	Ledger
	delay time.Duration
}

func (l slowComplete) Complete(ctx context.Context, c ledger.Claim, out ledger.Record) error {
	select {
	case <-time.After(l.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return l.Ledger.Complete(ctx, c, out)
}

// The delivery's record and its message each get the ledger's budget: a slow ledger
// write leaves the queue's send its own time, and the delivery waits rather than fails.
func TestASlowLedgerWriteLeavesTheQueueItsTime(t *testing.T) {
	q := newQueued(t)
	q.relay.Ledger = slowComplete{Ledger: q.relay.Ledger, delay: 700 * time.Millisecond}
	q.sqs.SetFault(sqstest.Slow(500 * time.Millisecond).For("SendMessage").Times(1))
	q.az.set(azdo.ErrThrottled, 30*time.Second)
	if status, body := handle(q.fixture, portEvent("r_slow", now)); status != http.StatusAccepted || body["queued"] != true {
		t.Fatalf("%d %v, want 202 queued: the send had its own second", status, body)
	}
	if s := q.state(ledger.RunKey("r_slow")); s != "queued" {
		t.Errorf("ledger %q, want queued", s)
	}
	q.clock.Advance(31 * time.Second)
	q.az.set(nil, 0)
	if failed, n := q.drain(t); n != 1 || len(failed) != 0 || q.state(ledger.RunKey("r_slow")) != "delivered" {
		t.Errorf("drain: received %d, failed %v, ledger %q; want it delivered", n, failed, q.state(ledger.RunKey("r_slow")))
	}
}

// A drain's claim whose write lands but whose answer is lost sent nothing: the record
// is sent when it comes round, not read as maybe sent and dropped.
func TestADrainClaimWithItsAnswerLostIsSentLater(t *testing.T) {
	q := newQueued(t)
	q.relay.Ledger.(*ledger.Ledger).Now = q.clock.Now
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	handle(q.fixture, portEvent("r_lostanswer", now))
	q.clock.Advance(11 * time.Second)
	q.az.set(nil, 0)
	// The ledger makes each change and drops its answer, as often as the SDK tries: the
	// claim lands, and the relay hears only that DynamoDB could not be reached.
	q.c.db.SetFault(dynamotest.AnswerLost.For("UpdateItem").Times(10))
	if failed, n := q.drain(t); n != 1 || len(failed) != 1 || q.az.requests() != 1 {
		t.Fatalf("drain with the ledger's answers lost: received %d, failed %v, %d requests to Azure; want it kept, nothing sent", n, failed, q.az.requests())
	}
	q.c.db.SetFault(dynamotest.None)
	for range 20 { // until it comes round, whenever that is
		q.clock.Advance(time.Minute)
		if _, n := q.drain(t); n > 0 {
			break
		}
	}
	if q.az.requests() != 2 || q.state(ledger.RunKey("r_lostanswer")) != "delivered" {
		t.Errorf("%d requests to Azure, ledger %q; want it delivered once, when it came round", q.az.requests(), q.state(ledger.RunKey("r_lostanswer")))
	}
}

// A definite refusal or an ambiguous answer is never queued: as before.
func TestOnlyWhatAzureCouldTakeLaterIsQueued(t *testing.T) {
	for _, tt := range []struct {
		err    error
		status int
		state  string
	}{
		{azdo.ErrWebhookNotFound, 502, "refused"},
		{azdo.ErrServerError, 502, "mayHaveQueued"},
		{azdo.ErrNoAnswer, 504, "mayHaveQueued"},
		{azdo.ErrUnavailable, 202, "queued"},
		{azdo.ErrNoTime, 202, "queued"},
	} {
		t.Run(tt.err.Error(), func(t *testing.T) {
			q := newQueued(t)
			q.az.set(tt.err, 0)
			if status, _ := handle(q.fixture, portEvent("r_x", now)); status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
			if s := q.state(ledger.RunKey("r_x")); s != tt.state {
				t.Errorf("ledger %q, want %q", s, tt.state)
			}
		})
	}
}

// A scheduled event Azure cannot take is queued too: a result, no function error, so
// Lambda does not retry it beside the queue.
func TestAThrottledScheduledEventIsQueued(t *testing.T) {
	q := newQueued(t)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	status, body := handle(q.fixture, lambdatest.ScheduledEvent("nightly-queued"))
	if status != 200 || body["queued"] != true || body["functionError"] != nil {
		t.Fatalf("%d %v, want a result saying queued", status, body)
	}
	q.clock.Advance(11 * time.Second)
	q.az.set(nil, 0)
	if failed, n := q.drain(t); n != 1 || len(failed) != 0 || q.az.requests() != 2 {
		t.Errorf("drain: %d, failed %v, %d requests; want it delivered", n, failed, q.az.requests())
	}
}

// A message the ledger does not hold queued for its body (forged, or its record gone)
// is never sent: it goes to the dead-letter queue.
func TestAMessageTheLedgerDoesNotKnowIsNeverSent(t *testing.T) {
	q := newQueued(t)
	q.az.set(nil, 0)
	ctx := context.Background()
	forged := queue.Message{Door: "webhook", Target: "port_trigger", Kind: "httpapi", RunID: "r_forged", Key: ledger.RunKey("r_forged"), Queued: q.clock.Now(), Body: []byte(`{"port_context":{"runId":"r_forged"}}`)}
	if err := q.q.Put(ctx, forged, 0); err != nil {
		t.Fatal(err)
	}
	if failed, n := q.drain(t); n != 1 || len(failed) != 0 || q.az.requests() != 0 {
		t.Fatalf("drain: %d, failed %v, %d requests to Azure; want it taken off and never sent", n, failed, q.az.requests())
	}
	if _, dead := q.batch(t, q.q.DeadLetter); len(dead) != 1 {
		t.Errorf("dead-letter queue holds %d, want the forged message", len(dead))
	}
	// Queued for another body: the same.
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	handle(q.fixture, portEvent("r_real", now))
	other := queue.Message{Door: "webhook", Target: "port_trigger", Kind: "httpapi", RunID: "r_real", Key: ledger.RunKey("r_real"), Queued: q.clock.Now(), Body: []byte(`{"port_context":{"runId":"r_real"},"evil":1}`)}
	if err := q.q.Put(ctx, other, 0); err != nil {
		t.Fatal(err)
	}
	q.az.set(nil, 0)
	before := q.az.requests()
	q.drain(t)
	if q.az.requests() != before || q.state(ledger.RunKey("r_real")) != "queued" {
		t.Errorf("another body for a queued key: %d sent, ledger %q; want nothing sent, the real one still queued", q.az.requests()-before, q.state(ledger.RunKey("r_real")))
	}
}

// When the queue cannot be written, the record goes back to the invocation's claim and
// its outcome is written as without a queue: a click's refusal with no ledger error
// beside it, and an AWS event's claim released, so that Lambda's retry is delivered.
func TestAQueueThatCannotBeWrittenLeavesTheOutcomeAsBefore(t *testing.T) {
	q := newQueued(t)
	q.sqs.SetFault(sqstest.Down)
	q.az.set(azdo.ErrThrottled, 30*time.Second)
	if status, _ := handle(q.fixture, portEvent("r_down", now)); status != http.StatusBadGateway {
		t.Fatalf("click: %d, want 502", status)
	}
	if line := lastLine(t, q.fixture); line["ledgerError"] != nil || line["LedgerUnavailable"] != nil {
		t.Errorf("click's line %v: want no ledger error, the refusal recorded", line)
	}
	ev := lambdatest.ScheduledEvent("nightly-queue-down")
	if _, body := handle(q.fixture, ev); body["functionError"] == nil {
		t.Fatalf("event: %v, want a function error for Lambda to retry", body)
	}
	q.sqs.SetFault(sqstest.None)
	q.az.set(nil, 0)
	if _, body := handle(q.fixture, ev); body["forwarded"] != true || body["duplicate"] != nil {
		t.Errorf("Lambda's retry: %v, want it delivered", body)
	}
	if n := q.az.requests(); n != 3 {
		t.Errorf("Azure got %d requests, want 3: the click, the event, its retry", n)
	}
}
