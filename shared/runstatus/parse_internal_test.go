package runstatus

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
)

var (
	portRunID         = regexp.MustCompile(`^r_[A-Za-z0-9]+$`)
	azureRunIDPattern = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)
)

// FuzzNotification: whatever Azure (or anyone past the password) posts, the
// parser neither panics nor sends Port anything but a documented change.
func FuzzNotification(f *testing.F) {
	f.Add([]byte(`{"eventType":"ms.vss-pipelines.run-state-changed-event","resource":{"run":{"id":11,"name":"20261201.1 r_QOz6WoOB1Q2lmhZZ","state":"completed","result":"succeeded","_links":{"web":{"href":"https://dev.azure.com/o/p/_build/results?buildId=11"}}},"pipeline":{"id":7,"name":"deploy"}}}`))
	f.Add([]byte(`{"eventType":"ms.vss-pipelines.run-state-changed-event","resource":{"run":{"id":"x","name":7,"state":["inProgress"]}}}`))
	f.Add([]byte(`{"resource":null}`))
	f.Add([]byte(`{"eventType":"ms.vss-pipelines.run-state-changed-event","resource":{"run":{"_links":{"self":{"href":"https://codedev.ms/org/p/_apis/Pipelines/1/runs/11"},"web":{"href":"https://codedev.ms/org/p/_build/results?buildId=11"}},"state":"completed","result":"succeeded","url":"https://codedev.ms/org/p/_apis/Pipelines/1/runs/11"}}}`))
	f.Add([]byte(`{"eventType":"ms.vss-pipelines.stage-state-changed-event","resource":{"stage":{"name":"Deploy","state":"completed","result":"partiallySucceeded","_links":{"web":{"href":"https://dev.azure.com/o/p/_build/results?buildId=2"}}},"run":{"id":2,"name":"2"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := parse(body)
		if err != nil {
			return
		}
		u, line, err := n.update()
		if err != nil {
			return
		}
		if id := n.portRunID(); id != "" && !portRunID.MatchString(id) {
			t.Errorf("update for run id %q", id)
		}
		if n.EventType == StageEventType && (u.Status != "" || line == "") {
			t.Errorf("a stage event ends the run (%q) or has no log line", u.Status)
		}
		if len(line) > 300 || len(u.StatusLabel) > 200 {
			t.Errorf("line %q or label %q too long", line, u.StatusLabel)
		}
		if u.Status != "" && u.Status != "SUCCESS" && u.Status != "FAILURE" {
			t.Errorf("status %q", u.Status)
		}
		if u.Link != "" && !strings.HasPrefix(u.Link, "http") {
			t.Errorf("link %q", u.Link)
		}
		if id := n.azureRunID(); id != "" && !azureRunIDPattern.MatchString(id) {
			t.Errorf("Azure run id %q", id)
		}
	})
}

func FuzzBasicPassword(f *testing.F) {
	f.Add("Basic " + base64.StdEncoding.EncodeToString([]byte("azure:pass")))
	f.Add("basic YXp1cmU6")
	f.Add("Bearer abc")
	f.Fuzz(func(t *testing.T, header string) {
		if p, ok := basicPassword(header); ok && p == "" {
			t.Errorf("basicPassword(%q) = empty, ok", header)
		}
	})
}

// TestAzureRunIDFromTheLinks: where run.id is missing or no run id, the id is read
// from the links Microsoft's samples carry, and only there.
func TestAzureRunIDFromTheLinks(t *testing.T) {
	const run, stage = `ms.vss-pipelines.run-state-changed-event`, `ms.vss-pipelines.stage-state-changed-event`
	tests := []struct {
		name, eventType, resource, want string
	}{
		{"run.id", run, `{"run":{"id":11,"_links":{"self":{"href":"https://x/_apis/Pipelines/1/runs/12"}}}}`, "11"},
		{"run.id as a string", run, `{"run":{"id":"11"}}`, "11"},
		{"the self link", run, `{"run":{"_links":{"self":{"href":"https://codedev.ms/org/p/_apis/Pipelines/1/runs/11"}}}}`, "11"},
		{"the url, in any case", run, `{"run":{"url":"https://dev.azure.com/o/p/_apis/pipelines/1/Runs/11/"}}`, "11"},
		{"the page's buildId", run, `{"run":{"_links":{"web":{"href":"https://dev.azure.com/o/p/_build/results?buildId=11&view=results"}}}}`, "11"},
		{"a run.id that is no id falls back to the links", run, `{"run":{"id":"x","_links":{"web":{"href":"https://x/_build/results?buildId=11"}}}}`, "11"},
		{"a stage's page", stage, `{"stage":{"_links":{"web":{"href":"https://x/_build/results?buildId=2"}}},"run":{"state":"inProgress"}}`, "2"},
		{"leading zeros are dropped, as the relay writes ids", run, `{"run":{"_links":{"web":{"href":"https://x/_build/results?buildId=011"}}}}`, "11"},
		{"a pipeline's url is no run's", run, `{"run":{"url":"https://x/_apis/Pipelines/7?revision=2"}}`, ""},
		{"a run id of zero is none", run, `{"run":{"id":0,"_links":{"self":{"href":"https://x/runs/0"}}}}`, ""},
		{"a run id past 32 bits is none", run, `{"run":{"_links":{"web":{"href":"https://x/?buildId=4294967297"}}}}`, ""},
		{"a signed id is none", run, `{"run":{"_links":{"web":{"href":"https://x/?buildId=%2B11"}}}}`, ""},
		{"no id anywhere", run, `{"run":{"state":"completed"}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := parse([]byte(`{"eventType":"` + tt.eventType + `","resource":` + tt.resource + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := n.azureRunID(); got != tt.want {
				t.Errorf("azureRunID(%s) = %q, want %q", tt.resource, got, tt.want)
			}
		})
	}
}
