package dynamotest

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// This file runs parsed expressions against an item. DynamoDB's rule throughout: an
// attribute that is missing, or of another type than the comparison needs, makes the
// comparison false, never an error. Only "<>" is then true: it is the negation of "=".

// get follows a document path into an item.
func (p docPath) get(it item) (types.AttributeValue, bool) {
	var cur types.AttributeValue = &types.AttributeValueMemberM{Value: it}
	for _, e := range p {
		switch c := cur.(type) {
		case *types.AttributeValueMemberM:
			v, ok := c.Value[e.name]
			if e.isIndex || !ok {
				return nil, false
			}
			cur = v
		case *types.AttributeValueMemberL:
			if !e.isIndex || e.index >= len(c.Value) {
				return nil, false
			}
			cur = c.Value[e.index]
		default:
			return nil, false
		}
	}
	return cur, true
}

// eval is the value of a condition's operand: a path's value, a :value, or size(path).
func (o *operand) eval(it item) (types.AttributeValue, bool) {
	switch {
	case o.isValue():
		return o.value, o.value != nil
	case o.isPath():
		return o.path.get(it)
	}
	v, ok := o.args[0].path.get(it) // size, the one function that is an operand
	if !ok {
		return nil, false
	}
	var n int
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		n = utf8.RuneCountInString(v.Value)
	case *types.AttributeValueMemberB:
		n = len(v.Value)
	case *types.AttributeValueMemberSS:
		n = len(v.Value)
	case *types.AttributeValueMemberNS:
		n = len(v.Value)
	case *types.AttributeValueMemberBS:
		n = len(v.Value)
	case *types.AttributeValueMemberL:
		n = len(v.Value)
	case *types.AttributeValueMemberM:
		n = len(v.Value)
	default:
		return nil, false // a Number, Boolean or Null has no size
	}
	return &types.AttributeValueMemberN{Value: strconv.Itoa(n)}, true
}

func (c condAnd) eval(it item) bool   { return c.l.eval(it) && c.r.eval(it) }
func (c condOr) eval(it item) bool    { return c.l.eval(it) || c.r.eval(it) }
func (c condNot) eval(it item) bool   { return !c.c.eval(it) }
func (c condParen) eval(it item) bool { return c.c.eval(it) }

func (c condCompare) eval(it item) bool {
	l, lok := c.l.eval(it)
	r, rok := c.r.eval(it)
	if c.op == "=" || c.op == "<>" {
		return (lok && rok && equal(l, r)) == (c.op == "=")
	}
	if !lok || !rok {
		return false
	}
	o, ok := order(l, r)
	if !ok {
		return false
	}
	switch c.op {
	case "<":
		return o < 0
	case "<=":
		return o <= 0
	case ">":
		return o > 0
	}
	return o >= 0
}

func (c condBetween) eval(it item) bool {
	x, ok1 := c.x.eval(it)
	lo, ok2 := c.lo.eval(it)
	hi, ok3 := c.hi.eval(it)
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	a, ok1 := order(x, lo)
	b, ok2 := order(x, hi)
	return ok1 && ok2 && a >= 0 && b <= 0
}

func (c condIn) eval(it item) bool {
	x, ok := c.x.eval(it)
	if !ok {
		return false
	}
	return slices.ContainsFunc(c.list, func(o *operand) bool {
		v, ok := o.eval(it)
		return ok && equal(x, v)
	})
}

func (c condFunc) eval(it item) bool {
	x, found := c.args[0].eval(it)
	switch c.name {
	case "attribute_exists":
		return found
	case "attribute_not_exists":
		return !found
	}
	y, ok := c.args[1].eval(it)
	if !found || !ok {
		return false
	}
	switch c.name {
	case "attribute_type":
		return typeOf(x) == y.(*types.AttributeValueMemberS).Value
	case "begins_with":
		switch x := x.(type) {
		case *types.AttributeValueMemberS:
			y, ok := y.(*types.AttributeValueMemberS)
			return ok && strings.HasPrefix(x.Value, y.Value)
		case *types.AttributeValueMemberB:
			y, ok := y.(*types.AttributeValueMemberB)
			return ok && bytes.HasPrefix(x.Value, y.Value)
		}
		return false
	}
	// contains: a substring of a String, an element of a set or of a list.
	switch x := x.(type) {
	case *types.AttributeValueMemberS:
		y, ok := y.(*types.AttributeValueMemberS)
		return ok && strings.Contains(x.Value, y.Value)
	case *types.AttributeValueMemberSS:
		y, ok := y.(*types.AttributeValueMemberS)
		return ok && slices.Contains(x.Value, y.Value)
	case *types.AttributeValueMemberNS:
		return slices.ContainsFunc(x.Value, func(n string) bool { return equal(&types.AttributeValueMemberN{Value: n}, y) })
	case *types.AttributeValueMemberBS:
		y, ok := y.(*types.AttributeValueMemberB)
		return ok && slices.ContainsFunc(x.Value, func(b []byte) bool { return bytes.Equal(b, y.Value) })
	case *types.AttributeValueMemberL:
		return slices.ContainsFunc(x.Value, func(e types.AttributeValue) bool { return equal(e, y) })
	}
	return false
}

// The refusals of an update that DynamoDB only finds against the item.
var (
	errNoSuchAttribute = validation("The provided expression refers to an attribute that does not exist in the item")
	errOperandType     = validation("An operand in the update expression has an incorrect data type")
	errDocumentPath    = validation("The document path provided in the update expression is invalid for update")
)

// applyUpdate runs actions on it, a copy of the item that it changes in place. As in
// DynamoDB every operand is read from the item as it was before the update (SET a = b,
// b = a swaps them), and list elements are removed after the rest, by their old indexes.
func applyUpdate(it item, actions []updateAction) *apiError {
	old := cloneItem(it)
	type assignment struct {
		path docPath
		v    types.AttributeValue
	}
	var sets []assignment
	var removes []docPath
	for _, a := range actions {
		switch a.clause {
		case "SET":
			v, err := setValue(old, a)
			if err != nil {
				return err
			}
			sets = append(sets, assignment{a.path, v})
		case "ADD", "DELETE":
			cur, exists := a.path.get(old)
			v, err := addOrDelete(a.clause, cur, exists, a.l.value)
			if err != nil {
				return err
			}
			if v == nil {
				removes = append(removes, a.path)
			} else {
				sets = append(sets, assignment{a.path, v})
			}
		case "REMOVE":
			removes = append(removes, a.path)
		}
	}
	for _, s := range sets {
		if err := setPath(it, s.path, clone(s.v)); err != nil {
			return err
		}
	}
	for _, p := range removes {
		if err := removePath(it, p); err != nil {
			return err
		}
	}
	for k, v := range it {
		it[k] = compact(v)
	}
	return nil
}

// setValue computes the value SET assigns: a term, or two terms added or subtracted.
func setValue(it item, a updateAction) (types.AttributeValue, *apiError) {
	l, err := term(it, a.l)
	if err != nil || a.op == "" {
		return l, err
	}
	r, err := term(it, a.r)
	if err != nil {
		return nil, err
	}
	dl, ok1 := number(l)
	dr, ok2 := number(r)
	if !ok1 || !ok2 {
		return nil, errOperandType
	}
	sum, err := addDecimal(dl, dr, a.op == "-")
	if err != nil {
		return nil, err
	}
	return &types.AttributeValueMemberN{Value: sum.String()}, nil
}

func term(it item, o *operand) (types.AttributeValue, *apiError) {
	switch {
	case o.isValue():
		return o.value, nil
	case o.isPath():
		v, ok := o.path.get(it)
		if !ok {
			return nil, errNoSuchAttribute
		}
		return v, nil
	case o.fn == "if_not_exists":
		if v, ok := o.args[0].path.get(it); ok {
			return v, nil
		}
		return term(it, o.args[1])
	}
	// list_append
	var out []types.AttributeValue
	for _, arg := range o.args {
		v, err := term(it, arg)
		if err != nil {
			return nil, err
		}
		l, ok := v.(*types.AttributeValueMemberL)
		if !ok {
			return nil, errOperandType
		}
		out = append(out, l.Value...)
	}
	return &types.AttributeValueMemberL{Value: out}, nil
}

// addOrDelete is ADD (a number added, or a set's elements added) or DELETE (a set's
// elements removed) on the current value; nil means the attribute goes away.
func addOrDelete(clause string, cur types.AttributeValue, exists bool, v types.AttributeValue) (types.AttributeValue, *apiError) {
	if !exists {
		if clause == "ADD" {
			return v, nil
		}
		return nil, nil
	}
	if typeOf(cur) != typeOf(v) {
		return nil, errOperandType
	}
	if clause == "ADD" {
		if dc, ok := number(cur); ok {
			dv, _ := number(v)
			sum, err := addDecimal(dc, dv, false)
			if err != nil {
				return nil, err
			}
			return &types.AttributeValueMemberN{Value: sum.String()}, nil
		}
	}
	keep := func(elems []string, change []string) []string {
		if clause == "ADD" {
			for _, e := range change {
				if !slices.Contains(elems, e) {
					elems = append(elems, e)
				}
			}
			return elems
		}
		return slices.DeleteFunc(elems, func(e string) bool { return slices.Contains(change, e) })
	}
	var out types.AttributeValue
	n := 0
	switch c := clone(cur).(type) {
	case *types.AttributeValueMemberSS:
		c.Value = keep(c.Value, v.(*types.AttributeValueMemberSS).Value)
		out, n = c, len(c.Value)
	case *types.AttributeValueMemberNS:
		c.Value = keep(c.Value, v.(*types.AttributeValueMemberNS).Value)
		out, n = c, len(c.Value)
	case *types.AttributeValueMemberBS:
		elems := keep(setKeys(c.Value), setKeys(v.(*types.AttributeValueMemberBS).Value))
		c.Value = make([][]byte, len(elems))
		for i, e := range elems {
			c.Value[i] = []byte(e)
		}
		out, n = c, len(c.Value)
	default:
		return nil, errOperandType
	}
	if n == 0 {
		return nil, nil // DynamoDB keeps no empty sets
	}
	return out, nil
}

// setPath stores v at p. Every step but the last must exist with the right type; an index
// past a list's end appends, as in DynamoDB.
func setPath(it item, p docPath, v types.AttributeValue) *apiError {
	parent, last, err := walkToParent(it, p)
	if err != nil {
		return err
	}
	switch c := parent.(type) {
	case *types.AttributeValueMemberM:
		if last.isIndex {
			return errDocumentPath
		}
		c.Value[last.name] = v
	case *types.AttributeValueMemberL:
		if !last.isIndex {
			return errDocumentPath
		}
		if last.index < len(c.Value) {
			c.Value[last.index] = v
		} else {
			c.Value = append(c.Value, v)
		}
	default:
		return errDocumentPath
	}
	return nil
}

// tombstone marks a removed list element until compact, so that the other removals of
// the same update still find elements by their old indexes.
var tombstone = &types.AttributeValueMemberNULL{}

func removePath(it item, p docPath) *apiError {
	parent, last, err := walkToParent(it, p)
	if err != nil {
		return err
	}
	switch c := parent.(type) {
	case *types.AttributeValueMemberM:
		if !last.isIndex {
			delete(c.Value, last.name)
		}
	case *types.AttributeValueMemberL:
		if last.isIndex && last.index < len(c.Value) {
			c.Value[last.index] = tombstone
		}
	}
	return nil
}

func walkToParent(it item, p docPath) (types.AttributeValue, pathElem, *apiError) {
	parent, ok := p[:len(p)-1].get(it)
	if !ok {
		return nil, pathElem{}, errDocumentPath
	}
	return parent, p[len(p)-1], nil
}

// compact drops the tombstones under v.
func compact(v types.AttributeValue) types.AttributeValue {
	switch c := v.(type) {
	case *types.AttributeValueMemberL:
		c.Value = slices.DeleteFunc(c.Value, func(e types.AttributeValue) bool { return e == tombstone })
		for i, e := range c.Value {
			c.Value[i] = compact(e)
		}
	case *types.AttributeValueMemberM:
		for k, e := range c.Value {
			c.Value[k] = compact(e)
		}
	}
	return v
}

// project returns the parts of it that paths name, nested as in the item; list elements
// keep their order and close up, as DynamoDB returns them.
func project(it item, paths []docPath) item {
	root := &projection{}
	for _, p := range paths {
		n := root
		for _, e := range p {
			n = n.child(e)
		}
		n.all = true
	}
	v := root.apply(&types.AttributeValueMemberM{Value: it})
	if v == nil {
		return nil
	}
	return v.(*types.AttributeValueMemberM).Value
}

type projection struct {
	all     bool
	names   map[string]*projection
	indexes map[int]*projection
}

func (n *projection) child(e pathElem) *projection {
	if e.isIndex {
		if n.indexes == nil {
			n.indexes = map[int]*projection{}
		}
		if n.indexes[e.index] == nil {
			n.indexes[e.index] = &projection{}
		}
		return n.indexes[e.index]
	}
	if n.names == nil {
		n.names = map[string]*projection{}
	}
	if n.names[e.name] == nil {
		n.names[e.name] = &projection{}
	}
	return n.names[e.name]
}

func (n *projection) apply(v types.AttributeValue) types.AttributeValue {
	if n.all {
		return clone(v)
	}
	switch c := v.(type) {
	case *types.AttributeValueMemberM:
		out := item{}
		for name, sub := range n.names {
			if e, ok := c.Value[name]; ok {
				if pv := sub.apply(e); pv != nil {
					out[name] = pv
				}
			}
		}
		if len(out) == 0 {
			return nil
		}
		return &types.AttributeValueMemberM{Value: out}
	case *types.AttributeValueMemberL:
		var out []types.AttributeValue
		for _, i := range slices.Sorted(maps.Keys(n.indexes)) {
			if i < len(c.Value) {
				if pv := n.indexes[i].apply(c.Value[i]); pv != nil {
					out = append(out, pv)
				}
			}
		}
		if len(out) == 0 {
			return nil
		}
		return &types.AttributeValueMemberL{Value: out}
	}
	return nil
}
