// Package config reads the functions' settings from their environment and refuses
// a missing or invalid one by name, at start-up.
package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/allowlist"
	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

// DefaultPortAPIURL is Port's EU API; US organisations use https://api.us.port.io.
const DefaultPortAPIURL = "https://api.port.io"

// Relay is the relay function's configuration.
type Relay struct {
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
}

// Verifier is the verifier function's configuration.
type Verifier struct {
	SecretID  string
	Header    string
	Tolerance time.Duration
	SecretTTL time.Duration
	Namespace string // METRICS_NAMESPACE
}

// Status is the status function's configuration.
type Status struct {
	SecretID   string
	SecretTTL  time.Duration
	PortAPIURL string
	Namespace  string         // METRICS_NAMESPACE
	Sources    allowlist.List // ALLOWED_SOURCE_IPS: empty (the default) is everyone
	// Org is AZURE_DEVOPS_ORG, the relay's: with an Azure run id, it names the Port run
	// the relay started (the externalRunId both set).
	Org string
}

// LoadStatus reads the status function's configuration through getenv.
func LoadStatus(getenv func(string) string) (Status, error) {
	shared, err := loadShared(getenv)
	if err != nil {
		return Status{}, err
	}
	c := Status{SecretID: shared.SecretID, SecretTTL: shared.SecretTTL, Namespace: shared.Namespace}
	if c.Org, err = azureOrg(getenv); err != nil {
		return Status{}, err
	}
	if c.Sources, err = AllowedSources(getenv); err != nil {
		return Status{}, err
	}
	if c.PortAPIURL, err = baseURL(getenv, "PORT_API_URL", DefaultPortAPIURL); err != nil {
		return Status{}, err
	}
	return c, nil
}

// azureOrg reads AZURE_DEVOPS_ORG, required by the relay and the status function.
func azureOrg(getenv func(string) string) (string, error) {
	org, err := required(getenv, "AZURE_DEVOPS_ORG")
	if err != nil {
		return "", err
	}
	if !orgName(org) {
		return "", &Error{"AZURE_DEVOPS_ORG", "must be an Azure DevOps organization name (letters, digits, hyphens)"}
	}
	return org, nil
}

func ledgerTable(getenv func(string) string) (string, error) {
	t := strings.TrimSpace(getenv("LEDGER_TABLE"))
	if t != "" && !tableName(t) {
		return "", &Error{"LEDGER_TABLE", "must be a DynamoDB table name: 3 to 255 letters, digits, _ . -"}
	}
	return t, nil
}

// Error names the variable that is missing or invalid.
type Error struct {
	Var    string
	Reason string
}

func (e *Error) Error() string { return e.Var + " " + e.Reason }

// orgName matches ^[A-Za-z0-9][-A-Za-z0-9]{0,49}$ and headerName an HTTP token,
// ^[!#$%&'*+.^_`|~0-9A-Za-z-]+$, by hand: compiling them cost every cold start.
func orgName(s string) bool {
	if len(s) == 0 || len(s) > 50 || s[0] == '-' {
		return false
	}
	return allIn(s, "-")
}

func headerName(s string) bool { return len(s) > 0 && allIn(s, "!#$%&'*+.^_`|~-") }

// allIn reports whether every byte of s is an ASCII letter, a digit or in extra.
func allIn(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// LoadRelay reads the relay's configuration through getenv (os.Getenv in main).
func LoadRelay(getenv func(string) string) (Relay, error) {
	shared, err := loadShared(getenv)
	if err != nil {
		return Relay{}, err
	}
	c := Relay{SecretID: shared.SecretID, Header: shared.Header, Tolerance: shared.Tolerance, SecretTTL: shared.SecretTTL, Namespace: shared.Namespace}
	if c.Org, err = azureOrg(getenv); err != nil {
		return Relay{}, err
	}
	if c.Pipelines, err = Pipelines(getenv); err != nil {
		return Relay{}, err
	}
	c.Webhook = strings.TrimSpace(getenv("AZURE_DEVOPS_WEBHOOK"))
	switch {
	case c.Webhook == "" && len(c.Pipelines) == 0:
		return Relay{}, &Error{"AZURE_DEVOPS_WEBHOOK", "is required (or AZURE_DEVOPS_PIPELINES)"}
	case c.Webhook != "" && !azdo.ValidName(c.Webhook):
		return Relay{}, &Error{"AZURE_DEVOPS_WEBHOOK", "must match [-_A-Za-z0-9]+"}
	case c.Webhook != "":
		c.Webhooks = []string{c.Webhook}
	}
	for _, name := range strings.Split(getenv("AZURE_DEVOPS_WEBHOOKS"), ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "" || name == c.Webhook:
		case !azdo.ValidName(name):
			return Relay{}, &Error{"AZURE_DEVOPS_WEBHOOKS", fmt.Sprintf("has %q, which does not match [-_A-Za-z0-9]+", name)}
		default:
			c.Webhooks = append(c.Webhooks, name)
		}
	}
	if c.AzureURL, err = baseURL(getenv, "AZURE_DEVOPS_URL", azdo.DefaultBaseURL); err != nil {
		return Relay{}, err
	}
	if c.PortAPIURL, err = baseURL(getenv, "PORT_API_URL", DefaultPortAPIURL); err != nil {
		return Relay{}, err
	}
	if c.AuthorityHost, err = baseURL(getenv, "AZURE_AUTHORITY_HOST", entra.DefaultAuthorityHost); err != nil {
		return Relay{}, err
	}
	if c.Sources, err = AllowedSources(getenv); err != nil {
		return Relay{}, err
	}
	if c.LedgerTable, err = ledgerTable(getenv); err != nil {
		return Relay{}, err
	}
	if c.LedgerTTL, err = duration(getenv, "LEDGER_TTL", ledger.DefaultTTL, ledger.MinTTL, ledger.MaxTTL); err != nil {
		return Relay{}, err
	}
	return c, nil
}

// tableName matches DynamoDB's ^[a-zA-Z0-9_.-]{3,255}$ (a name; an ARN is not taken).
func tableName(s string) bool { return len(s) >= 3 && len(s) <= 255 && allIn(s, "_.-") }

// AllowedSources reads ALLOWED_SOURCE_IPS, the addresses that may call a function
// over HTTP (the relay's and the status function's): IP addresses, CIDR blocks and
// the shorthands port-eu and port-us, comma-separated. Unset or blank allows everyone.
func AllowedSources(getenv func(string) string) (allowlist.List, error) {
	l, err := allowlist.Parse(getenv("ALLOWED_SOURCE_IPS"))
	if err != nil {
		return allowlist.List{}, &Error{"ALLOWED_SOURCE_IPS", "entry " + err.Error()}
	}
	return l, nil
}

// LoadVerifier reads the verifier's configuration through getenv.
func LoadVerifier(getenv func(string) string) (Verifier, error) {
	return loadShared(getenv)
}

func loadShared(getenv func(string) string) (Verifier, error) {
	var c Verifier
	var err error
	if c.SecretID, err = required(getenv, "PORT_SECRET_ID"); err != nil {
		return Verifier{}, err
	}
	c.Header = strings.TrimSpace(getenv("AZURE_SIGNATURE_HEADER"))
	if c.Header == "" {
		c.Header = signature.AzureDefaultHeader
	}
	if !headerName(c.Header) {
		return Verifier{}, &Error{"AZURE_SIGNATURE_HEADER", "must be an HTTP header name"}
	}
	c.Header = strings.ToLower(c.Header)
	if c.Tolerance, err = duration(getenv, "PORT_SIGNATURE_TOLERANCE", signature.DefaultTolerance, time.Second, 24*time.Hour); err != nil {
		return Verifier{}, err
	}
	if c.SecretTTL, err = duration(getenv, "SECRET_CACHE_TTL", secret.DefaultTTL, time.Second, 24*time.Hour); err != nil {
		return Verifier{}, err
	}
	if c.Namespace, err = Namespace(getenv); err != nil {
		return Verifier{}, err
	}
	return c, nil
}

// Namespace reads METRICS_NAMESPACE, the CloudWatch namespace of every function's
// metrics (the status function's too).
func Namespace(getenv func(string) string) (string, error) {
	v := strings.TrimSpace(getenv("METRICS_NAMESPACE"))
	if v == "" {
		return metrics.DefaultNamespace, nil
	}
	if !metrics.ValidNamespace(v) {
		return "", &Error{"METRICS_NAMESPACE", "must be a CloudWatch namespace: letters, digits and -._/#: (no spaces), at most 255, not starting with AWS/"}
	}
	return v, nil
}

func required(getenv func(string) string, name string) (string, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return "", &Error{name, "is required"}
	}
	return v, nil
}

func duration(getenv func(string) string, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, &Error{name, fmt.Sprintf("must be a Go duration from %s to %s, such as 5m", lo, hi)}
	}
	return d, nil
}

func baseURL(getenv func(string) string, name, def string) (string, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	u, err := url.Parse(v)
	// A bare "?" or "#" parses to an empty query or fragment, but would still swallow
	// the path appended to the base URL.
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(v, "?#") || u.User != nil {
		return "", &Error{name, "must be an http(s) base URL without query, such as " + def}
	}
	return strings.TrimRight(v, "/"), nil
}
