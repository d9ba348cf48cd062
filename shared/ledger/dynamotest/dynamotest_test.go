package dynamotest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
)

const tableName = "ledger"

type record = map[string]types.AttributeValue

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
func key(id string) record            { return record{"id": s(id)} }

// newServer starts a server with a table keyed by "id" until the test ends, and returns it
// with the real SDK client making one attempt per call, so that a test sees each answer.
func newServer(t *testing.T) (*dynamotest.Server, *dynamodb.Client) {
	t.Helper()
	srv := dynamotest.New()
	t.Cleanup(srv.Close)
	srv.CreateTable(tableName, "id")
	return srv, srv.Client(func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
}

// show writes an item compactly and deterministically.
func show(it record) string {
	if len(it) == 0 {
		return "{}"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(it)) {
		switch v := it[k].(type) {
		case *types.AttributeValueMemberS:
			parts = append(parts, k+":"+strconv.Quote(v.Value))
		case *types.AttributeValueMemberN:
			parts = append(parts, k+":"+v.Value)
		default:
			parts = append(parts, fmt.Sprintf("%s:%T", k, v))
		}
	}
	return "{" + strings.Join(parts, " ") + "}"
}

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

// held is the item every condition case runs against.
var held = record{"id": s("k"), "state": s("inProgress"), "owner": s("o1"), "expiresAt": n("100"), "ratio": n("1.5"), "word": s("a")}

func TestConditions(t *testing.T) {
	names := map[string]string{"#id": "id", "#state": "state", "#owner": "owner", "#exp": "expiresAt", "#ratio": "ratio",
		"#word": "word", "#missing": "missing"}
	values := record{":inProgress": s("inProgress"), ":other": s("delivered"), ":o1": s("o1"), ":now": n("200"), ":past": n("50"),
		":one": n("1"), ":ratio": n("1.50"), ":num": n("100"), ":str": s("100"), ":B": s("B"), ":b": s("b"), ":empty": s("")}
	tests := []struct {
		expr string
		want bool
	}{
		// The ledger's shapes: claim, complete and release.
		{"attribute_not_exists(#id) OR #exp < :now", true},
		{"attribute_not_exists(#id) OR #exp < :past", false},
		{"#state = :inProgress AND #owner = :o1", true},
		{"#state = :inProgress AND #owner = :empty", false},
		// Functions.
		{"attribute_exists(#id)", true},
		{"attribute_not_exists(#missing)", true},
		{"attribute_exists(#missing)", false},
		// Comparisons: numbers by value, strings by bytes.
		{"#ratio > :one", true},
		{"#ratio = :ratio", true},
		{"#ratio <= :ratio AND #ratio >= :ratio", true},
		{"#exp <> :num", false},
		{"#word > :B", true}, // "a" (0x61) sorts after "B" (0x42)
		{"#word < :b", true},
		{"#state = #state", true},
		{"#exp < #ratio", false},
		// Different types and missing attributes: false, but for <>.
		{"#exp = :str", false},
		{"#exp <> :str", true},
		{"#exp < :str OR #exp >= :str", false},
		{"#missing = :inProgress", false},
		{"#missing <> :inProgress", true},
		{"#missing < :now", false},
		// NOT binds tighter than AND, AND tighter than OR; keywords ignore case.
		{"#state = :inProgress OR #exp > :now AND #state = :other", true},
		{"(#state = :inProgress OR #exp > :now) AND #state = :other", false},
		{"NOT #state = :other AND #owner = :o1", true},
		{"NOT (#state = :other OR #owner = :o1)", false},
		{"not not attribute_exists(#id) and (#exp < :now)", true},
		// A bare name that is not reserved.
		{"expiresAt < :now AND ratio > :one", true},
	}
	srv, c := newServer(t)
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			if _, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: held}); err != nil {
				t.Fatal(err)
			}
			// Only the placeholders the expression uses: DynamoDB refuses the others.
			in := &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: held, ConditionExpression: aws.String(tt.expr)}
			for _, k := range placeholder.FindAllString(tt.expr, -1) {
				if k[0] == '#' {
					in.ExpressionAttributeNames = mapSet(in.ExpressionAttributeNames, k, names[k])
				} else {
					in.ExpressionAttributeValues = mapSet(in.ExpressionAttributeValues, k, values[k])
				}
			}
			_, err := c.PutItem(context.Background(), in)
			if got := err == nil; got != tt.want || err != nil && errorCode(err) != "ConditionalCheckFailedException" {
				t.Errorf("PutItem if %s = %v, want it to pass: %v", tt.expr, err, tt.want)
			}
		})
	}
	if n := srv.Calls("PutItem"); n != 2*len(tests) {
		t.Errorf("Calls(PutItem) = %d, want %d", n, 2*len(tests))
	}
}

var placeholder = regexp.MustCompile(`[#:]\w+`)

func mapSet[V any](m map[string]V, k string, v V) map[string]V {
	if m == nil {
		m = map[string]V{}
	}
	m[k] = v
	return m
}

// TestRefusals sends what the ledger never writes, and what DynamoDB refuses, and wants
// DynamoDB's error code and message (or this package's own, where DynamoDB would accept).
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	put := func(expr string, names map[string]string, values record) func(*dynamodb.Client) error {
		return func(c *dynamodb.Client) error {
			_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: key("k"),
				ConditionExpression: aws.String(expr), ExpressionAttributeNames: names, ExpressionAttributeValues: values})
			return err
		}
	}
	update := func(expr string, names map[string]string, values record) func(*dynamodb.Client) error {
		return func(c *dynamodb.Client) error {
			_, err := c.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(tableName), Key: key("k"),
				UpdateExpression: aws.String(expr), ExpressionAttributeNames: names, ExpressionAttributeValues: values})
			return err
		}
	}
	putItem := func(it record) func(*dynamodb.Client) error {
		return func(c *dynamodb.Client) error {
			_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: it})
			return err
		}
	}
	get := func(in *dynamodb.GetItemInput) func(*dynamodb.Client) error {
		return func(c *dynamodb.Client) error {
			if in.TableName == nil {
				in.TableName = aws.String(tableName)
			}
			_, err := c.GetItem(ctx, in)
			return err
		}
	}
	a := map[string]string{"#a": "a"}
	v := record{":v": s("x")}
	av := func(expr string) func(*dynamodb.Client) error { return put(expr, a, v) }
	notModelled := "dynamotest does not model "
	tests := []struct {
		name string
		call func(*dynamodb.Client) error
		code string // ValidationException when empty
		msg  string
	}{
		// Placeholders and reserved words.
		{"an unused value", put("attribute_exists(#a)", a, v), "", "Value provided in ExpressionAttributeValues unused in expressions: keys: {:v}"},
		{"an unused name", put("a = :v", map[string]string{"#a": "a", "#b": "b"}, v), "", "Value provided in ExpressionAttributeNames unused in expressions: keys: {#a, #b}"},
		{"an undefined value", put("#a = :w", a, v), "", "Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: :w"},
		{"an undefined name", put("#b = :v", a, v), "", "Invalid ConditionExpression: An expression attribute name used in the document path is not defined; attribute name: #b"},
		{"a reserved word", put("state = :v", nil, v), "", "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: state"},
		{"a reserved word in SET", update("SET Owner = :v", nil, v), "", "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: Owner"},
		{"names without an expression", get(&dynamodb.GetItemInput{Key: key("k"), ExpressionAttributeNames: a}), "", "ExpressionAttributeNames can only be specified when using expressions"},
		{"empty values", put("attribute_exists(#a)", a, record{}), "", "ExpressionAttributeValues must not be empty"},
		{"an invalid value", put("#a = :v", a, record{":v": n("one")}), "", "ExpressionAttributeValues contains invalid value: The parameter cannot be converted to a numeric value: one for key :v"},
		// Syntax.
		{"an empty expression", av(" "), "", "Invalid ConditionExpression: The expression can not be empty;"},
		{"a repeated comparator", av("#a < < :v"), "", `Invalid ConditionExpression: Syntax error; token: "<", near: "< < :v"`},
		{"a dangling AND", av("#a = :v AND"), "", `Invalid ConditionExpression: Syntax error; token: "<EOF>", near: "AND"`},
		{"an unknown character", av("#a = :v;"), "", `Invalid ConditionExpression: Syntax error; token: ";", near: ":v;"`},
		{"redundant parentheses", av("((#a = :v))"), "", "Invalid ConditionExpression: The expression has redundant parentheses;"},
		{"a function compared", put("attribute_exists(#a) = :v", a, v), "", "Invalid ConditionExpression: The function is not allowed to be used this way in an expression; function: attribute_exists"},
		{"a function of a value", put("attribute_exists(:v)", nil, v), "", "Invalid ConditionExpression: Operator or function requires a document path; operator or function: attribute_exists"},
		{"a function of two", av("attribute_exists(#a, :v)"), "", "Invalid ConditionExpression: Incorrect number of operands for operator or function; operator or function: attribute_exists, number of operands: 2"},
		{"an unknown function", av("frobnicate(#a, :v)"), "", "Invalid ConditionExpression: Invalid function name; function: frobnicate"},
		{"an update function in a condition", av("#a = if_not_exists(#a, :v)"), "", "Invalid ConditionExpression: The function is not allowed in a condition expression; function: if_not_exists"},
		{"a condition function in an update", update("SET #a = size(#a)", a, nil), "", "Invalid UpdateExpression: The function is not allowed in an update expression; function: size"},
		{"SET twice", update("SET #a = :v SET #b = :v", map[string]string{"#a": "a", "#b": "b"}, v), "", `Invalid UpdateExpression: The "SET" section can only be used once in an update expression;`},
		{"one attribute set twice", update("SET #a = :v, #a = :v", a, v), "", "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]"},
		{"the key set", update("SET id = :v", nil, v), "", "One or more parameter values were invalid: Cannot update attribute id. This attribute is part of the key"},
		// What the ledger does not use.
		{"BETWEEN", av("#a BETWEEN :v AND :v"), "", "Invalid ConditionExpression: " + notModelled + "BETWEEN"},
		{"IN", av("#a in (:v)"), "", "Invalid ConditionExpression: " + notModelled + "IN"},
		{"begins_with", av("begins_with(#a, :v)"), "", "Invalid ConditionExpression: " + notModelled + "the function begins_with"},
		{"size", av("size(#a) > :v"), "", "Invalid ConditionExpression: " + notModelled + "the function size"},
		{"a nested path", av("#a.b = :v"), "", "Invalid ConditionExpression: " + notModelled + "nested attributes and list elements"},
		{"a list element", av("#a[0] = :v"), "", "Invalid ConditionExpression: " + notModelled + "nested attributes and list elements"},
		{"REMOVE", update("SET #a = :v REMOVE b", a, v), "", "Invalid UpdateExpression: " + notModelled + "the REMOVE clause"},
		{"ADD", update("ADD #a :v", a, v), "", "Invalid UpdateExpression: " + notModelled + "the ADD clause"},
		{"list_append", update("SET #a = list_append(#a, :v)", a, v), "", "Invalid UpdateExpression: " + notModelled + "the function list_append"},
		{"arithmetic", update("SET #a = :v + :v", a, v), "", "Invalid UpdateExpression: " + notModelled + "SET to anything but a :value"},
		{"SET from an attribute", update("SET #a = b", a, nil), "", "Invalid UpdateExpression: " + notModelled + "SET to anything but a :value"},
		{"a list", putItem(record{"id": s("k"), "l": &types.AttributeValueMemberL{}}), "", notModelled + "attribute values of type L"},
		{"ReturnValues", func(c *dynamodb.Client) error {
			_, err := c.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(tableName), Key: key("k"), ReturnValues: types.ReturnValueAllOld})
			return err
		}, "", notModelled + "ReturnValues ALL_OLD"},
		{"ProjectionExpression", get(&dynamodb.GetItemInput{Key: key("k"), ProjectionExpression: aws.String("#a"), ExpressionAttributeNames: a}), "",
			notModelled + "the parameter ProjectionExpression of GetItem"},
		{"an unknown return value", func(c *dynamodb.Client) error {
			_, err := c.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(tableName), Key: key("k"), ReturnValuesOnConditionCheckFailure: "ALL_NEW"})
			return err
		}, "", "1 validation error detected: Value 'ALL_NEW' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]"},
		// Keys and items.
		{"an item without its key", putItem(record{"other": s("x")}), "", "One or more parameter values were invalid: Missing the key id in the item"},
		{"a Number key", putItem(record{"id": n("1")}), "", "One or more parameter values were invalid: Type mismatch for key id expected: S actual: N"},
		{"an empty key", putItem(key("")), "", "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: id"},
		{"a key too long", putItem(key(strings.Repeat("k", 2049))), "", "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes"},
		{"an item too large", putItem(record{"id": s("k"), "data": s(strings.Repeat("x", 400*1024))}), "", "Item size has exceeded the maximum allowed size"},
		{"an update too large", update("SET #a = :v", a, record{":v": s(strings.Repeat("x", 400*1024))}), "", "Item size to update has exceeded the maximum allowed size"},
		{"a Key with another attribute", get(&dynamodb.GetItemInput{Key: record{"id": s("k"), "state": s("x")}}), "", "The provided key element does not match the schema"},
		{"a Key of another name", get(&dynamodb.GetItemInput{Key: record{"key": s("k")}}), "", "The provided key element does not match the schema"},
		{"a Number in a Key", get(&dynamodb.GetItemInput{Key: record{"id": n("1")}}), "", "The provided key element does not match the schema"},
		{"a number of 39 digits", putItem(record{"id": s("k"), "n": n(strings.Repeat("9", 39))}), "", "Attempting to store more than 38 significant digits in a Number"},
		{"a number too large", putItem(record{"id": s("k"), "n": n("1e126")}), "", "Number overflow. Attempting to store a number with magnitude larger than supported range"},
		{"a number too small", putItem(record{"id": s("k"), "n": n("-1e-131")}), "", "Number underflow. Attempting to store a number with magnitude smaller than supported range"},
		{"an unknown table", get(&dynamodb.GetItemInput{TableName: aws.String("other"), Key: key("k")}), "ResourceNotFoundException", "Requested resource not found"},
		{"another operation", func(c *dynamodb.Client) error {
			_, err := c.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(tableName)})
			return err
		}, "UnknownOperationException", "UnknownError"}, // the SDK's word for an error without a message
	}
	srv, c := newServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(c)
			var respErr *awshttp.ResponseError
			if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != http.StatusBadRequest {
				t.Errorf("status: %v, want 400", err)
			}
			if code := cmpOr(tt.code, "ValidationException"); errorCode(err) != code || errorMessage(err) != tt.msg {
				t.Errorf("got %s %q\nwant %s %q", errorCode(err), errorMessage(err), code, tt.msg)
			}
		})
	}
	if items := srv.Items(tableName); len(items) != 0 {
		t.Errorf("refused requests wrote %v", items)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestAFailedConditionCarriesTheOldItemWhenAsked(t *testing.T) {
	srv, c := newServer(t)
	ctx := context.Background()
	claim := func(id string, returnOld bool) error {
		in := &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: record{"id": s(id), "state": s("inProgress"), "n": n("0100.50")},
			ConditionExpression: aws.String("attribute_not_exists(#id)"), ExpressionAttributeNames: map[string]string{"#id": "id"}}
		if returnOld {
			in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
		}
		_, err := c.PutItem(ctx, in)
		return err
	}
	if err := claim("k", true); err != nil {
		t.Fatal(err)
	}
	var failed *types.ConditionalCheckFailedException
	if err := claim("k", true); !errors.As(err, &failed) || show(failed.Item) != `{id:"k" n:100.5 state:"inProgress"}` {
		t.Errorf("second claim = %v with %v, want ConditionalCheckFailedException with the item, its number canonical", err, failed)
	}
	if err := claim("k", false); !errors.As(err, &failed) || failed.Item != nil || failed.ErrorMessage() != "The conditional request failed" {
		t.Errorf("claim without ALL_OLD = %v, want the failure without the item", err)
	}
	// Under ALL_OLD, a condition that fails on a missing item carries none.
	_, err := c.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(tableName), Key: key("gone"),
		ConditionExpression: aws.String("attribute_exists(id)"), ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld})
	if !errors.As(err, &failed) || failed.Item != nil {
		t.Errorf("DeleteItem of a missing item = %v, want the failure without an item", err)
	}
	if got := srv.Items(tableName); len(got) != 1 || show(got[0]) != `{id:"k" n:100.5 state:"inProgress"}` {
		t.Errorf("Items = %v", got)
	}
}

func TestUpdateGetAndDelete(t *testing.T) {
	_, c := newServer(t)
	ctx := context.Background()
	read := func() string {
		out, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tableName), Key: key("k"), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		return show(out.Item)
	}
	set := func(expr string, values record) {
		if _, err := c.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(tableName), Key: key("k"),
			UpdateExpression: aws.String(expr), ExpressionAttributeNames: map[string]string{"#s": "state"}, ExpressionAttributeValues: values}); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(); got != "{}" {
		t.Errorf("GetItem of a missing item = %s", got)
	}
	set("SET #s = :s, code = :n", record{":s": s("delivered"), ":n": n("1e2")}) // creates the item
	if got, want := read(), `{code:100 id:"k" state:"delivered"}`; got != want {
		t.Errorf("after an update of a missing item: %s, want %s", got, want)
	}
	set("set #s = :s", record{":s": s("")}) // keywords ignore case; empty strings are values
	if got, want := read(), `{code:100 id:"k" state:""}`; got != want {
		t.Errorf("after a second update: %s, want %s", got, want)
	}
	if _, err := c.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(tableName), Key: key("k")}); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "{}" {
		t.Errorf("after DeleteItem: %s", got)
	}
}

// TestConditionalWritesAreAtomic races claims of one key: exactly one wins.
func TestConditionalWritesAreAtomic(t *testing.T) {
	_, c := newServer(t)
	var wins sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 20 {
		wins.Add(1)
		go func() {
			defer wins.Done()
			_, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tableName),
				Item: record{"id": s("k"), "owner": s(strconv.Itoa(i))}, ConditionExpression: aws.String("attribute_not_exists(id)")})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			} else if errorCode(err) != "ConditionalCheckFailedException" {
				t.Errorf("claim %d = %v", i, err)
			}
		}()
	}
	wins.Wait()
	if won != 1 {
		t.Errorf("%d claims won, want 1", won)
	}
}

func TestTimeToLiveDeletesOnlyWhenSwept(t *testing.T) {
	srv, c := newServer(t)
	srv.EnableTTL(tableName, "expiresAt")
	now := time.Now()
	at := func(d time.Duration) types.AttributeValue { return n(strconv.FormatInt(now.Add(d).Unix(), 10)) }
	for id, exp := range map[string]types.AttributeValue{
		"expired": at(-time.Hour), "live": at(time.Hour), "no-ttl": nil, "text": s("0"),
		"millis":  n(strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 10)), // in the future, read as seconds
		"ancient": at(-6 * 365 * 24 * time.Hour),                             // beyond DynamoDB's five-year guard
	} {
		it := key(id)
		if exp != nil {
			it["expiresAt"] = exp
		}
		if _, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: it}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := c.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(tableName), Key: key("expired")})
	if err != nil || len(out.Item) == 0 {
		t.Errorf("an expired item before the sweep: %v, %v; want it read", out, err)
	}
	if got := srv.Sweep(now); got != 1 {
		t.Errorf("Sweep = %d, want 1", got)
	}
	var left []string
	for _, it := range srv.Items(tableName) {
		left = append(left, it["id"].(*types.AttributeValueMemberS).Value)
	}
	if want := []string{"ancient", "live", "millis", "no-ttl", "text"}; !slices.Equal(left, want) {
		t.Errorf("after the sweep: %v, want %v", left, want)
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	get := func(c *dynamodb.Client) error {
		_, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tableName), Key: key("k")})
		return err
	}
	put := func(c *dynamodb.Client) error {
		_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: key("k")})
		return err
	}
	t.Run("throttled, then healed", func(t *testing.T) {
		srv, c := newServer(t)
		srv.SetFault(dynamotest.Throttle.Times(1))
		var throttled *types.ThrottlingException
		if err := get(c); !errors.As(err, &throttled) || !strings.Contains(errorMessage(err), "Throughput exceeds the current capacity") {
			t.Errorf("GetItem = %v, want a ThrottlingException", err)
		}
		if err := get(c); err != nil {
			t.Errorf("GetItem after the fault = %v", err)
		}
		// The SDK's own retries get through one throttled attempt.
		srv.SetFault(dynamotest.Throttle.Times(1))
		if err := get(srv.Client()); err != nil {
			t.Errorf("GetItem with retries = %v", err)
		}
		if got := srv.Calls("GetItem"); got != 4 {
			t.Errorf("Calls(GetItem) = %d, want 4", got)
		}
	})
	t.Run("access denied for one operation", func(t *testing.T) {
		srv, c := newServer(t)
		srv.SetFault(dynamotest.AccessDenied.For("PutItem"))
		want := "User: arn:aws:sts::123456789012:assumed-role/relay/relay is not authorized to perform: dynamodb:PutItem on resource: " +
			"arn:aws:dynamodb:us-east-1:123456789012:table/ledger because no identity-based policy allows the dynamodb:PutItem action"
		if err := put(c); errorCode(err) != "AccessDeniedException" || errorMessage(err) != want {
			t.Errorf("PutItem = %v, want AccessDeniedException %q", err, want)
		}
		if err := get(c); err != nil {
			t.Errorf("GetItem = %v, want it answered", err)
		}
		if len(srv.Items(tableName)) != 0 {
			t.Error("a denied PutItem wrote")
		}
	})
	t.Run("down", func(t *testing.T) {
		srv, c := newServer(t)
		srv.SetFault(dynamotest.Down)
		if err := get(c); err == nil || errorCode(err) != "" {
			t.Errorf("GetItem = %v, want a network error", err)
		}
		if got := srv.Calls(""); got != 0 {
			t.Errorf("Calls = %d, want 0: nothing reached DynamoDB", got)
		}
	})
	t.Run("the answer lost", func(t *testing.T) {
		srv, c := newServer(t)
		srv.SetFault(dynamotest.AnswerLost.Times(1))
		if err := put(c); err == nil || errorCode(err) != "" {
			t.Errorf("PutItem = %v, want a network error", err)
		}
		if got := srv.Items(tableName); len(got) != 1 {
			t.Errorf("Items = %v, want the write landed", got)
		}
	})
	t.Run("a wrong signature", func(t *testing.T) {
		srv, _ := newServer(t)
		c := dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider("AKIASMTESTEXAMPLE123", "wrong", "")})
		if err := get(c); errorCode(err) != "InvalidSignatureException" {
			t.Errorf("GetItem = %v, want InvalidSignatureException", err)
		}
		if got := srv.Calls(""); got != 0 {
			t.Errorf("Calls = %d, want 0", got)
		}
	})
}
