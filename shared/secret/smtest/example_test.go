package smtest_test

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

func Example() {
	srv := smtest.New()
	defer srv.Close()
	srv.Put("relay/port", `{"clientSecret":"s3cret"}`)

	cfg := aws.Config{
		Region:      awstest.Region,
		Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, awstest.SecretAccessKey, ""),
	}
	client := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
	})
	out, err := client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{
		SecretId: aws.String("relay/port"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*out.SecretString, out.VersionStages, srv.Calls())
	// Output: {"clientSecret":"s3cret"} [AWSCURRENT] 1
}
