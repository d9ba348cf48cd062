// Command status is the Lambda function that takes Azure DevOps service-hook
// notifications of pipeline runs and updates the Port runs they belong to.
package main

import (
	"log/slog"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/runstatus"
	"github.com/port-azure-relay/relay/shared/secret"
)

func main() {
	handler.Run(func(log *slog.Logger, aws aws.Config) (handler.Core, error) {
		cfg, err := config.LoadStatus(os.Getenv)
		if err != nil {
			return nil, err
		}
		var db ledger.DB
		if cfg.LedgerTable != "" {
			db = dynamodb.NewFromConfig(aws)
		}
		return newFollower(cfg, secretsmanager.NewFromConfig(aws), db, log), nil
	})
}

// newFollower builds the status function's core from its configuration, once per
// container; db is the ledger's DynamoDB, nil when LEDGER_TABLE is not set.
func newFollower(cfg config.Status, sm secret.Getter, db ledger.DB, log *slog.Logger) *runstatus.Follower {
	f := &runstatus.Follower{
		Secrets:  secret.NewSource(sm, cfg.SecretID, cfg.SecretTTL, nil),
		Previous: secret.NewPrevious(sm, cfg.SecretID, cfg.SecretTTL, nil),
		Port:     &portapi.Client{BaseURL: cfg.PortAPIURL, HTTP: &http.Client{Timeout: runstatus.PortBudget}},
		Log:      log,
		Metrics:  metrics.New(cfg.Namespace, metrics.FunctionStatus),
		Sources:  cfg.Sources,
	}
	if db != nil {
		f.Runs = &ledger.Ledger{DB: db, Table: cfg.LedgerTable}
	}
	return f
}
