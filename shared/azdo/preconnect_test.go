package azdo_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
)

// tlsAzure is the Azure double behind TLS, counting what reaches it: connections
// accepted, TLS handshakes completed, connections that carried a request.
type tlsAzure struct {
	az                          *azdotest.Server
	srv                         *httptest.Server
	accepted, handshakes, calls atomic.Int32
	dropFirst                   atomic.Bool // close the first connection before its handshake
}

func newTLSAzure(t *testing.T) *tlsAzure {
	t.Helper()
	a := &tlsAzure{az: azdotest.New(org, azdotest.Webhook{Name: hook, Secret: key, Header: header})}
	t.Cleanup(a.az.Close)
	a.srv = httptest.NewUnstartedServer(a.az.Handler())
	a.srv.TLS = &tls.Config{VerifyConnection: func(tls.ConnectionState) error { a.handshakes.Add(1); return nil }}
	a.srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			if a.accepted.Add(1) == 1 && a.dropFirst.Load() {
				c.Close()
			}
		case http.StateActive:
			a.calls.Add(1)
		}
	}
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

// client is the relay's client for the double, trusting its certificate.
func (a *tlsAzure) client() *azdo.Client {
	c := newClient(a.srv.URL)
	c.HTTP = azdo.NewHTTPClient(a.srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone())
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	time.Sleep(20 * time.Millisecond) // for the client's side of it to end too
}

func TestPreconnect(t *testing.T) {
	tests := []struct {
		name      string
		dropFirst bool          // the server is unreachable at init: the pre-dial fails
		idleReset time.Duration // the client's IdleReset
		before    func(a *tlsAzure)
		accepted  int32 // connections the server accepted after the delivery
	}{
		{name: "the first delivery uses the pre-dialled connection", accepted: 1},
		{name: "a pre-dial that failed leaves the first delivery to dial", dropFirst: true, accepted: 2},
		{name: "a pre-dialled connection the server closed is not used",
			before: func(a *tlsAzure) { a.srv.CloseClientConnections() }, accepted: 2},
		// IdleReset also bounds the gap between the two deliveries below: wide enough for a loaded machine.
		{name: "a pre-dialled connection older than IdleReset is not used", idleReset: 500 * time.Millisecond,
			before: func(*tlsAzure) { time.Sleep(700 * time.Millisecond) }, accepted: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTLSAzure(t)
			a.dropFirst.Store(tt.dropFirst)
			c := a.client()
			c.IdleReset = tt.idleReset

			start := time.Now()
			c.Preconnect(context.Background())
			if d := time.Since(start); d > 20*time.Millisecond {
				t.Errorf("Preconnect took %v, want it to return at once", d)
			}
			if tt.dropFirst {
				waitFor(t, "the pre-dial to be refused", func() bool { return a.accepted.Load() == 1 })
			} else {
				waitFor(t, "the pre-dial's handshake", func() bool { return a.handshakes.Load() == 1 })
			}
			if n, d := a.calls.Load(), a.az.Count(); n != 0 || d != 0 {
				t.Fatalf("after Preconnect the server saw %d requests, %d deliveries; want nothing sent", n, d)
			}
			if tt.before != nil {
				tt.before(a)
			}

			res, err := c.Deliver(ctxTimeout(t, 5*time.Second), hook, payload, []byte(key))
			if err != nil || res.Status != 200 || res.Attempts != 1 {
				t.Fatalf("Deliver = %+v, %v, want 200 at the first attempt", res, err)
			}
			if d := a.az.Deliveries(); len(d) != 1 || !d[0].Verified {
				t.Errorf("deliveries = %d, want 1 verified", len(d))
			}
			if n := a.accepted.Load(); n != tt.accepted {
				t.Errorf("connections accepted = %d, want %d", n, tt.accepted)
			}
			// The second delivery reuses the pooled connection.
			if _, err := c.Deliver(ctxTimeout(t, 5*time.Second), hook, payload, []byte(key)); err != nil {
				t.Fatalf("second Deliver = %v", err)
			}
			if n := a.accepted.Load(); n != tt.accepted {
				t.Errorf("connections accepted after a second delivery = %d, want %d", n, tt.accepted)
			}
		})
	}
}

func TestPreconnectJoinedByTheFirstDelivery(t *testing.T) {
	a := newTLSAzure(t)
	c := a.client()
	c.Preconnect(context.Background())
	// At once: the delivery's dial waits for the one in flight rather than making its own.
	if _, err := c.Deliver(ctxTimeout(t, 5*time.Second), hook, payload, []byte(key)); err != nil {
		t.Fatalf("Deliver = %v", err)
	}
	if n := a.accepted.Load(); n != 1 {
		t.Errorf("connections accepted = %d, want 1", n)
	}
}

func TestPreconnectDoesNothingForPlainHTTP(t *testing.T) {
	srv := newServer(t)
	c := newClient(srv.URL)
	c.Preconnect(context.Background())
	if _, err := c.Deliver(ctxTimeout(t, 5*time.Second), hook, payload, []byte(key)); err != nil {
		t.Fatalf("Deliver = %v", err)
	}
	if d := srv.Deliveries(); len(d) != 1 || !d[0].Verified {
		t.Errorf("deliveries = %d, want 1 verified", len(d))
	}
}
