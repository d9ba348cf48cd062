// Package payload checks a webhook body for the shapes Azure DevOps accepts with a 200
// and then drops without a word, and finds the Port run id in it.
package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/port-azure-relay/relay/shared/jsonscan"
)

// Limits of what the relay forwards.
const (
	// MaxSize is the largest body the relay forwards. Azure truncates bodies over
	// 5 MiB silently; Port's payloads are far smaller.
	MaxSize = 1 << 20
	// MaxDepth bounds nesting: deeper documents are refused by common JSON parsers
	// (Json.NET's default is 64), so Azure would not read them.
	MaxDepth = 64
)

// Errors returned by Check.
var (
	ErrEmpty       = errors.New("body is empty")
	ErrTooLarge    = fmt.Errorf("body is larger than %d bytes", MaxSize)
	ErrNotUTF8     = errors.New("body is not valid UTF-8")
	ErrNotJSON     = errors.New("body is not valid JSON")
	ErrNotObject   = errors.New("body is not a JSON object")
	ErrTooDeep     = fmt.Errorf("body nests deeper than %d levels", MaxDepth)
	ErrReservedKey = errors.New("top-level key reserved by Azure DevOps")
)

// reserved lists the top-level keys Azure DevOps reads itself, and the JSON type
// each must have for the run not to be dropped ("absent" means it must not exist).
var reserved = map[string]string{
	"eventType":    "string",
	"projectId":    "guid",
	"run":          "object",
	"pipeline":     "object",
	"tags":         "string array",
	"stages":       "array",
	"eventPayload": "absent",
}

// guid matches a GUID as .NET's Guid.Parse reads it: 32 hex digits, or 8-4-4-4-12 with
// hyphens, bare or in braces. Braces must pair; hyphens are all there or none.
// guid matches ^(?:[0-9A-Fa-f]{32}|[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}|\{…\})$:
// 32 hex digits, the 8-4-4-4-12 form, or that form in braces; without a regexp
// compiled at every start-up.
func guid(s string) bool {
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	hex := func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
	switch len(s) {
	case 32:
		for i := 0; i < 32; i++ {
			if !hex(s[i]) {
				return false
			}
		}
		return true
	case 36:
		for i := 0; i < 36; i++ {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if s[i] != '-' {
					return false
				}
			} else if !hex(s[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// Check returns the Port run id of body (from port_context.runId or context.runId,
// empty when there is none) and an error when an Azure DevOps incoming webhook would
// not run it. The run id is returned with ErrReservedKey too, so that the failure can
// be reported to Port.
func Check(body []byte) (runID string, err error) {
	ids, err := Read(body)
	if err == nil {
		err = ids.Reserved
	}
	return ids.RunID, err
}

// IDs are what names a body's delivery: Port's run id, and the top-level "id" string
// (an EventBridge event's id, kept across Lambda's retries; what a schedule's input
// or a direct invoke puts there); and what an incoming webhook would make of it.
type IDs struct {
	RunID string
	ID    string
	// Reserved is ErrReservedKey naming the first top-level key that an incoming
	// webhook reserves, with a type that makes Azure drop the run; nil when none. Only
	// incoming webhooks read these keys: the Runs API gets the run parameters alone.
	Reserved error
}

// Read returns the ids of body, or an error when body is not a JSON object that
// Azure DevOps can read (empty, too large, not UTF-8, not JSON, nested too deep). It
// reads the body once.
func Read(body []byte) (ids IDs, err error) {
	switch {
	case len(body) == 0:
		return IDs{}, ErrEmpty
	case len(body) > MaxSize:
		return IDs{}, ErrTooLarge
	case bytes.HasPrefix(body, []byte("\xef\xbb\xbf")):
		return IDs{}, fmt.Errorf("%w: it starts with a byte-order mark", ErrNotJSON)
	case !utf8.Valid(body):
		return IDs{}, ErrNotUTF8
	}
	// One pass: jsonscan.Object validates as json.Valid does and hands over the
	// top-level members on the way; they count once it has said the body is valid.
	var bad error
	var runID, id string
	tooDeep := false
	valid := jsonscan.Object(body, func(lit, value []byte, depth int) {
		if tooDeep {
			return // members after one nested too deep are not looked at
		}
		if depth > MaxDepth {
			tooDeep = true
			return
		}
		key := string(lit[1 : len(lit)-1])
		if bytes.IndexByte(lit, '\\') >= 0 {
			_ = json.Unmarshal(lit, &key) // escaped names count as what they spell
		}
		switch key {
		case "port_context", "context":
			if id := runIDOf(value); id != "" && (runID == "" || key == "port_context") {
				runID = id
			}
		case "id":
			if value[0] == '"' {
				_ = json.Unmarshal(value, &id)
			}
		}
		if want, ok := reserved[key]; ok && bad == nil && !hasType(value, want) {
			if want == "absent" {
				bad = fmt.Errorf("%w: %q must not be present", ErrReservedKey, key)
			} else {
				bad = fmt.Errorf("%w: %q must be a %s", ErrReservedKey, key, want)
			}
		}
	})
	switch {
	case !valid:
		return IDs{}, ErrNotJSON
	case bytes.TrimLeft(body, " \t\r\n")[0] != '{':
		return IDs{}, ErrNotObject
	case tooDeep:
		return IDs{RunID: runID}, ErrTooDeep
	}
	return IDs{RunID: runID, ID: id, Reserved: bad}, nil
}

func runIDOf(value []byte) string {
	var ctx struct {
		RunID json.RawMessage `json:"runId"`
	}
	if value[0] != '{' || json.Unmarshal(value, &ctx) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(ctx.RunID, &id) != nil {
		return ""
	}
	return id
}

// hasType reports whether the JSON value has the type Azure expects. null passes:
// Azure reads it as the key being absent.
func hasType(value []byte, want string) bool {
	if string(value) == "null" {
		return want != "absent"
	}
	switch want {
	case "string":
		return value[0] == '"'
	case "guid":
		var s string
		return json.Unmarshal(value, &s) == nil && guid(s)
	case "object":
		return value[0] == '{'
	case "array":
		return value[0] == '['
	case "string array":
		var tags []string
		return value[0] == '[' && json.Unmarshal(value, &tags) == nil
	}
	return false
}
