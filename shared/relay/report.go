package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

// MayHaveQueuedLabel begins the status label of a Port run whose delivery may have
// queued a pipeline run.
const MayHaveQueuedLabel = "May have been queued: check Azure DevOps"

// report tells Port how delivery of a run went, within its own budget; it never
// changes the answer. Success adds what the target says (a log line; for a pipeline
// by id, its link and externalRunId at once) and leaves the run to the pipeline.
//
// A failure ends the run FAILURE only when it is this invocation's own: the ledger
// took its claim or its refusal. Without that the relay cannot tell a first request
// from a replay of a run it delivered (elsewhere, or to another path: the path is
// not signed), so the run gets the reason as a log line and a label, and keeps its
// status. After an ambiguous failure the run may well be running: when the status
// function can follow it, the run gets a log line and a label that say so and where
// to look, and stays in progress for the pipeline's own result (ending it FAILURE
// would be contradicted by the pipeline, and the user would run it again, a second
// deploy). When nothing can follow it (no Azure run id), it says so, and ends.
//
// It returns what Port refused or could not take, for the invocation's log line.
func (r *Relay) report(invocation context.Context, creds secret.Credentials, d done) error {
	if r.Report == nil || d.runID == "" || creds.ClientID == "" || d.kept.held != nil ||
		errors.Is(d.err, ledger.ErrInProgress) || errors.Is(d.err, signature.ErrReplayed) {
		return nil // a repeat, or one delivered elsewhere right now: the first invocation reports
	}
	ctx, cancel := reportContext(invocation)
	defer cancel()
	tell := teller{r.Report, ctx, portapi.Credentials{ClientID: creds.ClientID, ClientSecret: creds.ClientSecret}, d.runID}
	var err error
	switch a, say := classify(d.err); {
	case d.kept.queued > 0:
		// Not the refusal's sentence, which says to try again: a second click would be a
		// second run once the queue drains.
		busy := strings.ToLower(a.Label)
		by := time.Now().Add(r.maxAge()).UTC().Format("15:04 MST")
		err = tell.label("Azure DevOps cannot take this run now ("+busy+"). The relay queued this run: the pipeline starts when Azure DevOps takes it, "+
			"or this run ends FAILURE by "+by+" (QUEUE_MAX_AGE). Do not run the action again.", "Queued: Azure DevOps is busy ("+busy+")")
	case d.err == nil:
		update, line := d.target.Started(d.sent)
		if d.drained > 0 {
			line = strings.TrimSuffix(line, ".") + fmt.Sprintf(", after %d attempts.", d.drained)
			if update.StatusLabel == "" {
				update.StatusLabel = "Accepted by Azure DevOps" // in place of the queued label
			}
		}
		err = tell.update(update, line)
	case azdo.MayHaveQueued(d.err):
		label := MayHaveQueuedLabel + " (" + strings.ToLower(a.Label) + ")"
		say += " " + d.target.Subject() + " may be running: look at its runs in Azure DevOps before you run this action again."
		switch {
		case d.sent.Followed:
			err = tell.label(say+" If it runs, this run follows it to its end.", label)
		case d.kept.own():
			err = tell.update(portapi.RunUpdate{Status: "FAILURE", StatusLabel: label, Summary: say + " Azure gave no run id, so this Port run will not follow it."}, "")
		default:
			err = tell.label(say+" Azure gave no run id, so this Port run will not follow it.", label)
		}
	case d.kept.own():
		err = tell.update(portapi.RunUpdate{Status: "FAILURE", StatusLabel: a.Label, Summary: say}, "")
	default:
		err = tell.label(say, a.Label)
	}
	if errors.Is(err, portapi.ErrRunEnded) {
		return nil // a redriven delivery's run ended when it expired: Port keeps that end
	}
	return err
}

// teller tells one Port run.
type teller struct {
	port  Reporter
	ctx   context.Context
	creds portapi.Credentials
	runID string
}

// update changes the run, when u says anything, then adds line to its log, when set.
// An update is tried again while Port cannot take it and the budget lasts: it replaces
// the keys it names, so a repeat is harmless, and the externalRunId it may carry is
// how the status function finds the run.
func (t teller) update(u portapi.RunUpdate, line string) error {
	if u != (portapi.RunUpdate{}) {
		err := t.port.Update(t.ctx, t.creds, t.runID, u)
		for wait := 100 * time.Millisecond; errors.Is(err, portapi.ErrUnavailable) && t.ctx.Err() == nil; wait *= 3 {
			select {
			case <-time.After(wait):
			case <-t.ctx.Done():
			}
			err = t.port.Update(t.ctx, t.creds, t.runID, u)
		}
		if err != nil {
			return err
		}
	}
	if line == "" {
		return nil
	}
	return t.port.Log(t.ctx, t.creds, t.runID, line)
}

// label tells the run what happened with a log line and a label, and leaves its
// status as it is.
func (t teller) label(line, label string) error {
	if err := t.port.Log(t.ctx, t.creds, t.runID, line); err != nil {
		return err
	}
	return t.port.Update(t.ctx, t.creds, t.runID, portapi.RunUpdate{StatusLabel: label})
}

// reportContext gives the report ReportBudget, ending Margin before the Lambda
// deadline at the latest, whatever the work used.
func reportContext(invocation context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(ReportBudget)
	if d, ok := invocation.Deadline(); ok && d.Add(-Margin).Before(deadline) {
		deadline = d.Add(-Margin)
	}
	return context.WithDeadline(context.WithoutCancel(invocation), deadline)
}
