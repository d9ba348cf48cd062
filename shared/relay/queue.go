package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/payload"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/queue"
	"github.com/port-azure-relay/relay/shared/secret"
)

// Queue puts aside a delivery Azure cannot take now; *queue.Queue is one.
type Queue interface {
	Put(ctx context.Context, m queue.Message, delay time.Duration) error
	Later(ctx context.Context, handle string, d time.Duration) error
	Bury(ctx context.Context, m queue.Message, reason string, now time.Time) error
	BuryRaw(ctx context.Context, body []byte) error
}

// Queued delivery's defaults and bounds.
const (
	DefaultMaxAge = time.Hour
	MinMaxAge     = time.Minute
	MaxMaxAge     = 24 * time.Hour
	// minWait is the least a queued delivery waits before it is tried again; with
	// maxAge/maxTries it keeps a delivery's receives below SQS's maxReceiveCount (1000)
	// until its age governs.
	minWait  = 10 * time.Second
	maxTries = 500
	// buryKeep is how long the ledger keeps a dead-lettered delivery's record: the
	// dead-letter queue's 14 days and a day, so that a redrive finds it.
	buryKeep = 15 * 24 * time.Hour
)

// ErrTooOld: a queued delivery waited longer than QUEUE_MAX_AGE; it was not sent.
var ErrTooOld = errors.New("queued too long: Azure DevOps did not take it in time")

// spillable reports whether err leaves nothing queued at Azure and a later attempt
// can succeed: Azure throttling or unavailable, nothing sent in time, Entra or STS
// unreachable. A refusal (credentials, unknown pipeline, a parameter) fails at once,
// and an ambiguous failure is never tried again.
func spillable(err error) bool {
	return errors.Is(err, azdo.ErrThrottled) || errors.Is(err, azdo.ErrUnavailable) || errors.Is(err, azdo.ErrNoTime) ||
		errors.Is(err, entra.ErrUnavailable) || errors.Is(err, entra.ErrSTSUnavailable)
}

// wait is how long a delivery that err refused waits before it is tried again: what
// Azure asked for, and at least minWait and maxAge/maxTries.
func (r *Relay) wait(err error) time.Duration {
	var azErr *azdo.Error
	w := minWait
	if errors.As(err, &azErr) {
		w = max(w, azErr.RetryAfter)
	}
	return max(w, r.maxAge()/maxTries)
}

// firstWait is how long a delivery err refused waits on the queue before its first
// try: what Azure asked for, when it asked; else wait(err). No receive comes before
// it, so the least wait between receives does not hold it back while Azure is open.
func (r *Relay) firstWait(err error) time.Duration {
	var azErr *azdo.Error
	if errors.As(err, &azErr) && azErr.RetryAfter > 0 {
		return azErr.RetryAfter
	}
	return r.wait(err)
}

func (r *Relay) maxAge() time.Duration {
	if r.MaxAge <= 0 {
		return DefaultMaxAge
	}
	return r.MaxAge
}

func (r *Relay) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// spill puts aside, on the delivery queue, a delivery that sendErr says Azure cannot
// take now: the ledger's record goes to queued first (so that no message exists that
// the ledger does not know), then the message. When the queue cannot be written, the
// record ends refused, and the invocation is answered as without a queue.
func (r *Relay) spill(invocation context.Context, claim ledger.Claim, d done, s Sent, sendErr error) (time.Duration, bool) {
	if r.Queue == nil || !spillable(sendErr) || len(d.body) == 0 {
		return 0, false
	}
	wait := r.firstWait(sendErr)
	ctx, cancel := ledgerContext(invocation)
	defer cancel()
	digest := ledger.Digest(d.body)
	if r.Ledger.Complete(ctx, claim, ledger.Record{State: ledger.Queued, AzureStatus: s.Status, Cause: answerKey(sendErr), Digest: digest}) != nil {
		return 0, false // record() then writes the refusal, or leaves the claim to its deadline
	}
	m := queue.Message{Door: d.target.Door(), Target: d.target.Name(), Kind: string(d.kind), RunID: d.runID, Key: claim.Key, Queued: r.now(), Body: d.body}
	// The message has a budget of its own: a slow ledger write must not leave it too
	// little, and fail a delivery that could wait.
	putCtx, putCancel := ledgerContext(invocation)
	defer putCancel()
	if err := r.Queue.Put(putCtx, m, wait); err == nil {
		return wait, true
	}
	if errors.Is(r.Ledger.Complete(ctx, claim, ledger.Record{State: ledger.Refused, AzureStatus: s.Status, Cause: answerKey(sendErr)}), ledger.ErrNotOwner) {
		// The message was written after all, its answer lost, and the drain has taken it.
		return wait, true
	}
	return 0, false
}

// drain sends a batch of the delivery queue, one record after another, and answers
// which records must come round again (SQS's batch item failures). A record Azure
// cannot take yet comes back when Azure said, and the rest of the batch waits with
// it: Azure is not asked again before then.
func (r *Relay) drain(ctx, invocation context.Context, req event.Request) event.Response {
	var failures []string
	var pause time.Duration
	for _, rec := range req.Records {
		start := time.Now()
		if pause > 0 || ctx.Err() != nil {
			if pause > 0 {
				_ = r.Queue.Later(ctx, rec.Receipt, pause)
			}
			failures = append(failures, rec.ID)
			continue
		}
		d, again := r.drainOne(ctx, invocation, rec)
		if again > 0 {
			failures = append(failures, rec.ID)
			if errors.Is(d.err, azdo.ErrThrottled) || spillable(d.err) {
				pause = again
			}
		}
		r.logLine(rec.ID, d, d.response().Status, time.Since(start))
	}
	items := make([]map[string]string, 0, len(failures))
	for _, id := range failures {
		items = append(items, map[string]string{"itemIdentifier": id})
	}
	body, _ := json.Marshal(map[string]any{"batchItemFailures": items})
	return event.Response{Kind: event.Queue, Status: 200, Body: body}
}

// drainOne sends one queued delivery, and says when its record must come round again
// (0: never, it is done). A delivery that waited longer than the maximum age is
// dead-lettered instead, its Port run told why.
func (r *Relay) drainOne(ctx, invocation context.Context, rec event.Record) (done, time.Duration) {
	m, err := queue.Decode(rec.Body)
	if err != nil {
		d := done{kind: event.Queue, err: err}
		if berr := r.Queue.BuryRaw(ctx, rec.Body); berr != nil {
			return d, minWait
		}
		return d, 0
	}
	d := done{kind: event.Kind(m.Kind), runID: m.RunID, body: m.Body, drained: rec.Receives + 1}
	if d.target = r.Routes.find(m.Door, m.Target); d.target == nil {
		d.target = stored{door: m.Door, name: m.Target}
	}
	redriven := !m.DeadLettered.IsZero()
	tooOld := !redriven && m.Age(r.now()) > r.maxAge()
	claimCtx, cancel := context.WithTimeout(ctx, LedgerBudget)
	claim, err := r.Ledger.Take(claimCtx, m.Key, ledger.Digest(m.Body), redriven, invocationDeadline(invocation))
	cancel()
	var held *ledger.Held
	switch {
	case errors.As(err, &held) && errors.Is(err, ledger.ErrDuplicate):
		d.kept = kept{state: "duplicate", held: &held.Record} // SQS delivered it twice, or it ended elsewhere
		return d, 0
	case errors.Is(err, ledger.ErrInProgress):
		d.kept, d.err = kept{state: "inProgress"}, err
		return d, minWait
	case errors.Is(err, ledger.ErrGone), errors.Is(err, ledger.ErrNotThis):
		// Whether it was sent cannot be known: never send it, and keep it for a person.
		d.err = err
		if r.Queue.Bury(ctx, m, "no record", r.now()) != nil {
			return d, minWait
		}
		return d, 0
	case err != nil:
		// The claim may have landed with its answer lost. Nothing was sent: give it back,
		// or the record, when it comes round, reads as an expired claim (may have been
		// sent) and is dropped unsent.
		lctx, lcancel := ledgerContext(invocation)
		_ = r.Ledger.Complete(lctx, claim, ledger.Record{State: ledger.Queued, Digest: ledger.Digest(m.Body)})
		lcancel()
		d.kept, d.err = kept{state: "unavailable", err: err}, err
		return d, minWait
	}
	d.kept = kept{state: "claimed"}
	lctx, lcancel := ledgerContext(invocation)
	defer lcancel()
	if tooOld {
		d.err = fmt.Errorf("%w: waited %s, QUEUE_MAX_AGE %s", ErrTooOld, m.Age(r.now()).Round(time.Second), r.maxAge())
		if r.Queue.Bury(ctx, m, "age", r.now()) != nil {
			_ = r.Ledger.Complete(lctx, claim, ledger.Record{State: ledger.Queued, Digest: ledger.Digest(m.Body)})
			return d, minWait
		}
		d.kept.err = r.Ledger.Complete(lctx, claim, ledger.Record{State: ledger.Expired, Cause: answerKey(ErrTooOld), Expires: r.now().Add(buryKeep)})
		d.unreported = r.reportDrained(invocation, ctx, d)
		return d, 0
	}
	if _, ok := d.target.(stored); ok {
		d.err = fmt.Errorf("%w: %q", ErrRoute, m.Target) // the configuration changed while it waited
		d.kept.err = r.Ledger.Complete(lctx, claim, ledger.Record{State: ledger.Refused, Cause: answerKey(d.err)})
		d.unreported = r.reportDrained(invocation, ctx, d)
		return d, 0
	}
	creds, err := r.Secrets.Get(ctx)
	var p Prepared
	if err == nil {
		ids, _ := payload.Read(m.Body)
		p, err = d.target.Prepare(m.Body, ids, creds)
	}
	if err == nil {
		d.sent, err = r.send(ctx, d.target, p)
	}
	d.err = err
	switch {
	case err == nil || azdo.MayHaveQueued(err):
		out, _ := outcome(d, d.sent, err)
		d.kept.err = r.Ledger.Complete(lctx, claim, out)
	case errors.Is(err, secret.ErrUnavailable), spillable(err) && !redriven:
		wait := r.wait(err)
		d.kept.err = r.Ledger.Complete(lctx, claim, ledger.Record{State: ledger.Queued, AzureStatus: d.sent.Status, Digest: ledger.Digest(m.Body)})
		if r.Queue.Later(ctx, rec.Receipt, wait) != nil {
			return d, minWait
		}
		return d, wait // not reported: the Port run already says it is queued
	case spillable(err):
		// Redriven, and Azure cannot take it yet: put aside afresh, its age from now.
		m.Queued, m.DeadLettered, m.Reason = r.now(), time.Time{}, ""
		d.kept.err = r.Ledger.Complete(lctx, claim, ledger.Record{State: ledger.Queued, AzureStatus: d.sent.Status, Digest: ledger.Digest(m.Body)})
		if r.Queue.Put(ctx, m, r.wait(err)) != nil {
			return d, minWait
		}
		return d, 0
	default:
		d.kept.err = r.Ledger.Complete(lctx, claim, ledger.Record{State: ledger.Refused, AzureStatus: d.sent.Status, Cause: answerKey(err)})
	}
	d.unreported = r.reportDrained(invocation, ctx, d)
	return d, 0
}

// reportDrained tells a queued delivery's Port run how it ended, with the secret's
// credentials.
func (r *Relay) reportDrained(invocation, ctx context.Context, d done) error {
	creds, err := r.Secrets.Get(ctx)
	if err != nil {
		return err
	}
	return r.report(invocation, creds, d)
}

// stored is a target a queued delivery names that the configuration no longer has.
type stored struct{ door, name string }

func (s stored) Name() string    { return s.name }
func (s stored) Door() string    { return s.door }
func (s stored) Subject() string { return "The pipeline behind " + s.door + " " + s.name }
func (stored) Prepare([]byte, payload.IDs, secret.Credentials) (Prepared, error) {
	return Prepared{}, ErrRoute
}
func (stored) Send(context.Context, Prepared, Keys) (Sent, error) { return Sent{}, ErrRoute }
func (stored) Started(Sent) (portapi.RunUpdate, string)           { return portapi.RunUpdate{}, "" }
