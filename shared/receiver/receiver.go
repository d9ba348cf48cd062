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

	"github.com/port-azure-relay/relay/shared/answer"
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

type reply struct {
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
		a, msg, _ := answers.For(err)
		r.Log.LogAttrs(ctx, slog.LevelError, "failed", r.Metrics.Append([]slog.Attr{
			slog.String("requestId", requestID), slog.String("error", err.Error()),
		}, metrics.Group{Key: metrics.Reason, Class: a.Class, Values: []metrics.Value{metrics.One(metrics.Rejected)}})...)
		body, _ := json.Marshal(reply{Error: msg})
		// A broken HTTP event is answered in the 1.0 shape, which every API accepts.
		return event.Response{HTTP: errors.Is(err, event.ErrMalformed), Kind: event.REST, Status: a.Status, Body: body, Error: msg}
	}
	scheme, err := r.verify(ctx, req)
	a := reply{Verified: err == nil, Scheme: scheme, Bytes: len(req.Body)}
	status := http.StatusOK
	level := slog.LevelInfo
	var class string
	if err != nil {
		var verdict answer.Answer
		verdict, a.Error, _ = answers.For(err)
		status, class, level = verdict.Status, verdict.Class, slog.LevelWarn
		if status >= 500 {
			level = slog.LevelError
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
		verdict = metrics.Group{Key: metrics.Reason, Class: class, Values: []metrics.Value{metrics.One(metrics.Rejected)}}
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

// answers is the one place where the verifier's errors become answers.
var answers = answer.Table{
	Rows: map[error]answer.Answer{
		ErrNotHTTP:                   notHTTP,
		event.ErrNotJSON:             notHTTP,
		event.ErrMalformed:           notHTTP,
		errNoSecret:                  {Status: http.StatusServiceUnavailable, Class: "secret", Say: "The verifier could not read its secret from Secrets Manager."},
		signature.ErrNoSignature:     {Status: http.StatusUnauthorized, Class: "signature", Say: "No signature: expected sha1=<hex> in the configured header, or v1,<base64> with x-port-timestamp."},
		signature.ErrMismatch:        {Status: http.StatusUnauthorized, Class: "signature", Say: "The signature does not match this body."},
		signature.ErrNoSecret:        invalid(signature.ErrNoSecret),
		signature.ErrMalformed:       invalid(signature.ErrMalformed),
		signature.ErrNoTimestamp:     invalid(signature.ErrNoTimestamp),
		signature.ErrBadTimestamp:    invalid(signature.ErrBadTimestamp),
		signature.ErrTimestampTooOld: invalid(signature.ErrTimestampTooOld),
		signature.ErrTimestampTooNew: invalid(signature.ErrTimestampTooNew),
		signature.ErrReplayed:        invalid(signature.ErrReplayed),
	},
	Otherwise: answer.Answer{Status: http.StatusUnauthorized, Class: "signature", Say: "The signature is invalid."},
}

var notHTTP = answer.Answer{Status: http.StatusBadRequest, Class: "event", Say: "The verifier answers HTTP events only, and this one is malformed or not HTTP."}

// invalid answers a signature error in its own words.
func invalid(err error) answer.Answer {
	return answer.Answer{Status: http.StatusUnauthorized, Class: "signature", Say: "The signature is invalid: " + err.Error(), Detail: true}
}
