package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

// The samples in events/ are signed with this secret at this time (events/README.md).
const (
	sampleSecret = "demo-port-client-secret"
	sampleTime   = 1764201600
)

func newInvoke(t *testing.T, logs *bytes.Buffer) func(context.Context, json.RawMessage) (any, error) {
	t.Helper()
	sm := smtest.New()
	t.Cleanup(sm.Close)
	sm.Put("port/verifier", sampleSecret+"\n")
	cfg, err := config.Load(func(k string) string {
		return map[string]string{"PORT_SECRET_ID": "port/verifier"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	core := newReceiver(cfg, sm.Client(), handler.Logger(logs))
	core.Port.Now = func() time.Time { return time.Unix(sampleTime, 0) }
	return handler.Invoke(core)
}

func TestEverySampleEvent(t *testing.T) {
	samples := map[string]struct {
		status int
		scheme string
	}{
		"azure-signed.json":  {200, "sha1"},
		"port-signed.json":   {200, "port-v1"},
		"bad-signature.json": {401, "sha1"},
	}
	files, _ := filepath.Glob("../../events/verifier/*.json")
	if len(files) == 0 {
		t.Fatal("no samples in events/verifier")
	}
	for _, file := range files {
		name := filepath.Base(file)
		want, ok := samples[name]
		if !ok {
			t.Errorf("%s has no expectation in this test: add it to samples", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out, err := newInvoke(t, &logs)(context.Background(), raw)
			if err != nil {
				t.Fatalf("invoke = %v", err)
			}
			resp := out.(events.APIGatewayV2HTTPResponse)
			var a struct {
				Verified bool   `json:"verified"`
				Scheme   string `json:"scheme"`
				Error    string `json:"error"`
			}
			if err := json.Unmarshal([]byte(resp.Body), &a); err != nil {
				t.Fatalf("body %q: %v", resp.Body, err)
			}
			if resp.StatusCode != want.status || a.Scheme != want.scheme || a.Verified != (want.status == 200) {
				t.Fatalf("answer = %d %s, want %d scheme %s", resp.StatusCode, resp.Body, want.status, want.scheme)
			}
			if strings.Contains(logs.String(), sampleSecret) || strings.Contains(logs.String(), "payments-api") {
				t.Errorf("log leaks the secret or the payload: %s", logs.String())
			}
		})
	}
}

func TestSignatureFormsAndFailures(t *testing.T) {
	body := []byte(`{"port_context":{"runId":"r_abc"},"name":"<svc>&é"}`)
	// HMAC-SHA1("demo-port-client-secret", body), computed independently with openssl.
	good := "sha1=139e240db9406fee29a0a633593a323a6cc38c2b"
	cases := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"Azure form with sha1= prefix is verified", map[string]string{"x-port-signature": good}, 200},
		{"Azure form in upper case is verified", map[string]string{"X-Port-Signature": strings.ToUpper(good)}, 200},
		{"bare hex is verified", map[string]string{"x-port-signature": strings.TrimPrefix(good, "sha1=")}, 200},
		{"a wrong digest is refused", map[string]string{"x-port-signature": "sha1=" + strings.Repeat("ab", 20)}, 401},
		{"non-hex is refused", map[string]string{"x-port-signature": "sha1=zz"}, 401},
		{"no signature is refused", map[string]string{}, 401},
		{"Port form without timestamp is refused", map[string]string{"x-port-signature": "v1,AAAA"}, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, _ := json.Marshal(events.APIGatewayV2HTTPRequest{
				Version: "2.0", RawPath: "/", Headers: c.header, Body: string(body),
				RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/"}},
			})
			out, err := newInvoke(t, &bytes.Buffer{})(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := out.(events.APIGatewayV2HTTPResponse); got.StatusCode != c.status {
				t.Errorf("status = %d (%s), want %d", got.StatusCode, got.Body, c.status)
			}
		})
	}
}

func TestNonHTTPEventIsAFunctionError(t *testing.T) {
	_, err := newInvoke(t, &bytes.Buffer{})(context.Background(), []byte(`{"source":"aws.events","detail-type":"Scheduled Event"}`))
	var failure *handler.Failure
	if !errors.As(err, &failure) || failure.Status != 400 {
		t.Fatalf("invoke = %v, want a 400 Failure", err)
	}
}
