package dynamotest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// request is every member of the operations' inputs that the server reads. Pointers and
// nil maps tell an absent member from an empty one, which DynamoDB refuses differently.
type request struct {
	TableName                           *string
	Key                                 map[string]json.RawMessage
	Item                                map[string]json.RawMessage
	ConditionExpression                 *string
	UpdateExpression                    *string
	ProjectionExpression                *string
	ExpressionAttributeNames            map[string]string
	ExpressionAttributeValues           map[string]json.RawMessage
	ReturnValues                        *string
	ReturnValuesOnConditionCheckFailure *string
	ConsistentRead                      *bool

	// The legacy parameters, recognized only to be refused.
	Expected            json.RawMessage
	ConditionalOperator json.RawMessage
	AttributeUpdates    json.RawMessage
	AttributesToGet     json.RawMessage
}

// expressions is what a request's expressions say, parsed and checked.
type expressions struct {
	condition  cond // nil: no ConditionExpression, always true
	update     []updateAction
	projection []docPath
}

var placeholderKey = regexp.MustCompile(`^[#:][A-Za-z0-9_]+$`)

// parseExpressions parses the expressions an operation takes (kinds) and checks the
// request's placeholders as DynamoDB does: none empty, each defined and each used.
func parseExpressions(req *request, kinds ...exprKind) (*expressions, *apiError) {
	sources := map[exprKind]*string{
		conditionExpr:  req.ConditionExpression,
		updateExpr:     req.UpdateExpression,
		projectionExpr: req.ProjectionExpression,
	}
	var present []string
	for _, k := range kinds {
		if sources[k] != nil {
			present = append(present, string(k))
		}
	}
	if err := refuseLegacy(req, present); err != nil {
		return nil, err
	}
	for _, param := range []struct {
		name, sigil string
		keys        []string
		set         bool
	}{
		{"ExpressionAttributeNames", "#", mapKeys(req.ExpressionAttributeNames), req.ExpressionAttributeNames != nil},
		{"ExpressionAttributeValues", ":", mapKeys(req.ExpressionAttributeValues), req.ExpressionAttributeValues != nil},
	} {
		switch {
		case param.set && len(param.keys) == 0:
			return nil, validation(param.name + " must not be empty")
		case param.set && len(present) == 0:
			return nil, validation(param.name + " can only be specified when using expressions")
		}
		for _, k := range param.keys {
			if !placeholderKey.MatchString(k) || !strings.HasPrefix(k, param.sigil) {
				return nil, validation(param.name + ` contains invalid key: Syntax error; key: "` + k + `"`)
			}
		}
	}
	values := item{}
	for _, k := range mapKeys(req.ExpressionAttributeValues) {
		v, err := decodeValue(req.ExpressionAttributeValues[k], 0)
		if err != nil {
			if err.code != "ValidationException" {
				return nil, err
			}
			return nil, validation("ExpressionAttributeValues contains invalid value: " + err.msg + " for key " + k)
		}
		values[k] = v
	}
	ph := newPlaceholders(req.ExpressionAttributeNames, values)
	var ex expressions
	var err *apiError
	if src := sources[conditionExpr]; src != nil && slices.Contains(kinds, conditionExpr) {
		if ex.condition, err = parse(conditionExpr, *src, ph, parseCondition); err != nil {
			return nil, err
		}
	}
	if src := sources[updateExpr]; src != nil && slices.Contains(kinds, updateExpr) {
		if ex.update, err = parse(updateExpr, *src, ph, parseUpdate); err != nil {
			return nil, err
		}
	}
	if src := sources[projectionExpr]; src != nil && slices.Contains(kinds, projectionExpr) {
		if ex.projection, err = parse(projectionExpr, *src, ph, parseProjection); err != nil {
			return nil, err
		}
	}
	if err := ph.unused(); err != nil {
		return nil, err
	}
	return &ex, nil
}

// refuseLegacy refuses the pre-expression parameters: mixed with expressions as DynamoDB
// does, alone because this server does not model them (DynamoDB would accept them).
func refuseLegacy(req *request, expressionParams []string) *apiError {
	var legacy []string
	for name, raw := range map[string]json.RawMessage{
		"Expected": req.Expected, "ConditionalOperator": req.ConditionalOperator,
		"AttributeUpdates": req.AttributeUpdates, "AttributesToGet": req.AttributesToGet,
	} {
		if len(raw) > 0 && string(raw) != "null" {
			legacy = append(legacy, name)
		}
	}
	slices.Sort(legacy)
	switch {
	case len(legacy) == 0:
		return nil
	case len(expressionParams) > 0:
		return validation("Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {" +
			strings.Join(legacy, ", ") + "} Expression parameters: {" + strings.Join(expressionParams, ", ") + "}")
	}
	return validation("dynamotest does not model the legacy parameter " + legacy[0] + " (DynamoDB accepts it); use expressions")
}

// lookup finds the request's table by name or ARN.
func (s *Server) lookup(req *request) (*table, *apiError) {
	if req.TableName == nil {
		return nil, validation("1 validation error detected: Value null at 'tableName' failed to satisfy constraint: Member must not be null")
	}
	name := strings.TrimPrefix(*req.TableName, tableARN)
	if !strings.HasPrefix(name, "arn:") {
		prefix := fmt.Sprintf("1 validation error detected: Value '%s' at 'tableName' failed to satisfy constraint: ", name)
		switch {
		case len(name) < 3:
			return nil, validation(prefix + "Member must have length greater than or equal to 3")
		case len(name) > 255:
			return nil, validation(prefix + "Member must have length less than or equal to 255")
		case !tableNamePattern.MatchString(name):
			return nil, validation(prefix + "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
		}
	}
	t := s.tables[name]
	if t == nil {
		return nil, errNotFound
	}
	return t, nil
}

var errKeySchema = validation("The provided key element does not match the schema")

// keyOf reads a Key parameter: exactly the table's key attribute, a non-empty String.
func (t *table) keyOf(raw map[string]json.RawMessage) (string, *apiError) {
	if raw == nil {
		return "", validation("1 validation error detected: Value null at 'key' failed to satisfy constraint: Member must not be null")
	}
	key, err := decodeItem(raw)
	if err != nil {
		return "", err
	}
	v, ok := key[t.key].(*types.AttributeValueMemberS)
	if len(key) != 1 || !ok {
		return "", errKeySchema
	}
	return v.Value, t.checkKeyValue(v.Value)
}

// keyOfItem reads the key from an Item parameter.
func (t *table) keyOfItem(it item) (string, *apiError) {
	v, ok := it[t.key]
	if !ok {
		return "", validation("One or more parameter values were invalid: Missing the key " + t.key + " in the item")
	}
	s, ok := v.(*types.AttributeValueMemberS)
	if !ok {
		return "", validation("One or more parameter values were invalid: Type mismatch for key " + t.key + " expected: S actual: " + typeOf(v))
	}
	return s.Value, t.checkKeyValue(s.Value)
}

func (t *table) checkKeyValue(v string) *apiError {
	switch {
	case v == "":
		return validation("One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: " + t.key)
	case len(v) > maxHashKeyBytes:
		// Sic: no space before the number in DynamoDB's message.
		return validation("One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes")
	}
	return nil
}

// returnValues checks ReturnValues against the values the operation allows.
func returnValues(req *request, allowed ...string) (string, *apiError) {
	if req.ReturnValues == nil {
		return "NONE", nil
	}
	v := *req.ReturnValues
	all := []string{"ALL_NEW", "UPDATED_OLD", "ALL_OLD", "NONE", "UPDATED_NEW"}
	switch {
	case !slices.Contains(all, v):
		return "", validation("1 validation error detected: Value '" + v + "' at 'returnValues' failed to satisfy constraint: Member must satisfy enum value set: [" + strings.Join(all, ", ") + "]")
	case !slices.Contains(allowed, v):
		return "", validation("ReturnValues can only be ALL_OLD or NONE")
	}
	return v, nil
}

// onConditionFailure checks ReturnValuesOnConditionCheckFailure and reports whether the
// old item goes with a failure.
func onConditionFailure(req *request) (bool, *apiError) {
	if req.ReturnValuesOnConditionCheckFailure == nil {
		return false, nil
	}
	switch v := *req.ReturnValuesOnConditionCheckFailure; v {
	case "ALL_OLD":
		return true, nil
	case "NONE":
		return false, nil
	default:
		return false, validation("1 validation error detected: Value '" + v + "' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]")
	}
}

// check evaluates the condition against the current item (nil when there is none):
// false is a ConditionalCheckFailedException, with the old item if it was asked for.
func (ex *expressions) check(old item, withOld bool) *apiError {
	if ex.condition == nil || ex.condition.eval(old) {
		return nil
	}
	e := &apiError{status: 400, code: "ConditionalCheckFailedException", msg: "The conditional request failed"}
	if withOld && old != nil {
		e.item = cloneItem(old)
	}
	return e
}

// attributes is an output with the Attributes member when there are any.
func attributes(it item) map[string]any {
	if len(it) == 0 {
		return map[string]any{}
	}
	return map[string]any{"Attributes": encodeItem(it)}
}

// prepare runs the checks every item operation starts with, in DynamoDB's order as far
// as it shows: the parameters, the expressions, then the table.
func (s *Server) prepare(req *request, kinds ...exprKind) (*table, *expressions, bool, *apiError) {
	withOld, err := onConditionFailure(req)
	if err != nil {
		return nil, nil, false, err
	}
	ex, err := parseExpressions(req, kinds...)
	if err != nil {
		return nil, nil, false, err
	}
	t, err := s.lookup(req)
	return t, ex, withOld, err
}

func (s *Server) putItem(req *request) (any, *apiError) {
	rv, err := returnValues(req, "NONE", "ALL_OLD")
	if err != nil {
		return nil, err
	}
	t, ex, withOld, err := s.prepare(req, conditionExpr)
	if err != nil {
		return nil, err
	}
	if req.Item == nil {
		return nil, validation("1 validation error detected: Value null at 'item' failed to satisfy constraint: Member must not be null")
	}
	it, err := decodeItem(req.Item)
	if err != nil {
		return nil, err
	}
	k, err := t.keyOfItem(it)
	if err != nil {
		return nil, err
	}
	if itemSize(it) > maxItemSize {
		return nil, validation("Item size has exceeded the maximum allowed size")
	}
	old := t.items[k]
	if err := ex.check(old, withOld); err != nil {
		return nil, err
	}
	t.items[k] = it
	if rv == "ALL_OLD" {
		return attributes(old), nil
	}
	return map[string]any{}, nil
}

func (s *Server) getItem(req *request) (any, *apiError) {
	t, ex, _, err := s.prepare(req, projectionExpr)
	if err != nil {
		return nil, err
	}
	k, err := t.keyOf(req.Key)
	if err != nil {
		return nil, err
	}
	it, ok := t.items[k]
	if !ok {
		return map[string]any{}, nil
	}
	if ex.projection != nil {
		it = project(it, ex.projection)
	}
	return map[string]any{"Item": encodeItem(it)}, nil
}

func (s *Server) updateItem(req *request) (any, *apiError) {
	rv, err := returnValues(req, "NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW")
	if err != nil {
		return nil, err
	}
	t, ex, withOld, err := s.prepare(req, conditionExpr, updateExpr)
	if err != nil {
		return nil, err
	}
	k, err := t.keyOf(req.Key)
	if err != nil {
		return nil, err
	}
	for _, a := range ex.update {
		if a.path[0].name == t.key {
			return nil, validation("One or more parameter values were invalid: Cannot update attribute " + t.key + ". This attribute is part of the key")
		}
	}
	old := t.items[k]
	if err := ex.check(old, withOld); err != nil {
		return nil, err
	}
	// An update of a missing item creates it, from its key.
	it := cloneItem(old)
	if it == nil {
		it = item{t.key: &types.AttributeValueMemberS{Value: k}}
	}
	if err := applyUpdate(it, ex.update); err != nil {
		return nil, err
	}
	if itemSize(it) > maxItemSize {
		return nil, validation("Item size to update has exceeded the maximum allowed size")
	}
	t.items[k] = it
	switch rv {
	case "ALL_OLD":
		return attributes(old), nil
	case "ALL_NEW":
		return attributes(it), nil
	case "UPDATED_OLD":
		return attributes(project(old, actionPaths(ex.update))), nil
	case "UPDATED_NEW":
		return attributes(project(it, actionPaths(ex.update))), nil
	}
	return map[string]any{}, nil
}

func (s *Server) deleteItem(req *request) (any, *apiError) {
	rv, err := returnValues(req, "NONE", "ALL_OLD")
	if err != nil {
		return nil, err
	}
	t, ex, withOld, err := s.prepare(req, conditionExpr)
	if err != nil {
		return nil, err
	}
	k, err := t.keyOf(req.Key)
	if err != nil {
		return nil, err
	}
	old := t.items[k]
	if err := ex.check(old, withOld); err != nil {
		return nil, err
	}
	delete(t.items, k)
	if rv == "ALL_OLD" {
		return attributes(old), nil
	}
	return map[string]any{}, nil
}

func (s *Server) describeTable(req *request) (any, *apiError) {
	t, err := s.lookupDescribed(req)
	if err != nil {
		return nil, err
	}
	size := 0
	for _, it := range t.items {
		size += itemSize(it)
	}
	return map[string]any{"Table": map[string]any{
		"TableName":                 t.name,
		"TableArn":                  tableARN + t.name,
		"TableStatus":               "ACTIVE",
		"CreationDateTime":          json.Number(fmt.Sprintf("%.3f", float64(t.created.UnixMilli())/1000)),
		"KeySchema":                 []map[string]string{{"AttributeName": t.key, "KeyType": "HASH"}},
		"AttributeDefinitions":      []map[string]string{{"AttributeName": t.key, "AttributeType": "S"}},
		"BillingModeSummary":        map[string]string{"BillingMode": "PAY_PER_REQUEST"},
		"ProvisionedThroughput":     map[string]int{"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
		"ItemCount":                 len(t.items),
		"TableSizeBytes":            size,
		"DeletionProtectionEnabled": false,
	}}, nil
}

func (s *Server) describeTimeToLive(req *request) (any, *apiError) {
	t, err := s.lookupDescribed(req)
	if err != nil {
		return nil, err
	}
	d := map[string]string{"TimeToLiveStatus": "DISABLED"}
	if t.ttl != "" {
		d = map[string]string{"TimeToLiveStatus": "ENABLED", "AttributeName": t.ttl}
	}
	return map[string]any{"TimeToLiveDescription": d}, nil
}

// lookupDescribed is lookup for the table operations, whose refusal names the table.
func (s *Server) lookupDescribed(req *request) (*table, *apiError) {
	t, err := s.lookup(req)
	if err == errNotFound {
		e := *errNotFound
		e.msg += ": Table: " + *req.TableName + " not found"
		return nil, &e
	}
	return t, err
}
