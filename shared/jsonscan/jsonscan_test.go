package jsonscan_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/port-azure-relay/relay/shared/jsonscan"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
)

// samples covers each rule of the grammar once, valid and not.
var samples = []string{
	``, ` `, `{}`, `[]`, ` {} `, `{`, `}`, `[`, `]`, `{]`, `[}`, `{,}`, `[,]`, `[1,]`, `{"a":1,}`, `{"a"}`, `{"a":}`,
	`{"a" : 1 , "b" : [ true , false , null ] }`, `{1:2}`, `{"a":1 "b":2}`, `[1 2]`, `"a"`, `"`, `"\"`, `"\\"`,
	`"\/\b\f\n\r\t"`, `"\u00e9"`, `"\u00E9"`, `"\u00g9"`, `"\u00e"`, `"\x"`, "\"\x01\"", "\"\x7f\"", "\"\xff\"",
	"\"é\"", `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`, `+1`, `0x1`,
	`true`, `tru`, `truex`, `false`, `fals`, `null`, `nul`, `nulll`, `[true]`, `{"a":null}`, `1 2`, "\t\r\n1\t\r\n",
	"\v1", `{"a":{"b":[{"c":"d"}]}}`, `[[[]]]`, `[[]`, `{"a":"b\"}`, `{"a":"b\\"}`, `"abcdefghijklmnopqrstuvwxyz"`,
	`"abcdefgh\"ijklmnopqrstuvwxyz"`, "\"abcdefgh\nijklmnop\"", `"abcdefghijklmno\\"`, `"abcdefghijklmnopq`,
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, s := range samples {
		if got, want := jsonscan.Valid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("Valid(%q) = %v, want %v (json.Valid)", s, got, want)
		}
	}
}

func TestValidDepth(t *testing.T) {
	for _, tt := range []struct {
		name  string
		depth int
		want  bool
	}{
		{"arrays at the limit are valid", jsonscan.MaxDepth, true},
		{"arrays one past the limit are not", jsonscan.MaxDepth + 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := []byte(strings.Repeat("[", tt.depth) + strings.Repeat("]", tt.depth))
			if got := jsonscan.Valid(doc); got != tt.want || json.Valid(doc) != tt.want {
				t.Errorf("Valid(depth %d) = %v, json.Valid = %v, want %v", tt.depth, got, json.Valid(doc), tt.want)
			}
			obj := []byte(strings.Repeat(`{"a":`, tt.depth-1) + "{}" + strings.Repeat("}", tt.depth-1))
			if got := jsonscan.Valid(obj); got != tt.want || json.Valid(obj) != tt.want {
				t.Errorf("Valid(objects, depth %d) = %v, json.Valid = %v, want %v", tt.depth, got, json.Valid(obj), tt.want)
			}
		})
	}
}

func TestValidPayload(t *testing.T) {
	for _, size := range []int{512, 1 << 10, 16 << 10, 1 << 20} {
		body := porttest.Payload(size)
		if !jsonscan.Valid(body) {
			t.Errorf("Valid(Payload(%d)) = false, want true", size)
		}
		if jsonscan.Valid(body[:len(body)-1]) {
			t.Errorf("Valid(Payload(%d) less its last byte) = true, want false", size)
		}
	}
}

func TestUnquoteMatchesEncodingJSON(t *testing.T) {
	for _, s := range samples {
		checkUnquote(t, []byte(s))
	}
	body := porttest.Payload(16 << 10)
	lit, _ := json.Marshal(string(body))
	checkUnquote(t, lit)
	checkUnquote(t, []byte(`"\ud83d\ude00 \ud83d x \u0000 \xff é"`))
}

func checkUnquote(t *testing.T, lit []byte) {
	t.Helper()
	var want string
	if len(lit) < 2 || lit[0] != '"' || json.Unmarshal(lit, &want) != nil {
		return
	}
	if got := jsonscan.Unquote(lit); string(got) != want {
		t.Errorf("Unquote(%q) = %q, want %q", lit, got, want)
	}
	if end := jsonscan.StringEnd(append(lit[:len(lit):len(lit)], `,"x"`...), 0); end != len(lit) {
		t.Errorf("StringEnd(%q) = %d, want %d", lit, end, len(lit))
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range samples {
		f.Add([]byte(s))
	}
	f.Add(porttest.Payload(1 << 10))
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := jsonscan.Valid(data), json.Valid(data); got != want {
			t.Fatalf("Valid(%q) = %v, want %v (json.Valid)", data, got, want)
		}
	})
}

func FuzzUnquote(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lit, _ := json.Marshal(s) // a valid literal of any string
		checkUnquote(t, lit)
		// And the raw bytes as a literal, when encoding/json accepts them as one.
		raw := []byte(`"` + s + `"`)
		if bytes.Count(raw, []byte(`"`)) >= 2 && json.Valid(raw) {
			checkUnquote(t, raw)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	for _, bs := range []struct {
		name string
		size int
	}{{"1KiB", 1 << 10}, {"16KiB", 16 << 10}, {"1MiB", 1 << 20}} {
		body := porttest.Payload(bs.size)
		event, _ := json.Marshal(map[string]string{"body": string(body)})
		for _, in := range []struct {
			name string
			doc  []byte
		}{{"body", body}, {"event", event}} {
			b.Run(bs.name+"/"+in.name+"/jsonscan", func(b *testing.B) {
				b.SetBytes(int64(len(in.doc)))
				for b.Loop() {
					jsonscan.Valid(in.doc)
				}
			})
			b.Run(bs.name+"/"+in.name+"/encoding-json", func(b *testing.B) {
				b.SetBytes(int64(len(in.doc)))
				for b.Loop() {
					json.Valid(in.doc)
				}
			})
		}
	}
}

func BenchmarkUnquote(b *testing.B) {
	lit, _ := json.Marshal(string(porttest.Payload(16 << 10)))
	b.SetBytes(int64(len(lit)))
	for b.Loop() {
		jsonscan.Unquote(lit)
	}
}
