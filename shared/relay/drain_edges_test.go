package relay

// Edges of queued delivery: each test shows one way a delivery could be lost, sent
// twice or told to the wrong Port run, and that it is not.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/queue"
	"github.com/port-azure-relay/relay/shared/secret"
)

// takeThen is the relay's ledger with a hook run as soon as Take has answered: the
// network or DynamoDB changes between the drain's claim and its next write.
type takeThen struct {
	Ledger
	after func()
}

func (l takeThen) Take(ctx context.Context, r ledger.Record, redriven bool, deadline time.Time) (ledger.Claim, error) {
	c, err := l.Ledger.Take(ctx, r, redriven, deadline)
	l.after()
	return c, err
}

func heard(q *queued) string {
	q.reports.mu.Lock()
	defer q.reports.mu.Unlock()
	return strings.Join(q.reports.calls, "\n")
}

// A record that comes round past QUEUE_MAX_AGE (its own wait is capped to bring it back
// just after it) behind a record Azure throttles again in the same batch is not
// expired: drain gives it the first record's pause, which is capped by the first
// record's age left, not its own. Here the older click (QUEUE_MAX_AGE 2h) comes round at
// 2h0m1s behind a newer one that Azure tells to wait 3 h: it is pushed back two more
// hours. Its Port run, promised "ends FAILURE by" its maximum age, hears nothing then;
// by the time it comes round its ledger record (kept to its age and an hour) has
// expired, DynamoDB's TTL deletes it, the message is buried as "no record", and the
// Port run never hears anything: it says "Queued" for good.
// Correct: a follower past its maximum age is expired at once (its Port run ended
// FAILURE), and a follower's pause is capped by its own age left.
func TestAnExpiredRecordBehindAThrottledOneEndsOnTime(t *testing.T) {
	q := newQueued(t)
	q.relay.MaxAge = 2 * time.Hour
	q.relay.Ledger = &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, TTL: time.Hour, Now: q.clock.Now}
	start := q.clock.Now()
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, portEvent("r_older", now)); b["queued"] != true {
		t.Fatalf("older click: %v, want queued", b)
	}
	q.clock.Advance(11 * time.Second)
	q.az.set(azdo.ErrThrottled, 3*time.Hour) // the older one is held to just past its age: 2 h 1 s
	if failed, n := q.drain(t); n != 1 || len(failed) != 1 {
		t.Fatalf("first drain: received %d, failed %v", n, failed)
	}
	q.clock.Advance(2*time.Hour - 11*time.Second - 10*time.Second) // 1 h 59 min 50 s
	q.az.set(azdo.ErrThrottled, 11*time.Second)
	if _, b := handle(q.fixture, portEvent("r_newer", now+1)); b["queued"] != true {
		t.Fatalf("newer click: %v, want queued", b)
	}
	q.clock.Advance(11 * time.Second) // 2 h 1 s: both visible
	_, msgs := q.batch(t, q.q.URL)
	if len(msgs) != 2 {
		t.Fatalf("received %d, want both", len(msgs))
	}
	var newerFirst []sqstypes.Message
	for _, m := range msgs {
		if strings.Contains(aws.ToString(m.Body), "r_newer") {
			newerFirst = append([]sqstypes.Message{m}, newerFirst...)
		} else {
			newerFirst = append(newerFirst, m)
		}
	}
	q.az.set(azdo.ErrThrottled, 3*time.Hour)
	q.reports.calls = nil
	q.drainIn(t, newerFirst)
	// When does its Port run hear anything? Azure opens; DynamoDB's TTL may delete an
	// expired record any time after expiresAt: swept each minute.
	q.az.set(nil, 0)
	for range 150 {
		if strings.Contains(heard(q), "fail r_older") {
			break
		}
		q.clock.Advance(time.Minute)
		q.c.db.Sweep(q.clock.Now())
		q.drain(t)
	}
	at := q.clock.Now().Sub(start).Round(time.Minute)
	switch got := heard(q); {
	case !strings.Contains(got, "fail r_older"):
		_, dead := q.batch(t, q.q.DeadLetter)
		t.Errorf("%s after the click (QUEUE_MAX_AGE 2h; it came round at 2h0m1s behind a throttled record): Port never heard of r_older; its ledger record %q, dead-letter queue %d (%s)",
			at, q.state(ledger.RunKey("r_older")), len(dead), reasons(dead))
	case at > 2*time.Hour+2*time.Minute:
		t.Errorf("r_older's Port run ended FAILURE %s after the click; want by its maximum age, 2h", at)
	}
}

func reasons(msgs []sqstypes.Message) string {
	var out []string
	for _, m := range msgs {
		dm, err := queue.Decode([]byte(aws.ToString(m.Body)))
		if err != nil {
			out = append(out, "unreadable")
			continue
		}
		out = append(out, dm.RunID+":"+dm.Reason)
	}
	return strings.Join(out, ", ")
}

// A drain's Take lands and its answer is lost (the existing fix), and then DynamoDB
// throttles the write that gives the claim back: the record stays in progress under
// the drain's deadline. The drain sent nothing, but when the record comes round the
// ledger reads "may have been queued": it is dropped unsent, and its Port run is told
// to look for a pipeline run in Azure DevOps that does not exist (for a webhook the run
// is left following it, so it never ends).
// Correct: a delivery the relay certainly did not send is sent when it comes round
// (e.g. the drain that lost its claim's answer puts the message back carrying that
// claim's owner, and Take accepts an in-progress record held by that owner).
func TestATakeAnswerLostThenAThrottledGiveBackIsNotDropped(t *testing.T) {
	q := newQueued(t)
	inner := &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, Now: q.clock.Now}
	q.relay.Ledger = inner
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, portEvent("r_blip", now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	deliveredAfterALostTake(t, q, inner, "r_blip")
}

// A redriven delivery (an operator moved it back from the dead-letter queue) that
// Azure throttles again is put aside afresh: drainOne writes the record back to
// queued, ignores that write's failure, and puts a new message. With DynamoDB
// throttling that write, the record stays in progress under the redrive's deadline,
// and when the new message comes round the ledger reads "may have been queued": it is
// dropped, never sent, though Azure only ever throttled it.
// Correct (as docs/queue.md promises a redrive): it is sent once Azure takes it; when
// the record cannot go back to queued, no fresh message is put that the ledger will
// read as maybe sent (e.g. the redriven message is kept and comes round again).
func TestARedrivenRequeueTheLedgerRefusesIsNotDropped(t *testing.T) {
	q := newQueued(t)
	inner := &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, Now: q.clock.Now}
	q.relay.Ledger = inner
	q.relay.MaxAge = time.Hour
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, lambdatest.ScheduledEvent("nightly-redrive")); b["queued"] != true {
		t.Fatalf("event: %v, want queued", b)
	}
	q.clock.Advance(61 * time.Minute)
	if failed, n := q.drain(t); n != 1 || len(failed) != 0 {
		t.Fatalf("expiry drain: received %d, failed %v", n, failed)
	}
	m := q.redrive(t)
	// Azure still throttles, and DynamoDB throttles the ledger's writes after the Take.
	q.relay.Ledger = takeThen{inner, func() { q.c.db.SetFault(dynamotest.Throttle.For("UpdateItem")) }}
	if _, n := q.drain(t); n != 1 || q.az.requests() != 2 {
		t.Fatalf("redrive drain: received %d, Azure %d; want it sent and throttled", n, q.az.requests())
	}
	q.c.db.SetFault(dynamotest.None)
	q.relay.Ledger = inner
	q.az.set(nil, 0)
	for range 3 { // until it comes round, well past the redrive's deadline
		q.clock.Advance(time.Minute)
		q.drain(t)
	}
	if q.az.requests() != 3 {
		t.Errorf("Azure got %d requests (want 3: throttled, redriven and throttled, then delivered); ledger %q; log %.600s",
			q.az.requests(), q.state(ledger.EventKey(eventID(t, m.Body))), q.logs.String())
	}
}

func eventID(t *testing.T, body []byte) string {
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.ID
}

// An AWS event Azure throttles is put aside: its record goes to queued first. When that
// write lands and its answers are lost, spill gives up before the message is written
// and record() tries to release the claim for Lambda's retry; Release deletes only an
// in-progress record, so the key stays queued with no message on the queue. Lambda
// retries the event (a function error was answered): the retry finds the key queued and
// answers a result "queued, duplicate", so Lambda stops, and the event is never
// delivered: nothing will ever drain it.
// Correct: the retry is delivered (Release, or spill's fallback, also frees a key this
// claim put in queued), or the first invocation answers queued only when a message is.
func TestAnEventWhoseQueuedWriteAnswerIsLostIsNotLost(t *testing.T) {
	q := newQueued(t)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	ev := lambdatest.ScheduledEvent("nightly-lost")
	q.c.db.SetFault(dynamotest.AnswerLost.For("UpdateItem"))
	status, body := handle(q.fixture, ev)
	q.c.db.SetFault(dynamotest.None)
	if body["functionError"] == nil {
		t.Fatalf("first invocation: %d %v; want a function error (nothing queued) for this reproduction", status, body)
	}
	q.az.set(nil, 0)
	status, body = handle(q.c.container(nil), ev) // Lambda's retry, a minute later
	q.clock.Advance(time.Hour)
	_, msgs := q.batch(t, q.q.URL)
	if body["forwarded"] != true && len(msgs) == 0 {
		t.Errorf("Lambda's retry: %d %v, with %d messages on the queue and ledger %q; want it delivered (nothing is queued)",
			status, body, len(msgs), q.state(ledger.EventKey(eventID(t, ev))))
	}
}

// A click expired on the queue: its Port run ended FAILURE ("run the action again once
// Azure DevOps takes runs"), and the user ran it again, which was delivered. An
// operator then redrives the dead-letter queue while Port's API cannot be reached:
// endedInPort reads "not ended" from any failure but RunNotFound, and the old click is
// sent too. Two pipeline runs for one intent, one of them behind a Port run that says
// it was not started.
// Correct: a redriven click is sent only when Port says its run has not ended; when Port
// cannot say, it comes round later.
func TestARedriveWhilePortIsDownDoesNotStartAnEndedClick(t *testing.T) {
	q := newQueued(t)
	port := porttest.New("id", key)
	t.Cleanup(port.Close)
	port.CreateRuns("r_expired", "r_again")
	q.relay.Report = &portapi.Client{BaseURL: port.URL}
	q.relay.MaxAge = time.Hour
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, portEvent("r_expired", now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	q.clock.Advance(61 * time.Minute)
	q.drain(t)
	if run, _ := port.Run("r_expired"); run.Status != "FAILURE" {
		t.Fatalf("expired click's run: %+v, want FAILURE", run)
	}
	q.az.set(nil, 0)
	if _, b := handle(q.fixture, portEvent("r_again", now+1)); b["forwarded"] != true { // the user runs it again
		t.Fatalf("second click: %v, want forwarded", b)
	}
	q.redrive(t)
	q.relay.Report = &portapi.Client{BaseURL: "http://127.0.0.1:1"} // Port's API unreachable meanwhile
	q.drain(t)
	if n := q.az.requests(); n != 2 {
		t.Errorf("Azure got %d requests, want 2 (the throttled click and the user's second click): the redriven click, whose Port run ended FAILURE, was started while Port could not be asked", n)
	}
}

// The message's RunID is trusted: drainOne reports to m.RunID, which neither Take nor
// the body binds. A message with a queued delivery's key, body and target but another
// run id (anyone who can send to the delivery queue) is delivered, correctly, and its
// outcome told to the other Port run; the real run is then a duplicate and never told:
// it says "Queued" forever, and the other run says its pipeline was accepted.
// Correct: the run told is the one the ledger or the digest-bound body names (read the
// run id from the body, as the direct path does, or compare it with the record's).
func TestAQueuedOutcomeGoesToTheRunTheLedgerNames(t *testing.T) {
	q := newQueued(t)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	body := strings.Replace(goodBody, "r_unit1", "r_real", 1)
	if _, b := handle(q.fixture, httpEvent("POST", "/", body, key, now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	forged := queue.Message{Door: "webhook", Target: "port_trigger", Kind: "httpapi", RunID: "r_victim", Key: ledger.RunKey("r_real"), Queued: q.clock.Now(), Body: []byte(body)}
	if err := q.q.Put(context.Background(), forged, 0); err != nil {
		t.Fatal(err)
	}
	q.az.set(nil, 0)
	q.reports.calls = nil
	q.drain(t) // the altered copy, visible at once
	q.clock.Advance(11 * time.Second)
	q.drain(t) // the real message
	got := heard(q)
	if strings.Contains(got, "r_victim") || !strings.Contains(got, "r_real") {
		t.Errorf("Port heard %q: want r_real told its pipeline started, r_victim untouched", got)
	}
}

// A redriven delivery whose secret cannot be read is put back to queued and made
// visible again at once: its wait is capped by its age left, which for a redriven
// (expired) message is negative. While Secrets Manager is unreachable, every receive
// comes straight back: the record is taken, written back and made visible in a loop,
// a DynamoDB write pair and an SQS call each turn, and its receive count climbs to
// SQS's maxReceiveCount (1000), when SQS moves it to the dead-letter queue without the
// relay's reason or its Port run told.
// Correct: it waits at least minWait (10 s) like any other record the secret held back.
func TestARedriveWithoutTheSecretDoesNotComeStraightBack(t *testing.T) {
	q := newQueued(t)
	q.relay.MaxAge = time.Hour
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, lambdatest.ScheduledEvent("nightly-nosecret")); b["queued"] != true {
		t.Fatalf("event: %v, want queued", b)
	}
	q.clock.Advance(61 * time.Minute)
	q.drain(t)
	q.redrive(t)
	q.secrets.err = secret.ErrUnavailable
	turns := 0
	for range 5 { // the clock does not move
		if _, n := q.drain(t); n == 0 {
			break
		}
		turns++
	}
	if turns > 1 {
		t.Errorf("with the secret unreadable, the redriven record was received %d times without the clock moving; want it to wait", turns)
	}
}

// A click Azure tells to wait longer than SQS's 15-minute delay (or than QUEUE_MAX_AGE)
// is answered 202 with "retryAfter" set to Azure's whole Retry-After, here 3 hours,
// though the queue tries it again after 15 minutes and its Port run ends by the
// maximum age (1 h) at the latest: the answer says when Azure asked, not when the
// relay tries it again, as reply's field promises.
// Correct: retryAfter is the delay the message was actually put aside for.
func TestTheQueuedAnswerSaysWhenItIsTriedAgain(t *testing.T) {
	q := newQueued(t)
	q.relay.MaxAge = time.Hour
	q.az.set(azdo.ErrThrottled, 3*time.Hour)
	status, body := handle(q.fixture, portEvent("r_later", now))
	if status != 202 || body["queued"] != true {
		t.Fatalf("click: %d %v, want 202 queued", status, body)
	}
	q.clock.Advance(queue.MaxDelay)
	_, msgs := q.batch(t, q.q.URL)
	if got := body["retryAfter"].(float64); len(msgs) == 1 && time.Duration(got)*time.Second > queue.MaxDelay {
		t.Errorf("answered retryAfter %v s (%s), but the delivery was tried again after %s", got, time.Duration(got)*time.Second, queue.MaxDelay)
	}
}

// deliveredAfterALostTake drains a queued click whose Take lands with every answer lost,
// DynamoDB then throttling the write that gives the claim back, and checks that the click
// is sent nothing then, and once when it comes round.
func deliveredAfterALostTake(t *testing.T, q *queued, inner *ledger.Ledger, runID string) {
	t.Helper()
	q.clock.Advance(11 * time.Second)
	q.az.set(nil, 0)
	q.c.db.SetFault(dynamotest.AnswerLost.For("UpdateItem"))
	q.relay.Ledger = takeThen{inner, func() { q.c.db.SetFault(dynamotest.Throttle.For("UpdateItem")) }}
	if _, n := q.drain(t); n != 1 || q.az.requests() != 1 {
		t.Fatalf("drain: received %d, Azure %d; want it back (itself or a copy naming its claim), unsent", n, q.az.requests())
	}
	q.c.db.SetFault(dynamotest.None)
	q.relay.Ledger = inner
	q.reports.calls = nil
	for range 10 { // past the queue's visibility timeout, whenever it comes round
		q.clock.Advance(time.Minute)
		q.drain(t)
	}
	if q.az.requests() != 2 || q.state(ledger.RunKey(runID)) != "delivered" {
		t.Errorf("Azure got %d requests (want 2: the throttled click, then the delivery), ledger %q; Port heard %q",
			q.az.requests(), q.state(ledger.RunKey(runID)), heard(q))
	}
}
