package lambdatest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// The identifiers the events carry; any plausible values do.
const (
	accountID  = "123456789012"
	apiID      = "abc123defg"
	urlID      = "abcdefghijklmnopqrstuvwxyz012345"
	region     = "us-east-1"
	sourceIP   = "203.0.113.10"
	userAgent  = "Port-Webhook/1.0"
	stage      = "prod"
	restDomain = apiID + ".execute-api." + region + ".amazonaws.com"
	urlDomain  = urlID + ".lambda-url." + region + ".on.aws"
)

// body returns the event's body and whether it is base64: API Gateway and Function
// URLs encode what is not valid UTF-8.
func body(b []byte) (string, bool) {
	if utf8.Valid(b) {
		return string(b), false
	}
	return base64.StdEncoding.EncodeToString(b), true
}

// joined folds repeated headers into one comma-separated value with a lower-case
// name, as HTTP APIs and Function URLs do.
func joined(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for name, values := range h {
		out[strings.ToLower(name)] = strings.Join(values, ",")
	}
	return out
}

func splitPath(target string) (path, rawQuery string) {
	path, rawQuery, _ = strings.Cut(target, "?")
	if path == "" {
		path = "/"
	}
	return path, rawQuery
}

func query(rawQuery string) (map[string]string, map[string][]string) {
	if rawQuery == "" {
		return nil, nil
	}
	single, multi := map[string]string{}, map[string][]string{}
	for _, kv := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		single[k] = v
		multi[k] = append(multi[k], v)
	}
	return single, multi
}

// HTTPAPIEvent returns an API Gateway HTTP API (payload 2.0) event for a request to
// path (which may hold a query) with a $default route.
func HTTPAPIEvent(method, path string, h http.Header, b []byte) []byte {
	return httpAPIEvent(method, path, h, b, "$default")
}

func httpAPIEvent(method, target string, h http.Header, b []byte, routeKey string) []byte {
	now := time.Now().UTC()
	p, rawQuery := splitPath(target)
	single, _ := query(rawQuery)
	bodyText, b64 := body(b)
	headers := joined(h)
	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              routeKey,
		RawPath:               p,
		RawQueryString:        rawQuery,
		Headers:               headers,
		QueryStringParameters: single,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     routeKey,
			AccountID:    accountID,
			Stage:        "$default",
			RequestID:    newID(),
			APIID:        apiID,
			DomainName:   restDomain,
			DomainPrefix: apiID,
			Time:         now.Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    method,
				Path:      p,
				Protocol:  "HTTP/1.1",
				SourceIP:  sourceIP,
				UserAgent: userAgentOf(headers),
			},
		},
		Body:            bodyText,
		IsBase64Encoded: b64,
	}
	out, _ := json.Marshal(ev)
	return out
}

// FunctionURLEvent returns a Lambda Function URL event (the 2.0 shape, on a
// *.lambda-url.* domain).
func FunctionURLEvent(method, path string, h http.Header, b []byte) []byte {
	now := time.Now().UTC()
	p, rawQuery := splitPath(path)
	single, _ := query(rawQuery)
	bodyText, b64 := body(b)
	headers := joined(h)
	headers["host"] = urlDomain
	ev := events.LambdaFunctionURLRequest{
		Version:               "2.0",
		RawPath:               p,
		RawQueryString:        rawQuery,
		Headers:               headers,
		QueryStringParameters: single,
		RequestContext: events.LambdaFunctionURLRequestContext{
			AccountID:    "anonymous",
			RequestID:    newID(),
			APIID:        urlID,
			DomainName:   urlDomain,
			DomainPrefix: urlID,
			Time:         now.Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{
				Method:    method,
				Path:      p,
				Protocol:  "HTTP/1.1",
				SourceIP:  sourceIP,
				UserAgent: userAgentOf(headers),
			},
		},
		Body:            bodyText,
		IsBase64Encoded: b64,
	}
	out, _ := json.Marshal(ev)
	return out
}

// RESTEvent returns an API Gateway REST API (payload 1.0) proxy event: header names
// keep the client's case, and multiValueHeaders repeats them.
func RESTEvent(method, path string, h http.Header, b []byte) []byte {
	now := time.Now().UTC()
	p, rawQuery := splitPath(path)
	single, multi := query(rawQuery)
	bodyText, b64 := body(b)
	headers := make(map[string]string, len(h))
	multiHeaders := make(map[string][]string, len(h))
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		values := h[name]
		if len(values) == 0 {
			continue
		}
		headers[name] = values[len(values)-1] // REST keeps the last value in headers
		multiHeaders[name] = append([]string(nil), values...)
	}
	ev := events.APIGatewayProxyRequest{
		Resource:                        "/{proxy+}",
		Path:                            p,
		HTTPMethod:                      method,
		Headers:                         headers,
		MultiValueHeaders:               multiHeaders,
		QueryStringParameters:           single,
		MultiValueQueryStringParameters: multi,
		PathParameters:                  map[string]string{"proxy": strings.TrimPrefix(p, "/")},
		RequestContext: events.APIGatewayProxyRequestContext{
			AccountID:        accountID,
			ResourceID:       "a1b2c3",
			Stage:            stage,
			DomainName:       restDomain,
			DomainPrefix:     apiID,
			RequestID:        newID(),
			Protocol:         "HTTP/1.1",
			Identity:         events.APIGatewayRequestIdentity{SourceIP: sourceIP, UserAgent: userAgentOf(joined(h))},
			ResourcePath:     "/{proxy+}",
			Path:             "/" + stage + p,
			HTTPMethod:       method,
			RequestTime:      now.Format("02/Jan/2006:15:04:05 -0700"),
			RequestTimeEpoch: now.UnixMilli(),
			APIID:            apiID,
		},
		Body:            bodyText,
		IsBase64Encoded: b64,
	}
	out, _ := json.Marshal(ev)
	return out
}

// ScheduledEvent returns an EventBridge scheduled event, as a schedule rule sends it.
func ScheduledEvent(ruleName string) []byte {
	ev := events.EventBridgeEvent{
		Version:    "0",
		ID:         newID(),
		DetailType: "Scheduled Event",
		Source:     "aws.events",
		AccountID:  accountID,
		Time:       time.Now().UTC().Truncate(time.Second),
		Region:     region,
		Resources:  []string{"arn:aws:events:" + region + ":" + accountID + ":rule/" + ruleName},
		Detail:     json.RawMessage("{}"),
	}
	out, _ := json.Marshal(ev)
	return out
}

func userAgentOf(headers map[string]string) string {
	if ua := headers["user-agent"]; ua != "" {
		return ua
	}
	return userAgent
}

// WithSourceIP returns ev, an HTTP event built above, with the caller's address
// set where API Gateway and Function URLs put the connection's peer:
// requestContext.http.sourceIp (payload 2.0) or requestContext.identity.sourceIp
// (REST). An empty ip removes it. The events above come from 203.0.113.10.
func WithSourceIP(ev []byte, ip string) []byte {
	var top, rc, inner map[string]json.RawMessage
	if json.Unmarshal(ev, &top) != nil || json.Unmarshal(top["requestContext"], &rc) != nil {
		return ev
	}
	key := "identity"
	if _, ok := rc["http"]; ok {
		key = "http"
	}
	if json.Unmarshal(rc[key], &inner) != nil || inner == nil {
		inner = map[string]json.RawMessage{}
	}
	if ip == "" {
		delete(inner, "sourceIp")
	} else {
		inner["sourceIp"], _ = json.Marshal(ip)
	}
	rc[key], _ = json.Marshal(inner)
	top["requestContext"], _ = json.Marshal(rc)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // leave the body's literal as the builder wrote it
	_ = enc.Encode(top)
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}
