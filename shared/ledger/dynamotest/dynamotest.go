// Package dynamotest runs a local Amazon DynamoDB endpoint for tests: the real SDK client
// (dynamodb.NewFromConfig, or AWS_ENDPOINT_URL_DYNAMODB from Env) calls PutItem, GetItem,
// UpdateItem and DeleteItem on it over DynamoDB's own protocol (AWS JSON 1.0, target
// DynamoDB_20120810, signed with Signature Version 4), on tables with a string partition
// key that a test creates with CreateTable.
//
// It copies DynamoDB and refuses what DynamoDB refuses, in DynamoDB's error shapes
// ({"__type":"<namespace>#<Code>","message":...}, the HTTP status, an X-Amz-Crc32 of the
// body that the SDK checks), so that a caller that passes here passes against DynamoDB:
//
//   - ConditionExpression, UpdateExpression and ProjectionExpression are parsed by a real
//     parser of DynamoDB's grammar: comparators, BETWEEN, IN, AND, OR, NOT, parentheses
//     (not redundant ones), the functions attribute_exists, attribute_not_exists,
//     attribute_type, begins_with, contains and size; SET (+, -, if_not_exists,
//     list_append), REMOVE, ADD and DELETE. A syntax error, a bare reserved word (all 573:
//     status, name, data, ttl, timestamp...), an undefined #name or :value, an unused one,
//     a misused function, two overlapping paths are refused with DynamoDB's messages.
//   - Comparisons of different types are false, as are those on a missing attribute
//     ("<>" being the negation of "="); numbers are exact decimals (38 digits, DynamoDB's
//     range), compared by value.
//   - A failed condition is a ConditionalCheckFailedException that carries the old item
//     under ReturnValuesOnConditionCheckFailure ALL_OLD. Each request's condition is
//     evaluated and its write made under one lock: conditional writes are atomic.
//   - Keys: exactly the key attribute, of type S, not empty, at most 2048 bytes; an item
//     must hold its key; UpdateItem may not touch it; an item is at most 400 KB as
//     DynamoDB counts. Sets may not be empty or repeat an element; NULL must be true.
//   - ReturnValues NONE, ALL_OLD, ALL_NEW, UPDATED_OLD, UPDATED_NEW, each where DynamoDB
//     allows it; UpdateItem of a missing item creates it.
//   - Authentication as AWS checks it (awstest.Verify), answered as DynamoDB does: HTTP
//     400 with com.amazon.coral.service#UnrecognizedClientException or
//     #InvalidSignatureException.
//
// Time to live is what DynamoDB does, not what one might hope: expiry is a background
// sweep, typically within two days, and until then reads return an item whose TTL
// attribute is in the past. Here nothing expires until the test calls Sweep. A ledger
// must therefore compare the expiry itself (attribute_not_exists(#id) OR #expiry < :now),
// never rely on the item being gone.
//
// Not modelled: other operations (Query, Scan, batches, transactions, table management
// over the wire: those answer UnknownOperationException), sort keys, secondary indexes,
// the legacy parameters (Expected, AttributeUpdates, AttributesToGet, refused with a
// message that says so), capacity (ReturnConsumedCapacity is accepted and ignored),
// gzip responses, and eventual consistency (every read is strongly consistent).
package dynamotest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/port-azure-relay/relay/shared/awstest"
)

const (
	service      = "dynamodb"
	jsonType     = "application/x-amz-json-1.0"
	targetPrefix = "DynamoDB_20120810."
	tableARN     = "arn:aws:dynamodb:" + awstest.Region + ":" + awstest.AccountID + ":table/"
	maxBodySize  = 16 << 20
)

// A Fault is a failure the server injects, set with SetFault (awstest.Fault: Times limits
// it, For limits it to one operation, so that a test can fail one step of a sequence: a
// claim that succeeds and a completion that is throttled).
type Fault = awstest.Fault

// The faults the server can inject. The SDK's standard retryer retries Throttle,
// ProvisionedThroughputExceeded, InternalError and Down by itself (the DynamoDB client
// makes 4 attempts by default); Calls counts each attempt.
var (
	// None answers normally.
	None = awstest.None
	// Down closes every connection without answering, like an unreachable endpoint;
	// such a request reached no DynamoDB, and Calls does not count it.
	Down = awstest.Down
	// Throttle answers 400 ThrottlingException, as an on-demand table does.
	Throttle = Fault{Kind: "throttle"}
	// ProvisionedThroughputExceeded answers 400 ProvisionedThroughputExceededException,
	// as a table with provisioned capacity does.
	ProvisionedThroughputExceeded = Fault{Kind: "provisioned"}
	// InternalError answers 500 InternalServerError.
	InternalError = Fault{Kind: "internal"}
	// AccessDenied answers 400 AccessDeniedException, as DynamoDB does when IAM lacks the
	// operation's action (dynamodb:PutItem...) on the table.
	AccessDenied = Fault{Kind: "denied"}
	// AnswerLost carries the request out, then closes the connection without answering:
	// a write that landed while its caller saw only a network error (and the SDK tried
	// again).
	AnswerLost = Fault{Kind: "lost"}
)

// Slow delays each answer by d, or until the client gives up.
func Slow(d time.Duration) Fault { return awstest.Slow(d) }

// Server is a DynamoDB endpoint. It is safe for concurrent use.
type Server struct {
	// URL is the endpoint's base URL, http://127.0.0.1:port, for BaseEndpoint or
	// AWS_ENDPOINT_URL_DYNAMODB.
	URL string

	srv    *httptest.Server
	done   chan struct{} // closed by Close, so slow answers don't hold it up
	faults awstest.Faults

	mu       sync.Mutex // held while a request reads and writes: conditional writes are atomic
	tables   map[string]*table
	calls    map[string]int
	requests [][]byte
}

// table is one table: its partition key (of type S) and its items by that key's value.
type table struct {
	name, key string
	ttl       string // the TTL attribute, "" while time to live is off
	created   time.Time
	items     map[string]item
}

// New starts a server on 127.0.0.1 with a random port. Close it when done.
func New() *Server {
	s := newServer()
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// NewTLS is New over HTTPS, as AWS serves it, with config's certificate (httptest's
// own when config has none): the client pays for a TLS handshake, as against AWS.
func NewTLS(config *tls.Config) *Server {
	s := newServer()
	s.srv.TLS = config
	s.srv.StartTLS()
	s.URL = s.srv.URL
	return s
}

func newServer() *Server {
	s := &Server{done: make(chan struct{}), tables: map[string]*table{}, calls: map[string]int{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	return s
}

// Close stops the server and waits for answers in progress.
func (s *Server) Close() {
	close(s.done)
	s.srv.Close()
}

// Env returns the KEY=VALUE lines that point the real SDK in a child process at this
// server, with the test account's credentials (awstest.Env).
func (s *Server) Env() []string {
	return append(awstest.Env(), "AWS_ENDPOINT_URL_DYNAMODB="+s.URL)
}

var tableNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// CreateTable creates an empty table whose partition key is the String attribute
// partitionKey, billed on demand, as CreateTable with BillingMode PAY_PER_REQUEST
// does. It panics on a name DynamoDB refuses or one already taken: a test's mistake.
func (s *Server) CreateTable(name, partitionKey string) {
	if !tableNamePattern.MatchString(name) || partitionKey == "" {
		panic("dynamotest: CreateTable(" + strconv.Quote(name) + ", " + strconv.Quote(partitionKey) + "): DynamoDB refuses it")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tables[name] != nil {
		panic("dynamotest: CreateTable(" + strconv.Quote(name) + "): the table exists")
	}
	s.tables[name] = &table{name: name, key: partitionKey, created: time.Now(), items: map[string]item{}}
}

// EnableTTL turns time to live on for the table, on the Number attribute attr (epoch
// seconds), as UpdateTimeToLive does. Items expire only when Sweep runs.
func (s *Server) EnableTTL(tableName, attr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[tableName]
	if t == nil || attr == "" {
		panic("dynamotest: EnableTTL(" + strconv.Quote(tableName) + ", " + strconv.Quote(attr) + "): no such table")
	}
	t.ttl = attr
}

// Sweep is DynamoDB's time-to-live process passing at now: it deletes every item of a
// table with TTL enabled whose TTL attribute is a Number of epoch seconds before now,
// but not five years or more before it (DynamoDB's guard against a value in the wrong
// unit), and returns how many it deleted. Nothing expires without it.
func (s *Server) Sweep(now time.Time) int {
	nowSec, _ := parseNumber(strconv.FormatInt(now.Unix(), 10))
	floor, _ := parseNumber(strconv.FormatInt(now.AddDate(-5, 0, 0).Unix(), 10))
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.tables {
		if t.ttl == "" {
			continue
		}
		for k, it := range t.items {
			if d, ok := number(it[t.ttl]); ok && cmpDecimal(d, nowSec) < 0 && cmpDecimal(d, floor) > 0 {
				delete(t.items, k)
				n++
			}
		}
	}
	return n
}

// Items returns copies of the table's items, by partition key, or nil for no such table.
func (s *Server) Items(tableName string) []map[string]types.AttributeValue {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[tableName]
	if t == nil {
		return nil
	}
	out := make([]map[string]types.AttributeValue, 0, len(t.items))
	for _, k := range mapKeys(t.items) {
		out = append(out, cloneItem(t.items[k]))
	}
	return out
}

// Calls counts the requests for op ("PutItem"), or for every operation when op is "",
// that passed authentication, faulted or not: each attempt of the SDK's retries counts.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if op != "" {
		return s.calls[op]
	}
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

// Requests returns the body of every request the server read, in order, refused ones
// included: a test can assert that no secret or payload ever reached DynamoDB.
func (s *Server) Requests() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(s.requests))
	for i, b := range s.requests {
		out[i] = slices.Clone(b)
	}
	return out
}

// SetFault makes the server fail from now on as f says; SetFault(None) heals it.
func (s *Server) SetFault(f Fault) { s.faults.Set(f) }

// apiError is an error DynamoDB answers: its HTTP status, its code (the SDK's ErrorCode),
// its message and, for some, more members.
type apiError struct {
	status  int
	code    string
	msg     string
	item    item             // ConditionalCheckFailedException: the old item, under ALL_OLD
	reasons []map[string]any // the throttling exceptions' reasons
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func validation(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "ValidationException", msg: msg}
}

// namespaces are where DynamoDB's __type puts each code: the front end's own errors are
// Coral's, the rest DynamoDB's.
var namespaces = map[string]string{
	"ValidationException":                 "com.amazon.coral.validate#",
	"SerializationException":              "com.amazon.coral.service#",
	"UnknownOperationException":           "com.amazon.coral.service#",
	"AccessDeniedException":               "com.amazon.coral.service#",
	"UnrecognizedClientException":         "com.amazon.coral.service#",
	"InvalidSignatureException":           "com.amazon.coral.service#",
	"IncompleteSignatureException":        "com.amazon.coral.service#",
	"MissingAuthenticationTokenException": "com.amazon.coral.service#",
}

func namespace(code string) string {
	if ns, ok := namespaces[code]; ok {
		return ns
	}
	return "com.amazonaws.dynamodb.v20120810#"
}

var (
	errSerialization   = &apiError{status: http.StatusBadRequest, code: "SerializationException"}
	errNumberNotString = &apiError{status: http.StatusBadRequest, code: "SerializationException", msg: "NUMBER_VALUE cannot be converted to String"}
	errTooLarge        = &apiError{status: http.StatusRequestEntityTooLarge, code: "SerializationException", msg: "Request body too large."}
	errUnknownOp       = &apiError{status: http.StatusBadRequest, code: "UnknownOperationException"}
	errNotFound        = &apiError{status: http.StatusBadRequest, code: "ResourceNotFoundException", msg: "Requested resource not found"}
	errInternal        = &apiError{status: http.StatusInternalServerError, code: "InternalServerError", msg: "Internal server error"}
)

// authError is awstest's refusal as DynamoDB words it: every one is a 400 there.
func authError(e *awstest.Error) *apiError {
	msg := e.Message
	if e.Code == "MissingAuthenticationTokenException" {
		msg = "Request is missing Authentication Token"
	}
	return &apiError{status: http.StatusBadRequest, code: e.Code, msg: msg}
}

// operations are the targets the server answers, by name.
var operations = map[string]func(*Server, *request) (any, *apiError){
	"PutItem":            (*Server).putItem,
	"GetItem":            (*Server).getItem,
	"UpdateItem":         (*Server).updateItem,
	"DeleteItem":         (*Server).deleteItem,
	"DescribeTable":      (*Server).describeTable,
	"DescribeTimeToLive": (*Server).describeTimeToLive,
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op := strings.TrimPrefix(target, targetPrefix)
	fault := s.faults.Take(op)
	if fault.Kind == "down" {
		if !awstest.Drop(w) {
			writeError(w, errInternal)
		}
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		writeError(w, errTooLarge)
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, body)
	s.mu.Unlock()
	if e := awstest.Verify(r, body, service, time.Now()); e != nil {
		writeError(w, authError(e))
		return
	}
	s.mu.Lock()
	s.calls[op]++
	s.mu.Unlock()
	handle, known := operations[op]
	if r.Method != http.MethodPost || !strings.HasPrefix(target, targetPrefix) || !known ||
		r.Header.Get("Content-Type") != jsonType {
		writeError(w, errUnknownOp)
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, errSerialization)
		return
	}
	if e := s.inject(r.Context(), fault, op, req.TableName); e != nil {
		writeError(w, e)
		return
	}
	s.mu.Lock()
	out, e := handle(s, &req)
	s.mu.Unlock()
	if fault.Kind == "lost" && awstest.Drop(w) {
		return
	}
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// inject waits or fails as the fault says; a nil result means answer normally.
func (s *Server) inject(ctx context.Context, f Fault, op string, tableName *string) *apiError {
	resource := tableARN + "*"
	if tableName != nil {
		resource = tableARN + strings.TrimPrefix(*tableName, tableARN)
	}
	access := "Write"
	if strings.HasPrefix(op, "Get") || strings.HasPrefix(op, "Describe") {
		access = "Read"
	}
	f.Wait(ctx, s.done)
	switch f.Kind {
	case "throttle":
		return &apiError{status: http.StatusBadRequest, code: "ThrottlingException",
			msg: "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your table or index so please try again shortly. " +
				"If exceptions persist, check if you have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html",
			reasons: []map[string]any{{"reason": "Table" + access + "KeyRangeThroughputExceeded", "resource": resource}}}
	case "provisioned":
		return &apiError{status: http.StatusBadRequest, code: "ProvisionedThroughputExceededException",
			msg:     "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
			reasons: []map[string]any{{"reason": "Table" + access + "ProvisionedThroughputExceeded", "resource": resource}}}
	case "internal":
		return errInternal
	case "denied":
		return &apiError{status: http.StatusBadRequest, code: "AccessDeniedException",
			msg: "User: arn:aws:sts::" + awstest.AccountID + ":assumed-role/relay/relay is not authorized to perform: dynamodb:" + op +
				" on resource: " + resource + " because no identity-based policy allows the dynamodb:" + op + " action"}
	}
	return nil
}

func writeError(w http.ResponseWriter, e *apiError) {
	body := map[string]any{"__type": namespace(e.code) + e.code}
	if e.msg != "" {
		body["message"] = e.msg
	}
	if e.item != nil {
		body["Item"] = encodeItem(e.item)
	}
	if e.reasons != nil {
		// As DynamoDB's model spells them: lower case in one exception, upper in the other.
		key := "throttlingReasons"
		if e.code == "ProvisionedThroughputExceededException" {
			key = "ThrottlingReasons"
		}
		body[key] = e.reasons
	}
	writeJSON(w, e.status, body)
}

// writeJSON answers as DynamoDB does, with a CRC32 of the body that the SDK verifies.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError"}`)
	}
	w.Header().Set("Content-Type", jsonType)
	w.Header().Set("X-Amzn-Requestid", requestID())
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(b)), 10))
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// requestID is shaped like DynamoDB's: 52 characters of 0-9 and A-V.
func requestID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUV"
	b := make([]byte, 52)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return string(b)
}
