package dynamotest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The expressions come from request bodies: the parsers must refuse any input in
// DynamoDB's words, never panic, and what they accept must run against any item.

var fuzzNames = map[string]string{"#a": "a", "#b": "b", "#s": "status", "#l": "list", "#m": "map", "#id": "id"}

var fuzzValues = item{
	":s": &types.AttributeValueMemberS{Value: "INPROGRESS"}, ":n": &types.AttributeValueMemberN{Value: "1"},
	":t": &types.AttributeValueMemberS{Value: "N"}, ":b": &types.AttributeValueMemberB{Value: []byte{1}},
	":l":  &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberN{Value: "2"}}},
	":ss": &types.AttributeValueMemberSS{Value: []string{"x"}}, ":ns": &types.AttributeValueMemberNS{Value: []string{"3"}},
	":m": &types.AttributeValueMemberM{Value: item{"k": &types.AttributeValueMemberBOOL{Value: true}}},
}

func fuzzItem() item {
	return item{
		"id": &types.AttributeValueMemberS{Value: "run-1"}, "status": &types.AttributeValueMemberS{Value: "INPROGRESS"},
		"a": &types.AttributeValueMemberN{Value: "5"}, "b": &types.AttributeValueMemberSS{Value: []string{"x", "y"}},
		"list": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: "e"}, &types.AttributeValueMemberN{Value: "7"}}},
		"map":  &types.AttributeValueMemberM{Value: item{"k": &types.AttributeValueMemberM{Value: item{}}}},
	}
}

func FuzzExpressions(f *testing.F) {
	for _, seed := range []string{
		"attribute_not_exists(#id) OR #a < :n OR (#s = :s AND #b < :n)",
		"#s = :s", "NOT (#a BETWEEN :n AND :n)", "#a IN (:n, :s)", "size(#l) > :n AND contains(#b, :s)",
		"begins_with(#s, :s) OR attribute_type(#a, :t)", "((#a = :n))", "#l[0] = :s AND #m.k.x <> :m",
		"SET #s = :s, #a = #a + :n REMOVE #l[1] ADD #b :ss DELETE #b :ss",
		"SET #l = list_append(if_not_exists(#l, :l), :l), #m.k.z = :n",
		"SET #a = #a - :n, #b = #a", "#a, #l[0], #m.k", "status = :s", "#a < < :n", "#a = :undefined", "",
	} {
		for kind := range byte(3) {
			f.Add(kind, seed)
		}
	}
	f.Fuzz(func(t *testing.T, kind byte, src string) {
		ph := newPlaceholders(fuzzNames, fuzzValues)
		it := fuzzItem()
		var err *apiError
		var name exprKind
		switch kind % 3 {
		case 0:
			name = conditionExpr
			var c cond
			if c, err = parse(conditionExpr, src, ph, parseCondition); err == nil {
				c.eval(it)
				c.eval(nil)
			}
		case 1:
			name = updateExpr
			var actions []updateAction
			if actions, err = parse(updateExpr, src, ph, parseUpdate); err == nil {
				if e := applyUpdate(it, actions); e == nil {
					if _, e := json.Marshal(encodeItem(it)); e != nil {
						t.Fatalf("the updated item does not encode: %v", e)
					}
				} else if e.code != "ValidationException" {
					t.Fatalf("applyUpdate(%q) = %v, want a ValidationException", src, e)
				}
				project(it, actionPaths(actions))
			}
		default:
			name = projectionExpr
			var paths []docPath
			if paths, err = parse(projectionExpr, src, ph, parseProjection); err == nil {
				project(it, paths)
			}
		}
		if err != nil && (err.code != "ValidationException" || !strings.HasPrefix(err.msg, "Invalid "+string(name)+": ")) {
			t.Fatalf("parse(%s, %q) = %v, want an Invalid %s ValidationException", name, src, err, name)
		}
	})
}

func FuzzAttributeValue(f *testing.F) {
	for _, seed := range []string{
		`{"S":"x"}`, `{"N":"-0012.50e3"}`, `{"B":"AAE="}`, `{"BOOL":true}`, `{"NULL":true}`, `{"SS":["a","b"]}`,
		`{"NS":["1","1.0"]}`, `{"BS":["AA=="]}`, `{"L":[{"S":""},{"M":{"k":{"N":"1"}}}]}`, `{"M":{}}`, `{}`,
		`{"S":"x","N":"1"}`, `{"N":1}`, `{"SS":[]}`, `{"NULL":false}`, `[1]`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := decodeValue(json.RawMessage(raw), 0)
		if err != nil {
			return
		}
		// What the server accepts it answers in a form it accepts again, unchanged.
		b, e := json.Marshal(encodeValue(v))
		if e != nil {
			t.Fatalf("encode(%q) = %v", raw, e)
		}
		again, err := decodeValue(b, 0)
		if err != nil || !equal(v, again) {
			t.Fatalf("decode(encode(decode(%q))) = %v, %v; want %s", raw, again, err, b)
		}
		valueSize(v)
	})
}

func FuzzNumber(f *testing.F) {
	for _, seed := range []string{"0", "-0", "1.50", "1E+3", ".5", "5.", "-1e-130", "9.9999999999999999999999999999999999999E+125", "1e126", "abc", "1e", "--1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseNumber(s)
		if err != nil {
			return
		}
		again, err := parseNumber(d.String())
		if err != nil || cmpDecimal(d, again) != 0 || again.String() != d.String() {
			t.Fatalf("parseNumber(%q).String() = %q, which reads back as %q, %v", s, d.String(), again.String(), err)
		}
	})
}

func TestNumbersAreExactDecimals(t *testing.T) {
	tests := []struct {
		a, b      string
		cmp       int
		sum, diff string
	}{
		{"0.1", "0.2", -1, "0.3", "-0.1"},
		{"10", "9", 1, "19", "1"},
		{"-5", "3", -1, "-2", "-8"},
		{"1.0", "1", 0, "2", "0"},
		{"1E+2", "99.99", 1, "199.99", "0.01"},
		{"1700000000000", "1700000000", 1, "1701700000000", "1698300000000"},
		{"12345678901234567890123456789012345678", "1", 1, "12345678901234567890123456789012345679", "12345678901234567890123456789012345677"},
	}
	for _, tt := range tests {
		a, _ := parseNumber(tt.a)
		b, _ := parseNumber(tt.b)
		if got := cmpDecimal(a, b); got != tt.cmp {
			t.Errorf("cmp(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.cmp)
		}
		if got, err := addDecimal(a, b, false); err != nil || got.String() != tt.sum {
			t.Errorf("%s + %s = %s, %v, want %s", tt.a, tt.b, got, err, tt.sum)
		}
		if got, err := addDecimal(a, b, true); err != nil || got.String() != tt.diff {
			t.Errorf("%s - %s = %s, %v, want %s", tt.a, tt.b, got, err, tt.diff)
		}
	}
	big, _ := parseNumber(strings.Repeat("9", 38))
	if _, err := addDecimal(big, big, false); err == nil || !strings.Contains(err.msg, "38 significant digits") {
		t.Errorf("a sum of 39 digits = %v, want DynamoDB's refusal", err)
	}
}
