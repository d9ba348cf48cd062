package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

const (
	key      = "receiver-test-secret"
	azureKey = "receiver-test-azure-webhook-secret"
)

func httpEvent(headers map[string]string, body string) []byte {
	ev, _ := json.Marshal(map[string]any{
		"version": "2.0", "rawPath": "/org/_apis/public/distributedtask/webhooks/x", "headers": headers, "body": body,
		"requestContext": map[string]any{"http": map[string]string{"method": "POST"}},
	})
	return ev
}

func TestHandle(t *testing.T) {
	body := `{"port_context":{"runId":"r_1"}}`
	now := time.Unix(1764201600, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	cases := []struct {
		name     string
		headers  map[string]string
		secret   error
		status   int
		scheme   string
		verified bool
		azure    string // the secret's azureWebhookSecret, if any
	}{
		{"the relay's sha1 signature holds", map[string]string{"x-port-signature": signature.SignAzure([]byte(key), []byte(body))}, nil, 200, SchemeAzure, true, ""},
		{"a custom header is read", map[string]string{"x-custom": signature.SignAzure([]byte(key), []byte(body))}, nil, 401, "", false, ""},
		{"Port's v1 signature holds", map[string]string{"x-port-timestamp": ts, "x-port-signature": signature.SignPort([]byte(key), now.Unix(), []byte(body))}, nil, 200, SchemePort, true, ""},
		{"Port's v1 signature with another secret fails", map[string]string{"x-port-timestamp": ts, "x-port-signature": signature.SignPort([]byte("x"), now.Unix(), []byte(body))}, nil, 401, SchemePort, false, ""},
		{"a sha1 signature over other bytes fails", map[string]string{"x-port-signature": signature.SignAzure([]byte(key), []byte("{}"))}, nil, 401, SchemeAzure, false, ""},
		{"no signature fails", map[string]string{}, nil, 401, "", false, ""},
		{"an unreadable secret is 503", map[string]string{"x-port-signature": "sha1=00"}, errors.New("down"), 503, "", false, ""},
		{"with azureWebhookSecret, Azure's form is checked with it", map[string]string{"x-port-signature": signature.SignAzure([]byte(azureKey), []byte(body))}, nil, 200, SchemeAzure, true, azureKey},
		{"with azureWebhookSecret, Azure's form made with the clientSecret fails", map[string]string{"x-port-signature": signature.SignAzure([]byte(key), []byte(body))}, nil, 401, SchemeAzure, false, azureKey},
		{"with azureWebhookSecret, Port's form is still checked with the clientSecret", map[string]string{"x-port-timestamp": ts, "x-port-signature": signature.SignPort([]byte(key), now.Unix(), []byte(body))}, nil, 200, SchemePort, true, azureKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			r := &Receiver{
				Secret: func(context.Context) (secret.Credentials, error) {
					return secret.Credentials{ClientSecret: key, AzureWebhookSecret: c.azure}, c.secret
				},
				Header:  "x-port-signature",
				Port:    signature.Port{Now: func() time.Time { return now }},
				Log:     slog.New(slog.NewJSONHandler(&logs, nil)),
				Metrics: metrics.New("PortAzureRelay", metrics.FunctionVerifier),
			}
			resp := r.Handle(context.Background(), "req", httpEvent(c.headers, body))
			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("log %s: %v", logs.String(), err)
			}
			metric, dim, class := metrics.Verified, metrics.Scheme, c.scheme
			if !c.verified {
				metric, dim, class = metrics.Rejected, metrics.Reason, "signature"
				if c.secret != nil {
					class = "secret"
				}
			}
			if line["_aws"] == nil || line["Function"] != "verifier" || line[metric] != 1.0 || line[dim] != class {
				t.Errorf("log line %v: want _aws, Function verifier, %s 1 and %s %q", line, metric, dim, class)
			}
			var a reply
			if err := json.Unmarshal(resp.Body, &a); err != nil {
				t.Fatal(err)
			}
			if resp.Status != c.status || a.Scheme != c.scheme || a.Verified != c.verified || !resp.HTTP {
				t.Errorf("Handle = %d %s, want %d scheme %q verified %v", resp.Status, resp.Body, c.status, c.scheme, c.verified)
			}
			if strings.Contains(logs.String(), key) || strings.Contains(logs.String(), azureKey) || strings.Contains(logs.String(), "r_1") {
				t.Errorf("log leaks the secret or the body: %s", logs.String())
			}
		})
	}
}

func TestNonHTTPEventsAreRefused(t *testing.T) {
	r := &Receiver{Secret: func(context.Context) (secret.Credentials, error) { return secret.Credentials{ClientSecret: key}, nil }, Log: slog.New(slog.DiscardHandler)}
	for _, raw := range []string{`{"source":"aws.events","detail-type":"Scheduled Event"}`, `[1]`, `{"version":"2.0","requestContext":{"http":{}}}`} {
		if resp := r.Handle(context.Background(), "req", []byte(raw)); resp.Status != 400 || resp.Error == "" {
			t.Errorf("Handle(%s) = %d %q, want 400 with a sentence", raw, resp.Status, resp.Error)
		}
	}
}
