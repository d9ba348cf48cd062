package relay

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/secret"
)

// reply is every JSON body the relay answers but an HTTP error's {"error": …}.
type reply struct {
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
	Queued        bool   `json:"queued,omitempty"`
	RetryAfter    int    `json:"retryAfter,omitempty"` // seconds until a queued delivery is tried again
}

// names sets the target of a under its door's key.
func (a reply) names(door, name string) reply {
	if door == "pipeline" {
		a.Pipeline = name
	} else {
		a.Webhook = name
	}
	return a
}

func (d done) response() event.Response {
	resp := event.Response{HTTP: d.kind.IsHTTP(), Kind: d.kind, Status: http.StatusOK}
	if d.kept.queued > 0 {
		// Put aside until Azure can take it: accepted, not yet delivered. A result, not
		// a function error, for an AWS event: the queue retries it, not Lambda.
		if resp.HTTP {
			resp.Status = http.StatusAccepted
		}
		resp.Body, _ = json.Marshal(reply{Queued: true, AzureStatus: d.sent.Status, RunID: d.runID,
			RetryAfter: int(d.kept.queued.Round(time.Second) / time.Second)}.names(targetDoor(d.target), targetName(d.target)))
		return resp
	}
	if h := d.kept.held; h != nil && h.State == ledger.Queued {
		if resp.HTTP {
			resp.Status = http.StatusAccepted
		}
		resp.Body, _ = json.Marshal(reply{Queued: true, AzureStatus: h.AzureStatus, RunID: d.runID, Duplicate: true}.names(h.Door, h.Target))
		return resp
	}
	if h := d.kept.held; h != nil && (h.State == ledger.Refused || h.State == ledger.Expired) {
		// Nothing was sent, then or now: the first answer, said to be a repeat.
		a, say := answers.ByKey(h.Cause) // the first answer's detail was its request's, and is not kept
		resp.Status, resp.Error = a.Status, say
		resp.Body, _ = json.Marshal(struct {
			Error     string `json:"error"`
			Duplicate bool   `json:"duplicate"`
		}{say, true})
		return resp
	}
	if h := d.kept.held; h != nil {
		// Nothing was sent: the first delivery's answer, said to be a repeat. A result,
		// not a function error, so that Lambda stops retrying.
		delivered := h.State == ledger.Delivered
		id, _ := strconv.Atoi(h.AzureRunID)
		door := h.Door
		if door == "" {
			door = targetDoor(d.target)
		}
		resp.Body, _ = json.Marshal(reply{Forwarded: delivered, MayHaveQueued: !delivered, AzureStatus: h.AzureStatus,
			AzureRunID: id, Link: h.Link, RunID: d.runID, Duplicate: true}.names(door, h.Target))
		return resp
	}
	if d.err != nil {
		a, say := classify(d.err)
		resp.Status, resp.Error = a.Status, say
		if !resp.HTTP && azdo.MayHaveQueued(d.err) {
			// A result, not a function error: Lambda must not invoke again.
			resp.MayHaveQueued = true
			resp.Body, _ = json.Marshal(reply{MayHaveQueued: true, AzureStatus: d.sent.Status, Error: say}.names(targetDoor(d.target), targetName(d.target)))
			return resp
		}
		resp.Body, _ = json.Marshal(struct {
			Error string `json:"error"`
		}{say})
		return resp
	}
	resp.Body, _ = json.Marshal(reply{Forwarded: true, AzureStatus: d.sent.Status, AzureRunID: d.sent.RunID, Link: d.sent.Link, RunID: d.runID}.names(targetDoor(d.target), targetName(d.target)))
	return resp
}

func targetName(t Target) string {
	if t == nil {
		return ""
	}
	return t.Name()
}

func targetDoor(t Target) string {
	if t == nil {
		return ""
	}
	return t.Door()
}

func runIDText(id int) string {
	if id == 0 {
		return ""
	}
	return strconv.Itoa(id)
}

// logLine writes the invocation's one JSON line: ids, outcomes and its metrics, never
// a secret or a payload.
func (r *Relay) logLine(requestID string, d done, status int, took time.Duration) {
	attrs := []slog.Attr{
		slog.String("requestId", requestID),
		slog.String("kind", string(d.kind)),
		slog.Int("status", status),
		slog.Float64("durationMs", float64(took.Microseconds())/1000),
	}
	if d.source.IsValid() {
		attrs = append(attrs, slog.String("sourceIp", d.source.String())) // an address is not a secret
	}
	if d.target != nil {
		attrs = append(attrs, slog.String(d.target.Door(), d.target.Name()))
	}
	if d.sent.RunID != 0 {
		attrs = append(attrs, slog.Int("azureRunId", d.sent.RunID))
	}
	if d.runID != "" {
		attrs = append(attrs, slog.String("runId", d.runID))
	}
	if d.sent.Attempts > 0 {
		attrs = append(attrs, slog.Int("azureStatus", d.sent.Status), slog.Int("attempts", d.sent.Attempts))
	}
	if d.sent.Rotated != "" {
		// Azure refused the first credential: a rotation is under way (see docs/operations.md).
		attrs = append(attrs, slog.String("azureSecret", d.sent.Rotated))
	}
	if d.kept.state != "" {
		attrs = append(attrs, slog.String("ledger", d.kept.state))
	}
	if h := d.kept.held; h != nil {
		attrs = append(attrs, slog.Bool("duplicate", true), slog.String("firstOutcome", string(h.State)))
	}
	if d.kept.err != nil {
		attrs = append(attrs, slog.String("ledgerError", d.kept.err.Error()))
	}
	if d.unreported != nil {
		attrs = append(attrs, slog.String("reportError", d.unreported.Error()))
	}
	if d.kept.unqueued != nil {
		attrs = append(attrs, slog.String("queueError", d.kept.unqueued.Error()))
	}
	if d.kept.queued > 0 {
		attrs = append(attrs, slog.Bool("queued", true), slog.Int("retryAfter", int(d.kept.queued/time.Second)))
	}
	if d.message != "" {
		attrs = append(attrs, slog.String("messageId", d.message))
	}
	if d.drained > 0 {
		attrs = append(attrs, slog.Int("drained", d.drained)) // tries, this one included
	}
	level, msg := slog.LevelInfo, "forwarded"
	if d.kept.held != nil {
		msg = "duplicate"
	}
	if d.kept.queued > 0 {
		// Not a failure: the delivery waits on the queue, and the error says why.
		r.Log.LogAttrs(context.Background(), slog.LevelWarn, "queued", r.measure(append(attrs, slog.String("error", d.err.Error())), d)...)
		return
	}
	if d.kept.err != nil || d.unreported != nil || d.kept.unqueued != nil {
		// Beside a delivery that went on (or was refused): the ledger's own failure, or
		// Port's, which leaves the Port run unaware of it.
		level = slog.LevelError
	}
	if d.err != nil {
		attrs = append(attrs, slog.String("error", d.err.Error()))
		if azdo.MayHaveQueued(d.err) {
			attrs = append(attrs, slog.Bool("mayHaveQueued", true))
		}
		if errors.Is(d.err, secret.ErrUnavailable) || errors.Is(d.err, secret.ErrNotFound) ||
			errors.Is(d.err, secret.ErrEmpty) || errors.Is(d.err, secret.ErrMalformed) {
			attrs = append(attrs, slog.String("secretId", r.Secrets.ID()))
		}
		level, msg = max(level, slog.LevelWarn), "refused"
		if status >= 500 || !d.kind.IsHTTP() {
			level, msg = slog.LevelError, "failed"
		}
	}
	r.Log.LogAttrs(context.Background(), level, msg, r.measure(attrs, d)...)
}
