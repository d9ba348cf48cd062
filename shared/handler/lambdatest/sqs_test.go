package lambdatest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/queue/sqstest"
)

// queueFixture is an SQS stand-in on a test clock with one queue, whose messages are
// visible again 30 s (of the clock) after a receive.
type queueFixture struct {
	srv   *sqstest.Server
	clock *sqstest.Clock
	c     *sqs.Client
	url   string
}

func newQueue(t *testing.T) *queueFixture {
	t.Helper()
	srv := sqstest.New()
	t.Cleanup(srv.Close)
	clock := sqstest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	srv.Now = clock.Now
	return &queueFixture{srv: srv, clock: clock, c: srv.Client(), url: srv.CreateQueue("deliveries", map[string]string{"VisibilityTimeout": "30"})}
}

func (q *queueFixture) send(t *testing.T, bodies ...string) (ids []string) {
	t.Helper()
	for _, b := range bodies {
		out, err := q.c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &q.url, MessageBody: aws.String(b),
			MessageAttributes: map[string]types.MessageAttributeValue{"kind": {DataType: aws.String("String"), StringValue: aws.String("test")}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, *out.MessageId)
	}
	return ids
}

func (q *queueFixture) counts(t *testing.T) string {
	t.Helper()
	out, err := q.c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &q.url,
		AttributeNames: []types.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["ApproximateNumberOfMessages"] + " visible, " + out.Attributes["ApproximateNumberOfMessagesNotVisible"] + " in flight"
}

// runUntil runs m until it has reported n batches (or 10 s pass), then stops it.
func runUntil(t *testing.T, m *SQSMapping, n int) []Batch {
	t.Helper()
	var mu sync.Mutex
	var batches []Batch
	done := make(chan struct{})
	m.OnBatch = func(b Batch) {
		mu.Lock()
		defer mu.Unlock()
		if batches = append(batches, b); len(batches) == n {
			close(done)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- m.Run(ctx) }()
	select {
	case <-done:
	case err := <-ran:
		t.Fatalf("Run = %v before %d batches", err, n)
	case <-time.After(10 * time.Second):
		t.Errorf("%d batches in 10 s, want %d", len(batches), n)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run = %v", err)
	}
	// The poll that Run abandoned ends at the server once it sees the connection close;
	// until then it could still take a message, as an abandoned poll can in SQS.
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(batches)
}

func TestSQSMappingDeliversLikeLambda(t *testing.T) {
	q := newQueue(t)
	ids := q.send(t, "one", "two", "three")
	var got events.SQSEvent
	fn := InvokerFunc(func(_ context.Context, event []byte) ([]byte, error) {
		if err := json.Unmarshal(event, &got); err != nil {
			return nil, err
		}
		var raw map[string][]map[string]any
		json.Unmarshal(event, &raw)
		if v, ok := raw["Records"][0]["md5OfMessageAttributes"]; !ok || v == nil {
			t.Errorf("md5OfMessageAttributes = %v, want the checksum of the attributes", v)
		}
		return json.Marshal(events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: got.Records[1].MessageId}}})
	})
	b := runUntil(t, &SQSMapping{Client: q.c, QueueURL: q.url, Functions: []Invoker{fn}, ReportBatchItemFailures: true}, 1)[0]
	if len(got.Records) != 3 {
		t.Fatalf("the event holds %d records, want the 3 messages", len(got.Records))
	}
	for i, r := range got.Records {
		if r.MessageId != ids[i] || r.ReceiptHandle == "" || r.EventSource != "aws:sqs" || r.EventSourceARN != sqstest.ARN("deliveries") ||
			r.AWSRegion != awstest.Region || r.Md5OfBody == "" || r.Attributes["ApproximateReceiveCount"] != "1" ||
			r.Attributes["SentTimestamp"] != "1893456000000" || r.Attributes["SenderId"] != sqstest.SenderID ||
			r.Attributes["ApproximateFirstReceiveTimestamp"] == "" || *r.MessageAttributes["kind"].StringValue != "test" ||
			r.MessageAttributes["kind"].DataType != "String" || r.Md5OfMessageAttributes == "" {
			t.Errorf("record %d = %+v", i, r)
		}
	}
	if !slices.Equal(b.MessageIDs, ids) || !slices.Equal(b.Deleted, []string{ids[0], ids[2]}) || b.Err != nil {
		t.Errorf("batch %+v, want all three, the first and third deleted", b)
	}
	if got := q.counts(t); got != "0 visible, 1 in flight" {
		t.Errorf("after the batch the queue holds %s, want the failed message in flight", got)
	}
	q.clock.Advance(30 * time.Second)
	var again events.SQSEvent
	runUntil(t, &SQSMapping{Client: q.c, QueueURL: q.url, Functions: []Invoker{InvokerFunc(func(_ context.Context, event []byte) ([]byte, error) {
		return nil, json.Unmarshal(event, &again)
	})}, ReportBatchItemFailures: true}, 1)
	if len(again.Records) != 1 || again.Records[0].MessageId != ids[1] || again.Records[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Errorf("after the visibility timeout: %+v, want the failed message, received twice", again.Records)
	}
	if got := q.counts(t); got != "0 visible, 0 in flight" {
		t.Errorf("the queue still holds %s", got)
	}
}

func TestSQSMappingReadsTheBatchResponseAsLambda(t *testing.T) {
	const first, second = "<first>", "<second>"
	tests := []struct {
		name    string
		report  bool
		answer  string
		err     error
		deleted []string // of first and second
		wantErr error
	}{
		{"an empty list fails nothing", true, `{"batchItemFailures":[]}`, nil, []string{first, second}, nil},
		{"a null list fails nothing", true, `{"batchItemFailures":null}`, nil, []string{first, second}, nil},
		{"an answer without the list fails nothing", true, `{"statusCode":200}`, nil, []string{first, second}, nil},
		{"a null answer fails nothing", true, `null`, nil, []string{first, second}, nil},
		{"an empty answer fails nothing", true, ``, nil, []string{first, second}, nil},
		{"a listed message stays", true, `{"batchItemFailures":[{"itemIdentifier":"<second>"}]}`, nil, []string{first}, nil},
		{"every listed message stays", true, `{"batchItemFailures":[{"itemIdentifier":"<first>"},{"itemIdentifier":"<second>"}]}`, nil, nil, nil},
		{"an empty itemIdentifier fails the batch", true, `{"batchItemFailures":[{"itemIdentifier":""}]}`, nil, nil, ErrBatchResponse},
		{"a null itemIdentifier fails the batch", true, `{"batchItemFailures":[{"itemIdentifier":null}]}`, nil, nil, ErrBatchResponse},
		{"a bad key name fails the batch", true, `{"batchItemFailures":[{"itemId":"<second>"}]}`, nil, nil, ErrBatchResponse},
		{"a message not in the batch fails the batch", true, `{"batchItemFailures":[{"itemIdentifier":"8a6f-not-here"}]}`, nil, nil, ErrBatchResponse},
		{"a list that is not one fails the batch", true, `{"batchItemFailures":"<second>"}`, nil, nil, ErrBatchResponse},
		{"an answer that is not JSON fails the batch", true, `ok`, nil, nil, ErrBatchResponse},
		{"a function error fails the batch", true, `{"errorType":"Failure","errorMessage":"no"}`, &FunctionError{Type: "Failure"}, nil, &FunctionError{}},
		{"a timeout fails the batch", true, `Task timed out after 3.00 seconds`, ErrTimedOut, nil, ErrTimedOut},
		{"without ReportBatchItemFailures the list is ignored", false, `{"batchItemFailures":[{"itemIdentifier":"<second>"}]}`, nil, []string{first, second}, nil},
		{"without ReportBatchItemFailures a function error still fails the batch", false, ``, &FunctionError{Type: "Failure"}, nil, &FunctionError{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(t)
			ids := q.send(t, "a", "b")
			label := strings.NewReplacer(first, ids[0], second, ids[1])
			fn := InvokerFunc(func(context.Context, []byte) ([]byte, error) { return []byte(label.Replace(tc.answer)), tc.err })
			b := runUntil(t, &SQSMapping{Client: q.c, QueueURL: q.url, Functions: []Invoker{fn}, ReportBatchItemFailures: tc.report}, 1)[0]
			var want []string
			for _, d := range tc.deleted {
				want = append(want, label.Replace(d))
			}
			var fe *FunctionError
			if !slices.Equal(b.Deleted, want) || (tc.wantErr == nil) != (b.Err == nil) ||
				tc.wantErr != nil && !errors.Is(b.Err, tc.wantErr) && !(errors.As(tc.wantErr, &fe) && errors.As(b.Err, &fe)) {
				t.Errorf("deleted %v (err %v), want %v (err %v)", b.Deleted, b.Err, want, tc.wantErr)
			}
			if got, want := q.counts(t), fmt.Sprintf("0 visible, %d in flight", 2-len(want)); got != want {
				t.Errorf("the queue holds %s, want %s", got, want)
			}
		})
	}
}

func TestSQSMappingBatches(t *testing.T) {
	tests := []struct {
		name      string
		messages  int
		size      int
		window    time.Duration
		wantSizes []int
	}{
		{"a batch is what one poll returns", 14, 0, 0, []int{10, 4}},
		{"a batch size under 10 asks for fewer", 7, 3, 0, []int{3, 3, 1}},
		{"a window gathers up to the batch size", 25, 20, time.Second, []int{20, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(t)
			bodies := make([]string, tc.messages)
			for i := range bodies {
				bodies[i] = fmt.Sprint(i)
			}
			q.send(t, bodies...)
			began := time.Now()
			batches := runUntil(t, &SQSMapping{Client: q.c, QueueURL: q.url, Functions: []Invoker{InvokerFunc(func(context.Context, []byte) ([]byte, error) { return nil, nil })},
				BatchSize: tc.size, MaximumBatchingWindow: tc.window}, len(tc.wantSizes))
			var sizes []int
			for _, b := range batches {
				sizes = append(sizes, len(b.Deleted))
			}
			if !slices.Equal(sizes, tc.wantSizes) {
				t.Errorf("batches of %v, want %v", sizes, tc.wantSizes)
			}
			if took := time.Since(began); tc.window > 0 && took < tc.window {
				t.Errorf("the last, partial batch came after %v, before the window of %v closed", took, tc.window)
			}
		})
	}
}

func TestSQSMappingKeepsToMaximumConcurrency(t *testing.T) {
	q := newQueue(t)
	q.send(t, strings.Split("a b c d e f g h i j k l", " ")...)
	var now, peak atomic.Int32
	var fns []Invoker
	for range 3 {
		var busy atomic.Bool
		fns = append(fns, InvokerFunc(func(context.Context, []byte) ([]byte, error) {
			if !busy.CompareAndSwap(false, true) {
				t.Error("one function instance got two invocations at once")
			}
			defer busy.Store(false)
			n := now.Add(1)
			defer now.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(100 * time.Millisecond)
			return nil, nil
		}))
	}
	runUntil(t, &SQSMapping{Client: q.c, QueueURL: q.url, Functions: fns, BatchSize: 1}, 12)
	if peak.Load() != 3 {
		t.Errorf("at most %d invocations at once, want 3", peak.Load())
	}
}

func TestSQSMappingRefusesWhatLambdaRefuses(t *testing.T) {
	q := newQueue(t)
	fn := []Invoker{InvokerFunc(func(context.Context, []byte) ([]byte, error) { return nil, nil })}
	for name, m := range map[string]*SQSMapping{
		"no functions":                   {Client: q.c, QueueURL: q.url},
		"a batch of 10,001":              {Client: q.c, QueueURL: q.url, Functions: fn, BatchSize: 10001, MaximumBatchingWindow: time.Second},
		"a batch of 11 without a window": {Client: q.c, QueueURL: q.url, Functions: fn, BatchSize: 11},
		"a window over 5 minutes":        {Client: q.c, QueueURL: q.url, Functions: fn, MaximumBatchingWindow: 301 * time.Second},
		"a window of part of a second":   {Client: q.c, QueueURL: q.url, Functions: fn, MaximumBatchingWindow: 1500 * time.Millisecond},
		"a queue that does not exist":    {Client: q.c, QueueURL: q.srv.URL + "/" + awstest.AccountID + "/nowhere", Functions: fn},
	} {
		if err := m.Run(context.Background()); err == nil {
			t.Errorf("%s: Run = nil, want an error", name)
		}
	}
}

// TestSQSMappingAgainstMoto runs the mapping against moto's SQS, which nobody here wrote.
func TestSQSMappingAgainstMoto(t *testing.T) {
	endpoint, stop, err := awstest.StartMoto(t.TempDir())
	if errors.Is(err, awstest.ErrNoMoto) {
		t.Skip("moto interop skipped: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	c := sqs.New(sqs.Options{Region: awstest.Region, BaseEndpoint: &endpoint, Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("deliveries")})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"ok", "fail"} {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: out.QueueUrl, MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	fn := InvokerFunc(func(_ context.Context, event []byte) ([]byte, error) {
		var ev events.SQSEvent
		json.Unmarshal(event, &ev)
		resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
		for _, r := range ev.Records {
			if r.Body == "fail" && r.EventSourceARN == "arn:aws:sqs:us-east-1:123456789012:deliveries" {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
		}
		return json.Marshal(resp)
	})
	b := runUntil(t, &SQSMapping{Client: c, QueueURL: *out.QueueUrl, Functions: []Invoker{fn}, ReportBatchItemFailures: true}, 1)[0]
	if len(b.MessageIDs) != 2 || len(b.Deleted) != 1 || b.Err != nil {
		t.Errorf("batch %+v, want two messages, the one that failed left", b)
	}
}

// TestSQSMappingInvokesABootstrap runs a tiny function built with aws-lambda-go under the
// Runtime Interface Emulator: the event decodes in Lambda's own library, and its
// events.SQSEventResponse leaves the messages it lists.
func TestSQSMappingInvokesABootstrap(t *testing.T) {
	if _, err := FindRIE(); err != nil {
		if os.Getenv("E2E_REQUIRE") != "" {
			t.Fatal(err)
		}
		t.Skip("the emulator is missing: " + err.Error())
	}
	ctx := context.Background()
	bootstrap := filepath.Join(t.TempDir(), "bootstrap")
	if err := Build(ctx, "./testdata/sqsfunction", bootstrap); err != nil {
		t.Fatal(err)
	}
	fn, err := Start(ctx, Options{Bootstrap: bootstrap, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer fn.Close()
	q := newQueue(t)
	ids := q.send(t, "ok", "fail", "ok")
	b := runUntil(t, &SQSMapping{Client: q.c, QueueURL: q.url, Functions: []Invoker{fn}, ReportBatchItemFailures: true}, 1)[0]
	if !slices.Equal(b.Deleted, []string{ids[0], ids[2]}) || b.Err != nil {
		t.Errorf("batch %+v, want the two that did not fail deleted\n%s", b, strings.Join(fn.Lines(), "\n"))
	}
	q.send(t, "crash")
	q.clock.Advance(30 * time.Second)
	b = runUntil(t, &SQSMapping{Client: q.c, QueueURL: q.url, Functions: []Invoker{fn}, ReportBatchItemFailures: true}, 1)[0]
	var fe *FunctionError
	if len(b.MessageIDs) != 2 || len(b.Deleted) != 0 || !errors.As(b.Err, &fe) {
		t.Errorf("batch %+v, want the function error to leave both messages", b)
	}
}
