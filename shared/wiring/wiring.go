// Package wiring checks the chain from Port's action to the Port run's end, link by
// link: the secret, Port's actions, the Azure DevOps credential, the pipelines and
// the service hook subscriptions that report to the status function; it creates or
// re-enables the subscriptions it finds missing or disabled, when asked.
package wiring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/secret"
)

// State is a check's outcome.
type State int

// The outcomes: a check that could not be made (a credential without the scope, a
// link before it broken) is NotChecked, never OK.
const (
	OK State = iota
	Failed
	NotChecked
)

// Result is one check: what was checked, what was found, and the one fix when it
// is not OK. None holds a secret, a token or a password.
type Result struct {
	Check string
	State State
	Say   string
	Fix   string
}

// Stack is the wiring one stack is configured with.
type Stack struct {
	Name     string // the CloudFormation stack's name, for alarm names; may be empty
	RelayURL string // the relay API's base URL (the RelayUrl output)
	HookURL  string // the status function's URL (the AzureServiceHookUrl output)
	SecretID string
	Org      string
	// Webhook is the default webhook (POST /), or empty when the first pipeline is.
	Webhook   string
	Webhooks  []string
	Pipelines []azdo.Pipeline
	// Projects are projects named besides the pipelines' (webhook-only wiring), by
	// name or id: the subscriptions expected there too.
	Projects []string
	// Federation says the stack lets the relay's role be its Entra identity
	// (AzureFederation); unknown from the environment alone.
	Federation *bool
}

// Action is what the checks read of one of Port's actions or automations.
type Action struct {
	Identifier   string
	Type         string // invocationMethod.type: WEBHOOK, …
	URL          string
	Synchronized bool
	Body         json.RawMessage // invocationMethod.body, as Port stores it
}

// Errors an ActionLister returns, so that the checks can say which side to fix.
var (
	ErrPortRefused     = errors.New("wiring: Port refused the client credentials")
	ErrPortUnavailable = errors.New("wiring: Port's API could not be reached")
)

// ActionLister lists Port's actions and automations with the secret's Port
// credentials (GET /v1/actions).
type ActionLister func(ctx context.Context, clientID, clientSecret string) ([]Action, error)

// Doctor runs the checks. Secrets, Azure and Tokens are the clients the functions
// use; Port may be nil (Port is then not checked).
type Doctor struct {
	Stack   Stack
	Secrets secret.Getter
	Azure   *azdo.Client
	Tokens  *entra.Client // Entra's, for a secret that holds an Entra app
	Port    ActionLister
	// PAT, when set, is the Azure DevOps credential used instead of the secret's
	// (AZURE_DEVOPS_PAT of the doctor's shell: webhook-only wiring has none stored).
	PAT string
}

// Run makes every check, in the chain's order, and with fix creates the missing
// subscriptions and re-enables the disabled ones.
func (d *Doctor) Run(ctx context.Context, fix bool) []Result {
	creds, results, ok := d.checkSecret(ctx)
	if d.Port != nil {
		results = append(results, d.checkPort(ctx, creds, ok)...)
	}
	return append(results, d.checkAzure(ctx, creds, ok, fix)...)
}

func failed(check, say, fix string) Result {
	return Result{Check: check, State: Failed, Say: say, Fix: fix}
}
func notChecked(check, say, fix string) Result {
	return Result{Check: check, State: NotChecked, Say: say, Fix: fix}
}
func passed(check, say string) Result { return Result{Check: check, State: OK, Say: say} }

// checkSecret reads the secret and checks that it holds what the doors configured need.
func (d *Doctor) checkSecret(ctx context.Context) (secret.Credentials, []Result, bool) {
	const check = "secret"
	creds, err := secret.NewSource(d.Secrets, d.Stack.SecretID, 0, nil).Get(ctx)
	switch {
	case errors.Is(err, secret.ErrNotFound):
		return creds, []Result{failed(check, fmt.Sprintf("%s does not exist", d.Stack.SecretID),
			"create it (README, Deploy step 1) or set PORT_SECRET_ID / PortSecretArn to its ARN")}, false
	case errors.Is(err, secret.ErrEmpty), errors.Is(err, secret.ErrMalformed):
		return creds, []Result{failed(check, "it cannot be read as the functions read it: "+err.Error(),
			"store a JSON object of strings with clientSecret (docs/deploy.md)")}, false
	case err != nil:
		return creds, []Result{failed(check, "Secrets Manager did not give it to this identity: "+err.Error(),
			"run with credentials that may read it (secretsmanager:GetSecretValue, and kms:Decrypt for its key)")}, false
	}
	var out []Result
	held := []string{"clientSecret"}
	for _, k := range []struct{ name, value, why string }{
		{"clientId", creds.ClientID, "without it no function reports to Port: Port runs never end"},
		{"serviceHookPassword", creds.ServiceHookPassword, "without it the status function refuses every service hook notification"},
	} {
		if k.value == "" {
			out = append(out, failed(check, "no "+k.name+": "+k.why, "add "+k.name+" to the secret (docs/deploy.md)"))
			continue
		}
		held = append(held, k.name)
	}
	if creds.AzureWebhookSecret != "" {
		held = append(held, "azureWebhookSecret")
	}
	switch {
	case creds.AzurePAT != "":
		held = append(held, "azurePat")
	case creds.AzureTenantID != "" && creds.AzureClientSecret != "":
		held = append(held, "azureTenantId", "azureClientId", "azureClientSecret")
	case creds.AzureTenantID != "":
		held = append(held, "azureTenantId", "azureClientId")
		if f := d.Stack.Federation; f != nil && !*f {
			out = append(out, failed(check, "an Entra app without azureClientSecret, on a stack with AzureFederation false: the relay cannot sign in",
				"deploy with AzureFederation=true (docs/federation.md), or add azureClientSecret"))
		}
	case len(d.Stack.Pipelines) > 0:
		out = append(out, failed(check, "no Azure credential for the pipelines started by id",
			"add azurePat, or azureTenantId and azureClientId (docs/pipelines.md)"))
	}
	if len(out) == 0 {
		out = append(out, passed(check, d.Stack.SecretID+" holds "+strings.Join(held, ", ")))
	}
	return creds, out, true
}

// checkPort checks Port's credentials and the actions whose URL is this stack's relay.
func (d *Doctor) checkPort(ctx context.Context, creds secret.Credentials, readable bool) []Result {
	const check = "Port"
	switch {
	case !readable:
		return []Result{notChecked(check, "the secret could not be read", "fix the secret first")}
	case creds.ClientID == "":
		return []Result{notChecked(check, "the secret has no clientId", "add clientId to the secret")}
	}
	actions, err := d.Port(ctx, creds.ClientID, creds.ClientSecret)
	switch {
	case errors.Is(err, ErrPortRefused):
		return []Result{failed(check, "Port refused the secret's clientId and clientSecret",
			"copy both from Port (… → Credentials) into the secret; a US organization needs PortApiUrl https://api.us.port.io")}
	case err != nil:
		return []Result{failed(check, "Port's API could not be asked for the actions: "+err.Error(), "check PortApiUrl and try again")}
	}
	out := []Result{passed(check, fmt.Sprintf("Port accepts the secret's credentials (%d actions and automations)", len(actions)))}
	relay, _ := url.Parse(d.Stack.RelayURL)
	ours := 0
	for _, a := range actions {
		if !strings.EqualFold(a.Type, "WEBHOOK") {
			continue
		}
		u, err := url.Parse(a.URL)
		if err != nil || relay == nil {
			continue
		}
		name := "Port action " + a.Identifier
		route, routed := d.route(u.Path)
		if !strings.EqualFold(u.Host, relay.Host) {
			if routed && route != "/" && strings.Contains(u.Host, ".execute-api.") {
				out = append(out, failed(name, "posts "+route+" to another relay, "+u.Host,
					"if it is meant for this stack, set its URL to "+strings.TrimRight(d.Stack.RelayURL, "/")+route))
			}
			continue
		}
		ours++
		before := len(out)
		if !routed {
			out = append(out, failed(name, "posts to "+u.Path+", which names no webhook or pipeline of this stack (the relay answers 404)",
				"use "+strings.TrimRight(d.Stack.RelayURL, "/")+"/webhooks/<name> or /pipelines/<name> with a name in AzureDevOpsWebhooks or AzureDevOpsPipelines"))
		}
		if a.Synchronized {
			out = append(out, failed(name, `is "synchronized": true: Port ends the run with the relay's answer and refuses its later updates`,
				`set "synchronized": false`))
		}
		if !carriesRunID(a.Body) {
			out = append(out, failed(name, "its body does not carry port_context.runId: the relay and the status function cannot find the Port run",
				`add "port_context": {"runId": "{{ .run.id }}"} to its body`))
		}
		if len(out) == before {
			out = append(out, passed(name, "posts to "+route+", not synchronized, with port_context.runId"))
		}
	}
	if ours == 0 {
		out = append(out, failed(check, "no action or automation calls this stack's relay",
			"set an action's Webhook URL to "+d.Stack.RelayURL+" (docs/port.md)"))
	}
	return out
}

// route returns the relay route a path takes and whether it names something
// configured: "/" (the default target), /webhooks/{name} or /pipelines/{name}.
func (d *Doctor) route(path string) (string, bool) {
	if path == "" || path == "/" {
		return "/", true
	}
	if name, ok := strings.CutPrefix(path, "/webhooks/"); ok {
		return path, slices.Contains(d.Stack.Webhooks, name)
	}
	if name, ok := strings.CutPrefix(path, "/pipelines/"); ok {
		return path, slices.ContainsFunc(d.Stack.Pipelines, func(p azdo.Pipeline) bool { return p.Name == name })
	}
	return path, false
}

// carriesRunID reports whether a body template sets port_context.runId from the run's id.
func carriesRunID(body json.RawMessage) bool {
	var b struct {
		PortContext struct {
			RunID string `json:"runId"`
		} `json:"port_context"`
	}
	if json.Unmarshal(body, &b) != nil {
		return false
	}
	return strings.Contains(strings.ReplaceAll(b.PortContext.RunID, " ", ""), ".run.id")
}

// Marks of the three states, as the command prints them.
const (
	MarkOK         = "✓"
	MarkFailed     = "✗"
	MarkNotChecked = "–"
)

// String is the result's one line: its mark, the check, what was found and, when
// it is not OK, the fix after an arrow.
func (r Result) String() string {
	mark := MarkOK
	switch r.State {
	case Failed:
		mark = MarkFailed
	case NotChecked:
		mark = MarkNotChecked
	}
	line := mark + " " + r.Check + ": " + r.Say
	if r.State == NotChecked {
		line = mark + " " + r.Check + ": not checked: " + r.Say
	}
	if r.State != OK && r.Fix != "" {
		line += " → " + r.Fix
	}
	return line
}
