package config

import (
	"net/url"
	"strings"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
)

// HookCheck is the hook check function's configuration: where the service hook
// subscriptions are and which ones it expects.
type HookCheck struct {
	SecretID      string
	Org           string
	AzureURL      string
	AuthorityHost string
	Pipelines     []azdo.Pipeline // their projects are where the subscriptions are expected
	HookURL       string          // SERVICE_HOOK_URL: the status function's URL the subscriptions post to
	Namespace     string
}

// LoadHookCheck reads the hook check function's configuration through getenv.
func LoadHookCheck(getenv func(string) string) (HookCheck, error) {
	var c HookCheck
	var err error
	if c.SecretID, err = required(getenv, "PORT_SECRET_ID"); err != nil {
		return HookCheck{}, err
	}
	if c.Org, err = required(getenv, "AZURE_DEVOPS_ORG"); err != nil {
		return HookCheck{}, err
	}
	if !orgName(c.Org) {
		return HookCheck{}, &Error{"AZURE_DEVOPS_ORG", "must be an Azure DevOps organization name (letters, digits, hyphens)"}
	}
	if c.Pipelines, err = Pipelines(getenv); err != nil {
		return HookCheck{}, err
	}
	if c.AzureURL, err = baseURL(getenv, "AZURE_DEVOPS_URL", azdo.DefaultBaseURL); err != nil {
		return HookCheck{}, err
	}
	if c.AuthorityHost, err = baseURL(getenv, "AZURE_AUTHORITY_HOST", entra.DefaultAuthorityHost); err != nil {
		return HookCheck{}, err
	}
	if c.HookURL, err = required(getenv, "SERVICE_HOOK_URL"); err != nil {
		return HookCheck{}, err
	}
	if u, err := url.Parse(c.HookURL); err != nil || u.Scheme != "https" || u.Host == "" || !strings.HasSuffix(u.Path, "/azure/events") {
		return HookCheck{}, &Error{"SERVICE_HOOK_URL", "must be the status function's https URL, ending in /azure/events"}
	}
	if c.Namespace, err = Namespace(getenv); err != nil {
		return HookCheck{}, err
	}
	return c, nil
}
