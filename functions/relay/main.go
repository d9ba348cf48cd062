// Command relay is the Lambda function that takes Port's invocations and delivers
// them, signed as Azure DevOps checks, to an Azure DevOps incoming webhook.
package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/relay"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

func main() {
	log := handler.Logger(os.Stdout)
	cfg, err := config.LoadRelay(os.Getenv)
	if err != nil {
		log.Error("invalid configuration", "error", err.Error())
		os.Exit(1)
	}
	aws, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Error("invalid AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	core := newRelay(cfg, secretsmanager.NewFromConfig(aws), log)
	lambda.StartWithOptions(handler.Invoke(core),
		lambda.WithEnableSIGTERM(func() { log.Info("SIGTERM: finishing the invocation in progress, then stopping") }))
}

// newRelay builds the relay's core from its configuration, once per container.
func newRelay(cfg config.Relay, sm secret.Getter, log *slog.Logger) *relay.Relay {
	return &relay.Relay{
		Secrets: secret.NewSource(sm, cfg.SecretID, cfg.SecretTTL, nil),
		Azure: &azdo.Client{
			BaseURL: cfg.AzureURL,
			Org:     cfg.Org,
			Header:  cfg.Header,
			HTTP:    azdo.NewHTTPClient(nil),
		},
		Port:    signature.Port{Tolerance: cfg.Tolerance},
		Webhook: cfg.Webhook,
		Allowed: cfg.Webhooks,
		Report:  &portapi.Client{BaseURL: cfg.PortAPIURL, HTTP: &http.Client{Timeout: relay.ReportBudget}},
		Log:     log,
	}
}
