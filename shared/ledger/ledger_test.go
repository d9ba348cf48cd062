package ledger_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/port-azure-relay/relay/shared/ledger"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
)

const table = "relay-ledger"

type env struct {
	srv *dynamotest.Server
	l   *ledger.Ledger
	now time.Time
}

// newEnv is a ledger on the real DynamoDB client against the stand-in, with a clock
// the test moves.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{srv: dynamotest.New(), now: time.Now()}
	t.Cleanup(e.srv.Close)
	e.srv.CreateTable(table, "id")
	e.srv.EnableTTL(table, "expiresAt")
	e.l = &ledger.Ledger{DB: e.srv.Client(), Table: table, TTL: 24 * time.Hour, Now: func() time.Time { return e.now }}
	return e
}

func (e *env) claim(t *testing.T, key string, deadline time.Duration) (ledger.Claim, error) {
	t.Helper()
	return e.l.Claim(t.Context(), ledger.Record{Key: key, Target: "deploy", RunID: "r_1"}, e.now.Add(deadline))
}

func held(t *testing.T, err error, want error) ledger.Record {
	t.Helper()
	var h *ledger.Held
	if !errors.As(err, &h) || !errors.Is(err, want) {
		t.Fatalf("Claim = %v, want a *Held with %v", err, want)
	}
	return h.Record
}

func TestAKeyIsClaimedOnce(t *testing.T) {
	e := newEnv(t)
	c, err := e.claim(t, "run#r_1", time.Minute)
	if err != nil {
		t.Fatalf("first Claim = %v", err)
	}
	r := held(t, second(e, t), ledger.ErrInProgress)
	if r.State != ledger.InProgress || r.Target != "deploy" || r.RunID != "r_1" {
		t.Errorf("held record = %+v, want the first claim, in progress", r)
	}
	if err := e.l.Complete(t.Context(), c, ledger.Record{State: ledger.Delivered, AzureStatus: 200}); err != nil {
		t.Fatalf("Complete = %v", err)
	}
	r = held(t, second(e, t), ledger.ErrDuplicate)
	if r.State != ledger.Delivered || r.AzureStatus != 200 || r.Key != "run#r_1" {
		t.Errorf("held record = %+v, want delivered with Azure's 200", r)
	}
	if n := e.srv.Calls("GetItem"); n != 0 {
		t.Errorf("%d GetItem calls: the held record comes with the failed condition", n)
	}
}

func second(e *env, t *testing.T) error {
	_, err := e.claim(t, "run#r_1", time.Minute)
	return err
}

func TestOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		end       func(e *env, c ledger.Claim) error
		then      error // what a second claim gets
		state     ledger.State
		cause     string
		advanceBy time.Duration // the clock moves before the second claim
	}{
		{"delivered: a second arrival is a duplicate", func(e *env, c ledger.Claim) error {
			return e.l.Complete(context.Background(), c, ledger.Record{State: ledger.Delivered, AzureStatus: 200})
		}, ledger.ErrDuplicate, ledger.Delivered, "", 0},
		{"may have queued: a second arrival is a duplicate, never sent", func(e *env, c ledger.Claim) error {
			return e.l.Complete(context.Background(), c, ledger.Record{State: ledger.MayHaveQueued, AzureStatus: 500, Cause: "server"})
		}, ledger.ErrDuplicate, ledger.MayHaveQueued, "server", 0},
		{"released after a refusal: a retry claims again", func(e *env, c ledger.Claim) error {
			return e.l.Release(context.Background(), c)
		}, nil, "", "", 0},
		{"in progress past the holder's deadline: may have queued, never sent", func(*env, ledger.Claim) error { return nil },
			ledger.ErrDuplicate, ledger.MayHaveQueued, "deadline", 2 * time.Minute},
		{"delivered and expired (TTL not yet swept): claimed anew", func(e *env, c ledger.Claim) error {
			return e.l.Complete(context.Background(), c, ledger.Record{State: ledger.Delivered, AzureStatus: 200})
		}, nil, "", "", 25 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c, err := e.claim(t, "event#e-1", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.end(e, c); err != nil {
				t.Fatal(err)
			}
			e.now = e.now.Add(tt.advanceBy)
			_, err = e.claim(t, "event#e-1", time.Minute)
			if tt.then == nil {
				if err != nil {
					t.Fatalf("second Claim = %v, want it claimed", err)
				}
				return
			}
			r := held(t, err, tt.then)
			if r.State != tt.state || r.Cause != tt.cause {
				t.Errorf("held record = %+v, want state %s, cause %q", r, tt.state, tt.cause)
			}
		})
	}
}

// TestOnlyTheClaimantChangesTheClaim: another invocation cannot complete or release a
// claim it does not hold, nor change a record once it is complete.
func TestOnlyTheClaimantChangesTheClaim(t *testing.T) {
	e := newEnv(t)
	mine, err := e.claim(t, "run#r_2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	stranger := ledger.Claim{Key: mine.Key}
	if err := e.l.Complete(t.Context(), stranger, ledger.Record{State: ledger.Delivered}); !errors.Is(err, ledger.ErrNotOwner) {
		t.Errorf("Complete by another = %v, want %v", err, ledger.ErrNotOwner)
	}
	if err := e.l.Release(t.Context(), stranger); !errors.Is(err, ledger.ErrNotOwner) {
		t.Errorf("Release by another = %v, want %v", err, ledger.ErrNotOwner)
	}
	if err := e.l.Complete(t.Context(), mine, ledger.Record{State: ledger.MayHaveQueued, Cause: "timeout"}); err != nil {
		t.Fatal(err)
	}
	if err := e.l.Release(t.Context(), mine); !errors.Is(err, ledger.ErrNotOwner) {
		t.Errorf("Release after Complete = %v, want %v: a may-have-queued record is never released", err, ledger.ErrNotOwner)
	}
}

// sendsTwice is a DynamoDB whose first answer to PutItem is lost, so that the SDK's
// retry reaches it again: the claim is then the caller's own, not another's.
type sendsTwice struct{ ledger.DB }

func (s sendsTwice) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if _, err := s.DB.PutItem(ctx, in, opts...); err != nil {
		return nil, err
	}
	return s.DB.PutItem(ctx, in, opts...)
}

func TestAClaimWhoseAnswerWasLostIsStillOurs(t *testing.T) {
	e := newEnv(t)
	e.l.DB = sendsTwice{e.l.DB}
	c, err := e.claim(t, "run#r_3", time.Minute)
	if err != nil {
		t.Fatalf("Claim sent twice = %v, want it ours", err)
	}
	if err := e.l.Complete(t.Context(), c, ledger.Record{State: ledger.Delivered, AzureStatus: 200}); err != nil {
		t.Errorf("Complete = %v", err)
	}
}

func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, inProgress := 0, 0
	for range 16 {
		wg.Go(func() {
			_, err := e.l.Claim(context.Background(), ledger.Record{Key: "run#r_race"}, time.Now().Add(time.Minute))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, ledger.ErrInProgress):
				inProgress++
			default:
				t.Errorf("Claim = %v", err)
			}
		})
	}
	wg.Wait()
	if won != 1 || inProgress != 15 {
		t.Errorf("%d claims won, %d found it in progress, want 1 and 15", won, inProgress)
	}
}

func TestUnreachableIsErrUnavailable(t *testing.T) {
	tests := []struct {
		name string
		set  dynamotest.Fault
		code string
	}{
		{name: "throttled", set: dynamotest.Throttle, code: "ThrottlingException"},
		{name: "no rights on the table", set: dynamotest.AccessDenied, code: "AccessDeniedException"},
		{name: "down", set: dynamotest.Down, code: "request failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			// One attempt: the SDK's own retries (with backoff) would only make the test slow.
			e.l.DB = e.srv.Client(func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
			e.srv.SetFault(tt.set)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, err := e.l.Claim(ctx, ledger.Record{Key: "run#r_4"}, time.Now().Add(time.Minute))
			if !errors.Is(err, ledger.ErrUnavailable) || !strings.Contains(err.Error(), tt.code) {
				t.Fatalf("Claim = %v, want %v naming %s", err, ledger.ErrUnavailable, tt.code)
			}
			if strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), table) {
				t.Errorf("Claim = %q: the SDK's text (endpoint, table) leaked", err)
			}
		})
	}
}

// TestTheRecordHoldsIdsAndOutcomesOnly: what reaches DynamoDB is the key, the state,
// times, the target, the Port run id and Azure's answer, with the TTL LEDGER_TTL after
// the claim; never a body or a secret.
func TestTheRecordHoldsIdsAndOutcomesOnly(t *testing.T) {
	e := newEnv(t)
	c, err := e.l.Claim(t.Context(), ledger.Record{Key: ledger.RunKey("r_5"), Target: "deploy", RunID: "r_5"}, e.now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.l.Complete(t.Context(), c, ledger.Record{State: ledger.Delivered, AzureStatus: 200, AzureRunID: "42", Link: "https://dev.azure.com/o/p/_build/results?buildId=42"}); err != nil {
		t.Fatal(err)
	}
	items := e.srv.Items(table)
	if len(items) != 1 {
		t.Fatalf("%d items, want 1", len(items))
	}
	allowed := map[string]bool{"id": true, "state": true, "owner": true, "expiresAt": true, "deadline": true, "createdAt": true,
		"target": true, "runId": true, "azureStatus": true, "azureRunId": true, "link": true}
	for k := range items[0] {
		if !allowed[k] {
			t.Errorf("the record has attribute %q", k)
		}
	}
	exp, _ := items[0]["expiresAt"].(*types.AttributeValueMemberN)
	if want := e.now.Add(24 * time.Hour).Unix(); exp == nil || exp.Value != strconv.FormatInt(want, 10) {
		t.Errorf("expiresAt = %v, want %d (the claim + TTL, epoch seconds)", exp, want)
	}
	id, _ := items[0]["azureRunId"].(*types.AttributeValueMemberS)
	state, _ := items[0]["state"].(*types.AttributeValueMemberS)
	if id == nil || id.Value != "42" || state == nil || state.Value != string(ledger.Delivered) {
		t.Errorf("the record = %v, want it delivered with its Azure run id", items[0])
	}
	e.now = e.now.Add(25 * time.Hour)
	if n := e.srv.Sweep(e.now); n != 1 {
		t.Errorf("Sweep = %d, want the record deleted by DynamoDB's TTL", n)
	}
}

func TestKeys(t *testing.T) {
	if got := ledger.RunKey("r_abc"); got != "run#r_abc" {
		t.Errorf("RunKey = %q", got)
	}
	if got := ledger.EventKey("e-1"); got != "event#e-1" {
		t.Errorf("EventKey = %q", got)
	}
	body := []byte(`{"env":"prod"}`)
	k := ledger.SignatureKey("1700000000", body)
	if !strings.HasPrefix(k, "sig#1700000000#") || strings.Contains(k, "prod") || len(k) != len("sig#1700000000#")+32 {
		t.Errorf("SignatureKey = %q, want the timestamp and a hash of the body, never the body", k)
	}
	if ledger.SignatureKey("1700000000", []byte(`{"env":"test"}`)) == k {
		t.Errorf("two bodies, one key")
	}
	if ledger.SignatureKey("1700000001", body) == k {
		t.Errorf("two timestamps, one key")
	}
}

// A drain that sent nothing and could not give its record back hands the message on
// naming its claim: that copy takes the record from the claim, and nothing else does.
func TestTakeFromAnUnsentClaim(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	r := ledger.Record{Key: "run-unsent", Target: "deploy", Door: "webhook", RunID: "r_1"}
	c, err := e.l.Claim(ctx, r, e.now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	digest := "digest-of-a1"
	if err := e.l.Complete(ctx, c, ledger.Record{State: ledger.Queued, Digest: digest}); err != nil {
		t.Fatal(err)
	}
	take := ledger.Record{Key: r.Key, Target: r.Target, Door: r.Door, Digest: digest}
	first, err := e.l.Take(ctx, take, false, e.now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(2 * time.Minute) // the first drain's deadline passes: it reads "may have queued" now
	if _, err := e.l.Take(ctx, take, false, e.now.Add(time.Minute)); !errors.Is(err, ledger.ErrDuplicate) {
		t.Fatalf("Take without the unsent claim = %v, want %v", err, ledger.ErrDuplicate)
	}
	stranger := take
	stranger.Unsent = "0123456789abcdef01234567"
	if _, err := e.l.Take(ctx, stranger, false, e.now.Add(time.Minute)); !errors.Is(err, ledger.ErrDuplicate) {
		t.Fatalf("Take naming another claim = %v, want %v", err, ledger.ErrDuplicate)
	}
	copied := take
	copied.Unsent = first.Owner()
	second, err := e.l.Take(ctx, copied, false, e.now.Add(time.Minute))
	if err != nil {
		t.Fatalf("Take naming the unsent claim = %v, want the record", err)
	}
	if _, err := e.l.Take(ctx, copied, false, e.now.Add(time.Minute)); !errors.Is(err, ledger.ErrInProgress) {
		t.Fatalf("a second copy naming the same claim = %v, want %v: the claim is the copy's now", err, ledger.ErrInProgress)
	}
	if err := e.l.Complete(ctx, first, ledger.Record{State: ledger.Delivered}); !errors.Is(err, ledger.ErrNotOwner) {
		t.Fatalf("the unsent claim's Complete = %v, want %v", err, ledger.ErrNotOwner)
	}
	if err := e.l.Complete(ctx, second, ledger.Record{State: ledger.Delivered, AzureStatus: 200}); err != nil {
		t.Fatal(err)
	}
}

// An AWS event's queued write may land with its answer lost before any message is
// written: its claim releases the key all the same, for Lambda's retry. A claim that
// is not the record's releases nothing.
func TestReleaseFreesAKeyTheClaimPutInQueued(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c, err := e.l.Claim(ctx, ledger.Record{Key: "event-queued", Target: "deploy", Door: "webhook"}, e.now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.l.Complete(ctx, c, ledger.Record{State: ledger.Queued, Digest: "digest-of-empty"}); err != nil {
		t.Fatal(err)
	}
	if err := e.l.Release(ctx, ledger.Claim{Key: "event-queued"}); !errors.Is(err, ledger.ErrNotOwner) {
		t.Fatalf("Release by another = %v, want %v", err, ledger.ErrNotOwner)
	}
	if err := e.l.Release(ctx, c); err != nil {
		t.Fatalf("Release of the claim's queued record = %v", err)
	}
	if _, err := e.l.Claim(ctx, ledger.Record{Key: "event-queued", Target: "deploy", Door: "webhook"}, e.now.Add(time.Minute)); err != nil {
		t.Fatalf("Lambda's retry claims %v, want the key free", err)
	}
}

// A claim past its deadline is written may-have-queued before anyone is told so, and
// only while that claim holds it: a copy that took it back first wins, and once it is
// written no copy takes it.
func TestAbandonSettlesADeadClaimOnlyWhileItHoldsTheKey(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	digest := "digest-abandon"
	take := ledger.Record{Key: "run-abandon", Target: "deploy", Door: "webhook", Digest: digest}
	queueIt := func(key string) {
		c, err := e.l.Claim(ctx, ledger.Record{Key: key, Target: "deploy", Door: "webhook", RunID: "r_1"}, e.now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.l.Complete(ctx, c, ledger.Record{State: ledger.Queued, Digest: digest}); err != nil {
			t.Fatal(err)
		}
	}
	queueIt(take.Key)
	dead, err := e.l.Take(ctx, take, false, e.now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(2 * time.Minute)
	_, err = e.l.Take(ctx, take, false, e.now.Add(time.Minute))
	var h *ledger.Held
	if !errors.As(err, &h) || h.Record.Cause != "deadline" {
		t.Fatalf("Take past the deadline = %v, want the dead claim held", err)
	}
	if err := e.l.Abandon(ctx, h); err != nil {
		t.Fatalf("Abandon = %v", err)
	}
	copied := take
	copied.Unsent = dead.Owner()
	if _, err := e.l.Take(ctx, copied, false, e.now.Add(time.Minute)); !errors.Is(err, ledger.ErrDuplicate) {
		t.Fatalf("a copy naming the dead claim after Abandon = %v, want %v", err, ledger.ErrDuplicate)
	}
	if got := held(t, func() error { _, err := e.l.Take(ctx, take, false, e.now.Add(time.Minute)); return err }(), ledger.ErrDuplicate); got.State != ledger.MayHaveQueued {
		t.Fatalf("the record after Abandon: %+v, want mayHaveQueued", got)
	}

	// A copy takes the key back before the dead claim is abandoned: Abandon changes nothing.
	take.Key = "run-abandon-late"
	queueIt(take.Key)
	dead, err = e.l.Take(ctx, take, false, e.now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(2 * time.Minute)
	_, err = e.l.Take(ctx, take, false, e.now.Add(time.Minute))
	if !errors.As(err, &h) {
		t.Fatalf("Take past the deadline = %v", err)
	}
	copied = take
	copied.Unsent = dead.Owner()
	if _, err := e.l.Take(ctx, copied, false, e.now.Add(time.Minute)); err != nil {
		t.Fatalf("the copy = %v", err)
	}
	if err := e.l.Abandon(ctx, h); !errors.Is(err, ledger.ErrNotOwner) {
		t.Fatalf("Abandon after the copy took it = %v, want %v", err, ledger.ErrNotOwner)
	}
}
