package dynamotest

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The server keeps attribute values in the SDK's own types, so that Items hands tests what
// GetItem would. On the wire they are DynamoDB's JSON: {"S":"x"}, {"N":"1"}, {"M":{...}}.

// item is one item, or a Key, by attribute name.
type item = map[string]types.AttributeValue

const (
	maxItemSize     = 400 * 1024 // bytes, as DynamoDB counts them (itemSize)
	maxNesting      = 32         // levels of L and M
	maxHashKeyBytes = 2048
)

// decodeItem reads an attribute map (Item, Key, ExpressionAttributeValues).
func decodeItem(raw map[string]json.RawMessage) (item, *apiError) {
	it := make(item, len(raw))
	for name, r := range raw {
		v, err := decodeValue(r, 0)
		if err != nil {
			return nil, err
		}
		it[name] = v
	}
	return it, nil
}

// decodeValue reads one AttributeValue and refuses what DynamoDB refuses: no type or two
// types, NULL other than true, invalid numbers, empty or duplicated sets, deep nesting.
func decodeValue(raw json.RawMessage, depth int) (types.AttributeValue, *apiError) {
	if depth > maxNesting {
		return nil, validation("Nesting Levels have exceeded supported limits")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, errSerialization
	}
	// A member that is null or unknown is as good as absent, as in AWS's JSON protocols.
	var typ string
	var body json.RawMessage
	n := 0
	for k, v := range members {
		if string(v) == "null" || !slices.Contains(typeNames, k) {
			continue
		}
		typ, body = k, v
		n++
	}
	switch n {
	case 0:
		return nil, validation("Supplied AttributeValue is empty, must contain exactly one of the supported datatypes")
	case 1:
	default:
		return nil, validation("Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes")
	}
	switch typ {
	case "S":
		var s string
		if json.Unmarshal(body, &s) != nil {
			return nil, errSerialization
		}
		return &types.AttributeValueMemberS{Value: s}, nil
	case "N":
		var s string
		if json.Unmarshal(body, &s) != nil {
			return nil, errNumberNotString
		}
		d, err := parseNumber(s)
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberN{Value: d.String()}, nil
	case "B":
		var b []byte
		if json.Unmarshal(body, &b) != nil {
			return nil, errSerialization
		}
		return &types.AttributeValueMemberB{Value: b}, nil
	case "BOOL":
		var b bool
		if json.Unmarshal(body, &b) != nil {
			return nil, errSerialization
		}
		return &types.AttributeValueMemberBOOL{Value: b}, nil
	case "NULL":
		var b bool
		if json.Unmarshal(body, &b) != nil {
			return nil, errSerialization
		}
		if !b {
			return nil, validation("One or more parameter values were invalid: Null attribute value types must have the value of true")
		}
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case "SS":
		var ss []string
		if json.Unmarshal(body, &ss) != nil {
			return nil, errSerialization
		}
		if err := checkSet("string", ss); err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberSS{Value: ss}, nil
	case "NS":
		var ns []string
		if json.Unmarshal(body, &ns) != nil {
			return nil, errNumberNotString
		}
		for i, s := range ns {
			d, err := parseNumber(s)
			if err != nil {
				return nil, err
			}
			ns[i] = d.String()
		}
		if err := checkSet("number", ns); err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberNS{Value: ns}, nil
	case "BS":
		var bs [][]byte
		if json.Unmarshal(body, &bs) != nil {
			return nil, errSerialization
		}
		keys := make([]string, len(bs))
		for i, b := range bs {
			keys[i] = string(b)
		}
		if err := checkSet("binary", keys); err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberBS{Value: bs}, nil
	case "L":
		var raws []json.RawMessage
		if json.Unmarshal(body, &raws) != nil {
			return nil, errSerialization
		}
		l := make([]types.AttributeValue, len(raws))
		for i, r := range raws {
			v, err := decodeValue(r, depth+1)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return &types.AttributeValueMemberL{Value: l}, nil
	default: // "M"
		var raws map[string]json.RawMessage
		if json.Unmarshal(body, &raws) != nil || raws == nil {
			return nil, errSerialization
		}
		m := make(item, len(raws))
		for k, r := range raws {
			v, err := decodeValue(r, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	}
}

var typeNames = []string{"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}

// checkSet refuses an empty set or one with a repeated element (numbers already normalized).
func checkSet(kind string, elems []string) *apiError {
	if len(elems) == 0 {
		// Sic: DynamoDB's message has "An string" and two spaces.
		return validation("One or more parameter values were invalid: An " + kind + " set  may not be empty")
	}
	seen := make(map[string]bool, len(elems))
	for _, e := range elems {
		if seen[e] {
			return validation("One or more parameter values were invalid: Input collection [" + strings.Join(elems, ", ") + "] contains duplicates.")
		}
		seen[e] = true
	}
	return nil
}

// encodeItem is the wire form of an item: a map json.Marshal writes as DynamoDB does.
func encodeItem(it item) map[string]any {
	m := make(map[string]any, len(it))
	for k, v := range it {
		m[k] = encodeValue(v)
	}
	return m
}

func encodeValue(v types.AttributeValue) any {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return map[string]any{"S": v.Value}
	case *types.AttributeValueMemberN:
		return map[string]any{"N": v.Value}
	case *types.AttributeValueMemberB:
		return map[string]any{"B": v.Value} // json.Marshal writes []byte in base64, as AWS does
	case *types.AttributeValueMemberBOOL:
		return map[string]any{"BOOL": v.Value}
	case *types.AttributeValueMemberNULL:
		return map[string]any{"NULL": true}
	case *types.AttributeValueMemberSS:
		return map[string]any{"SS": v.Value}
	case *types.AttributeValueMemberNS:
		return map[string]any{"NS": v.Value}
	case *types.AttributeValueMemberBS:
		return map[string]any{"BS": v.Value}
	case *types.AttributeValueMemberL:
		l := make([]any, len(v.Value))
		for i, e := range v.Value {
			l[i] = encodeValue(e)
		}
		return map[string]any{"L": l}
	case *types.AttributeValueMemberM:
		return map[string]any{"M": encodeItem(v.Value)}
	}
	return map[string]any{}
}

// typeOf is the value's DynamoDB type name: "S", "N", "M", ...
func typeOf(v types.AttributeValue) string {
	switch v.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberB:
		return "B"
	case *types.AttributeValueMemberBOOL:
		return "BOOL"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberSS:
		return "SS"
	case *types.AttributeValueMemberNS:
		return "NS"
	case *types.AttributeValueMemberBS:
		return "BS"
	case *types.AttributeValueMemberL:
		return "L"
	case *types.AttributeValueMemberM:
		return "M"
	}
	return ""
}

// number reads an N value; the server only stores valid, normalized numbers.
func number(v types.AttributeValue) (decimal, bool) {
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		return decimal{}, false
	}
	d, err := parseNumber(n.Value)
	return d, err == nil
}

// equal is DynamoDB's "=": same type and same value, sets in any order, numbers by value.
func equal(a, b types.AttributeValue) bool {
	switch a := a.(type) {
	case *types.AttributeValueMemberS:
		b, ok := b.(*types.AttributeValueMemberS)
		return ok && a.Value == b.Value
	case *types.AttributeValueMemberN:
		da, _ := number(a)
		db, ok := number(b)
		return ok && cmpDecimal(da, db) == 0
	case *types.AttributeValueMemberB:
		b, ok := b.(*types.AttributeValueMemberB)
		return ok && bytes.Equal(a.Value, b.Value)
	case *types.AttributeValueMemberBOOL:
		b, ok := b.(*types.AttributeValueMemberBOOL)
		return ok && a.Value == b.Value
	case *types.AttributeValueMemberNULL:
		_, ok := b.(*types.AttributeValueMemberNULL)
		return ok
	case *types.AttributeValueMemberSS:
		b, ok := b.(*types.AttributeValueMemberSS)
		return ok && sameSet(a.Value, b.Value)
	case *types.AttributeValueMemberNS:
		b, ok := b.(*types.AttributeValueMemberNS)
		return ok && sameSet(a.Value, b.Value)
	case *types.AttributeValueMemberBS:
		b, ok := b.(*types.AttributeValueMemberBS)
		return ok && sameSet(setKeys(a.Value), setKeys(b.Value))
	case *types.AttributeValueMemberL:
		b, ok := b.(*types.AttributeValueMemberL)
		return ok && slices.EqualFunc(a.Value, b.Value, equal)
	case *types.AttributeValueMemberM:
		b, ok := b.(*types.AttributeValueMemberM)
		if !ok || len(a.Value) != len(b.Value) {
			return false
		}
		for k, av := range a.Value {
			if bv, ok := b.Value[k]; !ok || !equal(av, bv) {
				return false
			}
		}
		return true
	}
	return false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, e := range a {
		if !slices.Contains(b, e) {
			return false
		}
	}
	return true
}

func setKeys(bs [][]byte) []string {
	keys := make([]string, len(bs))
	for i, b := range bs {
		keys[i] = string(b)
	}
	return keys
}

// order compares two values for < <= > >= BETWEEN: only a String, Number or Binary with one
// of the same type; ok is false otherwise, and DynamoDB's comparison is then false.
func order(a, b types.AttributeValue) (c int, ok bool) {
	switch a := a.(type) {
	case *types.AttributeValueMemberS:
		if b, ok := b.(*types.AttributeValueMemberS); ok {
			return strings.Compare(a.Value, b.Value), true // UTF-8 bytes, as DynamoDB orders
		}
	case *types.AttributeValueMemberN:
		da, _ := number(a)
		if db, ok := number(b); ok {
			return cmpDecimal(da, db), true
		}
	case *types.AttributeValueMemberB:
		if b, ok := b.(*types.AttributeValueMemberB); ok {
			return bytes.Compare(a.Value, b.Value), true // unsigned bytes
		}
	}
	return 0, false
}

// itemSize is an item's size as DynamoDB counts it against the 400 KB limit: names and
// values in UTF-8, numbers by their significant digits, 3 bytes per list or map and 1 per
// element.
func itemSize(it item) int {
	n := 0
	for k, v := range it {
		n += len(k) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numberSize(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range v.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}

func numberSize(s string) int {
	d, _ := parseNumber(s)
	return (len(d.coef)+1)/2 + 1
}

// clone copies a value deeply, so that no caller shares the server's state.
func clone(v types.AttributeValue) types.AttributeValue {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return &types.AttributeValueMemberS{Value: v.Value}
	case *types.AttributeValueMemberN:
		return &types.AttributeValueMemberN{Value: v.Value}
	case *types.AttributeValueMemberB:
		return &types.AttributeValueMemberB{Value: bytes.Clone(v.Value)}
	case *types.AttributeValueMemberBOOL:
		return &types.AttributeValueMemberBOOL{Value: v.Value}
	case *types.AttributeValueMemberNULL:
		return &types.AttributeValueMemberNULL{Value: true}
	case *types.AttributeValueMemberSS:
		return &types.AttributeValueMemberSS{Value: slices.Clone(v.Value)}
	case *types.AttributeValueMemberNS:
		return &types.AttributeValueMemberNS{Value: slices.Clone(v.Value)}
	case *types.AttributeValueMemberBS:
		bs := make([][]byte, len(v.Value))
		for i, b := range v.Value {
			bs[i] = bytes.Clone(b)
		}
		return &types.AttributeValueMemberBS{Value: bs}
	case *types.AttributeValueMemberL:
		l := make([]types.AttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = clone(e)
		}
		return &types.AttributeValueMemberL{Value: l}
	case *types.AttributeValueMemberM:
		return &types.AttributeValueMemberM{Value: cloneItem(v.Value)}
	}
	return v
}

func cloneItem(it item) item {
	if it == nil {
		return nil
	}
	c := make(item, len(it))
	for k, v := range it {
		c[k] = clone(v)
	}
	return c
}
