// Command sdkhello is hello plus what the relay's mandated AWS packages cost at
// start-up: it loads the AWS config and creates the Secrets Manager client once,
// as the relay does, and then answers every event with the same 200. It is the
// floor cmd/bench holds the relay's cold start to.
package main

import (
	"context"
	"encoding/json"
	"log"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func main() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatalf("load AWS config: %v", err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	lambda.Start(func(ctx context.Context, raw json.RawMessage) (events.APIGatewayV2HTTPResponse, error) {
		_ = sm // held for the container's life, as the relay holds its client
		return events.APIGatewayV2HTTPResponse{
			StatusCode: 200,
			Headers:    map[string]string{"Content-Type": "application/json"},
			Body:       `{"hello":"world"}`,
		}, nil
	})
}
