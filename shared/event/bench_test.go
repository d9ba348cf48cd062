package event_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
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
func signedHTTPAPIEvent(body []byte) []byte {
	const ts = 1700000000
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(signature.PortTimestampHeader, strconv.Itoa(ts))
	h.Set(signature.PortSignatureHeader, signature.SignPort([]byte("secret"), ts, body))
	return lambdatest.HTTPAPIEvent(http.MethodPost, "/webhooks/deploy", h, body)
}

func BenchmarkParse(b *testing.B) {
	for _, bs := range benchSizes {
		raw := signedHTTPAPIEvent(porttest.Payload(bs.size))
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
