package relay

import (
	"fmt"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/allowlist"
	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/portapi"
)

// Config is the relay function's configuration.
type Config struct {
	SecretID string
	Org      string
	Webhook  string   // the default webhook; empty when Pipelines are set and it is not
	Webhooks []string // those a request may select by path, the default among them
	// Pipelines are started by id (AZURE_DEVOPS_PIPELINES); the first is the default
	// target when there is no default webhook.
	Pipelines     []azdo.Pipeline
	AuthorityHost string // AZURE_AUTHORITY_HOST: Entra ID's, for an Entra app's tokens
	AzureURL      string
	Header        string
	Tolerance     time.Duration
	SecretTTL     time.Duration
	PortAPIURL    string
	Namespace     string         // METRICS_NAMESPACE
	Sources       allowlist.List // who may call over HTTP; empty: everyone
	// LedgerTable is LEDGER_TABLE, the DynamoDB table of the delivery ledger; empty:
	// no ledger, each container remembers what it saw.
	LedgerTable string
	LedgerTTL   time.Duration // LEDGER_TTL
	// QueueURL is DELIVERY_QUEUE_URL, the SQS queue where a delivery Azure cannot take
	// now waits, and DeadLetterURL DELIVERY_DLQ_URL, its dead-letter queue; empty: no
	// queue. A queue needs the ledger.
	QueueURL      string
	DeadLetterURL string
	MaxAge        time.Duration // QUEUE_MAX_AGE: how long a delivery may wait on the queue
}

// LoadConfig reads the relay's configuration through getenv (os.Getenv in main).
func LoadConfig(getenv func(string) string) (Config, error) {
	shared, err := config.Load(getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{SecretID: shared.SecretID, Header: shared.Header, Tolerance: shared.Tolerance, SecretTTL: shared.SecretTTL, Namespace: shared.Namespace}
	if c.Org, err = config.AzureOrg(getenv); err != nil {
		return Config{}, err
	}
	if c.Pipelines, err = azdo.ParsePipelines(getenv("AZURE_DEVOPS_PIPELINES")); err != nil {
		return Config{}, &config.Error{Var: "AZURE_DEVOPS_PIPELINES", Reason: err.Error()}
	}
	c.Webhook = strings.TrimSpace(getenv("AZURE_DEVOPS_WEBHOOK"))
	switch {
	case c.Webhook == "" && len(c.Pipelines) == 0:
		return Config{}, &config.Error{Var: "AZURE_DEVOPS_WEBHOOK", Reason: "is required (or AZURE_DEVOPS_PIPELINES)"}
	case c.Webhook != "" && !azdo.ValidName(c.Webhook):
		return Config{}, &config.Error{Var: "AZURE_DEVOPS_WEBHOOK", Reason: "must match [-_A-Za-z0-9]+"}
	case c.Webhook != "":
		c.Webhooks = []string{c.Webhook}
	}
	for _, name := range strings.Split(getenv("AZURE_DEVOPS_WEBHOOKS"), ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "" || name == c.Webhook:
		case !azdo.ValidName(name):
			return Config{}, &config.Error{Var: "AZURE_DEVOPS_WEBHOOKS", Reason: fmt.Sprintf("has %q, which does not match [-_A-Za-z0-9]+", name)}
		default:
			c.Webhooks = append(c.Webhooks, name)
		}
	}
	if c.AzureURL, err = config.BaseURL(getenv, "AZURE_DEVOPS_URL", azdo.DefaultBaseURL); err != nil {
		return Config{}, err
	}
	if c.PortAPIURL, err = config.BaseURL(getenv, "PORT_API_URL", portapi.DefaultBaseURL); err != nil {
		return Config{}, err
	}
	if c.AuthorityHost, err = config.BaseURL(getenv, "AZURE_AUTHORITY_HOST", entra.DefaultAuthorityHost); err != nil {
		return Config{}, err
	}
	if c.Sources, err = config.AllowedSources(getenv); err != nil {
		return Config{}, err
	}
	if c.LedgerTable, err = readLedgerTable(getenv); err != nil {
		return Config{}, err
	}
	if c.LedgerTTL, err = config.Duration(getenv, "LEDGER_TTL", ledger.DefaultTTL, ledger.MinTTL, ledger.MaxTTL); err != nil {
		return Config{}, err
	}
	if c.QueueURL, c.DeadLetterURL, c.MaxAge, err = readQueue(getenv, c.LedgerTable); err != nil {
		return Config{}, err
	}
	if c.LedgerTable != "" && c.LedgerTTL < 2*c.Tolerance {
		// A signature is valid from its timestamp less the tolerance to its timestamp
		// plus it: a record that expired sooner would let a replay of it through.
		return Config{}, &config.Error{Var: "LEDGER_TTL", Reason: fmt.Sprintf("must be at least twice PORT_SIGNATURE_TOLERANCE (%s), as long as a signed request can be replayed", c.Tolerance)}
	}
	return c, nil
}

// readQueue reads DELIVERY_QUEUE_URL, DELIVERY_DLQ_URL (required with it) and
// QUEUE_MAX_AGE (1m to 24h, default 1h). A queue without the ledger is refused: only
// the ledger keeps a delivery that SQS hands over twice from being sent twice.
func readQueue(getenv func(string) string, ledgerTable string) (url, dlq string, maxAge time.Duration, err error) {
	if maxAge, err = config.Duration(getenv, "QUEUE_MAX_AGE", DefaultMaxAge, MinMaxAge, MaxMaxAge); err != nil {
		return "", "", 0, err
	}
	if url, err = config.BaseURL(getenv, "DELIVERY_QUEUE_URL", ""); err != nil || url == "" {
		return "", "", maxAge, err
	}
	if dlq, err = config.BaseURL(getenv, "DELIVERY_DLQ_URL", ""); err != nil {
		return "", "", 0, err
	}
	switch {
	case dlq == "":
		return "", "", 0, &config.Error{Var: "DELIVERY_DLQ_URL", Reason: "is required with DELIVERY_QUEUE_URL"}
	case ledgerTable == "":
		return "", "", 0, &config.Error{Var: "DELIVERY_QUEUE_URL", Reason: "needs LEDGER_TABLE: the ledger keeps a delivery SQS hands over twice from being sent twice"}
	}
	return url, dlq, maxAge, nil
}

func readLedgerTable(getenv func(string) string) (string, error) {
	t := strings.TrimSpace(getenv("LEDGER_TABLE"))
	if t != "" && !config.TableName(t) {
		return "", &config.Error{Var: "LEDGER_TABLE", Reason: "must be a DynamoDB table name: 3 to 255 letters, digits, _ . -"}
	}
	return t, nil
}
