package relay

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

const ledgerTable = "relay-ledger"

// containers are relays sharing one ledger (the real SDK against the DynamoDB
// stand-in), each a Lambda container with its own memory of signatures.
type containers struct {
	t   *testing.T
	db  *dynamotest.Server
	all []*fixture
}

func newContainers(t *testing.T) *containers {
	db := dynamotest.New()
	t.Cleanup(db.Close)
	db.CreateTable(ledgerTable, "id")
	db.EnableTTL(ledgerTable, "expiresAt")
	return &containers{t: t, db: db}
}

// container starts one more relay whose Azure answers with azureErr (nil: 200).
func (c *containers) container(azureErr error) *fixture {
	f := newFixture(azureErr)
	f.relay.Port.Replays = &signature.Replays{}
	f.relay.Ledger = &ledger.Ledger{DB: c.db.Client(), Table: ledgerTable}
	f.relay.Metrics = metrics.New(metrics.DefaultNamespace, metrics.FunctionRelay)
	c.all = append(c.all, f)
	return f
}

// deliveries counts what reached Azure from every container.
func (c *containers) deliveries() int {
	n := 0
	for _, f := range c.all {
		n += len(f.delivered)
	}
	return n
}

func handle(f *fixture, ev []byte) (int, map[string]any) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.logs.Reset()
	resp := f.relay.Handle(ctx, "req", ev)
	var body map[string]any
	_ = json.Unmarshal(resp.Body, &body)
	if !resp.HTTP && resp.Status >= 300 && !resp.MayHaveQueued {
		return resp.Status, map[string]any{"functionError": resp.Error}
	}
	return resp.Status, body
}

func lastLine(t *testing.T, f *fixture) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(f.logs.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("log line %q: %v", lines[len(lines)-1], err)
	}
	return m
}

func TestOnePortRunIsDeliveredOnceAcrossContainers(t *testing.T) {
	c := newContainers(t)
	a, b := c.container(nil), c.container(nil)
	ev := httpEvent("POST", "/", goodBody, key, now)
	if status, body := handle(a, ev); status != 200 || body["forwarded"] != true || body["duplicate"] != nil {
		t.Fatalf("first container: %d %v, want 200 forwarded", status, body)
	}
	status, body := handle(b, ev)
	if status != 200 || body["duplicate"] != true || body["forwarded"] != true || body["webhook"] != "port_trigger" ||
		body["azureStatus"] != float64(200) || body["runId"] != "r_unit1" {
		t.Fatalf("second container: %d %v, want 200 with the first answer and duplicate", status, body)
	}
	if n := c.deliveries(); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
	if len(b.reports.calls) != 0 {
		t.Errorf("the duplicate reported %v to Port, want nothing: the first invocation reported", b.reports.calls)
	}
	line := lastLine(t, b)
	if line["msg"] != "duplicate" || line["ledger"] != "duplicate" || line["Duplicate"] != float64(1) || line["Forwarded"] != nil {
		t.Errorf("log line %v: want msg duplicate, counted as Duplicate, not Forwarded", line)
	}
	// Another invocation of the same run (a new signature) is the same run: never a second one.
	if status, body := handle(b, httpEvent("POST", "/", goodBody, key, now+1)); status != 200 || body["duplicate"] != true {
		t.Errorf("the same run signed again: %d %v, want 200 duplicate", status, body)
	}
	if n := c.deliveries(); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

func TestAnInvocationWithoutARunIDIsKeyedBySignature(t *testing.T) {
	c := newContainers(t)
	a, b := c.container(nil), c.container(nil)
	const body = `{"env":"prod"}`
	ev := httpEvent("POST", "/", body, key, now)
	handle(a, ev)
	if status, got := handle(b, ev); status != 200 || got["duplicate"] != true {
		t.Fatalf("the same invocation at another container: %d %v, want 200 duplicate", status, got)
	}
	// The same body signed anew is another invocation: Port made it.
	if status, got := handle(b, httpEvent("POST", "/", body, key, now+5)); status != 200 || got["duplicate"] != nil {
		t.Fatalf("a new invocation: %d %v, want it delivered", status, got)
	}
	if n := c.deliveries(); n != 2 {
		t.Errorf("%d deliveries, want 2", n)
	}
	// A header with an extra entry, beside the MAC that verifies, is the same invocation.
	var e map[string]any
	_ = json.Unmarshal(ev, &e)
	h := e["headers"].(map[string]any)
	h["x-port-signature"] = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " + h["x-port-signature"].(string)
	padded, _ := json.Marshal(e)
	if status, got := handle(c.container(nil), padded); status != 200 || got["duplicate"] != true {
		t.Errorf("the same invocation with one more signature entry: %d %v, want 200 duplicate", status, got)
	}
}

func TestAnAmbiguousFailureKeepsTheKey(t *testing.T) {
	t.Run("Azure timed out: it may have queued, so a retry sends nothing", func(t *testing.T) {
		c := newContainers(t)
		ev := httpEvent("POST", "/", goodBody, key, now)
		if status, _ := handle(c.container(azdo.ErrNoAnswer), ev); status != 504 {
			t.Fatalf("first: %d, want 504", status)
		}
		status, body := handle(c.container(nil), ev)
		if status != 200 || body["duplicate"] != true || body["mayHaveQueued"] != true || body["forwarded"] != false {
			t.Fatalf("retry: %d %v, want 200 duplicate, may have queued", status, body)
		}
		if n := c.deliveries(); n != 1 {
			t.Errorf("%d deliveries, want 1", n)
		}
	})
}

// TestAClaimInProgress: another container is delivering right now: 409 for HTTP, a
// function error for an AWS event (Lambda retries later); past that invocation's
// deadline it died mid-delivery, and the claim reads as "may have queued".
func TestAClaimInProgress(t *testing.T) {
	c := newContainers(t)
	l := &ledger.Ledger{DB: c.db.Client(), Table: ledgerTable}
	if _, err := l.Claim(t.Context(), ledger.Record{Key: ledger.RunKey("r_unit1"), Target: "port_trigger"}, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if status, body := handle(c.container(nil), httpEvent("POST", "/", goodBody, key, now)); status != 409 || !strings.Contains(body["error"].(string), "another invocation") {
		t.Errorf("HTTP: %d %v, want 409 saying another invocation delivers it", status, body)
	}
	if _, err := l.Claim(t.Context(), ledger.Record{Key: ledger.EventKey("ev-1")}, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if status, body := handle(c.container(nil), []byte(`{"id":"ev-1","trigger":"manual"}`)); status != 409 || body["functionError"] == nil {
		t.Errorf("AWS event: %d %v, want a function error", status, body)
	}
	// A claim whose holder's deadline has passed.
	if _, err := l.Claim(t.Context(), ledger.Record{Key: ledger.EventKey("ev-2")}, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if status, body := handle(c.container(nil), []byte(`{"id":"ev-2"}`)); status != 200 || body["duplicate"] != true || body["mayHaveQueued"] != true {
		t.Errorf("past the holder's deadline: %d %v, want a result: duplicate, may have queued", status, body)
	}
	if n := c.deliveries(); n != 0 {
		t.Errorf("%d deliveries, want none", n)
	}
}

func TestAnAWSEventWithAnIDIsDeliveredOnce(t *testing.T) {
	c := newContainers(t)
	ev := lambdatest.ScheduledEvent("nightly")
	if status, body := handle(c.container(nil), ev); status != 200 || body["forwarded"] != true {
		t.Fatalf("first: %d %v", status, body)
	}
	if status, body := handle(c.container(nil), ev); status != 200 || body["duplicate"] != true || body["functionError"] != nil {
		t.Fatalf("Lambda's retry elsewhere: %d %v, want a result saying duplicate, no function error", status, body)
	}
	// Without an id there is no key: delivered as without a ledger.
	for range 2 {
		handle(c.container(nil), []byte(`{"trigger":"manual"}`))
	}
	if n := c.deliveries(); n != 3 {
		t.Errorf("%d deliveries, want 3 (the event once, the id-less invoke twice)", n)
	}
}

func TestTheLedgerDown(t *testing.T) {
	c := newContainers(t)
	c.db.SetFault(dynamotest.AccessDenied)
	f := c.container(nil)
	ev := httpEvent("POST", "/", goodBody, key, now)
	if status, body := handle(f, ev); status != 200 || body["forwarded"] != true {
		t.Fatalf("HTTP with the ledger down: %d %v, want delivered (Port does not retry)", status, body)
	}
	line := lastLine(t, f)
	if line["level"] != "ERROR" || line["ledger"] != "unavailable" || line["LedgerUnavailable"] != float64(1) ||
		!strings.Contains(line["ledgerError"].(string), "AccessDeniedException") {
		t.Errorf("log line %v: want ERROR naming the ledger, counted as LedgerUnavailable", line)
	}
	// The container's own memory still refuses the replay.
	if status, _ := handle(f, ev); status != 401 {
		t.Errorf("the replay at the same container: %d, want 401", status)
	}
	// An AWS event is refused, for Lambda to retry: nothing sent.
	status, body := handle(f, lambdatest.ScheduledEvent("nightly"))
	if status != 503 || body["functionError"] == nil || !strings.Contains(body["functionError"].(string), "ledger") {
		t.Errorf("AWS event with the ledger down: %d %v, want a function error naming the ledger", status, body)
	}
	if n := c.deliveries(); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

// TestARefusedRequestCostsTheLedgerNothing: a stranger, a bad signature, a wrong
// method, or a refused body with no Port run to report to never reach DynamoDB; a
// signed request refused with a Port run id costs the one conditional write that
// makes the refusal final.
func TestARefusedRequestCostsTheLedgerNothing(t *testing.T) {
	for _, tt := range []struct {
		name  string
		ev    []byte
		calls int
	}{
		{"a wrong signature", httpEvent("POST", "/", goodBody, "guess", now), 0},
		{"no signature", httpEvent("POST", "/", goodBody, "", now), 0},
		{"GET", httpEvent("GET", "/", goodBody, key, now), 0},
		{"a reserved key, no run id", httpEvent("POST", "/", `{"run":1}`, key, now), 0},
		{"a route not allowed, with a run id", httpEvent("POST", "/webhooks/other", goodBody, key, now), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newContainers(t)
			if status, _ := handle(c.container(nil), tt.ev); status < 400 {
				t.Fatalf("status %d, want a refusal", status)
			}
			if n := c.db.Calls(""); n != tt.calls {
				t.Errorf("%d DynamoDB calls, want %d", n, tt.calls)
			}
		})
	}
}

func TestCompleteFailingIsLoggedNotAnswered(t *testing.T) {
	c := newContainers(t)
	c.db.SetFault(dynamotest.AccessDenied.For("UpdateItem"))
	f := c.container(nil)
	if status, _ := handle(f, httpEvent("POST", "/", goodBody, key, now)); status != 200 {
		t.Fatalf("status %d, want 200: Azure queued it", status)
	}
	if line := lastLine(t, f); line["level"] != "ERROR" || line["LedgerUnavailable"] != float64(1) {
		t.Errorf("log line %v: want ERROR, LedgerUnavailable", line)
	}
	// The record stays in progress: a second arrival waits, and never sends.
	c.db.SetFault(dynamotest.None)
	if status, _ := handle(c.container(nil), httpEvent("POST", "/", goodBody, key, now)); status != 409 {
		t.Errorf("second arrival: %d, want 409 while the first claim's deadline runs", status)
	}
	if n := c.deliveries(); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

func TestAReplayWithTheLedgerDownReportsNothing(t *testing.T) {
	c := newContainers(t)
	c.db.SetFault(dynamotest.AccessDenied)
	f := c.container(nil)
	ev := httpEvent("POST", "/", goodBody, key, now)
	if status, _ := handle(f, ev); status != 200 {
		t.Fatalf("first arrival: %d, want 200: delivered without the ledger", status)
	}
	reported := len(f.reports.calls)
	if status, _ := handle(f, ev); status != 401 {
		t.Fatalf("replay: %d, want 401 from the container's memory", status)
	}
	if extra := f.reports.calls[reported:]; len(extra) != 0 {
		t.Errorf("the replay reported %q to a run Azure is running, want nothing", extra)
	}
	if n := c.deliveries(); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

// During a rotation of Port's secret the header carries a MAC for each value, and
// containers may hold different ones: the key is the same whichever verified it.
func TestARotationOfPortsSecretKeysOneDelivery(t *testing.T) {
	c := newContainers(t)
	older, newer := c.container(nil), c.container(nil)
	newer.secrets.creds.ClientSecret = "the-new-client-secret"
	const body = `{"env":"prod"}` // no run id: keyed by the signature
	ev := httpEvent("POST", "/", body, key, now)
	var e map[string]any
	if err := json.Unmarshal(ev, &e); err != nil {
		t.Fatal(err)
	}
	h := e["headers"].(map[string]any)
	h["x-port-signature"] = h["x-port-signature"].(string) + " " + signature.SignPort([]byte("the-new-client-secret"), now, []byte(body))
	ev, _ = json.Marshal(e)
	if status, _ := handle(older, ev); status != 200 {
		t.Fatalf("container with the old secret: %d, want 200", status)
	}
	if status, got := handle(newer, ev); status != 200 || got["duplicate"] != true {
		t.Errorf("container with the new secret: %d %v, want 200 duplicate", status, got)
	}
	if n := c.deliveries(); n != 1 {
		t.Errorf("one Port invocation delivered %d times", n)
	}
}

// A claim that landed with every answer lost: the HTTP delivery goes on, and its
// outcome is still written on the claim, so that it never reads "may have queued".
func TestALostClaimAnswerStillGetsItsOutcome(t *testing.T) {
	for _, tt := range []struct {
		name      string
		azureErr  error
		wantState string
	}{
		{"delivered", nil, "delivered"},
		{"refused, nothing queued", azdo.ErrWebhookNotFound, "refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newContainers(t)
			c.db.SetFault(dynamotest.AnswerLost.For("PutItem"))
			handle(c.container(tt.azureErr), httpEvent("POST", "/", goodBody, key, now))
			items := c.db.Items(ledgerTable)
			got := ""
			for _, item := range items {
				if id, _ := item["id"].(*types.AttributeValueMemberS); id != nil && id.Value == ledger.RunKey("r_unit1") {
					got = item["state"].(*types.AttributeValueMemberS).Value
				}
			}
			if got != tt.wantState {
				t.Errorf("record state %q, want %q (items %v)", got, tt.wantState, items)
			}
		})
	}
}

// A pipeline request refused before anything is sent (run parameters Azure cannot
// take, no Azure credential) costs one conditional write, no claim and release.
func TestARefusedPipelineRequestCostsOneWrite(t *testing.T) {
	for _, tt := range []struct {
		name  string
		creds secret.Credentials
		body  string
		want  int
	}{
		{"run parameters Azure cannot take", secret.Credentials{ClientID: "id", ClientSecret: key, AzurePAT: pat}, `{"templateParameters":[1],"port_context":{"runId":"r_unit1"}}`, 400},
		{"no Azure credential in the secret", secret.Credentials{ClientID: "id", ClientSecret: key}, `{"port_context":{"runId":"r_unit2"}}`, 503},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newContainers(t)
			f := newPipelineFixture(t, tt.creds)
			f.relay.Ledger = &ledger.Ledger{DB: c.db.Client(), Table: ledgerTable}
			if status, _ := f.handle(t, "/pipelines/deploy", tt.body); status != tt.want {
				t.Errorf("status %d, want %d", status, tt.want)
			}
			if n, puts := c.db.Calls(""), c.db.Calls("PutItem"); n != 1 || puts != 1 {
				t.Errorf("%d DynamoDB calls (%d PutItem), want the one PutItem that records the refusal", n, puts)
			}
		})
	}
}
