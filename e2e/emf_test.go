package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// The CloudWatch Embedded Metric Format, read from its specification
// (docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html)
// and checked here without the code that writes it.

// emfUnits are the units a MetricDefinition may name.
var emfUnits = []string{
	"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
	"Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
	"Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
	"Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}

const (
	emfMaxMetrics    = 100 // MetricDefinitions in one directive
	emfMaxDimensions = 30  // keys in one DimensionSet
	emfMaxValues     = 100 // values in one metric's array
)

// checkEMF reads one log line as an EMF record. emf says whether the line claims to
// be one (it has "_aws"); problems lists every rule it breaks.
func checkEMF(line string) (emf bool, problems []string) {
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	root, dup, err := decodeObject(line)
	if err != nil {
		return strings.Contains(line, `"_aws"`), []string{"not one JSON object: " + err.Error()}
	}
	aws, ok := root["_aws"]
	if !ok {
		return false, nil
	}
	if dup != "" {
		bad("member %q appears twice", dup)
	}
	meta, ok := aws.(map[string]any)
	if !ok {
		return true, []string{"_aws is not an object"}
	}
	for k := range meta {
		if k != "Timestamp" && k != "CloudWatchMetrics" && k != "LogGroupName" {
			bad("_aws has the member %q, which the specification does not define", k)
		}
	}
	// Timestamp: a number of milliseconds since the epoch. Seconds would be ~1.7e9,
	// so "within a day of now, in milliseconds" tells them apart.
	ts, ok := meta["Timestamp"].(float64)
	if !ok || ts != math.Trunc(ts) || math.Abs(ts-float64(time.Now().UnixMilli())) > float64(24*time.Hour/time.Millisecond) {
		bad("_aws.Timestamp = %v, want an integer number of epoch milliseconds near now", meta["Timestamp"])
	}
	directives, ok := meta["CloudWatchMetrics"].([]any)
	if !ok || len(directives) == 0 {
		return true, append(problems, "_aws.CloudWatchMetrics is not a non-empty array")
	}
	for i, d := range directives {
		dir, ok := d.(map[string]any)
		if !ok {
			bad("directive %d is not an object", i)
			continue
		}
		for k := range dir {
			if k != "Namespace" && k != "Dimensions" && k != "Metrics" {
				bad("directive %d has the member %q, which the specification does not define", i, k)
			}
		}
		if ns, ok := dir["Namespace"].(string); !ok || len(ns) == 0 || len(ns) > 255 || strings.HasPrefix(ns, "AWS/") {
			bad("directive %d: Namespace = %v, want a custom namespace of 1 to 255 characters", i, dir["Namespace"])
		}
		sets, ok := dir["Dimensions"].([]any)
		if !ok {
			bad("directive %d: Dimensions is not an array", i)
		}
		for j, s := range sets {
			set, ok := s.([]any)
			if !ok {
				bad("directive %d: dimension set %d is not an array", i, j)
				continue
			}
			if len(set) > emfMaxDimensions {
				bad("directive %d: dimension set %d has %d keys, more than %d", i, j, len(set), emfMaxDimensions)
			}
			for _, k := range set {
				key, ok := k.(string)
				if !ok {
					bad("directive %d: dimension key %v is not a string", i, k)
					continue
				}
				v, ok := root[key].(string)
				if !ok || strings.TrimSpace(v) == "" || len(v) > 1024 || !ascii(v) {
					bad("dimension %q: member = %#v, want a non-blank ASCII string of at most 1024", key, root[key])
				}
			}
		}
		defs, ok := dir["Metrics"].([]any)
		if !ok || len(defs) == 0 {
			bad("directive %d: Metrics is not a non-empty array", i)
		}
		if len(defs) > emfMaxMetrics {
			bad("directive %d: %d metrics, more than %d", i, len(defs), emfMaxMetrics)
		}
		for _, m := range defs {
			def, ok := m.(map[string]any)
			if !ok {
				bad("directive %d: metric definition %v is not an object", i, m)
				continue
			}
			for k := range def {
				if k != "Name" && k != "Unit" && k != "StorageResolution" {
					bad("metric definition %v has the member %q", def, k)
				}
			}
			name, ok := def["Name"].(string)
			if !ok || name == "" || len(name) > 255 {
				bad("metric definition %v: Name is not a string of 1 to 255 characters", def)
				continue
			}
			if u, has := def["Unit"]; has && !slices.Contains(emfUnits, fmt.Sprint(u)) {
				bad("metric %s: Unit %v is not one CloudWatch allows", name, u)
			}
			if r, has := def["StorageResolution"]; has && r != 1.0 && r != 60.0 {
				bad("metric %s: StorageResolution %v, want 1 or 60", name, r)
			}
			switch v := root[name].(type) {
			case float64:
			case []any:
				if len(v) == 0 || len(v) > emfMaxValues {
					bad("metric %s: %d values, want 1 to %d", name, len(v), emfMaxValues)
				}
				for _, x := range v {
					if _, ok := x.(float64); !ok {
						bad("metric %s: value %v is not a number", name, x)
					}
				}
			default:
				bad("metric %s: member = %#v, want a number or an array of numbers", name, root[name])
			}
		}
	}
	return true, problems
}

// decodeObject decodes one JSON object with nothing after it, and names a
// top-level member that appears twice (encoding/json would keep the last quietly).
func decodeObject(line string) (root map[string]any, dup string, err error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, "", fmt.Errorf("does not start with an object")
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, "", err
		}
		key, _ := t.(string)
		if seen[key] && dup == "" {
			dup = key
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, "", err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, "", err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "", fmt.Errorf("data after the object")
	}
	return root, dup, json.Unmarshal([]byte(line), &root)
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// auditEMF checks every JSON line a function wrote: a line with a request id is an
// invocation's line and must be an EMF record; any line that claims to be one must
// follow the specification.
func auditEMF(line string) (records int, problems []string) {
	if !strings.HasPrefix(line, "{") {
		return 0, nil // the emulator's own lines, aws-lambda-go's plain-text error line
	}
	emf, problems := checkEMF(line)
	if !emf && strings.Contains(line, `"requestId"`) {
		problems = append(problems, "an invocation's line without _aws")
	}
	if emf {
		records = 1
	}
	return records, problems
}

// The relay's outcome metrics: each invocation's line counts exactly one.
var outcomes = []string{"Forwarded", "Refused", "Failed"}

// wantOutcome asserts that an invocation's line counts one metric (Forwarded,
// Refused or Failed) and none of the others; that its class dimension (Reason or
// Cause) is one of classes; and, when Azure was called, its attempts and latency.
func wantOutcome(t *testing.T, line map[string]any, metric, dimension string, classes ...string) {
	t.Helper()
	if line == nil {
		return
	}
	if line["Function"] != "relay" || line[metric] != 1.0 {
		t.Errorf("log line %v: want Function relay and %s 1", line, metric)
	}
	for _, other := range outcomes {
		if other != metric && line[other] != nil {
			t.Errorf("log line %v: counts %s besides %s", line, other, metric)
		}
	}
	if dimension != "" && !slices.Contains(classes, fmt.Sprint(line[dimension])) {
		t.Errorf("log line %v: %s = %v, want one of %q", line, dimension, line[dimension], classes)
	}
	if line["attempts"] != line["Attempts"] {
		t.Errorf("log line %v: Attempts %v, want the attempts made (%v)", line, line["Attempts"], line["attempts"])
	}
	latency, ok := line["AzureLatency"].(float64)
	if (line["attempts"] != nil) != ok || latency < 0 {
		t.Errorf("log line %v: AzureLatency %v, want a duration exactly when Azure was called", line, line["AzureLatency"])
	}
}

// TestCheckEMF proves the validator refuses what the specification refuses, so
// that a clean EMF audit means something. It needs no emulator.
func TestCheckEMF(t *testing.T) {
	ms := strconvMillis(time.Now())
	valid := `{"_aws":{"Timestamp":` + ms + `,"CloudWatchMetrics":[{"Namespace":"PortAzureRelay","Dimensions":[["Function"],["Function","Reason"]],"Metrics":[{"Name":"Refused","Unit":"Count"}]}]},"Function":"relay","Reason":"signature","Refused":1,"requestId":"r"}`
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf(`{"Name":"M%d"}`, i)
	}
	keys := make([]string, 31)
	for i := range keys {
		keys[i] = `"Function"`
	}
	cases := []struct {
		name  string
		line  string
		emf   bool
		wrong string // a word of the problem; "" for a valid record
	}{
		{"the specification's shape is valid", valid, true, ""},
		{"values as an array of numbers are valid", strings.Replace(valid, `"Refused":1`, `"Refused":[1,2]`, 1), true, ""},
		{"a plain line is not a record", `{"level":"INFO","msg":"SIGTERM"}`, false, ""},
		{"an invocation's line without _aws", `{"level":"INFO","requestId":"r"}`, false, "without _aws"},
		{"a timestamp in seconds", strings.Replace(valid, ms, ms[:len(ms)-3], 1), true, "Timestamp"},
		{"a timestamp as a string", strings.Replace(valid, ms, `"`+ms+`"`, 1), true, "Timestamp"},
		{"a dimension that is a number", strings.Replace(valid, `"Reason":"signature"`, `"Reason":401`, 1), true, "dimension \"Reason\""},
		{"a dimension that is missing", strings.Replace(valid, `"Reason":"signature",`, ``, 1), true, "dimension \"Reason\""},
		{"a metric that is a string", strings.Replace(valid, `"Refused":1`, `"Refused":"1"`, 1), true, "metric Refused"},
		{"a metric that is missing", strings.Replace(valid, `,"Refused":1`, ``, 1), true, "metric Refused"},
		{"a unit CloudWatch does not know", strings.Replace(valid, `"Count"`, `"Requests"`, 1), true, "Unit"},
		{"a unit in the wrong case", strings.Replace(valid, `"Count"`, `"count"`, 1), true, "Unit"},
		{"101 metrics in one directive", strings.Replace(valid, `{"Name":"Refused","Unit":"Count"}`, strings.Join(many, ","), 1), true, "more than 100"},
		{"31 keys in one dimension set", strings.Replace(valid, `["Function"],`, "["+strings.Join(keys, ",")+"],", 1), true, "more than 30"},
		{"a member written twice", strings.Replace(valid, `"Refused":1`, `"Refused":1,"Refused":2`, 1), true, "twice"},
		{"a namespace in AWS/", strings.Replace(valid, `"PortAzureRelay"`, `"AWS/Lambda"`, 1), true, "Namespace"},
		{"a StorageResolution of 5", strings.Replace(valid, `"Unit":"Count"`, `"Unit":"Count","StorageResolution":5`, 1), true, "StorageResolution"},
		{"data after the object", valid + ` {}`, true, "not one JSON object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, problems := auditEMF(c.line)
			emf, _ := checkEMF(c.line)
			if emf != c.emf {
				t.Errorf("checkEMF says record %v, want %v", emf, c.emf)
			}
			got := strings.Join(problems, "; ")
			if (c.wrong == "") != (got == "") || !strings.Contains(got, c.wrong) {
				t.Errorf("problems %q, want one saying %q", got, c.wrong)
			}
		})
	}
}

func strconvMillis(at time.Time) string { return fmt.Sprint(at.UnixMilli()) }
