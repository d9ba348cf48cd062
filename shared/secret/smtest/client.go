package smtest

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/awstest"
)

// Client returns the real Secrets Manager client, signed with this server's
// credentials and pointed at it, built without reading the environment.
func (s *Server) Client() *secretsmanager.Client {
	cfg := aws.Config{
		Region:      awstest.Region,
		Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, awstest.SecretAccessKey, ""),
	}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(s.URL)
	})
}
