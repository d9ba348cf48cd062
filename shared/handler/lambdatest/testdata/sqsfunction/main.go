// Command sqsfunction is a tiny Lambda function for lambdatest's SQS mapping test: it
// reports each message whose body is "fail" as a batch item failure, and fails the whole
// invocation when one says "crash".
package main

import (
	"context"
	"errors"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func handle(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, r := range ev.Records {
		switch {
		case r.Body == "crash":
			return resp, errors.New("crash")
		case r.Body == "fail" || r.EventSource != "aws:sqs":
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		}
	}
	return resp, nil
}

func main() { lambda.Start(handle) }
