package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/payload"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/secret"
)

// Runner starts a pipeline by id through the Runs API; *azdo.Client is one.
type Runner interface {
	Run(ctx context.Context, p azdo.Pipeline, body []byte, auth azdo.Auth) (azdo.RunResult, error)
}

// Pipeline is the target of a pipeline started by id in the organization org: only
// the run parameters of the body are sent, with the credential the secret holds (a
// PAT, or an Entra app whose tokens come from tokens, nil when there is none). Azure
// names the run at once, so the Port run shows it, and the status function finds the
// Port run by that id (portapi.ExternalRunID).
func Pipeline(org string, p azdo.Pipeline, azure Runner, tokens *entra.Client) Target {
	return pipeline{org, p, azure, tokens}
}

type pipeline struct {
	org    string
	p      azdo.Pipeline
	azure  Runner
	tokens *entra.Client
}

func (t pipeline) Name() string { return t.p.Name }
func (t pipeline) Door() string { return "pipeline" }
func (t pipeline) Subject() string {
	return fmt.Sprintf("Pipeline %s (project %s, pipeline id %d)", t.p.Name, t.p.Project, t.p.ID)
}

// Prepare keeps the run parameters of body, and finds the credential in the secret.
// The keys an incoming webhook reserves mean nothing here.
func (t pipeline) Prepare(body []byte, _ payload.IDs, creds secret.Credentials) (Prepared, error) {
	params, err := azdo.RunBody(body, t.p.Branch)
	if err != nil {
		return Prepared{}, err
	}
	auth, err := t.auth(creds)
	if err != nil {
		return Prepared{}, err
	}
	return Prepared{Body: params, Creds: creds, Auth: auth}, nil
}

// auth is the credential creds holds for the Runs API: a PAT, else an Entra app, with
// its client secret or, without one, the relay's AWS identity (the tokens' assertion).
func (t pipeline) auth(creds secret.Credentials) (azdo.Auth, error) {
	switch {
	case creds.AzurePAT != "":
		return azdo.PAT(creds.AzurePAT), nil
	case creds.AzureTenantID != "" && t.tokens != nil:
		return azdo.Entra(t.tokens, entra.App{TenantID: creds.AzureTenantID, ClientID: creds.AzureClientID, ClientSecret: creds.AzureClientSecret}), nil
	}
	return nil, azdo.ErrNoCredentials
}

// Send starts the pipeline. When Azure or Entra refuses the credential, which queues
// nothing, it reads the secret again and, if the credential was rotated, tries once
// more with the new one. Only a request Port signed gets here, so the read costs what
// Port's traffic does, and a stranger's bad signature, which may use up Renew's
// bounded read, cannot hold this one back.
func (t pipeline) Send(ctx context.Context, p Prepared, keys Keys) (Sent, error) {
	var s Sent
	err := t.run(ctx, p.Body, p.Auth, &s)
	if !errors.Is(err, azdo.ErrCredentials) && !errors.Is(err, entra.ErrRefused) {
		return s, err
	}
	keys.Current.Invalidate()
	renewed, rerr := keys.Current.Get(ctx) // the cached value, if the read fails
	if rerr != nil || !azureCredentialChanged(p.Creds, renewed) {
		return s, err
	}
	auth, aerr := t.auth(renewed)
	if aerr != nil {
		return s, err
	}
	s.Rotated = secret.StageCurrent
	return s, t.run(ctx, p.Body, auth, &s)
}

// run makes one Runs API call, adding its attempts and time to s.
func (t pipeline) run(ctx context.Context, body []byte, auth azdo.Auth, s *Sent) error {
	begin := time.Now()
	res, err := t.azure.Run(ctx, t.p, body, auth)
	s.Took += time.Since(begin)
	status, attempts := azureAnswer(res.Status, res.Attempts, err)
	s.Status, s.Attempts = status, s.Attempts+attempts
	s.RunID, s.Link, s.Followed = res.ID, res.WebURL, res.ID != 0
	if errors.Is(err, azdo.ErrPipelineNotFound) {
		// The entry is configuration, not payload: naming it says what to fix.
		err = fmt.Errorf("%w: entry %s=%s/%d", err, t.p.Name, t.p.Project, t.p.ID)
	}
	return err
}

func (t pipeline) Started(s Sent) (portapi.RunUpdate, string) {
	return portapi.RunUpdate{StatusLabel: "Queued in Azure DevOps", Link: s.Link, ExternalRunID: portapi.ExternalRunID(t.org, strconv.Itoa(s.RunID))},
		fmt.Sprintf("Azure DevOps started pipeline %s: run %d.", t.p.Name, s.RunID)
}

// azureCredentialChanged reports whether renewed holds another Azure credential than old.
func azureCredentialChanged(old, renewed secret.Credentials) bool {
	return old.AzurePAT != renewed.AzurePAT || old.AzureTenantID != renewed.AzureTenantID ||
		old.AzureClientID != renewed.AzureClientID || old.AzureClientSecret != renewed.AzureClientSecret
}
