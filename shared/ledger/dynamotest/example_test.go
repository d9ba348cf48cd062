package dynamotest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
)

// A claim with a condition wins once; the second one fails with the record that won.
func Example() {
	srv := dynamotest.New()
	defer srv.Close()
	srv.CreateTable("ledger", "id")
	client := srv.Client()

	claim := &dynamodb.PutItemInput{
		TableName: aws.String("ledger"),
		Item: map[string]types.AttributeValue{
			"id":     &types.AttributeValueMemberS{Value: "run-42"},
			"status": &types.AttributeValueMemberS{Value: "INPROGRESS"},
		},
		ConditionExpression:                 aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames:            map[string]string{"#id": "id"},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	_, err := client.PutItem(context.Background(), claim)
	fmt.Println("first claim:", err)

	_, err = client.PutItem(context.Background(), claim)
	var taken *types.ConditionalCheckFailedException
	if errors.As(err, &taken) {
		fmt.Println("second claim:", taken.ErrorMessage(), "-", taken.Item["status"].(*types.AttributeValueMemberS).Value)
	}

	// Bare reserved words are refused, as DynamoDB refuses them.
	claim.ConditionExpression = aws.String("attribute_not_exists(status)")
	claim.ExpressionAttributeNames = nil
	_, err = client.PutItem(context.Background(), claim)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.ErrorCode()+":", apiErr.ErrorMessage())
	}
	fmt.Println(srv.Calls("PutItem"), "PutItem calls")
	// Output:
	// first claim: <nil>
	// second claim: The conditional request failed - INPROGRESS
	// ValidationException: Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: status
	// 3 PutItem calls
}
