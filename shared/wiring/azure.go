package wiring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/secret"
)

// Events are the service hook events the status function follows, each expected
// once per project: the run's state ends the Port run, the stages' label it.
var Events = []string{azdo.RunStateChangedEvent, azdo.StageStateChangedEvent}

// eventName is how a line names an event.
func eventName(event string) string {
	return strings.TrimSuffix(strings.TrimPrefix(event, "ms.vss-pipelines."), "-event")
}

// Missing is the state Census gives an expected subscription that does not exist.
const Missing = "missing"

// ErrNoAzureCredential means neither the secret nor the doctor's shell holds an
// Azure DevOps credential: the subscriptions cannot be read.
var ErrNoAzureCredential = errors.New("no Azure DevOps credential: the secret holds no azurePat or Entra app")

// auth is the Azure credential the checks use and how a line names it.
func (d *Doctor) auth(creds secret.Credentials) (azdo.Auth, string) {
	switch {
	case d.PAT != "":
		return azdo.PAT(d.PAT), "AZURE_DEVOPS_PAT"
	case creds.AzurePAT != "":
		return azdo.PAT(creds.AzurePAT), "the secret's azurePat"
	case creds.AzureTenantID != "" && d.Tokens != nil:
		app := entra.App{TenantID: creds.AzureTenantID, ClientID: creds.AzureClientID, ClientSecret: creds.AzureClientSecret}
		if app.ClientSecret == "" {
			return azdo.Entra(d.Tokens, app), "the Entra app federated to this AWS identity"
		}
		return azdo.Entra(d.Tokens, app), "the secret's Entra app"
	}
	return nil, ""
}

// slot is one expected subscription: an event in a project ("" for any project,
// when no project is configured), and what the organization has for it.
type slot struct {
	project, projectID, event string
	found                     []azdo.Subscription // to this stack's URL
	elsewhere                 []azdo.Subscription // the same event and project, to another /azure/events
}

// slots lists the subscriptions and sorts them into the expected slots.
func (d *Doctor) slots(ctx context.Context, auth azdo.Auth, projects []azdo.Project) ([]slot, error) {
	subs, err := d.Azure.Subscriptions(ctx, auth)
	if err != nil {
		return nil, err
	}
	var out []slot
	if len(projects) == 0 {
		projects = []azdo.Project{{}}
	}
	for _, p := range projects {
		for _, ev := range Events {
			s := slot{project: p.Name, projectID: p.ID, event: ev}
			for _, sub := range subs {
				if sub.EventType != ev || sub.ConsumerID != azdo.WebHooksConsumer || sub.ConsumerActionID != azdo.HTTPRequestAction ||
					(p.ID != "" && !strings.EqualFold(sub.PublisherInputs["projectId"], p.ID)) {
					continue
				}
				switch u := sub.ConsumerInputs["url"]; {
				case sameURL(u, d.Stack.HookURL):
					s.found = append(s.found, sub)
				case strings.HasSuffix(strings.TrimRight(u, "/"), "/azure/events"):
					s.elsewhere = append(s.elsewhere, sub)
				}
			}
			// The enabled one first: it is the one that delivers.
			slices.SortStableFunc(s.found, func(a, b azdo.Subscription) int {
				return boolRank(a.State() != azdo.StatusEnabled) - boolRank(b.State() != azdo.StatusEnabled)
			})
			out = append(out, s)
		}
	}
	return out, nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sameURL(a, b string) bool {
	return b != "" && strings.EqualFold(strings.TrimRight(a, "/"), strings.TrimRight(b, "/"))
}

// projectNames are the configured projects, the pipelines' first, each once.
func (d *Doctor) projectNames() []string {
	var names []string
	add := func(n string) {
		if n != "" && !slices.ContainsFunc(names, func(m string) bool { return strings.EqualFold(m, n) }) {
			names = append(names, n)
		}
	}
	for _, p := range d.Stack.Pipelines {
		add(p.Project)
	}
	for _, p := range d.Stack.Projects {
		add(p)
	}
	return names
}

// azureRefusal says why Azure DevOps or Entra refused the credential, and the fix.
func azureRefusal(err error, who string) (string, string, State) {
	switch {
	case errors.Is(err, entra.ErrFederatedCredential), errors.Is(err, entra.ErrAWSDenied), errors.Is(err, entra.ErrFederationDisabled),
		errors.Is(err, entra.ErrSTSRefused), errors.Is(err, entra.ErrSTSUnavailable):
		// Federated: STS issues the token to whoever runs the check, and Entra's
		// credential names the relay's role, which a shell is not.
		return "the Entra app signs in as the relay's AWS role, and this AWS identity is not it: " + err.Error(),
			"the hook check function checks it from AWS hourly; or set AZURE_DEVOPS_PAT to check from here", NotChecked
	case errors.Is(err, entra.ErrRefused), errors.Is(err, entra.ErrConfig):
		return "Microsoft Entra ID refused " + who + ": " + err.Error(), "check azureTenantId, azureClientId and azureClientSecret in the secret", Failed
	case errors.Is(err, azdo.ErrCredentials):
		return "Azure DevOps refused " + who + " (expired, revoked, or not in the organization)",
			"put a valid credential in the secret: a PAT with Build: Read & execute, or an Entra app added to the organization", Failed
	case errors.Is(err, azdo.ErrProjectNotFound):
		return "", "", Failed
	}
	return "Azure DevOps could not be asked: " + err.Error(), "check AzureDevOpsOrg and AzureDevOpsUrl, then try again", Failed
}

// checkAzure checks the credential, the pipelines and the subscriptions.
func (d *Doctor) checkAzure(ctx context.Context, creds secret.Credentials, readable, fix bool) []Result {
	const check = "Azure DevOps"
	auth, who := d.auth(creds)
	if auth == nil {
		why := "the secret holds no azurePat or Entra app"
		if !readable {
			why = "the secret could not be read"
		}
		return []Result{notChecked("service hooks", why+": the credential, pipelines and subscriptions are not checked",
			"set AZURE_DEVOPS_PAT (a PAT with Build: Read, which includes Service Hooks) and run again")}
	}
	var out []Result
	var projects []azdo.Project
	for _, name := range d.projectNames() {
		p, err := d.Azure.GetProject(ctx, name, auth)
		if errors.Is(err, azdo.ErrProjectNotFound) {
			out = append(out, failed("project "+name, "Azure DevOps organization "+d.Stack.Org+" has no project "+name+" visible to "+who,
				"check the project in AzureDevOpsPipelines (or -project) and AzureDevOpsOrg"))
			continue
		}
		if err != nil {
			say, fixIt, state := azureRefusal(err, who)
			return append(out, Result{Check: check, State: state, Say: say, Fix: fixIt})
		}
		projects = append(projects, p)
	}
	if len(projects) > 0 {
		out = append(out, passed(check, "organization "+d.Stack.Org+" accepts "+who))
	}
	for _, p := range d.Stack.Pipelines {
		out = append(out, d.checkPipeline(ctx, p, projects, auth, who))
	}
	if len(projects) == 0 && len(d.projectNames()) > 0 {
		return out // every project was refused: nothing to find subscriptions in
	}
	slots, err := d.slots(ctx, auth, projects)
	switch {
	case errors.Is(err, azdo.ErrCredentials) && len(projects) > 0 && (d.PAT != "" || creds.AzurePAT != ""):
		// The same PAT just read the projects: it is valid, and lacks this call's scope.
		return append(out, notChecked("service hooks", who+" may not read service hook subscriptions: the PAT lacks the scope",
			"give the PAT Build: Read & execute (it includes Service Hooks: Read & write), or Service Hooks: Read & write"))
	case errors.Is(err, azdo.ErrForbidden):
		return append(out, notChecked("service hooks", who+" may not view the service hook subscriptions",
			"allow the identity View subscriptions (Project settings → Service hooks → Security), or run with AZURE_DEVOPS_PAT"))
	case err != nil:
		say, fixIt, state := azureRefusal(err, who)
		return append(out, Result{Check: check, State: state, Say: say, Fix: fixIt})
	}
	found := false
	for _, s := range slots {
		out = append(out, d.checkSlot(ctx, s, creds, auth, fix))
		found = found || len(s.found) > 0
	}
	if found {
		out = append(out, notChecked("service hook password", "Azure answers it masked ("+azdo.MaskedValue+"): it cannot be compared with the secret's serviceHookPassword",
			"a wrong one shows as 401s to the service hook and the alarm "+d.alarmName("service-hook-wrong-password")))
	}
	return out
}

func (d *Doctor) alarmName(suffix string) string {
	if d.Stack.Name == "" {
		return "<stack>-" + suffix
	}
	return d.Stack.Name + "-" + suffix
}

// checkPipeline checks that a configured pipeline exists and that the identity may queue it.
func (d *Doctor) checkPipeline(ctx context.Context, p azdo.Pipeline, projects []azdo.Project, auth azdo.Auth, who string) Result {
	name := fmt.Sprintf("pipeline %s (%s/%d)", p.Name, p.Project, p.ID)
	i := slices.IndexFunc(projects, func(q azdo.Project) bool {
		return strings.EqualFold(q.Name, p.Project) || strings.EqualFold(q.ID, p.Project)
	})
	if i < 0 {
		return notChecked(name, "its project could not be read", "fix the project first")
	}
	info, err := d.Azure.GetPipeline(ctx, p.Project, p.ID, auth)
	switch {
	case errors.Is(err, azdo.ErrPipelineNotFound):
		return failed(name, fmt.Sprintf("project %s shows no pipeline %d to %s", p.Project, p.ID, who),
			"take the id from the pipeline's URL (definitionId=…) into AzureDevOpsPipelines")
	case errors.Is(err, azdo.ErrCredentials):
		return notChecked(name, who+" may not read pipelines: the PAT lacks the scope", "give the PAT Build: Read & execute")
	case err != nil:
		return failed(name, "Azure DevOps could not be asked: "+err.Error(), "try again")
	}
	may, err := d.Azure.CanQueue(ctx, projects[i].ID, info.Folder, p.ID, auth)
	switch {
	case err != nil:
		return notChecked(name, fmt.Sprintf("exists (%q); whether %s may queue it could not be asked: %v", info.Name, who, err),
			"its first run shows it (403: allow Queue builds)")
	case !may:
		return failed(name, fmt.Sprintf("exists (%q), but %s may not queue it: the relay gets 403", info.Name, who),
			"allow the identity Queue builds on the pipeline (⋯ → Manage security)")
	}
	return passed(name, fmt.Sprintf("exists (%q) and %s may queue it", info.Name, who))
}

// checkSlot checks one expected subscription and, with fix, creates or re-enables it.
func (d *Doctor) checkSlot(ctx context.Context, s slot, creds secret.Credentials, auth azdo.Auth, fix bool) Result {
	where := s.project
	if where == "" {
		where = "any project"
	}
	name := fmt.Sprintf("service hook %s in %s", eventName(s.event), where)
	if len(s.found) == 0 {
		say := "no subscription posts it to " + d.Stack.HookURL
		if len(s.elsewhere) > 0 {
			say += "; subscription " + s.elsewhere[0].ID + " posts it to " + s.elsewhere[0].ConsumerInputs["url"] + " (another stack?)"
		}
		switch {
		case s.projectID == "":
			return failed(name, say, "name the project with -project and run with -fix, or create it by hand (docs/azure.md)")
		case !fix:
			return failed(name, say, "run with -fix to create it (or create it by hand, docs/azure.md)")
		case creds.ServiceHookPassword == "":
			return failed(name, say, "-fix needs the secret's serviceHookPassword: add it first")
		}
		_, err := d.Azure.CreateSubscription(ctx, d.newSubscription(s, creds), auth)
		if err != nil {
			return failed(name, say+"; creating it failed: "+err.Error(), "create it by hand (docs/azure.md)")
		}
		return passed(name, "created: posts to "+d.Stack.HookURL+" with Basic authentication")
	}
	sub := s.found[0]
	if sub.ConsumerInputs["basicAuthPassword"] == "" {
		return failed(name, "subscription "+sub.ID+" posts without Basic authentication: the status function refuses it with 401",
			"edit it: Basic authentication username anything, password the secret's serviceHookPassword")
	}
	if st := sub.State(); st != azdo.StatusEnabled {
		say := "subscription " + sub.ID + " is " + st + ": Azure sends it nothing, and Port runs stay in progress"
		if !fix {
			return failed(name, say, "run with -fix to re-enable it (after fixing why it failed: docs/troubleshooting.md)")
		}
		sub.Status = azdo.StatusEnabled
		if _, err := d.Azure.ReplaceSubscription(ctx, sub, auth); err != nil {
			return failed(name, say+"; re-enabling it failed: "+err.Error(), "enable it by hand (Project settings → Service hooks)")
		}
		return passed(name, "subscription "+sub.ID+" re-enabled (it was "+st+")")
	}
	return passed(name, "subscription "+sub.ID+" posts to this stack with Basic authentication, enabled")
}

// newSubscription is the subscription -fix creates: the Web Hooks consumer posting
// every pipeline's event of the project to the status URL with Basic authentication.
func (d *Doctor) newSubscription(s slot, creds secret.Credentials) azdo.Subscription {
	return azdo.Subscription{
		PublisherID:      azdo.PipelinesPublisher,
		EventType:        s.event,
		ResourceVersion:  azdo.PipelinesResourceVersion,
		ConsumerID:       azdo.WebHooksConsumer,
		ConsumerActionID: azdo.HTTPRequestAction,
		PublisherInputs:  map[string]string{"projectId": s.projectID},
		ConsumerInputs: map[string]string{
			"url":                    d.Stack.HookURL,
			"basicAuthUsername":      "azure-devops",
			"basicAuthPassword":      creds.ServiceHookPassword,
			"resourceDetailsToSend":  "all",
			"messagesToSend":         "none",
			"detailedMessagesToSend": "none",
		},
	}
}

// Census counts the expected subscriptions by state (azdo's statuses, and Missing),
// with the secret's credential: what the hook check function publishes hourly.
func (d *Doctor) Census(ctx context.Context) (map[string]int, error) {
	creds, err := secret.NewSource(d.Secrets, d.Stack.SecretID, 0, nil).Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("wiring: the secret: %w", err)
	}
	auth, _ := d.auth(creds)
	if auth == nil {
		return nil, ErrNoAzureCredential
	}
	var projects []azdo.Project
	for _, name := range d.projectNames() {
		p, err := d.Azure.GetProject(ctx, name, auth)
		if err != nil {
			return nil, fmt.Errorf("wiring: project %s: %w", name, err)
		}
		projects = append(projects, p)
	}
	slots, err := d.slots(ctx, auth, projects)
	if err != nil {
		return nil, fmt.Errorf("wiring: the subscriptions: %w", err)
	}
	counts := map[string]int{}
	for _, s := range slots {
		if len(s.found) == 0 {
			counts[Missing]++
			continue
		}
		for _, sub := range s.found {
			counts[sub.State()]++
		}
	}
	return counts, nil
}
