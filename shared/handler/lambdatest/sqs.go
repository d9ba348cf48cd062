package lambdatest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// ErrBatchResponse is a Batch's Err when the function's answer is not a partial batch
// response Lambda accepts: not JSON, a batchItemFailures that is not a list, or an
// itemIdentifier that is missing, empty or not a message of the batch. Lambda then
// treats the whole batch as failed.
var ErrBatchResponse = errors.New("lambdatest: the function's batchItemFailures is invalid, so the whole batch failed")

// InvokerFunc answers raw events in process, as an Invoker.
type InvokerFunc func(ctx context.Context, event []byte) ([]byte, error)

// Invoke calls f.
func (f InvokerFunc) Invoke(ctx context.Context, event []byte) ([]byte, error) { return f(ctx, event) }

// SQSMapping does locally what Lambda's event source mapping for a standard SQS queue does:
// it long-polls the queue through the real SDK client (against any SQS endpoint: sqstest,
// moto), gathers batches, invokes the function with the event Lambda builds
// (events.SQSEvent), deletes the messages the function processed and leaves the others
// to come back when their visibility timeout, as the function left it, ends.
//
// Each of Functions takes one invocation at a time, as one Lambda execution environment
// does, so len(Functions) is the mapping's MaximumConcurrency. Unlike Lambda, it deletes
// with DeleteMessage, one request a message (Lambda uses DeleteMessageBatch), does not
// scale its pollers or back off after function errors, and does not cap a batch at 6 MB.
type SQSMapping struct {
	Client    *sqs.Client
	QueueURL  string
	Functions []Invoker
	// BatchSize is at most how many messages an invocation gets: 1 to 10,000, 10 when 0.
	BatchSize int
	// MaximumBatchingWindow is how long a batch gathers after its first message: 0 to 5
	// minutes, whole seconds; at least 1 s when BatchSize is over 10, as Lambda requires.
	// With 0, a batch is what one ReceiveMessage returns.
	MaximumBatchingWindow time.Duration
	// ReportBatchItemFailures is FunctionResponseTypes: [ReportBatchItemFailures]: the
	// function's {"batchItemFailures":[{"itemIdentifier":<messageId>}]} leaves those messages
	// on the queue. Without it, only a function error leaves any.
	ReportBatchItemFailures bool
	// OnBatch, when set, hears of each invocation once its deletes are done.
	OnBatch func(Batch)
}

// Batch is what became of one invocation's messages.
type Batch struct {
	MessageIDs []string // in the event's order
	Deleted    []string // those deleted; the rest stay on the queue
	Err        error    // the invocation's error, ErrBatchResponse, or a failed delete
}

// Run polls until ctx ends, then waits for the invocations in progress and returns nil.
// It fails at once on a configuration Lambda refuses, or when the queue's ARN (the
// event's eventSourceARN) cannot be read.
func (m *SQSMapping) Run(ctx context.Context) error {
	size, window := cmp.Or(m.BatchSize, 10), m.MaximumBatchingWindow
	switch {
	case m.Client == nil || m.QueueURL == "" || len(m.Functions) == 0:
		return errors.New("lambdatest: an SQSMapping needs a Client, a QueueURL and Functions")
	case size < 1 || size > 10000 || window < 0 || window > 5*time.Minute || window%time.Second != 0:
		return fmt.Errorf("lambdatest: BatchSize %d or MaximumBatchingWindow %v out of Lambda's range", size, window)
	case size > 10 && window < time.Second:
		return errors.New("lambdatest: a BatchSize over 10 needs a MaximumBatchingWindow of at least 1 s, as Lambda requires")
	}
	attrs, err := m.Client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &m.QueueURL,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		return fmt.Errorf("lambdatest: the queue's ARN: %w", err)
	}
	arn, region := attrs.Attributes["QueueArn"], m.Client.Options().Region
	var wg sync.WaitGroup
	for _, fn := range m.Functions {
		wg.Go(func() {
			for ctx.Err() == nil {
				if msgs := m.gather(ctx, size, window); len(msgs) > 0 {
					m.invoke(ctx, fn, msgs, arn, region)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// gather receives up to size messages: what one long poll returns, or with a window, what
// arrives until the window after the first message closes.
func (m *SQSMapping) gather(ctx context.Context, size int, window time.Duration) []types.Message {
	var batch []types.Message
	var closes time.Time
	for len(batch) < size {
		wait, left := int32(20), time.Until(closes)
		if len(batch) > 0 {
			if window == 0 || left <= 0 {
				break
			}
			wait = int32(left / time.Second)
		}
		out, err := m.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &m.QueueURL,
			MaxNumberOfMessages: int32(min(10, size-len(batch))), WaitTimeSeconds: wait,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"}})
		switch {
		case err != nil && len(batch) == 0:
			sleep(ctx, time.Second) // as Lambda, poll again after a while
			return nil
		case err != nil:
			return batch
		case len(out.Messages) == 0 && wait == 0:
			sleep(ctx, min(left, 100*time.Millisecond))
		case len(batch) == 0 && len(out.Messages) > 0:
			closes = time.Now().Add(window)
		}
		batch = append(batch, out.Messages...)
	}
	return batch
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// invoke runs fn on msgs and deletes those it processed.
func (m *SQSMapping) invoke(ctx context.Context, fn Invoker, msgs []types.Message, arn, region string) {
	b := Batch{}
	inBatch := map[string]bool{}
	for _, msg := range msgs {
		b.MessageIDs = append(b.MessageIDs, *msg.MessageId)
		inBatch[*msg.MessageId] = true
	}
	answer, err := fn.Invoke(ctx, SQSEvent(msgs, arn, region))
	failed := inBatch
	if err == nil {
		failed = nil
		if m.ReportBatchItemFailures {
			failed, err = batchItemFailures(answer, inBatch)
		}
	}
	b.Err = err
	for _, msg := range msgs {
		if failed[*msg.MessageId] {
			continue
		}
		if _, err := m.Client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &m.QueueURL, ReceiptHandle: msg.ReceiptHandle}); err != nil {
			b.Err = cmp.Or(b.Err, fmt.Errorf("lambdatest: delete %s: %w", *msg.MessageId, err))
			continue
		}
		b.Deleted = append(b.Deleted, *msg.MessageId)
	}
	if m.OnBatch != nil {
		m.OnBatch(b)
	}
}

// batchItemFailures reads a partial batch response as Lambda does: an empty or null
// answer, or no or a null batchItemFailures, fails nothing; anything it cannot read fails
// every message (ErrBatchResponse).
func batchItemFailures(answer []byte, inBatch map[string]bool) (map[string]bool, error) {
	var resp struct {
		BatchItemFailures []map[string]any `json:"batchItemFailures"`
	}
	if len(bytes.TrimSpace(answer)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(answer, &resp); err != nil {
		return inBatch, fmt.Errorf("%w: %v", ErrBatchResponse, err)
	}
	failed := map[string]bool{}
	for _, item := range resp.BatchItemFailures {
		id, _ := item["itemIdentifier"].(string)
		if !inBatch[id] {
			return inBatch, fmt.Errorf("%w: itemIdentifier %q is not a message of the batch", ErrBatchResponse, id)
		}
		failed[id] = true
	}
	return failed, nil
}

// sqsRecord is one record of the event Lambda sends for SQS messages.
type sqsRecord struct {
	MessageID              string                  `json:"messageId"`
	ReceiptHandle          string                  `json:"receiptHandle"`
	Body                   string                  `json:"body"`
	Attributes             map[string]string       `json:"attributes"`
	MessageAttributes      map[string]sqsAttribute `json:"messageAttributes"`
	MD5OfMessageAttributes *string                 `json:"md5OfMessageAttributes"`
	MD5OfBody              string                  `json:"md5OfBody"`
	EventSource            string                  `json:"eventSource"`
	EventSourceARN         string                  `json:"eventSourceARN"`
	AWSRegion              string                  `json:"awsRegion"`
}

type sqsAttribute struct {
	StringValue      *string  `json:"stringValue,omitempty"`
	BinaryValue      []byte   `json:"binaryValue,omitempty"`
	StringListValues []string `json:"stringListValues"`
	BinaryListValues [][]byte `json:"binaryListValues"`
	DataType         string   `json:"dataType"`
}

// SQSEvent returns the event Lambda's SQS event source mapping sends for msgs, received
// from the queue queueARN in region: {"Records":[…]}, one record per message, each with
// the message's system attributes, its message attributes (lists empty, as Lambda sends
// them), md5OfMessageAttributes null when it has none, and eventSource "aws:sqs".
func SQSEvent(msgs []types.Message, queueARN, region string) []byte {
	records := make([]sqsRecord, 0, len(msgs))
	for _, msg := range msgs {
		r := sqsRecord{MessageID: *msg.MessageId, ReceiptHandle: *msg.ReceiptHandle, Body: *msg.Body,
			Attributes: map[string]string{}, MessageAttributes: map[string]sqsAttribute{},
			MD5OfMessageAttributes: msg.MD5OfMessageAttributes, MD5OfBody: *msg.MD5OfBody,
			EventSource: "aws:sqs", EventSourceARN: queueARN, AWSRegion: region}
		maps.Copy(r.Attributes, msg.Attributes)
		for name, a := range msg.MessageAttributes {
			r.MessageAttributes[name] = sqsAttribute{StringValue: a.StringValue, BinaryValue: a.BinaryValue,
				StringListValues: append([]string{}, a.StringListValues...), BinaryListValues: append([][]byte{}, a.BinaryListValues...), DataType: *a.DataType}
		}
		records = append(records, r)
	}
	b, _ := json.Marshal(struct {
		Records []sqsRecord `json:"Records"`
	}{records})
	return b
}
