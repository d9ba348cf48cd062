package dynamotest

import (
	"strings"
	"testing"
)

// Expressions come from request bodies: the parser must refuse any input in DynamoDB's
// words, never panic, and what it accepts must use only defined placeholders and run
// against any item.
func FuzzExpressions(f *testing.F) {
	for _, seed := range []string{
		"attribute_not_exists(#id) OR #exp < :now", "#state = :s AND #owner = :o", "SET #state = :s, #n = :n",
		"NOT (#a <> :n) OR ((#a = :s))", "not attribute_exists(#a) and (b >= :n)", "#a BETWEEN :n AND :n",
		"size(#a) > :n", "#a.b[0] = :s", "SET #a = list_append(#a, :s) REMOVE #b", "state = :s", "#a < < :n",
		"#a = :undefined", "(#a = :n", "attribute_exists(", "",
	} {
		f.Add(seed)
	}
	it := item{"id": {"S", "k"}, "a": {"N", "1.5"}, "state": {"S", "inProgress"}, "expiresAt": {"N", "100"}}
	f.Fuzz(func(t *testing.T, src string) {
		for _, kind := range []string{"ConditionExpression", "UpdateExpression"} {
			p := &parser{used: map[string]bool{},
				names:  map[string]string{"#id": "id", "#a": "a", "#b": "b", "#state": "state", "#owner": "owner", "#exp": "expiresAt", "#n": "n"},
				values: item{":s": {"S", "inProgress"}, ":n": {"N", "1"}, ":now": {"N", "100"}, ":o": {"S", "o"}}}
			var c cond
			var sets []assign
			rule := func() { c = p.condition() }
			if kind == "UpdateExpression" {
				rule = func() { sets = p.update() }
			}
			if err := p.parse(kind, src, rule); err != nil {
				if err.code != "ValidationException" || !strings.HasPrefix(err.msg, "Invalid "+kind+": ") {
					t.Errorf("%s %q refused with %s %q", kind, src, err.code, err.msg)
				}
				continue
			}
			for k := range p.used {
				if _, name := p.names[k]; !name && p.values[k].typ == "" {
					t.Errorf("%s %q accepted with the undefined %s", kind, src, k)
				}
			}
			if c != nil {
				c(it)
				c(nil)
			}
			for _, a := range sets {
				if a.name == "" || a.value.typ == "" {
					t.Errorf("%s %q accepted as %+v", kind, src, sets)
				}
			}
		}
	})
}
