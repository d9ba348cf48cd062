package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func init() { azureCredentials = append(azureCredentials, wiredPAT, wiredHookPass, wiredPortKey) }

// TestHookCheckCountsTheSubscriptions runs the hourly function under the emulator
// against the wired world: one EMF line per run with a metric per state, and
// HooksNotEnabled, which the alarm watches, rising when Azure disables a
// subscription or one is deleted; a refused credential is a function error.
func TestHookCheckCountsTheSubscriptions(t *testing.T) {
	requireRIE(t)
	w := newWired(t)
	secretJSON, _ := json.Marshal(w.secret)
	arn := w.sm.Put(wiredSecret, string(secretJSON))
	w.az.AddPipeline(w.pipe)
	env := append(w.sm.Env(), "PORT_SECRET_ID="+arn, "AZURE_DEVOPS_ORG="+org, "AZURE_DEVOPS_URL="+w.az.URL,
		"AZURE_DEVOPS_PIPELINES=deploy="+wiredProject+"/42", "SERVICE_HOOK_URL="+wiredHook, "METRICS_NAMESPACE=PortAzureRelay/e2e")
	fn := start(t, hookcheckBin, 20*time.Second, env)
	scheduled, err := os.ReadFile("../events/relay/schedule.json")
	if err != nil {
		t.Fatal(err)
	}
	run, stage := w.subs["ms.vss-pipelines.run-state-changed-event"], w.subs["ms.vss-pipelines.stage-state-changed-event"]
	steps := []struct {
		name   string
		change func()
		want   map[string]float64
		level  string
	}{
		{"all enabled", func() {}, map[string]float64{"HooksEnabled": 2, "HooksNotEnabled": 0, "HooksMissing": 0}, "INFO"},
		{"disabled by the system", func() { w.az.SetSubscriptionStatus(stage, "disabledBySystem") },
			map[string]float64{"HooksEnabled": 1, "HooksDisabledBySystem": 1, "HooksNotEnabled": 1}, "WARN"},
		{"on probation and missing", func() { w.az.SetSubscriptionStatus(stage, "onProbation"); w.az.DeleteSubscription(run) },
			map[string]float64{"HooksEnabled": 0, "HooksOnProbation": 1, "HooksMissing": 1, "HooksNotEnabled": 2}, "WARN"},
	}
	for _, st := range steps {
		st.change()
		r := invoke(t, fn, scheduled)
		if r.fnErr != nil {
			t.Fatalf("%s: function error %v", st.name, r.fnErr)
		}
		line := oneLogLine(t, r)
		if line["level"] != st.level || line["Function"] != "hookcheck" {
			t.Errorf("%s: line %v, want level %s, Function hookcheck", st.name, line, st.level)
		}
		for metric, want := range st.want {
			if got, _ := line[metric].(float64); got != want || line[metric] == nil {
				t.Errorf("%s: %s = %v, want %v", st.name, metric, line[metric], want)
			}
		}
		aws, _ := json.Marshal(line["_aws"])
		if !strings.Contains(string(aws), `"Name":"HooksNotEnabled"`) || !strings.Contains(string(aws), `"Namespace":"PortAzureRelay/e2e"`) {
			t.Errorf("%s: the EMF directive %s does not publish HooksNotEnabled in the stack's namespace", st.name, aws)
		}
	}

	w.az.RevokePAT(wiredPAT)
	r := invoke(t, fn, scheduled)
	if r.fnErr == nil || !strings.Contains(r.fnErr.Message, "Azure DevOps refused the credential") {
		t.Fatalf("with the PAT revoked: %v %v, want a function error naming the refused credential", r.fnErr, r.body)
	}
	if line := oneLogLine(t, r); line["level"] != "ERROR" || line["cause"] == nil {
		t.Errorf("with the PAT revoked: line %v, want an ERROR with its cause", line)
	}
}
