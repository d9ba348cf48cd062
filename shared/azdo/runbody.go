package azdo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// The keys of Azure's RunPipelineParameters that RunBody passes on. previewRun and
// yamlOverride are left out: a preview queues nothing, and an override is refused
// without one.
const (
	keyTemplateParameters = "templateParameters"
	keyVariables          = "variables"
	keyResources          = "resources"
	keyStagesToSkip       = "stagesToSkip"
)

// RunBody builds the body of "Runs - Run Pipeline" from Port's JSON body, a JSON
// object: it keeps only the run parameters Azure defines (RunPipelineParameters in
// MicrosoftDocs/vsts-rest-api-specs, pipelines 7.1), so that everything else,
// port_context included, stays with the relay. The output is compact, its keys in
// the order templateParameters, variables, resources, stagesToSkip, each object's
// members in the input's order; the same input always gives the same bytes, and
// RunBody of its own output gives it back.
//
//   - templateParameters: an object. Azure takes strings only, so a string is sent
//     as it is and a number, true or false, or an object or array as its compact JSON
//     text (a Port form needs no jq; Azure parses an object parameter's text); a null
//     member is left out, so that the pipeline's default applies.
//   - variables: an object of {value, isSecret} objects (value a string, number or
//     boolean; isSecret a boolean), or of plain strings, numbers and booleans, sent
//     as {"value": "<text>"}; a null member is left out.
//   - resources: an object of repositories ({refName, token, tokenType, version}),
//     pipelines, builds, containers and packages ({version}), those fields strings.
//   - stagesToSkip: an array of strings.
//
// A null key is the key left out. Names that differ only in case (which Azure would
// merge), a key spelled in another case (TemplateParameters), a key twice and any
// other shape are ErrRunBody errors naming the key and the shape expected, never a
// value. With branch set (a full ref, refs/heads/main) and no
// resources.repositories.self.refName in the body, RunBody adds it.
func RunBody(port []byte, branch string) ([]byte, error) {
	if branch != "" && !strings.HasPrefix(branch, "refs/") {
		return nil, bodyError("the branch must be a full ref, such as refs/heads/main")
	}
	top, ok := members(port)
	if !ok {
		return nil, bodyError("the body must be a JSON object")
	}
	known := []string{keyTemplateParameters, keyVariables, keyResources, keyStagesToSkip}
	values := make(map[string]json.RawMessage, len(known))
	for _, m := range top {
		for _, k := range known {
			switch {
			case m.key == k:
				if _, dup := values[k]; dup {
					return nil, bodyError(k + " appears twice")
				}
				values[k] = m.value
			case strings.EqualFold(m.key, k):
				return nil, bodyError("a key " + k + " in another case: spell it " + k)
			}
		}
	}

	var out objectWriter
	for _, step := range []struct {
		key   string
		build func(json.RawMessage) ([]byte, error)
	}{
		{keyTemplateParameters, templateParameters},
		{keyVariables, variables},
		{keyResources, func(raw json.RawMessage) ([]byte, error) { return resources(raw, branch) }},
		{keyStagesToSkip, stagesToSkip},
	} {
		v, err := step.build(values[step.key])
		if err != nil {
			return nil, err
		}
		if v != nil {
			out.add(step.key, v)
		}
	}
	return out.close(), nil
}

func bodyError(msg string) error { return fmt.Errorf("%w: %s", ErrRunBody, msg) }

// safeName reports whether s may appear in an error: [A-Za-z0-9_.-], 1 to 100 bytes.
func safeName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// named names a key in an error when it is plain enough to, and a generic word if not.
func named(key, otherwise string) string {
	if safeName(key) {
		return fmt.Sprintf("%q", key)
	}
	return otherwise
}

// variable names a member of variables in an error.
func variable(key string) string {
	if safeName(key) {
		return fmt.Sprintf("the variable %q", key)
	}
	return "a variable"
}

func templateParameters(raw json.RawMessage) ([]byte, error) {
	if isNull(raw) {
		return nil, nil
	}
	ms, ok := members(raw)
	if !ok {
		return nil, bodyError("templateParameters must be an object of parameter names and values")
	}
	if err := distinct(ms, keyTemplateParameters); err != nil {
		return nil, err
	}
	var out objectWriter
	for _, m := range ms {
		if isNull(m.value) {
			continue
		}
		out.add(m.key, asString(m.value))
	}
	return out.close(), nil
}

func variables(raw json.RawMessage) ([]byte, error) {
	if isNull(raw) {
		return nil, nil
	}
	ms, ok := members(raw)
	if !ok {
		return nil, bodyError("variables must be an object of variable names and values")
	}
	if err := distinct(ms, keyVariables); err != nil {
		return nil, err
	}
	var out objectWriter
	for _, m := range ms {
		switch kind(m.value) {
		case 'n':
			continue
		case '"', '0', 't':
			var v objectWriter
			v.add("value", asString(m.value))
			out.add(m.key, v.close())
			continue
		case '[':
			return nil, bodyError(variable(m.key) + " must be a string, a number, a boolean or {value, isSecret}")
		}
		fields, _ := members(m.value)
		var value, secret json.RawMessage
		for _, f := range fields {
			switch {
			case strings.EqualFold(f.key, "value") && value == nil:
				value = f.value
			case strings.EqualFold(f.key, "isSecret") && secret == nil:
				secret = f.value
			default:
				return nil, bodyError(variable(m.key) + " takes only value and isSecret, once each")
			}
		}
		if k := kind(value); k != '"' && k != '0' && k != 't' {
			return nil, bodyError(variable(m.key) + " needs a value that is a string, a number or a boolean")
		}
		if k := kind(secret); secret != nil && k != 't' && k != 'n' {
			return nil, bodyError("isSecret of " + variable(m.key) + " must be true or false")
		}
		var v objectWriter
		v.add("value", asString(value))
		if kind(secret) == 't' {
			v.add("isSecret", secret)
		}
		out.add(m.key, v.close())
	}
	return out.close(), nil
}

// resourceFields are the fields of each kind of resource in RunResourcesParameters.
var resourceFields = []struct {
	kind   string
	fields []string
}{
	{"repositories", []string{"refName", "token", "tokenType", "version"}},
	{"pipelines", []string{"version"}},
	{"builds", []string{"version"}},
	{"containers", []string{"version"}},
	{"packages", []string{"version"}},
}

func resources(raw json.RawMessage, branch string) ([]byte, error) {
	var kinds []member
	if !isNull(raw) {
		var ok bool
		if kinds, ok = members(raw); !ok {
			return nil, bodyError("resources must be an object")
		}
	}
	if err := distinct(kinds, keyResources); err != nil {
		return nil, err
	}
	var out objectWriter
	selfRef := false // the body names resources.repositories.self.refName
	for _, k := range kinds {
		i := indexFold(k.key)
		if i < 0 {
			return nil, bodyError("resources takes only repositories, pipelines, builds, containers and packages")
		}
		spec := resourceFields[i]
		if isNull(k.value) {
			continue
		}
		items, ok := members(k.value)
		if !ok {
			return nil, bodyError("resources." + spec.kind + " must be an object of resource names and their fields")
		}
		if err := distinct(items, "resources."+spec.kind); err != nil {
			return nil, err
		}
		var list objectWriter
		for _, item := range items {
			if isNull(item.value) {
				continue
			}
			fields, ok := members(item.value)
			if !ok {
				return nil, bodyError("each of resources." + spec.kind + " must be an object of " + strings.Join(spec.fields, ", "))
			}
			got := make(map[string]json.RawMessage, len(fields))
			for _, f := range fields {
				field := ""
				for _, name := range spec.fields {
					if strings.EqualFold(f.key, name) {
						field = name
					}
				}
				if _, dup := got[field]; field == "" || dup {
					return nil, bodyError("each of resources." + spec.kind + " takes only " + strings.Join(spec.fields, ", ") + ", once each")
				}
				if k := kind(f.value); k != '"' && k != 'n' {
					return nil, bodyError("resources." + spec.kind + " fields must be strings")
				}
				got[field] = f.value
				if kind(f.value) == '"' {
					got[field] = validString(f.value)
				}
			}
			isSelf := spec.kind == "repositories" && strings.EqualFold(item.key, "self")
			if isSelf && branch != "" && (got["refName"] == nil || isNull(got["refName"])) {
				got["refName"] = encodeString(branch)
			}
			if isSelf && got["refName"] != nil && !isNull(got["refName"]) {
				selfRef = true
			}
			var fw objectWriter
			for _, name := range spec.fields {
				if v := got[name]; v != nil && !isNull(v) {
					fw.add(name, v)
				}
			}
			list.add(item.key, fw.close())
		}
		if spec.kind == "repositories" && branch != "" && !selfRef {
			list.add("self", []byte(`{"refName":`+string(encodeString(branch))+`}`))
			selfRef = true
		}
		out.add(spec.kind, list.close())
	}
	if branch != "" && !selfRef {
		var out2 objectWriter
		out2.add("repositories", []byte(`{"self":{"refName":`+string(encodeString(branch))+`}}`))
		for _, m := range out.members {
			out2.add(m.key, m.value)
		}
		out = out2
	}
	if len(kinds) == 0 && out.members == nil {
		return nil, nil
	}
	return out.close(), nil
}

func indexFold(kind string) int {
	for i, r := range resourceFields {
		if strings.EqualFold(kind, r.kind) {
			return i
		}
	}
	return -1
}

func stagesToSkip(raw json.RawMessage) ([]byte, error) {
	if isNull(raw) {
		return nil, nil
	}
	const shape = "stagesToSkip must be an array of stage names (strings)"
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, bodyError(shape)
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for dec.More() {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil || kind(v) != '"' {
			return nil, bodyError(shape)
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.Write(validString(v))
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// distinct refuses an object whose names differ only in case: Azure's dictionaries
// ignore case and would keep only one of them.
func distinct(ms []member, where string) error {
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		k := strings.ToLower(m.key)
		if seen[k] {
			return bodyError(where + " names " + named(m.key, "a member") + " twice (names are compared in any case)")
		}
		seen[k] = true
	}
	return nil
}

// member is a member of a JSON object: its name and its value's bytes.
type member struct {
	key   string
	value json.RawMessage
}

// members returns the members of the JSON object raw, in order, or false if raw is
// not one JSON object.
func members(raw []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		ms = append(ms, member{key: key, value: v})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return ms, true
}

// kind is the first byte of a JSON value, numbers as '0' and booleans as 't'; 0 for none.
func kind(v json.RawMessage) byte {
	if len(v) == 0 {
		return 0
	}
	switch c := v[0]; c {
	case '"', '{', '[', 'n':
		return c
	case 't', 'f':
		return 't'
	default:
		return '0'
	}
}

func isNull(v json.RawMessage) bool { return len(v) == 0 || kind(v) == 'n' }

// asString returns v as a JSON string: a string as it is, any other value as the
// string of its compact JSON text.
func asString(v json.RawMessage) []byte {
	switch kind(v) {
	case '"':
		return validString(v)
	case '0', 't':
		return []byte(`"` + string(v) + `"`) // digits, signs, dots, e: nothing to escape
	default:
		var b bytes.Buffer
		if json.Compact(&b, v) != nil {
			return encodeString(string(v))
		}
		return encodeString(b.String())
	}
}

// validString returns the JSON string v as it is, or, if it holds bytes that are
// not UTF-8, as encoding/json reads it (each such byte U+FFFD), so that Azure never
// gets invalid UTF-8.
func validString(v json.RawMessage) []byte {
	if utf8.Valid(v) {
		return v
	}
	var s string
	_ = json.Unmarshal(v, &s)
	return encodeString(s)
}

// encodeString is s as a JSON string, <, > and & left as they are.
func encodeString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// objectWriter writes a compact JSON object, members in the order added.
type objectWriter struct {
	members []member
}

func (w *objectWriter) add(key string, value []byte) {
	w.members = append(w.members, member{key: key, value: value})
}

func (w *objectWriter) close() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range w.members {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(encodeString(m.key))
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}
