package handler

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/port-azure-relay/relay/shared/event"
)

// coreFunc is a Core from a function.
type coreFunc func(ctx context.Context, requestID string, raw []byte) event.Response

func (f coreFunc) Handle(ctx context.Context, requestID string, raw []byte) event.Response {
	return f(ctx, requestID, raw)
}

func TestInvoke(t *testing.T) {
	cases := []struct {
		name string
		resp event.Response
		want func(t *testing.T, out any, err error)
	}{
		{"an HTTP answer becomes an API Gateway response", event.Response{HTTP: true, Status: 401, Body: []byte(`{"error":"x"}`), Error: "x"},
			func(t *testing.T, out any, err error) {
				r, ok := out.(events.APIGatewayV2HTTPResponse)
				if err != nil || !ok || r.StatusCode != 401 || r.Body != `{"error":"x"}` || r.Headers["Content-Type"] != "application/json" {
					t.Errorf("Invoke = %#v, %v", out, err)
				}
			}},
		{"an AWS-event failure after which Azure may have queued the run is a result, not a function error",
			event.Response{Status: 504, Error: "x", Body: []byte(`{"forwarded":false,"mayHaveQueued":true}`), MayHaveQueued: true},
			func(t *testing.T, out any, err error) {
				if r, ok := out.(json.RawMessage); err != nil || !ok || string(r) != `{"forwarded":false,"mayHaveQueued":true}` {
					t.Errorf("Invoke = %#v, %v; want the result, which Lambda does not retry", out, err)
				}
			}},
		{"an AWS-event success becomes its JSON result", event.Response{Status: 200, Body: []byte(`{"forwarded":true}`)},
			func(t *testing.T, out any, err error) {
				if r, ok := out.(json.RawMessage); err != nil || !ok || string(r) != `{"forwarded":true}` {
					t.Errorf("Invoke = %#v, %v", out, err)
				}
			}},
		{"an AWS-event failure becomes a function error", event.Response{Status: 503, Error: "The relay could not read its secret."},
			func(t *testing.T, out any, err error) {
				var f *Failure
				if out != nil || !errors.As(err, &f) || f.Status != 503 || f.Error() != "The relay could not read its secret." {
					t.Errorf("Invoke = %#v, %v", out, err)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var gotID string
			invoke := Invoke(coreFunc(func(_ context.Context, id string, _ []byte) event.Response {
				gotID = id
				return c.resp
			}))
			ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "abc-123"})
			out, err := invoke(ctx, json.RawMessage(`{}`))
			c.want(t, out, err)
			if gotID != "abc-123" {
				t.Errorf("request id = %q, want abc-123", gotID)
			}
		})
	}
}

// TestInvokeRawPayload: through aws-lambda-go, an event that is not JSON reaches the
// core as it came, so that it answers with its own function error and log line,
// rather than aws-lambda-go answering a SyntaxError without either.
func TestInvokeRawPayload(t *testing.T) {
	var got []byte
	h := lambda.NewHandler(Invoke(coreFunc(func(_ context.Context, _ string, raw []byte) event.Response {
		got = raw
		return event.Response{Status: 400, Error: "The event is not a JSON object."}
	})))
	_, err := h.Invoke(context.Background(), []byte("not json {"))
	var f *Failure
	if !errors.As(err, &f) || f.Status != 400 || string(got) != "not json {" {
		t.Errorf("Invoke(not JSON) = %v with %q at the core, want the core's Failure with the bytes as sent", err, got)
	}
	h = lambda.NewHandler(Invoke(coreFunc(func(context.Context, string, []byte) event.Response {
		return event.Response{Status: 200, Body: []byte(`{"forwarded":true,"webhook":"a<b>&"}`)}
	})))
	out, err := h.Invoke(context.Background(), []byte(`{}`))
	if err != nil || string(out) != `{"forwarded":true,"webhook":"a<b>&"}` {
		t.Errorf("Invoke = %s, %v; want the result as it was, HTML unescaped", out, err)
	}
}

// TestInvokeResponseShapes: each API gets the response shape it accepts. A REST API
// refuses unknown keys ("Malformed Lambda proxy response"), so a 1.0 event must not
// get the 2.0 shape's "cookies".
func TestInvokeResponseShapes(t *testing.T) {
	cases := []struct {
		kind event.Kind
		keys []string
	}{
		{event.REST, []string{"statusCode", "headers", "multiValueHeaders", "body"}},
		{event.HTTPAPI, []string{"statusCode", "headers", "multiValueHeaders", "body", "cookies"}},
		{event.FunctionURL, []string{"statusCode", "headers", "multiValueHeaders", "body", "cookies"}},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			h := lambda.NewHandler(Invoke(coreFunc(func(context.Context, string, []byte) event.Response {
				return event.Response{HTTP: true, Kind: c.kind, Status: 404, Body: []byte(`{"error":"x"}`), Error: "x"}
			})))
			out, err := h.Invoke(context.Background(), []byte(`{}`))
			var got map[string]json.RawMessage
			if err != nil || json.Unmarshal(out, &got) != nil {
				t.Fatalf("Invoke = %s, %v", out, err)
			}
			if len(got) != len(c.keys) {
				t.Errorf("response %s has %d keys, want exactly %v", out, len(got), c.keys)
			}
			for _, k := range c.keys {
				if _, ok := got[k]; !ok {
					t.Errorf("response %s lacks %q", out, k)
				}
			}
		})
	}
}
