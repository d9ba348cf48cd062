// Command verifier is the Lambda function that stands in for Azure DevOps (or any
// receiver of Port's webhooks): it checks the signature on what it receives and
// says whether it holds.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/receiver"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

func main() {
	log := handler.Logger(os.Stdout)
	cfg, err := config.LoadVerifier(os.Getenv)
	if err != nil {
		log.Error("invalid configuration", "error", err.Error())
		os.Exit(1)
	}
	aws, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Error("invalid AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	core := newReceiver(cfg, secretsmanager.NewFromConfig(aws), log)
	lambda.StartWithOptions(handler.Invoke(core),
		lambda.WithEnableSIGTERM(func() { log.Info("SIGTERM: finishing the invocation in progress, then stopping") }))
}

// newReceiver builds the verifier's core from its configuration, once per container.
func newReceiver(cfg config.Verifier, sm secret.Getter, log *slog.Logger) *receiver.Receiver {
	secrets := secret.NewSource(sm, cfg.SecretID, cfg.SecretTTL, nil)
	return &receiver.Receiver{
		Secret: func(ctx context.Context) (string, error) {
			creds, err := secrets.Get(ctx)
			return creds.ClientSecret, err
		},
		Header: cfg.Header,
		Port:   signature.Port{Tolerance: cfg.Tolerance},
		Log:    log,
	}
}
