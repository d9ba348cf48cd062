package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/handler"
	"github.com/port-azure-relay/relay/shared/metrics"
	"github.com/port-azure-relay/relay/shared/relay"
	"github.com/port-azure-relay/relay/shared/secret"
	"github.com/port-azure-relay/relay/shared/signature"
)

// syncBuffer is a log destination shared by concurrent invocations.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// TestConcurrentInvocations runs 100 invocations of one relay handler at once, in
// this process (the emulator takes one at a time), with the real Secrets Manager
// client against smtest and the real Azure client against azdotest.
func TestConcurrentInvocations(t *testing.T) {
	t.Parallel()
	const n = 100
	sm := newSM(t)
	az := newAzure(t, false)
	cfg := aws.Config{
		Region:      awstest.Region,
		Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, awstest.SecretAccessKey, ""),
	}
	client := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(sm.URL) })
	var logs syncBuffer
	addAuditSource(logs.Lines)
	core := &relay.Relay{
		Secrets: secret.NewSource(client, secretName, time.Minute, nil),
		Routes:  relay.NewRoutes(org, hookDeploy, []string{hookDeploy, hookRotated}, nil, &azdo.Client{BaseURL: az.URL, Org: org, HTTP: azdo.NewHTTPClient(nil)}, nil),
		Log:     handler.Logger(&logs),
		Metrics: metrics.New(metrics.DefaultNamespace, metrics.FunctionRelay),
	}
	invoke := handler.Invoke(core)

	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = portBody(fmt.Sprintf("r_concurrent_%03d", i))
	}
	go1 := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ev := signedEvent(i, "/", bodies[i])
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: fmt.Sprintf("req-%03d", i)})
			<-go1
			out, err := invoke(ctx, ev)
			// As Lambda serialises it: the 1.0 shape for REST events, 2.0 for the others.
			var resp events.APIGatewayV2HTTPResponse
			b, mErr := json.Marshal(out)
			ok := mErr == nil && json.Unmarshal(b, &resp) == nil
			switch {
			case err != nil || !ok:
				errs <- fmt.Errorf("invocation %d: %v %v", i, out, err)
			case resp.StatusCode != 200 || !strings.Contains(resp.Body, fmt.Sprintf(`"runId":"r_concurrent_%03d"`, i)):
				errs <- fmt.Errorf("invocation %d: %d %s", i, resp.StatusCode, resp.Body)
			}
		})
	}
	close(go1)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	sent := map[string]bool{}
	for _, b := range bodies {
		sent[string(b)] = true
	}
	deliveries := az.Deliveries()
	if len(deliveries) != n {
		t.Fatalf("%d deliveries, want %d", len(deliveries), n)
	}
	for _, d := range deliveries {
		if !d.Verified || !sent[string(d.Body)] {
			t.Errorf("delivery verified=%v of a body not sent, or sent twice: %.80s", d.Verified, d.Body)
		}
		if got, want := d.Header.Get(signature.AzureDefaultHeader), signature.SignAzure([]byte(portSecret), d.Body); got != want {
			t.Errorf("delivery signed %s, want %s", got, want)
		}
		delete(sent, string(d.Body))
	}
	if calls := sm.Calls(); calls != 1 {
		t.Errorf("Secrets Manager called %d times, want 1 (one read shared by all)", calls)
	}
	lines := logs.Lines()
	if len(lines) != n {
		t.Errorf("%d log lines, want %d", len(lines), n)
	}
	forwarded := 0.0
	for _, l := range lines {
		var m map[string]any
		_ = json.Unmarshal([]byte(l), &m)
		f, _ := m["Forwarded"].(float64)
		forwarded += f
	}
	if forwarded != n {
		t.Errorf("the lines count %v Forwarded, want %d", forwarded, n)
	}
}
