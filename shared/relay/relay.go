// Package relay authenticates Port's invocations and delivers them, signed, to
// Azure DevOps; it answers every invocation and logs it in one line.
//
// One invocation goes admit → verify → route (a Target) → prepare → once (claim,
// send, record) → report, each step a function of plain values.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/allowlist"
	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/payload"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

// Budgets within the Lambda deadline.
const (
	// Margin is kept after the work to answer and log.
	Margin = 300 * time.Millisecond
	// ReportBudget is kept for telling Port how delivery ended.
	ReportBudget = 2 * time.Second
	// MaxWork bounds an invocation that has no deadline of its own.
	MaxWork = 25 * time.Second
	// LedgerBudget bounds each call to the ledger.
	LedgerBudget = time.Second
)

// Secrets gives the current credentials; *secret.Source is one.
type Secrets interface {
	Get(ctx context.Context) (secret.Credentials, error)
	Renew(ctx context.Context) (secret.Credentials, bool, error) // read again, if not just read
	Invalidate()
	ID() string
}

// PreviousSecrets gives the value the secret held before current, AWSPREVIOUS;
// *secret.Previous is one.
type PreviousSecrets interface {
	Get(ctx context.Context, current secret.Credentials) (secret.Credentials, error)
}

// Ledger records each delivery across containers, so that none is made twice;
// *ledger.Ledger is one.
type Ledger interface {
	Claim(ctx context.Context, r ledger.Record, deadline time.Time) (ledger.Claim, error)
	Complete(ctx context.Context, c ledger.Claim, out ledger.Record) error
	Release(ctx context.Context, c ledger.Claim) error
	Refuse(ctx context.Context, r ledger.Record) error
	Settle(ctx context.Context, c ledger.Claim, out ledger.Record) error
	Take(ctx context.Context, r ledger.Record, redriven bool, deadline time.Time) (ledger.Claim, error)
	Abandon(ctx context.Context, h *ledger.Held) error
}

// Reporter tells Port how a run's delivery went, and whether a run has ended;
// *portapi.Client is one.
type Reporter interface {
	Log(ctx context.Context, creds portapi.Credentials, runID, message string) error
	Update(ctx context.Context, creds portapi.Credentials, runID string, u portapi.RunUpdate) error
	Ended(ctx context.Context, creds portapi.Credentials, runID string) (bool, error)
}

// Relay is the relay's core. Its fields are set once at start-up; it is then safe
// for concurrent use.
type Relay struct {
	Secrets  Secrets
	Previous PreviousSecrets // nil: Azure is signed for with the current value only
	Port     signature.Port  // Port's signature check: tolerance, clock, and the container's memory of signatures (Replays)
	Routes   Routes
	Report   Reporter // nil: nothing is reported to Port
	Log      *slog.Logger
	Metrics  *metrics.Emitter // the log line's EMF members; nil: none
	Sources  allowlist.List   // who may call over HTTP; empty: everyone
	// Ledger, when set, makes every delivery with a key once across all containers
	// (a Port run, an invocation, an AWS event with an id). nil: the container's memory
	// of signatures (Port.Replays) alone.
	Ledger Ledger
	// Queue, when set (with a Ledger), puts aside a delivery Azure cannot take now and
	// sends it from the queue at Azure's pace (queue.go); MaxAge bounds its wait
	// (DefaultMaxAge when zero). nil: such a delivery fails as it comes.
	Queue  Queue
	MaxAge time.Duration
	Now    func() time.Time // the clock of queued deliveries' ages; nil: time.Now
}

// done is what one invocation came to: the values its steps returned, for the answer,
// the report and the log line.
type done struct {
	kind   event.Kind
	source netip.Addr // the HTTP caller's address
	target Target     // nil until routed
	runID  string
	body   []byte // Port's body, or the AWS event, as it came
	// drained is, for a delivery sent from the queue, how many times it was tried, and
	// age how long since it was first put aside.
	drained int
	age     time.Duration
	message string        // its SQS message id
	pause   time.Duration // how long the rest of its batch waits: Azure cannot take it yet
	sent    Sent          // Azure's answers, when it was called
	kept    kept          // what the ledger said
	err     error
	// unreported is what kept Port from hearing how it went: the Port run does not
	// show it (and, for a pipeline by id, the status function cannot find the run).
	unreported error
}

// Handle answers one raw Lambda event.
func (r *Relay) Handle(ctx context.Context, requestID string, raw []byte) event.Response {
	start := time.Now()
	invocation := ctx // the Lambda deadline, for the report after the work
	ctx, cancel := workContext(ctx, r.Report != nil)
	defer cancel()

	var d done
	req, err := event.Parse(raw)
	switch {
	case err != nil:
		d = done{kind: event.Direct, err: err} // only the Invoke API can deliver what is not an event
		if errors.Is(err, event.ErrMalformed) {
			d.kind = event.REST // an HTTP event, if a broken one: answer as API Gateway
		}
	case req.Kind.IsHTTP():
		d = r.http(ctx, invocation, req)
	case req.Kind == event.Queue && r.Queue != nil && r.Ledger != nil:
		return r.drain(ctx, invocation, requestID, req) // a log line for each record
	default:
		d = r.aws(ctx, invocation, req)
	}
	resp := d.response()
	r.logLine(requestID, d, resp.Status, time.Since(start))
	return resp
}

// workContext leaves Margin (and ReportBudget when reporting) before the deadline,
// or a third of the time left when that is less: a function with a short timeout
// still gets most of it for its work.
func workContext(ctx context.Context, reporting bool) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithTimeout(ctx, MaxWork)
	}
	keep := Margin
	if reporting {
		keep += ReportBudget
	}
	keep = min(keep, time.Until(deadline)/3)
	return context.WithDeadline(ctx, deadline.Add(-keep))
}

// http takes a Port invocation: admit, verify, route, prepare, once, report.
func (r *Relay) http(ctx, invocation context.Context, req event.Request) done {
	d := done{kind: req.Kind, source: req.Source, body: req.Body}
	if d.err = r.admit(req); d.err != nil {
		return d
	}
	creds, signed, err := r.verify(ctx, req)
	if d.err = err; err != nil {
		return d
	}
	// From here on the body is Port's: failures are reported to the run.
	ids, bodyErr := payload.Read(req.Body) // the run id, even when the route is refused
	d.runID = ids.RunID
	var p Prepared
	if d.target, d.err = r.Routes.route(req.Path); d.err == nil {
		if d.err = bodyErr; d.err == nil {
			p, d.err = d.target.Prepare(req.Body, ids, creds)
		}
	}
	key := r.httpKey(ids, signed, d.err)
	switch {
	case d.err == nil:
		d.sent, d.kept, d.err = r.once(ctx, invocation, key, d, p)
	case key != "":
		// The path is not signed: this may be a replay, sent elsewhere, of a run that
		// was delivered. The refusal is the run's only when the ledger takes it.
		d.kept, d.err = r.refuse(ctx, key, d)
	}
	d.unreported = r.report(invocation, creds, d)
	return d
}

// admit refuses, before the secret is read, what no signature can make right: a
// stranger costs no secret read, no signature check, and learns nothing else.
func (r *Relay) admit(req event.Request) error {
	switch {
	case !r.Sources.Allows(req.Source) && !req.Source.IsValid():
		return fmt.Errorf("%w: the event has no valid source address", ErrSourceNotAllowed)
	case !r.Sources.Allows(req.Source):
		return ErrSourceNotAllowed
	case req.Method != http.MethodPost:
		return ErrMethod
	case len(req.Body) > payload.MaxSize:
		return payload.ErrTooLarge
	}
	return nil
}

// verify checks Port's signature with the secret, read again once when it does not
// match (Port's credentials may have been rotated since the secret was cached). A
// signature this container has accepted before is a replay, ledger or not: nothing
// is asked of the ledger, sent, or reported.
func (r *Relay) verify(ctx context.Context, req event.Request) (secret.Credentials, signature.Signed, error) {
	creds, err := r.Secrets.Get(ctx)
	if err != nil {
		return creds, signature.Signed{}, err
	}
	check := func() (signature.Signed, error) {
		return r.Port.Verified([]byte(creds.ClientSecret), req.Get(signature.PortSignatureHeader), req.Get(signature.PortTimestampHeader), req.Body)
	}
	signed, err := check()
	if errors.Is(err, signature.ErrMismatch) {
		if renewed, changed, renewErr := r.Secrets.Renew(ctx); renewErr == nil && changed {
			creds = renewed
			signed, err = check()
		}
	}
	if err == nil && !r.Port.FirstHere(signed) {
		err = signature.ErrReplayed
	}
	return creds, signed, err
}

// route picks the target: a path whose last /{door}/ segment names a door selects
// that door's target of the name after it; any other path, the default.
func (rt Routes) route(path string) (Target, error) {
	at, marker := -1, ""
	for segment := range rt.Doors {
		if i := strings.LastIndex(path, "/"+segment+"/"); i > at {
			at, marker = i, segment
		}
	}
	if at < 0 {
		return rt.Default, nil
	}
	door := rt.Doors[marker]
	name := strings.TrimSuffix(path[at+len(marker)+2:], "/")
	if !azdo.ValidName(name) {
		return nil, fmt.Errorf("%w: the name after /%s/ must match [-_A-Za-z0-9]+", door.NotAllowed, marker)
	}
	if t, ok := door.Targets[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%w: %q", door.NotAllowed, name)
}

// notAllowed is the error of a name the door does not hold.
func (rt Routes) notAllowed(door string) error {
	if d, ok := rt.Doors[door+"s"]; ok && d.NotAllowed != nil {
		return d.NotAllowed
	}
	return ErrRoute
}

// find is the target of a door ("webhook", "pipeline") and a name; nil for none.
func (rt Routes) find(door, name string) Target {
	if t := rt.Default; t != nil && t.Door() == door && t.Name() == name {
		return t
	}
	return rt.Doors[door+"s"].Targets[name]
}

// httpKey is the ledger's key for a Port invocation: its run id (every invocation and
// replay of one Port run), or else, for one that is to be sent, what its signature
// covered, so that whitespace added to the body makes no new key. "" without a ledger.
func (r *Relay) httpKey(ids payload.IDs, signed signature.Signed, refused error) string {
	switch {
	case r.Ledger == nil:
		return ""
	case portapi.ValidRunID(ids.RunID):
		return ledger.RunKey(ids.RunID)
	case refused == nil:
		return ledger.SignatureKey(signed.Timestamp, signed.Covered)
	}
	return ""
}

// aws takes an EventBridge event or a direct invoke: authorised by IAM, sent as it
// came to the default target, keyed by its id.
func (r *Relay) aws(ctx, invocation context.Context, req event.Request) done {
	d := done{kind: req.Kind, target: r.Routes.Default, body: req.Body}
	ids, err := payload.Read(req.Body)
	if d.err = err; err != nil {
		return d
	}
	creds, err := r.Secrets.Get(ctx)
	if d.err = err; err != nil {
		return d
	}
	p, err := d.target.Prepare(req.Body, ids, creds)
	if d.err = err; err != nil {
		return d
	}
	var key string
	if r.Ledger != nil && ids.ID != "" && len(ids.ID) <= ledger.MaxIDLength {
		key = ledger.EventKey(ids.ID) // EventBridge keeps it across Lambda's retries
	}
	d.sent, d.kept, d.err = r.once(ctx, invocation, key, d, p)
	return d
}

// send delivers p to t, with the secret at hand for a second credential.
func (r *Relay) send(ctx context.Context, t Target, p Prepared) (Sent, error) {
	return t.Send(ctx, p, Keys{Current: r.Secrets, Previous: r.Previous})
}
