// Command naive is the relay anyone would write in an hour, the baseline cmd/bench
// holds the relay's cold start and warm latency to: on the first call it reads the
// secret with the SDK, then it signs each body with HMAC-SHA1 and POSTs it with
// http.DefaultClient. Nothing is checked, nothing is logged, everything in a row.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func main() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	url := os.Getenv("AZURE_DEVOPS_URL") + "/" + os.Getenv("AZURE_DEVOPS_ORG") +
		"/_apis/public/distributedtask/webhooks/" + os.Getenv("AZURE_DEVOPS_WEBHOOK") + "?api-version=6.0-preview"
	id := os.Getenv("PORT_SECRET_ID")
	var secret []byte

	lambda.Start(func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		if secret == nil {
			out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &id})
			if err != nil {
				return events.APIGatewayV2HTTPResponse{StatusCode: 503}, nil
			}
			secret = []byte(*out.SecretString)
		}
		mac := hmac.New(sha1.New, secret)
		mac.Write([]byte(req.Body))
		post, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(req.Body)))
		post.Header.Set("Content-Type", "application/json")
		post.Header.Set("x-port-signature", "sha1="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(post)
		if err != nil {
			return events.APIGatewayV2HTTPResponse{StatusCode: 502}, nil
		}
		io.Copy(io.Discard, resp.Body) // so that the connection is kept for the next call
		resp.Body.Close()
		return events.APIGatewayV2HTTPResponse{StatusCode: resp.StatusCode, Body: `{"forwarded":true}`}, nil
	})
}
