package lambdatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/port-azure-relay/relay/shared/event"
)

func TestEventsParse(t *testing.T) {
	builders := []struct {
		name string
		kind event.Kind
		make func(method, path string, h http.Header, b []byte) []byte
	}{
		{"REST", event.REST, RESTEvent},
		{"HTTP API", event.HTTPAPI, HTTPAPIEvent},
		{"Function URL", event.FunctionURL, FunctionURLEvent},
	}
	bodies := []struct {
		name string
		body []byte
	}{
		{"a JSON object", []byte(`{"port_context":{"runId":"r_1"},"name":"<svc>&é"}`)},
		{"bytes that are not UTF-8", []byte("{\"a\":\"\xff\xfe\"}")},
		{"nothing", nil},
	}
	h := http.Header{}
	h.Set("X-Port-Signature", "v1,abc=")
	h.Set("X-Port-Timestamp", "1700000000")
	h.Add("X-Multi", "one")
	h.Add("X-Multi", "two")
	for _, bd := range builders {
		for _, body := range bodies {
			t.Run(bd.name+" with "+body.name, func(t *testing.T) {
				raw := bd.make("POST", "/prod/webhooks/deploy?x=1", h, body.body)
				req, err := event.Parse(raw)
				if err != nil {
					t.Fatalf("Parse = %v\n%s", err, raw)
				}
				if req.Kind != bd.kind || req.Method != "POST" || req.Path != "/prod/webhooks/deploy" {
					t.Errorf("Parse = kind %q method %q path %q, want %q POST /prod/webhooks/deploy", req.Kind, req.Method, req.Path, bd.kind)
				}
				if !bytes.Equal(req.Body, body.body) {
					t.Errorf("body = %q, want %q", req.Body, body.body)
				}
				if got := req.Get("x-port-signature"); got != "v1,abc=" {
					t.Errorf("x-port-signature = %q", got)
				}
				if got := req.Source.String(); got != sourceIP {
					t.Errorf("source = %s, want %s", got, sourceIP)
				}
				for _, ip := range []string{"2001:db8::7", "198.51.100.1", ""} {
					moved, err := event.Parse(WithSourceIP(raw, ip))
					if err != nil || !bytes.Equal(moved.Body, body.body) || moved.Get("x-multi") != req.Get("x-multi") ||
						(ip == "" && moved.Source.IsValid()) || (ip != "" && moved.Source.String() != ip) {
						t.Errorf("WithSourceIP(%q) parses to source %v, body %q, %v; want the source changed and nothing else", ip, moved.Source, moved.Body, err)
					}
				}
				if got := req.Get("X-Port-Timestamp"); got != "1700000000" {
					t.Errorf("x-port-timestamp = %q", got)
				}
				var shape map[string]any
				if err := json.Unmarshal(raw, &shape); err != nil {
					t.Fatal(err)
				}
				if b64, _ := shape["isBase64Encoded"].(bool); b64 != !utf8.Valid(body.body) {
					t.Errorf("isBase64Encoded = %v for %q", b64, body.body)
				}
			})
		}
	}
}

func TestBase64OnlyWhenNotUTF8(t *testing.T) {
	for _, tc := range []struct {
		body []byte
		want bool
	}{{[]byte(`{"a":"é"}`), false}, {[]byte("\xef\xbb\xbf{}"), false}, {[]byte("{\"a\":\"\xc3\"}"), true}} {
		var ev struct {
			IsBase64Encoded bool `json:"isBase64Encoded"`
		}
		if err := json.Unmarshal(HTTPAPIEvent("POST", "/", nil, tc.body), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.IsBase64Encoded != tc.want {
			t.Errorf("HTTPAPIEvent(%q).isBase64Encoded = %v, want %v", tc.body, ev.IsBase64Encoded, tc.want)
		}
	}
}

func TestScheduledEventParse(t *testing.T) {
	req, err := event.Parse(ScheduledEvent("nightly"))
	if err != nil || req.Kind != event.Scheduled {
		t.Fatalf("Parse(ScheduledEvent) = %q, %v; want a scheduled event", req.Kind, err)
	}
}

type invokerFunc func(ctx context.Context, ev []byte) ([]byte, error)

func (f invokerFunc) Invoke(ctx context.Context, ev []byte) ([]byte, error) { return f(ctx, ev) }

func TestGateway(t *testing.T) {
	tests := []struct {
		name       string
		answer     string
		err        error
		wantStatus int
		wantBody   string
		wantHeader string
	}{
		{"a response is written as API Gateway writes it", `{"statusCode":201,"headers":{"X-Test":"yes"},"body":"{\"ok\":true}"}`, nil, 201, `{"ok":true}`, "yes"},
		{"a base64 body is decoded", `{"statusCode":200,"body":"aGk=","isBase64Encoded":true}`, nil, 200, "hi", ""},
		{"a result without statusCode is a 200 JSON body", `{"verified":true}`, nil, 200, `{"verified":true}`, ""},
		{"a function error is a 502", `{"errorType":"Failure","errorMessage":"no"}`, &FunctionError{Type: "Failure", Message: "no"}, 502, `{"message":"Internal Server Error"}`, ""},
		{"a timeout is a 504", "Task timed out after 3.00 seconds", ErrTimedOut, 504, `{"message":"Endpoint request timed out"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			gw := Gateway(invokerFunc(func(_ context.Context, ev []byte) ([]byte, error) {
				got = ev
				return []byte(tc.answer), tc.err
			}))
			defer gw.Close()
			if !strings.HasPrefix(gw.URL, "http://127.0.0.1:") {
				t.Fatalf("URL = %s, want loopback", gw.URL)
			}
			req, _ := http.NewRequest("POST", gw.URL+"/org/_apis/public/distributedtask/webhooks/deploy?api-version=6.0-preview", strings.NewReader(`{"a":1}`))
			req.Header.Set("X-Port-Signature", "sha1=00")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || string(body) != tc.wantBody || resp.Header.Get("X-Test") != tc.wantHeader {
				t.Errorf("got %d %s (X-Test %q), want %d %s (%q)", resp.StatusCode, body, resp.Header.Get("X-Test"), tc.wantStatus, tc.wantBody, tc.wantHeader)
			}
			req2, err := event.Parse(got)
			if err != nil {
				t.Fatalf("the gateway's event does not parse: %v\n%s", err, got)
			}
			if req2.Kind != event.HTTPAPI || req2.Path != "/org/_apis/public/distributedtask/webhooks/deploy" ||
				string(req2.Body) != `{"a":1}` || req2.Get("x-port-signature") != "sha1=00" || req2.Source.String() != "127.0.0.1" {
				t.Errorf("event = %+v", req2)
			}
		})
	}
}

func TestRESTGateway(t *testing.T) {
	tests := []struct {
		name       string
		answer     string
		wantStatus int
		wantBody   string
	}{
		{"a 1.0 response is written", `{"statusCode":401,"headers":{"Content-Type":"application/json"},"multiValueHeaders":null,"body":"{\"error\":\"x\"}"}`, 401, `{"error":"x"}`},
		{"a 2.0 response with cookies is malformed", `{"statusCode":200,"headers":null,"multiValueHeaders":null,"body":"{}","cookies":null}`, 502, `{"message":"Internal server error"}`},
		{"a result without statusCode is malformed", `{"verified":true}`, 502, `{"message":"Internal server error"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			gw := RESTGateway(invokerFunc(func(_ context.Context, ev []byte) ([]byte, error) {
				got = ev
				return []byte(tc.answer), nil
			}))
			defer gw.Close()
			resp, err := http.Post(gw.URL+"/webhooks/deploy", "application/json", strings.NewReader(`{"a":1}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || string(body) != tc.wantBody {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			if req, err := event.Parse(got); err != nil || req.Kind != event.REST || req.Path != "/webhooks/deploy" {
				t.Errorf("the gateway's event parses as %+v, %v; want a REST event for /webhooks/deploy", req, err)
			}
		})
	}
}

func TestFunctionError(t *testing.T) {
	for body, want := range map[string]bool{
		`{"errorType":"Failure","errorMessage":"x"}`:                           true,
		`{"errorType":"Runtime.ExitError","errorMessage":"x","stackTrace":[]}`: true,
		`{"forwarded":true,"errorType":"x","errorMessage":"y"}`:                false,
		`{"statusCode":500}`: false,
		`not json`:           false,
	} {
		if got := functionError([]byte(body)) != nil; got != want {
			t.Errorf("functionError(%s) = %v, want %v", body, got, want)
		}
	}
	var fe *FunctionError
	if !errors.As(error(&FunctionError{Type: "Failure"}), &fe) {
		t.Fatal("errors.As")
	}
}
