package signature_test

import (
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/signature"
)

var benchSizes = []struct {
	name string
	size int
}{{"1KiB", 1 << 10}, {"16KiB", 16 << 10}, {"1MiB", 1 << 20}}

// BenchmarkPortVerify checks a body as Port signs it: compact, so the first MAC matches.
func BenchmarkPortVerify(b *testing.B) {
	const ts = 1700000000
	secret := []byte("demo-port-client-secret")
	p := signature.Port{Now: func() time.Time { return time.Unix(ts, 0) }}
	for _, bs := range benchSizes {
		body := porttest.Payload(bs.size)
		header := signature.SignPort(secret, ts, body)
		if err := p.Verify(secret, header, "1700000000", body); err != nil {
			b.Fatalf("Verify(%s body) = %v, want nil", bs.name, err)
		}
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Verify(secret, header, "1700000000", body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSignAzure(b *testing.B) {
	secret := []byte("demo-port-client-secret")
	for _, bs := range benchSizes {
		body := porttest.Payload(bs.size)
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for b.Loop() {
				_ = signature.SignAzure(secret, body)
			}
		})
	}
}
