package dynamotest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// This file parses DynamoDB's three expression languages: ConditionExpression,
// UpdateExpression and ProjectionExpression, from the grammar in DynamoDB's developer guide
// ("Condition and filter expressions, operators, and functions"; "Update expressions").
// Expressions come from the request body, so the parser must refuse, never panic: errors
// travel as a parseError panic that the entry points recover, as text/template does.

// exprKind is the request parameter an expression came from; DynamoDB's messages name it.
type exprKind string

const (
	conditionExpr  exprKind = "ConditionExpression"
	updateExpr     exprKind = "UpdateExpression"
	projectionExpr exprKind = "ProjectionExpression"
)

const maxExpressionSize = 4096 // bytes, per expression

// The comparison and logical keywords; like DynamoDB's reserved words they ignore case.
var conditionKeywords = []string{"AND", "OR", "NOT", "BETWEEN", "IN"}

// updateClauses in the order DynamoDB names them.
var updateClauses = []string{"SET", "REMOVE", "ADD", "DELETE"}

type tokenKind int

const (
	tokEOF     tokenKind = iota
	tokIdent             // a bare attribute name, a keyword or a function name
	tokName              // #placeholder
	tokValue             // :placeholder
	tokNumber            // a list index
	tokSymbol            // ( ) [ ] , . = <> < <= > >= + -
	tokInvalid           // a character no rule accepts
)

type token struct {
	kind       tokenKind
	text       string
	start, end int // byte offsets in the expression
}

// lex splits an expression into tokens; it never fails, an unknown character becomes a
// tokInvalid token that the parser then refuses in DynamoDB's words.
func lex(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		start := i
		kind := tokInvalid
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '#' || c == ':':
			j := i + 1
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			if j > i+1 {
				kind = map[byte]tokenKind{'#': tokName, ':': tokValue}[c]
				i = j
			} else {
				i++
			}
		case isLetter(c) || c == '_':
			for i < len(s) && isWordByte(s[i]) {
				i++
			}
			kind = tokIdent
		case '0' <= c && c <= '9':
			for i < len(s) && '0' <= s[i] && s[i] <= '9' {
				i++
			}
			kind = tokNumber
		case strings.HasPrefix(s[i:], "<>") || strings.HasPrefix(s[i:], "<=") || strings.HasPrefix(s[i:], ">="):
			i += 2
			kind = tokSymbol
		case strings.IndexByte("()[],.=<>+-", c) >= 0:
			i++
			kind = tokSymbol
		default:
			i++
		}
		toks = append(toks, token{kind: kind, text: s[start:i], start: start, end: i})
	}
	return append(toks, token{kind: tokEOF, text: "<EOF>", start: len(s), end: len(s)})
}

func isLetter(c byte) bool   { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isWordByte(c byte) bool { return isLetter(c) || '0' <= c && c <= '9' || c == '_' }

// pathElem is one step of a document path: an attribute or map key, or a list index.
type pathElem struct {
	name    string
	index   int
	isIndex bool
}

// docPath is a document path with its placeholders resolved: a.b[0]
type docPath []pathElem

// String is the path as DynamoDB's messages show it: [a, b, [0]]
func (p docPath) String() string {
	parts := make([]string, len(p))
	for i, e := range p {
		if e.isIndex {
			parts[i] = "[" + strconv.Itoa(e.index) + "]"
		} else {
			parts[i] = e.name
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// operand is a document path, an expression attribute value, or a function of operands.
type operand struct {
	path    docPath
	value   types.AttributeValue // when valueOf is set
	valueOf string               // the :placeholder
	fn      string               // size, if_not_exists, list_append
	args    []*operand
}

func (o *operand) isPath() bool  { return o.path != nil }
func (o *operand) isValue() bool { return o.valueOf != "" }

// kindName is how DynamoDB's messages name an operand that has no data type of its own.
func (o *operand) kindName() string {
	switch {
	case o.isValue() && o.value != nil:
		return typeOf(o.value)
	case o.isPath():
		return "document path"
	}
	return "function"
}

// A cond is a parsed ConditionExpression.
type cond interface {
	eval(it item) bool
}

type (
	condAnd     struct{ l, r cond }
	condOr      struct{ l, r cond }
	condNot     struct{ c cond }
	condParen   struct{ c cond }
	condCompare struct {
		op   string
		l, r *operand
	}
	condBetween struct{ x, lo, hi *operand }
	condIn      struct {
		x    *operand
		list []*operand
	}
	condFunc struct {
		name string
		args []*operand
	}
)

// updateAction is one action of an UpdateExpression: SET path = value, REMOVE path,
// ADD path value, DELETE path value.
type updateAction struct {
	clause string
	path   docPath
	l, r   *operand // SET: l, or l op r; ADD and DELETE: l
	op     string   // SET: "", "+" or "-"
}

// parseError is a refusal: the message after "Invalid <kind>: ".
type parseError struct{ msg string }

// placeholders are the request's ExpressionAttributeNames and ExpressionAttributeValues,
// and which of them the request's expressions used: all must be, as DynamoDB insists.
type placeholders struct {
	names      map[string]string
	values     item
	usedNames  map[string]bool
	usedValues map[string]bool
}

func newPlaceholders(names map[string]string, values item) *placeholders {
	return &placeholders{names: names, values: values, usedNames: map[string]bool{}, usedValues: map[string]bool{}}
}

// unused returns DynamoDB's refusal of placeholders no expression used, or nil.
func (ph *placeholders) unused() *apiError {
	for _, set := range []struct {
		param string
		keys  []string
		used  map[string]bool
	}{
		{"ExpressionAttributeNames", mapKeys(ph.names), ph.usedNames},
		{"ExpressionAttributeValues", mapKeys(ph.values), ph.usedValues},
	} {
		var unused []string
		for _, k := range set.keys {
			if !set.used[k] {
				unused = append(unused, k)
			}
		}
		if len(unused) > 0 {
			return validation("Value provided in " + set.param + " unused in expressions: keys: {" + strings.Join(unused, ", ") + "}")
		}
	}
	return nil
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

type parser struct {
	kind      exprKind
	src       string
	toks      []token
	pos       int
	ph        *placeholders
	undefined string // the first undefined placeholder, refused once the syntax is known good
}

// parse runs one of the parse functions below on src and turns a refusal into DynamoDB's
// ValidationException.
func parse[T any](kind exprKind, src string, ph *placeholders, rule func(*parser) T) (result T, err *apiError) {
	if strings.TrimSpace(src) == "" {
		return result, validation("Invalid " + string(kind) + ": The expression can not be empty;")
	}
	if len(src) > maxExpressionSize {
		return result, validation(fmt.Sprintf("Invalid %s: Expression size has exceeded the maximum allowed size; expression size: %d", kind, len(src)))
	}
	p := &parser{kind: kind, src: src, toks: lex(src), ph: ph}
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(parseError)
			if !ok {
				panic(r)
			}
			err = validation("Invalid " + string(kind) + ": " + pe.msg)
		}
	}()
	result = rule(p)
	if p.peek().kind != tokEOF {
		p.syntaxError()
	}
	if p.undefined != "" {
		if strings.HasPrefix(p.undefined, "#") {
			p.fail("An expression attribute name used in the document path is not defined; attribute name: " + p.undefined)
		}
		p.fail("An expression attribute value used in expression is not defined; attribute value: " + p.undefined)
	}
	return result, nil
}

func (p *parser) fail(msg string) { panic(parseError{msg}) }

func (p *parser) peek() token     { return p.toks[p.pos] }
func (p *parser) peekNext() token { return p.toks[min(p.pos+1, len(p.toks)-1)] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *parser) isSymbol(s string) bool {
	t := p.peek()
	return t.kind == tokSymbol && t.text == s
}

func (p *parser) isKeyword(k string) bool {
	t := p.peek()
	return t.kind == tokIdent && strings.EqualFold(t.text, k)
}

func (p *parser) expectSymbol(s string) {
	if !p.isSymbol(s) {
		p.syntaxError()
	}
	p.next()
}

// syntaxError refuses the current token as DynamoDB does, quoting it and its neighbours.
func (p *parser) syntaxError() {
	t := p.peek()
	from := t.start
	if p.pos > 0 {
		from = p.toks[p.pos-1].start
	}
	to := t.end
	if t.kind != tokEOF {
		to = p.peekNext().end
	}
	p.fail(fmt.Sprintf("Syntax error; token: %q, near: %q", t.text, strings.TrimSpace(p.src[from:to])))
}

// parsePath reads a document path: name ( '.' name | '[' index ']' )*.
func (p *parser) parsePath() docPath {
	path := docPath{p.parsePathName()}
	for {
		switch {
		case p.isSymbol("."):
			p.next()
			path = append(path, p.parsePathName())
		case p.isSymbol("["):
			p.next()
			t := p.peek()
			n, err := strconv.Atoi(t.text)
			if t.kind != tokNumber || err != nil || n > 1<<20 {
				p.syntaxError()
			}
			p.next()
			p.expectSymbol("]")
			path = append(path, pathElem{index: n, isIndex: true})
		default:
			return path
		}
	}
}

func (p *parser) parsePathName() pathElem {
	t := p.peek()
	switch t.kind {
	case tokName:
		p.next()
		p.ph.usedNames[t.text] = true
		name, ok := p.ph.names[t.text]
		if !ok && p.undefined == "" {
			p.undefined = t.text
		}
		return pathElem{name: name}
	case tokIdent:
		if p.isStructural(t.text) {
			p.syntaxError()
		}
		if isReserved(t.text) {
			p.fail("Attribute name is a reserved keyword; reserved keyword: " + t.text)
		}
		p.next()
		return pathElem{name: t.text}
	}
	p.syntaxError()
	return pathElem{}
}

// isStructural reports whether word is part of this expression language's syntax.
func (p *parser) isStructural(word string) bool {
	words := conditionKeywords
	if p.kind == updateExpr {
		words = updateClauses
	}
	return slices.ContainsFunc(words, func(k string) bool { return strings.EqualFold(k, word) })
}

func (p *parser) parseValue() *operand {
	t := p.next()
	p.ph.usedValues[t.text] = true
	v, ok := p.ph.values[t.text]
	if !ok && p.undefined == "" {
		p.undefined = t.text
	}
	return &operand{valueOf: t.text, value: v}
}

// parseArgs reads a function's parenthesized, comma-separated operands.
func (p *parser) parseArgs(arg func() *operand) []*operand {
	p.expectSymbol("(")
	var args []*operand
	if !p.isSymbol(")") {
		args = append(args, arg())
		for p.isSymbol(",") {
			p.next()
			args = append(args, arg())
		}
	}
	p.expectSymbol(")")
	return args
}

// The functions of each language, by their case-sensitive names.
var (
	conditionFunctions = []string{"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains"}
	updateFunctions    = []string{"if_not_exists", "list_append"}
)

func (p *parser) isCall() bool {
	return p.peek().kind == tokIdent && p.peekNext().kind == tokSymbol && p.peekNext().text == "("
}

// checkArgs enforces a function's number of operands and, when it has any, that the
// first is a document path.
func (p *parser) checkArgs(fn string, args []*operand, n int) {
	if len(args) != n {
		p.fail(fmt.Sprintf("Incorrect number of operands for operator or function; operator or function: %s, number of operands: %d", fn, len(args)))
	}
	if !args[0].isPath() {
		p.fail("Operator or function requires a document path; operator or function: " + fn)
	}
}

// --- ConditionExpression ---

// parseCondition reads a whole ConditionExpression.
func parseCondition(p *parser) cond {
	return p.parseOr()
}

func (p *parser) parseOr() cond {
	c := p.parseAnd()
	for p.isKeyword("OR") {
		p.next()
		c = condOr{c, p.parseAnd()}
	}
	return c
}

func (p *parser) parseAnd() cond {
	c := p.parseNot()
	for p.isKeyword("AND") {
		p.next()
		c = condAnd{c, p.parseNot()}
	}
	return c
}

func (p *parser) parseNot() cond {
	if p.isKeyword("NOT") {
		p.next()
		return condNot{p.parseNot()}
	}
	return p.parsePrimary()
}

var comparators = []string{"=", "<>", "<", "<=", ">", ">="}

func (p *parser) isComparison() bool {
	t := p.peek()
	return t.kind == tokSymbol && slices.Contains(comparators, t.text) || p.isKeyword("BETWEEN") || p.isKeyword("IN")
}

func (p *parser) parsePrimary() cond {
	if p.isSymbol("(") {
		p.next()
		inner := p.parseOr()
		p.expectSymbol(")")
		// DynamoDB refuses parentheses around nothing but parentheses: ((a = :v)).
		if _, ok := inner.(condParen); ok {
			p.fail("The expression has redundant parentheses;")
		}
		return condParen{inner}
	}
	if p.isCall() && slices.Contains(conditionFunctions, p.peek().text) {
		name := p.next().text
		f := condFunc{name: name, args: p.parseArgs(p.parseConditionOperand)}
		p.checkFunction(f)
		if p.isComparison() {
			p.fail("The function is not allowed to be used this way in an expression; function: " + name)
		}
		return f
	}
	x := p.parseConditionOperand()
	switch {
	case p.isKeyword("BETWEEN"):
		p.next()
		lo := p.parseConditionOperand()
		if !p.isKeyword("AND") {
			p.syntaxError()
		}
		p.next()
		hi := p.parseConditionOperand()
		p.checkBetween(x, lo, hi)
		return condBetween{x, lo, hi}
	case p.isKeyword("IN"):
		p.next()
		list := p.parseArgs(p.parseConditionOperand)
		if len(list) == 0 {
			p.syntaxError()
		}
		if len(list) > 100 {
			p.fail(fmt.Sprintf("The IN operator is provided with too many operands; number of operands: %d", len(list)))
		}
		return condIn{x, list}
	case p.isComparison():
		op := p.next().text
		r := p.parseConditionOperand()
		if op != "=" && op != "<>" {
			p.checkOrderable(op, x, r)
		}
		return condCompare{op, x, r}
	}
	if x.fn != "" {
		p.fail("The function is not allowed to be used this way in an expression; function: " + x.fn)
	}
	p.syntaxError()
	return nil
}

// parseConditionOperand reads a path, a :value or size(path).
func (p *parser) parseConditionOperand() *operand {
	t := p.peek()
	switch {
	case t.kind == tokValue:
		return p.parseValue()
	case p.isCall():
		p.next()
		switch {
		case t.text == "size":
			args := p.parseArgs(p.parseConditionOperand)
			p.checkArgs("size", args, 1)
			return &operand{fn: "size", args: args}
		case slices.Contains(conditionFunctions, t.text):
			p.fail("The function is not allowed to be used this way in an expression; function: " + t.text)
		case slices.Contains(updateFunctions, t.text):
			p.fail("The function is not allowed in a condition expression; function: " + t.text)
		}
		p.fail("Invalid function name; function: " + t.text)
	case t.kind == tokName || t.kind == tokIdent:
		return &operand{path: p.parsePath()}
	}
	p.syntaxError()
	return nil
}

var attributeTypes = []string{"B", "NULL", "SS", "BOOL", "L", "BS", "N", "NS", "S", "M"}

// checkFunction enforces what DynamoDB checks of a function before it reads any item.
func (p *parser) checkFunction(f condFunc) {
	switch f.name {
	case "attribute_exists", "attribute_not_exists":
		p.checkArgs(f.name, f.args, 1)
	case "attribute_type":
		p.checkArgs(f.name, f.args, 2)
		t := f.args[1]
		if !t.isValue() {
			p.fail("Incorrect operand type for operator or function; operator or function: attribute_type, operand type: " + t.kindName())
		}
		if t.value == nil {
			return // undefined, refused after the syntax check
		}
		s, ok := t.value.(*types.AttributeValueMemberS)
		if !ok {
			p.fail("Incorrect operand type for operator or function; operator or function: attribute_type, operand type: " + typeOf(t.value))
		}
		if !slices.Contains(attributeTypes, s.Value) {
			p.fail("Invalid attribute type name found; type: " + s.Value + ", valid types: { " + strings.Join(attributeTypes, ", ") + " }")
		}
	case "begins_with":
		p.checkArgs(f.name, f.args, 2)
		if v := f.args[1].value; v != nil && typeOf(v) != "S" && typeOf(v) != "B" {
			p.fail("Incorrect operand type for operator or function; operator or function: begins_with, operand type: " + typeOf(v))
		}
	case "contains":
		p.checkArgs(f.name, f.args, 2)
		if a, b := f.args[0], f.args[1]; b.isPath() && slices.Equal(a.path, b.path) {
			p.fail("The first operand must be distinct from the remaining operands for this operator or function; operator: contains, first operand: " + a.path.String())
		}
	}
}

// checkOrderable refuses a value that < <= > >= BETWEEN cannot order: only S, N and B can be.
func (p *parser) checkOrderable(op string, operands ...*operand) {
	for _, o := range operands {
		if o.value != nil && !slices.Contains([]string{"S", "N", "B"}, typeOf(o.value)) {
			p.fail("Incorrect operand type for operator or function; operator or function: " + op + ", operand type: " + typeOf(o.value))
		}
	}
}

func (p *parser) checkBetween(x, lo, hi *operand) {
	p.checkOrderable("BETWEEN", x, lo, hi)
	if lo.value == nil || hi.value == nil {
		return
	}
	bounds := fmt.Sprintf("lower bound operand: AttributeValue: {%s}, upper bound operand: AttributeValue: {%s}", describe(lo.value), describe(hi.value))
	c, ok := order(lo.value, hi.value)
	switch {
	case !ok:
		p.fail("The BETWEEN operator requires same data type for lower and upper bounds; " + bounds)
	case c > 0:
		p.fail("The BETWEEN operator requires upper bound to be greater than or equal to lower bound; " + bounds)
	}
}

// describe writes a scalar as DynamoDB's messages do: N:5
func describe(v types.AttributeValue) string {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return "S:" + v.Value
	case *types.AttributeValueMemberN:
		return "N:" + v.Value
	}
	return typeOf(v)
}

// --- UpdateExpression ---

// parseUpdate reads a whole UpdateExpression: one or more clauses, each at most once.
func parseUpdate(p *parser) []updateAction {
	var actions []updateAction
	seen := map[string]bool{}
	for p.peek().kind != tokEOF {
		t := p.peek()
		i := slices.IndexFunc(updateClauses, func(k string) bool { return t.kind == tokIdent && strings.EqualFold(k, t.text) })
		if i < 0 {
			p.syntaxError()
		}
		clause := updateClauses[i]
		if seen[clause] {
			p.fail(`The "` + clause + `" section can only be used once in an update expression;`)
		}
		seen[clause] = true
		p.next()
		for {
			actions = append(actions, p.parseAction(clause))
			if !p.isSymbol(",") {
				break
			}
			p.next()
		}
	}
	if len(actions) == 0 {
		p.syntaxError()
	}
	p.checkOverlaps(actionPaths(actions))
	return actions
}

func actionPaths(actions []updateAction) []docPath {
	paths := make([]docPath, len(actions))
	for i, a := range actions {
		paths[i] = a.path
	}
	return paths
}

func (p *parser) parseAction(clause string) updateAction {
	a := updateAction{clause: clause, path: p.parsePath()}
	switch clause {
	case "SET":
		p.expectSymbol("=")
		a.l = p.parseTerm()
		if p.isSymbol("+") || p.isSymbol("-") {
			a.op = p.next().text
			a.r = p.parseTerm()
			for _, o := range []*operand{a.l, a.r} {
				if o.value != nil && typeOf(o.value) != "N" {
					p.fail("Incorrect operand type for operator or function; operator or function: " + a.op + ", operand type: " + typeOf(o.value))
				}
			}
		}
	case "ADD", "DELETE":
		if p.peek().kind != tokValue {
			p.syntaxError()
		}
		a.l = p.parseValue()
		p.checkAddDelete(clause, a.l.value)
	}
	return a
}

// checkAddDelete refuses a value ADD (a number or a set) or DELETE (a set) cannot take.
func (p *parser) checkAddDelete(clause string, v types.AttributeValue) {
	if v == nil {
		return
	}
	allowed := []string{"SS", "NS", "BS"}
	if clause == "ADD" {
		allowed = append(allowed, "N")
	}
	if !slices.Contains(allowed, typeOf(v)) {
		long := map[string]string{"S": "STRING", "N": "NUMBER", "B": "BINARY", "BOOL": "BOOLEAN", "NULL": "NULL", "L": "LIST", "M": "MAP"}
		p.fail("Incorrect operand type for operator or function; operator: " + clause + ", operand type: " + long[typeOf(v)] +
			", typeSet: ALLOWED_FOR_" + clause + "_OPERAND")
	}
}

// parseTerm reads what SET may assign: a path, a :value, if_not_exists or list_append.
func (p *parser) parseTerm() *operand {
	t := p.peek()
	switch {
	case t.kind == tokValue:
		return p.parseValue()
	case p.isCall():
		p.next()
		switch {
		case t.text == "if_not_exists":
			args := p.parseArgs(p.parseTerm)
			p.checkArgs(t.text, args, 2)
			return &operand{fn: t.text, args: args}
		case t.text == "list_append":
			args := p.parseArgs(p.parseTerm)
			if len(args) != 2 {
				p.fail(fmt.Sprintf("Incorrect number of operands for operator or function; operator or function: list_append, number of operands: %d", len(args)))
			}
			for _, a := range args {
				if a.value != nil && typeOf(a.value) != "L" {
					p.fail("Incorrect operand type for operator or function; operator or function: list_append, operand type: " + typeOf(a.value))
				}
			}
			return &operand{fn: t.text, args: args}
		case slices.Contains(conditionFunctions, t.text) || t.text == "size":
			p.fail("The function is not allowed in an update expression; function: " + t.text)
		}
		p.fail("Invalid function name; function: " + t.text)
	case t.kind == tokName || t.kind == tokIdent:
		return &operand{path: p.parsePath()}
	}
	p.syntaxError()
	return nil
}

// checkOverlaps refuses two paths of which one contains the other, or that reach into the
// same attribute as both a map and a list.
func (p *parser) checkOverlaps(paths []docPath) {
	for i, a := range paths {
		for _, b := range paths[i+1:] {
			n := min(len(a), len(b))
			same := 0
			for same < n && a[same] == b[same] {
				same++
			}
			switch {
			case same == n:
				p.fail("Two document paths overlap with each other; must remove or rewrite one of these paths; path one: " + a.String() + ", path two: " + b.String())
			case a[same].isIndex != b[same].isIndex:
				p.fail("Two document paths conflict with each other; must remove or rewrite one of these paths; path one: " + a.String() + ", path two: " + b.String())
			}
		}
	}
}

// --- ProjectionExpression ---

// parseProjection reads a whole ProjectionExpression: paths separated by commas.
func parseProjection(p *parser) []docPath {
	paths := []docPath{p.parsePath()}
	for p.isSymbol(",") {
		p.next()
		paths = append(paths, p.parsePath())
	}
	if p.peek().kind == tokEOF {
		p.checkOverlaps(paths)
	}
	return paths
}
