package ststest

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/port-azure-relay/relay/shared/awstest"
)

// Client returns the real STS client, signed with the test account's credentials and pointed at this server,
// built without reading the environment.
func (s *Server) Client(optFns ...func(*sts.Options)) *sts.Client {
	cfg := aws.Config{
		Region:      awstest.Region,
		Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, awstest.SecretAccessKey, ""),
	}
	base := func(o *sts.Options) { o.BaseEndpoint = aws.String(s.URL) }
	return sts.NewFromConfig(cfg, append([]func(*sts.Options){base}, optFns...)...)
}
