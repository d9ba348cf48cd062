package dynamotest_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/port-azure-relay/relay/shared/awstest"
)

// startMoto runs moto_server on a free loopback port until the test ends, or skips the
// test where moto is not installed.
func startMoto(t *testing.T) string {
	t.Helper()
	url, stop, err := awstest.StartMoto(t.TempDir())
	if errors.Is(err, awstest.ErrNoMoto) {
		t.Skip("moto interop skipped: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return url
}

// outcome is what a step of the script saw: the error code and the item that came back
// (Attributes, Item, or the ConditionalCheckFailedException's Item).
type outcome struct {
	code, item, message string
}

func observe(out record, err error) outcome {
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		out = failed.Item
	}
	if len(out) == 0 {
		out = nil
	}
	return outcome{code: errorCode(err), item: show(out), message: errorMessage(err)}
}

// TestTheServerAnswersLikeMoto runs one script of the ledger's calls through the real SDK
// against moto (a DynamoDB that nobody here wrote) and against this server, and wants
// the same outcomes: error codes and returned items. Where moto's message differs from
// DynamoDB's documented one, the test follows DynamoDB and says so.
func TestTheServerAnswersLikeMoto(t *testing.T) {
	endpoint := startMoto(t)
	ctx := context.Background()
	moto := dynamodb.New(dynamodb.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		RetryMaxAttempts: 1,
	})
	if _, err := moto.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(tableName),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}); err != nil {
		t.Fatalf("moto: CreateTable = %v", err)
	}
	if _, err := moto.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(tableName),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("expiration"), Enabled: aws.Bool(true)},
	}); err != nil {
		t.Fatalf("moto: UpdateTimeToLive = %v", err)
	}
	srv := newServer(t)
	srv.EnableTTL(tableName, "expiration")

	past := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	putItem := func(in *dynamodb.PutItemInput) func(*dynamodb.Client) outcome {
		return func(c *dynamodb.Client) outcome {
			out, err := c.PutItem(ctx, in)
			if err != nil {
				return observe(nil, err)
			}
			return observe(out.Attributes, nil)
		}
	}
	updateItem := func(in *dynamodb.UpdateItemInput) func(*dynamodb.Client) outcome {
		return func(c *dynamodb.Client) outcome {
			out, err := c.UpdateItem(ctx, in)
			if err != nil {
				return observe(nil, err)
			}
			return observe(out.Attributes, nil)
		}
	}
	deleteItem := func(in *dynamodb.DeleteItemInput) func(*dynamodb.Client) outcome {
		return func(c *dynamodb.Client) outcome {
			out, err := c.DeleteItem(ctx, in)
			if err != nil {
				return observe(nil, err)
			}
			return observe(out.Attributes, nil)
		}
	}
	getItem := func(id string) func(*dynamodb.Client) outcome {
		return func(c *dynamodb.Client) outcome {
			out, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tableName), Key: key(id), ConsistentRead: aws.Bool(true)})
			if err != nil {
				return observe(nil, err)
			}
			return observe(out.Item, nil)
		}
	}
	change := func(in *dynamodb.PutItemInput, f func(*dynamodb.PutItemInput)) *dynamodb.PutItemInput {
		f(in)
		return in
	}
	completeAllNew := complete("run-1")
	completeAllNew.ReturnValues = types.ReturnValueAllNew
	release := func(id string) *dynamodb.DeleteItemInput {
		return &dynamodb.DeleteItemInput{
			TableName: aws.String(tableName), Key: key(id),
			ConditionExpression:                 aws.String("#status = :inprogress"),
			ExpressionAttributeNames:            map[string]string{"#status": "status"},
			ExpressionAttributeValues:           record{":inprogress": s("INPROGRESS")},
			ReturnValues:                        types.ReturnValueAllOld,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}
	}
	counter := &dynamodb.UpdateItemInput{
		TableName: aws.String(tableName), Key: key("counter"),
		UpdateExpression:          aws.String("SET #c = if_not_exists(#c, :zero) + :one ADD #seen :who"),
		ExpressionAttributeNames:  map[string]string{"#c": "count", "#seen": "seen"},
		ExpressionAttributeValues: record{":zero": n("0"), ":one": n("1"), ":who": &types.AttributeValueMemberSS{Value: []string{"a"}}},
		ReturnValues:              types.ReturnValueAllNew,
	}

	script := []struct {
		name string
		step func(*dynamodb.Client) outcome
		// Where moto 5.2 accepts what DynamoDB refuses, why; this server must then refuse
		// with a ValidationException, as DynamoDB does, whatever moto answers. Those steps
		// write items (run-5...) that no later step reads.
		motoAccepts string
	}{
		{name: "the first claim wins", step: putItem(claim("run-1"))},
		{name: "a second claim fails with the first", step: putItem(claim("run-1"))},
		{name: "an expired record is stored", step: putItem(&dynamodb.PutItemInput{TableName: aws.String(tableName),
			Item: record{"id": s("run-2"), "status": s("COMPLETED"), "expiration": n(past)}})},
		{name: "an expired record is still read before any sweep", step: getItem("run-2")},
		{name: "a claim takes over the expired record", step: putItem(claim("run-2"))},
		{name: "the completion returns the new record", step: updateItem(completeAllNew)},
		{name: "a second completion fails with the completed record", step: updateItem(complete("run-1"))},
		{name: "the release of a completed record fails with it", step: deleteItem(release("run-1"))},
		{name: "the release of a claim returns it", step: deleteItem(release("run-2"))},
		{name: "a released record is gone", step: getItem("run-2")},
		{name: "a counter starts from if_not_exists", step: updateItem(counter)},
		{name: "a counter adds", step: updateItem(counter)},
		{name: "numbers compare by value", step: putItem(&dynamodb.PutItemInput{TableName: aws.String(tableName),
			Item: record{"id": s("counter")}, ConditionExpression: aws.String("#c > :nine"),
			ExpressionAttributeNames: map[string]string{"#c": "count"}, ExpressionAttributeValues: record{":nine": n("1.5")}})},
		{name: "a reserved word is refused", step: putItem(change(claim("run-3"), func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_not_exists(status)")
			in.ExpressionAttributeNames, in.ExpressionAttributeValues = nil, nil
		}))},
		{name: "an unused name is refused", step: putItem(change(claim("run-4"), func(in *dynamodb.PutItemInput) {
			in.ExpressionAttributeNames["#unused"] = "x"
		}))},
		{name: "an unused value is refused", step: putItem(change(claim("run-5"), func(in *dynamodb.PutItemInput) {
			in.ExpressionAttributeValues[":unused"] = s("x")
		})), motoAccepts: "moto 5.2 checks only the names a PutItem leaves unused; DynamoDB refuses unused values too"},
		{name: "an undefined value is refused", step: putItem(change(claim("run-6"), func(in *dynamodb.PutItemInput) {
			delete(in.ExpressionAttributeValues, ":now_ms")
		})), motoAccepts: "moto 5.2 evaluates the condition without checking that its values are defined"},
		{name: "a syntax error is refused", step: putItem(change(claim("run-7"), func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_not_exists(#id) OR #expiry < < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms)")
		})), motoAccepts: "moto 5.2's condition parser lets a repeated comparator through"},
		{name: "redundant parentheses are refused", step: putItem(change(claim("run-8"), func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("((attribute_not_exists(#id) OR #expiry < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms)))")
		}))},
		{name: "an item without its key is refused", step: putItem(change(claim("run-9"), func(in *dynamodb.PutItemInput) { delete(in.Item, "id") }))},
		{name: "a key with another attribute is refused", step: updateItem(func() *dynamodb.UpdateItemInput {
			in := complete("run-1")
			in.Key["status"] = s("COMPLETED")
			return in
		}())},
		{name: "a claim to update", step: putItem(claim("run-10"))},
		{name: "an update of the key is refused", step: updateItem(func() *dynamodb.UpdateItemInput {
			in := complete("run-10")
			in.UpdateExpression = aws.String("SET #status = :completed, #data = :data, id = :completed")
			return in
		}())},
		{name: "an update syntax error is refused", step: updateItem(func() *dynamodb.UpdateItemInput {
			in := complete("run-10")
			in.UpdateExpression = aws.String("SET #status :completed, #data = :data")
			return in
		}())},
		{name: "a reserved word in an update is refused", step: updateItem(func() *dynamodb.UpdateItemInput {
			in := complete("run-10")
			in.UpdateExpression = aws.String("SET status = :completed, #data = :data")
			in.ConditionExpression = aws.String("attribute_exists(#status) AND #status = :inprogress")
			return in
		}())},
		{name: "the claim is still in progress", step: getItem("run-10")},
		{name: "an unknown table is refused", step: getItem("run-1")}, // the step is replaced below: another table
	}
	// The last step reads another table; both backends get the same request.
	script[len(script)-1].step = func(c *dynamodb.Client) outcome {
		_, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("other"), Key: key("run-1")})
		return observe(nil, err)
	}

	ours := newClient(srv)
	start := time.Now()
	for _, step := range script {
		want := step.step(moto)
		got := step.step(ours)
		if step.motoAccepts != "" {
			if got.code != "ValidationException" {
				t.Errorf("%s: this server: %s %s, want ValidationException as DynamoDB", step.name, got.code, got.item)
			}
			t.Logf("%s: moto answered %q (%s); this server %s %q", step.name, want.code, step.motoAccepts, got.code, got.message)
			continue
		}
		if got.code != want.code || got.item != want.item {
			t.Errorf("%s:\n  this server: %s %s\n  moto:        %s %s", step.name, got.code, got.item, want.code, want.item)
			continue
		}
		if got.message != want.message {
			t.Logf("%s: same %s, messages differ:\n  this server: %q\n  moto:        %q", step.name, got.code, got.message, want.message)
		}
	}
	t.Logf("%d steps against moto and this server in %v", len(script), time.Since(start).Round(time.Millisecond))
}
