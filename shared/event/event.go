// Package event turns the Lambda events the relay accepts into one request shape.
//
// It reads API Gateway REST (payload 1.0), HTTP API (2.0) and Function URL events,
// EventBridge scheduled events, SQS batches (Lambda's event source mapping) and direct
// invocations from their raw JSON, without aws-lambda-go, so the same core serves
// Lambda, a local runner and tests.
package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/port-azure-relay/relay/shared/jsonscan"
)

// Kind says where an invocation came from.
type Kind string

// The kinds of invocation. HTTP ones carry Port's signature; the others are
// authorised by IAM and carry none.
const (
	REST        Kind = "rest"     // API Gateway REST API, payload 1.0 (also HTTP API with payload 1.0)
	HTTPAPI     Kind = "httpapi"  // API Gateway HTTP API, payload 2.0
	FunctionURL Kind = "url"      // Lambda Function URL
	Scheduled   Kind = "schedule" // EventBridge scheduled event
	Direct      Kind = "direct"   // direct invoke or EventBridge Scheduler input
	Queue       Kind = "sqs"      // a batch of the delivery queue, from Lambda's event source mapping
)

// IsHTTP reports whether the invocation came through API Gateway or a Function URL.
func (k Kind) IsHTTP() bool { return k == REST || k == HTTPAPI || k == FunctionURL }

// Errors returned by Parse.
var (
	ErrNotJSON   = errors.New("event is not a JSON object")
	ErrMalformed = errors.New("malformed HTTP event")
)

// Request is one invocation, whatever its event shape.
type Request struct {
	Kind   Kind
	Method string            // upper case; empty for AWS events
	Path   string            // the request path; empty for AWS events
	Header map[string]string // names in lower case
	Body   []byte            // decoded from base64 where the event says so; the whole event for AWS events
	// Source is the caller's address as API Gateway or the Function URL saw the
	// connection (requestContext's sourceIp), never a header the caller controls
	// such as X-Forwarded-For. Invalid when the event has none or not an address.
	Source netip.Addr
	// Records are an SQS batch's messages, for Kind Queue.
	Records []Record
}

// Record is one message of an SQS batch.
type Record struct {
	ID       string // messageId: a batch item failure names it
	Receipt  string // receiptHandle: a visibility change names it
	Body     []byte
	Receives int // ApproximateReceiveCount; 0 when the event does not say
}

// Get returns the value of the header name in any case.
func (r Request) Get(name string) string {
	if v, ok := r.Header[name]; ok {
		return v
	}
	return r.Header[strings.ToLower(name)]
}

// envelope holds every field Parse looks at, so that one decode serves all shapes.
type envelope struct {
	Version        string              `json:"version"`
	HTTPMethod     string              `json:"httpMethod"`
	Path           string              `json:"path"`
	RouteKey       *string             `json:"routeKey"`
	RawPath        string              `json:"rawPath"`
	RequestContext *requestContext     `json:"requestContext"`
	Headers        map[string]string   `json:"headers"`
	MultiHeaders   map[string][]string `json:"multiValueHeaders"`
	Body           *string             `json:"body"`
	IsBase64       bool                `json:"isBase64Encoded"`
	Source         string              `json:"source"`
	DetailType     string              `json:"detail-type"`
	Records        []sqsRecord         `json:"Records"`
}

// sqsRecord is what Parse reads of an SQS event's record.
type sqsRecord struct {
	MessageID     string `json:"messageId"`
	ReceiptHandle string `json:"receiptHandle"`
	Body          string `json:"body"`
	EventSource   string `json:"eventSource"`
	Attributes    struct {
		ApproximateReceiveCount string `json:"ApproximateReceiveCount"`
	} `json:"attributes"`
}

type requestContext struct {
	DomainName string `json:"domainName"`
	HTTP       *struct {
		Method   string   `json:"method"`
		Path     string   `json:"path"`
		SourceIP sourceIP `json:"sourceIp"` // HTTP API 2.0 and Function URLs
	} `json:"http"`
	Identity struct {
		SourceIP sourceIP `json:"sourceIp"` // REST, payload 1.0
	} `json:"identity"`
}

// sourceIP reads an address from its JSON string. What is not an address is left
// invalid rather than failing the event: whoever checks the source then refuses it.
type sourceIP netip.Addr

func (s *sourceIP) UnmarshalText(text []byte) error {
	var a netip.Addr
	if a.UnmarshalText(text) != nil {
		a = netip.Addr{}
	}
	*s = sourceIP(a)
	return nil
}

// httpMarkers are the keys that only HTTP events have at the top level.
var httpMarkers = []string{"httpMethod", "requestContext", "routeKey"}

// Parse reads a raw Lambda event.
func Parse(raw []byte) (Request, error) {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Request{}, ErrNotJSON
	}
	// The body is most of an HTTP event, and encoding/json reads a long escaped
	// string slowly: the envelope is decoded without it, and the body unquoted apart.
	var cut bodyCut
	if !jsonscan.Object(raw, cut.member) {
		return Request{}, ErrNotJSON
	}
	skeleton, body := cut.apply(raw)
	var env envelope
	if err := json.Unmarshal(skeleton, &env); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return Request{}, ErrNotJSON
		}
		// A field we read has another type: an HTTP event is broken, any other
		// object is a direct invocation whose keys happen to share our names.
		if looksHTTP(raw) {
			return Request{}, fmt.Errorf("%w: field %q has the wrong type", ErrMalformed, typeErr.Field)
		}
		return Request{Kind: Direct, Body: raw}, nil
	}
	switch {
	case env.HTTPMethod != "" || env.RequestContext != nil || env.RouteKey != nil:
		return parseHTTP(&env, body)
	case env.Source == "aws.events" && env.DetailType == "Scheduled Event":
		return Request{Kind: Scheduled, Body: raw}, nil
	case len(env.Records) > 0 && allSQS(env.Records):
		return parseSQS(env.Records), nil
	default:
		return Request{Kind: Direct, Body: raw}, nil
	}
}

// bodyCut collects the string values of the top-level members that encoding/json
// would store in envelope.Body: it matches names with bytes.EqualFold, and the last
// such member wins.
type bodyCut struct {
	values [][]byte // each a slice of the event
	last   []byte   // the last member's value if it is a string, else nil
}

func (c *bodyCut) member(key, value []byte, _ int) {
	name := key[1 : len(key)-1]
	if bytes.IndexByte(name, '\\') >= 0 {
		name = jsonscan.Unquote(key)
	}
	if !bytes.EqualFold(name, []byte("body")) {
		return
	}
	c.last = nil
	if value[0] == '"' {
		c.values = append(c.values, value)
		c.last = value
	}
}

// apply returns raw with each collected value replaced by "", and the literal of
// the body encoding/json keeps. When the last body member is not a string, decoding
// the skeleton says what it is (null, or a type error), as decoding raw would.
func (c *bodyCut) apply(raw []byte) (skeleton, body []byte) {
	if len(c.values) == 0 {
		return raw, nil
	}
	size := len(raw)
	for _, v := range c.values {
		size -= len(v) - len(`""`)
	}
	skeleton = make([]byte, 0, size)
	prev := 0
	for _, v := range c.values {
		start := cap(raw) - cap(v) // v is a slice of raw
		skeleton = append(append(skeleton, raw[prev:start]...), `""`...)
		prev = start + len(v)
	}
	return append(skeleton, raw[prev:]...), c.last
}

func allSQS(records []sqsRecord) bool {
	for _, r := range records {
		if r.EventSource != "aws:sqs" || r.MessageID == "" {
			return false
		}
	}
	return true
}

func parseSQS(records []sqsRecord) Request {
	req := Request{Kind: Queue, Records: make([]Record, len(records))}
	for i, r := range records {
		n, _ := strconv.Atoi(r.Attributes.ApproximateReceiveCount)
		req.Records[i] = Record{ID: r.MessageID, Receipt: r.ReceiptHandle, Body: []byte(r.Body), Receives: n}
	}
	return req
}

func looksHTTP(raw []byte) bool {
	var keys map[string]json.RawMessage
	if json.Unmarshal(raw, &keys) != nil {
		return false
	}
	for _, k := range httpMarkers {
		if _, ok := keys[k]; ok {
			return true
		}
	}
	return false
}

// parseHTTP builds the request; body is the literal of the body string, cut from
// the event before decoding.
func parseHTTP(env *envelope, bodyLit []byte) (Request, error) {
	req := Request{Kind: REST, Method: env.HTTPMethod, Path: env.Path}
	if env.RequestContext != nil {
		req.Source = netip.Addr(env.RequestContext.Identity.SourceIP)
	}
	if env.RequestContext != nil && env.RequestContext.HTTP != nil {
		req.Source = netip.Addr(env.RequestContext.HTTP.SourceIP)
		req.Kind = HTTPAPI
		if strings.Contains(env.RequestContext.DomainName, ".lambda-url.") {
			req.Kind = FunctionURL
		}
		req.Method = env.RequestContext.HTTP.Method
		req.Path = env.RawPath
		if req.Path == "" {
			req.Path = env.RequestContext.HTTP.Path
		}
	}
	if req.Method == "" {
		return Request{}, fmt.Errorf("%w: no HTTP method", ErrMalformed)
	}
	req.Method = strings.ToUpper(req.Method)

	header, err := lowerHeaders(env.Headers, env.MultiHeaders)
	if err != nil {
		return Request{}, err
	}
	req.Header = header

	if env.Body != nil {
		body := jsonscan.Unquote(bodyLit)
		if env.IsBase64 {
			decoded := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
			n, err := base64.StdEncoding.Decode(decoded, body)
			if err != nil {
				return Request{}, fmt.Errorf("%w: body is marked base64 but is not valid base64", ErrMalformed)
			}
			body = decoded[:n]
		}
		req.Body = body
	}
	return req, nil
}

// lowerHeaders folds header names to lower case. REST events keep the client's case,
// so one name can arrive twice; differing values are refused rather than guessed at.
func lowerHeaders(single map[string]string, multi map[string][]string) (map[string]string, error) {
	out := make(map[string]string, len(single))
	add := func(name, value string) error {
		key := strings.ToLower(name)
		if prev, ok := out[key]; ok && prev != value {
			return fmt.Errorf("%w: header %s given twice with different values", ErrMalformed, key)
		}
		out[key] = value
		return nil
	}
	for name, value := range single {
		if err := add(name, value); err != nil {
			return nil, err
		}
	}
	// multiValueHeaders repeats headers; only names missing from headers matter.
	names := make([]string, 0, len(multi))
	for name := range multi {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		values := multi[name]
		if _, ok := single[name]; ok || len(values) == 0 {
			continue
		}
		if err := add(name, values[len(values)-1]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Response is what an invocation answers: for HTTP invocations an API Gateway
// response with Body, in the shape of Kind's payload version; for AWS events a
// result or, when Status is 300 or more, a function error with Error as its
// message, so that Lambda's retries and failure destination keep the event.
type Response struct {
	HTTP   bool
	Kind   Kind
	Status int
	Body   []byte // JSON
	Error  string // the error sentence, when Status >= 300
	// MayHaveQueued marks a failed AWS-event invocation after which Azure may have
	// queued the run: it is answered with Body as a result, never as a function
	// error, because Lambda would retry that and could start a second run.
	MayHaveQueued bool
}
