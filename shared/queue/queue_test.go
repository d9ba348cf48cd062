package queue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/port-azure-relay/relay/shared/queue"
	"github.com/port-azure-relay/relay/shared/queue/sqstest"
)

// The body goes back byte for byte: Azure's signature is over exactly these bytes.
func TestEncodeKeepsTheBodyAsItCame(t *testing.T) {
	queued := time.UnixMilli(1765000000123)
	for _, body := range []string{
		`{"a":1}`,
		"{\n  \"html\": \"<b>&</b>\",\t\"é\": \"\\u00e9\",\n  \"n\": 1.50 }",
		`{"nested":{"body":"{\"x\":1}"},"body":"not me"}`,
	} {
		m := queue.Message{Door: "webhook", Target: "deploy", Kind: "httpapi", RunID: "r_1", Key: "run#r_1", Queued: queued, Unsent: "0123456789abcdef01234567", Body: []byte(body)}
		got, err := queue.Decode(m.Encode())
		if err != nil || !bytes.Equal(got.Body, m.Body) || got.Key != m.Key || !got.Queued.Equal(queued) || got.Door != "webhook" || got.Target != "deploy" || got.Unsent != m.Unsent {
			t.Errorf("Decode(Encode(%q)) = %+v, %v; want the message back, its body byte for byte", body, got, err)
		}
	}
}

func TestDecodeRefusesWhatItDidNotWrite(t *testing.T) {
	for _, raw := range []string{``, `[]`, `{"v":2,"door":"webhook","target":"d","key":"k","queued":1,"body":{}}`,
		`{"v":1,"door":"webhook","target":"d","key":"k","queued":1,"body":[1]}`, `{"v":1,"door":"","target":"d","key":"k","queued":1,"body":{}}`,
		`{"v":1,"door":"webhook","target":"d","key":"","queued":1,"body":{}}`, `{"v":1,"door":"webhook","target":"d","key":"k","body":{}}`} {
		if _, err := queue.Decode([]byte(raw)); !errors.Is(err, queue.ErrMalformed) {
			t.Errorf("Decode(%q) = %v, want ErrMalformed", raw, err)
		}
	}
}

func newQueue(t *testing.T) (*queue.Queue, *sqstest.Server, *sqs.Client) {
	srv := sqstest.New()
	t.Cleanup(srv.Close)
	dlq := srv.CreateQueue("delivery-dlq", nil)
	url := srv.CreateQueue("delivery", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"` + sqstest.ARN("delivery-dlq") + `","maxReceiveCount":"1000"}`})
	client := srv.Client()
	return &queue.Queue{SQS: client, URL: url, DeadLetter: dlq}, srv, client
}

func receive(t *testing.T, c *sqs.Client, url string) []types.Message {
	t.Helper()
	out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Messages
}

// Put, Later and Bury through the real SDK against the SQS stand-in.
func TestPutLaterBury(t *testing.T) {
	q, _, c := newQueue(t)
	ctx := context.Background()
	m := queue.Message{Door: "pipeline", Target: "deploy", Key: "run#r_2", RunID: "r_2", Queued: time.Now(), Body: []byte(`{"x":"<&>"}`)}
	if err := q.Put(ctx, m, 0); err != nil {
		t.Fatal(err)
	}
	got := receive(t, c, q.URL)
	if len(got) != 1 {
		t.Fatalf("received %d messages, want 1", len(got))
	}
	back, err := queue.Decode([]byte(aws.ToString(got[0].Body)))
	if err != nil || string(back.Body) != `{"x":"<&>"}` || queue.Receives(got[0].Attributes["ApproximateReceiveCount"]) != 1 {
		t.Fatalf("received %+v, %v", back, err)
	}
	if err := q.Later(ctx, aws.ToString(got[0].ReceiptHandle), 0); err != nil {
		t.Fatal(err)
	}
	if again := receive(t, c, q.URL); len(again) != 1 || queue.Receives(again[0].Attributes["ApproximateReceiveCount"]) != 2 {
		t.Fatalf("after Later(0): %+v, want it back at once, received twice", again)
	}
	now := time.Now()
	if err := q.Bury(ctx, back, "age", now); err != nil {
		t.Fatal(err)
	}
	buried := receive(t, c, q.DeadLetter)
	if len(buried) != 1 {
		t.Fatalf("dead-letter queue holds %d, want 1", len(buried))
	}
	dead, err := queue.Decode([]byte(aws.ToString(buried[0].Body)))
	if err != nil || dead.Reason != "age" || dead.DeadLettered.UnixMilli() != now.UnixMilli() || !dead.Queued.Equal(back.Queued) {
		t.Errorf("buried %+v, %v: want the reason, when, and the first queued time", dead, err)
	}
}

func TestFailuresAreNamedWithoutTheSDKsText(t *testing.T) {
	q, srv, _ := newQueue(t)
	ctx := context.Background()
	m := queue.Message{Door: "webhook", Target: "deploy", Key: "sig#1", Queued: time.Now(), Body: []byte(`{}`)}
	q.MaxBodyBytes = 64
	if err := q.Put(ctx, queue.Message{Door: "webhook", Target: "deploy", Key: "k", Queued: time.Now(), Body: []byte(`{"a":"` + strings.Repeat("x", 100) + `"}`)}, 0); !errors.Is(err, queue.ErrTooLarge) {
		t.Errorf("a message over the limit: %v, want ErrTooLarge", err)
	}
	q.MaxBodyBytes = 0
	q.URL = srv.URL + "/123456789012/no-such-queue"
	if err := q.Put(ctx, m, 0); !errors.Is(err, queue.ErrUnavailable) || !strings.Contains(err.Error(), "NonExistentQueue") || strings.Contains(err.Error(), "http") {
		t.Errorf("an unknown queue: %v, want ErrUnavailable naming SQS's code only", err)
	}
	srv.SetFault(sqstest.Down)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := q.Put(ctx, m, 0); !errors.Is(err, queue.ErrUnavailable) {
		t.Errorf("SQS down: %v, want ErrUnavailable", err)
	}
}

// A hand-back tells a refused Put (nothing is on the queue) from one whose answer was
// lost (the message may be there).
func TestNotPutIsOnlyACertainRefusal(t *testing.T) {
	q, srv, _ := newQueue(t)
	m := queue.Message{Door: "webhook", Target: "deploy", Key: "sig#1", Queued: time.Now(), Body: []byte(`{}`)}
	srv.SetFault(sqstest.AccessDenied.For("SendMessage"))
	if err := q.Put(t.Context(), m, 0); !errors.Is(err, queue.ErrUnavailable) || !queue.NotPut(err) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("refused by IAM: %v (NotPut %v), want ErrUnavailable naming AccessDenied, certainly not put", err, queue.NotPut(err))
	}
	srv.SetFault(sqstest.Down)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := q.Put(ctx, m, 0); queue.NotPut(err) {
		t.Errorf("no answer: %v, NotPut true; want false, the message may be there", err)
	}
	srv.SetFault(sqstest.None)
	q.MaxBodyBytes = 64
	if err := q.Put(t.Context(), m, 0); !errors.Is(err, queue.ErrTooLarge) || !queue.NotPut(err) {
		t.Errorf("a message that would not fit the dead-letter queue grown: %v, want ErrTooLarge, certainly not put", err)
	}
}

// A message the queue takes still fits once dead-lettered and once handed back naming
// a claim, whichever comes first.
func TestAMessageThatFitsFitsGrown(t *testing.T) {
	q, _, _ := newQueue(t)
	base := queue.Message{Door: "webhook", Target: "deploy", Kind: "httpapi", Key: "run#r_1", Queued: time.UnixMilli(1765000000123)}
	base.Body = []byte(`{"a":""}`)
	q.MaxBodyBytes = len(base.Encode()) + 200
	for pad := 0; pad < 200; pad++ {
		m := base
		m.Body = []byte(`{"a":"` + strings.Repeat("x", pad) + `"}`)
		if q.Put(t.Context(), m, 0) != nil {
			continue
		}
		handed := m
		handed.Unsent = "0123456789abcdef01234567"
		if err := q.Put(t.Context(), handed, 0); err != nil {
			t.Fatalf("%d bytes: taken, but its hand-back is refused: %v", len(m.Encode()), err)
		}
		if err := q.Bury(t.Context(), handed, "no record", time.UnixMilli(1765000000999)); err != nil {
			t.Fatalf("%d bytes: taken, but its hand-back is refused by the dead-letter queue: %v", len(m.Encode()), err)
		}
	}
}

// FuzzDecode: a message comes from the queue, which anyone with its rights can write:
// Decode never panics, and what Encode wrote comes back byte for byte.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{`{"a":1}`, " {\"b\":\"<&>\"}\n", `{"body":{"v":1}}`, `{}`} {
		f.Add(seed, "webhook", "deploy", "run#r_1")
	}
	f.Fuzz(func(t *testing.T, body, door, target, key string) {
		_, _ = queue.Decode([]byte(body)) // anything at all: no panic
		if !json.Valid([]byte(body)) || !strings.HasPrefix(strings.TrimLeft(body, " \t\r\n"), "{") || door == "" || target == "" || key == "" ||
			!utf8.ValidString(door) || !utf8.ValidString(target) || !utf8.ValidString(key) { // the relay's own names and keys
			return
		}
		m := queue.Message{Door: door, Target: target, Key: key, Queued: time.UnixMilli(1765000000000), Body: []byte(body)}
		got, err := queue.Decode(m.Encode())
		if err != nil || !bytes.Equal(got.Body, m.Body) || got.Door != door || got.Target != target || got.Key != key {
			t.Errorf("Decode(Encode(%+v)) = %+v, %v", m, got, err)
		}
	})
}

// A copy naming a claim is sent once a call: NotPut then speaks for its only attempt,
// where the SDK's retry could follow an attempt that landed with its answer lost.
func TestACopyIsSentOnceACall(t *testing.T) {
	q, srv, _ := newQueue(t)
	m := queue.Message{Door: "webhook", Target: "deploy", Key: "sig#1", Queued: time.Now(), Body: []byte(`{}`)}
	srv.SetFault(sqstest.Down.Times(1))
	if err := q.Put(t.Context(), m, 0); err != nil {
		t.Fatalf("a message, its first connection dropped: %v; want the SDK's retry to put it", err)
	}
	m.Unsent = "0123456789abcdef01234567"
	srv.SetFault(sqstest.Down.Times(1))
	err := q.Put(t.Context(), m, 0)
	if err == nil || queue.NotPut(err) {
		t.Fatalf("a copy, its connection dropped: %v (NotPut %v); want its one attempt failed, maybe put", err, queue.NotPut(err))
	}
	if err := q.Put(t.Context(), m, 0); err != nil {
		t.Fatalf("the copy once more: %v", err)
	}
}
