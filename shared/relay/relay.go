// Package relay authenticates Port's invocations and delivers them, signed, to
// Azure DevOps; it answers every invocation and logs it in one line.
package relay

import (
	"bytes"
	"context"
	"encoding/json"
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

// Deliverer posts a signed body to a webhook; *azdo.Client is one.
type Deliverer interface {
	Deliver(ctx context.Context, webhook string, body, secret []byte) (azdo.Result, error)
}

// Reporter tells Port how a run's delivery went; *portapi.Client is one.
type Reporter interface {
	Log(ctx context.Context, creds portapi.Credentials, runID, message string) error
	Update(ctx context.Context, creds portapi.Credentials, runID string, u portapi.RunUpdate) error
}

// Relay is the relay's core. Its fields are set once at start-up; it is then safe
// for concurrent use.
type Relay struct {
	Secrets  Secrets
	Previous PreviousSecrets // nil: Azure is signed for with the current value only
	Azure    Deliverer
	Port     signature.Port // Port's signature check: tolerance and clock
	Webhook  string         // the default webhook
	Allowed  []string       // webhooks a request may select by path
	Report   Reporter       // nil: nothing is reported to Port
	Log      *slog.Logger
	Metrics  *metrics.Emitter // the log line's EMF members; nil: none
	Sources  allowlist.List   // who may call over HTTP; empty: everyone
}

// outcome collects what one invocation did, for its answer and its log line.
type outcome struct {
	kind        event.Kind
	source      netip.Addr // the HTTP caller's address
	webhook     string
	runID       string
	azureStatus int
	attempts    int
	azureTook   time.Duration // in Deliver, retries included
	signedWith  string        // which value Azure accepted or refused last, when not the first one
	err         error
}

// Handle answers one raw Lambda event.
func (r *Relay) Handle(ctx context.Context, requestID string, raw []byte) event.Response {
	start := time.Now()
	invocation := ctx // the Lambda deadline, for the report after the work
	ctx, cancel := workContext(ctx, r.Report != nil)
	defer cancel()

	var o outcome
	req, err := event.Parse(raw)
	switch {
	case err != nil:
		o.err = err
		o.kind = event.Direct // only the Invoke API can deliver what is not an event
		if errors.Is(err, event.ErrMalformed) {
			o.kind = event.REST // an HTTP event, if a broken one: answer as API Gateway
		}
	case req.Kind.IsHTTP():
		o.kind = req.Kind
		r.http(ctx, invocation, req, &o)
	default:
		o.kind = req.Kind
		r.aws(ctx, req, &o)
	}
	resp := o.response()
	r.logOutcome(requestID, &o, resp.Status, time.Since(start))
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

func (r *Relay) http(ctx, invocation context.Context, req event.Request, o *outcome) {
	// A stranger costs no secret read, no signature check and learns nothing else.
	if o.source = req.Source; !r.Sources.Allows(req.Source) {
		o.err = ErrSourceNotAllowed
		if !req.Source.IsValid() {
			o.err = fmt.Errorf("%w: the event has no valid source address", ErrSourceNotAllowed)
		}
		return
	}
	if req.Method != http.MethodPost {
		o.err = ErrMethod
		return
	}
	if len(req.Body) > payload.MaxSize {
		o.err = payload.ErrTooLarge
		return
	}
	creds, err := r.Secrets.Get(ctx)
	if err != nil {
		o.err = err
		return
	}
	key := []byte(creds.ClientSecret)
	verify := func() error {
		return r.Port.Verify(key, req.Get(signature.PortSignatureHeader), req.Get(signature.PortTimestampHeader), req.Body)
	}
	err = verify()
	if errors.Is(err, signature.ErrMismatch) {
		// Port's credentials may have been rotated since the secret was cached.
		if renewed, changed, renewErr := r.Secrets.Renew(ctx); renewErr == nil && changed {
			creds, key = renewed, []byte(renewed.ClientSecret)
			err = verify()
		}
	}
	if err != nil {
		o.err = err
		return
	}
	// From here on the body is Port's: failures are reported to the run.
	runID, bodyErr := payload.Check(req.Body) // the run id, even when the route is refused
	o.runID = runID
	if o.webhook, o.err = r.route(req.Path); o.err == nil {
		o.err = bodyErr
	}
	if o.err == nil {
		r.deliver(ctx, req.Body, creds, o)
	}
	r.report(invocation, creds, o)
}

func (r *Relay) aws(ctx context.Context, req event.Request, o *outcome) {
	o.webhook = r.Webhook
	if _, o.err = payload.Check(req.Body); o.err != nil {
		return
	}
	creds, err := r.Secrets.Get(ctx)
	if err != nil {
		o.err = err
		return
	}
	r.deliver(ctx, req.Body, creds, o)
}

// deliver signs for Azure with the current value. When Azure refuses the signature,
// which queues nothing, it signs once more with the value Azure may hold instead:
// the current one read again, when this container's copy is stale, or else the
// previous version, while the service connection still holds it. Never more than
// these two, each once; any other failure is final, as Azure does not deduplicate.
func (r *Relay) deliver(ctx context.Context, body []byte, creds secret.Credentials, o *outcome) {
	key := creds.AzureKey()
	err := r.post(ctx, body, key, o)
	if errors.Is(err, azdo.ErrSignatureRefused) {
		if next, which := r.otherKey(ctx, key); next != nil {
			o.signedWith = which
			err = r.post(ctx, body, next, o)
		}
	}
	o.err = err
}

// post makes one delivery; the outcome counts the attempts of all of them.
func (r *Relay) post(ctx context.Context, body, key []byte, o *outcome) error {
	start := time.Now()
	res, err := r.Azure.Deliver(ctx, o.webhook, body, key)
	o.azureTook += time.Since(start)
	status, attempts := res.Status, res.Attempts
	var azErr *azdo.Error
	if errors.As(err, &azErr) {
		status, attempts = azErr.Status, azErr.Attempts
	}
	o.azureStatus = status
	o.attempts += attempts
	return err
}

// otherKey returns the Azure key to try after refused was refused, and which value it
// is, or nil when there is none other: the current value as Secrets Manager holds it
// now, if it differs, else AWSPREVIOUS. Only authenticated requests get here, so the
// read again costs what today's traffic does, not what an attacker wants.
func (r *Relay) otherKey(ctx context.Context, refused []byte) ([]byte, string) {
	r.Secrets.Invalidate()
	current, err := r.Secrets.Get(ctx) // the cached value, if the read fails
	if err != nil {
		return nil, ""
	}
	if key := current.AzureKey(); !bytes.Equal(key, refused) {
		return key, secret.StageCurrent
	}
	if r.Previous == nil {
		return nil, ""
	}
	previous, err := r.Previous.Get(ctx, current)
	if key := previous.AzureKey(); err != nil || len(key) == 0 || bytes.Equal(key, refused) {
		return nil, ""
	}
	return previous.AzureKey(), secret.StagePrevious
}

// route picks the webhook: a path ending in /webhooks/{name} selects name from the
// allow list; any other path the default.
func (r *Relay) route(path string) (string, error) {
	i := strings.LastIndex(path, "/webhooks/")
	if i < 0 {
		return r.Webhook, nil
	}
	name := strings.TrimSuffix(path[i+len("/webhooks/"):], "/")
	if !azdo.ValidName(name) {
		return "", fmt.Errorf("%w: the name after /webhooks/ must match [-_A-Za-z0-9]+", ErrRoute)
	}
	for _, allowed := range r.Allowed {
		if name == allowed {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrRoute, name)
}

// report tells Port how delivery of a run went, within its own budget; it never
// changes the answer. Success adds a log line and leaves the run to the pipeline.
// A failure after which Azure cannot have queued a run ends the run FAILURE. After
// an ambiguous one (a timeout, a connection broken after sending, a bare 5xx) the
// run may well be running: ending it FAILURE would be contradicted by the pipeline
// (and Port would then refuse the status function's real result), and the user
// would run it again, a second deploy. So the run gets a log line and a label that
// say so and where to look, and stays in progress for the status function (or the
// user) to end.
func (r *Relay) report(invocation context.Context, creds secret.Credentials, o *outcome) {
	if r.Report == nil || o.runID == "" || creds.ClientID == "" {
		return
	}
	ctx, cancel := reportContext(invocation)
	defer cancel()
	pc := portapi.Credentials{ClientID: creds.ClientID, ClientSecret: creds.ClientSecret}
	var err error
	switch rule, say := classify(o.err); {
	case o.err == nil:
		err = r.Report.Log(ctx, pc, o.runID, fmt.Sprintf("Azure DevOps accepted webhook %s (pipeline queued).", o.webhook))
	case azdo.MayHaveQueued(o.err):
		err = r.Report.Log(ctx, pc, o.runID, fmt.Sprintf("%s The pipeline behind webhook %s may be running: look at its runs in Azure DevOps before you run this action again. If it runs, this run follows it to its end.", say, o.webhook))
		if err == nil {
			err = r.Report.Update(ctx, pc, o.runID, portapi.RunUpdate{StatusLabel: MayHaveQueuedLabel + " (" + strings.ToLower(rule.label) + ")"})
		}
	default:
		err = r.Report.Update(ctx, pc, o.runID, portapi.RunUpdate{Status: "FAILURE", StatusLabel: rule.label, Summary: say})
	}
	if err != nil {
		r.Log.Warn("report to Port failed", "runId", o.runID, "webhook", o.webhook, "error", err.Error())
	}
}

// MayHaveQueuedLabel begins the status label of a Port run whose delivery may have
// queued a pipeline run: the run stays in progress.
const MayHaveQueuedLabel = "May have been queued: check Azure DevOps"

// reportContext gives the report ReportBudget, ending Margin before the Lambda
// deadline at the latest, whatever the work used.
func reportContext(invocation context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(ReportBudget)
	if d, ok := invocation.Deadline(); ok && d.Add(-Margin).Before(deadline) {
		deadline = d.Add(-Margin)
	}
	return context.WithDeadline(context.WithoutCancel(invocation), deadline)
}

func (o *outcome) response() event.Response {
	resp := event.Response{HTTP: o.kind.IsHTTP(), Kind: o.kind, Status: http.StatusOK}
	if o.err != nil {
		rule, say := classify(o.err)
		resp.Status, resp.Error = rule.status, say
		if !resp.HTTP && azdo.MayHaveQueued(o.err) {
			// A result, not a function error: Lambda must not invoke again.
			resp.MayHaveQueued = true
			resp.Body, _ = json.Marshal(struct {
				Forwarded     bool   `json:"forwarded"`
				MayHaveQueued bool   `json:"mayHaveQueued"`
				Webhook       string `json:"webhook"`
				AzureStatus   int    `json:"azureStatus,omitempty"`
				Error         string `json:"error"`
			}{false, true, o.webhook, o.azureStatus, say})
			return resp
		}
		resp.Body, _ = json.Marshal(struct {
			Error string `json:"error"`
		}{say})
		return resp
	}
	resp.Body, _ = json.Marshal(struct {
		Forwarded   bool   `json:"forwarded"`
		Webhook     string `json:"webhook"`
		AzureStatus int    `json:"azureStatus"`
		RunID       string `json:"runId,omitempty"`
	}{true, o.webhook, o.azureStatus, o.runID})
	return resp
}

func (r *Relay) logOutcome(requestID string, o *outcome, status int, took time.Duration) {
	attrs := []slog.Attr{
		slog.String("requestId", requestID),
		slog.String("kind", string(o.kind)),
		slog.Int("status", status),
		slog.Float64("durationMs", float64(took.Microseconds())/1000),
	}
	if o.source.IsValid() {
		attrs = append(attrs, slog.String("sourceIp", o.source.String())) // an address is not a secret
	}
	if o.webhook != "" {
		attrs = append(attrs, slog.String("webhook", o.webhook))
	}
	if o.runID != "" {
		attrs = append(attrs, slog.String("runId", o.runID))
	}
	if o.attempts > 0 {
		attrs = append(attrs, slog.Int("azureStatus", o.azureStatus), slog.Int("attempts", o.attempts))
	}
	if o.signedWith != "" {
		// Azure refused the first signature: a rotation is under way (see docs/operations.md).
		attrs = append(attrs, slog.String("azureSecret", o.signedWith))
	}
	level, msg := slog.LevelInfo, "forwarded"
	if o.err != nil {
		attrs = append(attrs, slog.String("error", o.err.Error()))
		if azdo.MayHaveQueued(o.err) {
			attrs = append(attrs, slog.Bool("mayHaveQueued", true))
		}
		if errors.Is(o.err, secret.ErrUnavailable) || errors.Is(o.err, secret.ErrNotFound) ||
			errors.Is(o.err, secret.ErrEmpty) || errors.Is(o.err, secret.ErrMalformed) {
			attrs = append(attrs, slog.String("secretId", r.Secrets.ID()))
		}
		level, msg = slog.LevelWarn, "refused"
		if status >= 500 || !o.kind.IsHTTP() {
			level, msg = slog.LevelError, "failed"
		}
	}
	r.Log.LogAttrs(context.Background(), level, msg, r.measure(attrs, o)...)
}
