package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/port-azure-relay/relay/shared/allowlist"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

// countingSecrets counts every read of the secret.
type countingSecrets struct {
	Secrets
	reads int
}

func (c *countingSecrets) Get(ctx context.Context) (secret.Credentials, error) {
	c.reads++
	return c.Secrets.Get(ctx)
}

func (c *countingSecrets) Renew(ctx context.Context) (secret.Credentials, bool, error) {
	c.reads++
	return c.Secrets.Renew(ctx)
}

// sourceEvent is a signed Port invocation in the given shape, from ip ("" for none),
// with headers that claim to come from elsewhere.
func sourceEvent(shape func(string, string, http.Header, []byte) []byte, ip string) []byte {
	h := http.Header{}
	h.Set(signature.PortTimestampHeader, strconv.Itoa(now))
	h.Set(signature.PortSignatureHeader, signature.SignPort([]byte(key), now, []byte(goodBody)))
	h.Set("X-Forwarded-For", "192.0.2.1")
	h.Set("X-Real-Ip", "192.0.2.1")
	return lambdatest.WithSourceIP(shape("POST", "/", h, []byte(goodBody)), ip)
}

func TestSourceAllowList(t *testing.T) {
	shapes := map[string]func(string, string, http.Header, []byte) []byte{
		"REST": lambdatest.RESTEvent, "HTTP API": lambdatest.HTTPAPIEvent, "Function URL": lambdatest.FunctionURLEvent,
	}
	cases := []struct {
		name   string
		list   string
		ip     string
		status int
	}{
		{"no list lets any address through", "", "203.0.113.10", 200},
		{"no list lets an event without an address through", "", "", 200},
		{"a listed address is served", "192.0.2.1,198.51.100.7", "198.51.100.7", 200},
		{"an address off the list is refused, whatever X-Forwarded-For says", "192.0.2.1", "203.0.113.10", 403},
		{"an event without an address is refused when a list is set", "192.0.2.1", "", 403},
		{"an address that is not one is refused when a list is set", "192.0.2.1", "192.0.2.1:443", 403},
		{"a Port EU address is served under port-eu", "port-eu", "54.75.236.107", 200},
		{"a Port US address is refused under port-eu", "port-eu", "44.221.30.248", 403},
		{"an IPv6 address in a block is served", "2001:db8::/32", "2001:db8:ffff::1", 200},
		{"an IPv4-mapped address is matched as its IPv4", "192.0.2.0/24", "::ffff:192.0.2.200", 200},
	}
	for shapeName, shape := range shapes {
		for _, c := range cases {
			t.Run(shapeName+"/"+c.name, func(t *testing.T) {
				f := newFixture(nil)
				counting := &countingSecrets{Secrets: f.secrets}
				f.relay.Secrets = counting
				var err error
				if f.relay.Sources, err = allowlist.Parse(c.list); err != nil {
					t.Fatal(err)
				}
				resp := f.relay.Handle(context.Background(), "req-src", sourceEvent(shape, c.ip))
				if resp.Status != c.status || !resp.HTTP {
					t.Fatalf("Handle from %q under %q = %d %s, want %d", c.ip, c.list, resp.Status, resp.Body, c.status)
				}
				if c.status == 200 {
					return
				}
				if counting.reads != 0 || len(f.delivered) != 0 || len(f.reports.calls) != 0 {
					t.Errorf("a refused source cost %d secret reads, %d deliveries and %d reports, want none", counting.reads, len(f.delivered), len(f.reports.calls))
				}
				var body struct{ Error string }
				if json.Unmarshal(resp.Body, &body) != nil || !strings.Contains(body.Error, "ALLOWED_SOURCE_IPS") {
					t.Errorf("body %s, want {\"error\": …} naming the allow list", resp.Body)
				}
				var line map[string]any
				if err := json.Unmarshal(f.logs.Bytes(), &line); err != nil {
					t.Fatalf("log %s: %v", f.logs, err)
				}
				wantIP := c.ip
				if c.ip == "192.0.2.1:443" {
					wantIP = ""
				}
				if got, _ := line["sourceIp"].(string); line["level"] != "WARN" || got != wantIP || !strings.HasPrefix(line["error"].(string), ErrSourceNotAllowed.Error()) {
					t.Errorf("log line %v, want WARN with sourceIp %q and the refusal", line, wantIP)
				}
			})
		}
	}
}

func TestSourceAllowListLeavesAWSEventsAlone(t *testing.T) {
	f := newFixture(nil)
	f.relay.Sources, _ = allowlist.Parse("192.0.2.1")
	for _, ev := range []string{string(lambdatest.ScheduledEvent("nightly")), `{"service":"payments"}`} {
		if resp := f.relay.Handle(context.Background(), "req-aws", []byte(ev)); resp.Status != 200 {
			t.Errorf("Handle(%s) = %d %s, want 200: IAM authorises AWS events", ev, resp.Status, resp.Body)
		}
	}
}
