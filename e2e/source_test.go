package e2e

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

var sourceCases atomic.Int64

// Port's published egress addresses (protocols.md, "Port → relay"; docs.port.io,
// "Security"): what port-eu and port-us must expand to, and nothing more.
var (
	portEU = []string{"3.251.12.205", "34.252.219.131", "54.75.236.107"}
	portUS = []string{"44.221.30.248", "44.193.148.179", "34.197.132.205"}
)

// fromSource is a signed Port invocation in the given shape from ip ("" for none),
// with extra headers the caller chose.
func fromSource(shape int, ip string, extra http.Header) []byte {
	return fromSourceRun(shape, ip, "r_src_"+rand.Text()[:10], extra)
}

// fromSourceRun is fromSource for the Port run runID.
func fromSourceRun(shape int, ip, runID string, extra http.Header) []byte {
	body := portBody(runID)
	h := portHeaders(portSecret, time.Now().Unix(), body)
	for name, values := range extra {
		h[name] = values
	}
	return lambdatest.WithSourceIP(shapes[shape%len(shapes)].make("POST", "/", h, body), ip)
}

// spoofed are the headers a caller sets to pass for an allowed address.
var spoofed = http.Header{
	"X-Forwarded-For": {"198.51.100.7"},
	"X-Real-Ip":       {"198.51.100.7"},
	"Forwarded":       {"for=198.51.100.7"},
}

// TestSourceAllowList: with ALLOWED_SOURCE_IPS set, an HTTP caller from elsewhere
// gets 403 before the relay reads its secret, checks the signature, forwards or
// reports anything, in every event shape; listed addresses, block edges and IPv6
// are served; headers cannot stand in for the address; AWS events are untouched.
func TestSourceAllowList(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	sm := smtest.New()
	t.Cleanup(sm.Close)
	sm.Put(secretName, `{"clientId":"`+portClientID+`","clientSecret":"`+portSecret+`"}`)
	port := porttest.New(portClientID, portSecret)
	t.Cleanup(port.Close)
	az := newAzure(t, false)
	relay := start(t, relayBin, faultTimeout, relayEnv(sm, az.URL, "PORT_API_URL="+port.URL,
		"ALLOWED_SOURCE_IPS=198.51.100.7, 192.0.2.16/28, 2001:db8:0:1::/64"))

	refused := []struct {
		name string
		ip   string
		h    http.Header
	}{
		{"an address off the list", "203.0.113.10", nil},
		{"an address off the list with X-Forwarded-For, X-Real-IP and Forwarded naming a listed one", "203.0.113.10", spoofed},
		{"no source address, with X-Forwarded-For naming a listed one", "", spoofed},
		{"the address below a block", "192.0.2.15", nil},
		{"the address above a block", "192.0.2.32", nil},
		{"an IPv6 address outside the block", "2001:db8:0:2::1", nil},
	}
	// First, while the container has read nothing: a refusal must not cost a read.
	for i, shape := range shapes {
		for _, c := range refused {
			t.Run(shape.name+"/refused: "+c.name, func(t *testing.T) {
				r := invoke(t, relay, fromSource(i, c.ip, c.h))
				if r.status != 403 {
					t.Fatalf("status %d %v, want 403", r.status, r.body)
				}
				hasWords(t, "error", r.errMsg, "ALLOWED_SOURCE_IPS")
				if sm.Calls() != 0 || az.Count() != 0 || port.Requests() != 0 {
					t.Errorf("after a refused source: %d Secrets Manager calls, %d deliveries, %d requests to Port; want none",
						sm.Calls(), az.Count(), port.Requests())
				}
				line := oneLogLine(t, r)
				if ip, _ := line["sourceIp"].(string); line["level"] != "WARN" || ip != c.ip {
					t.Errorf("log line %v: want WARN with sourceIp %q", line, c.ip)
				}
				sourceCases.Add(1)
			})
		}
	}

	allowed := []struct{ name, ip string }{
		{"a listed address", "198.51.100.7"},
		{"a listed address in its IPv4-mapped IPv6 form", "::ffff:198.51.100.7"},
		{"the first address of a block", "192.0.2.16"},
		{"the last address of a block", "192.0.2.31"},
		{"the first address of an IPv6 block", "2001:db8:0:1::"},
		{"the last address of an IPv6 block", "2001:db8:0:1:ffff:ffff:ffff:ffff"},
	}
	for i, shape := range shapes {
		for _, c := range allowed {
			t.Run(shape.name+"/served: "+c.name, func(t *testing.T) {
				before := az.Count()
				runID := "r_src_" + rand.Text()[:10]
				port.CreateRuns(runID) // the relay reports the delivery to it
				r := invoke(t, relay, fromSourceRun(i, c.ip, runID, nil))
				if r.status != 200 || r.body["forwarded"] != true || az.Count() != before+1 {
					t.Fatalf("status %d %v with %d deliveries, want 200 forwarded once", r.status, r.body, az.Count()-before)
				}
				if line := oneLogLine(t, r); line["level"] != "INFO" || line["sourceIp"] != c.ip {
					t.Errorf("log line %v: want INFO with sourceIp %q", line, c.ip)
				}
				sourceCases.Add(1)
			})
		}
	}

	t.Run("a scheduled event is not an HTTP caller and is forwarded", func(t *testing.T) {
		before := az.Count()
		r := invoke(t, relay, lambdatest.ScheduledEvent("nightly"))
		if r.fnErr != nil || r.body["forwarded"] != true || az.Count() != before+1 {
			t.Fatalf("result %v %v, want forwarded", r.body, r.fnErr)
		}
		sourceCases.Add(1)
	})
}

// TestSourceAllowListShorthands: port-eu and port-us let in exactly the addresses
// Port publishes for the region, in every event shape.
func TestSourceAllowListShorthands(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	for _, region := range []struct {
		list       string
		in, others []string
	}{
		{"port-eu", portEU, append([]string{"3.251.12.204", "54.75.236.108"}, portUS...)},
		{"port-us", portUS, append([]string{"44.221.30.247", "34.197.132.206"}, portEU...)},
	} {
		t.Run(region.list, func(t *testing.T) {
			w := newWorld(t, faultTimeout, "ALLOWED_SOURCE_IPS="+region.list)
			for i, shape := range shapes {
				for _, ip := range region.in {
					if r := invoke(t, w.relay, fromSource(i, ip, nil)); r.status != 200 || r.body["forwarded"] != true {
						t.Errorf("%s from %s: %d %v, want 200 forwarded", shape.name, ip, r.status, r.body)
					}
					sourceCases.Add(1)
				}
				for _, ip := range region.others {
					if r := invoke(t, w.relay, fromSource(i, ip, nil)); r.status != 403 {
						t.Errorf("%s from %s: %d %v, want 403", shape.name, ip, r.status, r.body)
					}
					sourceCases.Add(1)
				}
			}
			if got, want := w.az.Count(), len(shapes)*len(region.in); got != want {
				t.Errorf("%d deliveries, want %d: one per published address and shape", got, want)
			}
		})
	}
}

// TestSourceAllowListBehindTheGateway: through the API Gateway stand-in the address
// is the connection's peer, as on AWS; X-Forwarded-For sent over the wire does not
// replace it.
func TestSourceAllowListBehindTheGateway(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	for _, tc := range []struct {
		list   string
		status int
	}{{"127.0.0.1", 200}, {"198.51.100.7", 403}} {
		t.Run("ALLOWED_SOURCE_IPS="+tc.list, func(t *testing.T) {
			w := newWorld(t, faultTimeout, "ALLOWED_SOURCE_IPS="+tc.list)
			gw := lambdatest.Gateway(w.relay)
			t.Cleanup(func() { gw.Close() })
			body := portBody("r_gateway_" + rand.Text()[:8])
			req, _ := http.NewRequest("POST", gw.URL+"/", bytes.NewReader(body))
			req.Header = portHeaders(portSecret, time.Now().Unix(), body)
			req.Header.Set("X-Forwarded-For", "198.51.100.7")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, tc.status)
			}
			if tc.status == 403 && (w.sm.Calls() != 0 || w.az.Count() != 0) {
				t.Errorf("%d Secrets Manager calls and %d deliveries for a refused caller, want none", w.sm.Calls(), w.az.Count())
			}
			sourceCases.Add(1)
		})
	}
}
