package relay

// The hand-back grace (a record in progress past its claim's deadline is read as maybe
// sent only handBackGrace later, and written so before anyone is told) and the batch
// pause (what Azure asked of the first record the batch sends): each test shows one way
// they could start a pipeline twice or ask Azure too soon, and that they do not.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/queue"
)

// firstOf orders msgs so that the one whose body holds s comes first: a standard queue
// and Lambda's poller promise no order.
func firstOf(msgs []sqstypes.Message, s string) []sqstypes.Message {
	out := make([]sqstypes.Message, 0, len(msgs))
	for _, m := range msgs {
		if strings.Contains(aws.ToString(m.Body), s) {
			out = append([]sqstypes.Message{m}, out...)
		} else {
			out = append(out, m)
		}
	}
	return out
}

// The grace is only a time: a copy handed back is assumed to come round within
// queue.MaxDelay + 5 min of its claim's deadline, but nothing holds it to that. Here
// the copy (Azure's Retry-After 10 min) lands in a batch behind a record Azure
// throttles for 30 min, and the batch's pause holds it 30 min more. The original
// (its drain invocation was cut off later in its batch, so Lambda deleted nothing)
// comes round past the grace, finds the record still in progress under the
// hand-back's claim, and tells the Port run "may have been queued: look at its runs in
// Azure DevOps before you run this action again". It writes nothing to the ledger, so
// the record stays takeable by the copy: 20 minutes later the copy takes it from the
// claim it names and starts the pipeline. At 21 min a user who looked found no run and
// ran the action again; at 41 min the first click's pipeline starts too: two runs.
// Correct: once a Port run is told "may have been queued", nothing sends that record
// again (close the record in the ledger, conditionally on the dead claim, before
// telling), or the report waits for as long as a copy can still come round.
func TestGrace_ACopyHeldPastTheGraceSendsAfterThePortRunWasToldMaybeQueued(t *testing.T) {
	q := newQueued(t)
	q.relay.MaxAge = 2 * time.Hour
	q.relay.Ledger = &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, Now: q.clock.Now}
	armed := false
	q.useAzure(faultAfter{q.az, func() {
		if armed {
			q.c.db.SetFault(dynamotest.AccessDenied.For("UpdateItem"))
		}
	}}, nil, nil)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, portEvent("r_late", now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	q.clock.Advance(11 * time.Second)
	// The drain: Azure throttles for 10 min, DynamoDB refuses the give-back, a copy
	// naming the claim is handed back. The invocation is then cut off on a later record
	// of its batch, so the event source mapping deletes nothing: the original stays.
	armed = true
	q.az.set(azdo.ErrThrottled, 10*time.Minute)
	ev, msgs := q.batch(t, q.q.URL)
	if len(msgs) != 1 {
		t.Fatalf("received %d, want the click", len(msgs))
	}
	q.relay.Handle(context.Background(), "batch", ev)
	armed = false
	q.c.db.SetFault(dynamotest.None)
	if s := q.state(ledger.RunKey("r_late")); s != "inProgress" {
		t.Fatalf("ledger %q, want in progress under the handed-back claim", s)
	}
	// Another click meanwhile, put aside for the same 10 minutes.
	if _, b := handle(q.fixture, portEvent("r_block", now+1)); b["queued"] != true {
		t.Fatalf("second click: %v, want queued", b)
	}
	// 3 min: the original, within the grace: held to its end, nothing told.
	q.clock.Advance(3 * time.Minute)
	q.reports.calls = nil
	if failed, n := q.drain(t); n != 1 || len(failed) != 1 || heard(q) != "" {
		t.Fatalf("the original within the grace: received %d, failed %v, Port heard %q; want it held, nothing told", n, failed, heard(q))
	}
	// 10 min: the copy and r_block together; Azure throttles r_block for 30 min and the
	// copy waits behind it.
	q.clock.Advance(7 * time.Minute)
	_, msgs = q.batch(t, q.q.URL)
	if len(msgs) != 2 {
		t.Fatalf("at 10 min received %d, want the copy and r_block", len(msgs))
	}
	q.az.set(azdo.ErrThrottled, 30*time.Minute)
	q.drainIn(t, firstOf(msgs, "r_block"))
	// 21 min: past the grace, the original comes round again.
	q.clock.Advance(11 * time.Minute)
	q.reports.calls = nil
	q.drain(t)
	told := heard(q)
	// 41 min: Azure is open; the copy comes round.
	q.az.set(nil, 0)
	q.clock.Advance(20 * time.Minute)
	q.reports.calls = nil
	q.drain(t)
	later := heard(q)
	if !strings.Contains(told+later, "r_late") {
		t.Fatalf("the Port run r_late heard nothing (at 21 min %q, at 41 min %q)", told, later)
	}
	if strings.Contains(told, MayHaveQueuedLabel) && q.state(ledger.RunKey("r_late")) == "delivered" {
		t.Errorf("at 21 min the Port run was told %q though nothing had been sent; at 41 min the copy started the pipeline (ledger %q, Port heard %q)",
			told, q.state(ledger.RunKey("r_late")), later)
	}
}

// The batch's pause is the first record's own wait, which is capped by that record's
// age left (so that it expires on time), not Azure's Retry-After. A record 10 s from
// its QUEUE_MAX_AGE that Azure throttles for 60 s pauses the rest of its batch for
// 10 s only: the record behind it is sent to Azure 10 s later, 50 s before Azure said
// it could take anything, adding to the throttling (TSTUs) the queue exists to wait
// out. drain promises "Azure is not asked again before then".
// Correct: done.pause is Azure's wait (retryWait before the record's own age cap); each
// follower's hold is then capped by its own age left, as behind does.
func TestGrace_ABatchPausesForAzuresWaitNotTheFirstRecordsAgeLeft(t *testing.T) {
	q := newQueued(t)
	q.relay.MaxAge = 10 * time.Minute
	q.relay.Ledger = &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, Now: q.clock.Now}
	q.az.set(azdo.ErrThrottled, 9*time.Minute+50*time.Second)
	if _, b := handle(q.fixture, portEvent("r_old", now)); b["queued"] != true {
		t.Fatalf("old click: %v, want queued", b)
	}
	q.clock.Advance(9*time.Minute + 49*time.Second)
	q.az.set(azdo.ErrThrottled, time.Second)
	if _, b := handle(q.fixture, portEvent("r_new", now+1)); b["queued"] != true {
		t.Fatalf("new click: %v, want queued", b)
	}
	q.clock.Advance(2 * time.Second) // 9 min 51 s: both visible
	_, msgs := q.batch(t, q.q.URL)
	if len(msgs) != 2 {
		t.Fatalf("received %d, want both", len(msgs))
	}
	q.az.set(azdo.ErrThrottled, 60*time.Second)
	before := q.az.requests()
	q.drainIn(t, firstOf(msgs, "r_old"))
	if got := q.az.requests() - before; got != 1 {
		t.Fatalf("the batch sent %d requests to Azure, want 1 (r_old), r_new held", got)
	}
	// Azure said 60 s. Within them, whatever comes round is not sent.
	for waited := 10 * time.Second; waited < time.Minute; waited += 10 * time.Second {
		q.clock.Advance(10 * time.Second)
		q.drain(t)
		if got := q.az.requests() - before; got != 1 {
			t.Fatalf("%s into Azure's 60 s, Azure got %d requests, want 1 (r_old): r_new was sent (ledger %q)",
				waited, got, q.state(ledger.RunKey("r_new")))
		}
	}
}

// A redriven delivery that Azure throttles again is put aside afresh (a new message,
// delayed by Azure's wait) and returns done, with no pause: the rest of its batch is
// sent to Azure at once, although Azure has just asked for 60 s. The hand-back got
// done.pause; the redrive's put-afresh did not.
// Correct: a redriven record Azure cannot take yet pauses its batch as any other does.
func TestGrace_ARedrivenRecordThrottledAgainPausesTheBatch(t *testing.T) {
	q := newQueued(t)
	q.relay.MaxAge = time.Hour
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	handle(q.fixture, lambdatest.ScheduledEvent("nightly-redo"))
	q.clock.Advance(61 * time.Minute)
	if failed, n := q.drain(t); n != 1 || len(failed) != 0 {
		t.Fatalf("expiry drain: received %d, failed %v", n, failed)
	}
	_, dead := q.batch(t, q.q.DeadLetter)
	if len(dead) != 1 {
		t.Fatalf("dead-letter queue holds %d, want 1", len(dead))
	}
	m, err := queue.Decode([]byte(aws.ToString(dead[0].Body)))
	if err != nil || m.Reason != "age" {
		t.Fatalf("dead-lettered %+v %v", m, err)
	}
	if _, b := handle(q.fixture, portEvent("r_behind", now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	q.clock.Advance(11 * time.Second)
	if err := q.q.Put(context.Background(), m, 0); err != nil { // the operator's redrive
		t.Fatal(err)
	}
	_, msgs := q.batch(t, q.q.URL)
	if len(msgs) != 2 {
		t.Fatalf("received %d, want the redriven event and the click", len(msgs))
	}
	q.az.set(azdo.ErrThrottled, 60*time.Second)
	before := q.az.requests()
	q.drainIn(t, firstOf(msgs, "nightly-redo"))
	if got := q.az.requests() - before; got != 1 {
		t.Errorf("the batch sent %d requests to Azure, want 1: after the redriven record was throttled for 60 s, r_behind was sent at once (ledger %q)",
			got, q.state(ledger.RunKey("r_behind")))
	}
}
