package dynamotest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/ledger"
)

// twin is a ledger.DB that sends each call to moto and to this server alike, and fails
// the test where their answers differ: the error code, and the item that came back (the
// old item of a ConditionalCheckFailedException, or GetItem's). The ledger sees this
// server's answer.
type twin struct {
	t          *testing.T
	moto, ours *dynamodb.Client
	step       string // what the test is doing, for its messages
}

// answer is what a call returned, as the two backends are compared.
type answer struct{ code, item, message string }

func answerOf(item record, err error) answer {
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		item = failed.Item
	}
	return answer{code: errorCode(err), item: show(item), message: errorMessage(err)}
}

// both makes one call against each backend and compares the answers.
func both[O any](d *twin, call func(*dynamodb.Client) (O, error), item func(O) record) (O, error) {
	d.t.Helper()
	mOut, mErr := call(d.moto)
	out, err := call(d.ours)
	var mItem, oItem record
	if mErr == nil {
		mItem = item(mOut)
	}
	if err == nil {
		oItem = item(out)
	}
	want, got := answerOf(mItem, mErr), answerOf(oItem, err)
	switch {
	case got.code != want.code || got.item != want.item:
		d.t.Errorf("%s:\n  this server: %s %s %q\n  moto:        %s %s %q", d.step, got.code, got.item, got.message, want.code, want.item, want.message)
	case got.message != want.message:
		d.t.Logf("%s: both %s; messages differ:\n  this server: %q\n  moto:        %q", d.step, got.code, got.message, want.message)
	}
	return out, err
}

func none[O any](O) record { return nil }

func (d *twin) PutItem(ctx context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return both(d, func(c *dynamodb.Client) (*dynamodb.PutItemOutput, error) { return c.PutItem(ctx, in) }, none)
}

func (d *twin) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return both(d, func(c *dynamodb.Client) (*dynamodb.UpdateItemOutput, error) { return c.UpdateItem(ctx, in) }, none)
}

func (d *twin) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return both(d, func(c *dynamodb.Client) (*dynamodb.DeleteItemOutput, error) { return c.DeleteItem(ctx, in) }, none)
}

func (d *twin) GetItem(ctx context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return both(d, func(c *dynamodb.Client) (*dynamodb.GetItemOutput, error) { return c.GetItem(ctx, in) },
		func(o *dynamodb.GetItemOutput) record { return o.Item })
}

// get reads a record through both backends, as the ledger reads one.
func (d *twin) get(id string) record {
	d.t.Helper()
	out, err := d.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(tableName), Key: key(id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		d.t.Fatalf("%s: %v", d.step, err)
	}
	return out.Item
}

// startMoto runs moto's server with the ledger's table until the test ends, or skips
// the test where moto is not installed.
func startMoto(t *testing.T) *dynamodb.Client {
	t.Helper()
	url, stop, err := awstest.StartMoto(t.TempDir())
	if errors.Is(err, awstest.ErrNoMoto) {
		t.Skip("moto interop skipped: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	c := dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	ctx := context.Background()
	if _, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(tableName),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}); err != nil {
		t.Fatalf("moto: CreateTable = %v", err)
	}
	if _, err := c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(tableName),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("expiresAt"), Enabled: aws.Bool(true)}}); err != nil {
		t.Fatalf("moto: UpdateTimeToLive = %v", err)
	}
	return c
}

// TestAgainstMoto runs the ledger over moto (a DynamoDB nobody here wrote) and this
// server at once, every call to both, and wants the same answers: each shape the ledger
// writes, then requests both must refuse.
func TestAgainstMoto(t *testing.T) {
	motoClient := startMoto(t)
	srv, ours := newServer(t)
	srv.EnableTTL(tableName, "expiresAt")
	db := &twin{t: t, moto: motoClient, ours: ours}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := &ledger.Ledger{DB: db, Table: tableName, TTL: time.Hour, Now: func() time.Time { return now }}
	ctx := context.Background()
	deadline := now.Add(time.Minute)
	step := func(name string) { db.step = name }

	step("claim a free key")
	c1, err := l.Claim(ctx, ledger.Record{Key: "run-1", Target: "hook", RunID: "r1"}, deadline)
	if err != nil {
		t.Fatalf("%s: %v", db.step, err)
	}
	step("claim a held key, with the old item (ALL_OLD)")
	var held *ledger.Held
	if _, err := l.Claim(ctx, ledger.Record{Key: "run-1"}, deadline); !errors.As(err, &held) || !errors.Is(err, ledger.ErrInProgress) {
		t.Errorf("%s: %v, want ErrInProgress", db.step, err)
	}
	step("complete as another invocation")
	if err := l.Complete(ctx, ledger.Claim{Key: "run-1"}, ledger.Record{State: ledger.Delivered, AzureStatus: 200}); !errors.Is(err, ledger.ErrNotOwner) {
		t.Errorf("%s: %v, want ErrNotOwner", db.step, err)
	}
	step("complete as the owner")
	if err := l.Complete(ctx, c1, ledger.Record{State: ledger.Delivered, AzureStatus: 200, AzureRunID: "42", Link: "https://x/42"}); err != nil {
		t.Errorf("%s: %v", db.step, err)
	}
	step("get the completed record")
	if got := show(db.get("run-1")); got == "{}" {
		t.Errorf("%s: nothing", db.step)
	}
	step("claim a delivered key")
	if _, err := l.Claim(ctx, ledger.Record{Key: "run-1"}, deadline); !errors.Is(err, ledger.ErrDuplicate) {
		t.Errorf("%s: %v, want ErrDuplicate", db.step, err)
	}
	step("release as another invocation")
	if err := l.Release(ctx, ledger.Claim{Key: "run-1"}); !errors.Is(err, ledger.ErrNotOwner) {
		t.Errorf("%s: %v, want ErrNotOwner", db.step, err)
	}
	step("claim an expired key (TTL not yet swept)")
	now = now.Add(2 * time.Hour)
	c2, err := l.Claim(ctx, ledger.Record{Key: "run-1", Target: "hook"}, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("%s: %v", db.step, err)
	}
	step("release as the owner")
	if err := l.Release(ctx, c2); err != nil {
		t.Errorf("%s: %v", db.step, err)
	}
	step("get the released key")
	if got := show(db.get("run-1")); got != "{}" {
		t.Errorf("%s: %s, want nothing", db.step, got)
	}

	step("refuse a free key, final")
	if err := l.Refuse(ctx, ledger.Record{Key: "run-7", Target: "hook", RunID: "r7", Cause: "azdo: throttled"}); err != nil {
		t.Errorf("%s: %v", db.step, err)
	}
	step("refuse a refused key: the first answer")
	if err := l.Refuse(ctx, ledger.Record{Key: "run-7"}); !errors.As(err, &held) || held.Record.State != ledger.Refused {
		t.Errorf("%s: %v, want the refused record", db.step, err)
	}
	step("settle a claim that never landed")
	if err := l.Settle(ctx, ledger.Claim{Key: "run-8"}, ledger.Record{State: ledger.Delivered, AzureStatus: 200, Target: "hook", Door: "webhook", RunID: "r8"}); err != nil {
		t.Errorf("%s: %v", db.step, err)
	}
	step("settle a key someone else holds")
	if err := l.Settle(ctx, ledger.Claim{Key: "run-8"}, ledger.Record{State: ledger.Refused}); !errors.Is(err, ledger.ErrNotOwner) {
		t.Errorf("%s: %v, want ErrNotOwner", db.step, err)
	}
	step("claim, queue, take and complete a queued delivery")
	c3, err := l.Claim(ctx, ledger.Record{Key: "run-9", Target: "hook", Door: "webhook"}, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("%s: %v", db.step, err)
	}
	digest := "digest-of-a1"
	if err := l.Complete(ctx, c3, ledger.Record{State: ledger.Queued, AzureStatus: 429, Digest: digest}); err != nil {
		t.Fatalf("%s: %v", db.step, err)
	}
	if _, err := l.Take(ctx, ledger.Record{Key: "run-9", Target: "hook", Door: "webhook", Digest: "digest-of-a2"}, false, now.Add(time.Minute)); !errors.Is(err, ledger.ErrNotThis) {
		t.Errorf("%s, another body: %v, want ErrNotThis", db.step, err)
	}
	if _, err := l.Take(ctx, ledger.Record{Key: "run-9", Target: "other", Door: "webhook", Digest: digest}, false, now.Add(time.Minute)); !errors.Is(err, ledger.ErrNotThis) {
		t.Errorf("%s, another target: %v, want ErrNotThis", db.step, err)
	}
	c4, err := l.Take(ctx, ledger.Record{Key: "run-9", Target: "hook", Door: "webhook", Digest: digest}, false, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("%s: %v", db.step, err)
	}
	if _, err := l.Take(ctx, ledger.Record{Key: "run-9", Target: "hook", Door: "webhook", Digest: digest}, false, now.Add(time.Minute)); !errors.Is(err, ledger.ErrInProgress) {
		t.Errorf("%s, taken twice: %v, want ErrInProgress", db.step, err)
	}
	if _, err := l.Take(ctx, ledger.Record{Key: "run-9", Target: "hook", Door: "webhook", Digest: digest, Unsent: "0123456789abcdef01234567"}, false, now.Add(time.Minute)); !errors.Is(err, ledger.ErrInProgress) {
		t.Errorf("%s, a copy naming another claim: %v, want ErrInProgress", db.step, err)
	}
	c4, err = l.Take(ctx, ledger.Record{Key: "run-9", Target: "hook", Door: "webhook", Digest: digest, Unsent: c4.Owner()}, false, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("%s, a copy naming the unsent claim: %v", db.step, err)
	}
	if err := l.Complete(ctx, c4, ledger.Record{State: ledger.Expired, Cause: "age", Expires: now.Add(15 * 24 * time.Hour)}); err != nil {
		t.Errorf("%s, expire: %v", db.step, err)
	}
	if _, err := l.Take(ctx, ledger.Record{Key: "run-9", Target: "hook", Door: "webhook", Digest: digest}, false, now.Add(time.Minute)); !errors.Is(err, ledger.ErrDuplicate) {
		t.Errorf("%s, an expired key, no redrive: %v, want ErrDuplicate", db.step, err)
	}
	if _, err := l.Take(ctx, ledger.Record{Key: "run-9", Target: "hook", Door: "webhook", Digest: digest}, true, now.Add(time.Minute)); err != nil {
		t.Errorf("%s, an expired key, redriven: %v", db.step, err)
	}
	step("abandon a claim past its deadline")
	c5, err := l.Claim(ctx, ledger.Record{Key: "run-11", Target: "hook", Door: "webhook"}, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("%s: %v", db.step, err)
	}
	if err := l.Complete(ctx, c5, ledger.Record{State: ledger.Queued, Digest: digest}); err != nil {
		t.Fatalf("%s: %v", db.step, err)
	}
	if _, err := l.Take(ctx, ledger.Record{Key: "run-11", Target: "hook", Door: "webhook", Digest: digest}, false, now.Add(-time.Minute)); err != nil {
		t.Fatalf("%s: %v", db.step, err)
	}
	_, err = l.Take(ctx, ledger.Record{Key: "run-11", Target: "hook", Door: "webhook", Digest: digest}, false, now.Add(time.Minute))
	var dead *ledger.Held
	if !errors.As(err, &dead) || dead.Record.Cause != "deadline" {
		t.Fatalf("%s: %v, want the dead claim", db.step, err)
	}
	if err := l.Abandon(ctx, dead); err != nil {
		t.Errorf("%s: %v", db.step, err)
	}
	if err := l.Abandon(ctx, dead); !errors.Is(err, ledger.ErrNotOwner) {
		t.Errorf("%s, twice: %v, want ErrNotOwner", db.step, err)
	}
	step("take a key with no record")
	if _, err := l.Take(ctx, ledger.Record{Key: "run-10", Target: "hook", Door: "webhook", Digest: digest}, false, now.Add(time.Minute)); !errors.Is(err, ledger.ErrGone) {
		t.Errorf("%s: %v, want ErrGone", db.step, err)
	}

	// Refusals: the same requests, both refused alike.
	claim := func(id string) *dynamodb.PutItemInput {
		return &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: record{"id": s(id), "state": s("inProgress")},
			ConditionExpression: aws.String("attribute_not_exists(#id)"), ExpressionAttributeNames: map[string]string{"#id": "id"}}
	}
	for _, tt := range []struct {
		name string
		in   *dynamodb.PutItemInput
	}{
		{"an unused name", func() *dynamodb.PutItemInput {
			in := claim("run-2")
			in.ExpressionAttributeNames["#unused"] = "x"
			return in
		}()},
		{"a reserved word", func() *dynamodb.PutItemInput {
			in := claim("run-3")
			in.ConditionExpression, in.ExpressionAttributeNames = aws.String("attribute_not_exists(state)"), nil
			return in
		}()},
		{"an item without its key", func() *dynamodb.PutItemInput { in := claim("run-4"); delete(in.Item, "id"); return in }()},
		{"a Number key", func() *dynamodb.PutItemInput { in := claim("run-5"); in.Item["id"] = n("5"); return in }()},
		{"an empty key", claim("")},
		{"redundant parentheses", func() *dynamodb.PutItemInput {
			in := claim("run-6")
			in.ConditionExpression = aws.String("((attribute_not_exists(#id)))")
			return in
		}()},
		{"an unknown table", func() *dynamodb.PutItemInput { in := claim("run-7"); in.TableName = aws.String("other"); return in }()},
	} {
		step(tt.name)
		if _, err := db.PutItem(ctx, tt.in); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	step("a Key with another attribute")
	if _, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tableName), Key: record{"id": s("run-1"), "state": s("x")}}); err == nil {
		t.Errorf("%s: accepted", db.step)
	}
	step("an update of the key")
	if _, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(tableName), Key: key("run-8"),
		UpdateExpression: aws.String("SET id = :v"), ExpressionAttributeValues: record{":v": s("x")}}); err == nil {
		t.Errorf("%s: accepted", db.step)
	}

	// Where moto 5.2 accepts what DynamoDB refuses, this server must refuse as DynamoDB does.
	for _, tt := range []struct {
		why  string
		call func(*dynamodb.Client) error
	}{
		{"moto checks only the names a PutItem leaves unused, DynamoDB the values too", func(c *dynamodb.Client) error {
			in := claim("run-9")
			in.ExpressionAttributeValues = record{":unused": s("x")}
			_, err := c.PutItem(ctx, in)
			return err
		}},
		{"moto reads a Key of the wrong type, DynamoDB refuses it as not matching the schema", func(c *dynamodb.Client) error {
			_, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tableName), Key: record{"id": n("1")}})
			return err
		}},
	} {
		mErr, err := tt.call(motoClient), tt.call(ours)
		if errorCode(err) != "ValidationException" {
			t.Errorf("%s: this server: %v, want ValidationException", tt.why, err)
		}
		t.Logf("%s: moto answered %v; this server %q", tt.why, mErr, errorMessage(err))
	}
}
