package relay

import (
	"log/slog"

	"github.com/port-azure-relay/relay/shared/metrics"
)

// measure adds the invocation's metrics to its log line: what became of it
// (Forwarded; Duplicate; Refused by reason; Failed by cause, from the rule of its
// error), LedgerUnavailable when the ledger could not be reached, and,
// when Azure DevOps was called, how long that took and how many requests it made.
// The rule's status, not the answer's, decides refused or failed: an AWS event
// whose run may have been queued is answered as a result but still failed.
func (r *Relay) measure(attrs []slog.Attr, d done) []slog.Attr {
	if r.Metrics == nil {
		return attrs
	}
	var what metrics.Group
	switch {
	case d.kept.held != nil:
		what.Values = []metrics.Value{metrics.One(metrics.Duplicate)} // nothing sent
	case d.kept.queued > 0:
		a, _ := classify(d.err)
		what.Key, what.Class = metrics.Cause, a.Class
		what.Values = []metrics.Value{metrics.One(metrics.Queued)} // put aside until Azure can take it
	case d.err == nil:
		what.Values = []metrics.Value{metrics.One(metrics.Forwarded)}
	default:
		rule, _ := classify(d.err)
		what.Key, what.Class = metrics.Cause, rule.Class
		name := metrics.Failed
		if rule.Status < 500 {
			what.Key, name = metrics.Reason, metrics.Refused
		}
		what.Values = []metrics.Value{metrics.One(name)}
	}
	groups := []metrics.Group{what}
	if d.sent.Attempts > 0 {
		groups = append(groups, metrics.Group{Values: []metrics.Value{
			{Name: metrics.AzureLatency, Unit: metrics.Milliseconds, Value: float64(d.sent.Took.Microseconds()) / 1000},
			{Name: metrics.Attempts, Unit: metrics.Count, Value: float64(d.sent.Attempts)},
		}})
	}
	if d.kept.err != nil {
		groups = append(groups, metrics.Group{Values: []metrics.Value{metrics.One(metrics.LedgerUnavailable)}})
	}
	if d.drained > 0 {
		groups = append(groups, metrics.Group{Values: []metrics.Value{{Name: metrics.QueueAge, Unit: metrics.Seconds, Value: d.age.Seconds()}}})
	}
	if d.kept.unqueued != nil {
		groups = append(groups, metrics.Group{Values: []metrics.Value{metrics.One(metrics.Unqueued)}})
	}
	if d.unreported != nil {
		groups = append(groups, metrics.Group{Values: []metrics.Value{metrics.One(metrics.Unreported)}})
	}
	return r.Metrics.Append(attrs, groups...)
}
