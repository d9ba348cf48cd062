package relay

import (
	"context"
	"errors"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/payload"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/secret"
)

// A Target is where the relay delivers: an incoming webhook (webhook.go) or a pipeline
// started by id (pipeline.go). Targets are values built from the configuration at
// start-up; adding a kind is a file that implements this, and its door in Routes.
type Target interface {
	// Name is the relay's name for the target, as its path and its answers write it.
	Name() string
	// Door is the kind, as the answer's key and the log line's name it: "webhook",
	// "pipeline". Its path is /{Door}s/{Name}.
	Door() string
	// Prepare checks, before anything is claimed or sent, what the target needs of the
	// body and the secret, and returns what Send sends.
	Prepare(body []byte, ids payload.IDs, creds secret.Credentials) (Prepared, error)
	// Send delivers p once. When Azure or Entra refuses a credential, which queues
	// nothing, it may take another from keys and try once more; nothing else is retried
	// that may have queued a run.
	Send(ctx context.Context, p Prepared, keys Keys) (Sent, error)
	// Started is what the Port run is told once Azure took the delivery: an update
	// (empty for none) and a log line.
	Started(s Sent) (portapi.RunUpdate, string)
	// Subject names, in a sentence, the pipeline that may be running after an
	// ambiguous failure: "The pipeline behind webhook deploy".
	Subject() string
}

// Prepared is a delivery ready to send: the bytes for Azure and the credential.
type Prepared struct {
	Body  []byte
	Creds secret.Credentials // the secret as read for this delivery
	Auth  azdo.Auth          // a target that signs in (the Runs API); nil for one that signs the body
}

// Sent is what Azure answered to a delivery, its retries and a second credential
// included.
type Sent struct {
	Status   int           // Azure's last HTTP status; 0 for none
	Attempts int           // requests sent
	Took     time.Duration // in Azure's calls, waits included
	RunID    int           // the Azure run, when the target's answer names one
	Link     string        // its page
	// Rotated says which value of the secret Azure took or refused last, when not the
	// first: secret.StageCurrent (read again) or secret.StagePrevious.
	Rotated string
	// Followed: the status function can follow the run to its end (by the run's name,
	// or by its Azure run id).
	Followed bool
}

// azureAnswer reads Azure's status and attempts from a call's result or its error.
func azureAnswer(status, attempts int, err error) (int, int) {
	var azErr *azdo.Error
	if errors.As(err, &azErr) {
		return azErr.Status, azErr.Attempts
	}
	return status, attempts
}

// Keys gives a target the secret again after Azure refused a credential from it;
// the relay's Secrets and PreviousSecrets are its parts.
type Keys struct {
	Current  Secrets
	Previous PreviousSecrets // nil: none
}

// Routes are where a request may go: by the door its path names, /webhooks/{name} or
// /pipelines/{name}, and the name after it; any other path goes to Default.
type Routes struct {
	Default Target
	Doors   map[string]Door // by the path's segment before the name: "webhooks", "pipelines"
}

// A Door is the targets a path segment selects by name, and the error for a name
// that is none of them.
type Door struct {
	Targets    map[string]Target
	NotAllowed error
}

// Azure is what the targets call: *azdo.Client is one.
type Azure interface {
	Deliverer
	Runner
}

// NewRoutes builds the routes of a configuration: the default webhook (or, when there
// is none, the first pipeline), the webhooks a path may name, and the pipelines by id
// of the organization org; tokens serves Entra apps' tokens, nil without pipelines.
func NewRoutes(org, defaultWebhook string, webhooks []string, pipelines []azdo.Pipeline, azure Azure, tokens *entra.Client) Routes {
	rt := Routes{Doors: map[string]Door{
		"webhooks":  {Targets: map[string]Target{}, NotAllowed: ErrRoute},
		"pipelines": {Targets: map[string]Target{}, NotAllowed: ErrPipelineRoute},
	}}
	for _, name := range webhooks {
		rt.Doors["webhooks"].Targets[name] = Webhook(name, azure)
	}
	for _, p := range pipelines {
		rt.Doors["pipelines"].Targets[p.Name] = Pipeline(org, p, azure, tokens)
	}
	switch {
	case defaultWebhook != "":
		rt.Default = Webhook(defaultWebhook, azure)
	case len(pipelines) > 0:
		rt.Default = rt.Doors["pipelines"].Targets[pipelines[0].Name]
	}
	return rt
}
