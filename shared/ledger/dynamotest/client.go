package dynamotest

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/port-azure-relay/relay/shared/awstest"
)

// Client returns the real DynamoDB client, signed with the test account's credentials
// and pointed at this server (trusting its certificate, for NewTLS), built without
// reading the environment. optFns change its options as they would
// dynamodb.NewFromConfig's: a test's retry policy, say.
func (s *Server) Client(optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	cfg := aws.Config{
		Region:      awstest.Region,
		Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, awstest.SecretAccessKey, ""),
	}
	base := func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(s.URL)
		if s.srv.TLS != nil {
			o.HTTPClient = s.srv.Client()
		}
	}
	return dynamodb.NewFromConfig(cfg, append([]func(*dynamodb.Options){base}, optFns...)...)
}
