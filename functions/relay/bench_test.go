package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/relay"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
	"github.com/port-azure-relay/relay/shared/signature"
)

// timedTransport measures the upstream round trips: from handing a request to the
// transport to its answer's headers, the part of an invocation spent waiting on Azure.
type timedTransport struct {
	next  http.RoundTripper
	spent atomic.Int64 // nanoseconds
}

func (t *timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.spent.Add(int64(time.Since(start)))
	return resp, err
}

// BenchmarkHandler runs the relay's whole handler as aws-lambda-go calls it, wired
// as main wires it, on an HTTP API event signed by Port, against the local Secrets
// Manager and an Azure endpoint that answers 200 at once. own-ns/op is the time
// less the Azure round trip: what the relay itself spends. The "-ledger" rows add the
// delivery ledger on the local DynamoDB (a claim and an outcome per invocation):
// ledger-ns/op is its round trips, subtracted from own-ns/op as Azure's are.
func BenchmarkHandler(b *testing.B) {
	const secret = "demo-port-client-secret"
	azure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer azure.Close()
	sm := smtest.New()
	defer sm.Close()
	arn := sm.Put("port/relay", secret) // no clientId: nothing is reported to Port
	vars := map[string]string{
		"PORT_SECRET_ID":       arn,
		"AZURE_DEVOPS_ORG":     "demo-org",
		"AZURE_DEVOPS_WEBHOOK": "port_trigger",
		"AZURE_DEVOPS_URL":     azure.URL,
	}
	cfg, err := relay.LoadConfig(func(k string) string { return vars[k] })
	if err != nil {
		b.Fatal(err)
	}
	client := newAzure(cfg)
	timed := &timedTransport{next: client.HTTP.Transport}
	client.HTTP.Transport = timed
	core := newRelay(cfg, client, sm.Client(), nil, nil, handler.Logger(io.Discard))
	db := dynamotest.New()
	defer db.Close()
	db.CreateTable("relay-ledger", "id")
	db.EnableTTL("relay-ledger", "expiresAt")
	ledgerTimed := &timedTransport{next: http.DefaultTransport}
	withLedger := &ledger.Ledger{Table: "relay-ledger", DB: db.Client(func(o *dynamodb.Options) {
		o.HTTPClient = &http.Client{Transport: ledgerTimed}
	})}
	const ts = 1764201600
	core.Port.Now = func() time.Time { return time.Unix(ts, 0) }
	invoke := handler.Invoke(core)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()

	for _, bs := range []struct {
		name   string
		size   int
		ledger bool
	}{{"1KiB", 1 << 10, false}, {"16KiB", 16 << 10, false}, {"1MiB", 1 << 20, false}, {"16KiB-ledger", 16 << 10, true}} {
		core.Ledger = nil
		if bs.ledger {
			core.Ledger = withLedger
		}
		core.Port.Replays = &signature.Replays{} // each row signs its own events: a fresh container's memory
		// Port signs each invocation once and the relay refuses a repeat, so the
		// benchmark cycles through distinct signed events (distinct run ids), and
		// starts the relay's replay memory afresh when it comes round again.
		signed := make([][]byte, max(8, (4<<20)/bs.size))
		for i := range signed {
			body := bytes.Replace(porttest.Payload(bs.size), []byte(porttest.RunID), fmt.Appendf(nil, "r_%016x", i), 1)
			h := http.Header{}
			h.Set("Content-Type", "application/json")
			h.Set(signature.PortTimestampHeader, strconv.Itoa(ts))
			h.Set(signature.PortSignatureHeader, signature.SignPort([]byte(secret), ts, body))
			raw := lambdatest.HTTPAPIEvent(http.MethodPost, "/", h, body)
			signed[i] = raw
		}
		next := 0
		nextEvent := func() []byte {
			if next == len(signed) {
				next = 0
				core.Port.Replays = &signature.Replays{}
				if bs.ledger { // the ledger would answer a repeat as a duplicate: start it afresh too
					db.Sweep(time.Now().Add(30 * 24 * time.Hour))
				}
			}
			next++
			return signed[next-1]
		}
		check := func(b *testing.B) {
			out, err := invoke(ctx, nextEvent())
			if resp, ok := out.(events.APIGatewayV2HTTPResponse); err != nil || !ok || resp.StatusCode != http.StatusOK {
				b.Fatalf("invoke(%s event) = %+v, %v; want a 200", bs.name, out, err)
			}
		}
		check(b) // the secret is read once, here, as on a container's first invocation
		b.Run(bs.name, func(b *testing.B) {
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			own := make([]time.Duration, 0, 1<<16)
			timed.spent.Store(0)
			ledgerTimed.spent.Store(0)
			waited := func() int64 { return timed.spent.Load() + ledgerTimed.spent.Load() }
			var total time.Duration
			for b.Loop() {
				ev := nextEvent()
				before := waited()
				start := time.Now()
				out, err := invoke(ctx, ev)
				took := time.Since(start)
				if err != nil || out.(events.APIGatewayV2HTTPResponse).StatusCode != http.StatusOK {
					b.Fatalf("invoke = %+v, %v", out, err)
				}
				total += took
				if len(own) < cap(own) {
					own = append(own, took-time.Duration(waited()-before))
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(timed.spent.Load())/n, "azure-ns/op")
			if bs.ledger {
				b.ReportMetric(float64(ledgerTimed.spent.Load())/n, "ledger-ns/op")
			}
			b.ReportMetric((float64(total)-float64(waited()))/n, "own-ns/op")
			slices.Sort(own)
			b.ReportMetric(float64(own[len(own)/2]), "own-p50-ns")
		})
	}
	if calls := sm.Calls(); calls != 1 {
		b.Errorf("Secrets Manager calls = %d, want 1 (the cache period outlasts the benchmark)", calls)
	}
}
