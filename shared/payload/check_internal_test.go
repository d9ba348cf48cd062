package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkReference is Check as it was before jsonscan.Object: json.Valid, then a
// second walk over the top-level members. Check must answer exactly as it does.
func checkReference(body []byte) (runID string, err error) {
	switch {
	case len(body) == 0:
		return "", ErrEmpty
	case len(body) > MaxSize:
		return "", ErrTooLarge
	case bytes.HasPrefix(body, []byte("\xef\xbb\xbf")):
		return "", fmt.Errorf("%w: it starts with a byte-order mark", ErrNotJSON)
	case !utf8.Valid(body):
		return "", ErrNotUTF8
	case !json.Valid(body):
		return "", ErrNotJSON
	}
	s := refScanner{buf: body}
	s.space()
	if s.peek() != '{' {
		return "", ErrNotObject
	}
	var bad error
	err = s.members(func(key string, value []byte) {
		switch key {
		case "port_context", "context":
			if id := runIDOf(value); id != "" && (runID == "" || key == "port_context") {
				runID = id
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
	if err != nil {
		return runID, err
	}
	return runID, bad
}

// refScanner walks a document that json.Valid has accepted, so it only needs to find
// boundaries, not to report syntax errors.
type refScanner struct {
	buf   []byte
	pos   int
	depth int
}

func (s *refScanner) peek() byte {
	if s.pos < len(s.buf) {
		return s.buf[s.pos]
	}
	return 0
}

func (s *refScanner) space() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// members calls fn with each top-level key (unescaped) and its raw value.
func (s *refScanner) members(fn func(key string, value []byte)) error {
	s.pos++ // '{'
	s.depth = 1
	for {
		s.space()
		if s.peek() == '}' {
			return nil
		}
		start := s.pos
		s.skipString()
		key := string(s.buf[start+1 : s.pos-1])
		if bytes.IndexByte(s.buf[start:s.pos], '\\') >= 0 {
			_ = json.Unmarshal(s.buf[start:s.pos], &key) // escaped names count as what they spell
		}
		s.space()
		s.pos++ // ':'
		s.space()
		vstart := s.pos
		if err := s.skipValue(); err != nil {
			return err
		}
		fn(key, s.buf[vstart:s.pos])
		s.space()
		if s.peek() == ',' {
			s.pos++
		}
	}
}

func (s *refScanner) skipString() {
	s.pos++ // opening quote
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case '\\':
			s.pos += 2
		case '"':
			s.pos++
			return
		default:
			s.pos++
		}
	}
}

func (s *refScanner) skipValue() error {
	switch s.peek() {
	case '"':
		s.skipString()
		return nil
	case '{', '[':
		return s.skipContainer()
	}
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return nil
		}
		s.pos++
	}
	return nil
}

func (s *refScanner) skipContainer() error {
	depth := s.depth
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case '"':
			s.skipString()
			continue
		case '{', '[':
			s.depth++
			if s.depth > MaxDepth {
				return ErrTooDeep
			}
		case '}', ']':
			s.depth--
			if s.depth == depth {
				s.pos++
				return nil
			}
		}
		s.pos++
	}
	return nil
}

func sameAsReference(t *testing.T, body []byte) {
	t.Helper()
	id, err := Check(body)
	wantID, wantErr := checkReference(body)
	if id != wantID || fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("Check(%q) = %q, %v, want %q, %v", body, id, err, wantID, wantErr)
	}
}

func referenceSeeds(tb testing.TB) [][]byte {
	out := [][]byte{
		[]byte(`{"port_context":{"runId":"r_1"},"context":{"runId":"r_2"}}`),
		[]byte(`{"context":{"runId":"r_2"},"run":"x","port_context":{"runId":"r_1"}}`),
		[]byte(`{"a":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `,"port_context":{"runId":"r"}}`),
		[]byte(`{"port_context":{"runId":"r"},"a":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `,"run":1}`),
		[]byte(`{"run":1,"a":` + strings.Repeat("{\"b\":", 70) + `1` + strings.Repeat("}", 70) + `}`),
		[]byte(`{"r\u0075n":1}`), []byte(`[1]`), []byte(` {"eventPayload":null} `), []byte(`{"tags":["a",1]}`),
		[]byte(`{"projectId":"{01234567-89ab-cdef-0123-456789abcdef}"}`), []byte(`{"a":1,}`), []byte("\xef\xbb\xbf{}"),
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "events", "*", "*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var ev struct{ Body string }
		if json.Unmarshal(raw, &ev) == nil && ev.Body != "" {
			out = append(out, []byte(ev.Body))
		}
		out = append(out, raw)
	}
	return out
}

func TestCheckMatchesReference(t *testing.T) {
	for _, body := range referenceSeeds(t) {
		sameAsReference(t, body)
	}
}

func FuzzCheckMatchesReference(f *testing.F) {
	for _, body := range referenceSeeds(f) {
		f.Add(body)
	}
	f.Fuzz(sameAsReference)
}
