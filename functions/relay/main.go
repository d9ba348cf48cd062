// Command relay is the Lambda function that takes Port's invocations and delivers
// them, signed as Azure DevOps checks, to an Azure DevOps incoming webhook.
package main

import (
	"log/slog"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/relay"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

func main() {
	handler.Run(func(log *slog.Logger, sm *secretsmanager.Client) (handler.Core, error) {
		cfg, err := config.LoadRelay(os.Getenv)
		if err != nil {
			return nil, err
		}
		return newRelay(cfg, sm, log), nil
	})
}

// newRelay builds the relay's core from its configuration, once per container.
func newRelay(cfg config.Relay, sm secret.Getter, log *slog.Logger) *relay.Relay {
	return &relay.Relay{
		Secrets:  secret.NewSource(sm, cfg.SecretID, cfg.SecretTTL, nil),
		Previous: secret.NewPrevious(sm, cfg.SecretID, cfg.SecretTTL, nil),
		Azure: &azdo.Client{
			BaseURL: cfg.AzureURL,
			Org:     cfg.Org,
			Header:  cfg.Header,
			HTTP:    azdo.NewHTTPClient(nil),
		},
		Port:    signature.Port{Tolerance: cfg.Tolerance, Replays: &signature.Replays{}},
		Webhook: cfg.Webhook,
		Allowed: cfg.Webhooks,
		Report:  &portapi.Client{BaseURL: cfg.PortAPIURL, HTTP: &http.Client{Timeout: relay.ReportBudget}},
		Log:     log,
		Metrics: metrics.New(cfg.Namespace, metrics.FunctionRelay),
		Sources: cfg.Sources,
	}
}
