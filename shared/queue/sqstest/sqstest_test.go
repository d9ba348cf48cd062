package sqstest_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/queue/sqstest"
)

var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture is a server on a test clock with a dead-letter queue "dlq" and a queue "work"
// that moves a message there after 3 receives, and a client that does not retry.
type fixture struct {
	srv       *sqstest.Server
	clock     *sqstest.Clock
	c         *sqs.Client
	work, dlq string
	ctx       context.Context
	t         *testing.T
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := sqstest.New()
	t.Cleanup(srv.Close)
	clock := sqstest.NewClock(start)
	srv.Now = clock.Now
	f := &fixture{srv: srv, clock: clock, c: srv.Client(func(o *sqs.Options) { o.RetryMaxAttempts = 1 }), ctx: context.Background(), t: t}
	f.dlq = srv.CreateQueue("dlq", map[string]string{"MessageRetentionPeriod": "1209600"})
	f.work = srv.CreateQueue("work", map[string]string{"VisibilityTimeout": "60", "MessageRetentionPeriod": "3600",
		"RedrivePolicy": `{"deadLetterTargetArn":"` + sqstest.ARN("dlq") + `","maxReceiveCount":3}`})
	return f
}

func (f *fixture) send(queue, body string, delay int32) string {
	f.t.Helper()
	out, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &queue, MessageBody: &body, DelaySeconds: delay})
	if err != nil {
		f.t.Fatalf("SendMessage(%q) = %v", body, err)
	}
	return *out.MessageId
}

func (f *fixture) receive(queue string, in sqs.ReceiveMessageInput) []types.Message {
	f.t.Helper()
	in.QueueUrl = &queue
	out, err := f.c.ReceiveMessage(f.ctx, &in)
	if err != nil {
		f.t.Fatalf("ReceiveMessage = %v", err)
	}
	return out.Messages
}

func (f *fixture) counts(queue string) string {
	f.t.Helper()
	out, err := f.c.GetQueueAttributes(f.ctx, &sqs.GetQueueAttributesInput{QueueUrl: &queue, AttributeNames: []types.QueueAttributeName{
		"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"}})
	if err != nil {
		f.t.Fatalf("GetQueueAttributes = %v", err)
	}
	a := out.Attributes
	return a["ApproximateNumberOfMessages"] + " visible, " + a["ApproximateNumberOfMessagesNotVisible"] + " in flight, " +
		a["ApproximateNumberOfMessagesDelayed"] + " delayed"
}

func TestRefusals(t *testing.T) {
	f := newFixture(t)
	f.send(f.work, "in flight", 0)
	handle := *f.receive(f.work, sqs.ReceiveMessageInput{})[0].ReceiptHandle
	gone := f.send(f.work, "gone", 0)
	goneHandle := *f.receive(f.work, sqs.ReceiveMessageInput{})[0].ReceiptHandle
	if _, err := f.c.DeleteMessage(f.ctx, &sqs.DeleteMessageInput{QueueUrl: &f.work, ReceiptHandle: &goneHandle}); err != nil {
		t.Fatalf("DeleteMessage(%s) = %v", gone, err)
	}
	otherHandle := func() string {
		f.send(f.dlq, "x", 0)
		return *f.receive(f.dlq, sqs.ReceiveMessageInput{})[0].ReceiptHandle
	}()
	nowhere := f.srv.URL + "/" + awstest.AccountID + "/nowhere"
	str := aws.String
	attr := func(typ, value string) map[string]types.MessageAttributeValue {
		return map[string]types.MessageAttributeValue{"a": {DataType: &typ, StringValue: &value}}
	}
	tooMany := map[string]types.MessageAttributeValue{}
	for _, n := range strings.Split("a b c d e f g h i j k", " ") {
		tooMany[n] = types.MessageAttributeValue{DataType: str("String"), StringValue: str("v")}
	}

	tests := []struct {
		name, want string
		call       func() error
	}{
		{"a send to an unknown queue", "AWS.SimpleQueueService.NonExistentQueue", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &nowhere, MessageBody: str("x")})
			return err
		}},
		{"a queue URL of another account", "AWS.SimpleQueueService.NonExistentQueue", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: str(f.srv.URL + "/000000000000/work"), MessageBody: str("x")})
			return err
		}},
		{"an empty body", "MissingParameter", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: str("")})
			return err
		}},
		{"a body with a control character", "InvalidMessageContents", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: str("a\x08b")})
			return err
		}},
		{"a body with U+FFFF", "InvalidMessageContents", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: str("a\uffffb")})
			return err
		}},
		{"a body over 1 MiB", "InvalidParameterValue", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: str(strings.Repeat("x", 1<<20+1))})
			return err
		}},
		{"a body of 1 MiB whose attributes make it larger", "InvalidParameterValue", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: str(strings.Repeat("x", 1<<20-5)),
				MessageAttributes: attr("String", "v")})
			return err
		}},
		{"a negative delay", "InvalidParameterValue", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: str("x"), DelaySeconds: -1})
			return err
		}},
		{"a delay over 900 s", "InvalidParameterValue", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: str("x"), DelaySeconds: 901})
			return err
		}},
		{"an attribute of an unknown type", "InvalidParameterValue", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: str("x"), MessageAttributes: attr("Text", "v")})
			return err
		}},
		{"an attribute without a value", "InvalidParameterValue", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: str("x"), MessageAttributes: attr("String", "")})
			return err
		}},
		{"an attribute named AWS.x", "InvalidParameterValue", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: str("x"),
				MessageAttributes: map[string]types.MessageAttributeValue{"AWS.x": {DataType: str("String"), StringValue: str("v")}}})
			return err
		}},
		{"eleven attributes", "InvalidParameterValue", func() error {
			_, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: str("x"), MessageAttributes: tooMany})
			return err
		}},
		{"a receive of 11 messages", "InvalidParameterValue", func() error {
			_, err := f.c.ReceiveMessage(f.ctx, &sqs.ReceiveMessageInput{QueueUrl: &f.work, MaxNumberOfMessages: 11})
			return err
		}},
		{"a wait of 21 s", "InvalidParameterValue", func() error {
			_, err := f.c.ReceiveMessage(f.ctx, &sqs.ReceiveMessageInput{QueueUrl: &f.work, WaitTimeSeconds: 21})
			return err
		}},
		{"a receive's visibility over 12 hours", "InvalidParameterValue", func() error {
			_, err := f.c.ReceiveMessage(f.ctx, &sqs.ReceiveMessageInput{QueueUrl: &f.work, VisibilityTimeout: 43201})
			return err
		}},
		{"a receive from an unknown queue", "AWS.SimpleQueueService.NonExistentQueue", func() error {
			_, err := f.c.ReceiveMessage(f.ctx, &sqs.ReceiveMessageInput{QueueUrl: &nowhere})
			return err
		}},
		{"a delete with a handle that is not one", "ReceiptHandleIsInvalid", func() error {
			_, err := f.c.DeleteMessage(f.ctx, &sqs.DeleteMessageInput{QueueUrl: &f.work, ReceiptHandle: str("garbage")})
			return err
		}},
		{"a delete with another queue's handle", "ReceiptHandleIsInvalid", func() error {
			_, err := f.c.DeleteMessage(f.ctx, &sqs.DeleteMessageInput{QueueUrl: &f.work, ReceiptHandle: &otherHandle})
			return err
		}},
		{"a delete from an unknown queue", "AWS.SimpleQueueService.NonExistentQueue", func() error {
			_, err := f.c.DeleteMessage(f.ctx, &sqs.DeleteMessageInput{QueueUrl: &nowhere, ReceiptHandle: &handle})
			return err
		}},
		{"a visibility change with a handle that is not one", "ReceiptHandleIsInvalid", func() error {
			_, err := f.c.ChangeMessageVisibility(f.ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &f.work, ReceiptHandle: str("garbage"), VisibilityTimeout: 5})
			return err
		}},
		{"a visibility change of a deleted message", "InvalidParameterValue", func() error {
			_, err := f.c.ChangeMessageVisibility(f.ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &f.work, ReceiptHandle: &goneHandle, VisibilityTimeout: 5})
			return err
		}},
		{"a negative visibility", "InvalidParameterValue", func() error {
			_, err := f.c.ChangeMessageVisibility(f.ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &f.work, ReceiptHandle: &handle, VisibilityTimeout: -1})
			return err
		}},
		{"a visibility 12 hours after the receive", "InvalidParameterValue", func() error {
			f.clock.Advance(30 * time.Second) // still in flight: the queue's visibility is 60 s
			defer f.clock.Advance(-30 * time.Second)
			_, err := f.c.ChangeMessageVisibility(f.ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &f.work, ReceiptHandle: &handle, VisibilityTimeout: 43200 - 29})
			return err
		}},
		{"the URL of an unknown queue", "AWS.SimpleQueueService.NonExistentQueue", func() error {
			_, err := f.c.GetQueueUrl(f.ctx, &sqs.GetQueueUrlInput{QueueName: str("nowhere")})
			return err
		}},
		{"the URL of a queue of another account", "AWS.SimpleQueueService.NonExistentQueue", func() error {
			_, err := f.c.GetQueueUrl(f.ctx, &sqs.GetQueueUrlInput{QueueName: str("work"), QueueOwnerAWSAccountId: str("000000000000")})
			return err
		}},
		{"an unknown queue attribute", "InvalidAttributeName", func() error {
			_, err := f.c.GetQueueAttributes(f.ctx, &sqs.GetQueueAttributesInput{QueueUrl: &f.work, AttributeNames: []types.QueueAttributeName{"Colour"}})
			return err
		}},
		{"the attributes of an unknown queue", "AWS.SimpleQueueService.NonExistentQueue", func() error {
			_, err := f.c.GetQueueAttributes(f.ctx, &sqs.GetQueueAttributesInput{QueueUrl: &nowhere, AttributeNames: []types.QueueAttributeName{"All"}})
			return err
		}},
		{"a move from a queue that is no dead-letter queue", "InvalidParameterValue", func() error {
			_, err := f.c.StartMessageMoveTask(f.ctx, &sqs.StartMessageMoveTaskInput{SourceArn: str(sqstest.ARN("work"))})
			return err
		}},
		{"a move from an unknown queue", "ResourceNotFoundException", func() error {
			_, err := f.c.StartMessageMoveTask(f.ctx, &sqs.StartMessageMoveTaskInput{SourceArn: str(sqstest.ARN("nowhere"))})
			return err
		}},
		{"a move to an unknown queue", "ResourceNotFoundException", func() error {
			_, err := f.c.StartMessageMoveTask(f.ctx, &sqs.StartMessageMoveTaskInput{SourceArn: str(sqstest.ARN("dlq")), DestinationArn: str(sqstest.ARN("nowhere"))})
			return err
		}},
		{"a move of 501 messages a second", "InvalidParameterValue", func() error {
			_, err := f.c.StartMessageMoveTask(f.ctx, &sqs.StartMessageMoveTaskInput{SourceArn: str(sqstest.ARN("dlq")), MaxNumberOfMessagesPerSecond: aws.Int32(501)})
			return err
		}},
		{"an operation this server does not model", "UnknownOperationException", func() error {
			_, err := f.c.PurgeQueue(f.ctx, &sqs.PurgeQueueInput{QueueUrl: &f.work})
			return err
		}},
		{"a request signed with another key", "UnrecognizedClientException", func() error {
			c := sqs.New(sqs.Options{Region: awstest.Region, BaseEndpoint: &f.srv.URL, RetryMaxAttempts: 1,
				Credentials: credentials.NewStaticCredentialsProvider("AKIAOTHEREXAMPLE1234", awstest.SecretAccessKey, "")})
			_, err := c.GetQueueUrl(f.ctx, &sqs.GetQueueUrlInput{QueueName: str("work")})
			return err
		}},
		{"a request signed with another secret", "InvalidSignatureException", func() error {
			c := sqs.New(sqs.Options{Region: awstest.Region, BaseEndpoint: &f.srv.URL, RetryMaxAttempts: 1,
				Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, "wrong", "")})
			_, err := c.GetQueueUrl(f.ctx, &sqs.GetQueueUrlInput{QueueName: str("work")})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := code(tc.call()); got != tc.want {
				t.Errorf("error code %q, want %q", got, tc.want)
			}
		})
	}
	if got := f.counts(f.work); got != "0 visible, 1 in flight, 0 delayed" {
		t.Errorf("after the refusals the queue holds %s, want only the message in flight", got)
	}
}

// TestErrorsAreTyped: the SDK reads SQS's __type into its typed errors, and the code from
// x-amzn-query-error, as it does against SQS.
func TestErrorsAreTyped(t *testing.T) {
	f := newFixture(t)
	_, err := f.c.GetQueueUrl(f.ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("nowhere")})
	var missing *types.QueueDoesNotExist
	if !errors.As(err, &missing) || missing.ErrorCode() != "AWS.SimpleQueueService.NonExistentQueue" {
		t.Errorf("GetQueueUrl(nowhere) = %v, want a *types.QueueDoesNotExist with SQS's query code", err)
	}
	_, err = f.c.DeleteMessage(f.ctx, &sqs.DeleteMessageInput{QueueUrl: &f.work, ReceiptHandle: aws.String("x")})
	var invalid *types.ReceiptHandleIsInvalid
	if !errors.As(err, &invalid) {
		t.Errorf("DeleteMessage(x) = %v, want a *types.ReceiptHandleIsInvalid", err)
	}
}

func TestMessagesFollowTheClock(t *testing.T) {
	f := newFixture(t)
	f.send(f.work, "later", 900)
	if got := f.counts(f.work); got != "0 visible, 0 in flight, 1 delayed" {
		t.Fatalf("after a send delayed 15 minutes: %s", got)
	}
	f.clock.Advance(899 * time.Second)
	if msgs := f.receive(f.work, sqs.ReceiveMessageInput{}); len(msgs) != 0 {
		t.Fatalf("received %d messages a second before the delay ends", len(msgs))
	}
	f.clock.Advance(time.Second)
	msgs := f.receive(f.work, sqs.ReceiveMessageInput{MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"}})
	if len(msgs) != 1 || msgs[0].Attributes["SentTimestamp"] != "1893553445000" ||
		msgs[0].Attributes["ApproximateFirstReceiveTimestamp"] != "1893554345000" || msgs[0].Attributes["SenderId"] != sqstest.SenderID {
		t.Fatalf("after the delay: %+v, want the message with its send and first receive times", msgs)
	}
	if got := f.counts(f.work); got != "0 visible, 1 in flight, 0 delayed" {
		t.Fatalf("after the receive: %s", got)
	}
	f.clock.Advance(59 * time.Second)
	if got := f.counts(f.work); got != "0 visible, 1 in flight, 0 delayed" {
		t.Fatalf("a second before the queue's 60 s visibility ends: %s", got)
	}
	f.clock.Advance(time.Second)
	if got := f.counts(f.work); got != "1 visible, 0 in flight, 0 delayed" {
		t.Fatalf("when the visibility ends: %s", got)
	}
	handle := *f.receive(f.work, sqs.ReceiveMessageInput{VisibilityTimeout: 600})[0].ReceiptHandle
	f.clock.Advance(599 * time.Second)
	if _, err := f.c.ChangeMessageVisibility(f.ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &f.work, ReceiptHandle: &handle, VisibilityTimeout: 120}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(119 * time.Second)
	if got := f.counts(f.work); got != "0 visible, 1 in flight, 0 delayed" {
		t.Fatalf("a second before the changed visibility ends, counted from the change: %s", got)
	}
	f.clock.Advance(time.Second)
	// No longer in flight: SQS accepts a change and leaves the message visible.
	if _, err := f.c.ChangeMessageVisibility(f.ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &f.work, ReceiptHandle: &handle, VisibilityTimeout: 300}); err != nil {
		t.Fatalf("a change after the visibility ended = %v, want it accepted", err)
	}
	if got := f.counts(f.work); got != "1 visible, 0 in flight, 0 delayed" {
		t.Fatalf("after a change once the visibility ended: %s", got)
	}
	// The queue keeps messages an hour from their send, the delay included.
	f.clock.Advance(start.Add(time.Hour - time.Second).Sub(f.clock.Now()))
	if got := f.counts(f.work); got != "1 visible, 0 in flight, 0 delayed" {
		t.Fatalf("a second before the retention period ends: %s", got)
	}
	f.clock.Advance(time.Second)
	if got := f.counts(f.work); got != "0 visible, 0 in flight, 0 delayed" {
		t.Fatalf("when the retention period ends: %s", got)
	}
}

func TestReceiveAnswersWhatItIsAskedFor(t *testing.T) {
	f := newFixture(t)
	plain := f.srv.CreateQueue("plain", nil)
	str := aws.String
	body := "héllo 𝄞"
	out, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &plain, MessageBody: &body, MessageAttributes: map[string]types.MessageAttributeValue{
		"run.id": {DataType: str("String"), StringValue: str("r_1")}, "run.n": {DataType: str("Number.int"), StringValue: str("7")},
		"blob": {DataType: str("Binary"), BinaryValue: []byte{0, 0xff}}}})
	if err != nil {
		t.Fatal(err)
	}
	// Known answers, computed apart (Python's hashlib, SQS's encoding of attributes).
	if *out.MD5OfMessageBody != "bd878d1347af08bb0f86399077d97fb3" || aws.ToString(out.MD5OfMessageAttributes) != "f264c18cd36fea82a5787921b74164e3" {
		t.Errorf("MD5OfMessageBody %s, MD5OfMessageAttributes %s", *out.MD5OfMessageBody, aws.ToString(out.MD5OfMessageAttributes))
	}
	for _, tc := range []struct {
		name          string
		system, names []string
		wantSystem    string
		wantAttrs     string
	}{
		{"nothing asked", nil, nil, "", ""},
		{"everything", []string{"All"}, []string{"All"}, "ApproximateFirstReceiveTimestamp ApproximateReceiveCount SenderId SentTimestamp", "blob run.id run.n"},
		{"by name", []string{"ApproximateReceiveCount"}, []string{"blob"}, "ApproximateReceiveCount", "blob"},
		{"by prefix", []string{"SentTimestamp"}, []string{"run.*"}, "SentTimestamp", "run.id run.n"},
		{"every attribute by .*", nil, []string{".*"}, "", "blob run.id run.n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var system []types.MessageSystemAttributeName
			for _, s := range tc.system {
				system = append(system, types.MessageSystemAttributeName(s))
			}
			msgs := f.receive(plain, sqs.ReceiveMessageInput{MessageSystemAttributeNames: system, MessageAttributeNames: tc.names, VisibilityTimeout: 1})
			f.clock.Advance(time.Second)
			if len(msgs) != 1 || *msgs[0].Body != body {
				t.Fatalf("received %+v", msgs)
			}
			if got := keys(msgs[0].Attributes); got != tc.wantSystem {
				t.Errorf("Attributes %s, want %s", got, tc.wantSystem)
			}
			if got := keys(msgs[0].MessageAttributes); got != tc.wantAttrs {
				t.Errorf("MessageAttributes %s, want %s", got, tc.wantAttrs)
			}
			if (msgs[0].MD5OfMessageAttributes != nil) != (tc.wantAttrs != "") {
				t.Errorf("MD5OfMessageAttributes %v with attributes %q", msgs[0].MD5OfMessageAttributes, tc.wantAttrs)
			}
		})
	}
}

func keys[V any](m map[string]V) string { return strings.Join(slices.Sorted(maps.Keys(m)), " ") }

func TestRedriveAndMoveBack(t *testing.T) {
	f := newFixture(t)
	id := f.send(f.work, "poison", 0)
	f.clock.Advance(10 * time.Minute)
	for i := 1; i <= 3; i++ {
		msgs := f.receive(f.work, sqs.ReceiveMessageInput{MessageSystemAttributeNames: []types.MessageSystemAttributeName{"ApproximateReceiveCount"}})
		if len(msgs) != 1 || msgs[0].Attributes["ApproximateReceiveCount"] != string(rune('0'+i)) {
			t.Fatalf("receive %d: %+v", i, msgs)
		}
		f.clock.Advance(time.Minute)
	}
	if msgs := f.receive(f.work, sqs.ReceiveMessageInput{}); len(msgs) != 0 {
		t.Fatalf("the fourth receive returned %+v, want the message moved to the dead-letter queue", msgs)
	}
	if got := f.counts(f.dlq); got != "1 visible, 0 in flight, 0 delayed" {
		t.Fatalf("the dead-letter queue holds %s", got)
	}
	dead := f.receive(f.dlq, sqs.ReceiveMessageInput{MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"}, VisibilityTimeout: 30})
	if len(dead) != 1 || *dead[0].MessageId != id || dead[0].Attributes["ApproximateReceiveCount"] != "4" ||
		dead[0].Attributes["DeadLetterQueueSourceArn"] != sqstest.ARN("work") || dead[0].Attributes["SentTimestamp"] != "1893553445000" {
		t.Fatalf("in the dead-letter queue: %+v, want the same message, its count, its source and its send time", dead)
	}
	// An in-flight message stays in the dead-letter queue; a visible one moves back, new.
	out, err := f.c.StartMessageMoveTask(f.ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(sqstest.ARN("dlq"))})
	if err != nil {
		t.Fatal(err)
	}
	var handle struct{ TaskID, SourceArn string }
	if b, err := base64.StdEncoding.DecodeString(*out.TaskHandle); err != nil || json.Unmarshal(b, &handle) != nil || handle.SourceArn != sqstest.ARN("dlq") || handle.TaskID == "" {
		t.Errorf("TaskHandle %s, want base64 JSON naming the task and the source", *out.TaskHandle)
	}
	if got := f.counts(f.work); got != "0 visible, 0 in flight, 0 delayed" {
		t.Fatalf("a message in flight was moved: %s", got)
	}
	f.clock.Advance(30 * time.Second)
	if _, err := f.c.StartMessageMoveTask(f.ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(sqstest.ARN("dlq"))}); err != nil {
		t.Fatal(err)
	}
	back := f.receive(f.work, sqs.ReceiveMessageInput{MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"}})
	if len(back) != 1 || *back[0].MessageId == id || *back[0].Body != "poison" || back[0].Attributes["ApproximateReceiveCount"] != "1" ||
		back[0].Attributes["SentTimestamp"] != strconv.FormatInt(f.clock.Now().UnixMilli(), 10) {
		t.Fatalf("moved back: %+v, want a new message with the body, sent now", back)
	}
	if got := f.counts(f.dlq); got != "0 visible, 0 in flight, 0 delayed" {
		t.Errorf("the dead-letter queue still holds %s", got)
	}
	// To a named destination, and the dead-letter queue keeps the first send time.
	f.srv.CreateQueue("elsewhere", nil)
	f.send(f.dlq, "old", 0)
	f.clock.Advance(14 * 24 * time.Hour)
	if got := f.counts(f.dlq); got != "0 visible, 0 in flight, 0 delayed" {
		t.Errorf("after 14 days the dead-letter queue still holds %s", got)
	}
	f.send(f.dlq, "fresh", 0)
	if _, err := f.c.StartMessageMoveTask(f.ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(sqstest.ARN("dlq")), DestinationArn: aws.String(sqstest.ARN("elsewhere"))}); err != nil {
		t.Fatal(err)
	}
	if got := f.counts(f.srv.URL + "/" + awstest.AccountID + "/elsewhere"); got != "1 visible, 0 in flight, 0 delayed" {
		t.Errorf("the destination holds %s", got)
	}
}

func TestLongPolling(t *testing.T) {
	f := newFixture(t)
	go func() {
		time.Sleep(200 * time.Millisecond)
		f.send(f.work, "woken", 0)
	}()
	began := time.Now()
	msgs := f.receive(f.work, sqs.ReceiveMessageInput{WaitTimeSeconds: 5})
	if waited := time.Since(began); len(msgs) != 1 || waited < 150*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("a long poll answered %d messages after %v, want the message sent 200 ms in", len(msgs), waited)
	}
	if _, err := f.c.DeleteMessage(f.ctx, &sqs.DeleteMessageInput{QueueUrl: &f.work, ReceiptHandle: msgs[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	msgs = f.receive(f.work, sqs.ReceiveMessageInput{WaitTimeSeconds: 1})
	if waited := time.Since(began); len(msgs) != 0 || waited < time.Second || waited > 3*time.Second {
		t.Errorf("an empty long poll answered %d messages after %v, want none after 1 s", len(msgs), waited)
	}
	// A delay that the test's clock ends is noticed by a poll in progress.
	f.send(f.work, "delayed", 300)
	go func() {
		time.Sleep(200 * time.Millisecond)
		f.clock.Advance(5 * time.Minute)
	}()
	if msgs := f.receive(f.work, sqs.ReceiveMessageInput{WaitTimeSeconds: 5}); len(msgs) != 1 || *msgs[0].Body != "delayed" {
		t.Errorf("a long poll across the end of a delay received %+v", msgs)
	}
}

func TestFaults(t *testing.T) {
	f := newFixture(t)
	f.srv.SetFault(sqstest.Down.For("SendMessage").Times(1))
	if _, err := f.c.SendMessage(f.ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: aws.String("x")}); err == nil || code(err) != "error: "+err.Error() {
		t.Errorf("SendMessage while down = %v, want a connection error", err)
	}
	if got := f.counts(f.work); got != "0 visible, 0 in flight, 0 delayed" {
		t.Errorf("a send while down stored a message: %s", got)
	}
	f.send(f.work, "healed", 0)
	f.srv.SetFault(sqstest.Slow(2 * time.Second))
	ctx, cancel := context.WithTimeout(f.ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := f.c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &f.work, MessageBody: aws.String("x")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SendMessage while slow = %v, want the caller's deadline", err)
	}
	f.srv.SetFault(sqstest.None)
	if f.srv.Calls("SendMessage") != 2 || f.srv.Calls("") != 3 {
		t.Errorf("Calls(SendMessage) = %d, Calls() = %d; want the 2 sends that reached the server, and a GetQueueAttributes", f.srv.Calls("SendMessage"), f.srv.Calls(""))
	}
	if env := strings.Join(f.srv.Env(), " "); !strings.Contains(env, "AWS_ENDPOINT_URL_SQS="+f.srv.URL) || !strings.Contains(env, "AWS_ACCESS_KEY_ID="+awstest.AccessKeyID) {
		t.Errorf("Env() = %s", env)
	}
}

func TestTheWireIsSQSs(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, target, contentType, body string
		wantStatus                      int
		wantType, wantQuery             string
	}{
		{"an unknown queue", "AmazonSQS.GetQueueUrl", "application/x-amz-json-1.0", `{"QueueName":"nowhere"}`, 400,
			"com.amazonaws.sqs#QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue;Sender"},
		{"a body that is not JSON", "AmazonSQS.GetQueueUrl", "application/x-amz-json-1.0", `{"QueueName":`, 400,
			"com.amazon.coral.service#SerializationException", ""},
		{"the query protocol", "", "application/x-www-form-urlencoded", `Action=GetQueueUrl&QueueName=work`, 400,
			"com.amazon.coral.service#UnknownOperationException", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", f.srv.URL+"/", strings.NewReader(tc.body))
			req.Header.Set("X-Amz-Target", tc.target)
			req.Header.Set("Content-Type", tc.contentType)
			sum := sha256.Sum256([]byte(tc.body))
			creds := aws.Credentials{AccessKeyID: awstest.AccessKeyID, SecretAccessKey: awstest.SecretAccessKey}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "sqs", awstest.Region, time.Now()); err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Type string `json:"__type"`
			}
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.wantStatus || body.Type != tc.wantType || resp.Header.Get("X-Amzn-Query-Error") != tc.wantQuery ||
				resp.Header.Get("Content-Type") != "application/x-amz-json-1.0" || resp.Header.Get("X-Amzn-Requestid") == "" {
				t.Errorf("answer %d %s %q (%s), want %d %s %q", resp.StatusCode, body.Type, resp.Header.Get("X-Amzn-Query-Error"),
					resp.Header.Get("Content-Type"), tc.wantStatus, tc.wantType, tc.wantQuery)
			}
		})
	}
}

func TestCreateQueueRefusesWhatSQSRefuses(t *testing.T) {
	srv := sqstest.New()
	defer srv.Close()
	srv.CreateQueue("taken", nil)
	for name, attrs := range map[string]map[string]string{
		"bad name!": nil,
		"taken":     nil,
		"vis":       {"VisibilityTimeout": "43201"},
		"ret":       {"MessageRetentionPeriod": "59"},
		"delay":     {"DelaySeconds": "901"},
		"size":      {"MaximumMessageSize": "1023"},
		"fifo":      {"FifoQueue": "true"},
		"nodlq":     {"RedrivePolicy": `{"deadLetterTargetArn":"` + sqstest.ARN("missing") + `","maxReceiveCount":3}`},
		"count":     {"RedrivePolicy": `{"deadLetterTargetArn":"` + sqstest.ARN("taken") + `","maxReceiveCount":0}`},
		"json":      {"RedrivePolicy": `{deadLetterTargetArn`},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("CreateQueue(%q, %v) did not panic", name, attrs)
				}
			}()
			srv.CreateQueue(name, attrs)
		}()
	}
	// maxReceiveCount may be a string, as SQS takes it.
	srv.CreateQueue("ok", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"` + sqstest.ARN("taken") + `","maxReceiveCount":"5"}`})
	out, err := srv.Client().GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(srv.URL + "/" + awstest.AccountID + "/ok"), AttributeNames: []types.QueueAttributeName{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"QueueArn": sqstest.ARN("ok"), "VisibilityTimeout": "30", "MessageRetentionPeriod": "345600", "DelaySeconds": "0",
		"MaximumMessageSize": "1048576", "RedrivePolicy": `{"deadLetterTargetArn":"` + sqstest.ARN("taken") + `","maxReceiveCount":5}`,
		"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0", "ApproximateNumberOfMessagesDelayed": "0"}
	for k, v := range want {
		if out.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, out.Attributes[k], v)
		}
	}
	if len(out.Attributes) != len(want) {
		t.Errorf("All gave %v, want %v", out.Attributes, want)
	}
}
