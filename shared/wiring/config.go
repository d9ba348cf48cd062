package wiring

import (
	"net/url"
	"strings"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/entra"
)

// WatchConfig is the hook check function's configuration: where the service hook
// subscriptions are and which ones it expects.
type WatchConfig struct {
	SecretID      string
	Org           string
	AzureURL      string
	AuthorityHost string
	Pipelines     []azdo.Pipeline // their projects are where the subscriptions are expected
	HookURL       string          // SERVICE_HOOK_URL: the status function's URL the subscriptions post to
	Namespace     string
}

// LoadWatchConfig reads the hook check function's configuration through getenv.
func LoadWatchConfig(getenv func(string) string) (WatchConfig, error) {
	var c WatchConfig
	var err error
	if c.SecretID, err = config.Required(getenv, "PORT_SECRET_ID"); err != nil {
		return WatchConfig{}, err
	}
	if c.Org, err = config.AzureOrg(getenv); err != nil {
		return WatchConfig{}, err
	}
	if c.Pipelines, err = azdo.ParsePipelines(getenv("AZURE_DEVOPS_PIPELINES")); err != nil {
		return WatchConfig{}, &config.Error{Var: "AZURE_DEVOPS_PIPELINES", Reason: err.Error()}
	}
	if c.AzureURL, err = config.BaseURL(getenv, "AZURE_DEVOPS_URL", azdo.DefaultBaseURL); err != nil {
		return WatchConfig{}, err
	}
	if c.AuthorityHost, err = config.BaseURL(getenv, "AZURE_AUTHORITY_HOST", entra.DefaultAuthorityHost); err != nil {
		return WatchConfig{}, err
	}
	if c.HookURL, err = config.Required(getenv, "SERVICE_HOOK_URL"); err != nil {
		return WatchConfig{}, err
	}
	if u, err := url.Parse(c.HookURL); err != nil || u.Scheme != "https" || u.Host == "" || !strings.HasSuffix(u.Path, "/azure/events") {
		return WatchConfig{}, &config.Error{Var: "SERVICE_HOOK_URL", Reason: "must be the status function's https URL, ending in /azure/events"}
	}
	if c.Namespace, err = config.Namespace(getenv); err != nil {
		return WatchConfig{}, err
	}
	return c, nil
}
