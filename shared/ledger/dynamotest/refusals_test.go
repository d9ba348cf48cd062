package dynamotest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestTheServerRefusesWhatDynamoDBRefuses changes one thing of a valid request (the
// ledger's claim, completion, read or release) per row, and wants DynamoDB's error code
// and message. None of these requests may change the table.
func TestTheServerRefusesWhatDynamoDBRefuses(t *testing.T) {
	ctx := context.Background()
	putWith := func(change func(*dynamodb.PutItemInput)) func(*dynamodb.Client) error {
		return func(c *dynamodb.Client) error {
			in := claim("run-2")
			change(in)
			_, err := c.PutItem(ctx, in)
			return err
		}
	}
	updateWith := func(change func(*dynamodb.UpdateItemInput)) func(*dynamodb.Client) error {
		return func(c *dynamodb.Client) error {
			in := complete("run-1")
			change(in)
			_, err := c.UpdateItem(ctx, in)
			return err
		}
	}
	getWith := func(change func(*dynamodb.GetItemInput)) func(*dynamodb.Client) error {
		return func(c *dynamodb.Client) error {
			in := &dynamodb.GetItemInput{TableName: aws.String(tableName), Key: key("run-1"), ConsistentRead: aws.Bool(true)}
			change(in)
			_, err := c.GetItem(ctx, in)
			return err
		}
	}
	deleteWith := func(change func(*dynamodb.DeleteItemInput)) func(*dynamodb.Client) error {
		return func(c *dynamodb.Client) error {
			in := &dynamodb.DeleteItemInput{TableName: aws.String(tableName), Key: key("run-1")}
			change(in)
			_, err := c.DeleteItem(ctx, in)
			return err
		}
	}
	const (
		invalid  = "ValidationException"
		notFound = "ResourceNotFoundException"
	)
	tests := []struct {
		name     string
		call     func(*dynamodb.Client) error
		wantCode string
		wantMsg  string
	}{
		// Keys and items.
		{"an item without its key", putWith(func(in *dynamodb.PutItemInput) { delete(in.Item, "id") }),
			invalid, "One or more parameter values were invalid: Missing the key id in the item"},
		{"an item whose key is a Number", putWith(func(in *dynamodb.PutItemInput) { in.Item["id"] = n("2") }),
			invalid, "One or more parameter values were invalid: Type mismatch for key id expected: S actual: N"},
		{"an item whose key is empty", putWith(func(in *dynamodb.PutItemInput) { in.Item["id"] = s("") }),
			invalid, "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: id"},
		{"a key over 2048 bytes", putWith(func(in *dynamodb.PutItemInput) { in.Item["id"] = s(strings.Repeat("k", 2049)) }),
			invalid, "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes"},
		{"an item over 400 KB", putWith(func(in *dynamodb.PutItemInput) { in.Item["data"] = s(strings.Repeat("x", 400*1024)) }),
			invalid, "Item size has exceeded the maximum allowed size"},
		{"a Key with another attribute", updateWith(func(in *dynamodb.UpdateItemInput) { in.Key["status"] = s("x") }),
			invalid, "The provided key element does not match the schema"},
		{"a Key of another type", getWith(func(in *dynamodb.GetItemInput) { in.Key = record{"id": n("1")} }),
			invalid, "The provided key element does not match the schema"},
		{"a Key under another name", deleteWith(func(in *dynamodb.DeleteItemInput) { in.Key = record{"pk": s("run-1")} }),
			invalid, "The provided key element does not match the schema"},
		{"an empty Key", getWith(func(in *dynamodb.GetItemInput) { in.Key = record{} }),
			invalid, "The provided key element does not match the schema"},
		{"an empty key value", deleteWith(func(in *dynamodb.DeleteItemInput) { in.Key = key("") }),
			invalid, "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: id"},
		{"an update of the key", updateWith(func(in *dynamodb.UpdateItemInput) {
			in.UpdateExpression = aws.String("SET #status = :completed, #data = :data, id = :completed")
		}), invalid, "One or more parameter values were invalid: Cannot update attribute id. This attribute is part of the key"},

		// Attribute values.
		{"an empty string set", putWith(func(in *dynamodb.PutItemInput) { in.Item["tags"] = &types.AttributeValueMemberSS{Value: []string{}} }),
			invalid, "One or more parameter values were invalid: An string set  may not be empty"},
		{"a set with a repeated element", putWith(func(in *dynamodb.PutItemInput) {
			in.Item["tags"] = &types.AttributeValueMemberSS{Value: []string{"a", "a"}}
		}), invalid, "One or more parameter values were invalid: Input collection [a, a] contains duplicates."},
		{"a number set repeating a number in another form", putWith(func(in *dynamodb.PutItemInput) {
			in.Item["ns"] = &types.AttributeValueMemberNS{Value: []string{"1", "1.0"}}
		}), invalid, "One or more parameter values were invalid: Input collection [1, 1] contains duplicates."},
		{"a Number that is not one", putWith(func(in *dynamodb.PutItemInput) { in.Item["expiration"] = n("12abc") }),
			invalid, "The parameter cannot be converted to a numeric value: 12abc"},
		{"a Number of 39 digits", putWith(func(in *dynamodb.PutItemInput) { in.Item["expiration"] = n(strings.Repeat("9", 39)) }),
			invalid, "Attempting to store more than 38 significant digits in a Number"},
		{"a Number too large", putWith(func(in *dynamodb.PutItemInput) { in.Item["expiration"] = n("1E126") }),
			invalid, "Number overflow. Attempting to store a number with magnitude larger than supported range"},
		{"a NULL that is false", putWith(func(in *dynamodb.PutItemInput) { in.Item["x"] = &types.AttributeValueMemberNULL{Value: false} }),
			invalid, "One or more parameter values were invalid: Null attribute value types must have the value of true"},
		{"an expression value that is not a number", putWith(func(in *dynamodb.PutItemInput) { in.ExpressionAttributeValues[":now"] = n("soon") }),
			invalid, "ExpressionAttributeValues contains invalid value: The parameter cannot be converted to a numeric value: soon for key :now"},

		// ConditionExpression.
		{"a reserved word used bare", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_not_exists(id) OR expiration < :now OR (status = :inprogress AND in_progress_expiration < :now_ms)")
			in.ExpressionAttributeNames = nil
		}), invalid, "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: status"},
		{"a reserved word in any case", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_not_exists(#id) OR TTL < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms)")
			delete(in.ExpressionAttributeNames, "#expiry")
		}), invalid, "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: TTL"},
		{"an unused value", putWith(func(in *dynamodb.PutItemInput) { in.ExpressionAttributeValues[":x"] = s("x") }),
			invalid, "Value provided in ExpressionAttributeValues unused in expressions: keys: {:x}"},
		{"an unused name", putWith(func(in *dynamodb.PutItemInput) { in.ExpressionAttributeNames["#x"] = "x" }),
			invalid, "Value provided in ExpressionAttributeNames unused in expressions: keys: {#x}"},
		{"an undefined value", putWith(func(in *dynamodb.PutItemInput) { delete(in.ExpressionAttributeValues, ":now_ms") }),
			invalid, "Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: :now_ms"},
		{"an undefined name", putWith(func(in *dynamodb.PutItemInput) { delete(in.ExpressionAttributeNames, "#status") }),
			invalid, "Invalid ConditionExpression: An expression attribute name used in the document path is not defined; attribute name: #status"},
		{"empty ExpressionAttributeValues", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_not_exists(#id)")
			in.ExpressionAttributeNames = map[string]string{"#id": "id"}
			in.ExpressionAttributeValues = record{}
		}), invalid, "ExpressionAttributeValues must not be empty"},
		{"a placeholder key without its sigil", putWith(func(in *dynamodb.PutItemInput) { in.ExpressionAttributeValues["now"] = n("1") }),
			invalid, `ExpressionAttributeValues contains invalid key: Syntax error; key: "now"`},
		{"a syntax error", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_not_exists(#id) OR #expiry < < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms)")
		}), invalid, `Invalid ConditionExpression: Syntax error; token: "<", near: "< < :now"`},
		{"an expression cut short", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_not_exists(#id) OR #expiry < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms")
		}), invalid, `Invalid ConditionExpression: Syntax error; token: "<EOF>", near: ":now_ms"`},
		{"a character outside the language", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_not_exists(#id) OR #expiry < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms) && true")
		}), invalid, `Invalid ConditionExpression: Syntax error; token: "&", near: ") &&"`},
		{"redundant parentheses", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("((attribute_not_exists(#id) OR #expiry < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms)))")
		}), invalid, "Invalid ConditionExpression: The expression has redundant parentheses;"},
		{"an unknown function", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_missing(#id) OR #expiry < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms)")
		}), invalid, "Invalid ConditionExpression: Invalid function name; function: attribute_missing"},
		{"a function name in capitals", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("ATTRIBUTE_NOT_EXISTS(#id) OR #expiry < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms)")
		}), invalid, "Invalid ConditionExpression: Invalid function name; function: ATTRIBUTE_NOT_EXISTS"},
		{"a function compared like a value", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_not_exists(#id) = :now OR #expiry < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms)")
		}), invalid, "Invalid ConditionExpression: The function is not allowed to be used this way in an expression; function: attribute_not_exists"},
		{"a function of a value", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_not_exists(:now) OR #expiry < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms)")
			delete(in.ExpressionAttributeNames, "#id")
		}), invalid, "Invalid ConditionExpression: Operator or function requires a document path; operator or function: attribute_not_exists"},
		{"contains of a path in itself", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("contains(#id, #id) OR #expiry < :now OR (#status = :inprogress AND #in_progress_expiry < :now_ms)")
		}), invalid, "Invalid ConditionExpression: The first operand must be distinct from the remaining operands for this operator or function; operator: contains, first operand: [id]"},
		{"BETWEEN with its bounds reversed", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("#expiry BETWEEN :now_ms AND :now OR attribute_not_exists(#id) OR #status = :inprogress AND #in_progress_expiry < :now_ms")
		}), invalid, "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; " +
			"lower bound operand: AttributeValue: {N:" + nowMS + "}, upper bound operand: AttributeValue: {N:" + nowS + "}"},
		{"an unknown attribute type", putWith(func(in *dynamodb.PutItemInput) {
			in.ConditionExpression = aws.String("attribute_type(#id, :inprogress) OR #expiry < :now OR #in_progress_expiry < :now_ms AND #status = :inprogress")
		}), invalid, "Invalid ConditionExpression: Invalid attribute type name found; type: INPROGRESS, valid types: { B, NULL, SS, BOOL, L, BS, N, NS, S, M }"},
		{"an empty condition", putWith(func(in *dynamodb.PutItemInput) { in.ConditionExpression = aws.String(" ") }),
			invalid, "Invalid ConditionExpression: The expression can not be empty;"},
		{"a legacy parameter beside an expression", putWith(func(in *dynamodb.PutItemInput) {
			in.Expected = map[string]types.ExpectedAttributeValue{"id": {Exists: aws.Bool(false)}}
		}), invalid, "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {Expected} Expression parameters: {ConditionExpression}"},
		{"ReturnValues ALL_NEW on PutItem", putWith(func(in *dynamodb.PutItemInput) { in.ReturnValues = types.ReturnValueAllNew }),
			invalid, "ReturnValues can only be ALL_OLD or NONE"},

		// UpdateExpression.
		{"a reserved word in an update", updateWith(func(in *dynamodb.UpdateItemInput) {
			in.UpdateExpression = aws.String("SET status = :completed, #data = :data")
			in.ConditionExpression = aws.String("attribute_exists(#status) AND #status = :inprogress")
		}), invalid, "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: status"},
		{"an update syntax error", updateWith(func(in *dynamodb.UpdateItemInput) {
			in.UpdateExpression = aws.String("SET #status :completed, #data = :data")
		}),
			invalid, `Invalid UpdateExpression: Syntax error; token: ":completed", near: "#status :completed,"`},
		{"SET twice", updateWith(func(in *dynamodb.UpdateItemInput) {
			in.UpdateExpression = aws.String("SET #status = :completed SET #data = :data")
		}),
			invalid, `Invalid UpdateExpression: The "SET" section can only be used once in an update expression;`},
		{"two paths that overlap", updateWith(func(in *dynamodb.UpdateItemInput) {
			in.UpdateExpression = aws.String("SET #status = :completed, #data = :data REMOVE #data.former")
		}), invalid, "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [data], path two: [data, former]"},
		{"arithmetic on a String value", updateWith(func(in *dynamodb.UpdateItemInput) {
			in.UpdateExpression = aws.String("SET #status = #status + :completed, #data = :data")
		}), invalid, "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: +, operand type: S"},
		{"arithmetic on an attribute the item lacks", updateWith(func(in *dynamodb.UpdateItemInput) {
			in.UpdateExpression = aws.String("SET #status = :completed, #data = #data + :one")
			in.ExpressionAttributeValues[":one"] = n("1")
			delete(in.ExpressionAttributeValues, ":data")
		}), invalid, "The provided expression refers to an attribute that does not exist in the item"},
		{"arithmetic on a String attribute", updateWith(func(in *dynamodb.UpdateItemInput) {
			in.UpdateExpression = aws.String("SET #data = :data, #status = #status + :one")
			in.ExpressionAttributeValues[":one"] = n("1")
			delete(in.ExpressionAttributeValues, ":completed")
		}), invalid, "An operand in the update expression has an incorrect data type"},
		{"ADD of a String", updateWith(func(in *dynamodb.UpdateItemInput) {
			in.UpdateExpression = aws.String("SET #data = :data ADD #status :completed")
		}),
			invalid, "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: STRING, typeSet: ALLOWED_FOR_ADD_OPERAND"},
		{"a condition function in an update", updateWith(func(in *dynamodb.UpdateItemInput) {
			in.UpdateExpression = aws.String("SET #status = :completed, #data = size(#data)")
			delete(in.ExpressionAttributeValues, ":data")
		}), invalid, "Invalid UpdateExpression: The function is not allowed in an update expression; function: size"},
		{"a nested SET under a missing map", updateWith(func(in *dynamodb.UpdateItemInput) {
			in.UpdateExpression = aws.String("SET #status = :completed, #data.answer = :data")
		}),
			invalid, "The document path provided in the update expression is invalid for update"},
		{"an unknown ReturnValues", updateWith(func(in *dynamodb.UpdateItemInput) { in.ReturnValues = "EVERYTHING" }),
			invalid, "1 validation error detected: Value 'EVERYTHING' at 'returnValues' failed to satisfy constraint: Member must satisfy enum value set: [ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]"},

		// ProjectionExpression and GetItem.
		{"a reserved word in a projection", getWith(func(in *dynamodb.GetItemInput) { in.ProjectionExpression = aws.String("id, status") }),
			invalid, "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: status"},
		{"names without an expression", getWith(func(in *dynamodb.GetItemInput) { in.ExpressionAttributeNames = map[string]string{"#s": "status"} }),
			invalid, "ExpressionAttributeNames can only be specified when using expressions"},

		// Tables.
		{"an unknown table", putWith(func(in *dynamodb.PutItemInput) { in.TableName = aws.String("other") }),
			notFound, "Requested resource not found"},
		{"a table name too short", getWith(func(in *dynamodb.GetItemInput) { in.TableName = aws.String("ab") }),
			invalid, "1 validation error detected: Value 'ab' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			c := newClient(srv)
			if _, err := c.PutItem(ctx, claim("run-1")); err != nil {
				t.Fatal(err)
			}
			before := srv.Items(tableName)

			err := tt.call(c)
			if got := errorCode(err); got != tt.wantCode {
				t.Fatalf("error = %v, want %s", err, tt.wantCode)
			}
			if got := errorMessage(err); got != tt.wantMsg {
				t.Errorf("message = %q\nwant      %q", got, tt.wantMsg)
			}
			var respErr *awshttp.ResponseError
			if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != 400 {
				t.Errorf("error = %v, want HTTP 400", err)
			}
			if after := srv.Items(tableName); len(after) != len(before) || show(after[0]) != show(before[0]) {
				t.Errorf("the refused request changed the table: %v", after)
			}
		})
	}
}

func TestOtherOperationsAreUnknown(t *testing.T) {
	srv := newServer(t)
	c := newClient(srv)
	_, err := c.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(tableName)})
	if got := errorCode(err); got != "UnknownOperationException" {
		t.Errorf("Scan = %v, want UnknownOperationException", err)
	}
	if got := srv.Calls("Scan"); got != 1 {
		t.Errorf("Calls(Scan) = %d, want 1", got)
	}
}
