package relay

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

// reformatted is ev with its body replaced by body, its signature headers unchanged:
// what a stranger holding one captured request can send.
func reformatted(t *testing.T, ev []byte, body string) []byte {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(ev, &e); err != nil {
		t.Fatal(err)
	}
	e["body"] = body
	out, _ := json.Marshal(e)
	return out
}

// rerouted is ev sent to another path, its signature unchanged: the path is not signed.
func rerouted(t *testing.T, ev []byte, path string) []byte {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(ev, &e); err != nil {
		t.Fatal(err)
	}
	e["rawPath"] = path
	e["requestContext"].(map[string]any)["http"].(map[string]any)["path"] = path
	out, _ := json.Marshal(e)
	return out
}

// Port signs compact JSON; the signature check accepts a body that compacts to it, so
// the same signed invocation can arrive with other whitespace: it is the same
// invocation, and is delivered once.
func TestAReformattedReplayIsTheSameInvocation(t *testing.T) {
	const body = `{"env":"prod","services":["a","b"]}` // no run id: keyed by what the signature covers
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, []byte(body), "", "  ")
	ev := httpEvent("POST", "/", body, key, now)
	variants := map[string]string{
		"a trailing space":   body + " ",
		"a leading newline":  "\n" + body,
		"pretty-printed":     pretty.String(),
		"pretty, then space": pretty.String() + "\t",
	}
	for name, variant := range variants {
		t.Run(name+", same container", func(t *testing.T) {
			c := newContainers(t)
			f := c.container(nil)
			if status, _ := handle(f, ev); status != 200 {
				t.Fatalf("first: %d, want 200", status)
			}
			if status, got := handle(f, reformatted(t, ev, variant)); status == 200 && got["duplicate"] != true {
				t.Errorf("the reformatted replay: %d %v, want it refused or answered as a duplicate", status, got)
			}
			if n := c.deliveries(); n != 1 {
				t.Errorf("one signed invocation delivered %d times", n)
			}
		})
		t.Run(name+", another container", func(t *testing.T) {
			c := newContainers(t)
			handle(c.container(nil), ev)
			if status, got := handle(c.container(nil), reformatted(t, ev, variant)); status != 200 || got["duplicate"] != true {
				t.Errorf("the reformatted replay: %d %v, want 200 duplicate", status, got)
			}
			if n := c.deliveries(); n != 1 {
				t.Errorf("one signed invocation delivered %d times", n)
			}
		})
	}
	t.Run("the same container without a ledger", func(t *testing.T) {
		f := newFixture(nil)
		f.relay.Port.Replays = &signature.Replays{}
		handle(f, ev)
		if status, _ := handle(f, reformatted(t, ev, body+" ")); status != 401 {
			t.Errorf("the reformatted replay: %d, want 401 replay", status)
		}
		if len(f.delivered) != 1 {
			t.Errorf("delivered %d times", len(f.delivered))
		}
	})
}

// A container refuses a signature it has already accepted, with or without a ledger:
// the ledger is not asked, and nothing is sent.
func TestAContainerRefusesASignatureItAccepted(t *testing.T) {
	c := newContainers(t)
	f := c.container(nil)
	ev := httpEvent("POST", "/", `{"env":"prod"}`, key, now)
	handle(f, ev)
	before := c.db.Calls("")
	if status, _ := handle(f, ev); status != 401 {
		t.Errorf("replay at the same container: %d, want 401", status)
	}
	if n := c.db.Calls("") - before; n != 0 {
		t.Errorf("the replay cost %d DynamoDB calls, want none", n)
	}
	if n := c.deliveries(); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

// Port never retries an HTTP invocation: after a refusal in which nothing was
// queued, the only second arrival is a replay. It gets the first answer, marked
// duplicate; nothing is sent, and the Port run, ended FAILURE, is left alone.
func TestARefusalIsTheFinalAnswerForAPortInvocation(t *testing.T) {
	for _, refusal := range []error{azdo.ErrWebhookNotFound, azdo.ErrThrottled, azdo.ErrSignatureRefused} {
		t.Run(refusal.Error(), func(t *testing.T) {
			c := newContainers(t)
			first := c.container(refusal)
			ev := httpEvent("POST", "/", goodBody, key, now)
			status, body := handle(first, ev)
			if status != 502 || !strings.Contains(strings.Join(first.reports.calls, "\n"), "fail r_unit1") {
				t.Fatalf("first: %d %v, reported %q: want 502 and the run ended FAILURE", status, body, first.reports.calls)
			}
			again := c.container(nil) // Azure now takes it
			status, got := handle(again, ev)
			if status != 502 || got["duplicate"] != true || got["error"] != body["error"] {
				t.Errorf("replay: %d %v, want the first answer (502 %q) marked duplicate", status, got, body["error"])
			}
			if len(again.delivered) != 0 {
				t.Errorf("the replay reached Azure: a pipeline would run for a Port run marked FAILURE")
			}
			if len(again.reports.calls) != 0 {
				t.Errorf("the replay reported %q, want nothing", again.reports.calls)
			}
		})
	}
	t.Run("an AWS event is released: Lambda retries it after the fix", func(t *testing.T) {
		c := newContainers(t)
		ev := []byte(`{"id":"ev-refused","trigger":"nightly"}`)
		if status, _ := handle(c.container(azdo.ErrWebhookNotFound), ev); status != 502 {
			t.Fatalf("first: %d, want a function error", status)
		}
		if status, got := handle(c.container(nil), ev); status != 200 || got["forwarded"] != true || got["duplicate"] != nil {
			t.Errorf("Lambda's retry: %d %v, want it delivered", status, got)
		}
	})
}

// The URL path is not signed: a replay of a delivered invocation to a path the relay
// refuses must not touch the Port run that Azure is running.
func TestAReplayToAWrongPathLeavesADeliveredRunAlone(t *testing.T) {
	ev := httpEvent("POST", "/", goodBody, key, now)
	for _, path := range []string{"/webhooks/nope", "/webhooks/bad%20name", "/pipelines/nope"} {
		t.Run("with a ledger: "+path, func(t *testing.T) {
			c := newContainers(t)
			handle(c.container(nil), ev)
			other := c.container(nil)
			status, got := handle(other, rerouted(t, ev, path))
			if status != 200 || got["duplicate"] != true || got["forwarded"] != true {
				t.Errorf("%d %v, want the first answer, marked duplicate", status, got)
			}
			if len(other.reports.calls) != 0 {
				t.Errorf("the replay reported %q to a delivered run", other.reports.calls)
			}
		})
		t.Run("without a ledger: "+path, func(t *testing.T) {
			first, other := newFixture(nil), newFixture(nil)
			handle(first, ev)
			handle(other, rerouted(t, ev, path))
			for _, call := range other.reports.calls {
				if strings.HasPrefix(call, "fail ") {
					t.Errorf("the replay ended the run: %q", call)
				}
			}
		})
	}
	t.Run("a first request to a wrong path is still refused and reported", func(t *testing.T) {
		c := newContainers(t)
		f := c.container(nil)
		status, _ := handle(f, httpEvent("POST", "/webhooks/nope", goodBody, key, now))
		if status != 404 || !strings.HasPrefix(strings.Join(f.reports.calls, "\n"), "fail r_unit1: Unknown webhook") {
			t.Errorf("%d, reported %q: want 404 and the run ended FAILURE", status, f.reports.calls)
		}
		if status, got := handle(c.container(nil), httpEvent("POST", "/", goodBody, key, now)); got["duplicate"] != true {
			t.Errorf("the same run to the right path afterwards: %d %v, want the first answer: its Port run has ended", status, got)
		}
		if n := c.deliveries(); n != 0 {
			t.Errorf("%d deliveries, want none", n)
		}
	})
}

// The keys Azure reserves in an incoming webhook's payload mean nothing to the Runs
// API, which gets only the run parameters.
func TestReservedWebhookKeysDoNotRefuseAPipelineRun(t *testing.T) {
	f := newPipelineFixture(t, secret.Credentials{ClientID: "id", ClientSecret: key, AzurePAT: pat})
	body := `{"pipeline":"payments","run":1,"tags":"x","templateParameters":{"service":"payments"},"port_context":{"runId":"r_unit1"}}`
	if status, got := f.handle(t, "/pipelines/deploy", body); status != 200 || got["forwarded"] != true {
		t.Errorf("%d %v, want the pipeline started", status, got)
	}
	// The webhook route still refuses them: Azure would drop the run silently.
	if status, _ := f.handle(t, "/", strings.Replace(body, "r_unit1", "r_unit2", 1)); status != 422 {
		t.Errorf("webhook route: %d, want 422", status)
	}
}

// A rotated PAT or Entra client secret: Azure or Entra refuses the cached one, which
// queues nothing; the relay reads the secret again and tries once more with the new one.
func TestARotatedAzureCredentialIsPickedUp(t *testing.T) {
	base := secret.Credentials{ClientID: "id", ClientSecret: key}
	pats := base
	pats.AzurePAT = "the-old-pat"
	newPAT := base
	newPAT.AzurePAT = pat
	apps := base
	apps.AzureTenantID, apps.AzureClientID, apps.AzureClientSecret = tenant, appID, "the-old-app-secret"
	newApp := apps
	newApp.AzureClientSecret = appSecret
	for _, tt := range []struct {
		name           string
		cached, stored secret.Credentials
	}{
		{"a PAT", pats, newPAT},
		{"an Entra client secret", apps, newApp},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newPipelineFixture(t, tt.cached)
			f.secrets.rotated = tt.stored
			if status, got := f.handle(t, "/pipelines/deploy", pipelineRun); status != 200 || got["forwarded"] != true {
				t.Fatalf("%d %v, want the run started with the new credential", status, got)
			}
			if f.secrets.invalidated != 1 || f.az.RunCount() != 1 {
				t.Errorf("secret read again %d times, %d runs: want 1 and 1", f.secrets.invalidated, f.az.RunCount())
			}
		})
		t.Run(tt.name+" not rotated: refused once, never sent again", func(t *testing.T) {
			f := newPipelineFixture(t, tt.cached)
			if status, _ := f.handle(t, "/pipelines/deploy", pipelineRun); status != 502 {
				t.Fatalf("status %d, want 502", status)
			}
			if f.secrets.invalidated != 1 {
				t.Errorf("secret read again %d times, want 1", f.secrets.invalidated)
			}
		})
	}
}

// An ambiguous failure of the Runs API leaves no Azure run id for the status function
// to follow: the Port run says the pipeline may be running, where to look, and that
// it will not follow it, and it ends.
func TestAnAmbiguousPipelineRunIsNotPromisedAFollower(t *testing.T) {
	f := newPipelineFixture(t, secret.Credentials{ClientID: "id", ClientSecret: key, AzurePAT: pat})
	db := dynamotest.New()
	t.Cleanup(db.Close)
	db.CreateTable(ledgerTable, "id")
	f.relay.Ledger = &ledger.Ledger{DB: db.Client(), Table: ledgerTable}
	f.az.Script(azdotest.Status(500))
	if status, _ := f.handle(t, "/pipelines/deploy", pipelineRun); status != 502 {
		t.Fatalf("status %d, want 502", status)
	}
	got := strings.Join(f.reports.calls, "\n")
	if strings.Contains(got, "follows it") || !strings.Contains(got, "will not follow") || !strings.Contains(got, "fail r_unit1") ||
		!strings.Contains(got, "may have been queued") || !strings.Contains(got, "deploy") {
		t.Errorf("Port heard %q: want the run ended, saying it may have been queued, where, and that it is not followed", got)
	}
}
