// Command relay is the Lambda function that takes Port's invocations and delivers
// them, signed as Azure DevOps checks, to an Azure DevOps incoming webhook.
package main

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/queue"
	"github.com/port-azure-relay/relay/shared/relay"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

func main() {
	// Azure's TLS handshake needs the system's trust roots, which Go reads from disk
	// and parses once per process (hundreds of certificates): start on them now,
	// beside the AWS configuration, rather than in the handshake.
	go x509.SystemCertPool()
	handler.Run(func(log *slog.Logger, aws aws.Config) (handler.Core, error) {
		cfg, err := relay.LoadConfig(os.Getenv)
		if err != nil {
			return nil, err
		}
		var tokens entra.STSClient
		if len(cfg.Pipelines) > 0 {
			// For an Entra app without a client secret: the function's own role, federated.
			// The regional endpoint (outbound federation is not on the global one), or
			// AWS_ENDPOINT_URL_STS, as the SDK resolves it.
			tokens = sts.NewFromConfig(aws)
		}
		var db ledger.DB
		if cfg.LedgerTable != "" {
			db = dynamodb.NewFromConfig(aws)
		} else {
			log.Info("no LEDGER_TABLE: each container remembers the Port signatures it accepted; the same invocation reaching another container, or an AWS event retried, may be delivered twice",
				"phase", "init")
		}
		azure := newAzure(cfg)
		r := newRelay(cfg, azure, secretsmanager.NewFromConfig(aws), db, tokens, log)
		if cfg.QueueURL != "" {
			withQueue(r, azure, sqs.NewFromConfig(aws), cfg)
		}
		warmUp(r, azure)
		return r, nil
	})
}

// warmUp starts, in the background, the two round trips a cold container's first
// invocation would otherwise make one after the other: reading the secret and the
// TLS handshake with Azure. Neither blocks the start-up, and neither can fail it:
// the first invocation joins them, or does without them. With ALLOWED_SOURCE_IPS
// set, a refused caller must cost no secret read, even a container's first: the
// secret is then read for the first caller allowed, as before.
func warmUp(r *relay.Relay, azure *azdo.Client) {
	ctx := context.Background()
	if s, ok := r.Secrets.(*secret.Source); ok && r.Sources.Empty() {
		s.Prefetch(ctx)
	}
	azure.Preconnect(ctx)
}

// QueueMaxWait is the longest the relay waits within an invocation for Azure to take a
// delivery again when a queue can keep it: a longer wait is the queue's.
const QueueMaxWait = 2 * time.Second

// withQueue gives r cfg's delivery queue: a delivery Azure cannot take now waits on
// the queue, not in the invocation.
func withQueue(r *relay.Relay, azure *azdo.Client, client queue.SQS, cfg relay.Config) {
	azure.MaxWait = QueueMaxWait
	r.Queue = &queue.Queue{SQS: client, URL: cfg.QueueURL, DeadLetter: cfg.DeadLetterURL}
}

// newAzure is the Azure DevOps client of cfg's organization.
func newAzure(cfg relay.Config) *azdo.Client {
	return &azdo.Client{BaseURL: cfg.AzureURL, Org: cfg.Org, Header: cfg.Header, HTTP: azdo.NewHTTPClient(nil)}
}

// newRelay builds the relay's core from its configuration, once per container; db is
// the ledger's DynamoDB, nil when LEDGER_TABLE is not set; awsTokens is STS, for an
// Entra app federated to the function's role, nil without pipelines.
func newRelay(cfg relay.Config, azure relay.Azure, sm secret.Getter, db ledger.DB, awsTokens entra.STSClient, log *slog.Logger) *relay.Relay {
	var tokens *entra.Client
	if len(cfg.Pipelines) > 0 {
		// Entra's tokens, for a secret that holds an Entra app; cached per app until
		// shortly before they expire. A PAT needs none of it.
		tokens = &entra.Client{AuthorityHost: cfg.AuthorityHost, HTTP: &http.Client{Timeout: 5 * time.Second}}
		if awsTokens != nil {
			tokens.Assertion = &entra.AWSAssertion{STS: awsTokens}
		}
	}
	r := &relay.Relay{
		Secrets:  secret.NewSource(sm, cfg.SecretID, cfg.SecretTTL, nil),
		Previous: secret.NewPrevious(sm, cfg.SecretID, cfg.SecretTTL, nil),
		Port:     signature.Port{Tolerance: cfg.Tolerance, Replays: &signature.Replays{}},
		Routes:   relay.NewRoutes(cfg.Org, cfg.Webhook, cfg.Webhooks, cfg.Pipelines, azure, tokens),
		Report:   &portapi.Client{BaseURL: cfg.PortAPIURL, HTTP: &http.Client{Timeout: relay.ReportBudget}},
		Log:      log,
		Metrics:  metrics.New(cfg.Namespace, metrics.FunctionRelay),
		Sources:  cfg.Sources,
	}
	if db != nil {
		r.Ledger = &ledger.Ledger{DB: db, Table: cfg.LedgerTable, TTL: cfg.LedgerTTL}
	}
	r.MaxAge = cfg.MaxAge
	return r
}
