package smtest_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

const secretName = "relay/port"

// newClient builds the real SDK client the way a Lambda would, pointed at srv, with one attempt unless opts say more.
func newClient(srv *smtest.Server, opts ...func(*secretsmanager.Options)) *secretsmanager.Client {
	cfg := aws.Config{
		Region:      awstest.Region,
		Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, awstest.SecretAccessKey, ""),
	}
	base := func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.RetryMaxAttempts = 1
	}
	return secretsmanager.NewFromConfig(cfg, append([]func(*secretsmanager.Options){base}, opts...)...)
}

func newServer(t *testing.T) *smtest.Server {
	t.Helper()
	srv := smtest.New()
	t.Cleanup(srv.Close)
	return srv
}

func get(client *secretsmanager.Client, id string) (*secretsmanager.GetSecretValueOutput, error) {
	return client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
}

// The SDK only decodes these answers if the server speaks AWS JSON 1.1 as it expects; the server in turn
// refuses any other content type, so a success proves the SDK sends JSON 1.1 and not CBOR.
func TestTheSDKReadsASecretByNameAndByARN(t *testing.T) {
	srv := newServer(t)
	before := time.Now().Add(-time.Second)
	arn := srv.Put(secretName, `{"clientSecret":"s3cret"}`)
	client := newClient(srv)

	for _, id := range []string{secretName, arn, arn[:len(arn)-len("-ABCDEF")]} {
		out, err := get(client, id)
		if err != nil {
			t.Fatalf("GetSecretValue(%q) = %v", id, err)
		}
		if aws.ToString(out.SecretString) != `{"clientSecret":"s3cret"}` || aws.ToString(out.Name) != secretName ||
			aws.ToString(out.ARN) != arn || len(aws.ToString(out.VersionId)) != 36 ||
			!slices.Equal(out.VersionStages, []string{"AWSCURRENT"}) {
			t.Errorf("GetSecretValue(%q) = %+v", id, out)
		}
		if c := aws.ToTime(out.CreatedDate); c.Before(before) || c.After(time.Now()) {
			t.Errorf("GetSecretValue(%q).CreatedDate = %v, want about now", id, c)
		}
	}
	if got := srv.Calls(); got != 3 {
		t.Errorf("Calls() = %d, want 3", got)
	}
}

func TestPutReplacesTheValueUnderANewVersionAndTheSameARN(t *testing.T) {
	srv := newServer(t)
	client := newClient(srv)
	arn1 := srv.Put(secretName, "old")
	out1, err := get(client, secretName)
	if err != nil {
		t.Fatal(err)
	}
	arn2 := srv.Put(secretName, "new")
	out2, err := get(client, arn1)
	if err != nil {
		t.Fatal(err)
	}
	if arn1 != arn2 || aws.ToString(out2.SecretString) != "new" || aws.ToString(out1.VersionId) == aws.ToString(out2.VersionId) {
		t.Errorf("after two Puts: ARNs %q, %q; value %q; versions %q, %q",
			arn1, arn2, aws.ToString(out2.SecretString), aws.ToString(out1.VersionId), aws.ToString(out2.VersionId))
	}
}

// Put is PutSecretValue: AWSCURRENT moves to the new version, AWSPREVIOUS to the
// one that was current, and the one before keeps no label but its VersionId.
func TestPutMovesTheVersionStagesAsSecretsManagerDoes(t *testing.T) {
	srv := newServer(t)
	client := newClient(srv)
	read := func(stage, versionID string) (*secretsmanager.GetSecretValueOutput, error) {
		in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretName)}
		if stage != "" {
			in.VersionStage = aws.String(stage)
		}
		if versionID != "" {
			in.VersionId = aws.String(versionID)
		}
		return client.GetSecretValue(context.Background(), in)
	}
	srv.Put(secretName, "v1")
	if _, err := read("AWSPREVIOUS", ""); !errors.As(err, new(*types.ResourceNotFoundException)) ||
		!strings.Contains(err.Error(), "staging label: AWSPREVIOUS") {
		t.Fatalf("AWSPREVIOUS before any rotation: %v, want ResourceNotFoundException naming the label", err)
	}
	v1, err := read("", "")
	if err != nil {
		t.Fatal(err)
	}
	srv.Put(secretName, "v2")
	srv.Put(secretName, "v3")

	tests := []struct {
		name, stage, versionID string
		want                   string   // the value, "" for an error
		stages                 []string // the version's labels
		code                   string   // the error code
	}{
		{name: "no stage reads AWSCURRENT", want: "v3", stages: []string{"AWSCURRENT"}},
		{name: "AWSCURRENT is the last put", stage: "AWSCURRENT", want: "v3", stages: []string{"AWSCURRENT"}},
		{name: "AWSPREVIOUS is the one before", stage: "AWSPREVIOUS", want: "v2", stages: []string{"AWSPREVIOUS"}},
		{name: "a version without a label is still read by VersionId", versionID: aws.ToString(v1.VersionId), want: "v1", stages: []string{}},
		{name: "a VersionId with a stage it does not have is an InvalidRequestException",
			stage: "AWSCURRENT", versionID: aws.ToString(v1.VersionId), code: "InvalidRequestException"},
		{name: "an unknown stage is a ResourceNotFoundException", stage: "AWSPENDING", code: "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := read(tt.stage, tt.versionID)
			if tt.code != "" {
				var apiErr smithy.APIError
				if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.code {
					t.Fatalf("GetSecretValue(%q, %q) = %v, want %s", tt.stage, tt.versionID, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetSecretValue(%q, %q) = %v", tt.stage, tt.versionID, err)
			}
			if aws.ToString(out.SecretString) != tt.want || !slices.Equal(out.VersionStages, tt.stages) {
				t.Errorf("GetSecretValue(%q, %q) = %q %v, want %q %v", tt.stage, tt.versionID,
					aws.ToString(out.SecretString), out.VersionStages, tt.want, tt.stages)
			}
		})
	}
	if got := srv.StageCalls("AWSPREVIOUS"); got != 2 {
		t.Errorf("StageCalls(AWSPREVIOUS) = %d, want 2", got)
	}
}

func TestErrorsBecomeTheSDKsErrors(t *testing.T) {
	wrongKey := credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, "not-the-key", "")
	tests := []struct {
		name       string
		setup      func(*smtest.Server)
		opt        func(*secretsmanager.Options)
		in         secretsmanager.GetSecretValueInput
		wantCode   string
		wantStatus int
		wantAs     any // a pointer to the typed error the SDK should return, if the model has one
	}{
		{name: "an unknown secret is a ResourceNotFoundException",
			in:       secretsmanager.GetSecretValueInput{SecretId: aws.String("other")},
			wantCode: "ResourceNotFoundException", wantStatus: 400, wantAs: new(*types.ResourceNotFoundException)},
		{name: "a deleted secret is a ResourceNotFoundException",
			setup:    func(s *smtest.Server) { s.Delete(secretName) },
			wantCode: "ResourceNotFoundException", wantStatus: 400, wantAs: new(*types.ResourceNotFoundException)},
		{name: "an unknown version is a ResourceNotFoundException",
			in:       secretsmanager.GetSecretValueInput{SecretId: aws.String(secretName), VersionId: aws.String("01234567-89ab-4def-8123-456789abcdef")},
			wantCode: "ResourceNotFoundException", wantStatus: 400, wantAs: new(*types.ResourceNotFoundException)},
		{name: "a previous stage is a ResourceNotFoundException",
			in:       secretsmanager.GetSecretValueInput{SecretId: aws.String(secretName), VersionStage: aws.String("AWSPREVIOUS")},
			wantCode: "ResourceNotFoundException", wantStatus: 400, wantAs: new(*types.ResourceNotFoundException)},
		{name: "throttling is a ThrottlingException",
			setup:    func(s *smtest.Server) { s.SetFault(smtest.Throttle) },
			wantCode: "ThrottlingException", wantStatus: 400},
		{name: "an internal error is an InternalServiceError",
			setup:    func(s *smtest.Server) { s.SetFault(smtest.InternalError) },
			wantCode: "InternalServiceError", wantStatus: 500, wantAs: new(*types.InternalServiceError)},
		{name: "a missing permission is an AccessDeniedException",
			setup:    func(s *smtest.Server) { s.SetFault(smtest.AccessDenied) },
			wantCode: "AccessDeniedException", wantStatus: 400},
		{name: "a wrong secret key is an InvalidSignatureException",
			opt:      func(o *secretsmanager.Options) { o.Credentials = wrongKey },
			wantCode: "InvalidSignatureException", wantStatus: 403},
		{name: "an unknown access key is an UnrecognizedClientException",
			opt: func(o *secretsmanager.Options) {
				o.Credentials = credentials.NewStaticCredentialsProvider("AKIAOTHER", awstest.SecretAccessKey, "")
			},
			wantCode: "UnrecognizedClientException", wantStatus: 403},
		{name: "a session token is an UnrecognizedClientException",
			opt: func(o *secretsmanager.Options) {
				o.Credentials = credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, awstest.SecretAccessKey, "token")
			},
			wantCode: "UnrecognizedClientException", wantStatus: 403},
		{name: "another region is an InvalidSignatureException",
			opt:      func(o *secretsmanager.Options) { o.Region = "eu-west-1" },
			wantCode: "InvalidSignatureException", wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			srv.Put(secretName, "s3cret")
			if tt.setup != nil {
				tt.setup(srv)
			}
			var opts []func(*secretsmanager.Options)
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			in := tt.in
			if in.SecretId == nil {
				in.SecretId = aws.String(secretName)
			}
			_, err := newClient(srv, opts...).GetSecretValue(context.Background(), &in)

			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.wantCode {
				t.Fatalf("GetSecretValue = %v, want %s", err, tt.wantCode)
			}
			if apiErr.ErrorMessage() == "" {
				t.Errorf("GetSecretValue = %v, want a message", err)
			}
			var respErr *awshttp.ResponseError
			if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != tt.wantStatus {
				t.Errorf("GetSecretValue = %v, want status %d", err, tt.wantStatus)
			}
			if tt.wantAs != nil && !errors.As(err, tt.wantAs) {
				t.Errorf("GetSecretValue = %v (%T), want it to be a %T", err, apiErr, tt.wantAs)
			}
		})
	}
}

func TestDownDropsTheConnectionWithoutAnAnswer(t *testing.T) {
	srv := newServer(t)
	srv.Put(secretName, "s3cret")
	srv.SetFault(smtest.Down)

	_, err := get(newClient(srv), secretName)
	var apiErr smithy.APIError
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("GetSecretValue = %v, want a connection error", err)
	}
	if got := srv.Calls(); got != 0 {
		t.Errorf("Calls() = %d, want 0", got)
	}

	srv.SetFault(smtest.None)
	if _, err := get(newClient(srv), secretName); err != nil {
		t.Errorf("after SetFault(None): GetSecretValue = %v", err)
	}
}

func TestSlowWaitsUntilTheClientGivesUp(t *testing.T) {
	srv := newServer(t)
	srv.Put(secretName, "s3cret")
	srv.SetFault(smtest.Slow(time.Minute))

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newClient(srv).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretName)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetSecretValue = %v, want %v", err, context.DeadlineExceeded)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("GetSecretValue took %v, want about 100ms", d)
	}
}

func TestSlowAnswersAfterTheDelay(t *testing.T) {
	srv := newServer(t)
	srv.Put(secretName, "s3cret")
	srv.SetFault(smtest.Slow(200 * time.Millisecond))

	start := time.Now()
	if _, err := get(newClient(srv), secretName); err != nil {
		t.Fatalf("GetSecretValue = %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("GetSecretValue took %v, want at least 200ms", d)
	}
}

func TestTheSDKRetriesAFaultThatLastsOneRequest(t *testing.T) {
	noBackoff := func(o *secretsmanager.Options) {
		o.RetryMaxAttempts = 3
		o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	}
	tests := []struct {
		name      string
		fault     smtest.Fault
		wantCalls int
	}{
		{"a throttled request is retried", smtest.Throttle.Times(1), 2},
		{"an internal error is retried", smtest.InternalError.Times(1), 2},
		{"a dropped connection is retried", smtest.Down.Times(1), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			srv.Put(secretName, "s3cret")
			srv.SetFault(tt.fault)
			if _, err := get(newClient(srv, noBackoff), secretName); err != nil {
				t.Fatalf("GetSecretValue = %v, want success on the second attempt", err)
			}
			if got := srv.Calls(); got != tt.wantCalls {
				t.Errorf("Calls() = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

// LoadDefaultConfig reads the machine's environment and files, so every variable it would read is set here.
func TestTheEnvironmentRouteReachesTheServer(t *testing.T) {
	srv := newServer(t)
	srv.Put(secretName, "s3cret")
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_CA_BUNDLE":                       "",
		"AWS_CONFIG_FILE":                     dir + "/config",
		"AWS_SHARED_CREDENTIALS_FILE":         dir + "/credentials",
		"AWS_ENDPOINT_URL":                    "",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "",
		"AWS_USE_FIPS_ENDPOINT":               "",
		"AWS_USE_DUALSTACK_ENDPOINT":          "",
		"AWS_DEFAULT_REGION":                  "",
	} {
		t.Setenv(k, v)
	}
	env := srv.Env()
	for _, want := range []string{"AWS_REGION=", "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=", "AWS_EC2_METADATA_DISABLED=true"} {
		if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, want) }) {
			t.Errorf("Env() = %q, want a line %s…", env, want)
		}
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}

	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatalf("LoadDefaultConfig = %v", err)
	}
	out, err := get(secretsmanager.NewFromConfig(cfg), secretName)
	if err != nil || aws.ToString(out.SecretString) != "s3cret" {
		t.Fatalf("GetSecretValue = %v, %v", out, err)
	}
}

func TestConcurrentUseIsSafe(t *testing.T) {
	srv := newServer(t)
	srv.Put(secretName, "v0")
	client := newClient(srv)
	const workers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := get(client, secretName); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range 10 {
		srv.Put(secretName, "v"+string(rune('1'+i)))
		srv.SetFault(smtest.None)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("GetSecretValue = %v", err)
	}
	if got := srv.Calls(); got != workers*each {
		t.Errorf("Calls() = %d, want %d", got, workers*each)
	}
}

func TestCloseDoesNotWaitForASlowAnswer(t *testing.T) {
	srv := smtest.New()
	srv.Put(secretName, "s3cret")
	srv.SetFault(smtest.Slow(time.Minute))
	started := make(chan struct{})
	go func() {
		close(started)
		get(newClient(srv), secretName)
	}()
	<-started
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	srv.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
}
