package dynamotest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
)

const tableName = "ledger"

// The test clock: the ledger's records expire in epoch seconds, in-progress claims in
// epoch milliseconds, as Powertools writes them.
var (
	now   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	nowS  = strconv.FormatInt(now.Unix(), 10)
	nowMS = strconv.FormatInt(now.UnixMilli(), 10)
)

// newServer starts a server with the ledger's table, keyed by id, until the test ends.
func newServer(t *testing.T) *dynamotest.Server {
	t.Helper()
	srv := dynamotest.New()
	t.Cleanup(srv.Close)
	srv.CreateTable(tableName, "id")
	return srv
}

// newClient is the real SDK client with one attempt, so that a test sees each answer.
func newClient(srv *dynamotest.Server, opts ...func(*dynamodb.Options)) *dynamodb.Client {
	one := func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }
	return srv.Client(append([]func(*dynamodb.Options){one}, opts...)...)
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

type record = map[string]types.AttributeValue

func key(id string) record { return record{"id": s(id)} }

// show writes an item compactly and deterministically, for failure messages.
func show(v any) string {
	switch v := v.(type) {
	case nil:
		return "nil"
	case record:
		if v == nil {
			return "nil"
		}
		parts := make([]string, 0, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			parts = append(parts, k+":"+show(v[k]))
		}
		return "{" + strings.Join(parts, " ") + "}"
	case *types.AttributeValueMemberS:
		return strconv.Quote(v.Value)
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberB:
		return fmt.Sprintf("b%x", v.Value)
	case *types.AttributeValueMemberBOOL:
		return strconv.FormatBool(v.Value)
	case *types.AttributeValueMemberNULL:
		return "null"
	case *types.AttributeValueMemberSS:
		return fmt.Sprintf("SS%q", v.Value)
	case *types.AttributeValueMemberNS:
		return fmt.Sprintf("NS%v", v.Value)
	case *types.AttributeValueMemberBS:
		return fmt.Sprintf("BS%x", v.Value)
	case *types.AttributeValueMemberL:
		parts := make([]string, len(v.Value))
		for i, e := range v.Value {
			parts[i] = show(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case *types.AttributeValueMemberM:
		return show(record(v.Value))
	}
	return fmt.Sprintf("%T", v)
}

// errorCode is the SDK's error code of err, "" for none.
func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func errorMessage(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorMessage()
	}
	return ""
}

// claim is the Powertools idempotency claim of a run: create the record, or take over
// one that expired or whose in-progress claim lapsed; otherwise fail with the old record.
func claim(id string) *dynamodb.PutItemInput {
	return &dynamodb.PutItemInput{
		TableName: aws.String(tableName),
		Item: record{
			"id":                     s(id),
			"status":                 s("INPROGRESS"),
			"expiration":             n(strconv.FormatInt(now.Add(time.Hour).Unix(), 10)),
			"in_progress_expiration": n(strconv.FormatInt(now.Add(time.Minute).UnixMilli(), 10)),
		},
		ConditionExpression: aws.String("attribute_not_exists(#id) OR #expiry < :now OR " +
			"(#status = :inprogress AND #in_progress_expiry < :now_ms)"),
		ExpressionAttributeNames: map[string]string{
			"#id": "id", "#expiry": "expiration", "#status": "status", "#in_progress_expiry": "in_progress_expiration",
		},
		ExpressionAttributeValues:           record{":now": n(nowS), ":now_ms": n(nowMS), ":inprogress": s("INPROGRESS")},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}

// complete is the Powertools completion: the record becomes COMPLETED with the answer,
// if it is still in progress.
func complete(id string) *dynamodb.UpdateItemInput {
	return &dynamodb.UpdateItemInput{
		TableName:                aws.String(tableName),
		Key:                      key(id),
		UpdateExpression:         aws.String("SET #status = :completed, #data = :data"),
		ConditionExpression:      aws.String("#status = :inprogress"),
		ExpressionAttributeNames: map[string]string{"#status": "status", "#data": "data"},
		ExpressionAttributeValues: record{
			":completed": s("COMPLETED"), ":data": s(`{"queued":true}`), ":inprogress": s("INPROGRESS"),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}

func put(t *testing.T, c *dynamodb.Client, it record) {
	t.Helper()
	if _, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: it}); err != nil {
		t.Fatalf("PutItem(%s) = %v", show(it), err)
	}
}

func get(t *testing.T, c *dynamodb.Client, id string) record {
	t.Helper()
	out, err := c.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(tableName), Key: key(id), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("GetItem(%s) = %v", id, err)
	}
	return out.Item
}

func TestAConditionalPutSucceedsOnceThenFailsWithTheOldItem(t *testing.T) {
	srv := newServer(t)
	c := newClient(srv)
	ctx := context.Background()
	first := claim("run-1")
	if _, err := c.PutItem(ctx, first); err != nil {
		t.Fatalf("first claim: PutItem = %v", err)
	}

	second := claim("run-1")
	second.Item["status"] = s("SOMEONE-ELSE")
	_, err := c.PutItem(ctx, second)
	var failed *types.ConditionalCheckFailedException
	if !errors.As(err, &failed) {
		t.Fatalf("second claim: PutItem = %v, want a ConditionalCheckFailedException", err)
	}
	if got := failed.ErrorMessage(); got != "The conditional request failed" {
		t.Errorf("message = %q", got)
	}
	if !reflect.DeepEqual(failed.Item, first.Item) {
		t.Errorf("ConditionalCheckFailedException.Item = %s, want the first claim %s", show(failed.Item), show(first.Item))
	}
	if got := get(t, c, "run-1"); !reflect.DeepEqual(got, first.Item) {
		t.Errorf("after the refused claim: item = %s, want it unchanged %s", show(got), show(first.Item))
	}

	// Without ALL_OLD the failure carries no item, as in DynamoDB.
	second.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureNone
	if _, err := c.PutItem(ctx, second); !errors.As(err, &failed) || failed.Item != nil {
		t.Errorf("without ALL_OLD: PutItem = %v, Item %s, want a ConditionalCheckFailedException without the item", err, show(failed.Item))
	}
}

func TestTheClaimTakesOverOnlyARecordThatExpiredOrWhoseClaimLapsed(t *testing.T) {
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	existing := func(status string, expiry, inProgressExpiry time.Time) record {
		return record{
			"id": s("run-1"), "status": s(status),
			"expiration":             n(strconv.FormatInt(expiry.Unix(), 10)),
			"in_progress_expiration": n(strconv.FormatInt(inProgressExpiry.UnixMilli(), 10)),
		}
	}
	tests := []struct {
		name     string
		existing record // nil for none
		wantWin  bool
	}{
		{"a first claim wins", nil, true},
		{"a completed, unexpired record refuses the claim", existing("COMPLETED", future, past), false},
		{"a completed record past its expiry is taken over though TTL has not deleted it", existing("COMPLETED", past, past), true},
		{"a claim in progress refuses the claim", existing("INPROGRESS", future, future), false},
		{"a claim in progress that lapsed is taken over", existing("INPROGRESS", future, past), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			srv.EnableTTL(tableName, "expiration")
			c := newClient(srv)
			if tt.existing != nil {
				put(t, c, tt.existing)
			}
			_, err := c.PutItem(context.Background(), claim("run-1"))
			var failed *types.ConditionalCheckFailedException
			switch {
			case tt.wantWin && err != nil:
				t.Fatalf("PutItem = %v, want the claim to win", err)
			case !tt.wantWin && !errors.As(err, &failed):
				t.Fatalf("PutItem = %v, want a ConditionalCheckFailedException", err)
			case !tt.wantWin && !reflect.DeepEqual(failed.Item, tt.existing):
				t.Errorf("ConditionalCheckFailedException.Item = %s, want %s", show(failed.Item), show(tt.existing))
			}
		})
	}
}

// TestConditionsEvaluateAsInDynamoDB runs condition expressions against one item: a
// PutItem of the same item succeeds when the condition holds.
func TestConditionsEvaluateAsInDynamoDB(t *testing.T) {
	stored := record{
		"id": s("x"), "status": s("INPROGRESS"), "n": n("10"), "str": s("abc"), "bin": &types.AttributeValueMemberB{Value: []byte{1, 2, 3}},
		"ok": &types.AttributeValueMemberBOOL{Value: true}, "nothing": &types.AttributeValueMemberNULL{Value: true},
		"ss": &types.AttributeValueMemberSS{Value: []string{"a", "b"}}, "ns": &types.AttributeValueMemberNS{Value: []string{"1", "2"}},
		"list": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("a"), n("1")}},
		"map":  &types.AttributeValueMemberM{Value: record{"k": s("v"), "deep": &types.AttributeValueMemberM{Value: record{"x": n("1")}}}},
	}
	names := map[string]string{}
	for k := range stored {
		names["#"+k] = k
	}
	values := record{
		":inprogress": s("INPROGRESS"), ":ten": n("10.0"), ":nine": n("9"), ":five": n("5"), ":one": n("1"), ":two": n("2"),
		":three": n("3"), ":z": s("z"), ":a": s("a"), ":ab": s("ab"), ":b": s("b"), ":abd": s("abd"),
		":bin": &types.AttributeValueMemberB{Value: []byte{1, 2, 3}}, ":ff": &types.AttributeValueMemberB{Value: []byte{0xff}},
		":true": &types.AttributeValueMemberBOOL{Value: true}, ":null": &types.AttributeValueMemberNULL{Value: true},
		":ba": &types.AttributeValueMemberSS{Value: []string{"b", "a"}}, ":N": s("N"), ":S": s("S"),
		":list": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("a"), n("1.0")}},
	}
	tests := []struct {
		cond string
		want bool
	}{
		{"#status = :inprogress", true},
		{"#n = :ten", true},         // numbers compare by value: 10 = 10.0
		{"#n > :nine", true},        // and not as strings: "10" < "9"
		{"#n < :z", false},          // different types compare false
		{"#n <> :z", true},          // "<>" is not "="
		{"#missing = :z", false},    // a missing attribute equals nothing
		{"#missing <> :z", true},    // and differs from everything
		{"#missing < :z", false},    // and orders with nothing
		{"NOT #missing < :z", true}, // so NOT flips the false
		{"#str < :abd", true},       // strings order by UTF-8 bytes
		{"#bin < :ff", true},        // binary by unsigned bytes
		{"#bin = :bin", true},
		{"#ok = :true", true},
		{"#nothing = :null", true},
		{"#ss = :ba", true},     // sets are unordered
		{"#list = :list", true}, // lists compare element by element
		{"#n BETWEEN :five AND :ten", true},
		{"#n BETWEEN :one AND :five", false},
		{"#n IN (:one, :ten)", true},
		{"NOT #n IN (:one, :two)", true},
		{"begins_with(#str, :ab)", true},
		{"begins_with(#n, :ab)", false}, // a Number has no prefix
		{"contains(#str, :b)", true},
		{"contains(#ss, :a)", true},
		{"contains(#ns, :one)", true},
		{"contains(#list, :one)", true},
		{"contains(#list, :z)", false},
		{"size(#str) = :three", true},
		{"size(#ss) = :two", true},
		{"size(#map) = :two", true},
		{"size(#list) > :one", true},
		{"size(#n) = :two", false}, // a Number has no size
		{"attribute_type(#n, :N)", true},
		{"attribute_type(#n, :S)", false},
		{"attribute_exists(#map.deep.x)", true},
		{"attribute_exists(#map.nope)", false},
		{"attribute_not_exists(#missing)", true},
		{"#map.deep.x = :one", true},
		{"#map.k = :z", false},
		{"#list[1] = :one", true},
		{"#list[5] = :one", false},
		{"#n = :one OR #n = :ten AND #status = :z", false}, // AND binds tighter than OR
		{"(#n = :one OR #n = :ten) AND #status = :inprogress", true},
		{"#n = :ten AND (#status = :z OR #ok = :true)", true},
		{"NOT (#n = :ten)", false},
		{"#n = :ten and #status = :inprogress", true}, // keywords ignore case
	}
	srv := newServer(t)
	c := newClient(srv)
	put(t, c, stored)
	placeholder := regexp.MustCompile(`[#:]\w+`)
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			in := &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: stored, ConditionExpression: aws.String(tt.cond)}
			for _, p := range placeholder.FindAllString(tt.cond, -1) {
				if p[0] == '#' {
					if in.ExpressionAttributeNames == nil {
						in.ExpressionAttributeNames = map[string]string{}
					}
					in.ExpressionAttributeNames[p] = cmpOr(names[p], p[1:])
				} else {
					if in.ExpressionAttributeValues == nil {
						in.ExpressionAttributeValues = record{}
					}
					in.ExpressionAttributeValues[p] = values[p]
				}
			}
			_, err := c.PutItem(context.Background(), in)
			var failed *types.ConditionalCheckFailedException
			if got := err == nil; got != tt.want || (err != nil && !errors.As(err, &failed)) {
				t.Errorf("condition %q = %v (%v), want %v", tt.cond, got, err, tt.want)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestUpdateItemAppliesItsExpressionAsDynamoDBDoes(t *testing.T) {
	base := record{
		"id": s("run-1"), "status": s("INPROGRESS"), "count": n("1"), "tags": &types.AttributeValueMemberSS{Value: []string{"a", "b"}},
		"list": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("x"), s("y"), s("z")}},
		"map":  &types.AttributeValueMemberM{Value: record{"k": s("v")}},
	}
	with := func(changes record, remove ...string) record {
		r := maps.Clone(base)
		maps.Copy(r, changes)
		for _, k := range remove {
			delete(r, k)
		}
		return r
	}
	tests := []struct {
		name         string
		existing     record // nil: no item
		expr         string
		cond         string
		names        map[string]string
		values       record
		returnValues types.ReturnValue
		wantItem     record
		wantAttrs    record
	}{
		{name: "the completion sets the status and returns the new item",
			existing: base, expr: "SET #status = :completed, #data = :data", cond: "#status = :inprogress",
			names: map[string]string{"#status": "status", "#data": "data"}, values: record{":completed": s("COMPLETED"), ":data": s("answer"), ":inprogress": s("INPROGRESS")},
			returnValues: types.ReturnValueAllNew,
			wantItem:     with(record{"status": s("COMPLETED"), "data": s("answer")}),
			wantAttrs:    with(record{"status": s("COMPLETED"), "data": s("answer")})},
		{name: "an update of a missing item creates it from its key",
			expr: "SET #status = :completed", names: map[string]string{"#status": "status"}, values: record{":completed": s("COMPLETED")},
			returnValues: types.ReturnValueAllOld,
			wantItem:     record{"id": s("run-1"), "status": s("COMPLETED")}},
		{name: "a counter adds exactly",
			existing: base, expr: "SET #c = #c + :tenth", names: map[string]string{"#c": "count"}, values: record{":tenth": n("0.1")},
			returnValues: types.ReturnValueUpdatedNew,
			wantItem:     with(record{"count": n("1.1")}), wantAttrs: record{"count": n("1.1")}},
		{name: "a subtraction goes below zero",
			existing: base, expr: "SET #c = #c - :two", names: map[string]string{"#c": "count"}, values: record{":two": n("2")},
			returnValues: types.ReturnValueUpdatedOld,
			wantItem:     with(record{"count": n("-1")}), wantAttrs: record{"count": n("1")}},
		{name: "if_not_exists keeps a value that exists",
			existing: base, expr: "SET #c = if_not_exists(#c, :zero), started = if_not_exists(started, :zero)",
			names: map[string]string{"#c": "count"}, values: record{":zero": n("0")},
			wantItem: with(record{"started": n("0")})},
		{name: "operands are read before the update: SET swaps",
			existing: base, expr: "SET #s = #c, #c = #s", names: map[string]string{"#s": "status", "#c": "count"},
			wantItem: with(record{"status": n("1"), "count": s("INPROGRESS")})},
		{name: "REMOVE deletes attributes and list elements by their old indexes",
			existing: base, expr: "REMOVE #s, #l[0], #l[2], nope", names: map[string]string{"#s": "status", "#l": "list"},
			wantItem: with(record{"list": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("y")}}}, "status")},
		{name: "list_append and a nested SET",
			existing: base, expr: "SET #l = list_append(#l, :more), #m.k2 = :v", names: map[string]string{"#l": "list", "#m": "map"},
			values: record{":more": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("w")}}, ":v": s("v2")},
			wantItem: with(record{
				"list": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("x"), s("y"), s("z"), s("w")}},
				"map":  &types.AttributeValueMemberM{Value: record{"k": s("v"), "k2": s("v2")}},
			})},
		{name: "an index past a list's end appends",
			existing: base, expr: "SET #l[10] = :v", names: map[string]string{"#l": "list"}, values: record{":v": s("end")},
			wantItem: with(record{"list": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("x"), s("y"), s("z"), s("end")}}})},
		{name: "ADD adds to a number, creates a missing one and joins sets",
			existing: base, expr: "ADD #c :two, fresh :two, tags :tags", names: map[string]string{"#c": "count"},
			values:   record{":two": n("2"), ":tags": &types.AttributeValueMemberSS{Value: []string{"b", "c"}}},
			wantItem: with(record{"count": n("3"), "fresh": n("2"), "tags": &types.AttributeValueMemberSS{Value: []string{"a", "b", "c"}}})},
		{name: "DELETE takes elements out of a set and an emptied set away",
			existing: base, expr: "DELETE tags :ab", values: record{":ab": &types.AttributeValueMemberSS{Value: []string{"a", "b"}}},
			wantItem: with(nil, "tags")},
		{name: "UPDATED_NEW returns only the paths the update named",
			existing: base, expr: "SET #m.k = :v", names: map[string]string{"#m": "map"}, values: record{":v": s("new")},
			returnValues: types.ReturnValueUpdatedNew,
			wantItem:     with(record{"map": &types.AttributeValueMemberM{Value: record{"k": s("new")}}}),
			wantAttrs:    record{"map": &types.AttributeValueMemberM{Value: record{"k": s("new")}}}},
		{name: "an UpdateItem with no expression creates the bare key",
			wantItem: record{"id": s("run-1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			c := newClient(srv)
			if tt.existing != nil {
				put(t, c, tt.existing)
			}
			in := &dynamodb.UpdateItemInput{
				TableName: aws.String(tableName), Key: key("run-1"),
				ExpressionAttributeNames: tt.names, ExpressionAttributeValues: tt.values, ReturnValues: tt.returnValues,
			}
			if tt.expr != "" {
				in.UpdateExpression = aws.String(tt.expr)
			}
			if tt.cond != "" {
				in.ConditionExpression = aws.String(tt.cond)
			}
			out, err := c.UpdateItem(context.Background(), in)
			if err != nil {
				t.Fatalf("UpdateItem(%q) = %v", tt.expr, err)
			}
			if got := get(t, c, "run-1"); !reflect.DeepEqual(got, tt.wantItem) {
				t.Errorf("item = %s\nwant %s", show(got), show(tt.wantItem))
			}
			if !reflect.DeepEqual(out.Attributes, tt.wantAttrs) {
				t.Errorf("Attributes = %s\nwant %s", show(out.Attributes), show(tt.wantAttrs))
			}
		})
	}
}

func TestTheCompletionAndTheReleaseAreConditional(t *testing.T) {
	srv := newServer(t)
	c := newClient(srv)
	ctx := context.Background()
	if _, err := c.PutItem(ctx, claim("run-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateItem(ctx, complete("run-1")); err != nil {
		t.Fatalf("first completion: UpdateItem = %v", err)
	}
	done := get(t, c, "run-1")

	// A second completion finds the record COMPLETED and fails with it.
	_, err := c.UpdateItem(ctx, complete("run-1"))
	var failed *types.ConditionalCheckFailedException
	if !errors.As(err, &failed) || !reflect.DeepEqual(failed.Item, done) {
		t.Fatalf("second completion: UpdateItem = %v, Item %s, want a ConditionalCheckFailedException with %s", err, show(failed.Item), show(done))
	}
	// A completion of a record nobody claimed fails and creates nothing.
	if _, err := c.UpdateItem(ctx, complete("run-2")); !errors.As(err, &failed) || failed.Item != nil {
		t.Errorf("completion without a claim: UpdateItem = %v, want a ConditionalCheckFailedException without an item", err)
	}
	if got := get(t, c, "run-2"); got != nil {
		t.Errorf("after the failed completion: run-2 = %s, want none", show(got))
	}

	// The release of a claim deletes the record only while it is in progress.
	release := &dynamodb.DeleteItemInput{
		TableName: aws.String(tableName), Key: key("run-1"),
		ConditionExpression:       aws.String("#status = :inprogress"),
		ExpressionAttributeNames:  map[string]string{"#status": "status"},
		ExpressionAttributeValues: record{":inprogress": s("INPROGRESS")},
		ReturnValues:              types.ReturnValueAllOld,
	}
	if _, err := c.DeleteItem(ctx, release); !errors.As(err, &failed) {
		t.Fatalf("release of a completed record: DeleteItem = %v, want a ConditionalCheckFailedException", err)
	}
	if _, err := c.PutItem(ctx, claim("run-3")); err != nil {
		t.Fatal(err)
	}
	release.Key = key("run-3")
	out, err := c.DeleteItem(ctx, release)
	if err != nil {
		t.Fatalf("release of a claim: DeleteItem = %v", err)
	}
	if !reflect.DeepEqual(out.Attributes, claim("run-3").Item) {
		t.Errorf("DeleteItem ALL_OLD = %s, want the claim", show(out.Attributes))
	}
	if got := get(t, c, "run-3"); got != nil {
		t.Errorf("after the release: run-3 = %s, want none", show(got))
	}
}

func TestGetItemReturnsWhatWasStoredInDynamoDBsCanonicalForm(t *testing.T) {
	srv := newServer(t)
	c := newClient(srv)
	put(t, c, record{
		"id":     s("run-1"),
		"amount": n("0012.500"), "big": n("1E+3"), "small": n("-.25"),
		"blob":   &types.AttributeValueMemberB{Value: []byte{0, 1, 0xfe}},
		"flags":  &types.AttributeValueMemberNS{Value: []string{"1.0", "20"}},
		"nested": &types.AttributeValueMemberM{Value: record{"list": &types.AttributeValueMemberL{Value: []types.AttributeValue{s(""), &types.AttributeValueMemberNULL{Value: true}}}}},
		"empty":  s(""), // empty strings are allowed outside keys
	})
	want := record{
		"id":     s("run-1"),
		"amount": n("12.5"), "big": n("1000"), "small": n("-0.25"),
		"blob":   &types.AttributeValueMemberB{Value: []byte{0, 1, 0xfe}},
		"flags":  &types.AttributeValueMemberNS{Value: []string{"1", "20"}},
		"nested": &types.AttributeValueMemberM{Value: record{"list": &types.AttributeValueMemberL{Value: []types.AttributeValue{s(""), &types.AttributeValueMemberNULL{Value: true}}}}},
		"empty":  s(""),
	}
	if got := get(t, c, "run-1"); !reflect.DeepEqual(got, want) {
		t.Errorf("GetItem = %s\nwant %s", show(got), show(want))
	}
	if got := srv.Items(tableName); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("Items = %v, want [%s]", got, show(want))
	}
	if got := get(t, c, "run-2"); got != nil {
		t.Errorf("GetItem of a missing item = %s, want nil", show(got))
	}

	out, err := c.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(tableName), Key: key("run-1"),
		ProjectionExpression:     aws.String("amount, #n.#l[1], absent"),
		ExpressionAttributeNames: map[string]string{"#n": "nested", "#l": "list"},
	})
	wantProjected := record{"amount": n("12.5"), "nested": &types.AttributeValueMemberM{Value: record{
		"list": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberNULL{Value: true}}}}}}
	if err != nil {
		t.Fatalf("GetItem with a projection = %v", err)
	}
	if !reflect.DeepEqual(out.Item, wantProjected) {
		t.Errorf("GetItem with a projection = %s, want %s", show(out.Item), show(wantProjected))
	}
}

func TestItemsAreCopies(t *testing.T) {
	srv := newServer(t)
	c := newClient(srv)
	put(t, c, record{"id": s("run-1"), "l": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("a")}}})
	items := srv.Items(tableName)
	items[0]["id"] = s("changed")
	items[0]["l"].(*types.AttributeValueMemberL).Value[0] = s("changed")
	if got := get(t, c, "run-1"); show(got) != `{id:"run-1" l:["a"]}` {
		t.Errorf("after changing what Items returned: item = %s", show(got))
	}
	if got := srv.Items("other"); got != nil {
		t.Errorf("Items(other) = %v, want nil", got)
	}
}

// TestTimeToLiveDeletesNothingUntilTheSweep: DynamoDB deletes expired items in the
// background, within days; until then they are read like any other.
func TestTimeToLiveDeletesNothingUntilTheSweep(t *testing.T) {
	srv := newServer(t)
	srv.EnableTTL(tableName, "expiration")
	c := newClient(srv)
	epoch := func(t time.Time) types.AttributeValue { return n(strconv.FormatInt(t.Unix(), 10)) }
	put(t, c, record{"id": s("expired"), "expiration": epoch(now.Add(-time.Hour))})
	put(t, c, record{"id": s("fresh"), "expiration": epoch(now.Add(time.Hour))})
	put(t, c, record{"id": s("forever")})
	put(t, c, record{"id": s("not-a-number"), "expiration": s("1")})
	put(t, c, record{"id": s("milliseconds"), "expiration": n(strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 10))})
	put(t, c, record{"id": s("six-years-old"), "expiration": epoch(now.AddDate(-6, 0, 0))})

	if got := get(t, c, "expired"); got == nil {
		t.Fatal("an expired item before the sweep: GetItem = nil, want the item: DynamoDB still returns it")
	}
	if got := srv.Sweep(now); got != 1 {
		t.Errorf("Sweep = %d, want 1", got)
	}
	// An expiry in milliseconds is far in the future; one six years old is taken for a mistake.
	for id, want := range map[string]bool{"expired": false, "fresh": true, "forever": true, "not-a-number": true, "milliseconds": true, "six-years-old": true} {
		if got := get(t, c, id) != nil; got != want {
			t.Errorf("after the sweep: %s exists = %v, want %v", id, got, want)
		}
	}

	// Without TTL enabled on the table, nothing expires.
	other := newServer(t)
	put(t, newClient(other), record{"id": s("expired"), "expiration": epoch(now.Add(-time.Hour))})
	if got := other.Sweep(now); got != 0 {
		t.Errorf("Sweep of a table without TTL = %d, want 0", got)
	}
}

func TestDescribeTableAndTimeToLive(t *testing.T) {
	srv := newServer(t)
	c := newClient(srv)
	ctx := context.Background()
	put(t, c, record{"id": s("a")})
	out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tableName)})
	if err != nil {
		t.Fatalf("DescribeTable = %v", err)
	}
	if tb := out.Table; tb.TableStatus != types.TableStatusActive || aws.ToInt64(tb.ItemCount) != 1 ||
		len(tb.KeySchema) != 1 || aws.ToString(tb.KeySchema[0].AttributeName) != "id" ||
		aws.ToString(tb.TableArn) != "arn:aws:dynamodb:us-east-1:123456789012:table/ledger" ||
		tb.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("DescribeTable = %+v", tb)
	}
	ttl, err := c.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tableName)})
	if err != nil || ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusDisabled {
		t.Errorf("DescribeTimeToLive before EnableTTL = %+v, %v", ttl, err)
	}
	srv.EnableTTL(tableName, "expiration")
	ttl, err = c.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tableName)})
	if err != nil || ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled ||
		aws.ToString(ttl.TimeToLiveDescription.AttributeName) != "expiration" {
		t.Errorf("DescribeTimeToLive after EnableTTL = %+v, %v", ttl, err)
	}
	_, err = c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("other")})
	if !errors.As(err, new(*types.ResourceNotFoundException)) || errorMessage(err) != "Requested resource not found: Table: other not found" {
		t.Errorf("DescribeTable(other) = %v, want ResourceNotFoundException naming the table", err)
	}
}
