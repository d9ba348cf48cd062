package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/metrics"
)

var at = time.Date(2025, 11, 27, 0, 0, 0, 0, time.UTC)

// line logs msg with attrs through the JSON handler the functions use and returns
// the line decoded.
func line(t *testing.T, attrs []slog.Attr) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).LogAttrs(t.Context(), slog.LevelInfo, "forwarded", attrs...)
	if strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("want one line, got %q", buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("line %s: %v", buf.String(), err)
	}
	return m
}

func emitter() *metrics.Emitter {
	e := metrics.New("PortAzureRelay", metrics.FunctionRelay)
	e.Now = func() time.Time { return at }
	return e
}

func TestAppend(t *testing.T) {
	latency := metrics.Value{Name: metrics.AzureLatency, Unit: metrics.Milliseconds, Value: 12.5}
	attempts := metrics.Value{Name: metrics.Attempts, Unit: metrics.Count, Value: 2}
	tests := []struct {
		name    string
		groups  []metrics.Group
		members map[string]any // the top-level members the EMF record adds
		dims    [][][]string   // each directive's dimension sets
		metrics [][]string     // each directive's "Name/Unit"
	}{
		{"a count by Function alone",
			[]metrics.Group{{Values: []metrics.Value{metrics.One(metrics.Forwarded)}}},
			map[string]any{"Function": "relay", "Forwarded": 1.0},
			[][][]string{{{"Function"}}},
			[][]string{{"Forwarded/Count"}}},
		{"a count with a class is published by Function and by Function and class",
			[]metrics.Group{{Key: metrics.Reason, Class: "signature", Values: []metrics.Value{metrics.One(metrics.Refused)}}},
			map[string]any{"Function": "relay", "Reason": "signature", "Refused": 1.0},
			[][][]string{{{"Function"}, {"Function", "Reason"}}},
			[][]string{{"Refused/Count"}}},
		{"a key without a class falls back to Function alone",
			[]metrics.Group{{Key: metrics.Cause, Values: []metrics.Value{metrics.One(metrics.Failed)}}},
			map[string]any{"Function": "relay", "Failed": 1.0},
			[][][]string{{{"Function"}}},
			[][]string{{"Failed/Count"}}},
		{"two groups make two directives; fractions stay fractions",
			[]metrics.Group{
				{Key: metrics.Cause, Class: "timeout", Values: []metrics.Value{metrics.One(metrics.Failed)}},
				{Values: []metrics.Value{latency, attempts}},
			},
			map[string]any{"Function": "relay", "Cause": "timeout", "Failed": 1.0, "AzureLatency": 12.5, "Attempts": 2.0},
			[][][]string{{{"Function"}, {"Function", "Cause"}}, {{"Function"}}},
			[][]string{{"Failed/Count"}, {"AzureLatency/Milliseconds", "Attempts/Count"}}},
		{"groups by Function alone share one directive",
			[]metrics.Group{{Values: []metrics.Value{metrics.One(metrics.Forwarded)}}, {Values: []metrics.Value{latency, attempts}}},
			map[string]any{"Function": "relay", "Forwarded": 1.0, "AzureLatency": 12.5, "Attempts": 2.0},
			[][][]string{{{"Function"}}},
			[][]string{{"Forwarded/Count", "AzureLatency/Milliseconds", "Attempts/Count"}}},
		{"a name given twice is written once",
			[]metrics.Group{{Key: metrics.Cause, Class: "x", Values: []metrics.Value{attempts}}, {Values: []metrics.Value{attempts}}},
			map[string]any{"Function": "relay", "Cause": "x", "Attempts": 2.0},
			[][][]string{{{"Function"}, {"Function", "Cause"}}, {{"Function"}}},
			[][]string{{"Attempts/Count"}, {"Attempts/Count"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := []slog.Attr{slog.String("requestId", "r-1")}
			m := line(t, emitter().Append(before, tt.groups...))
			aws, _ := m["_aws"].(map[string]any)
			if aws["Timestamp"] != float64(at.UnixMilli()) {
				t.Errorf("_aws.Timestamp = %v, want %d", aws["Timestamp"], at.UnixMilli())
			}
			var dims [][][]string
			var names [][]string
			for _, d := range aws["CloudWatchMetrics"].([]any) {
				d := d.(map[string]any)
				if d["Namespace"] != "PortAzureRelay" {
					t.Errorf("Namespace = %v", d["Namespace"])
				}
				var sets [][]string
				for _, set := range d["Dimensions"].([]any) {
					var keys []string
					for _, k := range set.([]any) {
						keys = append(keys, k.(string))
					}
					sets = append(sets, keys)
				}
				dims = append(dims, sets)
				var ns []string
				for _, md := range d["Metrics"].([]any) {
					md := md.(map[string]any)
					ns = append(ns, md["Name"].(string)+"/"+md["Unit"].(string))
				}
				names = append(names, ns)
			}
			if !reflect.DeepEqual(dims, tt.dims) {
				t.Errorf("dimension sets = %v, want %v", dims, tt.dims)
			}
			if !reflect.DeepEqual(names, tt.metrics) {
				t.Errorf("metrics = %v, want %v", names, tt.metrics)
			}
			for k, v := range tt.members {
				if m[k] != v {
					t.Errorf("member %s = %v, want %v", k, m[k], v)
				}
			}
			for k := range m {
				if _, ok := tt.members[k]; !ok && !slicesContains([]string{"time", "level", "msg", "requestId", "_aws"}, k) {
					t.Errorf("unexpected member %s = %v", k, m[k])
				}
			}
		})
	}
}

func TestNilEmitterAndNoGroupsWriteNothing(t *testing.T) {
	var nilEmitter *metrics.Emitter
	attrs := []slog.Attr{slog.String("requestId", "r-1")}
	if got := nilEmitter.Append(attrs, metrics.Group{Values: []metrics.Value{metrics.One(metrics.Forwarded)}}); len(got) != 1 {
		t.Errorf("nil Emitter appended %v", got[1:])
	}
	if got := emitter().Append(attrs); len(got) != 1 {
		t.Errorf("Append without groups appended %v", got[1:])
	}
}

// A namespace with characters JSON escapes still makes a valid line, although the
// configuration never lets one through.
func TestNamespaceIsQuotedAsJSON(t *testing.T) {
	e := metrics.New(`odd"name\`, metrics.FunctionStatus)
	m := line(t, e.Count(metrics.RunsUpdated, metrics.Outcome, "success"))
	d := m["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
	if d["Namespace"] != `odd"name\` {
		t.Errorf("Namespace = %v", d["Namespace"])
	}
}

func TestValidNamespace(t *testing.T) {
	tests := []struct {
		ns   string
		want bool
	}{
		{"PortAzureRelay", true},
		{"PortAzureRelay/roundtrip", true},
		{"Company.Ops/port-relay_2#eu:1", true},
		{strings.Repeat("a", 255), true},
		{"", false},
		{strings.Repeat("a", 256), false},
		{"AWS/Lambda", false},
		{":leading-colon", false},
		{"/leading-slash", false},
		{"with space", false},
		{`quote"`, false},
		{"é", false},
	}
	for _, tt := range tests {
		if got := metrics.ValidNamespace(tt.ns); got != tt.want {
			t.Errorf("ValidNamespace(%q) = %v, want %v", tt.ns, got, tt.want)
		}
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// The status function records an updated run in one call.
func ExampleEmitter_Count() {
	m := metrics.New("PortAzureRelay", metrics.FunctionStatus)
	m.Now = func() time.Time { return time.UnixMilli(1764201600000) }
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { // drop the time, for a stable output
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	attrs := append([]slog.Attr{slog.String("runId", "r_QvJ5Nn2m8xV3aT1k")}, m.Count(metrics.RunsUpdated, metrics.Outcome, "success")...)
	log.LogAttrs(context.Background(), slog.LevelInfo, "run updated", attrs...)
	// Output:
	// {"level":"INFO","msg":"run updated","runId":"r_QvJ5Nn2m8xV3aT1k","_aws":{"Timestamp":1764201600000,"CloudWatchMetrics":[{"Namespace":"PortAzureRelay","Dimensions":[["Function"],["Function","Outcome"]],"Metrics":[{"Name":"RunsUpdated","Unit":"Count"}]}]},"Function":"status","Outcome":"success","RunsUpdated":1}
}

// BenchmarkAppend measures a forwarded line of the relay's, as the JSON handler
// writes it, with and without its metrics: the difference is what EMF costs.
func BenchmarkAppend(b *testing.B) {
	e := metrics.New("PortAzureRelay", metrics.FunctionRelay)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	base := []slog.Attr{
		slog.String("requestId", "8f0e4c1e-5b7a-4a43-9d0f-1f1b2c3d4e5f"), slog.String("kind", "httpapi"), slog.Int("status", 200),
		slog.Float64("durationMs", 84.213), slog.String("webhook", "port_trigger"), slog.String("runId", "r_QvJ5Nn2m8xV3aT1k"),
		slog.Int("azureStatus", 200), slog.Int("attempts", 1),
	}
	attrs := make([]slog.Attr, 0, 16)
	for _, withMetrics := range []bool{false, true} {
		b.Run(map[bool]string{false: "without", true: "with"}[withMetrics], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a := append(attrs[:0], base...)
				if withMetrics {
					a = e.Append(a,
						metrics.Group{Values: []metrics.Value{metrics.One(metrics.Forwarded)}},
						metrics.Group{Values: []metrics.Value{{Name: metrics.AzureLatency, Unit: metrics.Milliseconds, Value: 81.234}, {Name: metrics.Attempts, Unit: metrics.Count, Value: 1}}})
				}
				log.LogAttrs(b.Context(), slog.LevelInfo, "forwarded", a...)
			}
		})
	}
}
