package wiring

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/event"
	"github.com/port-azure-relay/relay/shared/metrics"
)

// Watch is the hook check function's core: on each scheduled event it counts the
// expected subscriptions by state and writes one log line that is also an EMF
// record, a metric per state, so that an alarm hears of a subscription Azure put on
// probation or disabled before users see Port runs stuck.
type Watch struct {
	Doctor  *Doctor
	Log     *slog.Logger
	Metrics *metrics.Emitter
}

// stateMetrics maps each state to its metric, in the order the line lists them.
var stateMetrics = []struct{ state, metric string }{
	{azdo.StatusEnabled, metrics.HooksEnabled},
	{azdo.StatusOnProbation, metrics.HooksOnProbation},
	{azdo.StatusDisabledByUser, metrics.HooksDisabledByUser},
	{azdo.StatusDisabledBySystem, metrics.HooksDisabledBySystem},
	{azdo.StatusDisabledByInactiveIdentity, metrics.HooksDisabledByInactiveIdentity},
	{Missing, metrics.HooksMissing},
}

// Handle counts the subscriptions whatever the event (the schedule's input is not
// read). A failure to count is a function error, which Lambda retries and the
// function-errors alarm counts; its line names the cause, never a credential.
func (w *Watch) Handle(ctx context.Context, requestID string, _ []byte) event.Response {
	counts, err := w.Doctor.Census(ctx)
	if err != nil {
		attrs := []slog.Attr{slog.String("requestId", requestID), slog.String("error", err.Error()), slog.String("cause", cause(err))}
		w.Log.LogAttrs(ctx, slog.LevelError, "service hook subscriptions could not be counted",
			w.Metrics.Append(attrs, metrics.Group{Values: []metrics.Value{metrics.One(metrics.HooksUncounted)}})...)
		return event.Response{Status: http.StatusBadGateway, Error: "The service hook subscriptions could not be counted: " + cause(err) + "."}
	}
	values := make([]metrics.Value, 0, len(stateMetrics)+1)
	attrs := []slog.Attr{slog.String("requestId", requestID), slog.String("hookUrl", w.Doctor.Stack.HookURL)}
	notEnabled := 0
	for _, sm := range stateMetrics {
		n := counts[sm.state]
		if sm.state != azdo.StatusEnabled {
			notEnabled += n
		}
		values = append(values, metrics.Value{Name: sm.metric, Unit: metrics.Count, Value: float64(n)})
	}
	values = append(values, metrics.Value{Name: metrics.HooksNotEnabled, Unit: metrics.Count, Value: float64(notEnabled)})
	attrs = w.Metrics.Append(attrs, metrics.Group{Values: values})
	level, msg := slog.LevelInfo, "service hook subscriptions counted"
	if notEnabled > 0 {
		level, msg = slog.LevelWarn, "service hook subscriptions missing or not enabled: run make doctor"
	}
	w.Log.LogAttrs(ctx, level, msg, attrs...)
	body, _ := json.Marshal(map[string]int{"enabled": counts[azdo.StatusEnabled], "notEnabled": notEnabled})
	return event.Response{Status: http.StatusOK, Body: body}
}

// cause names a failure's side in a word, for the log line and the function error.
func cause(err error) string {
	switch {
	case errors.Is(err, ErrNoAzureCredential):
		return "the secret holds no Azure credential"
	case errors.Is(err, azdo.ErrCredentials):
		return "Azure DevOps refused the credential, or it lacks the scope"
	case errors.Is(err, azdo.ErrForbidden):
		return "the identity may not view service hooks"
	case errors.Is(err, azdo.ErrProjectNotFound):
		return "a configured project does not exist"
	case errors.Is(err, entra.ErrFederatedCredential), errors.Is(err, entra.ErrAWSDenied), errors.Is(err, entra.ErrFederationDisabled):
		return "Entra refused the function's AWS identity (its role needs a federated credential of its own)"
	case errors.Is(err, entra.ErrRefused), errors.Is(err, entra.ErrConfig):
		return "Entra refused the secret's app"
	}
	return "Azure DevOps, Entra or the secret could not be reached"
}
