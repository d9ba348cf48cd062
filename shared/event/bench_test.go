package event_test

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/porttest"
	"github.com/port-azure-relay/relay/shared/signature"
)

// benchSizes are the body sizes of every hot-path benchmark: a typical action, a
// large one, and the relay's limit.
var benchSizes = []struct {
	name string
	size int
}{{"1KiB", 1 << 10}, {"16KiB", 16 << 10}, {"1MiB", 1 << 20}}

// signedHTTPAPIEvent is an HTTP API (2.0) event as API Gateway hands Port's request
// to the function, headers included.
func signedHTTPAPIEvent(b *testing.B, body []byte) []byte {
	const ts = 1700000000
	raw, err := json.Marshal(events.APIGatewayV2HTTPRequest{
		Version:  "2.0",
		RouteKey: "POST /webhooks/{name}",
		RawPath:  "/webhooks/deploy",
		Headers: map[string]string{
			"content-type":     "application/json",
			"content-length":   strconv.Itoa(len(body)),
			"host":             "abc123.execute-api.eu-west-1.amazonaws.com",
			"user-agent":       "axios/1.7.4",
			"x-forwarded-for":  "3.251.12.205",
			"x-forwarded-port": "443",
			"x-port-signature": signature.SignPort([]byte("secret"), ts, body),
			"x-port-timestamp": strconv.Itoa(ts),
		},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			DomainName: "abc123.execute-api.eu-west-1.amazonaws.com",
			HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/webhooks/deploy", SourceIP: "3.251.12.205"},
			RequestID:  "req-bench",
		},
		Body: string(body),
	})
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func BenchmarkParse(b *testing.B) {
	for _, bs := range benchSizes {
		raw := signedHTTPAPIEvent(b, porttest.Payload(bs.size))
		if req, err := event.Parse(raw); err != nil || req.Kind != event.HTTPAPI || len(req.Body) != bs.size {
			b.Fatalf("Parse(%s event) = %v with a %d-byte body, %v; want httpapi, %d bytes, nil", bs.name, req.Kind, len(req.Body), err, bs.size)
		}
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := event.Parse(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
