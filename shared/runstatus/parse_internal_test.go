package runstatus

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
)

var portRunID = regexp.MustCompile(`^r_[A-Za-z0-9]+$`)

// FuzzNotification: whatever Azure (or anyone past the password) posts, the
// parser neither panics nor sends Port anything but a documented change.
func FuzzNotification(f *testing.F) {
	f.Add([]byte(`{"eventType":"ms.vss-pipelines.run-state-changed-event","resource":{"run":{"id":11,"name":"20261201.1 r_QOz6WoOB1Q2lmhZZ","state":"completed","result":"succeeded","_links":{"web":{"href":"https://dev.azure.com/o/p/_build/results?buildId=11"}}},"pipeline":{"id":7,"name":"deploy"}}}`))
	f.Add([]byte(`{"eventType":"ms.vss-pipelines.run-state-changed-event","resource":{"run":{"id":"x","name":7,"state":["inProgress"]}}}`))
	f.Add([]byte(`{"resource":null}`))
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
		if strings.ContainsAny(u.ExternalRunID, " \"\\\n") {
			t.Errorf("externalRunId %q", u.ExternalRunID)
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
