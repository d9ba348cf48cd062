package relay

// Reproductions of a hostile review of queued delivery: each test fails on the code
// it was written against and shows one defect.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/queue"
	"github.com/port-azure-relay/relay/shared/queue/sqstest"
)

// A body that ends (or starts) with whitespace is queued with the digest of the body
// as it came, but the message's body comes back from queue.Decode without that
// whitespace (json.RawMessage drops it): the ledger refuses the message as another
// body's, it goes to the dead-letter queue unsent, and the Port run is never told.
// A direct invoke from a file (`aws lambda invoke --payload fileb://event.json`) ends
// with a newline; Port's signature covers a body as sent, whitespace and all.
func TestABodyWithSurroundingWhitespaceIsDeliveredFromTheQueue(t *testing.T) {
	for name, ev := range map[string][]byte{
		"a direct invoke ending in a newline":    []byte(`{"id":"invoke-ws-1","env":"prod"}` + "\n"),
		"a signed Port body ending in a newline": httpEvent("POST", "/", strings.Replace(goodBody, "r_unit1", "r_ws", 1)+"\n", key, now),
	} {
		t.Run(name, func(t *testing.T) {
			q := newQueued(t)
			q.az.set(azdo.ErrThrottled, 10*time.Second)
			status, body := handle(q.fixture, ev)
			if body["queued"] != true {
				t.Fatalf("first try: %d %v, want it queued", status, body)
			}
			q.clock.Advance(11 * time.Second)
			q.az.set(nil, 0)
			q.reports.calls = nil
			failed, n := q.drain(t)
			if n != 1 {
				t.Fatalf("drain received %d, want 1", n)
			}
			_, dead := q.batch(t, q.q.DeadLetter)
			if q.az.requests() != 2 || len(dead) != 0 {
				t.Errorf("Azure got %d requests (want 2: the throttled one and the drained one), dead-letter queue holds %d (want 0), failed %v; log: %s",
					q.az.requests(), len(dead), failed, q.logs.String())
			}
		})
	}
}

// A drain invocation that dies mid-send (Lambda's timeout, an out-of-memory kill)
// leaves its Take in progress. SQS hands the record over again after its visibility
// timeout; past the dead invocation's deadline the ledger reads "may have queued", and
// the drain deletes the record as a duplicate, at INFO, telling the Port run nothing:
// the run keeps the label "Queued" and the promise "ends FAILURE by …" forever. (The
// direct path has Port's own failed HTTP call to show; a queued click has only this.)
// The record waits handBackGrace past the deadline first, for a copy a drain that sent
// nothing may have handed on; then the Port run is told.
func TestADrainThatDiedMidSendStillEndsThePortRun(t *testing.T) {
	q := newQueued(t)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	body := strings.Replace(goodBody, "r_unit1", "r_died", 1)
	if _, b := handle(q.fixture, httpEvent("POST", "/", body, key, now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	q.clock.Advance(11 * time.Second)
	// The first drain receives the record, takes the key and dies while Azure has the
	// request: its deadline passes with nothing written after the Take.
	if _, msgs := q.batch(t, q.q.URL); len(msgs) != 1 {
		t.Fatalf("received %d, want the queued record", len(msgs))
	}
	if _, err := q.relay.Ledger.Take(context.Background(), ledger.Record{Key: ledger.RunKey("r_died"), Target: "port_trigger", Door: "webhook", Digest: queue.Message{Kind: "httpapi", Body: []byte(body)}.Digest()}, false, time.Now().Add(-time.Millisecond)); err != nil {
		t.Fatalf("the dead drain's Take: %v", err)
	}
	q.az.set(nil, 0)
	q.reports.calls = nil
	q.clock.Advance(181 * time.Second) // the queue's visibility timeout: SQS hands it over again
	if failed, n := q.drain(t); n != 1 || len(failed) != 1 || len(q.reports.calls) != 0 {
		t.Fatalf("second drain, within the grace: received %d, failed %v, Port heard %q; want it back later, nothing told", n, failed, q.reports.calls)
	}
	if _, n := q.drain(t); n != 0 {
		t.Fatalf("received %d again at once; want it held to the grace's end", n)
	}
	q.clock.Advance(handBackGrace)
	if failed, n := q.drain(t); n != 1 || len(failed) != 0 {
		t.Fatalf("third drain, past the grace: received %d, failed %v", n, failed)
	}
	if q.az.requests() != 1 {
		t.Errorf("Azure got %d requests, want 1 (the throttled click): never sent again", q.az.requests())
	}
	line := lastLine(t, q.fixture)
	if len(q.reports.calls) == 0 {
		t.Errorf("the Port run heard nothing after its record was dropped (log %s %v): it still says it is queued", line["level"], line["msg"])
	}
}

// faultAfter is an Azure that sets a fault on the ledger as its request arrives: the
// ledger fails after the Take and before the outcome is written.
type faultAfter struct {
	*azure
	hit func()
}

func (a faultAfter) Deliver(ctx context.Context, webhook string, body, secret []byte) (azdo.Result, error) {
	if a.hit != nil {
		a.hit()
	}
	return a.azure.Deliver(ctx, webhook, body, secret)
}

// Azure throttles a queued delivery again, and the ledger refuses the write that puts
// it back to queued. Refused once, the write is made again and the delivery comes
// round. Refused for the whole drain, the record stays in progress under the drain's
// claim, which sent nothing: a copy of the message naming that claim takes the place
// of the record, takes the claim back when it comes round, and is delivered. Only when
// SQS refuses the copy too does the Port run end FAILURE (nothing was queued at Azure,
// nothing is on the queue); when SQS's answer is lost the copy may be there, so the
// record stays and the Port run is not told yet.
func TestAThrottledDrainWhoseRequeueWriteFailsIsNotLost(t *testing.T) {
	for _, tt := range []struct {
		name     string
		fault    dynamotest.Fault
		sqsFault sqstest.Fault
		ends     string // "again": the record comes round; "copy": a copy does; "fail": the Port run ends
	}{
		{"refused once: written again, delivered later", dynamotest.AccessDenied.For("UpdateItem").Times(1), sqstest.None, "again"},
		{"refused for the drain: a copy naming the claim is delivered later", dynamotest.AccessDenied, sqstest.None, "copy"},
		{"the queue refuses the copy too: the Port run ends FAILURE", dynamotest.AccessDenied, sqstest.AccessDenied.For("SendMessage"), "fail"},
		{"the queue's answer to the copy is lost: the record stays, nothing told", dynamotest.AccessDenied, sqstest.Down.For("SendMessage"), "unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueued(t)
			q.relay.Ledger = &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, Now: q.clock.Now}
			armed := false
			q.useAzure(faultAfter{q.az, func() {
				if armed {
					q.c.db.SetFault(tt.fault)
					q.sqs.SetFault(tt.sqsFault)
				}
			}}, nil, nil)
			q.az.set(azdo.ErrThrottled, 10*time.Second)
			body := strings.Replace(goodBody, "r_unit1", "r_requeue", 1)
			if _, b := handle(q.fixture, httpEvent("POST", "/", body, key, now)); b["queued"] != true {
				t.Fatalf("click: %v, want queued", b)
			}
			q.clock.Advance(11 * time.Second)
			armed = true
			q.az.set(azdo.ErrThrottled, 60*time.Second)
			q.reports.calls = nil
			failed, n := q.drain(t)
			armed = false
			q.c.db.SetFault(dynamotest.None)
			q.sqs.SetFault(sqstest.None)
			switch tt.ends {
			case "fail":
				got := strings.Join(q.reports.calls, "\n")
				if n != 1 || len(failed) != 0 || !strings.Contains(got, "fail r_requeue: Throttled") {
					t.Fatalf("drain: received %d, failed %v, Port heard %q; want it ended FAILURE, off the queue", n, failed, got)
				}
				if line := lastLine(t, q.fixture); line["ledgerError"] == nil || line["level"] != "ERROR" {
					t.Errorf("the drain's line %v: want the ledger's failure at ERROR", line)
				}
				return
			case "unknown":
				if got := strings.Join(q.reports.calls, "\n"); n != 1 || len(failed) != 1 || got != "" {
					t.Fatalf("drain: received %d, failed %v, Port heard %q; want the record kept and nothing told", n, failed, got)
				}
				return
			case "copy":
				if n != 1 || len(failed) != 0 || q.state(ledger.RunKey("r_requeue")) != "inProgress" {
					t.Fatalf("first drain: received %d, failed %v, ledger %q; want the record off the queue, in progress, its copy put",
						n, failed, q.state(ledger.RunKey("r_requeue")))
				}
			default:
				if n != 1 || len(failed) != 1 {
					t.Fatalf("first drain: received %d, failed %v; want it back later", n, failed)
				}
			}
			if got := strings.Join(q.reports.calls, "\n"); got != "" {
				t.Errorf("Port heard %q while the delivery waits; want nothing", got)
			}
			q.clock.Advance(61 * time.Second)
			q.az.set(nil, 0)
			q.drain(t)
			if q.az.requests() != 3 || q.state(ledger.RunKey("r_requeue")) != "delivered" {
				t.Errorf("Azure got %d requests, state %q: want 3 (click 429, drain 429, drain delivered) and delivered",
					q.az.requests(), q.state(ledger.RunKey("r_requeue")))
			}
		})
	}
}

// A queued delivery's ledger record keeps the expiry of its claim (LEDGER_TTL), and
// nothing ties LEDGER_TTL to QUEUE_MAX_AGE: LEDGER_TTL=1h with QUEUE_MAX_AGE=2h loads.
// Once DynamoDB's TTL deletes the record of a delivery still well within its maximum
// age, the drain finds no record: the delivery goes to the dead-letter queue unsent,
// a redrive cannot send it either, and the Port run, told it starts or fails by the
// maximum age, hears nothing.
func TestAQueuedDeliveryOutlivesTheLedgerTTL(t *testing.T) {
	vars := map[string]string{"PORT_SECRET_ID": "port/client-secret", "AZURE_DEVOPS_ORG": "contoso", "AZURE_DEVOPS_WEBHOOK": "port-deploy",
		"LEDGER_TABLE": "relay-ledger", "LEDGER_TTL": "1h", "QUEUE_MAX_AGE": "2h",
		"DELIVERY_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/delivery", "DELIVERY_DLQ_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/delivery-dlq"}
	cfg, err := LoadConfig(func(k string) string { return vars[k] })
	if err != nil {
		return // refusing the combination is one fix; then the record must outlive the age (the other)
	}
	t.Logf("LoadConfig accepts LEDGER_TTL %s with QUEUE_MAX_AGE %s", cfg.LedgerTTL, cfg.MaxAge)

	q := newQueued(t)
	q.relay.MaxAge = cfg.MaxAge
	q.relay.Ledger = &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, TTL: time.Hour, Now: q.clock.Now}
	q.az.set(azdo.ErrThrottled, 10*time.Minute)
	if _, b := handle(q.fixture, portEvent("r_ttl", now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	q.clock.Advance(70 * time.Minute) // Azure throttled a while; well within the 2 h maximum age
	q.c.db.Sweep(q.clock.Now())       // DynamoDB's TTL passes, as it may any time after expiresAt
	q.az.set(nil, 0)
	q.reports.calls = nil
	q.drain(t)
	_, dead := q.batch(t, q.q.DeadLetter)
	if q.az.requests() != 2 {
		t.Errorf("Azure got %d requests (want 2: delivered at 70 min of a 2 h maximum age); dead-letter queue %d; Port heard %q",
			q.az.requests(), len(dead), q.reports.calls)
	}
}

// Azure slow: it delays a request before it answers, and then may throttle it. The
// drain sends a batch's records one after another on one work budget, and starts a
// record however little of it is left: the second record of a batch gets the scraps,
// its request is sent, the budget ends before Azure answers, and a delivery the queue
// could have kept safely becomes "may have been queued" for good. Here Azure then
// answers 429 (nothing queued): the delivery is never made, and the Port run is left
// following a pipeline run that does not exist.
func TestADrainDoesNotStartARecordItCannotFinish(t *testing.T) {
	q := newQueued(t)
	az := azdotest.New("contoso", azdotest.Webhook{Name: "port_trigger"}, azdotest.Webhook{Name: "deploy"})
	t.Cleanup(az.Close)
	q.useAzure(&azdo.Client{BaseURL: az.URL, Org: "contoso", HTTP: azdo.NewHTTPClient(nil), Backoff: 5 * time.Millisecond, MaxWait: 2 * time.Second}, nil, nil)
	az.Script(azdotest.Status(429).RetryAfter(30), azdotest.Status(429).RetryAfter(30))
	for i, id := range []string{"r_slow1", "r_slow2"} {
		if _, b := handle(q.fixture, portEvent(id, now+int64(i))); b["queued"] != true {
			t.Fatalf("click %s: %v, want queued", id, b)
		}
	}
	q.clock.Advance(31 * time.Second)
	// Azure delays each request 2.5 s: it takes the first, and throttles the second.
	az.Script(azdotest.Delay(2500*time.Millisecond), azdotest.Status(429).RetryAfter(60).After(2500*time.Millisecond))
	ev, _ := q.batch(t, q.q.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second) // the function's timeout, scaled down
	defer cancel()
	q.reports.calls = nil
	q.relay.Handle(ctx, "batch", ev)
	if s := q.state(ledger.RunKey("r_slow2")); s != "queued" {
		t.Errorf("the second record: ledger %q, want queued (left for the next invocation); Port heard %q", s, q.reports.calls)
	}
}

// A body that would fit on the delivery queue with its header, but not on the
// dead-letter queue with the two members Bury adds: past the maximum age it could be
// neither sent nor buried. The queue keeps room for them, so such a body is not put
// aside at all: it fails at once, its Port run told, as without a queue.
func TestAnExpiredDeliveryTooLargeToBuryStillEndsThePortRun(t *testing.T) {
	q := newQueued(t)
	q.relay.MaxAge = time.Hour
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	const head = `{"port_context":{"runId":"r_big"},"pad":"`
	probe := queue.Message{Door: "webhook", Target: "port_trigger", Kind: "httpapi", RunID: "r_big", Key: ledger.RunKey("r_big"), Queued: q.clock.Now(), Body: []byte(head + `"}`)}
	pad := (1 << 20) - 10 - len(probe.Encode()) // the queued message would be 10 bytes under SQS's 1 MiB
	body := head + strings.Repeat("x", pad) + `"}`
	status, b := handle(q.fixture, httpEvent("POST", "/", body, key, now))
	if status != 502 || b["queued"] != nil {
		t.Fatalf("click: %d %v, want 502, not queued", status, b)
	}
	if got := strings.Join(q.reports.calls, "\n"); !strings.Contains(got, "fail r_big: Throttled") {
		t.Errorf("Port heard %q; want the run ended FAILURE", got)
	}
	if line := lastLine(t, q.fixture); !strings.Contains(fmt.Sprint(line["queueError"]), "larger than the queue takes") || line["Unqueued"] != float64(1) {
		t.Errorf("log line %v: want the queue's refusal named and counted", line)
	}
}

// The Port run of a queued delivery is told it starts, or ends FAILURE, by the maximum
// age. A drained record that Azure throttles again is made visible after Azure's whole
// Retry-After, up to SQS's 12 hours, whatever is left of its maximum age: with
// QUEUE_MAX_AGE 1h and a Retry-After of 3 hours, the run ends three hours late.
func TestARetryAfterLongerThanTheAgeLeftStillEndsTheRunOnTime(t *testing.T) {
	q := newQueued(t)
	q.relay.MaxAge = time.Hour
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, portEvent("r_late", now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	q.clock.Advance(11 * time.Second)
	q.az.set(azdo.ErrThrottled, 3*time.Hour)
	q.drain(t)
	q.reports.calls = nil
	for range 7 { // ten minutes at a time, to just past the maximum age
		q.clock.Advance(10 * time.Minute)
		q.drain(t)
	}
	if got := strings.Join(q.reports.calls, "\n"); !strings.Contains(got, "fail r_late") {
		t.Errorf("70 minutes after the click (QUEUE_MAX_AGE 1h): ledger %q, Port heard %q; want the run ended FAILURE", q.state(ledger.RunKey("r_late")), got)
	}
}

// When the queue cannot take a delivery (SQS down, a policy or key that refuses the
// relay, or a body with a character SQS refuses, such as U+FFFF, valid in JSON and in
// UTF-8), spill drops the queue's error: the click is answered and logged exactly as
// without a queue. No log field or metric says the queue failed, so an operator
// cannot tell a delivery queue that refuses every message from Azure throttling.
func TestAQueueThatRefusesADeliveryIsLogged(t *testing.T) {
	for name, setup := range map[string]func(q *queued) string{
		"SQS unreachable": func(q *queued) string { q.sqs.SetFault(sqstest.Down); return goodBody },
		"a body with U+FFFF": func(q *queued) string {
			return `{"note":"` + "\uffff" + `","port_context":{"runId":"r_unit1"}}`
		},
	} {
		t.Run(name, func(t *testing.T) {
			q := newQueued(t)
			body := setup(q)
			q.az.set(azdo.ErrThrottled, 30*time.Second)
			status, _ := handle(q.fixture, httpEvent("POST", "/", body, key, now))
			line := q.logs.String()
			if status != http.StatusBadGateway {
				t.Fatalf("status %d, want 502 as without a queue", status)
			}
			if !strings.Contains(strings.ToLower(line), "queue") && !strings.Contains(line, "SQS") {
				t.Errorf("the log says nothing of the queue's failure: %s", line)
			}
		})
	}
}

// Take binds a queued message to its record by the body's digest alone: the message's
// door and target are trusted as they come. A message with a queued delivery's body
// and another target (written by anyone who can send to the delivery queue, or sent
// in an SQS event by anyone with lambda:InvokeFunction; the body is what the queue
// holds) takes the key and starts the other pipeline, and the real message then finds
// it delivered: the Port run's one run is a run of the wrong pipeline.
func TestAQueuedDeliveryGoesOnlyWhereItWasSent(t *testing.T) {
	q := newQueued(t)
	var got []string
	q.useAzure(deliverFunc(func(_ context.Context, webhook string, _, _ []byte) (azdo.Result, error) {
		got = append(got, webhook)
		if len(got) == 1 {
			return azdo.Result{}, &azdo.Error{Status: 429, Attempts: 1, Err: azdo.ErrThrottled, RetryAfter: 10 * time.Second}
		}
		return azdo.Result{Status: 200, Attempts: 1}, nil
	}), nil, nil)
	body := strings.Replace(goodBody, "r_unit1", "r_where", 1)
	if _, b := handle(q.fixture, httpEvent("POST", "/webhooks/port_trigger", body, key, now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	forged := queue.Message{Door: "webhook", Target: "deploy", Kind: "httpapi", RunID: "r_where", Key: ledger.RunKey("r_where"), Queued: q.clock.Now(), Body: []byte(body)}
	if err := q.q.Put(context.Background(), forged, 0); err != nil {
		t.Fatal(err)
	}
	q.drain(t) // the forged message is visible at once; the real one after Azure's 10 s
	q.clock.Advance(11 * time.Second)
	q.drain(t)
	if len(got) != 2 {
		t.Errorf("Azure got %v, want the throttled click and one delivery", got)
	}
	for _, w := range got[1:] {
		if w != "port_trigger" {
			t.Errorf("Azure got %v: the delivery went to %q, want port_trigger alone", got, w)
		}
	}
}

// DynamoDB takes the drain's Take and its answer is lost (a network blip, the SDK's
// retries used up): the drain sends nothing and lets the record come round. The key
// is left in progress under that invocation's deadline, so when the record comes
// round the ledger reads "may have queued" and it is dropped as a duplicate: a
// delivery certainly never sent is never sent, and its Port run never told.
func TestATakeWhoseAnswerIsLostDoesNotLoseTheDelivery(t *testing.T) {
	q := newQueued(t)
	q.relay.Ledger = &ledger.Ledger{DB: q.c.db.Client(), Table: ledgerTable, Now: q.clock.Now}
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, portEvent("r_lost", now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	q.clock.Advance(11 * time.Second)
	q.az.set(nil, 0)
	q.c.db.SetFault(dynamotest.AnswerLost.For("UpdateItem"))
	if _, n := q.drain(t); n != 1 || q.az.requests() != 1 {
		t.Fatalf("drain with the Take's answers lost: received %d, Azure %d; want it back, unsent", n, q.az.requests())
	}
	q.c.db.SetFault(dynamotest.None)
	q.clock.Advance(181 * time.Second) // the visibility timeout
	q.reports.calls = nil
	q.drain(t)
	if q.az.requests() != 2 {
		t.Errorf("Azure got %d requests, want 2 (the throttled click, then the delivery); ledger %q; Port heard %q; log %.400s",
			q.az.requests(), q.state(ledger.RunKey("r_lost")), q.reports.calls, q.logs.String())
	}
}

// throttledRuns is an Azure whose Runs API answers as the queue tests' azure does.
type throttledRuns struct{ *azure }

func (a throttledRuns) Run(ctx context.Context, _ azdo.Pipeline, body []byte, _ azdo.Auth) (azdo.RunResult, error) {
	if _, err := a.Deliver(ctx, "", body, nil); err != nil {
		return azdo.RunResult{}, err
	}
	return azdo.RunResult{Status: 200, Attempts: 1, ID: 7}, nil
}

// A pipeline removed from AZURE_DEVOPS_PIPELINES while its delivery waits: the Port
// run ends FAILURE with the sentence and label of a webhook refused by path ("the
// path names a webhook that is not in AZURE_DEVOPS_WEBHOOKS", "Unknown webhook"):
// neither is what happened, nor where to look.
func TestARemovedPipelineIsNamedAsAPipeline(t *testing.T) {
	q := newQueued(t)
	q.secrets.creds.AzurePAT = "pat"
	deploy := []azdo.Pipeline{{Name: "deploy", Project: "Payments", ID: 42}}
	q.useAzure(throttledRuns{q.az}, deploy, nil)
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, httpEvent("POST", "/pipelines/deploy", goodBody, key, now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	q.useAzure(throttledRuns{q.az}, nil, nil) // the operator removes the pipeline and deploys
	q.clock.Advance(11 * time.Second)
	q.reports.calls = nil
	q.drain(t)
	got := strings.Join(q.reports.calls, "\n")
	if !strings.Contains(got, "fail r_unit1") || strings.Contains(got, "webhook") || !strings.Contains(got, "AZURE_DEVOPS_PIPELINES") {
		t.Errorf("Port heard %q: want FAILURE naming the pipeline and AZURE_DEVOPS_PIPELINES", got)
	}
}

// Past the maximum age the Port run ends FAILURE ("not started"), and Port then
// refuses every change to it. A redrive after the fix sends the delivery (documented:
// an expired delivery, never sent, is sent) and the drain drops Port's refusal of the
// success: the pipeline runs while its Port run says, for good, that it was not
// started. A user who re-ran the action after that FAILURE has two runs.
// docs/operations.md states this trade-off; it breaks "the Port run ends with the
// pipeline's truth", so it is reproduced here for a decision.
func TestARedrivenDeliveryDoesNotRunBehindAFailedPortRun(t *testing.T) {
	q := newQueued(t)
	port := porttest.New("id", key)
	t.Cleanup(port.Close)
	port.CreateRuns("r_redrive")
	q.relay.Report = &portapi.Client{BaseURL: port.URL}
	q.relay.MaxAge = time.Hour
	q.az.set(azdo.ErrThrottled, 10*time.Second)
	if _, b := handle(q.fixture, portEvent("r_redrive", now)); b["queued"] != true {
		t.Fatalf("click: %v, want queued", b)
	}
	q.clock.Advance(61 * time.Minute)
	q.drain(t)
	q.redrive(t)
	q.az.set(nil, 0)
	q.drain(t)
	run, _ := port.Run("r_redrive")
	if q.az.requests() == 2 && run.Status == "FAILURE" {
		t.Errorf("the redriven delivery started the pipeline, and its Port run says %s %q: %q", run.Status, run.StatusLabel, run.Summary)
	}
}
