package runstatus

import (
	"time"

	"github.com/port-azure-relay/relay/shared/allowlist"
	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/portapi"
)

// Config is the status function's configuration.
type Config struct {
	SecretID   string
	SecretTTL  time.Duration
	PortAPIURL string
	Namespace  string         // METRICS_NAMESPACE
	Sources    allowlist.List // ALLOWED_SOURCE_IPS: empty (the default) is everyone
	// Org is AZURE_DEVOPS_ORG, the relay's: with an Azure run id, it names the Port run
	// the relay started (the externalRunId both set).
	Org string
}

// LoadConfig reads the status function's configuration through getenv.
func LoadConfig(getenv func(string) string) (Config, error) {
	shared, err := config.Load(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{SecretID: shared.SecretID, SecretTTL: shared.SecretTTL, Namespace: shared.Namespace}
	if c.Org, err = config.AzureOrg(getenv); err != nil {
		return Config{}, err
	}
	if c.Sources, err = config.AllowedSources(getenv); err != nil {
		return Config{}, err
	}
	if c.PortAPIURL, err = config.BaseURL(getenv, "PORT_API_URL", portapi.DefaultBaseURL); err != nil {
		return Config{}, err
	}
	return c, nil
}
