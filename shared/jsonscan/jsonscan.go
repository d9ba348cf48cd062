// Package jsonscan checks and slices JSON text several times faster than
// encoding/json, with exactly its answers, for the relay's hot path: an event
// carrying a request body as one long escaped string, and that body itself.
package jsonscan

import (
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is encoding/json's nesting limit: deeper documents are not valid to it.
const MaxDepth = 10000

// Valid reports whether data is one JSON value, surrounded by optional white space,
// and answers exactly as json.Valid does: strings may hold any bytes of 0x80 and up,
// valid UTF-8 or not, and nesting deeper than MaxDepth is refused.
func Valid(data []byte) bool { return Object(data, nil) }

// Object is Valid that also, when data is an object, calls member with the literal
// of each of its own keys, the text of the key's value and the value's depth, in
// order, as it goes: so a caller that wants a few top-level members reads the
// document once. The depth counts the enclosing object: 1 for a scalar, 2 for an
// array of scalars, and so on. A call does not mean that the document is valid:
// that is known once Object returns true.
func Object(data []byte, member func(key, value []byte, depth int)) bool {
	var arr [64]byte
	stack := arr[:0] // '{' or '[' for each open container
	var ok bool
	var keyStart, keyEnd, valueStart, deepest int
	i := space(data, 0)

value:
	if i >= len(data) {
		return false
	}
	if len(stack) == 1 {
		valueStart, deepest = i, 1
	}
	switch c := data[i]; c {
	case '{', '[':
		stack = append(stack, c)
		if len(stack) > MaxDepth {
			return false
		}
		deepest = max(deepest, len(stack))
		i = space(data, i+1)
		if i < len(data) && data[i] == c+2 { // '}' is '{'+2, ']' is '['+2
			stack = stack[:len(stack)-1]
			i++
			goto next
		}
		if c == '{' {
			goto key
		}
		goto value
	case '"':
		if i, ok = stringEnd(data, i); !ok {
			return false
		}
	case 't':
		if i, ok = literal(data, i, "true"); !ok {
			return false
		}
	case 'f':
		if i, ok = literal(data, i, "false"); !ok {
			return false
		}
	case 'n':
		if i, ok = literal(data, i, "null"); !ok {
			return false
		}
	default:
		if i, ok = number(data, i); !ok {
			return false
		}
	}

next:
	if len(stack) == 1 && stack[0] == '{' && member != nil {
		member(data[keyStart:keyEnd], data[valueStart:i], deepest)
	}
	i = space(data, i)
	if len(stack) == 0 {
		return i == len(data)
	}
	if i >= len(data) {
		return false
	}
	switch top := stack[len(stack)-1]; data[i] {
	case ',':
		i = space(data, i+1)
		if top == '{' {
			goto key
		}
		goto value
	case top + 2:
		stack = stack[:len(stack)-1]
		i++
		goto next
	}
	return false

key:
	if i >= len(data) || data[i] != '"' {
		return false
	}
	if len(stack) == 1 {
		keyStart = i
	}
	if i, ok = stringEnd(data, i); !ok {
		return false
	}
	if len(stack) == 1 {
		keyEnd = i
	}
	i = space(data, i)
	if i >= len(data) || data[i] != ':' {
		return false
	}
	i = space(data, i+1)
	goto value
}

func space(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

func literal(data []byte, i int, word string) (int, bool) {
	if len(data)-i < len(word) || string(data[i:i+len(word)]) != word {
		return i, false
	}
	return i + len(word), true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)? at i.
func number(data []byte, i int) (int, bool) {
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return i, false
	case data[i] == '0':
		i++
	case '1' <= data[i] && data[i] <= '9':
		i = digits(data, i+1)
	default:
		return i, false
	}
	if i < len(data) && data[i] == '.' {
		j := digits(data, i+1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(data, i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

func digits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}

// special marks the bytes that end or escape a string, or may not appear in one.
var special = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// stringEnd checks the string literal that starts at data[i] ('"') and returns the
// index just past its closing quote.
func stringEnd(data []byte, i int) (int, bool) {
	i++
	for {
		i = skipPlain(data, i)
		if i >= len(data) {
			return i, false
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(data) {
				return i, false
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(data)-i < 6 || !hex4(data[i+2:i+6]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		default: // a control character
			return i, false
		}
	}
}

func hex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// StringEnd returns the index just past the closing quote of the string literal that
// starts at data[i], in a document Valid has accepted.
func StringEnd(data []byte, i int) int {
	i++
	for {
		i = skipPlain(data, i)
		if i >= len(data) {
			return len(data)
		}
		if data[i] == '"' {
			return i + 1
		}
		i += 2 // an escape; \uXXXX goes on with its hex digits, which are plain
	}
}

// skipPlain returns the index of the first byte at or after i that ends or escapes
// a string (or may not be in one), or len(data). Escapes come every few bytes in a
// JSON document carried as a string, too often for bytes.IndexByte to pay.
func skipPlain(data []byte, i int) int {
	for ; len(data)-i >= 4; i += 4 {
		if special[data[i]] {
			return i
		}
		if special[data[i+1]] {
			return i + 1
		}
		if special[data[i+2]] {
			return i + 2
		}
		if special[data[i+3]] {
			return i + 3
		}
	}
	for i < len(data) && !special[data[i]] {
		i++
	}
	return i
}

// Unquote returns what the string literal lit (quotes included, accepted by Valid)
// decodes to, exactly as encoding/json decodes it into a string: escapes resolved,
// and invalid UTF-8 replaced by U+FFFD. The result is a new slice.
func Unquote(lit []byte) []byte {
	s := lit[1 : len(lit)-1]
	if !utf8.Valid(s) {
		return slow(lit)
	}
	out := make([]byte, len(s)) // escapes only shrink
	w := 0
	for r := 0; r < len(s); {
		c := s[r]
		if c != '\\' { // no quote is left unescaped inside
			out[w] = c
			w++
			r++
			continue
		}
		switch e := s[r+1]; e {
		case 'b':
			out[w] = '\b'
		case 'f':
			out[w] = '\f'
		case 'n':
			out[w] = '\n'
		case 'r':
			out[w] = '\r'
		case 't':
			out[w] = '\t'
		case 'u':
			x := hexValue(s[r+2 : r+6])
			if utf16.IsSurrogate(x) {
				return slow(lit) // pairs and lone halves, as encoding/json reads them
			}
			w += utf8.EncodeRune(out[w:], x) // at most 3 bytes for the 6 of the escape
			r += 6
			continue
		default: // '"', '\\', '/'
			out[w] = e
		}
		w++
		r += 2
	}
	return out[:w]
}

// hexValue reads four hex digits that Valid has checked.
func hexValue(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// slow leaves surrogate escapes (pairs and lone halves) and invalid UTF-8 to
// encoding/json itself.
func slow(lit []byte) []byte {
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return nil
	}
	return []byte(s)
}
