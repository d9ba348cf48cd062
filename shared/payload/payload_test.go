package payload_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/port-azure-relay/relay/shared/payload"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
)

// actionBody is what a current Port action sends with the payload template of Port's Azure guides.
const actionBody = `{"service":"billing","port_context":{"entity":"billing","blueprint":"service","runId":"r_QbnsJxeGVOxVjKfD","trigger":{"by":{"userId":"u_1"}}}}`

// agentBody is the older format, still what Port's agent receives.
const agentBody = `{"action":"Create","resourceType":"run","status":"TRIGGERED","trigger":{"by":{"orgId":"test_org","userId":"test_user"},"origin":"UI","at":"2022-11-16T16:31:32.447Z"},"context":{"entity":null,"blueprint":"Service","runId":"r_jE5FhDURh4Uen2Qr"},"payload":{"entity":null,"action":{"identifier":"Create"},"properties":{}}}`

// nested returns an object nesting depth levels, the root included.
func nested(depth int) string {
	return `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
}

func TestCheck(t *testing.T) {
	const guid = "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c"
	sized := func(n int) string { // an object of exactly n bytes
		return `{"a":"` + strings.Repeat("x", n-8) + `"}`
	}

	tests := []struct {
		name  string
		body  string
		runID string
		err   error
	}{
		{name: "an action body gives port_context.runId", body: actionBody, runID: "r_QbnsJxeGVOxVjKfD"},
		{name: "an agent body gives context.runId", body: agentBody, runID: "r_jE5FhDURh4Uen2Qr"},
		{name: "port_context wins over context when it comes first", body: `{"port_context":{"runId":"r_new"},"context":{"runId":"r_old"}}`, runID: "r_new"},
		{name: "port_context wins over context when it comes last", body: `{"context":{"runId":"r_old"},"port_context":{"runId":"r_new"}}`, runID: "r_new"},
		{name: "context is used when port_context has no runId", body: `{"port_context":{"entity":"e"},"context":{"runId":"r_old"}}`, runID: "r_old"},
		{name: "a runId that is a number gives no run id", body: `{"port_context":{"runId":5}}`},
		{name: "a runId that is null gives no run id", body: `{"port_context":{"runId":null}}`},
		{name: "a port_context that is a string gives no run id", body: `{"port_context":"r_1"}`},
		{name: "a runId nested deeper gives no run id", body: `{"payload":{"port_context":{"runId":"r_1"}}}`},
		{name: "a body without a run id passes", body: `{"service":"billing"}`},
		{name: "an empty object passes", body: `{}`},
		{name: "an object with surrounding space passes", body: " \n\t{\"a\":1}\r\n"},
		{name: "HTML and non-ASCII pass unchanged", body: `{"name":"<svc>&é\u2028"}`},
		{name: "an empty body is empty", body: "", err: payload.ErrEmpty},
		{name: "a body of exactly MaxSize passes", body: sized(payload.MaxSize)},
		{name: "a body one byte over MaxSize is too large", body: sized(payload.MaxSize + 1), err: payload.ErrTooLarge},
		{name: "a byte-order mark is not JSON", body: "\xef\xbb\xbf{}", err: payload.ErrNotJSON},
		{name: "invalid UTF-8 is refused", body: "{\"a\":\"\xff\"}", err: payload.ErrNotUTF8},
		{name: "a truncated object is not JSON", body: `{"a":`, err: payload.ErrNotJSON},
		{name: "two objects are not JSON", body: `{}{}`, err: payload.ErrNotJSON},
		{name: "blank space is not JSON", body: "  ", err: payload.ErrNotJSON},
		{name: "an array is not an object", body: `[{"a":1}]`, err: payload.ErrNotObject},
		{name: "a number is not an object", body: `42`, err: payload.ErrNotObject},
		{name: "a string is not an object", body: `"{}"`, err: payload.ErrNotObject},
		{name: "null is not an object", body: `null`, err: payload.ErrNotObject},
		{name: "nesting MaxDepth levels passes", body: nested(payload.MaxDepth)},
		{name: "nesting one level more than MaxDepth is too deep", body: nested(payload.MaxDepth + 1), err: payload.ErrTooDeep},
		{name: "brackets inside strings do not count as nesting", body: `{"a":"` + strings.Repeat("[{", 100) + `"}`},
		{name: "the run id is returned with a body too deep", body: `{"port_context":{"runId":"r_1"},"x":` + nested(payload.MaxDepth) + `}`, runID: "r_1", err: payload.ErrTooDeep},

		{name: "eventType as a string passes", body: `{"eventType":"deploy"}`},
		{name: "eventType as a number is reserved", body: `{"eventType":1}`, err: payload.ErrReservedKey},
		{name: "eventType as an object is reserved", body: `{"eventType":{"a":"b"}}`, err: payload.ErrReservedKey},
		{name: "eventType as null passes", body: `{"eventType":null}`},
		{name: "projectId as a GUID passes", body: `{"projectId":"` + guid + `"}`},
		{name: "projectId as an upper-case GUID passes", body: `{"projectId":"` + strings.ToUpper(guid) + `"}`},
		{name: "projectId as a GUID in braces passes", body: `{"projectId":"{` + guid + `}"}`},
		{name: "projectId as a GUID without hyphens passes", body: `{"projectId":"` + strings.ReplaceAll(guid, "-", "") + `"}`},
		{name: "projectId as a GUID with an opening brace only is reserved", body: `{"projectId":"{` + guid + `"}`, err: payload.ErrReservedKey},
		{name: "projectId as a GUID with a closing brace only is reserved", body: `{"projectId":"` + guid + `}"}`, err: payload.ErrReservedKey},
		{name: "projectId as a GUID missing one hyphen is reserved", body: `{"projectId":"` + strings.Replace(guid, "-", "", 1) + `"}`, err: payload.ErrReservedKey},
		{name: "projectId as a name is reserved", body: `{"projectId":"my-project"}`, err: payload.ErrReservedKey},
		{name: "projectId as a short GUID is reserved", body: `{"projectId":"` + guid[:35] + `"}`, err: payload.ErrReservedKey},
		{name: "projectId as a number is reserved", body: `{"projectId":42}`, err: payload.ErrReservedKey},
		{name: "projectId as null passes", body: `{"projectId":null}`},
		{name: "run as an object passes", body: `{"run":{"id":1}}`},
		{name: "run as a string is reserved", body: `{"run":"1"}`, err: payload.ErrReservedKey},
		{name: "run as an array is reserved", body: `{"run":[]}`, err: payload.ErrReservedKey},
		{name: "run as null passes", body: `{"run":null}`},
		{name: "pipeline as an object passes", body: `{"pipeline":{"id":1}}`},
		{name: "pipeline as an array is reserved", body: `{"pipeline":[{"id":1}]}`, err: payload.ErrReservedKey},
		{name: "pipeline as a number is reserved", body: `{"pipeline":1}`, err: payload.ErrReservedKey},
		{name: "pipeline as null passes", body: `{"pipeline":null}`},
		{name: "tags as a string array passes", body: `{"tags":["a","b"]}`},
		{name: "tags as an empty array passes", body: `{"tags":[]}`},
		{name: "tags with a number is reserved", body: `{"tags":["a",1]}`, err: payload.ErrReservedKey},
		{name: "tags with an object is reserved", body: `{"tags":[{"a":"b"}]}`, err: payload.ErrReservedKey},
		{name: "tags as a string is reserved", body: `{"tags":"a"}`, err: payload.ErrReservedKey},
		{name: "tags as null passes", body: `{"tags":null}`},
		{name: "stages as an array passes", body: `{"stages":[{"name":"build"}]}`},
		{name: "stages as an object is reserved", body: `{"stages":{"build":{}}}`, err: payload.ErrReservedKey},
		{name: "stages as a string is reserved", body: `{"stages":"build"}`, err: payload.ErrReservedKey},
		{name: "stages as null passes", body: `{"stages":null}`},
		{name: "eventPayload as an object is reserved", body: `{"eventPayload":{}}`, err: payload.ErrReservedKey},
		{name: "eventPayload as a string is reserved", body: `{"eventPayload":"x"}`, err: payload.ErrReservedKey},
		{name: "eventPayload as an empty array is reserved", body: `{"eventPayload":[]}`, err: payload.ErrReservedKey},
		{name: "eventPayload as false is reserved", body: `{"eventPayload":false}`, err: payload.ErrReservedKey},
		{name: "eventPayload as null is reserved", body: `{"eventPayload":null}`, err: payload.ErrReservedKey},
		{name: "every reserved key with its type passes", body: `{"eventType":"e","projectId":"` + guid + `","run":{},"pipeline":{},"tags":["a"],"stages":[]}`},
		{name: "a reserved key after valid members is found", body: `{"a":{"run":"x"},"b":[1,2],"c":"run","run":"1"}`, err: payload.ErrReservedKey},
		{name: "a key escaped as \\u0072un counts as run", body: `{"\u0072un":"1"}`, err: payload.ErrReservedKey},
		{name: "a key with an escaped quote is read whole", body: `{"r\"un":"1","a\\":"b"}`},
		{name: "a reserved name in other case is not reserved", body: `{"Run":"1","TAGS":"a"}`},
		{name: "the run id is returned with a reserved key", body: `{"run":"1","port_context":{"runId":"r_1"}}`, runID: "r_1", err: payload.ErrReservedKey},
		{name: "reserved names nested below the top level are ignored", body: `{"payload":{"run":"1","tags":"a","eventPayload":{}},"list":[{"stages":{}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runID, err := payload.Check([]byte(tt.body))
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Errorf("Check(%.80q) = %v, want %v", tt.body, err, tt.err)
			}
			if runID != tt.runID {
				t.Errorf("Check(%.80q) run id = %q, want %q", tt.body, runID, tt.runID)
			}
		})
	}
}

// FuzzCheck holds Check to what the relay relies on: it never panics, and a body
// it passes is valid JSON with an object at the root.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		actionBody, agentBody, `{}`, `[]`, `"x"`, `1`, `null`, "", "\xef\xbb\xbf{}", "{\"a\":\"\xff\"}",
		`{"\u0072un":"1"}`, `{"r\"un":"1"}`, `{"tags":["a",1]}`, `{"projectId":"{6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c}"}`,
		`{"eventPayload":null}`, `{"a":"[[[{"}`, nested(payload.MaxDepth), nested(payload.MaxDepth + 1), ` {"a" : [ 1 , { } ] } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := payload.Check(body)
		if err != nil {
			for _, known := range []error{payload.ErrEmpty, payload.ErrTooLarge, payload.ErrNotUTF8, payload.ErrNotJSON,
				payload.ErrNotObject, payload.ErrTooDeep, payload.ErrReservedKey} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("Check(%q) = %v, want one of the package's errors", body, err)
		}
		if !json.Valid(body) {
			t.Fatalf("Check(%q) = nil, but the body is not valid JSON", body)
		}
		if trimmed := bytes.TrimLeft(body, " \t\r\n"); trimmed[0] != '{' {
			t.Fatalf("Check(%q) = nil, but the root is not an object", body)
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 1 << 20} {
		body := porttest.Payload(size)
		if len(body) != size {
			b.Fatalf("porttest.Payload(%d) is %d bytes", size, len(body))
		}
		if runID, err := payload.Check(body); err != nil || runID == "" {
			b.Fatalf("Check(porttest.Payload(%d)) = %q, %v, want a run id and nil", size, runID, err)
		}
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := payload.Check(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
