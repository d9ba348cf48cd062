// Package dynamotest runs a local Amazon DynamoDB for the ledger's tests: the real SDK
// client (Client, or AWS_ENDPOINT_URL_DYNAMODB from Env) calls it over DynamoDB's protocol
// (AWS JSON 1.0, target DynamoDB_20120810, Signature Version 4 checked by awstest.Verify),
// on tables that CreateTable makes: a String partition key, no sort key.
//
// It does what the ledger asks of DynamoDB as DynamoDB does it, in DynamoDB's error shapes
// ({"__type":"<namespace>#<Code>","message":...}, an X-Amz-Crc32 the SDK checks):
//
//   - PutItem, UpdateItem, DeleteItem and GetItem, each condition and write under one lock;
//     other operations answer UnknownOperationException.
//   - Attribute values S and N: numbers of up to 38 digits, stored in DynamoDB's canonical
//     form and compared by value; strings compared by their bytes.
//   - ConditionExpression: = <> < <= > >= between top-level attributes (a #name, or a bare
//     name that is not a reserved word) and :values; attribute_exists, attribute_not_exists;
//     NOT, AND, OR (binding in that order) and parentheses. A missing attribute, or values
//     of different types, compare false, but for "<>", the negation of "=".
//   - UpdateExpression SET a = :v, ... of top-level attributes other than the key.
//   - Placeholders: each used one defined, each defined one used.
//   - ReturnValuesOnConditionCheckFailure ALL_OLD: the old item in the
//     ConditionalCheckFailedException.
//   - Keys: exactly the key attribute, a non-empty S of at most 2048 bytes; items of at most
//     400 KB as DynamoDB counts.
//
// The rest is refused with a ValidationException, "dynamotest does not model ..." where
// DynamoDB would accept it: BETWEEN, IN, other functions, nested paths, REMOVE, ADD,
// DELETE, anything but a :value in SET, other attribute types, ReturnValues other than
// NONE, and any other parameter (ProjectionExpression, Expected, ...).
//
// Time to live is DynamoDB's: an expired item stays, and is read, until a background sweep
// deletes it (within days); here, until the test calls Sweep. A ledger compares expiry itself.
package dynamotest

import (
	"crypto/rand"
	"encoding/json"
	"hash/crc32"
	"io"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/port-azure-relay/relay/shared/awstest"
)

// A Fault is a failure the server injects (SetFault); For limits it to one operation.
type Fault = awstest.Fault

// The faults the server injects. The SDK retries Throttle and Down by itself.
var (
	None         = awstest.None
	Down         = awstest.Down            // closes connections without a word: DynamoDB unreachable
	Throttle     = Fault{Kind: "throttle"} // 400 ThrottlingException, as an on-demand table answers
	AccessDenied = Fault{Kind: "denied"}   // 400 AccessDeniedException, as when IAM lacks the action
	AnswerLost   = Fault{Kind: "lost"}     // the change is made, the answer never sent
)

// Server is a DynamoDB endpoint, safe for concurrent use.
type Server struct {
	URL string // http://127.0.0.1:port

	srv    *httptest.Server
	faults awstest.Faults
	mu     sync.Mutex // held while a request reads and writes: conditional writes are atomic
	tables map[string]*table
	calls  map[string]int // by operation; "" counts them all
}

// table is a table's key attribute, its TTL attribute ("" while off) and its items by key.
type table struct {
	key, ttl string
	items    map[string]item
}

// New starts a server on 127.0.0.1 with a random port. Close it when done.
func New() *Server {
	s := &Server{tables: map[string]*table{}, calls: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Env returns the KEY=VALUE lines that point a child process's SDK at this server.
func (s *Server) Env() []string { return append(awstest.Env(), "AWS_ENDPOINT_URL_DYNAMODB="+s.URL) }

// Client returns the real DynamoDB client, with the test account's credentials, pointed at
// this server, built without reading the environment; optFns change its options.
func (s *Server) Client(optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	return dynamodb.NewFromConfig(aws.Config{Region: awstest.Region, BaseEndpoint: aws.String(s.URL),
		Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, awstest.SecretAccessKey, "")}, optFns...)
}

// CreateTable creates an empty table whose partition key is the String attribute key.
func (s *Server) CreateTable(name, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tables[name] != nil || key == "" {
		panic("dynamotest: CreateTable(" + strconv.Quote(name) + "): the table exists, or no key")
	}
	s.tables[name] = &table{key: key, items: map[string]item{}}
}

// EnableTTL turns time to live on, on the Number attribute attr (epoch seconds).
func (s *Server) EnableTTL(tableName, attr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tables[tableName].ttl = attr
}

// Sweep is DynamoDB's time-to-live process passing at now: it deletes the items whose TTL
// attribute is a Number of epoch seconds before now but less than five years before (its
// guard against milliseconds), and says how many.
func (s *Server) Sweep(now time.Time) int {
	end, start := big.NewRat(now.Unix(), 1), big.NewRat(now.AddDate(-5, 0, 0).Unix(), 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.tables {
		for k, it := range t.items {
			if v := it[t.ttl]; v.typ == "N" && rat(v.text).Cmp(end) < 0 && rat(v.text).Cmp(start) > 0 {
				delete(t.items, k)
				n++
			}
		}
	}
	return n
}

// Items returns copies of the table's items, in the order of their keys.
func (s *Server) Items(tableName string) (out []map[string]types.AttributeValue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(s.tables[tableName].items)) {
		it := map[string]types.AttributeValue{}
		for name, v := range s.tables[tableName].items[k] {
			it[name] = &types.AttributeValueMemberS{Value: v.text}
			if v.typ == "N" {
				it[name] = &types.AttributeValueMemberN{Value: v.text}
			}
		}
		out = append(out, it)
	}
	return out
}

// Calls counts the requests for op ("PutItem"), or all when op is "", that passed
// authentication, faulted or not.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// SetFault makes the server fail from now on as f says; SetFault(None) heals it.
func (s *Server) SetFault(f Fault) { s.faults.Set(f) }

// apiError is an answer of DynamoDB's other than 200.
type apiError struct {
	status    int
	code, msg string
	more      map[string]any // members besides __type and message: the old Item, throttlingReasons
}

func validation(msg string) *apiError {
	return &apiError{status: 400, code: "ValidationException", msg: msg}
}

// notModelled is the refusal of what DynamoDB accepts but the ledger does not use.
func notModelled(what string) string { return "dynamotest does not model " + what }

var errSerialization = &apiError{status: 400, code: "SerializationException"}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op := strings.TrimPrefix(target, "DynamoDB_20120810.")
	fault := s.faults.Take(op)
	if fault.Kind == "down" {
		awstest.Drop(w)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
	if err != nil {
		writeJSON(w, &apiError{status: 413, code: "SerializationException", msg: "Request body too large."})
		return
	}
	if e := awstest.Verify(r, body, "dynamodb", time.Now()); e != nil {
		msg := e.Message
		if e.Code == "MissingAuthenticationTokenException" {
			msg = "Request is missing Authentication Token"
		}
		writeJSON(w, &apiError{status: 400, code: e.Code, msg: msg}) // all 400 at DynamoDB
		return
	}
	s.mu.Lock()
	s.calls[op]++
	s.calls[""]++
	s.mu.Unlock()
	if r.Method != http.MethodPost || target != "DynamoDB_20120810."+op || parameters[op] == nil ||
		r.Header.Get("Content-Type") != "application/x-amz-json-1.0" {
		writeJSON(w, &apiError{status: 400, code: "UnknownOperationException"})
		return
	}
	var out any
	req, e := decodeRequest(op, body)
	if e == nil {
		e = inject(fault, op, aws.ToString(req.TableName))
	}
	if e == nil {
		s.mu.Lock()
		out, e = s.handle(op, req)
		s.mu.Unlock()
	}
	switch {
	case fault.Kind == "lost" && awstest.Drop(w):
	case e != nil:
		writeJSON(w, e)
	default:
		writeJSON(w, out)
	}
}

// inject answers the fault's error, or nil to answer normally.
func inject(f Fault, op string, tableName string) *apiError {
	resource := "arn:aws:dynamodb:" + awstest.Region + ":" + awstest.AccountID + ":table/" + tableName
	switch f.Kind {
	case "throttle":
		access := map[bool]string{true: "Read", false: "Write"}[op == "GetItem"]
		return &apiError{status: 400, code: "ThrottlingException",
			msg: "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your table or index so please try again shortly. " +
				"If exceptions persist, check if you have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html",
			more: map[string]any{"throttlingReasons": []map[string]string{{"reason": "Table" + access + "KeyRangeThroughputExceeded", "resource": resource}}}}
	case "denied":
		return &apiError{status: 400, code: "AccessDeniedException",
			msg: "User: arn:aws:sts::" + awstest.AccountID + ":assumed-role/relay/relay is not authorized to perform: dynamodb:" + op +
				" on resource: " + resource + " because no identity-based policy allows the dynamodb:" + op + " action"}
	}
	return nil
}

// writeJSON answers v, or the error v, as DynamoDB does: __type in the namespace of its
// code (the front end's are Coral's, the rest DynamoDB's), a CRC32 of the body that the SDK
// verifies, a request ID of 52 characters of 0-9 and A-V.
func writeJSON(w http.ResponseWriter, v any) {
	status := http.StatusOK
	if e, ok := v.(*apiError); ok {
		body := map[string]any{"__type": "com.amazonaws.dynamodb.v20120810#" + e.code}
		switch e.code {
		case "ValidationException":
			body["__type"] = "com.amazon.coral.validate#" + e.code
		case "SerializationException", "UnknownOperationException", "AccessDeniedException", "UnrecognizedClientException",
			"InvalidSignatureException", "IncompleteSignatureException", "MissingAuthenticationTokenException":
			body["__type"] = "com.amazon.coral.service#" + e.code
		}
		if maps.Copy(body, e.more); e.msg != "" {
			body["message"] = e.msg
		}
		status, v = e.status, body
	}
	b, _ := json.Marshal(v)
	id := make([]byte, 52)
	rand.Read(id)
	for i := range id {
		id[i] = "0123456789ABCDEFGHIJKLMNOPQRSTUV"[id[i]%32]
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Requestid", string(id))
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(b)), 10))
	w.WriteHeader(status)
	w.Write(b)
}
