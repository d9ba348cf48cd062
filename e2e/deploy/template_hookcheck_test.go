package deploy_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestTheHookCheck: the hook check runs hourly, only where an Azure credential is
// configured (AzureDevOpsPipelines set, or HookCheck true), with the variables its
// loader reads, and an alarm to the stack's topic watches HooksNotEnabled.
func TestTheHookCheck(t *testing.T) {
	tpl := loadTemplate(t)
	fn := get(tpl, "Resources", "HookCheckFunction")
	if got := render(get(fn, "Condition")); got != "HookCheckOn" {
		t.Fatalf("HookCheckFunction.Condition = %s, want HookCheckOn", got)
	}
	want := `!Or [!Equals [!Ref HookCheck, true], !And [!Equals [!Ref HookCheck, auto], !Not [!Equals [!Ref AzureDevOpsPipelines, ""]]]]`
	if got := render(get(tpl, "Conditions", "HookCheckOn")); got != want {
		t.Errorf("HookCheckOn = %s, want %s", got, want)
	}
	if got := render(get(tpl, "Parameters", "HookCheck", "Default")); got != "auto" {
		t.Errorf("HookCheck default = %s, want auto", got)
	}
	schedule := get(fn, "Properties", "Events", "Hourly", "Properties")
	if got := render(get(fn, "Properties", "Events", "Hourly", "Type")); got != "ScheduleV2" || render(get(schedule, "ScheduleExpression")) != "rate(1 hour)" {
		t.Errorf("HookCheckFunction's schedule = %s %s, want ScheduleV2 rate(1 hour)", got, render(get(schedule, "ScheduleExpression")))
	}
	if get(schedule, "State") != nil {
		t.Errorf("the hook check's schedule has a State: it is on whenever the function exists")
	}
	vars := keys(get(fn, "Properties", "Environment", "Variables"))
	for _, v := range []string{"PORT_SECRET_ID", "AZURE_DEVOPS_ORG", "AZURE_DEVOPS_URL", "AZURE_DEVOPS_PIPELINES", "AZURE_AUTHORITY_HOST", "SERVICE_HOOK_URL"} {
		if !slices.Contains(vars, v) {
			t.Errorf("HookCheckFunction does not set %s, which wiring.LoadWatchConfig reads", v)
		}
	}
	if got := render(get(fn, "Properties", "Environment", "Variables", "SERVICE_HOOK_URL")); got != render(get(tpl, "Outputs", "AzureServiceHookUrl", "Value")) {
		t.Errorf("SERVICE_HOOK_URL = %s, want the AzureServiceHookUrl output's value", got)
	}
	// Its rights: the secret, its key, STS with federation; nothing else (TestLeastPrivilege checks each).
	var actions []string
	for _, st := range policyStatements(t, tpl, "HookCheckFunction") {
		actions = append(actions, scalars(get(st.node, "Action"))...)
	}
	slices.Sort(actions)
	if want := []string{"kms:Decrypt", "secretsmanager:GetSecretValue", "sts:GetWebIdentityToken"}; !slices.Equal(actions, want) {
		t.Errorf("HookCheckFunction may %q, want exactly %q", actions, want)
	}
	alarm := get(tpl, "Resources", "HookSubscriptionsAlarm")
	p := get(alarm, "Properties")
	if render(get(alarm, "Condition")) != "HookCheckOn" || render(get(p, "MetricName")) != "HooksNotEnabled" ||
		render(get(p, "ComparisonOperator")) != "GreaterThanOrEqualToThreshold" || render(get(p, "Threshold")) != "1" ||
		render(get(p, "Period")) != "3600" || render(get(p, "Dimensions")) != "[{Name: Function, Value: hookcheck}]" {
		t.Errorf("HookSubscriptionsAlarm = %s, want HooksNotEnabled ≥ 1 in an hour, under HookCheckOn", render(alarm))
	}
	if got := render(get(tpl, "Outputs", "HookCheckRoleArn", "Condition")); got != "HookCheckFederated" ||
		render(get(tpl, "Conditions", "HookCheckFederated")) != "!And [!Condition HookCheckOn, !Condition FederationOn]" {
		t.Errorf("HookCheckRoleArn output under %s, want it with the hook check and federation", got)
	}
}

// TestTheHookCheckLinksWhatItUses: the hourly function links Azure's and Entra's
// clients, not Port's API client, the relay's core or CloudFormation's SDK.
func TestTheHookCheckLinksWhatItUses(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-tags", "lambda.norpc", "./functions/hookcheck")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./functions/hookcheck: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, pkg := range []string{module + "/shared/wiring", module + "/shared/azdo", module + "/shared/entra"} {
		if !slices.Contains(deps, pkg) {
			t.Errorf("functions/hookcheck does not link %s: go list did not list what it builds", pkg)
		}
	}
	for _, pkg := range deps {
		for _, not := range []string{module + "/shared/portapi", module + "/shared/relay", module + "/shared/runstatus", "github.com/aws/aws-sdk-go-v2/service/cloudformation"} {
			if pkg == not {
				t.Errorf("functions/hookcheck links %s, which it does not use", pkg)
			}
		}
	}
}
