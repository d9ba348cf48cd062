// Package sqstest runs a local Amazon SQS endpoint for tests, demos and benchmarks: the real
// SDK client (Client, or AWS_ENDPOINT_URL_SQS from Env) calls SendMessage, ReceiveMessage,
// DeleteMessage, ChangeMessageVisibility, GetQueueUrl, GetQueueAttributes and
// StartMessageMoveTask on standard queues that a test creates with CreateQueue.
//
// It speaks SQS's protocol (AWS JSON 1.0, SigV4 checked by awstest) and answers with SQS's
// errors: a JSON __type and the x-amzn-query-error header, whose code the SDK's ErrorCode
// returns (AWS.SimpleQueueService.NonExistentQueue, InvalidParameterValue, …). It keeps, as
// SQS does, visibility timeouts (ChangeMessageVisibility counts from now, up to 12 hours
// after the receive; on a message no longer in flight it is accepted and changes nothing,
// which is what SQS answers), every receipt handle of a message valid until it goes,
// delays, receive counts, retention from the first send (kept in a dead-letter queue), and
// the redrive policy: a message received maxReceiveCount times moves to the dead-letter
// queue on the next receive that would return it. StartMessageMoveTask moves a dead-letter
// queue's visible messages back at once, as new messages (new MessageId, send time, count).
// ReceiveMessage long-polls in real time and answers as soon as a message is visible.
//
// Time: every message time comes from Server.Now. A test that sets it to a Clock's Now and
// calls Advance sees minutes of delay, visibility or retention pass at once; a long poll
// notices within 10 ms. Signatures are checked against the wall clock, as AWS does.
//
// Not modelled: FIFO queues, batch operations, queue management over the wire (answered
// UnknownOperationException), move rates and ListMessageMoveTasks, KMS, policies, and the
// sampling of short polls (every visible message is a candidate).
package sqstest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/port-azure-relay/relay/shared/awstest"
)

// SenderID is every message's SenderId: the IAM user ID of the test account's key.
const SenderID = "AIDASQSTESTEXAMPLE123"

const (
	jsonType  = "application/x-amz-json-1.0"
	arnPrefix = "arn:aws:sqs:" + awstest.Region + ":" + awstest.AccountID + ":"
)

// A Fault is a failure the server injects, set with SetFault (awstest.Fault: Times limits
// it, For limits it to one operation, e.g. "SendMessage").
type Fault = awstest.Fault

// The faults the server injects: None answers normally; Down closes every connection
// unanswered, like an unreachable endpoint (Calls does not count such a request).
var None, Down = awstest.None, awstest.Down

// AccessDenied answers 403 AccessDenied, as SQS does when IAM lacks the action: the
// request was read and refused.
var AccessDenied = Fault{Kind: "denied"}

// Slow delays each answer by d, or until the client gives up.
func Slow(d time.Duration) Fault { return awstest.Slow(d) }

// Clock is a time for Server.Now that a test advances; it is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads t until advanced.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// Server is an SQS endpoint. It is safe for concurrent use.
type Server struct {
	// URL is the endpoint, http://127.0.0.1:port, for BaseEndpoint or AWS_ENDPOINT_URL_SQS;
	// a queue's URL is URL/<account>/<name>, as SQS's are.
	URL string
	// Now is the time of every message event; nil means time.Now. Set it before requests.
	Now func() time.Time

	srv    *httptest.Server
	done   chan struct{} // closed by Close, so slow answers and long polls end
	faults awstest.Faults

	mu     sync.Mutex
	queues map[string]*queue // by name
	calls  map[string]int
}

// New starts a server on 127.0.0.1 with a random port. Close it when done.
func New() *Server {
	s := &Server{done: make(chan struct{}), queues: map[string]*queue{}, calls: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server and waits for answers in progress.
func (s *Server) Close() {
	close(s.done)
	s.srv.Close()
}

// Env returns the KEY=VALUE lines that point the real SDK in a child process at this
// server, with the test account's credentials (awstest.Env).
func (s *Server) Env() []string { return append(awstest.Env(), "AWS_ENDPOINT_URL_SQS="+s.URL) }

// Client returns the real SQS client, signed with the test account's credentials and
// pointed at this server, built without reading the environment; optFns change its
// options as they would sqs.NewFromConfig's.
func (s *Server) Client(optFns ...func(*sqs.Options)) *sqs.Client {
	cfg := aws.Config{Region: awstest.Region, Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, awstest.SecretAccessKey, "")}
	return sqs.NewFromConfig(cfg, append([]func(*sqs.Options){func(o *sqs.Options) { o.BaseEndpoint = aws.String(s.URL) }}, optFns...)...)
}

// SetFault makes the server fail from now on as f says; SetFault(None) heals it.
func (s *Server) SetFault(f Fault) { s.faults.Set(f) }

// Calls counts the requests for op ("SendMessage"), or for every operation when op is "",
// that passed authentication, faulted or not.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// apiError is an answer of SQS's: the status, the body's __type, the x-amzn-query-error
// code (the SDK's ErrorCode) and the message.
type apiError struct {
	status           int
	shape, code, msg string
}

func sqsError(status int, code, msg string) *apiError {
	return &apiError{status, "com.amazonaws.sqs#" + code, code, msg}
}

// invalid is SQS's InvalidParameterValue, an error of AWS's request layer (Coral).
func invalid(msg string) *apiError {
	return &apiError{400, "com.amazon.coral.service#InvalidParameterValueException", "InvalidParameterValue", msg}
}

var (
	errNoQueue       = &apiError{400, "com.amazonaws.sqs#QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist."}
	errNoBody        = &apiError{400, "com.amazon.coral.service#MissingRequiredParameterException", "MissingParameter", "The request must contain the parameter MessageBody."}
	errSerialization = &apiError{400, "com.amazon.coral.service#SerializationException", "", "Malformed request body."}
	errUnknownOp     = &apiError{400, "com.amazon.coral.service#UnknownOperationException", "", ""}
)

// request holds the input members of every operation; numbers are pointers, so that an
// absent member (the queue's default) and 0 differ.
type request struct {
	QueueUrl, QueueName, QueueOwnerAWSAccountId, ReceiptHandle, SourceArn, DestinationArn string
	MessageBody                                                                           *string
	MessageAttributes                                                                     map[string]attrValue
	AttributeNames, MessageSystemAttributeNames, MessageAttributeNames                    []string
	DelaySeconds, MaxNumberOfMessages, VisibilityTimeout, WaitTimeSeconds                 *int
	MaxNumberOfMessagesPerSecond                                                          *int
}

// operations are the targets the server answers; each runs with s.mu held.
var operations = map[string]func(*Server, *request) (any, *apiError){
	"SendMessage":             (*Server).sendMessage,
	"ReceiveMessage":          (*Server).receiveMessage,
	"DeleteMessage":           (*Server).deleteMessage,
	"ChangeMessageVisibility": (*Server).changeMessageVisibility,
	"GetQueueUrl":             (*Server).getQueueURL,
	"GetQueueAttributes":      (*Server).getQueueAttributes,
	"StartMessageMoveTask":    (*Server).startMessageMoveTask,
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op, _ := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	fault := s.faults.Take(op)
	if fault.Kind == "down" && awstest.Drop(w) {
		return
	}
	if fault.Kind == "denied" {
		writeError(w, &apiError{http.StatusForbidden, "com.amazon.coral.service#AccessDeniedException", "AccessDenied",
			"User: arn:aws:sts::" + awstest.AccountID + ":assumed-role/relay/relay is not authorized to perform: sqs:" + op})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		writeError(w, &apiError{413, "com.amazon.coral.service#SerializationException", "", "Request body too large."})
		return
	}
	if e := awstest.Verify(r, body, "sqs", time.Now()); e != nil {
		writeError(w, &apiError{e.Status, "com.amazon.coral.service#" + e.Code, e.Code, e.Message})
		return
	}
	handle, ok := operations[op]
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != jsonType || !ok {
		writeError(w, errUnknownOp)
		return
	}
	s.mu.Lock()
	s.calls[op]++
	s.calls[""]++
	s.mu.Unlock()
	fault.Wait(r.Context(), s.done)
	var in request
	if json.Unmarshal(body, &in) != nil {
		writeError(w, errSerialization)
		return
	}
	// A receive that finds nothing answers nil and waits, polling, for its WaitTimeSeconds.
	deadline := time.Now()
	if in.WaitTimeSeconds != nil && *in.WaitTimeSeconds > 0 {
		deadline = deadline.Add(time.Duration(*in.WaitTimeSeconds) * time.Second)
	}
	for r.Context().Err() == nil { // a poll whose client gave up takes nothing more
		s.mu.Lock()
		out, e := handle(s, &in)
		s.mu.Unlock()
		if e != nil {
			writeError(w, e)
			return
		}
		if out != nil || !time.Now().Before(deadline) {
			writeJSON(w, 200, out)
			return
		}
		select {
		case <-time.After(min(10*time.Millisecond, time.Until(deadline))):
		case <-s.done:
			return
		}
	}
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.code != "" {
		w.Header().Set("X-Amzn-Query-Error", e.code+";Sender")
	}
	writeJSON(w, e.status, struct {
		Type    string `json:"__type"`
		Message string `json:"message,omitempty"`
	}{e.shape, e.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	if string(b) == "null" {
		b = []byte("{}")
	}
	w.Header().Set("Content-Type", jsonType)
	w.Header().Set("X-Amzn-Requestid", awstest.NewUUID())
	w.WriteHeader(status)
	w.Write(b)
}
