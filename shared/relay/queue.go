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
	// handBackGrace is how long past its claim's deadline a record in progress is not yet
	// read as maybe sent: a drain that sent nothing and could not give it back put a copy
	// on the queue, at most queue.MaxDelay away, that takes it back.
	handBackGrace = queue.MaxDelay + 5*time.Minute
)

// Errors of queued delivery.
var (
	// ErrTooOld: a queued delivery waited longer than QUEUE_MAX_AGE; it was not sent.
	ErrTooOld = errors.New("queued too long: Azure DevOps did not take it in time")
	// ErrNotRedriven: a redriven delivery whose Port run has ended is not sent.
	ErrNotRedriven = errors.New("redriven delivery not sent")
)

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

// retryWait is how long a queued delivery that Azure refused again waits: what Azure
// asked for (or minWait when it asked nothing), while it has come round fewer than
// maxTries/2 times; after that its remaining receives are spread over its maximum
// age, so that SQS's maxReceiveCount never moves it before its age does.
func (r *Relay) retryWait(err error, tries int) time.Duration {
	w := minWait
	var azErr *azdo.Error
	if errors.As(err, &azErr) && azErr.RetryAfter > 0 {
		w = azErr.RetryAfter
	}
	if tries >= maxTries/2 {
		w = max(w, r.maxAge()/maxTries)
	}
	return max(w, time.Second)
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
// record goes back to the invocation's claim, whose outcome is then written, and the
// invocation answered, as without a queue.
// It returns how long until the delivery is tried again, or the queue's failure.
func (r *Relay) spill(invocation context.Context, claim ledger.Claim, d done, s Sent, sendErr error) (time.Duration, bool, error) {
	if r.Queue == nil || !spillable(sendErr) || len(d.body) == 0 {
		return 0, false, nil
	}
	wait := min(r.firstWait(sendErr), queue.MaxDelay, r.maxAge()) // what the queue can delay it, no later than its age
	ctx, cancel := ledgerContext(invocation)
	defer cancel()
	now := r.now()
	m := queue.Message{Door: d.target.Door(), Target: d.target.Name(), Kind: string(d.kind), RunID: d.runID, Key: claim.Key, Queued: now, Body: d.body}
	queued := ledger.Record{State: ledger.Queued, AzureStatus: s.Status, Cause: answerKey(sendErr), Digest: m.Digest(), Expires: now.Add(r.maxAge() + time.Hour)}
	if err := r.Ledger.Complete(ctx, claim, queued); err != nil {
		return 0, false, err // record() then writes the refusal, or releases an AWS event's claim
	}
	// The message has a budget of its own: a slow ledger write must not leave it too
	// little, and fail a delivery that could wait.
	putCtx, putCancel := ledgerContext(invocation)
	defer putCancel()
	err := r.Queue.Put(putCtx, m, wait)
	if err == nil {
		return wait, true, nil
	}
	if errors.Is(r.Ledger.Complete(ctx, claim, ledger.Record{State: ledger.InProgress, AzureStatus: s.Status}), ledger.ErrNotOwner) {
		// The message was written after all, its answer lost, and the drain has taken it.
		return wait, true, nil
	}
	return 0, false, err
}

// drain sends a batch of the delivery queue, one record after another, and answers
// which records must come round again (SQS's batch item failures). A record Azure
// cannot take yet comes back when Azure said, and the rest of the batch waits with
// it: Azure is not asked again before then. A record is not begun without the time
// to finish it: what the invocation cannot finish comes round at once.
func (r *Relay) drain(ctx, invocation context.Context, requestID string, req event.Request) event.Response {
	var failures []string
	var pause, longest time.Duration
	for _, rec := range req.Records {
		start := time.Now()
		if pause > 0 {
			if wait, held := r.behind(rec, pause); held {
				_ = r.Queue.Later(ctx, rec.Receipt, wait)
				failures = append(failures, rec.ID)
				continue
			}
		}
		if !timeFor(ctx, longest) {
			_ = r.Queue.Later(ctx, rec.Receipt, 0) // at once, for another invocation
			failures = append(failures, rec.ID)
			continue
		}
		d, again := r.drainOne(ctx, invocation, rec)
		longest = max(longest, time.Since(start))
		if again > 0 {
			failures = append(failures, rec.ID)
		}
		pause = max(pause, d.pause)
		d.message = rec.ID
		r.logLine(requestID, d, d.response().Status, time.Since(start))
	}
	items := make([]map[string]string, 0, len(failures))
	for _, id := range failures {
		items = append(items, map[string]string{"itemIdentifier": id})
	}
	body, _ := json.Marshal(map[string]any{"batchItemFailures": items})
	return event.Response{Kind: event.Queue, Status: 200, Body: body}
}

// behind is how long a record waits behind a batch Azure paused: the pause (its
// receives spread over its age once it has come round often), and no later than its
// own age ends. It is not held (false) when it is past its age: it ends now, without
// asking Azure.
func (r *Relay) behind(rec event.Record, pause time.Duration) (time.Duration, bool) {
	if rec.Receives >= maxTries/2 {
		pause = max(pause, r.maxAge()/maxTries)
	}
	m, err := queue.Decode(rec.Body)
	if err != nil || !m.DeadLettered.IsZero() {
		return pause, true
	}
	left := r.maxAge() - m.Age(r.now())
	if left < 0 {
		return 0, false
	}
	return min(pause, left+time.Second), true
}

// minDrainTime is the least time left in which a record is begun: a send Azure cut
// short by the deadline would read "may have been queued" for good.
const minDrainTime = 5 * time.Second

// timeFor reports whether ctx leaves time to begin one more record: minDrainTime, and
// twice the longest record so far.
func timeFor(ctx context.Context, longest time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return ctx.Err() == nil && (!ok || time.Until(deadline) >= max(minDrainTime, 2*longest))
}

// drainOne sends one queued delivery, and says when its record must come round again
// (0: never, it is done). A delivery that waited longer than the maximum age is
// dead-lettered instead, its Port run told why. Every way it can end is told to the
// Port run, or is a record coming round again.
func (r *Relay) drainOne(ctx, invocation context.Context, rec event.Record) (done, time.Duration) {
	m, err := queue.Decode(rec.Body)
	if err != nil {
		d := done{kind: event.Queue, err: err}
		if berr := r.Queue.BuryRaw(ctx, rec.Body); berr != nil {
			return d, minWait
		}
		return d, 0
	}
	ids, _ := payload.Read(m.Body)
	d := done{kind: event.Kind(m.Kind), body: m.Body, drained: rec.Receives + 1, age: m.Age(r.now())}
	if d.kind.IsHTTP() {
		d.runID = ids.RunID // the kind and body the ledger's digest binds name the run, not the message
	}
	if d.target = r.Routes.find(m.Door, m.Target); d.target == nil {
		d.target = stored{door: m.Door, name: m.Target}
	}
	redriven := !m.DeadLettered.IsZero()
	digest := m.Digest()
	queued := ledger.Record{State: ledger.Queued, Digest: digest, Expires: m.Queued.Add(r.maxAge() + time.Hour)}
	if redriven {
		queued.Expires = r.now().Add(buryKeep) // as long as a dead letter is kept
		switch ended, err := r.endedInPort(ctx, d); {
		case err != nil:
			// Whoever clicked may have run the action again since its run ended: not sent
			// until Port says the run goes on.
			d.err = fmt.Errorf("%w yet: whether its Port run has ended cannot be read: %w", ErrNotRedriven, err)
			return d, minWait
		case ended:
			// Its Port run ended FAILURE when it expired, and whoever clicked may have run
			// the action again since: its end stands, and the pipeline is not started behind it.
			d.err = fmt.Errorf("%w: its Port run has ended", ErrNotRedriven)
			return d, 0
		}
	}
	claimCtx, cancel := context.WithTimeout(ctx, LedgerBudget)
	claim, err := r.Ledger.Take(claimCtx, ledger.Record{Key: m.Key, Target: m.Target, Door: m.Door, Digest: digest, Unsent: m.Unsent},
		redriven, invocationDeadline(invocation))
	cancel()
	var held *ledger.Held
	switch {
	case errors.As(err, &held) && held.Record.Cause == "deadline" && r.now().Before(held.Record.Deadline.Add(handBackGrace)):
		// Its claim's drain died sending it, or sent nothing and handed a copy on that
		// takes it back: wait for the copy before reading it as maybe sent.
		d.kept, d.err = kept{state: "inProgress"}, fmt.Errorf("%w: its claim ended without an outcome; a copy may take it back", ledger.ErrInProgress)
		wait := held.Record.Deadline.Add(handBackGrace).Sub(r.now()) + time.Second
		if r.Queue.Later(ctx, rec.Receipt, wait) != nil {
			return d, minWait
		}
		return d, wait
	case errors.As(err, &held) && held.Record.Cause == "deadline":
		// The drain that had it died sending it: it may have been queued. Written so
		// first, so that no late copy takes it, then said, where to look.
		lctx, lcancel := ledgerContext(invocation)
		aerr := r.Ledger.Abandon(lctx, held)
		lcancel()
		if aerr != nil {
			d.kept, d.err = kept{state: "inProgress"}, aerr // a copy took it back, or the ledger cannot say: come round
			return d, minWait
		}
		d.err, d.sent.Followed = fmt.Errorf("%w: the invocation sending it ended first", azdo.ErrNoAnswer), followsByName(d.target)
		d.unreported = r.reportDrained(invocation, ctx, d)
		return d, 0
	case errors.As(err, &held) && errors.Is(err, ledger.ErrDuplicate):
		d.kept = kept{state: "duplicate", held: &held.Record} // SQS delivered it twice, or it ended elsewhere
		return d, 0
	case errors.Is(err, ledger.ErrInProgress):
		d.kept, d.err = kept{state: "inProgress"}, err
		return d, minWait
	case errors.Is(err, ledger.ErrGone), errors.Is(err, ledger.ErrNotThis):
		// Whether it was sent cannot be known, or it is not what was put aside: never
		// send it, and keep it for a person.
		d.err = err
		if r.Queue.Bury(ctx, m, "no record", r.now()) != nil {
			return d, minWait
		}
		return d, 0
	case err != nil:
		// The claim may have landed with its answer lost: put it back, if it is there;
		// when that cannot be written either, a copy that may take it back comes round.
		d.kept, d.err = kept{state: "unavailable", err: err}, err
		if errors.Is(r.complete(invocation, claim, queued), ledger.ErrUnavailable) && r.handBack(ctx, m, claim, minWait) == nil {
			return d, 0
		}
		return d, minWait
	}
	d.kept = kept{state: "claimed"}
	if d.age > r.maxAge() && !redriven {
		return d, r.expire(ctx, invocation, claim, m, &d)
	}
	if s, ok := d.target.(stored); ok {
		d.err = fmt.Errorf("%w: %q", r.Routes.notAllowed(s.door), m.Target) // the configuration changed while it waited
		d.kept.err = r.complete(invocation, claim, ledger.Record{State: ledger.Refused, Cause: answerKey(d.err)})
		d.unreported = r.reportDrained(invocation, ctx, d)
		return d, 0
	}
	creds, err := r.Secrets.Get(ctx)
	var p Prepared
	if err == nil {
		p, err = d.target.Prepare(m.Body, ids, creds)
	}
	if err == nil {
		d.sent, err = r.send(ctx, d.target, p)
	}
	d.err = err
	switch {
	case err == nil || azdo.MayHaveQueued(err):
		out, _ := outcome(d, d.sent, err)
		d.kept.err = r.complete(invocation, claim, out)
	case errors.Is(err, secret.ErrUnavailable), spillable(err) && !redriven:
		// Back when Azure said, and no later than its maximum age allows (a redriven
		// one has none).
		wait := r.retryWait(err, d.drained)
		if spillable(err) {
			d.pause = wait // what Azure asked: the records behind it are held to their own ages
		}
		if !redriven {
			wait = max(min(wait, r.maxAge()-d.age+time.Second), time.Second)
		}
		if d.kept.err = r.complete(invocation, claim, queued); d.kept.err != nil {
			herr := r.handBack(ctx, m, claim, wait)
			switch {
			case herr == nil:
				return d, 0 // its copy takes the claim back when it comes round
			case !queue.NotPut(herr):
				return d, minWait // the copy may be there: it, or this record after the grace, ends it
			}
			// It cannot wait without its record or a copy: nothing was queued at Azure, so
			// its Port run ends here, and no later turn finds it in progress and takes it for sent.
			d.unreported = r.reportDrained(invocation, ctx, d)
			return d, 0
		}
		if r.Queue.Later(ctx, rec.Receipt, wait) != nil {
			return d, minWait
		}
		return d, wait // not reported: the Port run already says it is queued
	case spillable(err):
		// Redriven, and Azure cannot take it yet: put aside afresh, its age from now.
		d.pause = r.wait(err)
		m.Queued, m.DeadLettered, m.Reason, m.Unsent = r.now(), time.Time{}, "", ""
		queued.Expires = m.Queued.Add(r.maxAge() + time.Hour)
		if d.kept.err = r.complete(invocation, claim, queued); d.kept.err != nil {
			m.Unsent = claim.Owner() // the record stays with this claim: the new message takes it from there
		}
		if r.Queue.Put(ctx, m, d.pause) != nil {
			return d, minWait
		}
		return d, 0
	default:
		d.kept.err = r.complete(invocation, claim, ledger.Record{State: ledger.Refused, AzureStatus: d.sent.Status, Cause: answerKey(err)})
	}
	d.unreported = r.reportDrained(invocation, ctx, d)
	return d, 0
}

// expire ends a delivery that waited longer than the maximum age: to the dead-letter
// queue, its record expired (kept as long as the dead letter), its Port run ended
// FAILURE naming the age. When even the dead-letter queue cannot keep it, it ends all
// the same: it is never sent, and its Port run says so.
func (r *Relay) expire(ctx, invocation context.Context, claim ledger.Claim, m queue.Message, d *done) time.Duration {
	d.err = fmt.Errorf("%w: waited %s, QUEUE_MAX_AGE %s", ErrTooOld, d.age.Round(time.Second), r.maxAge())
	if err := r.Queue.Bury(ctx, m, "age", r.now()); err != nil && !errors.Is(err, queue.ErrTooLarge) {
		_ = r.complete(invocation, claim, ledger.Record{State: ledger.Queued, Digest: m.Digest()})
		return minWait
	}
	d.kept.err = r.complete(invocation, claim, ledger.Record{State: ledger.Expired, Cause: answerKey(ErrTooOld), Expires: r.now().Add(buryKeep)})
	d.unreported = r.reportDrained(invocation, ctx, *d)
	return 0
}

// handBack puts m back on the queue, to come round after wait, naming claim: a claim
// that sent nothing and could not put its record back to queued. Its copy takes the
// record from that claim, which would otherwise read as maybe sent when its deadline
// passed.
func (r *Relay) handBack(ctx context.Context, m queue.Message, claim ledger.Claim, wait time.Duration) error {
	m.Unsent = claim.Owner()
	err := r.Queue.Put(ctx, m, wait)
	if err != nil && !queue.NotPut(err) && ctx.Err() == nil {
		// Its answer was lost: once more, as two copies are harmless (one takes the claim).
		err = r.Queue.Put(ctx, m, wait)
	}
	return err
}

// complete records an outcome on claim, with the ledger's budget from now.
func (r *Relay) complete(invocation context.Context, claim ledger.Claim, out ledger.Record) error {
	ctx, cancel := ledgerContext(invocation)
	defer cancel()
	err := r.Ledger.Complete(ctx, claim, out)
	if errors.Is(err, ledger.ErrUnavailable) && invocation.Err() == nil {
		ctx, cancel := ledgerContext(invocation) // once more: a lost outcome strands the delivery
		defer cancel()
		err = r.Ledger.Complete(ctx, claim, out)
	}
	return err
}

// endedInPort reports whether a redriven delivery's Port run has ended, or why that
// cannot be told now. Without a Port run, or without Port's credentials to ask, nothing
// stands in its way.
func (r *Relay) endedInPort(ctx context.Context, d done) (bool, error) {
	if r.Report == nil || d.runID == "" {
		return false, nil
	}
	creds, err := r.Secrets.Get(ctx)
	if err != nil || creds.ClientID == "" {
		return false, err
	}
	ended, err := r.Report.Ended(ctx, portapi.Credentials{ClientID: creds.ClientID, ClientSecret: creds.ClientSecret}, d.runID)
	if errors.Is(err, portapi.ErrRunNotFound) {
		return true, nil
	}
	return ended, err
}

// followsByName reports whether the status function follows t's runs by their names,
// whatever their delivery said: an incoming webhook's pipeline names its run by the
// Port run id.
func followsByName(t Target) bool {
	_, ok := t.(webhook)
	return ok
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
