package deploy_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/port-azure-relay/relay/shared/metrics"
)

// resourcesOfType lists the logical ids of the template's resources of type typ.
func resourcesOfType(tpl *yaml.Node, typ string) []string {
	var ids []string
	res := get(tpl, "Resources")
	for _, id := range keys(res) {
		if render(get(res, id, "Type")) == typ {
			ids = append(ids, id)
		}
	}
	return ids
}

// TestAlarmsWatchWhatTheCodeEmits catches a metric or dimension renamed on one side
// only: every alarm on the metrics namespace names a metric and dimensions the
// functions write (shared/metrics), and so does the dashboard.
func TestAlarmsWatchWhatTheCodeEmits(t *testing.T) {
	tpl := loadTemplate(t)
	ours := 0
	for _, id := range resourcesOfType(tpl, "AWS::CloudWatch::Alarm") {
		p := get(tpl, "Resources", id, "Properties")
		if got := render(get(p, "AlarmActions")); got != "[!Ref AlarmTopic]" {
			t.Errorf("%s AlarmActions = %s, want [!Ref AlarmTopic]", id, got)
		}
		if !strings.HasPrefix(render(get(p, "AlarmName")), "!Sub ${AWS::StackName}-") {
			t.Errorf("%s AlarmName = %s, want it named after the stack", id, render(get(p, "AlarmName")))
		}
		if render(get(p, "Namespace")) != "!Ref MetricsNamespace" {
			continue
		}
		ours++
		if name := render(get(p, "MetricName")); !slices.Contains(metrics.Names, name) {
			t.Errorf("%s watches metric %s, which no function emits (%q)", id, name, metrics.Names)
		}
		dims := get(p, "Dimensions")
		for _, d := range dims.Content {
			name, value := render(get(d, "Name")), render(get(d, "Value"))
			if !slices.Contains(metrics.Dimensions, name) {
				t.Errorf("%s dimension %s is not one the functions write (%q)", id, name, metrics.Dimensions)
			}
			if name == metrics.Function && !slices.Contains([]string{metrics.FunctionRelay, metrics.FunctionVerifier, metrics.FunctionStatus, metrics.FunctionHooks}, value) {
				t.Errorf("%s dimension Function = %s, which no function is", id, value)
			}
		}
	}
	if ours == 0 {
		t.Errorf("no alarm watches the relay's own metrics (Namespace: !Ref MetricsNamespace)")
	}

	body := render(get(tpl, "Resources", "Dashboard", "Properties", "DashboardBody"))
	named := regexp.MustCompile(`"\$\{MetricsNamespace\}", "([A-Za-z]+)"|MetricName=\\?"([A-Za-z]+)\\?"`)
	found := named.FindAllStringSubmatch(body, -1)
	if len(found) < 4 {
		t.Fatalf("the dashboard names %d of the relay's metrics, want its deliveries, failures, refusals and latency", len(found))
	}
	for _, m := range found {
		if name := m[1] + m[2]; !slices.Contains(metrics.Names, name) {
			t.Errorf("the dashboard shows metric %s, which no function emits", name)
		}
	}
	for _, m := range regexp.MustCompile(`\{\$\{MetricsNamespace\},([A-Za-z,]+)\}`).FindAllStringSubmatch(body, -1) {
		for _, d := range strings.Split(m[1], ",") {
			if !slices.Contains(metrics.Dimensions, d) {
				t.Errorf("the dashboard searches dimension %s, which no function writes", d)
			}
		}
	}
}

// TestEveryAlarmIsOnTheDashboard: the dashboard's alarm widget lists every alarm of
// the stack, so an operator sees each one's state in one place.
func TestEveryAlarmIsOnTheDashboard(t *testing.T) {
	tpl := loadTemplate(t)
	body := render(get(tpl, "Resources", "Dashboard", "Properties", "DashboardBody"))
	alarms := resourcesOfType(tpl, "AWS::CloudWatch::Alarm")
	if len(alarms) < 6 {
		t.Fatalf("%d alarms, want at least 6", len(alarms))
	}
	for _, id := range alarms {
		if !strings.Contains(body, `"${`+id+`.Arn}"`) {
			t.Errorf("the dashboard's alarm widget leaves out %s", id)
		}
	}
}

// TestEveryFunctionIsWatched: the errors and throttles alarms sum one query per
// function, so a function added to the template must be added to them too.
func TestEveryFunctionIsWatched(t *testing.T) {
	tpl := loadTemplate(t)
	functions := resourcesOfType(tpl, "AWS::Serverless::Function")
	for _, alarm := range []string{"FunctionErrorsAlarm", "FunctionThrottlesAlarm"} {
		queries := render(get(tpl, "Resources", alarm, "Properties", "Metrics"))
		for _, fn := range functions {
			if !strings.Contains(queries, "Value: !Ref "+fn+"}") {
				t.Errorf("%s has no query for %s: add one line to its Metrics", alarm, fn)
			}
		}
	}
	dlq := get(tpl, "Resources", "ScheduleDLQAlarm", "Properties")
	if got := render(get(dlq, "Dimensions")); got != "[{Name: QueueName, Value: !GetAtt ScheduleDLQ.QueueName}]" || render(get(dlq, "MetricName")) != "ApproximateNumberOfMessagesVisible" {
		t.Errorf("ScheduleDLQAlarm watches %s %s, want the dead-letter queue's visible messages", render(get(dlq, "MetricName")), got)
	}
}

func TestMetricsNamespaceAndAlarmEmail(t *testing.T) {
	tpl := loadTemplate(t)
	ns := get(tpl, "Parameters", "MetricsNamespace")
	if got := render(get(ns, "Default")); got != metrics.DefaultNamespace {
		t.Errorf("MetricsNamespace default = %s, want %s", got, metrics.DefaultNamespace)
	}
	// CloudFormation reads the pattern as a Java regex, with the AWS/ look-ahead Go lacks.
	if got, want := render(get(ns, "AllowedPattern")), "^(?!AWS/)"+strings.TrimPrefix(metrics.NamespacePattern, "^"); got != want {
		t.Errorf("MetricsNamespace AllowedPattern = %s, want %s (what the functions accept)", got, want)
	}
	if got := render(get(tpl, "Globals", "Function", "Environment", "Variables", "METRICS_NAMESPACE")); got != "!Ref MetricsNamespace" {
		t.Errorf("Globals METRICS_NAMESPACE = %s, want !Ref MetricsNamespace", got)
	}
	if got := render(get(tpl, "Parameters", "AlarmEmail", "Default")); got != `""` {
		t.Errorf(`AlarmEmail default = %s, want "" (no subscription)`, got)
	}
	sub := get(tpl, "Resources", "AlarmEmailSubscription")
	cond := render(get(sub, "Condition"))
	if render(get(sub, "Properties", "Endpoint")) != "!Ref AlarmEmail" || render(get(sub, "Properties", "TopicArn")) != "!Ref AlarmTopic" ||
		render(get(tpl, "Conditions", cond)) != `!Not [!Equals [!Ref AlarmEmail, ""]]` {
		t.Errorf("AlarmEmailSubscription = %s under %s, want AlarmEmail subscribed to AlarmTopic only when set", render(sub), cond)
	}
}
