// Package queue keeps a delivery that Azure DevOps cannot take now on an Amazon SQS
// queue, to be sent when it can: what the delivery needs (where, Port's body, the Port
// run, the ledger's key, when it was first put aside), never a secret or a signature.
package queue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
)

// Limits of SQS's that a delay or a visibility change keeps to.
const (
	MaxDelay      = 15 * time.Minute // SendMessage's DelaySeconds
	MaxVisibility = 12 * time.Hour   // ChangeMessageVisibility's VisibilityTimeout
)

// Errors of Put, Later and DeadLetter.
var (
	// ErrUnavailable means SQS could not be reached or refused the call; the message
	// was not put aside (or not moved).
	ErrUnavailable = errors.New("queue: SQS could not be reached")
	// ErrTooLarge means the message is larger than the queue takes.
	ErrTooLarge = errors.New("queue: the delivery is larger than the queue takes")
	// ErrMalformed means a received message is not one this package wrote.
	ErrMalformed = errors.New("queue: not a delivery message")
)

// Errors lists the package's sentinel errors, for the answer tables of the functions
// that meet them: a test fails when one has no answer.
var Errors = []error{ErrUnavailable, ErrTooLarge, ErrMalformed}

// SQS is the SQS client's subset the package uses; *sqs.Client is one.
type SQS interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// Message is one delivery put aside.
type Message struct {
	Door   string    // the target's kind: "webhook", "pipeline"
	Target string    // its name
	Kind   string    // the invocation's kind (event.Kind), for how its answer reads
	RunID  string    // the Port run, when there is one
	Key    string    // the ledger's key of the delivery
	Queued time.Time // when it was first put aside: its age counts from here
	// DeadLettered is when the relay moved it to the dead-letter queue; a message that
	// carries it and comes back was redriven by an operator.
	DeadLettered time.Time
	Reason       string // why it was dead-lettered: "age", "unreadable", "no record"
	// Unsent is the ledger claim (ledger.Claim.Owner) of a drain that sent nothing and
	// could not put the record back to queued: this message may take it over.
	Unsent string
	Body   []byte // Port's body as it came, byte for byte
}

// header is a Message less its body, as the message writes it first.
type header struct {
	Version      int    `json:"v"`
	Door         string `json:"door"`
	Target       string `json:"target"`
	Kind         string `json:"kind,omitempty"`
	RunID        string `json:"runId,omitempty"`
	Key          string `json:"key"`
	Queued       int64  `json:"queued"`                 // Unix milliseconds
	DeadLettered int64  `json:"deadLettered,omitempty"` // Unix milliseconds
	Reason       string `json:"reason,omitempty"`
	Unsent       string `json:"unsent,omitempty"`
}

// Encode writes m as one JSON object with the body as its last member, spliced in as
// it came: the body is a JSON object already, and re-marshalling it would change its
// bytes (Go escapes <>& and compacts), and with them the signature Azure checks.
func (m Message) Encode() []byte {
	return append(append(m.prefix(), m.Body...), '}')
}

// prefix is the message up to its body: the header, then `,"body":`.
func (m Message) prefix() []byte {
	h := header{Version: 1, Door: m.Door, Target: m.Target, Kind: m.Kind, RunID: m.RunID, Key: m.Key,
		Queued: m.Queued.UnixMilli(), Reason: m.Reason, Unsent: m.Unsent}
	if !m.DeadLettered.IsZero() {
		h.DeadLettered = m.DeadLettered.UnixMilli()
	}
	b, _ := json.Marshal(h)
	return append(b[:len(b)-1], `,"body":`...)
}

// Decode reads what Encode wrote; the body comes back byte for byte, whitespace
// around it included (a decoder would drop it).
func Decode(b []byte) (Message, error) {
	var in struct {
		header
		Body json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(b, &in); err != nil || in.Version != 1 || in.Door == "" || in.Target == "" || in.Key == "" ||
		in.Queued <= 0 || len(in.Body) == 0 || in.Body[0] != '{' {
		return Message{}, ErrMalformed
	}
	m := Message{Door: in.Door, Target: in.Target, Kind: in.Kind, RunID: in.RunID, Key: in.Key,
		Queued: time.UnixMilli(in.Queued), Reason: in.Reason, Unsent: in.Unsent}
	if in.DeadLettered > 0 {
		m.DeadLettered = time.UnixMilli(in.DeadLettered)
	}
	// The body is what lies between the header Encode writes and the closing brace.
	prefix := m.prefix()
	if !bytes.HasPrefix(b, prefix) || len(b) < len(prefix)+1 || b[len(b)-1] != '}' {
		return Message{}, ErrMalformed
	}
	m.Body = b[len(prefix) : len(b)-1]
	return m, nil
}

// Queue is the delivery queue and its dead-letter queue. Its fields are set once; it is
// then safe for concurrent use.
type Queue struct {
	SQS          SQS
	URL          string // DELIVERY_QUEUE_URL
	DeadLetter   string // DELIVERY_DLQ_URL
	MaxBodyBytes int    // what the queue takes; SQS's 1 MiB when zero
}

// Put puts m aside for delay (at most MaxDelay: a longer wait is made of visibility
// changes when the message comes round). It keeps room for what Bury and a hand-back
// add, so that a message the queue takes the dead-letter queue takes too.
func (q *Queue) Put(ctx context.Context, m Message, delay time.Duration) error {
	if limit := q.limit(); len(m.grown().Encode()) > limit {
		return fmt.Errorf("%w: %d bytes with what the dead-letter queue adds, the queue takes %d", ErrTooLarge, len(m.grown().Encode()), limit)
	}
	var once []func(*sqs.Options)
	if m.Unsent != "" {
		// A copy naming a claim is sent once a call, so that NotPut speaks for every
		// attempt: a retried one may follow an attempt that landed unanswered.
		once = append(once, func(o *sqs.Options) { o.RetryMaxAttempts = 1 })
	}
	return q.sendBytes(ctx, q.URL, m.Encode(), min(max(delay, 0), MaxDelay), once...)
}

// grown is m as large as it may become on its way: dead-lettered for the longest
// reason, and naming a claim (a ledger owner is 24 hex digits). The queue takes m only
// if the dead-letter queue will take it grown.
func (m Message) grown() Message {
	m.DeadLettered, m.Reason = time.UnixMilli(1e13-1), "unreadable"
	if m.Unsent == "" {
		m.Unsent = "000000000000000000000000"
	}
	return m
}

// Digest names m in its ledger record, so that only this message takes the record: a
// hash of what decides how it is delivered (its kind, which says whose run is told,
// and Port's body), never the body.
func (m Message) Digest() string {
	h := sha256.New()
	h.Write([]byte(strconv.Itoa(len(m.Kind)) + ":" + m.Kind))
	h.Write(m.Body)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// NotPut reports whether err, from Put of a copy naming a claim, certainly left nothing
// on the queue: the message is too large, or SQS answered its one attempt with a
// refusal. A call that got no answer may have put it.
func NotPut(err error) bool {
	var a answered
	return errors.Is(err, ErrTooLarge) || errors.As(err, &a)
}

// answered is SQS's own refusal, by its error code.
type answered string

func (a answered) Error() string { return string(a) }

// Bury moves m to the dead-letter queue, for an operator to look at and redrive.
func (q *Queue) Bury(ctx context.Context, m Message, reason string, now time.Time) error {
	m.DeadLettered, m.Reason = now, reason
	return q.send(ctx, q.DeadLetter, m, 0)
}

// BuryRaw moves a received message that is not one Encode wrote to the dead-letter
// queue as it came, for an operator to look at.
func (q *Queue) BuryRaw(ctx context.Context, body []byte) error {
	return q.sendBytes(ctx, q.DeadLetter, body, 0)
}

func (q *Queue) send(ctx context.Context, url string, m Message, delay time.Duration) error {
	return q.sendBytes(ctx, url, m.Encode(), delay)
}

func (q *Queue) limit() int {
	if q.MaxBodyBytes <= 0 {
		return 1 << 20
	}
	return q.MaxBodyBytes
}

func (q *Queue) sendBytes(ctx context.Context, url string, body []byte, delay time.Duration, opts ...func(*sqs.Options)) error {
	if limit := q.limit(); len(body) > limit {
		return fmt.Errorf("%w: %d bytes, the queue takes %d", ErrTooLarge, len(body), limit)
	}
	_, err := q.SQS.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:     aws.String(url),
		MessageBody:  aws.String(string(body)),
		DelaySeconds: int32(delay.Round(time.Second) / time.Second),
	}, opts...)
	return failed(ctx, err)
}

// Later makes the received message whose receipt is handle visible again after d (at
// most MaxVisibility), so that it comes round when Azure said it could take it.
func (q *Queue) Later(ctx context.Context, handle string, d time.Duration) error {
	_, err := q.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(q.URL),
		ReceiptHandle:     aws.String(handle),
		VisibilityTimeout: int32(min(max(d, 0), MaxVisibility).Round(time.Second) / time.Second),
	})
	return failed(ctx, err)
}

// failed names the class of a failed call (SQS's error code, or the network's)
// without the SDK's text, which carries the endpoint and request.
func failed(ctx context.Context, err error) error {
	var apiErr smithy.APIError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &apiErr) && apiErr.ErrorFault() == smithy.FaultClient:
		return fmt.Errorf("%w: %w", ErrUnavailable, answered(apiErr.ErrorCode()))
	case errors.As(err, &apiErr):
		return fmt.Errorf("%w: %s", ErrUnavailable, apiErr.ErrorCode())
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	default:
		return fmt.Errorf("%w: request failed", ErrUnavailable)
	}
}

// Age is how long m has been waiting at now, counted from when it was first put aside.
func (m Message) Age(now time.Time) time.Duration { return now.Sub(m.Queued) }

// Receives reads SQS's ApproximateReceiveCount attribute of a received message; 1 when
// it is missing or unreadable.
func Receives(attr string) int {
	n, err := strconv.Atoi(attr)
	if err != nil || n < 1 {
		return 1
	}
	return n
}
