package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// parseReference is Parse as it was before the body was cut from the event: one
// json.Unmarshal of the whole event. Parse must answer exactly as it does.
func parseReference(raw []byte) (Request, error) {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Request{}, ErrNotJSON
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return Request{}, ErrNotJSON
		}
		if looksHTTP(raw) {
			return Request{}, fmt.Errorf("%w: field %q has the wrong type", ErrMalformed, typeErr.Field)
		}
		return Request{Kind: Direct, Body: raw}, nil
	}
	switch {
	case env.HTTPMethod != "" || env.RequestContext != nil || env.RouteKey != nil:
		var lit []byte
		if env.Body != nil {
			lit, _ = json.Marshal(*env.Body) // Unquote gives the decoded string back
		}
		return parseHTTP(&env, lit)
	case env.Source == "aws.events" && env.DetailType == "Scheduled Event":
		return Request{Kind: Scheduled, Body: raw}, nil
	default:
		return Request{Kind: Direct, Body: raw}, nil
	}
}

// tricky are events where how encoding/json picks the body matters.
var tricky = []string{
	`{"httpMethod":"POST","body":"a","body":"b"}`,
	`{"httpMethod":"POST","body":"a","BODY":null}`,
	`{"httpMethod":"POST","Body":null,"bOdY":"c"}`,
	`{"httpMethod":"POST","bod\u0079":"escaped key"}`,
	`{"httpMethod":"POST","body":"x","body":1}`,
	`{"httpMethod":"POST","body":{"body":"nested"}}`,
	`{"httpMethod":"POST","requestContext":{"body":"inner"},"body":"outer"}`,
	`{"httpMethod":"POST","body":"\ud83d\ude00 \ud83d \u00e9 \" \\ \/ \b\f\n\r\t"}`,
	"{\"httpMethod\":\"POST\",\"body\":\"\xff invalid \xc3\"}",
	`{"httpMethod":"POST","body":"aGVsbG8=","isBase64Encoded":true}`,
	`{"httpMethod":"POST","body":"not base64!","isBase64Encoded":true}`,
	`{"httpMethod":"POST","body":""}`,
	`{ "httpMethod" : "POST" , "body" : "spaced" , "headers" : { "A" : "1" } }`,
	`{"source":"aws.events","detail-type":"Scheduled Event","body":"x"}`,
	`{"body":"direct"}`,
	`{"body":1}`,
	`{"httpMethod":1,"body":"x"}`,
	`{"headers":{"a":"1"},"headers":{"b":"2"},"httpMethod":"POST","body":"merged headers"}`,
	`{"httpMethod":"POST","requestContext":{"identity":{"sourceIp":"192.0.2.1"},"http":{"method":"POST","sourceIp":"2001:db8::1"}}}`,
	`{"httpMethod":"POST","requestContext":{"identity":{"sourceIp":"not an address"}}}`,
	`{"httpMethod":"POST","requestContext":{"identity":{"sourceIp":5}}}`,
	`{}`, `{"a":[1,2,{"b":"c"}],"httpMethod":"GET"}`, `[1]`, `{`, ` `, `{"body":"x"} trailing`,
}

func seeds(tb testing.TB) [][]byte {
	var out [][]byte
	for _, s := range tricky {
		out = append(out, []byte(s))
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "events", "*", "*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

func sameAsReference(t *testing.T, raw []byte) {
	t.Helper()
	got, gotErr := Parse(raw)
	want, wantErr := parseReference(raw)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("Parse(%q) error = %v, want %v", raw, gotErr, wantErr)
	}
	if got.Kind != want.Kind || got.Method != want.Method || got.Path != want.Path || got.Source != want.Source ||
		!maps.Equal(got.Header, want.Header) || !bytes.Equal(got.Body, want.Body) {
		t.Fatalf("Parse(%q) = %+v, want %+v", raw, got, want)
	}
}

func TestParseMatchesReference(t *testing.T) {
	for _, raw := range seeds(t) {
		sameAsReference(t, raw)
	}
}

func FuzzParseMatchesReference(f *testing.F) {
	for _, raw := range seeds(f) {
		f.Add(raw)
	}
	f.Fuzz(sameAsReference)
}
