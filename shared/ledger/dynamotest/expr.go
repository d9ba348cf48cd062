package dynamotest

import (
	_ "embed"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// This file parses the expressions of the package doc, from the grammar of DynamoDB's
// developer guide. They come from request bodies, so the parser refuses, never panics: a
// refusal travels as a parseError panic that parse recovers, as text/template does.

// reservedList are the words DynamoDB refuses as bare attribute names in an expression,
// in any case: the list of its developer guide ("Reserved words in DynamoDB", 573 words).
//
//go:embed reserved.txt
var reservedList string

var reserved = strings.Fields(reservedList)

// cond is a parsed ConditionExpression, run against an item (nil for none).
type cond func(item) bool

// assign is one action of SET: name = value.
type assign struct {
	name  string
	value value
}

// operand is a top-level attribute, or an expression attribute value when isValue.
type operand struct {
	name    string
	value   value
	isValue bool
}

func (o operand) get(it item) value {
	if o.isValue {
		return o.value
	}
	return it[o.name]
}

// comparators order values of one type; a missing attribute or values of different types
// make each false but "<>", the negation of "=".
var comparators = map[string]func(int) bool{
	"=": func(n int) bool { return n == 0 }, "<>": func(n int) bool { return n != 0 },
	"<": func(n int) bool { return n < 0 }, "<=": func(n int) bool { return n <= 0 },
	">": func(n int) bool { return n > 0 }, ">=": func(n int) bool { return n >= 0 },
}

type token struct {
	text       string
	start, end int // byte offsets in the expression
}

// tokenPattern is a word (a name, keyword or function), a #name or :value placeholder, a
// symbol, or one character no rule accepts.
var tokenPattern = regexp.MustCompile(`\s*(?:([#:]?\w+|<>|<=|>=|[()\[\],.=<>+-])|(\S))`)

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// parseError is a refusal: the message after "Invalid <kind>: ".
type parseError struct{ msg string }

// parser parses a request's expressions and tracks which of its placeholders they use.
type parser struct {
	names      map[string]string
	values     item
	used       map[string]bool
	undefined  string // the first undefined placeholder, refused once the syntax is known good
	kind, src  string // ConditionExpression or UpdateExpression, named in DynamoDB's messages
	toks       []token
	pos        int
	lastParens [2]int // the last parenthesized condition: its "(" and the token after its ")"
}

// parse runs rule over src and turns a refusal into DynamoDB's ValidationException.
func (p *parser) parse(kind, src string, rule func()) (err *apiError) {
	switch {
	case strings.TrimSpace(src) == "":
		return validation("Invalid " + kind + ": The expression can not be empty;")
	case len(src) > 4096:
		return validation(fmt.Sprintf("Invalid %s: Expression size has exceeded the maximum allowed size; expression size: %d", kind, len(src)))
	}
	p.kind, p.src, p.toks, p.pos = kind, src, nil, 0
	for _, m := range tokenPattern.FindAllStringSubmatchIndex(src, -1) {
		g := max(m[2], m[4]) // the group that matched; the other is -1
		p.toks = append(p.toks, token{src[g:m[1]], g, m[1]})
	}
	p.toks = append(p.toks, token{"<EOF>", len(src), len(src)})
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(parseError)
			if !ok {
				panic(r)
			}
			err = validation("Invalid " + kind + ": " + pe.msg)
		}
	}()
	if rule(); p.pos != len(p.toks)-1 {
		p.syntaxError()
	}
	if strings.HasPrefix(p.undefined, "#") {
		p.fail("An expression attribute name used in the document path is not defined; attribute name: " + p.undefined)
	} else if p.undefined != "" {
		p.fail("An expression attribute value used in expression is not defined; attribute value: " + p.undefined)
	}
	return nil
}

// unused refuses the placeholders no expression used, as DynamoDB does.
func (p *parser) unused() *apiError {
	used := func(k string) bool { return p.used[k] }
	param, keys := "ExpressionAttributeNames", slices.DeleteFunc(slices.Sorted(maps.Keys(p.names)), used)
	if len(keys) == 0 {
		param, keys = "ExpressionAttributeValues", slices.DeleteFunc(slices.Sorted(maps.Keys(p.values)), used)
	}
	if len(keys) > 0 {
		return validation("Value provided in " + param + " unused in expressions: keys: {" + strings.Join(keys, ", ") + "}")
	}
	return nil
}

func (p *parser) fail(msg string) { panic(parseError{msg}) }
func (p *parser) peek() token     { return p.toks[p.pos] }
func (p *parser) is(s string) bool {
	return p.peek().text == s || isLetter(s[0]) && strings.EqualFold(p.peek().text, s) // keywords ignore case
}
func (p *parser) next() { p.pos = min(p.pos+1, len(p.toks)-1) }
func (p *parser) call() bool {
	return isLetter(p.peek().text[0]) && p.toks[min(p.pos+1, len(p.toks)-1)].text == "("
}

func (p *parser) expect(s string) {
	if !p.is(s) {
		p.syntaxError()
	}
	p.next()
}

// syntaxError refuses the current token as DynamoDB does, quoting it and its neighbours.
func (p *parser) syntaxError() {
	from, to := p.toks[max(p.pos-1, 0)].start, p.toks[min(p.pos+1, len(p.toks)-1)].end
	p.fail(fmt.Sprintf("Syntax error; token: %q, near: %q", p.peek().text, strings.TrimSpace(p.src[from:to])))
}

// condition reads a ConditionExpression: ORs of ANDs of NOTs of comparisons, functions
// and parenthesized conditions.
func (p *parser) condition() cond {
	return p.binary("OR", func() cond { return p.binary("AND", p.not) })
}

// binary reads operands joined by AND or OR, left to right.
func (p *parser) binary(op string, operand func() cond) cond {
	and := op == "AND"
	for c := operand(); ; {
		if !p.is(op) {
			return c
		}
		p.next()
		l, r := c, operand()
		c = func(it item) bool { // l && r, or l || r
			if v := l(it); v != and {
				return v
			}
			return r(it)
		}
	}
}

func (p *parser) not() cond {
	if p.is("NOT") {
		p.next()
		c := p.not()
		return func(it item) bool { return !c(it) }
	}
	return p.primary()
}

func (p *parser) primary() cond {
	if start := p.pos; p.is("(") {
		p.next()
		c := p.condition()
		if p.lastParens == [2]int{start + 1, p.pos} {
			p.fail("The expression has redundant parentheses;") // ((a = :v))
		}
		p.expect(")")
		p.lastParens = [2]int{start, p.pos}
		return c
	}
	if fn := p.peek().text; p.call() && (fn == "attribute_exists" || fn == "attribute_not_exists") {
		p.next()
		var args []operand
		for p.next(); !p.is(")"); {
			if len(args) > 0 {
				p.expect(",")
			}
			args = append(args, p.operand())
		}
		p.next()
		switch _, compared := comparators[p.peek().text]; {
		case len(args) != 1:
			p.fail(fmt.Sprintf("Incorrect number of operands for operator or function; operator or function: %s, number of operands: %d", fn, len(args)))
		case args[0].isValue:
			p.fail("Operator or function requires a document path; operator or function: " + fn)
		case compared:
			p.fail("The function is not allowed to be used this way in an expression; function: " + fn)
		}
		name, want := args[0].name, fn == "attribute_exists"
		return func(it item) bool { _, ok := it[name]; return ok == want }
	}
	l := p.operand()
	if p.is("BETWEEN") || p.is("IN") {
		p.fail(notModelled(strings.ToUpper(p.peek().text)))
	}
	op := p.peek().text
	if comparators[op] == nil {
		p.syntaxError()
	}
	p.next()
	r := p.operand()
	return func(it item) bool {
		n, ok := compare(l.get(it), r.get(it))
		return ok && comparators[op](n) || !ok && op == "<>"
	}
}

// update reads an UpdateExpression: SET name = :value, ...
func (p *parser) update() (sets []assign) {
	for p.pos != len(p.toks)-1 {
		switch clause := strings.ToUpper(p.peek().text); {
		case !slices.Contains([]string{"SET", "REMOVE", "ADD", "DELETE"}, clause):
			p.syntaxError()
		case clause != "SET":
			p.fail(notModelled("the " + clause + " clause"))
		case sets != nil:
			p.fail(`The "SET" section can only be used once in an update expression;`)
		}
		for p.next(); ; p.next() {
			name := p.path()
			p.expect("=")
			if v := p.operand(); !v.isValue || p.is("+") || p.is("-") {
				p.fail(notModelled("SET to anything but a :value"))
			} else if name != "" && slices.ContainsFunc(sets, func(a assign) bool { return a.name == name }) {
				p.fail("Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [" + name + "], path two: [" + name + "]")
			} else {
				sets = append(sets, assign{name, v.value})
			}
			if !p.is(",") {
				break
			}
		}
	}
	return sets
}

// operand reads a :value or an attribute.
func (p *parser) operand() operand {
	switch t := p.peek().text; {
	case t[0] == ':' && len(t) > 1:
		p.next()
		p.used[t] = true
		v, ok := p.values[t]
		if !ok && p.undefined == "" {
			p.undefined = t
		}
		return operand{value: v, isValue: true}
	case p.call():
		p.refuseCall(t)
	}
	return operand{name: p.path()}
}

// path reads a top-level attribute: a #name, or a bare name that is not a reserved word.
func (p *parser) path() string {
	name, ok := p.peek().text, true
	structural := []string{"AND", "OR", "NOT", "BETWEEN", "IN"}
	if p.kind == "UpdateExpression" {
		structural = []string{"SET", "REMOVE", "ADD", "DELETE"}
	}
	switch t := name; {
	case t[0] == '#' && len(t) > 1:
		p.used[t] = true
		if name, ok = p.names[t]; !ok && p.undefined == "" {
			p.undefined = t
		}
	case !isLetter(t[0]) || slices.Contains(structural, strings.ToUpper(t)):
		p.syntaxError()
	case slices.Contains(reserved, strings.ToUpper(t)):
		p.fail("Attribute name is a reserved keyword; reserved keyword: " + t)
	}
	if p.next(); p.is(".") || p.is("[") {
		p.fail(notModelled("nested attributes and list elements"))
	}
	return name
}

// refuseCall refuses a function, in DynamoDB's words where DynamoDB refuses it too.
func (p *parser) refuseCall(fn string) {
	conditionFns := []string{"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains", "size"}
	switch inCondition := slices.Contains(conditionFns, fn); {
	case inCondition && p.kind == "UpdateExpression":
		p.fail("The function is not allowed in an update expression; function: " + fn)
	case (fn == "if_not_exists" || fn == "list_append") && p.kind == "ConditionExpression":
		p.fail("The function is not allowed in a condition expression; function: " + fn)
	case fn == "attribute_exists" || fn == "attribute_not_exists":
		p.fail("The function is not allowed to be used this way in an expression; function: " + fn)
	case inCondition || fn == "if_not_exists" || fn == "list_append":
		p.fail(notModelled("the function " + fn))
	}
	p.fail("Invalid function name; function: " + fn)
}
