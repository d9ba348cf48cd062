package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/ledger"
)

// kept is what the ledger said of a delivery.
type kept struct {
	// state: "claimed", "refused" or "settled" (the ledger holds this invocation's
	// claim, refusal or outcome), "duplicate", "inProgress", "unavailable"; "" when
	// not asked.
	state string
	held  *ledger.Record // the first delivery's record, for a duplicate
	err   error          // the ledger's own failure, beside a delivery that went on or was refused
	// queued is, for a delivery put aside on the delivery queue, how long until it is
	// tried again; 0 for none. unqueued is why one could not be put aside.
	queued   time.Duration
	unqueued error
}

// own reports whether the ledger holds this invocation's claim or refusal: only then
// is a failure this invocation's to end the Port run with.
func (k kept) own() bool { return k.state == "claimed" || k.state == "refused" || k.state == "settled" }

// once delivers p at most once for its key across every container: it claims the key
// in the ledger first and records the outcome after. A key delivered before, or that
// may have been, or refused, is not sent again (kept.held); one being delivered
// elsewhere right now is refused (ErrInProgress). Without a ledger or a key, it
// delivers as the container's memory allowed. When the ledger cannot be reached, an
// HTTP invocation is still delivered (Port does not retry, and this container has not
// seen its signature), and an AWS event is refused, for Lambda to retry.
func (r *Relay) once(ctx, invocation context.Context, key string, d done, p Prepared) (Sent, kept, error) {
	if r.Ledger == nil || key == "" {
		s, err := r.send(ctx, d.target, p)
		return s, kept{}, err
	}
	claimCtx, cancel := context.WithTimeout(ctx, LedgerBudget)
	claim, err := r.Ledger.Claim(claimCtx, ledger.Record{Key: key, Target: d.target.Name(), Door: d.target.Door(), RunID: d.runID}, invocationDeadline(invocation))
	cancel()
	var held *ledger.Held
	switch {
	case errors.As(err, &held) && errors.Is(err, ledger.ErrDuplicate):
		return Sent{}, kept{state: "duplicate", held: &held.Record}, nil
	case errors.Is(err, ledger.ErrInProgress):
		return Sent{}, kept{state: "inProgress"}, err
	case err != nil && !d.kind.IsHTTP():
		// Nothing is sent, and Lambda retries: a claim that landed with its answer lost
		// would make the retry read "may have queued". Take it back, if it is there.
		lctx, cancel := ledgerContext(invocation)
		_ = r.Ledger.Release(lctx, claim)
		cancel()
		return Sent{}, kept{state: "unavailable", err: err}, err
	case err != nil:
		s, sendErr := r.send(ctx, d.target, p)
		if serr := r.settle(invocation, claim, d, s, sendErr); serr == nil {
			return s, kept{state: "settled", err: err}, sendErr // the ledger holds the outcome after all
		}
		return s, kept{state: "unavailable", err: err}, sendErr
	}
	s, sendErr := r.send(ctx, d.target, p)
	wait, ok, queueErr := r.spill(invocation, claim, d, s, sendErr)
	if ok {
		return s, kept{state: "claimed", queued: wait}, sendErr // the error says why it waits
	}
	k := kept{state: "claimed", unqueued: queueErr}
	k.err = r.record(invocation, claim, d, s, sendErr)
	return s, k, sendErr
}

// record writes the outcome of the delivery claim was for: delivered, or may have
// queued; when Azure cannot have queued anything, refused for good (Port never
// retries, so a second arrival is a replay), or, for an AWS event, the claim released
// for Lambda's retry after the fix.
func (r *Relay) record(invocation context.Context, claim ledger.Claim, d done, s Sent, sendErr error) error {
	ctx, cancel := ledgerContext(invocation)
	defer cancel()
	out, release := outcome(d, s, sendErr)
	if !release {
		return r.Ledger.Complete(ctx, claim, out)
	}
	if err := r.Ledger.Release(ctx, claim); err != nil {
		// Nothing was queued, yet the claim stays in progress until its deadline, then
		// reads as "may have been queued": never sent twice, but a retry is not sent either.
		return fmt.Errorf("nothing was queued, but the claim could not be released, so a retry of this delivery will not be sent: %w", err)
	}
	return nil
}

// settle writes the outcome of an HTTP delivery whose claim the ledger refused or
// lost: the whole record, so that a replay finds it (a second run, or a refusal that
// ends a run Azure is running, otherwise).
func (r *Relay) settle(invocation context.Context, claim ledger.Claim, d done, s Sent, sendErr error) error {
	ctx, cancel := ledgerContext(invocation)
	defer cancel()
	out, _ := outcome(d, s, sendErr)
	out.Target, out.Door, out.RunID = d.target.Name(), d.target.Door(), d.runID
	return r.Ledger.Settle(ctx, claim, out)
}

// outcome is the record of how a delivery ended, or release for an AWS event that
// Azure refused in a way that queued nothing: Lambda retries it after the fix.
func outcome(d done, s Sent, sendErr error) (out ledger.Record, release bool) {
	switch {
	case sendErr == nil:
		return ledger.Record{State: ledger.Delivered, AzureStatus: s.Status, AzureRunID: runIDText(s.RunID), Link: s.Link}, false
	case azdo.MayHaveQueued(sendErr):
		a, _ := classify(sendErr)
		return ledger.Record{State: ledger.MayHaveQueued, AzureStatus: s.Status, Cause: a.Class}, false
	case d.kind.IsHTTP():
		return ledger.Record{State: ledger.Refused, AzureStatus: s.Status, Cause: answerKey(sendErr)}, false
	}
	return ledger.Record{}, true
}

// refuse records a refusal made before anything was sent as the final answer for
// key, so that a replay gets it back and is never delivered; only then is the
// refusal this invocation's to report. When the key is held (delivered, being
// delivered, refused before), this invocation is a replay: it gets the first answer.
func (r *Relay) refuse(ctx context.Context, key string, d done) (kept, error) {
	lctx, cancel := context.WithTimeout(ctx, LedgerBudget)
	err := r.Ledger.Refuse(lctx, ledger.Record{Key: key, Target: targetName(d.target), Door: targetDoor(d.target), RunID: d.runID, Cause: answerKey(d.err)})
	cancel()
	var held *ledger.Held
	switch {
	case err == nil:
		return kept{state: "refused"}, d.err
	case errors.As(err, &held) && errors.Is(err, ledger.ErrDuplicate):
		return kept{state: "duplicate", held: &held.Record}, nil
	case errors.Is(err, ledger.ErrInProgress):
		return kept{state: "inProgress"}, err
	default:
		return kept{state: "unavailable", err: err}, d.err
	}
}

// invocationDeadline is when the invocation's own time ends: a claim still in
// progress after it belongs to an invocation that died mid-delivery.
func invocationDeadline(invocation context.Context) time.Time {
	if d, ok := invocation.Deadline(); ok {
		return d
	}
	return time.Now().Add(MaxWork + ReportBudget + Margin)
}

// ledgerContext gives the outcome's record LedgerBudget, even when the work used its
// time (Azure timed out), ending half the Margin before the Lambda deadline.
func ledgerContext(invocation context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(LedgerBudget)
	if d, ok := invocation.Deadline(); ok && d.Add(-Margin/2).Before(deadline) {
		deadline = d.Add(-Margin / 2)
	}
	return context.WithDeadline(context.WithoutCancel(invocation), deadline)
}
