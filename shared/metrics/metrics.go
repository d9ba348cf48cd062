// Package metrics makes a function's one JSON log line per invocation also a
// CloudWatch Embedded Metric Format (EMF) record, so that CloudWatch Logs extracts
// the metrics from the line itself: no API call, no second line, no dependency.
package metrics

import (
	"encoding/json"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// DefaultNamespace is the CloudWatch namespace when METRICS_NAMESPACE is not set.
const DefaultNamespace = "PortAzureRelay"

// NamespacePattern is what a namespace may be: CloudWatch's characters less the
// space (the dashboard embeds the namespace in search expressions), at most 255.
// CloudWatch also reserves the prefix "AWS/"; ValidNamespace refuses it.
const NamespacePattern = `^[A-Za-z0-9][-A-Za-z0-9._/#:]{0,254}$`

// ValidNamespace reports whether ns can be a custom metrics namespace: it matches
// NamespacePattern and does not start with "AWS/". It checks by hand: compiling the
// pattern (its {0,254} makes a large program) took milliseconds of every cold start.
func ValidNamespace(ns string) bool {
	if len(ns) == 0 || len(ns) > 255 || strings.HasPrefix(ns, "AWS/") {
		return false
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("-._/#:", rune(c))) {
			return false
		}
	}
	return true
}

// Unit is a CloudWatch unit; the functions use these two.
type Unit string

// Units the functions use.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	Seconds      Unit = "Seconds"
)

// The functions, as the Function dimension names them.
const (
	FunctionRelay    = "relay"
	FunctionVerifier = "verifier"
	FunctionStatus   = "status"
	FunctionHooks    = "hookcheck"
)

// Metric names. The template's alarms and dashboard use them: e2e/deploy/template_alarms_test.go
// checks that every one it names is here.
const (
	Forwarded    = "Forwarded"    // relay: Azure DevOps accepted (queued) the run
	Refused      = "Refused"      // relay: the invocation was refused (Reason)
	Failed       = "Failed"       // relay: delivery failed (Cause)
	AzureLatency = "AzureLatency" // relay: time spent calling Azure DevOps, retries included
	Attempts     = "Attempts"     // relay: requests sent to Azure DevOps
	Verified     = "Verified"     // verifier: the signature held (Scheme)
	Rejected     = "Rejected"     // verifier: it did not, or could not be checked (Reason)
	RunsUpdated  = "RunsUpdated"  // status: a Port run was updated, or the event ignored (Outcome)
	// Duplicate counts relay invocations the ledger knew: delivered before (or maybe
	// queued), so nothing was sent.
	Duplicate = "Duplicate"
	// LedgerUnavailable counts relay invocations for which DynamoDB could not be
	// reached: an HTTP one was delivered anyway, an AWS event refused for Lambda to retry.
	LedgerUnavailable = "LedgerUnavailable"
	// Queued counts relay deliveries put aside on the delivery queue because Azure could
	// not take them then (Cause: throttled, unavailable, …); each is Forwarded, Failed
	// or dead-lettered later.
	Queued = "Queued"
	// QueueAge is a queued delivery's age when the relay drains it (Seconds): SQS's own
	// oldest-message age leaves out messages received three times or more.
	QueueAge = "QueueAge"
	// Unqueued counts relay deliveries that Azure could not take and that the delivery
	// queue could not keep either (SQS unreachable, the body refused): they failed.
	Unqueued = "Unqueued"
	// Unreported counts relay invocations whose report to Port failed: the Port run does
	// not show how delivery went (for a pipeline by id, nothing can then end it).
	Unreported = "Unreported"
	// WrongPassword counts service-hook notifications refused for a Basic auth password
	// that matches neither the secret's serviceHookPassword nor, within the rotation's
	// grace, its previous one.
	WrongPassword = "WrongPassword"
)

// The hook check's metrics: the expected service hook subscriptions by state, one
// line an hour, every state written (0 included) so that each has a value; and
// HooksNotEnabled, all of them but the enabled ones, which the alarm watches.
const (
	HooksEnabled                    = "HooksEnabled"
	HooksOnProbation                = "HooksOnProbation"
	HooksDisabledByUser             = "HooksDisabledByUser"
	HooksDisabledBySystem           = "HooksDisabledBySystem"
	HooksDisabledByInactiveIdentity = "HooksDisabledByInactiveIdentity"
	HooksMissing                    = "HooksMissing"
	HooksNotEnabled                 = "HooksNotEnabled"
	// HooksUncounted counts the runs that could not count them (a function error).
	HooksUncounted = "HooksUncounted"
)

// Dimension keys. Every metric is published by Function; a class dimension adds a
// second set, by Function and class. Values are always a small fixed set.
const (
	Function = "Function"
	Reason   = "Reason"
	Cause    = "Cause"
	Outcome  = "Outcome"
	Scheme   = "Scheme"
)

// Names lists every metric name the functions emit.
var Names = []string{Forwarded, Refused, Failed, AzureLatency, Attempts, Verified, Rejected, RunsUpdated, WrongPassword, Duplicate, LedgerUnavailable, Unreported, Queued, QueueAge, Unqueued,
	HooksEnabled, HooksOnProbation, HooksDisabledByUser, HooksDisabledBySystem, HooksDisabledByInactiveIdentity, HooksMissing, HooksNotEnabled, HooksUncounted}

// Dimensions lists every dimension key the functions emit.
var Dimensions = []string{Function, Reason, Cause, Outcome, Scheme}

// Value is one measurement. Name is an ASCII identifier (one of the constants);
// Value is finite.
type Value struct {
	Name  string
	Unit  Unit
	Value float64
}

// Group is measurements that share dimensions: Function alone, and also Function
// with Key=Class when both are set.
type Group struct {
	Key, Class string
	Values     []Value
}

// One is a count of one.
func One(name string) Value { return Value{Name: name, Unit: Count, Value: 1} }

// Emitter writes one function's metrics. It is built once at start-up and is then
// safe for concurrent use; a nil *Emitter writes nothing.
type Emitter struct {
	namespace []byte // JSON-quoted
	function  string
	Now       func() time.Time // nil: time.Now
}

// New returns the Emitter of function (FunctionRelay, …) in namespace, which the
// configuration has checked with ValidNamespace.
func New(namespace, function string) *Emitter {
	ns, _ := json.Marshal(namespace) // a string always marshals
	return &Emitter{namespace: ns, function: function}
}

// Count returns the members that record one occurrence of name, by Function and by
// Function and key=class: append them to the invocation's log line.
func (e *Emitter) Count(name, key, class string) []slog.Attr {
	return e.Append(nil, Group{Key: key, Class: class, Values: []Value{One(name)}})
}

// Append adds the EMF members for groups to a log line's attributes: "_aws" with
// the timestamp and one directive per group, the Function dimension, each group's
// class dimension, and each value as a number. A dimension key or metric name that
// appears twice is written once (the first wins).
func (e *Emitter) Append(attrs []slog.Attr, groups ...Group) []slog.Attr {
	if e == nil || len(groups) == 0 {
		return attrs
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	buf := make([]byte, 0, 128+160*len(groups))
	buf = append(buf, `{"Timestamp":`...)
	buf = strconv.AppendInt(buf, now().UnixMilli(), 10)
	buf = append(buf, `,"CloudWatchMetrics":[`...)
	for i, g := range groups {
		// Groups by Function alone, one after another, share one directive.
		if i > 0 && !g.classed() && !groups[i-1].classed() {
			for _, v := range g.Values {
				buf = appendDefinition(append(buf, ','), v)
			}
			continue
		}
		if i > 0 {
			buf = append(buf, "]},"...)
		}
		buf = append(buf, `{"Namespace":`...)
		buf = append(buf, e.namespace...)
		buf = append(buf, `,"Dimensions":[["`+Function+`"]`...)
		if g.classed() {
			buf = append(buf, `,["`+Function+`",`...)
			buf = strconv.AppendQuote(buf, g.Key)
			buf = append(buf, ']')
		}
		buf = append(buf, `],"Metrics":[`...)
		for j, v := range g.Values {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = appendDefinition(buf, v)
		}
	}
	buf = append(buf, "]}"...)
	buf = append(buf, "]}"...)

	attrs = append(attrs, slog.Any("_aws", json.RawMessage(buf)), slog.String(Function, e.function))
	written := func(key string, upTo int) bool { // among the groups before upTo
		for _, g := range groups[:upTo] {
			if g.classed() && g.Key == key {
				return true
			}
			for _, v := range g.Values {
				if v.Name == key {
					return true
				}
			}
		}
		return key == Function
	}
	for i, g := range groups {
		if g.classed() && !written(g.Key, i) {
			attrs = append(attrs, slog.String(g.Key, g.Class))
		}
		for j, v := range g.Values {
			if !written(v.Name, i) && !slicesHasName(g.Values[:j], v.Name) {
				attrs = append(attrs, number(v.Name, v.Value))
			}
		}
	}
	return attrs
}

func appendDefinition(buf []byte, v Value) []byte {
	buf = append(buf, `{"Name":`...)
	buf = strconv.AppendQuote(buf, v.Name)
	buf = append(buf, `,"Unit":`...)
	buf = strconv.AppendQuote(buf, string(v.Unit))
	return append(buf, '}')
}

// classed: a group without a class is published by Function alone, rather than
// with an empty dimension value, which CloudWatch refuses.
func (g Group) classed() bool { return g.Key != "" && g.Class != "" }

// number writes a whole value as an integer, which slog writes without the
// json.Marshal call it makes for floats.
func number(name string, v float64) slog.Attr {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return slog.Int64(name, int64(v))
	}
	return slog.Float64(name, v)
}

func slicesHasName(vs []Value, name string) bool {
	for _, v := range vs {
		if v.Name == name {
			return true
		}
	}
	return false
}
