package relay

// The hand-back: a drain that sent nothing and could not put its record back to queued
// puts a copy of the message naming its claim. Each test shows one way that could start
// a pipeline twice, lose a click or tell a Port run something false, and that it does not.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/queue"
)

// lateAnswer is the relay's delivery queue with SQS's answer to the first hand-back
// lost: the SendMessage reaches SQS and the message stays (SendMessage is not
// idempotent), but the relay hears a failure, as when the SDK gives up on a slow
// answer or the connection breaks after the request was read.
type lateAnswer struct {
	Queue
	lost bool
}

func (l *lateAnswer) Put(ctx context.Context, m queue.Message, delay time.Duration) error {
	err := l.Queue.Put(ctx, m, delay)
	if err == nil && m.Unsent != "" && !l.lost {
		l.lost = true
		return fmt.Errorf("%w: request failed", queue.ErrUnavailable)
	}
	return err
}

// Azure throttles a drained click again, DynamoDB refuses the write that puts its record
// back to queued, and SQS's answer to the hand-back is lost: the copy is on the queue,
// but handBack returns an error, so drainOne takes the copy for unwritten and ends the
// Port run FAILURE ("Throttled: nothing was queued; try again later"). When the copy
// comes round it takes the record from the claim it names and starts the pipeline: a
// pipeline runs behind a Port run that says it was not started, and a user who
// followed the FAILURE and ran the action again has two runs.
// Correct: the Port run is ended only when the copy certainly was not written (a
// refusal such as ErrTooLarge); when its answer is lost, the run is left waiting for
// whichever of the copy and the original comes round.
func TestHandBack_ACopyWhoseAnswerIsLostDoesNotRunBehindAFailedPortRun(t *testing.T) {
	q := newQueued(t)
	q.relay.Ledger = &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, Now: q.clock.Now}
	q.relay.Queue = &lateAnswer{Queue: q.q}
	armed := false
	q.useAzure(faultAfter{q.az, func() {
		if armed {
			q.c.db.SetFault(dynamotest.AccessDenied.For("UpdateItem"))
		}
	}}, nil, nil)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, portEvent("r_lostcopy", now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	q.clock.Advance(11 * time.Second)
	armed = true
	q.az.set(azdo.ErrThrottled, 60*time.Second)
	q.reports.calls = nil
	if _, n := q.drain(t); n != 1 {
		t.Fatalf("drain: received %d; want the record", n)
	}
	armed = false
	q.c.db.SetFault(dynamotest.None)
	told := heard(q)
	q.clock.Advance(61 * time.Second)
	q.az.set(nil, 0)
	q.drain(t)
	if strings.Contains(told, "fail r_lostcopy") && q.az.requests() == 3 {
		t.Errorf("the drain ended the Port run (%q), then its copy started the pipeline (Azure got %d requests: click 429, drain 429, copy delivered); ledger %q",
			told, q.az.requests(), q.state(ledger.RunKey("r_lostcopy")))
	}
}

// The same click, the copy handed back for Azure's Retry-After (10 minutes), and the
// original message comes round again: SQS delivers at least once, and a drain
// invocation that Lambda ends at its timeout on a later record of the batch has every
// record of the batch delivered again after the visibility timeout. The original names
// no claim; it finds the record in progress under the hand-back's claim, past that
// drain's deadline, and reads it as "may have been queued": the Port run is told to
// look for a pipeline run in Azure DevOps before running the action again, and there
// is none (nothing was sent). Minutes later the copy takes the claim back and starts
// the pipeline; a user who looked, found nothing and ran the action again has two runs.
// Correct: a record the relay handed back is never read as maybe sent: the original
// finding it in progress under a claim past its deadline must not tell the Port run
// "may have been queued" while a copy naming that claim can still come round (e.g. the
// copy comes round before any redelivery can, and waits out Azure's Retry-After once
// it holds the record).
func TestHandBack_TheOriginalComingRoundAgainDoesNotCallItMaybeSent(t *testing.T) {
	q := newQueued(t)
	q.relay.Ledger = &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, Now: q.clock.Now}
	armed := false
	q.useAzure(faultAfter{q.az, func() {
		if armed {
			q.c.db.SetFault(dynamotest.AccessDenied.For("UpdateItem"))
		}
	}}, nil, nil)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, portEvent("r_again", now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	q.clock.Advance(11 * time.Second)
	armed = true
	q.az.set(azdo.ErrThrottled, 10*time.Minute)
	ev, msgs := q.batch(t, q.q.URL)
	if failed := q.drainIn(t, msgs); len(msgs) != 1 || len(failed) != 0 || q.state(ledger.RunKey("r_again")) != "inProgress" {
		t.Fatalf("first drain: received %d, failed %v, ledger %q; want the original off the queue, its copy handed back", len(msgs), failed, q.state(ledger.RunKey("r_again")))
	}
	armed = false
	q.c.db.SetFault(dynamotest.None)
	// The original again, after the visibility timeout (150 s in the template).
	q.clock.Advance(3 * time.Minute)
	q.reports.calls = nil
	q.relay.Handle(context.Background(), "batch", ev)
	told := heard(q)
	// The copy, after Azure's 10 minutes.
	q.clock.Advance(8 * time.Minute)
	q.az.set(nil, 0)
	q.drain(t)
	if strings.Contains(told, MayHaveQueuedLabel) && q.az.requests() == 3 {
		t.Errorf("at 3 min the Port run was told %q though nothing was sent; at 11 min the copy started the pipeline (Azure got %d requests, ledger %q)",
			told, q.az.requests(), q.state(ledger.RunKey("r_again")))
	}
}

// The hand-back's copy is the original message plus its "unsent" member: the largest
// click the queue takes (it keeps room for what Bury and a hand-back add) is handed back
// all the same when its Take's answer is lost and DynamoDB throttles the give-back, and
// is delivered when its copy comes round, not dropped as "may have been queued".
func TestHandBack_ALargeClickIsHandedBackToo(t *testing.T) {
	q := newQueued(t)
	inner := &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, Now: q.clock.Now}
	q.relay.Ledger = inner
	const head = `{"port_context":{"runId":"r_large"},"pad":"`
	probe := queue.Message{Door: "webhook", Target: "port_trigger", Kind: "httpapi", RunID: "r_large", Key: ledger.RunKey("r_large"), Queued: q.clock.Now(), Body: []byte(head + `"}`)}
	grown := probe
	grown.DeadLettered, grown.Reason, grown.Unsent = time.UnixMilli(1e13-1), "unreadable", "000000000000000000000000"
	pad := (1 << 20) - len(grown.Encode()) // the largest the queue takes: dead-lettered and named, exactly 1 MiB
	body := head + strings.Repeat("x", pad) + `"}`
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, httpEvent("POST", "/", body, key, now)); b["queued"] != true {
		t.Fatalf("large click: %v, want queued", b)
	}
	deliveredAfterALostTake(t, q, inner, "r_large")
}

// The run id is now read from the digest-bound body, but only when the message's Kind,
// which nothing binds, says HTTP. A message with a queued click's key, body and
// target and Kind "direct" (anyone who can send to the delivery queue, the threat the
// run id fix answers) is delivered, and its outcome told to no Port run; the real
// message then finds the key delivered, a duplicate, and tells nothing either: the
// Port run says "Queued" for good while its pipeline runs.
// Correct: the Port run told is the one the digest-bound body names whatever the
// message's kind says (or the kind is bound too, e.g. in the ledger's record).
func TestHandBack_AQueuedOutcomeIsToldWhateverTheMessageKindSays(t *testing.T) {
	q := newQueued(t)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	body := strings.Replace(goodBody, "r_unit1", "r_kind", 1)
	if _, b := handle(q.fixture, httpEvent("POST", "/", body, key, now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	forged := queue.Message{Door: "webhook", Target: "port_trigger", Kind: "direct", Key: ledger.RunKey("r_kind"), Queued: q.clock.Now(), Body: []byte(body)}
	if err := q.q.Put(context.Background(), forged, 0); err != nil {
		t.Fatal(err)
	}
	q.az.set(nil, 0)
	q.reports.calls = nil
	q.drain(t) // the altered copy, visible at once
	q.clock.Advance(11 * time.Second)
	q.drain(t) // the real message
	if got := heard(q); q.az.requests() != 2 || !strings.Contains(got, "r_kind") {
		t.Errorf("Azure got %d requests (want 2: throttled, delivered); Port heard %q: want r_kind told its pipeline started", q.az.requests(), got)
	}
}

// Azure throttles the first record of a batch and asks for 60 s; DynamoDB refuses the
// write that puts it back to queued (both tries), and it is handed back. drainOne
// returns "done" (0) for a hand-back, so drain sets no pause: the next record of the
// batch is sent to Azure at once, although drain promises that a record Azure cannot
// take holds the rest of the batch until Azure said, Azure not asked again before then.
// Correct: a record handed back for Azure's wait pauses the batch as one that comes
// round itself does.
func TestHandBack_AHandedBackRecordStillPausesTheBatch(t *testing.T) {
	q := newQueued(t)
	q.relay.Ledger = &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, Now: q.clock.Now}
	armed := false
	q.useAzure(faultAfter{q.az, func() {
		if armed {
			armed = false                                                       // the first record's request only
			q.c.db.SetFault(dynamotest.AccessDenied.For("UpdateItem").Times(2)) // complete's two tries
		}
	}}, nil, nil)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	for i, id := range []string{"r_first", "r_second"} {
		if _, b := handle(q.fixture, portEvent(id, now+int64(i))); b["queued"] != true {
			t.Fatalf("click %s: %v, want queued", id, b)
		}
	}
	q.clock.Advance(11 * time.Second)
	_, msgs := q.batch(t, q.q.URL)
	if len(msgs) != 2 {
		t.Fatalf("received %d, want both", len(msgs))
	}
	if !strings.Contains(aws.ToString(msgs[0].Body), "r_first") {
		msgs[0], msgs[1] = msgs[1], msgs[0]
	}
	armed = true
	q.az.set(azdo.ErrThrottled, 60*time.Second)
	q.drainIn(t, msgs)
	if s := q.state(ledger.RunKey("r_first")); s != "inProgress" {
		t.Fatalf("r_first: ledger %q, want in progress under its handed-back claim (the DynamoDB fault did not hold)", s)
	}
	if n := q.az.requests(); n != 3 {
		t.Errorf("Azure got %d requests, want 3 (the two clicks, then r_first throttled for 60 s): r_second was sent while Azure's wait ran", n)
	}
}
