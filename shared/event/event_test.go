package event_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
)

// The events are built with aws-lambda-go's own types, so Parse is held to the field
// names AWS sends, while the package itself stays free of aws-lambda-go.

const portBody = `{"port_context":{"runId":"r_abc"},"name":"<svc>&é"}`

func marshal(tb testing.TB, v any) []byte {
	tb.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func restEvent() events.APIGatewayProxyRequest {
	return events.APIGatewayProxyRequest{
		Resource:   "/webhooks/{name}",
		Path:       "/prod/webhooks/deploy",
		HTTPMethod: "POST",
		Headers: map[string]string{
			"Content-Type":     "application/json",
			"X-Port-Signature": "v1,abc=",
			"x-port-timestamp": "1700000000",
		},
		RequestContext: events.APIGatewayProxyRequestContext{
			Stage:      "prod",
			DomainName: "abc123.execute-api.eu-west-1.amazonaws.com",
			HTTPMethod: "POST",
			Path:       "/prod/webhooks/deploy",
			RequestID:  "req-1",
		},
		Body: portBody,
	}
}

func httpAPIEvent() events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{
		Version:  "2.0",
		RouteKey: "POST /webhooks/{name}",
		RawPath:  "/webhooks/deploy",
		Headers: map[string]string{
			"content-type":     "application/json",
			"x-port-signature": "v1,abc=",
			"x-port-timestamp": "1700000000",
		},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			DomainName: "abc123.execute-api.eu-west-1.amazonaws.com",
			HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/webhooks/deploy"},
			RequestID:  "req-2",
		},
		Body: portBody,
	}
}

func functionURLEvent() events.LambdaFunctionURLRequest {
	return events.LambdaFunctionURLRequest{
		Version: "2.0",
		RawPath: "/",
		Headers: map[string]string{
			"content-type":     "application/json",
			"x-port-signature": "v1,abc=",
			"x-port-timestamp": "1700000000",
		},
		RequestContext: events.LambdaFunctionURLRequestContext{
			DomainName: "abcdefghij.lambda-url.eu-west-1.on.aws",
			HTTP:       events.LambdaFunctionURLRequestContextHTTPDescription{Method: "POST", Path: "/"},
			RequestID:  "req-3",
		},
		Body: portBody,
	}
}

func scheduledEvent() events.EventBridgeEvent {
	return events.EventBridgeEvent{
		Version:    "0",
		ID:         "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
		DetailType: "Scheduled Event",
		Source:     "aws.events",
		AccountID:  "123456789012",
		Time:       time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Region:     "eu-west-1",
		Resources:  []string{"arn:aws:events:eu-west-1:123456789012:rule/nightly"},
		Detail:     json.RawMessage(`{}`),
	}
}

func TestParse(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(portBody))

	tests := []struct {
		name   string
		event  func(t *testing.T) []byte
		want   event.Request
		header map[string]string // headers that must be there, looked up in lower case
		err    error
	}{
		{
			name:  "a REST event keeps its path and lower-cases mixed-case headers",
			event: func(t *testing.T) []byte { return marshal(t, restEvent()) },
			want:  event.Request{Kind: event.REST, Method: "POST", Path: "/prod/webhooks/deploy", Body: []byte(portBody)},
			header: map[string]string{
				"x-port-signature": "v1,abc=", "x-port-timestamp": "1700000000", "content-type": "application/json",
			},
		},
		{
			name: "a REST event with a lower-case method is upper-cased",
			event: func(t *testing.T) []byte {
				e := restEvent()
				e.HTTPMethod = "post"
				return marshal(t, e)
			},
			want: event.Request{Kind: event.REST, Method: "POST", Path: "/prod/webhooks/deploy", Body: []byte(portBody)},
		},
		{
			name: "a REST event with multiValueHeaders only takes the last value",
			event: func(t *testing.T) []byte {
				e := restEvent()
				e.Headers = nil
				e.MultiValueHeaders = map[string][]string{
					"X-Port-Signature": {"v1,old=", "v1,abc="},
					"X-Port-Timestamp": {"1700000000"},
					"X-Empty":          {},
				}
				return marshal(t, e)
			},
			want:   event.Request{Kind: event.REST, Method: "POST", Path: "/prod/webhooks/deploy", Body: []byte(portBody)},
			header: map[string]string{"x-port-signature": "v1,abc=", "x-port-timestamp": "1700000000"},
		},
		{
			name: "a REST event with headers and multiValueHeaders agreeing parses",
			event: func(t *testing.T) []byte {
				e := restEvent()
				e.MultiValueHeaders = map[string][]string{"X-Port-Signature": {"v1,abc="}, "x-port-timestamp": {"1700000000"}}
				return marshal(t, e)
			},
			want:   event.Request{Kind: event.REST, Method: "POST", Path: "/prod/webhooks/deploy", Body: []byte(portBody)},
			header: map[string]string{"x-port-signature": "v1,abc="},
		},
		{
			name: "a REST event with one header twice in different case and the same value parses",
			event: func(t *testing.T) []byte {
				e := restEvent()
				e.Headers["x-port-signature"] = "v1,abc="
				return marshal(t, e)
			},
			want:   event.Request{Kind: event.REST, Method: "POST", Path: "/prod/webhooks/deploy", Body: []byte(portBody)},
			header: map[string]string{"x-port-signature": "v1,abc="},
		},
		{
			name: "a REST event with one header twice in different case and different values is malformed",
			event: func(t *testing.T) []byte {
				e := restEvent()
				e.Headers["x-port-signature"] = "v1,other="
				return marshal(t, e)
			},
			err: event.ErrMalformed,
		},
		{
			name: "a REST event whose multiValueHeaders contradict headers in another case is malformed",
			event: func(t *testing.T) []byte {
				e := restEvent()
				e.MultiValueHeaders = map[string][]string{"x-port-signature": {"v1,other="}}
				return marshal(t, e)
			},
			err: event.ErrMalformed,
		},
		{
			name: "a REST event with a base64 body is decoded",
			event: func(t *testing.T) []byte {
				e := restEvent()
				e.Body, e.IsBase64Encoded = b64, true
				return marshal(t, e)
			},
			want: event.Request{Kind: event.REST, Method: "POST", Path: "/prod/webhooks/deploy", Body: []byte(portBody)},
		},
		{
			name: "a REST event with a body marked base64 that is not is malformed",
			event: func(t *testing.T) []byte {
				e := restEvent()
				e.IsBase64Encoded = true
				return marshal(t, e)
			},
			err: event.ErrMalformed,
		},
		{
			name: "a REST event with an empty body has an empty body",
			event: func(t *testing.T) []byte {
				e := restEvent()
				e.Body = ""
				return marshal(t, e)
			},
			want: event.Request{Kind: event.REST, Method: "POST", Path: "/prod/webhooks/deploy", Body: []byte{}},
		},
		{
			name: "a REST event without a method is malformed",
			event: func(t *testing.T) []byte {
				e := restEvent()
				e.HTTPMethod = ""
				return marshal(t, e)
			},
			err: event.ErrMalformed,
		},
		{
			name: "a REST event whose body is a number is malformed",
			event: func(t *testing.T) []byte {
				return bytes.Replace(marshal(t, restEvent()), []byte(`"body":`+mustJSON(portBody)), []byte(`"body":5`), 1)
			},
			err: event.ErrMalformed,
		},
		{
			name: "a REST event whose isBase64Encoded is a string is malformed",
			event: func(t *testing.T) []byte {
				return bytes.Replace(marshal(t, restEvent()), []byte(`"httpMethod":"POST"`), []byte(`"httpMethod":"POST","isBase64Encoded":"true"`), 1)
			},
			err: event.ErrMalformed,
		},
		{
			name:  "an HTTP API 2.0 event takes its method and raw path",
			event: func(t *testing.T) []byte { return marshal(t, httpAPIEvent()) },
			want:  event.Request{Kind: event.HTTPAPI, Method: "POST", Path: "/webhooks/deploy", Body: []byte(portBody)},
			header: map[string]string{
				"x-port-signature": "v1,abc=", "x-port-timestamp": "1700000000",
			},
		},
		{
			name: "an HTTP API 2.0 event without rawPath uses the context path",
			event: func(t *testing.T) []byte {
				e := httpAPIEvent()
				e.RawPath = ""
				return marshal(t, e)
			},
			want: event.Request{Kind: event.HTTPAPI, Method: "POST", Path: "/webhooks/deploy", Body: []byte(portBody)},
		},
		{
			name: "an HTTP API 2.0 event with a base64 body is decoded",
			event: func(t *testing.T) []byte {
				e := httpAPIEvent()
				e.Body, e.IsBase64Encoded = b64, true
				return marshal(t, e)
			},
			want: event.Request{Kind: event.HTTPAPI, Method: "POST", Path: "/webhooks/deploy", Body: []byte(portBody)},
		},
		{
			name: "an HTTP API 2.0 event without a body has a nil body",
			event: func(t *testing.T) []byte {
				e := httpAPIEvent()
				e.Body = "" // omitempty: no "body" key at all
				return marshal(t, e)
			},
			want: event.Request{Kind: event.HTTPAPI, Method: "POST", Path: "/webhooks/deploy"},
		},
		{
			name: "an HTTP API 2.0 event without a method is malformed",
			event: func(t *testing.T) []byte {
				e := httpAPIEvent()
				e.RequestContext.HTTP.Method = ""
				return marshal(t, e)
			},
			err: event.ErrMalformed,
		},
		{
			name:  "a Function URL event is told apart by its domain",
			event: func(t *testing.T) []byte { return marshal(t, functionURLEvent()) },
			want:  event.Request{Kind: event.FunctionURL, Method: "POST", Path: "/", Body: []byte(portBody)},
			header: map[string]string{
				"x-port-signature": "v1,abc=",
			},
		},
		{
			name: "a Function URL event with a base64 body is decoded",
			event: func(t *testing.T) []byte {
				e := functionURLEvent()
				e.Body, e.IsBase64Encoded = b64, true
				return marshal(t, e)
			},
			want: event.Request{Kind: event.FunctionURL, Method: "POST", Path: "/", Body: []byte(portBody)},
		},
		{
			name: "a Function URL event with invalid base64 is malformed",
			event: func(t *testing.T) []byte {
				e := functionURLEvent()
				e.Body, e.IsBase64Encoded = "%%%"+b64, true
				return marshal(t, e)
			},
			err: event.ErrMalformed,
		},
		{
			name:  "an EventBridge scheduled event is scheduled and keeps the whole event",
			event: func(t *testing.T) []byte { return marshal(t, scheduledEvent()) },
			want:  event.Request{Kind: event.Scheduled},
		},
		{
			name: "an EventBridge event of another detail type is direct",
			event: func(t *testing.T) []byte {
				e := scheduledEvent()
				e.DetailType = "EC2 Instance State-change Notification"
				return marshal(t, e)
			},
			want: event.Request{Kind: event.Direct},
		},
		{
			name: "an EventBridge event from another source is direct",
			event: func(t *testing.T) []byte {
				e := scheduledEvent()
				e.Source = "my.app"
				return marshal(t, e)
			},
			want: event.Request{Kind: event.Direct},
		},
		{
			name:  "a plain object is direct",
			event: func(*testing.T) []byte { return []byte(portBody) },
			want:  event.Request{Kind: event.Direct},
		},
		{
			name:  "a plain object with leading space is direct",
			event: func(*testing.T) []byte { return []byte("\n\t " + portBody) },
			want:  event.Request{Kind: event.Direct},
		},
		{
			name:  "an empty object is direct",
			event: func(*testing.T) []byte { return []byte(`{}`) },
			want:  event.Request{Kind: event.Direct},
		},
		{
			name:  "an object whose headers key is a number is direct",
			event: func(*testing.T) []byte { return []byte(`{"headers":5}`) },
			want:  event.Request{Kind: event.Direct},
		},
		{
			name:  "an object whose body and source keys have other types is direct",
			event: func(*testing.T) []byte { return []byte(`{"body":{"a":1},"source":["x"],"path":true}`) },
			want:  event.Request{Kind: event.Direct},
		},
		{
			name:  "an HTTP-looking object whose headers are a list is malformed",
			event: func(*testing.T) []byte { return []byte(`{"httpMethod":"POST","headers":["a"]}`) },
			err:   event.ErrMalformed,
		},
		{
			name:  "an HTTP-looking object whose requestContext is a string is malformed",
			event: func(*testing.T) []byte { return []byte(`{"requestContext":"x","body":"{}"}`) },
			err:   event.ErrMalformed,
		},
		{
			name:  "an object with a routeKey but no method is malformed",
			event: func(*testing.T) []byte { return []byte(`{"routeKey":"$default","body":"{}"}`) },
			err:   event.ErrMalformed,
		},
		{name: "an array is not a JSON object", event: func(*testing.T) []byte { return []byte(`[{"httpMethod":"POST"}]`) }, err: event.ErrNotJSON},
		{name: "a string is not a JSON object", event: func(*testing.T) []byte { return []byte(`"{}"`) }, err: event.ErrNotJSON},
		{name: "a number is not a JSON object", event: func(*testing.T) []byte { return []byte(`42`) }, err: event.ErrNotJSON},
		{name: "null is not a JSON object", event: func(*testing.T) []byte { return []byte(`null`) }, err: event.ErrNotJSON},
		{name: "invalid JSON is not a JSON object", event: func(*testing.T) []byte { return []byte(`{"httpMethod":`) }, err: event.ErrNotJSON},
		{name: "an object with trailing data is not a JSON object", event: func(*testing.T) []byte { return []byte(`{} {}`) }, err: event.ErrNotJSON},
		{name: "an empty event is not a JSON object", event: func(*testing.T) []byte { return nil }, err: event.ErrNotJSON},
		{name: "a blank event is not a JSON object", event: func(*testing.T) []byte { return []byte(" \n") }, err: event.ErrNotJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.event(t)
			got, err := event.Parse(raw)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("Parse(%q) = %v, want %v", raw, err, tt.err)
			}
			if tt.err != nil {
				return
			}
			want := tt.want
			if !want.Kind.IsHTTP() {
				want.Body = raw // AWS events are forwarded whole
			}
			if got.Kind != want.Kind || got.Method != want.Method || got.Path != want.Path {
				t.Errorf("Parse(%q) = {%s %q %q}, want {%s %q %q}", raw, got.Kind, got.Method, got.Path, want.Kind, want.Method, want.Path)
			}
			if !bytes.Equal(got.Body, want.Body) || (got.Body == nil) != (want.Body == nil) {
				t.Errorf("Parse(%q).Body = %q, want %q", raw, got.Body, want.Body)
			}
			if !want.Kind.IsHTTP() && got.Header != nil {
				t.Errorf("Parse(%q).Header = %v, want none", raw, got.Header)
			}
			for name := range got.Header {
				if name != strings.ToLower(name) {
					t.Errorf("Parse(%q).Header has %q, want names in lower case", raw, name)
				}
			}
			for name, value := range tt.header {
				if v := got.Header[name]; v != value {
					t.Errorf("Parse(%q).Header[%q] = %q, want %q", raw, name, v, value)
				}
			}
		})
	}
}

func mustJSON(s string) string {
	raw, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(raw)
}

// TestParseSource: the caller's address comes from where API Gateway and Function
// URLs put the connection's peer, never from a header.
func TestParseSource(t *testing.T) {
	rest := func(ip string, h map[string]string) []byte {
		e := restEvent()
		e.RequestContext.Identity.SourceIP = ip
		for k, v := range h {
			e.Headers[k] = v
		}
		return marshal(t, e)
	}
	v2 := func(ip string, h map[string]string) []byte {
		e := httpAPIEvent()
		e.RequestContext.HTTP.SourceIP = ip
		for k, v := range h {
			e.Headers[k] = v
		}
		return marshal(t, e)
	}
	url := func(ip string, h map[string]string) []byte {
		e := functionURLEvent()
		e.RequestContext.HTTP.SourceIP = ip
		for k, v := range h {
			e.Headers[k] = v
		}
		return marshal(t, e)
	}
	spoof := map[string]string{"X-Forwarded-For": "3.251.12.205", "x-real-ip": "3.251.12.205", "forwarded": "for=3.251.12.205"}
	tests := []struct {
		name  string
		event []byte
		want  string // "" for none
	}{
		{"a REST event's address is requestContext.identity.sourceIp", rest("198.51.100.7", nil), "198.51.100.7"},
		{"an HTTP API event's address is requestContext.http.sourceIp", v2("198.51.100.8", nil), "198.51.100.8"},
		{"a Function URL event's address is requestContext.http.sourceIp", url("198.51.100.9", nil), "198.51.100.9"},
		{"an IPv6 address is read", v2("2001:db8::42", nil), "2001:db8::42"},
		{"an IPv4-mapped address is kept as sent", url("::ffff:198.51.100.9", nil), "::ffff:198.51.100.9"},
		{"X-Forwarded-For and friends are ignored on REST", rest("203.0.113.10", spoof), "203.0.113.10"},
		{"X-Forwarded-For and friends are ignored on an HTTP API", v2("203.0.113.10", spoof), "203.0.113.10"},
		{"X-Forwarded-For does not stand in for a missing address", v2("", spoof), ""},
		{"an address that is not one is none", rest("localhost", nil), ""},
		{"an address with a port is none", v2("198.51.100.8:443", nil), ""},
		{"a REST event without an identity has none", []byte(`{"httpMethod":"POST","requestContext":{},"body":"{}"}`), ""},
		{"an HTTP API event ignores an identity it does not have", []byte(`{"version":"2.0","requestContext":{"identity":{"sourceIp":"192.0.2.1"},"http":{"method":"POST"}}}`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := event.Parse(tt.event)
			if err != nil {
				t.Fatalf("Parse(%q) = %v, want nil", tt.event, err)
			}
			if tt.want == "" && got.Source.IsValid() || tt.want != "" && got.Source.String() != tt.want {
				t.Errorf("Parse(%q).Source = %v, want %q", tt.event, got.Source, tt.want)
			}
		})
	}
	t.Run("a source address that is not a string makes the HTTP event malformed", func(t *testing.T) {
		raw := []byte(`{"httpMethod":"POST","requestContext":{"identity":{"sourceIp":5}},"body":"{}"}`)
		if _, err := event.Parse(raw); !errors.Is(err, event.ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", raw, err)
		}
	})
}

func TestRequestGet(t *testing.T) {
	raw := marshal(t, restEvent())
	req, err := event.Parse(raw)
	if err != nil {
		t.Fatalf("Parse(%q) = %v, want nil", raw, err)
	}
	tests := []struct {
		name, header, want string
	}{
		{"a lower-case name is found", "x-port-signature", "v1,abc="},
		{"the name as the client sent it is found", "X-Port-Signature", "v1,abc="},
		{"an upper-case name is found", "X-PORT-TIMESTAMP", "1700000000"},
		{"a name sent in lower case is found in mixed case", "X-Port-Timestamp", "1700000000"},
		{"a missing name is empty", "x-missing", ""},
		{"an empty name is empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := req.Get(tt.header); got != tt.want {
				t.Errorf("Get(%q) = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
	t.Run("a request without headers answers empty", func(t *testing.T) {
		if got := (event.Request{}).Get("x-port-signature"); got != "" {
			t.Errorf("Get(%q) = %q, want %q", "x-port-signature", got, "")
		}
	})
}

func TestKindIsHTTP(t *testing.T) {
	tests := []struct {
		kind event.Kind
		want bool
	}{
		{event.REST, true},
		{event.HTTPAPI, true},
		{event.FunctionURL, true},
		{event.Scheduled, false},
		{event.Direct, false},
		{"", false},
	}
	for _, tt := range tests {
		if got := tt.kind.IsHTTP(); got != tt.want {
			t.Errorf("Kind(%q).IsHTTP() = %v, want %v", tt.kind, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, e := range []any{restEvent(), httpAPIEvent(), functionURLEvent(), scheduledEvent()} {
		f.Add(marshal(f, e))
	}
	rest := restEvent()
	rest.Headers["x-port-signature"] = "v1,other="
	f.Add(marshal(f, rest))
	rest = restEvent()
	rest.Headers, rest.MultiValueHeaders = nil, map[string][]string{"A": {"1", "2"}, "a": {}}
	f.Add(marshal(f, rest))
	v2 := httpAPIEvent()
	v2.Body, v2.IsBase64Encoded = "e30=", true
	f.Add(marshal(f, v2))
	v2.Body = "%%%"
	f.Add(marshal(f, v2))
	for _, s := range []string{
		portBody, `{}`, `{"headers":5}`, `{"httpMethod":"POST","headers":["a"]}`, `{"requestContext":"x"}`,
		`{"routeKey":"$default"}`, `{"httpMethod":"ǆ"}`, `{"HTTPMETHOD":"post"}`, `{"requestContext":{"http":{"method":"get"}}}`,
		`[]`, `"x"`, `42`, `null`, `{"httpMethod":`, `{} {}`, "", " ", "\xef\xbb\xbf{}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := event.Parse(raw)
		if err != nil {
			if !errors.Is(err, event.ErrNotJSON) && !errors.Is(err, event.ErrMalformed) {
				t.Fatalf("Parse(%q) = %v, want ErrNotJSON or ErrMalformed", raw, err)
			}
			return
		}
		if req.Kind.IsHTTP() {
			if req.Method == "" || req.Method != strings.ToUpper(req.Method) {
				t.Errorf("Parse(%q).Method = %q, want non-empty upper case", raw, req.Method)
			}
			return
		}
		if req.Source.IsValid() {
			t.Errorf("Parse(%q).Source = %v, want none for an AWS event", raw, req.Source)
		}
		if req.Kind != event.Scheduled && req.Kind != event.Direct {
			t.Errorf("Parse(%q).Kind = %q, want a known kind", raw, req.Kind)
		}
		if !bytes.Equal(req.Body, raw) {
			t.Errorf("Parse(%q).Body = %q, want the whole event", raw, req.Body)
		}
	})
}

// An SQS batch, as Lambda's event source mapping sends it (lambdatest.SQSEvent writes it
// as aws-lambda-go's events.SQSEvent reads it).
func TestParseSQSBatch(t *testing.T) {
	msgs := []types.Message{
		{MessageId: aws.String("m-1"), ReceiptHandle: aws.String("h-1"), MD5OfBody: aws.String("x"), Body: aws.String(`{"v":1,"body":{"a":"<&>"}}`), Attributes: map[string]string{"ApproximateReceiveCount": "3"}},
		{MessageId: aws.String("m-2"), ReceiptHandle: aws.String("h-2"), MD5OfBody: aws.String("y"), Body: aws.String(`{"x":2}`)},
	}
	req, err := event.Parse(lambdatest.SQSEvent(msgs, "arn:aws:sqs:us-east-1:123456789012:delivery", "us-east-1"))
	if err != nil || req.Kind != event.Queue || len(req.Records) != 2 {
		t.Fatalf("Parse = %+v, %v; want a batch of 2", req, err)
	}
	r := req.Records[0]
	if r.ID != "m-1" || r.Receipt != "h-1" || string(r.Body) != `{"v":1,"body":{"a":"<&>"}}` || r.Receives != 3 || req.Records[1].Receives != 0 {
		t.Errorf("records = %+v", req.Records)
	}
	// Records of another source are a direct invoke's payload, not a batch.
	if req, err := event.Parse([]byte(`{"Records":[{"eventSource":"aws:s3","messageId":"x"}]}`)); err != nil || req.Kind != event.Direct {
		t.Errorf("S3-like records: %+v %v, want a direct invoke", req.Kind, err)
	}
}
