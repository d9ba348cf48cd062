package dynamotest

import (
	"cmp"
	"encoding/json"
	"maps"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// request is what the server reads of an operation's input. Pointers and nil maps tell
// an absent member from an empty one, which DynamoDB refuses differently.
type request struct {
	TableName                                         *string
	Key, Item                                         map[string]json.RawMessage
	ConditionExpression, UpdateExpression             *string
	ExpressionAttributeNames                          map[string]string
	ExpressionAttributeValues                         map[string]json.RawMessage
	ReturnValues, ReturnValuesOnConditionCheckFailure *string
}

// parameters are the operations the server answers and the members each takes (GetItem's
// reads are all consistent); any other member is refused.
var parameters = map[string][]string{
	"PutItem":    strings.Fields("TableName Item" + writes),
	"UpdateItem": strings.Fields("TableName Key UpdateExpression" + writes),
	"DeleteItem": strings.Fields("TableName Key" + writes),
	"GetItem":    strings.Fields("TableName Key ConsistentRead ExpressionAttributeNames"),
}

const writes = " ConditionExpression ExpressionAttributeNames ExpressionAttributeValues ReturnValues ReturnValuesOnConditionCheckFailure"

func decodeRequest(op string, body []byte) (*request, *apiError) {
	var members map[string]json.RawMessage
	var req request
	if json.Unmarshal(body, &members) != nil || json.Unmarshal(body, &req) != nil {
		return nil, errSerialization
	}
	for _, k := range slices.Sorted(maps.Keys(members)) {
		if string(members[k]) != "null" && !slices.Contains(parameters[op], k) {
			return nil, validation(notModelled("the parameter " + k + " of " + op))
		}
	}
	return &req, nil
}

// handle answers one of the four operations, in DynamoDB's order of checks as far as it
// shows: the parameters, the expressions, the table, the key, then the condition.
func (s *Server) handle(op string, req *request) (any, *apiError) {
	if v := req.ReturnValues; v != nil && *v != "NONE" {
		return nil, validation(notModelled("ReturnValues " + *v))
	}
	if v := req.ReturnValuesOnConditionCheckFailure; v != nil && *v != "ALL_OLD" && *v != "NONE" {
		return nil, validation("1 validation error detected: Value '" + *v +
			"' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]")
	}
	condition, sets, err := parseExpressions(req)
	if err != nil {
		return nil, err
	}
	t := s.tables[aws.ToString(req.TableName)] // the SDK refuses to send a request without one
	if t == nil {
		return nil, &apiError{status: 400, code: "ResourceNotFoundException", msg: "Requested resource not found"}
	}
	var it item
	var k string
	if op == "PutItem" {
		it, k, err = t.itemOf(req.Item)
	} else {
		k, err = t.keyOf(req.Key)
	}
	if err != nil {
		return nil, err
	}
	old := t.items[k]
	switch op {
	case "GetItem":
		if old == nil {
			return struct{}{}, nil
		}
		return map[string]any{"Item": old}, nil
	case "UpdateItem":
		if i := slices.IndexFunc(sets, func(a assign) bool { return a.name == t.key }); i >= 0 {
			return nil, validation("One or more parameter values were invalid: Cannot update attribute " + t.key + ". This attribute is part of the key")
		}
		it = maps.Clone(old)
		if it == nil { // an update of a missing item creates it
			it = item{t.key: {"S", k}}
		}
		for _, a := range sets {
			it[a.name] = a.value
		}
	}
	if itemSize(it) > 400*1024 {
		if op == "PutItem" {
			return nil, validation("Item size has exceeded the maximum allowed size")
		}
		return nil, validation("Item size to update has exceeded the maximum allowed size")
	}
	if condition != nil && !condition(old) {
		e := &apiError{status: 400, code: "ConditionalCheckFailedException", msg: "The conditional request failed"}
		if v := req.ReturnValuesOnConditionCheckFailure; v != nil && *v == "ALL_OLD" && old != nil {
			e.more = map[string]any{"Item": old}
		}
		return nil, e
	}
	if op == "DeleteItem" {
		delete(t.items, k)
	} else {
		t.items[k] = it
	}
	return struct{}{}, nil
}

// parseExpressions parses the request's expressions and checks its placeholders as
// DynamoDB does: none empty, each used one defined, each defined one used.
func parseExpressions(req *request) (condition cond, sets []assign, err *apiError) {
	p := &parser{names: req.ExpressionAttributeNames, values: item{}, used: map[string]bool{}}
	noExpression := req.ConditionExpression == nil && req.UpdateExpression == nil
	switch names, values := req.ExpressionAttributeNames, req.ExpressionAttributeValues; {
	case names != nil && len(names) == 0:
		return nil, nil, validation("ExpressionAttributeNames must not be empty")
	case values != nil && len(values) == 0:
		return nil, nil, validation("ExpressionAttributeValues must not be empty")
	case names != nil && noExpression:
		return nil, nil, validation("ExpressionAttributeNames can only be specified when using expressions")
	case values != nil && noExpression:
		return nil, nil, validation("ExpressionAttributeValues can only be specified when using expressions")
	}
	for _, k := range slices.Sorted(maps.Keys(req.ExpressionAttributeValues)) {
		v, err := decodeValue(req.ExpressionAttributeValues[k])
		if err != nil && err.code == "ValidationException" {
			err = validation("ExpressionAttributeValues contains invalid value: " + err.msg + " for key " + k)
		}
		if err != nil {
			return nil, nil, err
		}
		p.values[k] = v
	}
	if req.ConditionExpression != nil {
		if err := p.parse("ConditionExpression", *req.ConditionExpression, func() { condition = p.condition() }); err != nil {
			return nil, nil, err
		}
	}
	if req.UpdateExpression != nil {
		if err := p.parse("UpdateExpression", *req.UpdateExpression, func() { sets = p.update() }); err != nil {
			return nil, nil, err
		}
	}
	return condition, sets, p.unused()
}

// itemOf reads a PutItem's Item, which must hold the key, a String.
func (t *table) itemOf(raw map[string]json.RawMessage) (item, string, *apiError) {
	it, err := decodeItem(raw)
	switch key, ok := it[t.key]; {
	case err != nil:
		return nil, "", err
	case !ok:
		return nil, "", validation("One or more parameter values were invalid: Missing the key " + t.key + " in the item")
	case key.typ != "S":
		return nil, "", validation("One or more parameter values were invalid: Type mismatch for key " + t.key + " expected: S actual: " + key.typ)
	}
	return it, it[t.key].text, t.checkKey(it[t.key].text)
}

// keyOf reads a Key: exactly the table's key attribute, a String.
func (t *table) keyOf(raw map[string]json.RawMessage) (string, *apiError) {
	key, err := decodeItem(raw)
	if err != nil {
		return "", err
	}
	if v := key[t.key]; v.typ == "S" && len(key) == 1 {
		return v.text, t.checkKey(v.text)
	}
	return "", validation("The provided key element does not match the schema")
}

func (t *table) checkKey(v string) *apiError {
	switch {
	case v == "":
		return validation("One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: " + t.key)
	case len(v) > 2048: // sic: no space before the number in DynamoDB's message
		return validation("One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes")
	}
	return nil
}

// value is an attribute value: its type, S or N, and its text (a number's canonical form).
type value struct{ typ, text string }

// MarshalJSON writes the value as DynamoDB does: {"S":"x"}.
func (v value) MarshalJSON() ([]byte, error) { return json.Marshal(map[string]string{v.typ: v.text}) }

// item is an item, a Key or the ExpressionAttributeValues, by attribute name.
type item = map[string]value

func decodeItem(raw map[string]json.RawMessage) (item, *apiError) {
	it := make(item, len(raw))
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		v, err := decodeValue(raw[name])
		if err != nil {
			return nil, err
		}
		it[name] = v
	}
	return it, nil
}

// decodeValue reads one AttributeValue: exactly one type (a null member is absent, as in
// AWS's JSON protocols), S or N.
func decodeValue(raw json.RawMessage) (v value, err *apiError) {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return v, errSerialization
	}
	n := 0
	for k, m := range members {
		if string(m) != "null" && slices.Contains([]string{"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}, k) {
			v.typ, n = k, n+1
		}
	}
	switch {
	case n == 0:
		return v, validation("Supplied AttributeValue is empty, must contain exactly one of the supported datatypes")
	case n > 1:
		return v, validation("Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes")
	case v.typ != "S" && v.typ != "N":
		return v, validation(notModelled("attribute values of type " + v.typ))
	case json.Unmarshal(members[v.typ], &v.text) != nil:
		return v, errSerialization
	case v.typ == "N":
		v.text, err = number(v.text)
	}
	return v, err
}

var (
	numberSyntax = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,4})?$`) // Java's BigDecimal's, exponents short
	maxNumber    = rat("1e126")
	minNumber    = rat("1e-130")
)

// number reads a DynamoDB number, refuses what DynamoDB cannot store (more than 38
// significant digits, a magnitude outside 1E-130 to 1E126) and answers DynamoDB's
// canonical form: plain notation, no superfluous zeros.
func number(s string) (string, *apiError) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil && strconv.FormatInt(i, 10) == s {
		return s, nil // already canonical, as the ledger's numbers are
	} else if !numberSyntax.MatchString(s) {
		return "", validation("The parameter cannot be converted to a numeric value: " + s)
	}
	r := rat(s)
	abs := new(big.Rat).Abs(r)
	switch {
	case significant(s) > 38:
		return "", validation("Attempting to store more than 38 significant digits in a Number")
	case abs.Cmp(maxNumber) >= 0:
		return "", validation("Number overflow. Attempting to store a number with magnitude larger than supported range")
	case r.Sign() != 0 && abs.Cmp(minNumber) < 0:
		return "", validation("Number underflow. Attempting to store a number with magnitude smaller than supported range")
	case r.IsInt():
		return r.Num().String(), nil
	}
	return strings.TrimRight(r.FloatString(170), "0"), nil // 170 > 130 + 38 places: exact
}

// significant counts a number's significant digits: its mantissa's, less leading and
// trailing zeros.
func significant(s string) int {
	mantissa, _, _ := strings.Cut(strings.ToLower(strings.TrimLeft(s, "+-")), "e")
	return len(strings.Trim(strings.Replace(mantissa, ".", "", 1), "0"))
}

func rat(s string) *big.Rat {
	r, _ := new(big.Rat).SetString(s)
	return r
}

// compare orders two values of one type, strings by their bytes and numbers by value;
// ok is false for values of different types.
func compare(a, b value) (c int, ok bool) {
	switch {
	case a.typ != b.typ || a.typ == "": // a missing attribute has no type
		return 0, false
	case a.typ == "S":
		return strings.Compare(a.text, b.text), true
	}
	x, errX := strconv.ParseInt(a.text, 10, 64)
	y, errY := strconv.ParseInt(b.text, 10, 64)
	if errX == nil && errY == nil {
		return cmp.Compare(x, y), true
	}
	return rat(a.text).Cmp(rat(b.text)), true
}

// itemSize is an item's size as DynamoDB counts it against the 400 KB limit: names and
// strings in UTF-8, a number one byte per two significant digits and one more.
func itemSize(it item) int {
	n := 0
	for k, v := range it {
		size := len(v.text)
		if v.typ == "N" {
			size = (significant(v.text)+1)/2 + 1
		}
		n += len(k) + size
	}
	return n
}
