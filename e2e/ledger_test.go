package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
)

const ledgerTable = "e2e-relay-ledger"

// ledgerWorld is two relay containers (each its own bootstrap under its own
// emulator) sharing Secrets Manager, Azure and one ledger: what Lambda does when it
// runs the relay in two containers.
type ledgerWorld struct {
	*world
	db     *dynamotest.Server
	second *lambdatest.Function
}

func newLedgerWorld(t *testing.T, extra ...string) *ledgerWorld {
	t.Helper()
	db := dynamotest.New()
	t.Cleanup(db.Close)
	db.CreateTable(ledgerTable, "id")
	db.EnableTTL(ledgerTable, "expiresAt")
	env := append(extra, "LEDGER_TABLE="+ledgerTable, "LEDGER_TTL=2h", dynamoEndpoint(db))
	w := &ledgerWorld{world: &world{sm: newSM(t), az: newAzure(t, false)}, db: db}
	w.relay = start(t, relayBin, faultTimeout, relayEnv(w.sm, w.az.URL, env...))
	w.second = start(t, relayBin, faultTimeout, relayEnv(w.sm, w.az.URL, env...))
	return w
}

// dynamoEndpoint is the one line of db.Env() that the relay's environment lacks.
func dynamoEndpoint(db *dynamotest.Server) string {
	for _, kv := range db.Env() {
		if strings.HasPrefix(kv, "AWS_ENDPOINT_URL_DYNAMODB=") {
			return kv
		}
	}
	panic("dynamotest.Env has no AWS_ENDPOINT_URL_DYNAMODB")
}

func TestLedgerAcrossContainers(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newLedgerWorld(t)

	t.Run("the same Port invocation at both containers: one run, then 200 duplicate", func(t *testing.T) {
		w.az.Reset()
		runID := "r_led_" + rand.Text()[:10]
		ev := signedEvent(1, "/", portBody(runID))
		first, second := invoke(t, w.relay, ev), invoke(t, w.second, ev)
		if first.status != 200 || first.body["duplicate"] != nil {
			t.Fatalf("first: %d %v", first.status, first.body)
		}
		if second.status != 200 || second.body["duplicate"] != true || second.body["forwarded"] != true || second.body["runId"] != runID {
			t.Fatalf("second: %d %v, want 200 with the first answer and duplicate", second.status, second.body)
		}
		if n := w.az.Count(); n != 1 {
			t.Errorf("%d runs queued, want 1", n)
		}
		if line := oneLogLine(t, second); line != nil && (line["msg"] != "duplicate" || line["Duplicate"] != float64(1)) {
			t.Errorf("second's log line %v: want msg duplicate, counted Duplicate", line)
		}
		ledgerCases.Add(1)
	})

	t.Run("the same invocation at both at once: one run", func(t *testing.T) {
		w.az.Reset()
		w.az.Script(azdotest.Delay(300 * time.Millisecond)) // the first holds its claim a while
		ev := signedEvent(0, "/", portBody("r_led_"+rand.Text()[:10]))
		var wg sync.WaitGroup
		results := make([]result, 2)
		for i, fn := range []*lambdatest.Function{w.relay, w.second} {
			wg.Go(func() { results[i] = invoke(t, fn, ev) })
		}
		wg.Wait()
		statuses := []int{results[0].status, results[1].status}
		ok := 0
		for _, r := range results {
			switch {
			case r.status == 200 && r.body["duplicate"] == nil:
				ok++
			case r.status == 200 && r.body["duplicate"] == true, r.status == 409:
			default:
				t.Errorf("answer %d %v: want 200, 200 duplicate or 409", r.status, r.body)
			}
		}
		if ok != 1 || w.az.Count() != 1 {
			t.Errorf("answers %v with %d delivered and %d runs queued, want exactly one of each", statuses, ok, w.az.Count())
		}
		ledgerCases.Add(1)
	})

	t.Run("a scheduled event invoked twice, as Lambda retries: one run, no function error", func(t *testing.T) {
		w.az.Reset()
		ev := lambdatest.ScheduledEvent("nightly-" + rand.Text()[:8])
		first, second := invoke(t, w.relay, ev), invoke(t, w.second, ev)
		if first.fnErr != nil || first.body["forwarded"] != true {
			t.Fatalf("first: %v %v", first.body, first.fnErr)
		}
		if second.fnErr != nil || second.body["duplicate"] != true {
			t.Fatalf("second: %v %v, want a result saying duplicate", second.body, second.fnErr)
		}
		if n := w.az.Count(); n != 1 {
			t.Errorf("%d runs queued, want 1", n)
		}
		ledgerCases.Add(1)
	})

	t.Run("Azure refuses: final for a Port invocation, whose replay gets the first answer", func(t *testing.T) {
		w.az.Reset()
		w.az.Script(azdotest.Status(400))
		ev := signedEvent(2, "/", portBody("r_led_"+rand.Text()[:10]))
		first := invoke(t, w.relay, ev)
		if first.status != 502 {
			t.Fatalf("first: %d %v, want 502", first.status, first.body)
		}
		if r := invoke(t, w.second, ev); r.status != 502 || r.body["duplicate"] != true || !strings.HasPrefix(first.errMsg, strings.TrimSuffix(r.errMsg, ".")) || w.az.Count() != 1 {
			t.Fatalf("replay: %d %v after %d requests to Azure, want the first answer marked duplicate, nothing sent", r.status, r.body, w.az.Count())
		}
		ledgerCases.Add(1)
	})

	t.Run("Azure refuses an AWS event, then is fixed: Lambda's retry is delivered", func(t *testing.T) {
		w.az.Reset()
		w.az.Script(azdotest.Status(400))
		ev := lambdatest.ScheduledEvent("refused-" + rand.Text()[:8])
		if r := invoke(t, w.relay, ev); r.fnErr == nil {
			t.Fatalf("first: %v, want a function error", r.body)
		}
		if r := invoke(t, w.second, ev); r.fnErr != nil || r.body["forwarded"] != true || r.body["duplicate"] != nil {
			t.Fatalf("retry: %v %v, want delivered", r.body, r.fnErr)
		}
		ledgerCases.Add(1)
	})

	t.Run("an ambiguous failure, then a retry: nothing sent", func(t *testing.T) {
		w.az.Reset()
		w.az.Script(azdotest.Status(500))
		ev := signedEvent(1, "/", portBody("r_led_"+rand.Text()[:10]))
		if r := invoke(t, w.relay, ev); r.status != 502 {
			t.Fatalf("first: %d %v, want 502", r.status, r.body)
		}
		r := invoke(t, w.second, ev)
		if r.status != 200 || r.body["duplicate"] != true || r.body["mayHaveQueued"] != true {
			t.Fatalf("retry: %d %v, want 200 duplicate, may have queued", r.status, r.body)
		}
		if n := w.az.Count(); n != 1 {
			t.Errorf("%d deliveries, want 1", n)
		}
		ledgerCases.Add(1)
	})

	t.Run("a claim left in progress past its deadline: nothing sent", func(t *testing.T) {
		w.az.Reset()
		runID := "r_led_" + rand.Text()[:10]
		l := &ledger.Ledger{DB: w.db.Client(), Table: ledgerTable, TTL: 2 * time.Hour}
		// A container died mid-delivery: its claim and its deadline remain.
		if _, err := l.Claim(context.Background(), ledger.Record{Key: ledger.RunKey(runID), Target: hookDeploy}, time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		r := invoke(t, w.second, signedEvent(1, "/", portBody(runID)))
		if r.status != 200 || r.body["duplicate"] != true || r.body["mayHaveQueued"] != true {
			t.Fatalf("%d %v, want 200 duplicate, may have queued", r.status, r.body)
		}
		if n := w.az.Count(); n != 0 {
			t.Errorf("%d deliveries, want none", n)
		}
		ledgerCases.Add(1)
	})

	t.Run("records expire in LEDGER_TTL and hold no secret and no payload", func(t *testing.T) {
		items := w.db.Items(ledgerTable)
		if len(items) < 5 {
			t.Fatalf("%d records, want one per delivery above", len(items))
		}
		for _, item := range items {
			text := fmt.Sprint(item)
			for _, leak := range []string{portSecret, marker, "payments-api"} {
				if strings.Contains(text, leak) {
					t.Errorf("record %v holds %q", item, leak)
				}
			}
			exp, _ := item["expiresAt"].(*types.AttributeValueMemberN)
			created, _ := item["createdAt"].(*types.AttributeValueMemberN)
			if exp == nil || created == nil {
				t.Errorf("record %v: want expiresAt and createdAt", item)
				continue
			}
			e, _ := strconv.ParseInt(exp.Value, 10, 64)
			c, _ := strconv.ParseInt(created.Value, 10, 64)
			if e-c != int64((2 * time.Hour).Seconds()) {
				t.Errorf("record expires %d s after it was made, want LEDGER_TTL (2h)", e-c)
			}
		}
		ledgerCases.Add(1)
	})
}

func TestLedgerDown(t *testing.T) {
	requireRIE(t)
	t.Parallel()
	w := newLedgerWorld(t)
	w.db.SetFault(dynamotest.Down)

	r := invoke(t, w.relay, signedEvent(1, "/", portBody("r_led_down")))
	if r.status != 200 || r.body["forwarded"] != true {
		t.Fatalf("HTTP with the ledger down: %d %v, want delivered (Port does not retry)", r.status, r.body)
	}
	if line := oneLogLine(t, r); line != nil && (line["level"] != "ERROR" || line["ledger"] != "unavailable" || line["LedgerUnavailable"] != float64(1)) {
		t.Errorf("log line %v: want ERROR naming the ledger, LedgerUnavailable", line)
	}
	before := w.az.Count()
	a := invoke(t, w.second, lambdatest.ScheduledEvent("nightly-down"))
	if a.fnErr == nil || !strings.Contains(a.fnErr.Message, "ledger") {
		t.Fatalf("AWS event with the ledger down: %v %v, want a function error naming the ledger (Lambda retries)", a.body, a.fnErr)
	}
	if n := w.az.Count() - before; n != 0 {
		t.Errorf("%d deliveries for the refused event, want none", n)
	}
	ledgerCases.Add(2)
}
