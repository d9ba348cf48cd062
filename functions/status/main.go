// Command status is the Lambda function that takes Azure DevOps service-hook
// notifications of pipeline runs and updates the Port runs they belong to.
package main

import (
	"log/slog"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/runstatus"
	"github.com/port-azure-relay/relay/shared/secret"
)

func main() {
	handler.Run(func(log *slog.Logger, aws aws.Config) (handler.Core, error) {
		cfg, err := runstatus.LoadConfig(os.Getenv)
		if err != nil {
			return nil, err
		}
		return newFollower(cfg, secretsmanager.NewFromConfig(aws), log), nil
	})
}

// newFollower builds the status function's core from its configuration, once per
// container.
func newFollower(cfg runstatus.Config, sm secret.Getter, log *slog.Logger) *runstatus.Follower {
	return &runstatus.Follower{
		Secrets:  secret.NewSource(sm, cfg.SecretID, cfg.SecretTTL, nil),
		Previous: secret.NewPrevious(sm, cfg.SecretID, cfg.SecretTTL, nil),
		Port:     &portapi.Client{BaseURL: cfg.PortAPIURL, HTTP: &http.Client{Timeout: runstatus.PortBudget}},
		Org:      cfg.Org,
		Log:      log,
		Metrics:  metrics.New(cfg.Namespace, metrics.FunctionStatus),
		Sources:  cfg.Sources,
	}
}
