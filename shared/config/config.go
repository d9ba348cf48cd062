// Package config reads what every function reads of its environment, and the
// helpers with which each function's core reads the rest (relay.LoadConfig,
// runstatus.LoadConfig); a missing or invalid variable is refused by name, at start-up.
package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/allowlist"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

// DefaultPortAPIURL is Port's EU API; US organisations use https://api.us.port.io.
const DefaultPortAPIURL = "https://api.port.io"

// Common is what every function reads: the secret, the signature scheme and the
// metrics' namespace. It is the verifier's whole configuration.
type Common struct {
	SecretID  string
	Header    string
	Tolerance time.Duration
	SecretTTL time.Duration
	Namespace string // METRICS_NAMESPACE
}

// AzureOrg reads AZURE_DEVOPS_ORG, required by the relay and the status function.
func AzureOrg(getenv func(string) string) (string, error) {
	org, err := Required(getenv, "AZURE_DEVOPS_ORG")
	if err != nil {
		return "", err
	}
	if !orgName(org) {
		return "", &Error{"AZURE_DEVOPS_ORG", "must be an Azure DevOps organization name (letters, digits, hyphens)"}
	}
	return org, nil
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
	return AllIn(s, "-")
}

func headerName(s string) bool { return len(s) > 0 && AllIn(s, "!#$%&'*+.^_`|~-") }

// AllIn reports whether every byte of s is an ASCII letter, a digit or in extra.
func AllIn(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// TableName matches DynamoDB's ^[a-zA-Z0-9_.-]{3,255}$ (a name; an ARN is not taken).
func TableName(s string) bool { return len(s) >= 3 && len(s) <= 255 && AllIn(s, "_.-") }

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

// Load reads what every function reads through getenv (os.Getenv in main).
func Load(getenv func(string) string) (Common, error) {
	var c Common
	var err error
	if c.SecretID, err = Required(getenv, "PORT_SECRET_ID"); err != nil {
		return Common{}, err
	}
	c.Header = strings.TrimSpace(getenv("AZURE_SIGNATURE_HEADER"))
	if c.Header == "" {
		c.Header = signature.AzureDefaultHeader
	}
	if !headerName(c.Header) {
		return Common{}, &Error{"AZURE_SIGNATURE_HEADER", "must be an HTTP header name"}
	}
	c.Header = strings.ToLower(c.Header)
	if c.Tolerance, err = Duration(getenv, "PORT_SIGNATURE_TOLERANCE", signature.DefaultTolerance, time.Second, 24*time.Hour); err != nil {
		return Common{}, err
	}
	if c.SecretTTL, err = Duration(getenv, "SECRET_CACHE_TTL", secret.DefaultTTL, time.Second, 24*time.Hour); err != nil {
		return Common{}, err
	}
	if c.Namespace, err = Namespace(getenv); err != nil {
		return Common{}, err
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

// Required reads name, refusing an empty value.
func Required(getenv func(string) string, name string) (string, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return "", &Error{name, "is required"}
	}
	return v, nil
}

// Duration reads name as a Go duration from lo to hi; def when unset.
func Duration(getenv func(string) string, name string, def, lo, hi time.Duration) (time.Duration, error) {
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

// BaseURL reads name as an http(s) base URL without query; def when unset.
func BaseURL(getenv func(string) string, name, def string) (string, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	u, err := url.Parse(v)
	// A bare "?" or "#" parses to an empty query or fragment, but would still swallow
	// the path appended to the base URL.
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(v, "?#") || u.User != nil {
		if def == "" {
			return "", &Error{name, "must be an http(s) URL without query"}
		}
		return "", &Error{name, "must be an http(s) base URL without query, such as " + def}
	}
	return strings.TrimRight(v, "/"), nil
}
