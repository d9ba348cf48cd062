package dynamotest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/ledger/dynamotest"
)

func TestFaultsBecomeTheSDKsErrors(t *testing.T) {
	tests := []struct {
		name       string
		fault      dynamotest.Fault
		wantCode   string
		wantStatus int
		wantAs     any // a pointer to the typed error the SDK returns, where the model has one
		wantMsg    string
	}{
		{name: "throttling is a ThrottlingException", fault: dynamotest.Throttle,
			wantCode: "ThrottlingException", wantStatus: 400, wantAs: new(*types.ThrottlingException)},
		{name: "provisioned throughput is a ProvisionedThroughputExceededException", fault: dynamotest.ProvisionedThroughputExceeded,
			wantCode: "ProvisionedThroughputExceededException", wantStatus: 400, wantAs: new(*types.ProvisionedThroughputExceededException)},
		{name: "an internal error is an InternalServerError", fault: dynamotest.InternalError,
			wantCode: "InternalServerError", wantStatus: 500, wantAs: new(*types.InternalServerError)},
		{name: "a missing permission is an AccessDeniedException naming the action and the table", fault: dynamotest.AccessDenied,
			wantCode: "AccessDeniedException", wantStatus: 400,
			wantMsg: "User: arn:aws:sts::123456789012:assumed-role/relay/relay is not authorized to perform: dynamodb:PutItem on resource: " +
				"arn:aws:dynamodb:us-east-1:123456789012:table/ledger because no identity-based policy allows the dynamodb:PutItem action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			srv.SetFault(tt.fault)
			_, err := newClient(srv).PutItem(context.Background(), claim("run-1"))
			if got := errorCode(err); got != tt.wantCode {
				t.Fatalf("PutItem = %v, want %s", err, tt.wantCode)
			}
			if errorMessage(err) == "" || tt.wantMsg != "" && errorMessage(err) != tt.wantMsg {
				t.Errorf("message = %q, want %q", errorMessage(err), tt.wantMsg)
			}
			var respErr *awshttp.ResponseError
			if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != tt.wantStatus {
				t.Errorf("PutItem = %v, want status %d", err, tt.wantStatus)
			}
			if tt.wantAs != nil && !errors.As(err, tt.wantAs) {
				t.Errorf("PutItem = %v, want it to be a %T", err, tt.wantAs)
			}
			if got := srv.Items(tableName); len(got) != 0 {
				t.Errorf("a faulted PutItem wrote %v", got)
			}
		})
	}
}

func TestThrottlingNamesTheTableAndTheKindOfAccess(t *testing.T) {
	srv := newServer(t)
	srv.SetFault(dynamotest.Throttle)
	_, err := newClient(srv).GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(tableName), Key: key("a")})
	var throttled *types.ThrottlingException
	if !errors.As(err, &throttled) || len(throttled.ThrottlingReasons) != 1 ||
		aws.ToString(throttled.ThrottlingReasons[0].Reason) != "TableReadKeyRangeThroughputExceeded" ||
		aws.ToString(throttled.ThrottlingReasons[0].Resource) != "arn:aws:dynamodb:us-east-1:123456789012:table/ledger" {
		t.Errorf("GetItem = %v, want a ThrottlingException with the table's read reason", err)
	}
}

// TestTheSDKRetriesByItselfAndEveryAttemptCounts: the DynamoDB client retries throttling,
// 5xx and dropped connections (4 attempts by default); the server counts each attempt.
func TestTheSDKRetriesByItselfAndEveryAttemptCounts(t *testing.T) {
	noBackoff := func(o *dynamodb.Options) {
		o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 4
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	}
	tests := []struct {
		name      string
		fault     dynamotest.Fault
		wantErr   string
		wantCalls int
	}{
		{"a throttled request is retried", dynamotest.Throttle.Times(1), "", 2},
		{"an internal error is retried", dynamotest.InternalError.Times(2), "", 3},
		{"provisioned throughput is retried", dynamotest.ProvisionedThroughputExceeded.Times(3), "", 4},
		{"throttling that lasts exhausts the attempts", dynamotest.Throttle, "ThrottlingException", 4},
		{"a dropped connection is retried and is not counted", dynamotest.Down.Times(1), "", 1},
		{"a missing permission is not retried", dynamotest.AccessDenied, "AccessDeniedException", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			srv.SetFault(tt.fault)
			_, err := srv.Client(noBackoff).PutItem(context.Background(), claim("run-1"))
			if got := errorCode(err); got != tt.wantErr || (tt.wantErr == "" && err != nil) {
				t.Fatalf("PutItem = %v, want %q", err, tt.wantErr)
			}
			if got := srv.Calls("PutItem"); got != tt.wantCalls {
				t.Errorf("Calls(PutItem) = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestAFaultForOneOperationLeavesTheOthersAlone(t *testing.T) {
	srv := newServer(t)
	c := newClient(srv)
	ctx := context.Background()
	srv.SetFault(dynamotest.Throttle.For("UpdateItem").Times(1))
	if _, err := c.PutItem(ctx, claim("run-1")); err != nil {
		t.Fatalf("the claim: PutItem = %v", err)
	}
	if _, err := c.UpdateItem(ctx, complete("run-1")); errorCode(err) != "ThrottlingException" {
		t.Fatalf("the completion: UpdateItem = %v, want ThrottlingException", err)
	}
	if _, err := c.UpdateItem(ctx, complete("run-1")); err != nil {
		t.Errorf("the completion again: UpdateItem = %v, want the fault used up", err)
	}
	if got := []int{srv.Calls("PutItem"), srv.Calls("UpdateItem"), srv.Calls("")}; !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("Calls(PutItem, UpdateItem, all) = %v, want [1 2 3]", got)
	}
}

func TestDownDropsTheConnectionWithoutAnAnswer(t *testing.T) {
	srv := newServer(t)
	srv.SetFault(dynamotest.Down)
	_, err := newClient(srv).PutItem(context.Background(), claim("run-1"))
	if err == nil || errorCode(err) != "" {
		t.Fatalf("PutItem = %v, want a connection error", err)
	}
	if got := srv.Calls(""); got != 0 {
		t.Errorf("Calls = %d, want 0", got)
	}
	srv.SetFault(dynamotest.None)
	if _, err := newClient(srv).PutItem(context.Background(), claim("run-1")); err != nil {
		t.Errorf("after SetFault(None): PutItem = %v", err)
	}
}

func TestSlowWaitsUntilTheClientGivesUp(t *testing.T) {
	srv := newServer(t)
	srv.SetFault(dynamotest.Slow(time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newClient(srv).PutItem(ctx, claim("run-1"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("PutItem = %v, want %v", err, context.DeadlineExceeded)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("PutItem took %v, want about 100ms", d)
	}

	srv.SetFault(dynamotest.Slow(200 * time.Millisecond))
	start = time.Now()
	if _, err := newClient(srv).PutItem(context.Background(), claim("run-2")); err != nil {
		t.Fatalf("PutItem = %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("PutItem took %v, want at least 200ms", d)
	}
}

// signed builds a raw DynamoDB request signed with the SDK's own signer, which the
// server's independent check must agree with, as sign says.
func signed(t *testing.T, srv *dynamotest.Server, op, body string, sign func(*signing)) *http.Request {
	t.Helper()
	sg := signing{accessKey: awstest.AccessKeyID, secretKey: awstest.SecretAccessKey, region: awstest.Region, service: "dynamodb", at: time.Now()}
	if sign != nil {
		sign(&sg)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810."+op)
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: sg.accessKey, SecretAccessKey: sg.secretKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), sg.service, sg.region, sg.at); err != nil {
		t.Fatal(err)
	}
	return req
}

type signing struct {
	accessKey, secretKey, region, service string
	at                                    time.Time
}

func TestTheServerChecksSignaturesAndAnswersAsDynamoDBDoes(t *testing.T) {
	const body = `{"TableName":"ledger","Key":{"id":{"S":"run-1"}}}`
	tests := []struct {
		name     string
		sign     func(*signing)
		unsigned bool
		wantType string // the whole __type, "" for success
	}{
		{name: "a request signed by the SDK's signer passes"},
		{name: "an unknown access key is an UnrecognizedClientException",
			sign: func(s *signing) { s.accessKey = "AKIAOTHER" }, wantType: "com.amazon.coral.service#UnrecognizedClientException"},
		{name: "a wrong secret key is an InvalidSignatureException",
			sign: func(s *signing) { s.secretKey = "wrong" }, wantType: "com.amazon.coral.service#InvalidSignatureException"},
		{name: "a signature scoped to another service is an InvalidSignatureException",
			sign: func(s *signing) { s.service = "sts" }, wantType: "com.amazon.coral.service#InvalidSignatureException"},
		{name: "another region is an InvalidSignatureException",
			sign: func(s *signing) { s.region = "eu-west-1" }, wantType: "com.amazon.coral.service#InvalidSignatureException"},
		{name: "a signature 6 minutes old is an InvalidSignatureException",
			sign: func(s *signing) { s.at = s.at.Add(-6 * time.Minute) }, wantType: "com.amazon.coral.service#InvalidSignatureException"},
		{name: "no signature is a MissingAuthenticationTokenException",
			unsigned: true, wantType: "com.amazon.coral.service#MissingAuthenticationTokenException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			req := signed(t, srv, "GetItem", body, tt.sign)
			if tt.unsigned {
				req.Header.Del("Authorization")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if tt.wantType == "" {
				if resp.StatusCode != 200 || string(got) != "{}" {
					t.Errorf("answer = %d %s, want 200 {}", resp.StatusCode, got)
				}
				return
			}
			// DynamoDB answers every authentication failure with 400, not 403.
			if resp.StatusCode != 400 || !bytes.Contains(got, []byte(`"__type":"`+tt.wantType+`"`)) || !bytes.Contains(got, []byte(`"message":"`)) {
				t.Errorf("answer = %d %s, want 400 with __type %s", resp.StatusCode, got, tt.wantType)
			}
			if n := srv.Calls(""); n != 0 {
				t.Errorf("Calls = %d, want 0: a refused signature is no call", n)
			}
		})
	}
}

func TestWrongCredentialsBecomeTheSDKsErrors(t *testing.T) {
	for _, tt := range []struct {
		name, accessKey, secretKey, want string
	}{
		{"an unknown access key", "AKIAOTHER", awstest.SecretAccessKey, "UnrecognizedClientException"},
		{"a wrong secret key", awstest.AccessKeyID, "wrong", "InvalidSignatureException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			c := newClient(srv, func(o *dynamodb.Options) {
				o.Credentials = credentials.NewStaticCredentialsProvider(tt.accessKey, tt.secretKey, "")
			})
			_, err := c.PutItem(context.Background(), claim("run-1"))
			var respErr *awshttp.ResponseError
			if errorCode(err) != tt.want || !errors.As(err, &respErr) || respErr.HTTPStatusCode() != 400 {
				t.Errorf("PutItem = %v, want %s with status 400", err, tt.want)
			}
		})
	}
}

// TestEveryAnswerCarriesTheCRC32OfItsBody: the SDK checks X-Amz-Crc32 on success, as
// DynamoDB sends it; the server sends it on errors too.
func TestEveryAnswerCarriesTheCRC32OfItsBody(t *testing.T) {
	srv := newServer(t)
	for _, body := range []string{`{"TableName":"ledger","Key":{"id":{"S":"a"}}}`, `{"TableName":"other","Key":{"id":{"S":"a"}}}`} {
		resp, err := http.DefaultClient.Do(signed(t, srv, "GetItem", body, nil))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := strconv.FormatUint(uint64(crc32.ChecksumIEEE(got)), 10); resp.Header.Get("X-Amz-Crc32") != want {
			t.Errorf("%s: X-Amz-Crc32 = %q, want %s", got, resp.Header.Get("X-Amz-Crc32"), want)
		}
		if id := resp.Header.Get("X-Amzn-Requestid"); len(id) != 52 || strings.ToUpper(id) != id {
			t.Errorf("X-Amzn-Requestid = %q, want 52 characters as DynamoDB's", id)
		}
	}
	// And the SDK, which verifies it, reads a success.
	put(t, newClient(srv), record{"id": s("a"), "data": s(strings.Repeat("é", 1000))})
	if got := get(t, newClient(srv), "a"); got == nil {
		t.Error("GetItem = nil after PutItem")
	}
}

func TestRequestsShowEveryBodyTheServerRead(t *testing.T) {
	srv := newServer(t)
	c := newClient(srv, func(o *dynamodb.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIAOTHER", "x", "")
	})
	_, _ = c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: record{"id": s("a"), "secret": s("s3cret")}})
	put(t, newClient(srv), record{"id": s("b"), "payload": s("hello")})
	got := srv.Requests()
	if len(got) != 2 || !bytes.Contains(got[0], []byte("s3cret")) || !bytes.Contains(got[1], []byte("hello")) {
		t.Errorf("Requests() = %q, want both bodies, the refused one first", got)
	}
}

// LoadDefaultConfig reads the machine's environment and files, so every variable it would read is set here.
func TestTheEnvironmentRouteReachesTheServer(t *testing.T) {
	srv := newServer(t)
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
		"AWS_MAX_ATTEMPTS":                    "",
		"AWS_RETRY_MODE":                      "",
		"AWS_ACCOUNT_ID_ENDPOINT_MODE":        "",
	} {
		t.Setenv(k, v)
	}
	env := srv.Env()
	if !slices.Contains(env, "AWS_ENDPOINT_URL_DYNAMODB="+srv.URL) || !slices.Contains(env, "AWS_EC2_METADATA_DISABLED=true") {
		t.Errorf("Env() = %q, want the endpoint and the test account", env)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatalf("LoadDefaultConfig = %v", err)
	}
	if _, err := dynamodb.NewFromConfig(cfg).PutItem(context.Background(), claim("run-1")); err != nil {
		t.Fatalf("PutItem = %v", err)
	}
	if got := srv.Calls("PutItem"); got != 1 {
		t.Errorf("Calls(PutItem) = %d, want 1", got)
	}
}

func TestTLSServesTheSameAPI(t *testing.T) {
	srv := dynamotest.NewTLS(nil)
	defer srv.Close()
	srv.CreateTable(tableName, "id")
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Errorf("URL = %q", srv.URL)
	}
	put(t, newClient(srv), record{"id": s("a")})
	if got := get(t, newClient(srv), "a"); got == nil {
		t.Error("GetItem = nil over TLS")
	}
}

// TestRacingClaimsHaveExactlyOneWinner: two Lambda containers, or many, claim the same
// run at once; the condition and the write are one step, so one wins.
func TestRacingClaimsHaveExactlyOneWinner(t *testing.T) {
	srv := newServer(t)
	const racers = 32
	var wg sync.WaitGroup
	errs := make(chan error, racers)
	start := make(chan struct{})
	for i := range racers {
		c := newClient(srv) // each container has its own client and connections
		wg.Go(func() {
			in := claim("run-1")
			in.Item["owner"] = s(strconv.Itoa(i))
			<-start
			_, err := c.PutItem(context.Background(), in)
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		var failed *types.ConditionalCheckFailedException
		switch {
		case err == nil:
			wins++
		case errors.As(err, &failed):
			if failed.Item["owner"] == nil {
				t.Errorf("a losing claim's ConditionalCheckFailedException has no owner: %s", show(failed.Item))
			}
		default:
			t.Errorf("PutItem = %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d claims won, want exactly 1", wins)
	}
	if got := srv.Calls("PutItem"); got != racers {
		t.Errorf("Calls(PutItem) = %d, want %d", got, racers)
	}
}

func TestCloseDoesNotWaitForASlowAnswer(t *testing.T) {
	srv := dynamotest.New()
	srv.CreateTable(tableName, "id")
	srv.SetFault(dynamotest.Slow(time.Minute))
	started := make(chan struct{})
	go func() {
		close(started)
		newClient(srv).PutItem(context.Background(), claim("run-1"))
	}()
	<-started
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	srv.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
}
