// Command verifier is the Lambda function that stands in for Azure DevOps (or any
// receiver of Port's webhooks): it checks the signature on what it receives and
// says whether it holds.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/receiver"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

func main() {
	handler.Run(func(log *slog.Logger, aws aws.Config) (handler.Core, error) {
		cfg, err := config.Load(os.Getenv)
		if err != nil {
			return nil, err
		}
		return newReceiver(cfg, secretsmanager.NewFromConfig(aws), log), nil
	})
}

// newReceiver builds the verifier's core from its configuration, once per container.
func newReceiver(cfg config.Common, sm secret.Getter, log *slog.Logger) *receiver.Receiver {
	return &receiver.Receiver{
		Secret:  secret.NewSource(sm, cfg.SecretID, cfg.SecretTTL, nil).Get,
		Header:  cfg.Header,
		Port:    signature.Port{Tolerance: cfg.Tolerance},
		Log:     log,
		Metrics: metrics.New(cfg.Namespace, metrics.FunctionVerifier),
	}
}
