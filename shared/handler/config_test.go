package handler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// lambdaEnv sets what Lambda sets (and what a local run adds) and clears what the
// machine may export.
func lambdaEnv(t *testing.T, vars map[string]string) {
	for _, k := range []string{"AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"} {
		t.Setenv(k, "")
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

// The SDK clients built from LambdaConfig sign with the role's credentials from the
// environment and reach the endpoint AWS_ENDPOINT_URL_<SERVICE> names.
func TestLambdaConfigSignsWithTheRolesCredentialsAtTheServiceEndpoint(t *testing.T) {
	var auth, token string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, token = r.Header.Get("Authorization"), r.Header.Get("X-Amz-Security-Token")
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Write([]byte(`{"ARN":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:s-AbCdEf","Name":"s","SecretString":"v","VersionId":"00000000-0000-4000-8000-000000000000"}`))
	}))
	defer srv.Close()
	lambdaEnv(t, map[string]string{
		"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "ASIAEXAMPLEROLEKEY", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_SESSION_TOKEN": "session", "AWS_ENDPOINT_URL_SECRETS_MANAGER": srv.URL,
	})
	cfg, err := LambdaConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-west-1" {
		t.Fatalf("region %q", cfg.Region)
	}
	out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.SecretString) != "v" {
		t.Fatalf("secret %q", aws.ToString(out.SecretString))
	}
	if !strings.Contains(auth, "Credential=ASIAEXAMPLEROLEKEY/") || !strings.Contains(auth, "/eu-west-1/secretsmanager/aws4_request") || token != "session" {
		t.Fatalf("request signed %q with token %q", auth, token)
	}
}

// Without the role's credentials a function stops at start-up saying so, rather than
// failing each invocation at its first AWS call.
func TestLambdaConfigRefusesMissingCredentials(t *testing.T) {
	lambdaEnv(t, map[string]string{"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
	if _, err := LambdaConfig(); err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("err = %v", err)
	}
}
