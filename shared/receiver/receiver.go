// Package receiver checks the signature on a received webhook, in the form Azure
// DevOps checks or the form Port sends, and says whether it holds: the verifier
// function stands in for Azure DevOps with it, so that the chain can be tested
// round trip.
package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

// The schemes a signature can be in.
const (
	SchemeAzure = "sha1"    // sha1=<hex HMAC-SHA1>, or bare hex, in the configured header
	SchemePort  = "port-v1" // v1,<base64 HMAC-SHA256> with x-port-timestamp
)

// ErrNotHTTP is answered to an invocation that is not an HTTP event.
var ErrNotHTTP = errors.New("the verifier answers HTTP events only")

// Receiver is the verifier's core.
type Receiver struct {
	// Secret gives the credentials: the clientSecret checks Port's form, AzureKey
	// (azureWebhookSecret when present) the Azure form, as Azure itself would.
	Secret  func(ctx context.Context) (secret.Credentials, error)
	Header  string // the Azure service connection's header, lower case
	Port    signature.Port
	Log     *slog.Logger
	Metrics *metrics.Emitter // the log line's EMF members; nil: none
}

type answer struct {
	Verified bool   `json:"verified"`
	Scheme   string `json:"scheme,omitempty"`
	Bytes    int    `json:"bytes"`
	Error    string `json:"error,omitempty"`
}

// Handle answers one raw Lambda event.
func (r *Receiver) Handle(ctx context.Context, requestID string, raw []byte) event.Response {
	start := time.Now()
	req, err := event.Parse(raw)
	if err == nil && !req.Kind.IsHTTP() {
		err = ErrNotHTTP
	}
	if err != nil {
		r.Log.LogAttrs(ctx, slog.LevelError, "failed", r.Metrics.Append([]slog.Attr{
			slog.String("requestId", requestID), slog.String("error", err.Error()),
		}, metrics.Group{Key: metrics.Reason, Class: "event", Values: []metrics.Value{metrics.One(metrics.Rejected)}})...)
		msg := "The verifier answers HTTP events only, and this one is malformed or not HTTP."
		body, _ := json.Marshal(answer{Error: msg})
		// A broken HTTP event is answered in the 1.0 shape, which every API accepts.
		return event.Response{HTTP: errors.Is(err, event.ErrMalformed), Kind: event.REST, Status: http.StatusBadRequest, Body: body, Error: msg}
	}
	scheme, err := r.verify(ctx, req)
	a := answer{Verified: err == nil, Scheme: scheme, Bytes: len(req.Body)}
	status := http.StatusOK
	level := slog.LevelInfo
	if err != nil {
		a.Error = sentence(err)
		status, level = http.StatusUnauthorized, slog.LevelWarn
		if errors.Is(err, errNoSecret) {
			status, level = http.StatusServiceUnavailable, slog.LevelError
		}
	}
	body, _ := json.Marshal(a)
	attrs := []slog.Attr{
		slog.String("requestId", requestID), slog.String("kind", string(req.Kind)),
		slog.Int("status", status), slog.Bool("verified", a.Verified), slog.String("scheme", scheme),
		slog.Int("bytes", len(req.Body)), slog.Float64("durationMs", float64(time.Since(start).Microseconds())/1000),
	}
	verdict := metrics.Group{Key: metrics.Scheme, Class: scheme, Values: []metrics.Value{metrics.One(metrics.Verified)}}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		verdict = metrics.Group{Key: metrics.Reason, Class: "signature", Values: []metrics.Value{metrics.One(metrics.Rejected)}}
		if errors.Is(err, errNoSecret) {
			verdict.Class = "secret"
		}
	}
	r.Log.LogAttrs(ctx, level, "verified", r.Metrics.Append(attrs, verdict)...)
	return event.Response{HTTP: true, Kind: req.Kind, Status: status, Body: body, Error: a.Error}
}

var errNoSecret = errors.New("the verifier could not read its secret")

// verify picks the scheme by the value's form: Port's starts with "v1,". Both
// schemes use x-port-signature by default, so the header name alone cannot tell.
func (r *Receiver) verify(ctx context.Context, req event.Request) (string, error) {
	creds, err := r.Secret(ctx)
	if err != nil {
		return "", errNoSecret
	}
	azure := req.Get(r.Header)
	port := req.Get(signature.PortSignatureHeader)
	switch {
	case strings.HasPrefix(strings.TrimSpace(port), "v1,"):
		return SchemePort, r.Port.Verify([]byte(creds.ClientSecret), port, req.Get(signature.PortTimestampHeader), req.Body)
	case azure != "":
		return SchemeAzure, signature.VerifyAzure(creds.AzureKey(), azure, req.Body)
	default:
		return "", signature.ErrNoSignature
	}
}

func sentence(err error) string {
	switch {
	case errors.Is(err, errNoSecret):
		return "The verifier could not read its secret from Secrets Manager."
	case errors.Is(err, signature.ErrNoSignature):
		return "No signature: expected sha1=<hex> in the configured header, or v1,<base64> with x-port-timestamp."
	case errors.Is(err, signature.ErrMismatch):
		return "The signature does not match this body."
	default:
		return "The signature is invalid: " + err.Error() + "."
	}
}
