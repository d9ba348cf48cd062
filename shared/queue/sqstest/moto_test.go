package sqstest_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/queue/sqstest"
)

// startMoto runs moto_server on a free loopback port until the test ends, or skips the
// test where moto is not installed.
func startMoto(t *testing.T) string {
	t.Helper()
	url, stop, err := awstest.StartMoto(t.TempDir())
	if errors.Is(err, awstest.ErrNoMoto) {
		t.Skip("moto interop skipped: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return url
}

// backend is one SQS under test, with what the script remembers of it: queue URLs and
// ARNs by name, and receipt handles and message IDs by the script's own labels.
type backend struct {
	c      *sqs.Client
	url    map[string]string
	arn    map[string]string
	handle map[string]string
	id     map[string]string
}

// queues are the script's queues, created alike on both backends: the dead-letter
// queue first. Visibility is 1 s where the script waits for it to end.
var queues = []struct {
	name  string
	attrs func(b *backend) map[string]string
}{
	{"dlq", func(*backend) map[string]string { return map[string]string{} }},
	{"work", func(b *backend) map[string]string {
		return map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"` + b.arn["dlq"] + `","maxReceiveCount":"2"}`}
	}},
	{"small", func(*backend) map[string]string { return map[string]string{"MaximumMessageSize": "1024"} }},
	{"short", func(*backend) map[string]string { return map[string]string{"VisibilityTimeout": "1"} }},
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

// show describes received messages by what both backends must agree on: bodies, counts,
// checksums and attributes, and whether each is a message the script has seen (by label).
func (b *backend) show(msgs []types.Message) string {
	var out []string
	for _, m := range msgs {
		seen := "new"
		for label, id := range b.id {
			if id == *m.MessageId && (seen == "new" || label < seen) {
				seen = label
			}
		}
		attrs := []string{}
		for k, v := range m.MessageAttributes {
			attrs = append(attrs, k+"="+*v.DataType+":"+aws.ToString(v.StringValue)+string(v.BinaryValue))
		}
		sort.Strings(attrs)
		out = append(out, fmt.Sprintf("{%s %q count=%s md5=%s attrs=%v md5attrs=%s sent=%v sender=%v}", seen, *m.Body,
			m.Attributes["ApproximateReceiveCount"], *m.MD5OfBody, attrs, aws.ToString(m.MD5OfMessageAttributes),
			m.Attributes["SentTimestamp"] != "", m.Attributes["SenderId"] != ""))
	}
	return strings.Join(out, " ")
}

// TestTheServerAnswersLikeMoto runs one script of the relay's and Lambda's calls through
// the real SDK against moto (an SQS that nobody here wrote) and against this server, and
// wants the same error codes and the same messages back. Where moto differs from what SQS
// documents or answers, the step says how; this server must then answer as SQS does.
func TestTheServerAnswersLikeMoto(t *testing.T) {
	endpoint := startMoto(t)
	ctx := context.Background()
	srv := sqstest.New()
	defer srv.Close()
	moto := &backend{c: sqs.New(sqs.Options{Region: awstest.Region, BaseEndpoint: aws.String(endpoint), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})}
	ours := &backend{c: srv.Client(func(o *sqs.Options) { o.RetryMaxAttempts = 1 })}
	for _, b := range []*backend{moto, ours} {
		b.url, b.arn, b.handle, b.id = map[string]string{}, map[string]string{}, map[string]string{}, map[string]string{}
		for _, q := range queues {
			if b == ours {
				b.url[q.name] = srv.CreateQueue(q.name, q.attrs(b))
			} else {
				out, err := b.c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(q.name), Attributes: q.attrs(b)})
				if err != nil {
					t.Fatalf("moto: CreateQueue(%s) = %v", q.name, err)
				}
				b.url[q.name] = *out.QueueUrl
			}
			attrs, err := b.c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(b.url[q.name]),
				AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
			if err != nil {
				t.Fatalf("GetQueueAttributes(%s) = %v", q.name, err)
			}
			b.arn[q.name] = attrs.Attributes["QueueArn"]
		}
	}

	send := func(queue, label, body string, delay int32, attrs map[string]types.MessageAttributeValue) func(*backend) (string, error) {
		return func(b *backend) (string, error) {
			out, err := b.c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(b.url[queue]), MessageBody: aws.String(body),
				DelaySeconds: delay, MessageAttributes: attrs})
			if err != nil {
				return "", err
			}
			b.id[label] = *out.MessageId
			return *out.MD5OfMessageBody + " " + aws.ToString(out.MD5OfMessageAttributes), nil
		}
	}
	receive := func(queue, label string) func(*backend) (string, error) {
		return func(b *backend) (string, error) {
			out, err := b.c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.url[queue]), MaxNumberOfMessages: 10,
				MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
				MessageAttributeNames:       []string{"All"}})
			if err != nil {
				return "", err
			}
			if len(out.Messages) > 0 && label != "" {
				b.handle[label] = *out.Messages[0].ReceiptHandle
				if b.id[label] == "" {
					b.id[label] = *out.Messages[0].MessageId
				}
			}
			return b.show(out.Messages), nil
		}
	}
	visibility := func(queue, label string, seconds int32) func(*backend) (string, error) {
		return func(b *backend) (string, error) {
			_, err := b.c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(b.url[queue]),
				ReceiptHandle: aws.String(b.handle[label]), VisibilityTimeout: seconds})
			return "", err
		}
	}
	deleteMessage := func(queue, handle string) func(*backend) (string, error) {
		return func(b *backend) (string, error) {
			h, ok := b.handle[handle]
			if !ok {
				h = handle
			}
			_, err := b.c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(b.url[queue]), ReceiptHandle: aws.String(h)})
			return "", err
		}
	}
	counts := func(queue string) func(*backend) (string, error) {
		return func(b *backend) (string, error) {
			out, err := b.c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(b.url[queue]),
				AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
					types.QueueAttributeNameApproximateNumberOfMessagesNotVisible, types.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
			if err != nil {
				return "", err
			}
			return fmt.Sprint(out.Attributes), nil
		}
	}
	sleep := func(d time.Duration) func(*backend) (string, error) {
		return func(b *backend) (string, error) {
			if b == ours { // one sleep serves both backends: moto's step comes first
				time.Sleep(d)
			}
			return "", nil
		}
	}
	str := func(s string) *string { return &s }

	script := []struct {
		name string
		step func(*backend) (string, error)
		// Where moto differs from SQS, how; this server must then answer sqsAnswers (an
		// error code) and, when set, give sqsGives.
		motoDiffers, sqsAnswers, sqsGives string
	}{
		{name: "a message is sent with its checksums", step: send("work", "hello", "hello", 0, map[string]types.MessageAttributeValue{
			"runId": {DataType: str("String"), StringValue: str("r_1")}, "bin": {DataType: str("Binary"), BinaryValue: []byte{0, 1, 2}}})},
		{name: "it is received once with its attributes", step: receive("work", "hello")},
		{name: "it is in flight", step: counts("work")},
		{name: "it is not received while in flight", step: receive("work", "")},
		{name: "it is deleted", step: deleteMessage("work", "hello")},
		{name: "a deleted message is deleted again", step: deleteMessage("work", "hello")},
		{name: "a handle that is not one is refused", step: deleteMessage("work", "garbage")},
		{name: "a deleted message's visibility cannot change", step: visibility("work", "hello", 10),
			motoDiffers: "moto 5.2 answers ReceiptHandleIsInvalid; SQS answers InvalidParameterValue (Message does not exist or is not available for visibility timeout change)",
			sqsAnswers:  "InvalidParameterValue"},
		{name: "the queue is empty", step: counts("work")},
		{name: "a delayed message is sent", step: send("work", "late", "late", 2, nil)},
		{name: "it is delayed", step: counts("work")},
		{name: "it is not received before its delay", step: receive("work", "")},
		{name: "its delay passes", step: sleep(2100 * time.Millisecond)},
		{name: "it is received after its delay", step: receive("work", "late")},
		{name: "its visibility ends at once", step: visibility("work", "late", 0)},
		{name: "it is received again, counted twice", step: receive("work", "late")},
		{name: "its visibility ends again", step: visibility("work", "late", 0)},
		{name: "the third receive moves it to the dead-letter queue", step: receive("work", "")},
		{name: "the dead-letter queue holds it", step: counts("dlq")},
		{name: "it is received from the dead-letter queue with its count", step: receive("dlq", "dead")},
		{name: "its visibility in the dead-letter queue ends", step: visibility("dlq", "dead", 0)},
		{name: "its visibility beyond 12 hours is refused", step: visibility("dlq", "dead", 43201)},
		{name: "a message of the queue's maximum size is taken", step: send("small", "max", strings.Repeat("x", 1024), 0, nil)},
		{name: "a message larger than the queue's maximum is refused", step: send("small", "big", strings.Repeat("x", 1025), 0, nil)},
		{name: "a message with a character SQS refuses is refused", step: send("small", "bad", "a\x00b", 0, nil),
			motoDiffers: "moto 5.2 takes any character; SQS refuses those outside its set with InvalidMessageContents",
			sqsAnswers:  "InvalidMessageContents"},
		{name: "a delay over 15 minutes is refused", step: send("small", "later", "x", 901, nil)},
		{name: "an unknown queue is refused", step: send("nope", "x", "x", 0, nil)},
		{name: "an unknown queue has no URL", step: func(b *backend) (string, error) {
			_, err := b.c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("nope")})
			return "", err
		}},
		{name: "a known queue's URL is found", step: func(b *backend) (string, error) {
			out, err := b.c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("short")})
			return fmt.Sprint(err == nil && *out.QueueUrl == b.url["short"]), err
		}},
		{name: "a message in a queue of 1 s visibility", step: send("short", "short", "short", 0, nil)},
		{name: "is received", step: receive("short", "short")},
		{name: "its visibility ends", step: sleep(1100 * time.Millisecond)},
		{name: "and it is received again", step: receive("short", "short2")},
		{name: "the first, stale handle still deletes it, as in SQS", step: deleteMessage("short", "short")},
		{name: "it is gone", step: counts("short")},
		{name: "the dead-letter queue is moved back to its source", step: func(b *backend) (string, error) {
			out, err := b.c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(b.arn["dlq"])})
			return fmt.Sprint(err == nil && *out.TaskHandle != ""), err
		}, motoDiffers: "moto 5.2 does not implement StartMessageMoveTask", sqsAnswers: ""},
		{name: "the moved message is new in its source queue", step: receive("work", ""), motoDiffers: "moto 5.2 moves nothing",
			sqsGives: `{new "late" count=1 md5=f2c67381db28fa11c59fe7a6df0f2587 attrs=[] md5attrs= sent=true sender=true}`},
		{name: "only a dead-letter queue can be moved", step: func(b *backend) (string, error) {
			_, err := b.c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(b.arn["small"])})
			return "", err
		}, motoDiffers: "moto 5.2 does not implement StartMessageMoveTask", sqsAnswers: "InvalidParameterValue"},
	}
	start := time.Now()
	for _, step := range script {
		want, werr := step.step(moto)
		got, gerr := step.step(ours)
		if step.motoDiffers != "" {
			if code(gerr) != step.sqsAnswers || step.sqsGives != "" && got != step.sqsGives {
				t.Errorf("%s: this server: %s %s, want %q as SQS", step.name, code(gerr), got, step.sqsAnswers)
			}
			t.Logf("%s: moto answered %q %s (%s); this server %q %s", step.name, code(werr), want, step.motoDiffers, code(gerr), got)
			continue
		}
		if code(gerr) != code(werr) || got != want {
			t.Errorf("%s:\n  this server: %s %s\n  moto:        %s %s", step.name, code(gerr), got, code(werr), want)
		}
	}
	t.Logf("%d steps against moto and this server in %v", len(script), time.Since(start).Round(time.Millisecond))
}
