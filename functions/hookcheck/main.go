// Command hookcheck is the scheduled Lambda function that counts this stack's
// Azure DevOps service hook subscriptions by state, hourly, as metrics an alarm
// watches: Azure disabling the hook is heard before Port runs stay in progress.
package main

import (
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/wiring"
)

func main() {
	handler.Run(func(log *slog.Logger, aws aws.Config) (handler.Core, error) {
		cfg, err := wiring.LoadWatchConfig(os.Getenv)
		if err != nil {
			return nil, err
		}
		return newWatch(cfg, secretsmanager.NewFromConfig(aws), sts.NewFromConfig(aws), log), nil
	})
}

// newWatch builds the function's core once per container; awsTokens is STS, for an
// Entra app federated to the function's role.
func newWatch(cfg wiring.WatchConfig, sm secret.Getter, awsTokens entra.STSClient, log *slog.Logger) *wiring.Watch {
	return &wiring.Watch{
		Doctor: &wiring.Doctor{
			Stack:   wiring.Stack{HookURL: cfg.HookURL, SecretID: cfg.SecretID, Org: cfg.Org, Pipelines: cfg.Pipelines},
			Secrets: sm,
			Azure:   &azdo.Client{BaseURL: cfg.AzureURL, Org: cfg.Org, HTTP: azdo.NewHTTPClient(nil)},
			Tokens: &entra.Client{AuthorityHost: cfg.AuthorityHost, HTTP: &http.Client{Timeout: 5 * time.Second},
				Assertion: &entra.AWSAssertion{STS: awsTokens}},
		},
		Log:     log,
		Metrics: metrics.New(cfg.Namespace, metrics.FunctionHooks),
	}
}
