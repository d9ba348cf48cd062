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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/allowlist"
	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
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

// Deliverer posts a signed body to a webhook, or starts a pipeline by id;
// *azdo.Client is one.
type Deliverer interface {
	Deliver(ctx context.Context, webhook string, body, secret []byte) (azdo.Result, error)
	Run(ctx context.Context, p azdo.Pipeline, body []byte, auth azdo.Auth) (azdo.RunResult, error)
}

// Ledger records each delivery across containers, so that none is made twice;
// *ledger.Ledger is one.
type Ledger interface {
	Claim(ctx context.Context, r ledger.Record, deadline time.Time) (ledger.Claim, error)
	Complete(ctx context.Context, c ledger.Claim, out ledger.Record) error
	Release(ctx context.Context, c ledger.Claim) error
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
	Port     signature.Port // Port's signature check: tolerance, clock, and the container's memory of signatures (Replays)
	Org      string         // the Azure DevOps organization: it names the Port run's externalRunId (portapi.ExternalRunID)
	Webhook  string         // the default webhook; when empty, the first of Pipelines is the default
	Allowed  []string       // webhooks a request may select by path
	// Pipelines are started by id (POST /pipelines/{name}), with the Azure credentials
	// the secret holds: a PAT, or an Entra app whose tokens Tokens fetches.
	Pipelines []azdo.Pipeline
	Tokens    *entra.Client
	Report    Reporter // nil: nothing is reported to Port
	Log       *slog.Logger
	Metrics   *metrics.Emitter // the log line's EMF members; nil: none
	Sources   allowlist.List   // who may call over HTTP; empty: everyone
	// Ledger, when set, makes every delivery with a key once across all containers
	// (a Port run, an invocation, an AWS event with an id). Port.Replays then stands
	// in only while the ledger cannot be reached. nil: Port.Replays alone, per container.
	Ledger Ledger
}

// LedgerBudget bounds each call to the ledger.
const LedgerBudget = time.Second

// outcome collects what one invocation did, for its answer and its log line.
type outcome struct {
	kind        event.Kind
	source      netip.Addr     // the HTTP caller's address
	webhook     string         // the webhook delivered to, or
	pipeline    *azdo.Pipeline // the pipeline started by id, with
	runBody     []byte         // the run parameters sent, and
	auth        azdo.Auth      // the credential that sends them
	azureRunID  int            // the run Azure started, for a pipeline
	link        string         // its page
	runID       string
	azureStatus int
	attempts    int
	azureTook   time.Duration // in Deliver, retries included
	signedWith  string        // which value Azure accepted or refused last, when not the first one
	ledger      string        // what the ledger said: claimed, duplicate, inProgress, unavailable; "" when not asked
	held        *ledger.Record
	ledgerErr   error // the ledger could not be reached (the delivery went on, or was refused)
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
		r.aws(ctx, invocation, req, &o)
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
	verify := func() (signature.Signed, error) {
		return r.Port.Verified(key, req.Get(signature.PortSignatureHeader), req.Get(signature.PortTimestampHeader), req.Body)
	}
	signed, err := verify()
	if errors.Is(err, signature.ErrMismatch) {
		// Port's credentials may have been rotated since the secret was cached.
		if renewed, changed, renewErr := r.Secrets.Renew(ctx); renewErr == nil && changed {
			creds, key = renewed, []byte(renewed.ClientSecret)
			signed, err = verify()
		}
	}
	if err != nil {
		o.err = err
		return
	}
	// The container's memory: the guard without a ledger, the fallback beside one.
	firstHere := r.Port.FirstHere(signed)
	if !firstHere && r.Ledger == nil {
		o.err = signature.ErrReplayed
		return
	}
	// From here on the body is Port's: failures are reported to the run.
	ids, bodyErr := payload.Read(req.Body) // the run id, even when the route is refused
	o.runID = ids.RunID
	if o.err = r.route(req.Path, o); o.err == nil {
		o.err = bodyErr
	}
	if o.err == nil {
		o.err = r.prepare(req.Body, creds, o)
	}
	if o.err == nil {
		var key string
		switch {
		case r.Ledger == nil: // no key to compute
		case portapi.ValidRunID(ids.RunID):
			key = ledger.RunKey(ids.RunID) // every invocation and replay of one Port run
		default:
			key = ledger.SignatureKey(signed.Timestamp, req.Body)
		}
		r.once(ctx, invocation, key, req.Body, creds, o, firstHere)
	}
	r.report(invocation, creds, o)
}

func (r *Relay) aws(ctx, invocation context.Context, req event.Request, o *outcome) {
	r.defaultTarget(o)
	ids, err := payload.Read(req.Body)
	if o.err = err; err != nil {
		return
	}
	creds, err := r.Secrets.Get(ctx)
	if err != nil {
		o.err = err
		return
	}
	if o.err = r.prepare(req.Body, creds, o); o.err != nil {
		return
	}
	var key string
	if ids.ID != "" && len(ids.ID) <= ledger.MaxIDLength {
		key = ledger.EventKey(ids.ID) // EventBridge keeps it across Lambda's retries
	}
	r.once(ctx, invocation, key, req.Body, creds, o, true)
}

// once delivers body at most once for its key across every container: it claims the
// key in the ledger first and records the outcome after. A key delivered before, or
// that may have been, is not sent again (o.held); one being delivered elsewhere right
// now is refused (ErrInProgress). A refusal that queued nothing releases the key, so
// that a retry after the fix goes through. Without a ledger or a key, it delivers as
// the container's memory allows. When the ledger cannot be reached, an HTTP
// invocation is still delivered (Port does not retry; firstHere is the container's
// own memory of its signature), and an AWS event is refused, for Lambda to retry.
func (r *Relay) once(ctx, invocation context.Context, key string, body []byte, creds secret.Credentials, o *outcome, firstHere bool) {
	if r.Ledger == nil || key == "" {
		r.deliver(ctx, body, creds, o)
		return
	}
	claimCtx, cancel := context.WithTimeout(ctx, LedgerBudget)
	claim, err := r.Ledger.Claim(claimCtx, ledger.Record{Key: key, Target: o.target(), RunID: o.runID}, invocationDeadline(invocation))
	cancel()
	var held *ledger.Held
	switch {
	case errors.As(err, &held) && errors.Is(err, ledger.ErrDuplicate):
		o.ledger, o.held = "duplicate", &held.Record
		return
	case errors.Is(err, ledger.ErrInProgress):
		o.ledger, o.err = "inProgress", err
		return
	case err != nil:
		o.ledger, o.ledgerErr = "unavailable", err
		switch {
		case !o.kind.IsHTTP():
			o.err = err
			// Nothing is sent, and Lambda retries: a claim that landed with its answer lost
			// would make the retry read "may have queued". Take it back, if it is there.
			lctx, cancel := ledgerContext(invocation)
			_ = r.Ledger.Release(lctx, claim)
			cancel()
		case !firstHere:
			o.err = signature.ErrReplayed
		default:
			r.deliver(ctx, body, creds, o)
			// The claim may have landed with its answer lost: record the outcome on it
			// if it is there, so that it does not read "may have queued" later.
			_ = r.record(invocation, claim, o)
		}
		return
	}
	o.ledger = "claimed"
	r.deliver(ctx, body, creds, o)
	if err := r.record(invocation, claim, o); err != nil {
		o.ledgerErr = err
	}
}

// record writes the outcome of the delivery claim was for: delivered, or may have
// queued, or, when Azure cannot have queued anything, the claim released for a retry.
func (r *Relay) record(invocation context.Context, claim ledger.Claim, o *outcome) error {
	ctx, cancel := ledgerContext(invocation)
	defer cancel()
	switch rule, _ := classify(o.err); {
	case o.err == nil:
		return r.Ledger.Complete(ctx, claim, ledger.Record{State: ledger.Delivered, AzureStatus: o.azureStatus, AzureRunID: o.azureRunIDText(), Link: o.link})
	case azdo.MayHaveQueued(o.err):
		return r.Ledger.Complete(ctx, claim, ledger.Record{State: ledger.MayHaveQueued, AzureStatus: o.azureStatus, Cause: rule.class})
	default:
		if err := r.Ledger.Release(ctx, claim); err != nil {
			// Nothing was queued, yet the claim stays in progress until its deadline, then
			// reads as "may have been queued": never sent twice, but a retry is not sent either.
			return fmt.Errorf("nothing was queued, but the claim could not be released, so a retry of this delivery will not be sent: %w", err)
		}
		return nil
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

// deliver signs for Azure with the current value. When Azure refuses the signature,
// which queues nothing, it signs once more with the value Azure may hold instead:
// the current one read again, when this container's copy is stale, or else the
// previous version, while the service connection still holds it. Never more than
// these two, each once; any other failure is final, as Azure does not deduplicate.
func (r *Relay) deliver(ctx context.Context, body []byte, creds secret.Credentials, o *outcome) {
	if o.pipeline != nil {
		r.start(ctx, o)
		return
	}
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

// prepare checks what a pipeline by id needs before anything is claimed or sent: the
// run parameters of body and a credential in the secret. A refusal here costs the
// ledger nothing.
func (r *Relay) prepare(body []byte, creds secret.Credentials, o *outcome) error {
	if o.pipeline == nil {
		return nil
	}
	params, err := azdo.RunBody(body, o.pipeline.Branch)
	if err != nil {
		return err
	}
	auth, err := r.azureAuth(creds)
	if err != nil {
		return err
	}
	o.runBody, o.auth = params, auth
	return nil
}

// start starts the pipeline by id with what prepare found. Nothing is retried that
// may have queued a run.
func (r *Relay) start(ctx context.Context, o *outcome) {
	p := *o.pipeline
	begin := time.Now()
	res, err := r.Azure.Run(ctx, p, o.runBody, o.auth)
	o.azureTook += time.Since(begin)
	o.azureStatus, o.attempts = res.Status, res.Attempts
	var azErr *azdo.Error
	if errors.As(err, &azErr) {
		o.azureStatus, o.attempts = azErr.Status, azErr.Attempts
	}
	if errors.Is(err, azdo.ErrPipelineNotFound) {
		// The entry is configuration, not payload: naming it says what to fix.
		err = fmt.Errorf("%w: entry %s=%s/%d", err, p.Name, p.Project, p.ID)
	}
	o.azureRunID, o.link, o.err = res.ID, res.WebURL, err
}

// azureAuth is the credential the secret holds for the Runs API: a PAT, else an Entra
// app, with its client secret or, without one, the relay's AWS identity (Tokens'
// assertion).
func (r *Relay) azureAuth(creds secret.Credentials) (azdo.Auth, error) {
	switch {
	case creds.AzurePAT != "":
		return azdo.PAT(creds.AzurePAT), nil
	case creds.AzureTenantID != "" && r.Tokens != nil:
		return azdo.Entra(r.Tokens, entra.App{TenantID: creds.AzureTenantID, ClientID: creds.AzureClientID, ClientSecret: creds.AzureClientSecret}), nil
	}
	return nil, azdo.ErrNoCredentials
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

// route picks the target: a path ending in /pipelines/{name} selects that pipeline,
// one ending in /webhooks/{name} that webhook from the allow list; any other path
// the default.
func (r *Relay) route(path string, o *outcome) error {
	for _, door := range []string{"/pipelines/", "/webhooks/"} {
		i := strings.LastIndex(path, door)
		if i < 0 {
			continue
		}
		name := strings.TrimSuffix(path[i+len(door):], "/")
		if !azdo.ValidName(name) {
			return fmt.Errorf("%w: the name after %s must match [-_A-Za-z0-9]+", ErrRoute, door)
		}
		if door == "/pipelines/" {
			for i := range r.Pipelines {
				if r.Pipelines[i].Name == name {
					o.pipeline = &r.Pipelines[i]
					return nil
				}
			}
			return fmt.Errorf("%w: %q", ErrPipelineRoute, name)
		}
		if slices.Contains(r.Allowed, name) {
			o.webhook = name
			return nil
		}
		return fmt.Errorf("%w: %q", ErrRoute, name)
	}
	r.defaultTarget(o)
	return nil
}

// defaultTarget is the webhook AZURE_DEVOPS_WEBHOOK names, or else the first pipeline.
func (r *Relay) defaultTarget(o *outcome) {
	if r.Webhook == "" && len(r.Pipelines) > 0 {
		o.pipeline = &r.Pipelines[0]
		return
	}
	o.webhook = r.Webhook
}

// target names what the invocation went to, for the ledger and the log.
func (o *outcome) target() string {
	if o.pipeline != nil {
		return o.pipeline.Name
	}
	return o.webhook
}

func (o *outcome) azureRunIDText() string {
	if o.azureRunID == 0 {
		return ""
	}
	return strconv.Itoa(o.azureRunID)
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
	if r.Report == nil || o.runID == "" || creds.ClientID == "" || o.held != nil ||
		errors.Is(o.err, ledger.ErrInProgress) || errors.Is(o.err, signature.ErrReplayed) {
		return // a repeat, or one delivered elsewhere right now: the first invocation reports
	}
	ctx, cancel := reportContext(invocation)
	defer cancel()
	pc := portapi.Credentials{ClientID: creds.ClientID, ClientSecret: creds.ClientSecret}
	var err error
	switch rule, say := classify(o.err); {
	case o.err == nil && o.pipeline != nil:
		// The run's id and page are known at once: the Port run shows them now, and the
		// status function finds the Port run by this externalRunId.
		err = r.Report.Update(ctx, pc, o.runID, portapi.RunUpdate{StatusLabel: "Queued in Azure DevOps", Link: o.link, ExternalRunID: portapi.ExternalRunID(r.Org, o.azureRunIDText())})
		if err == nil {
			err = r.Report.Log(ctx, pc, o.runID, fmt.Sprintf("Azure DevOps started pipeline %s: run %d.", o.pipeline.Name, o.azureRunID))
		}
	case o.err == nil:
		err = r.Report.Log(ctx, pc, o.runID, fmt.Sprintf("Azure DevOps accepted webhook %s (pipeline queued).", o.webhook))
	case azdo.MayHaveQueued(o.err):
		err = r.Report.Log(ctx, pc, o.runID, fmt.Sprintf("%s The pipeline behind %s may be running: look at its runs in Azure DevOps before you run this action again. If it runs, this run follows it to its end.", say, o.describe()))
		if err == nil {
			err = r.Report.Update(ctx, pc, o.runID, portapi.RunUpdate{StatusLabel: MayHaveQueuedLabel + " (" + strings.ToLower(rule.label) + ")"})
		}
	default:
		err = r.Report.Update(ctx, pc, o.runID, portapi.RunUpdate{Status: "FAILURE", StatusLabel: rule.label, Summary: say})
	}
	if err != nil {
		r.Log.Warn("report to Port failed", "runId", o.runID, "target", o.target(), "error", err.Error())
	}
}

// describe names the target for a sentence: "webhook deploy" or "pipeline deploy".
func (o *outcome) describe() string {
	if o.pipeline != nil {
		return "pipeline " + o.pipeline.Name
	}
	return "webhook " + o.webhook
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

// answer is every JSON body the relay answers but an HTTP error's {"error": …}.
type answer struct {
	Forwarded     bool   `json:"forwarded"`
	MayHaveQueued bool   `json:"mayHaveQueued,omitempty"`
	Webhook       string `json:"webhook,omitempty"`
	Pipeline      string `json:"pipeline,omitempty"`
	AzureStatus   int    `json:"azureStatus,omitempty"`
	AzureRunID    int    `json:"azureRunId,omitempty"`
	Link          string `json:"link,omitempty"`
	RunID         string `json:"runId,omitempty"`
	Duplicate     bool   `json:"duplicate,omitempty"`
	Error         string `json:"error,omitempty"`
}

// names sets the target of a: the webhook or the pipeline.
func (a answer) names(o *outcome, name string) answer {
	if o.pipeline != nil {
		a.Pipeline = name
	} else {
		a.Webhook = name
	}
	return a
}

func (o *outcome) response() event.Response {
	resp := event.Response{HTTP: o.kind.IsHTTP(), Kind: o.kind, Status: http.StatusOK}
	if h := o.held; h != nil {
		// Nothing was sent: the first delivery's answer, said to be a repeat. A result,
		// not a function error, so that Lambda stops retrying.
		delivered := h.State == ledger.Delivered
		id, _ := strconv.Atoi(h.AzureRunID)
		resp.Body, _ = json.Marshal(answer{Forwarded: delivered, MayHaveQueued: !delivered, AzureStatus: h.AzureStatus,
			AzureRunID: id, Link: h.Link, RunID: o.runID, Duplicate: true}.names(o, h.Target))
		return resp
	}
	if o.err != nil {
		rule, say := classify(o.err)
		resp.Status, resp.Error = rule.status, say
		if !resp.HTTP && azdo.MayHaveQueued(o.err) {
			// A result, not a function error: Lambda must not invoke again.
			resp.MayHaveQueued = true
			resp.Body, _ = json.Marshal(answer{MayHaveQueued: true, AzureStatus: o.azureStatus, Error: say}.names(o, o.target()))
			return resp
		}
		resp.Body, _ = json.Marshal(struct {
			Error string `json:"error"`
		}{say})
		return resp
	}
	resp.Body, _ = json.Marshal(answer{Forwarded: true, AzureStatus: o.azureStatus, AzureRunID: o.azureRunID, Link: o.link, RunID: o.runID}.names(o, o.target()))
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
	if o.pipeline != nil {
		attrs = append(attrs, slog.String("pipeline", o.pipeline.Name))
	} else if o.webhook != "" {
		attrs = append(attrs, slog.String("webhook", o.webhook))
	}
	if o.azureRunID != 0 {
		attrs = append(attrs, slog.Int("azureRunId", o.azureRunID))
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
	if o.ledger != "" {
		attrs = append(attrs, slog.String("ledger", o.ledger))
	}
	if h := o.held; h != nil {
		attrs = append(attrs, slog.Bool("duplicate", true), slog.String("firstOutcome", string(h.State)))
	}
	if o.ledgerErr != nil {
		attrs = append(attrs, slog.String("ledgerError", o.ledgerErr.Error()))
	}
	level, msg := slog.LevelInfo, "forwarded"
	if o.held != nil {
		msg = "duplicate"
	}
	if o.ledgerErr != nil {
		// Beside a delivery that went on (or was refused): the ledger's own failure.
		level = slog.LevelError
	}
	if o.err != nil {
		attrs = append(attrs, slog.String("error", o.err.Error()))
		if azdo.MayHaveQueued(o.err) {
			attrs = append(attrs, slog.Bool("mayHaveQueued", true))
		}
		if errors.Is(o.err, secret.ErrUnavailable) || errors.Is(o.err, secret.ErrNotFound) ||
			errors.Is(o.err, secret.ErrEmpty) || errors.Is(o.err, secret.ErrMalformed) {
			attrs = append(attrs, slog.String("secretId", r.Secrets.ID()))
		}
		level, msg = max(level, slog.LevelWarn), "refused"
		if status >= 500 || !o.kind.IsHTTP() {
			level, msg = slog.LevelError, "failed"
		}
	}
	r.Log.LogAttrs(context.Background(), level, msg, r.measure(attrs, o)...)
}
