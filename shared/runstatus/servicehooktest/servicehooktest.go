// Package servicehooktest stands in for Azure DevOps' service hooks with the Web
// Hooks consumer, the sender of what the status function (runstatus) receives: it
// posts run-state-changed notifications shaped like Azure's, with Basic auth, and
// retries them by Azure's rule.
//
// Azure's rule (azure-devops-docs, service-hooks/troubleshoot.md): 408, 502, 503 and
// 504 are transient and retried up to 8 times, about 1 s to 60 s apart; any other
// failure puts the subscription on probation, and 410 disables it at once. The real
// consumer also requires HTTPS and refuses private addresses; this one posts to
// 127.0.0.1.
package servicehooktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The events Azure sends when a pipeline run, or one of its stages, changes state.
const (
	EventType      = "ms.vss-pipelines.run-state-changed-event"
	StageEventType = "ms.vss-pipelines.stage-state-changed-event"
)

// AzureDelays are the waits before each of Azure's 8 retries of a transient failure.
var AzureDelays = []time.Duration{
	time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
	15 * time.Second, 30 * time.Second, 60 * time.Second, 60 * time.Second,
}

// Run is the pipeline run a notification describes.
type Run struct {
	Org, ProjectID string // defaults: "contoso" and a fixed GUID
	PipelineID     int
	PipelineName   string
	ID             int    // the Azure run id (the build id)
	Name           string // the run name (build number), where the pipeline put the Port run id
	State          string // inProgress, canceling or completed
	Result         string // succeeded, failed or canceled, when completed
	// NoID leaves out the run's id and name, as Microsoft's current sample of the
	// run-state-changed event does (azure-devops-docs, service-hooks/events.md): the
	// id is then only in the links, the run's own (…/runs/{id}, buildId=…) or, in a
	// stage event, the stage's.
	NoID bool
}

// WebURL is the run's page, as Azure links it.
func (r Run) WebURL() string {
	org, project := r.defaults()
	return fmt.Sprintf("https://dev.azure.com/%s/%s/_build/results?buildId=%d", org, project, r.ID)
}

func (r Run) defaults() (org, project string) {
	org, project = r.Org, r.ProjectID
	if org == "" {
		org = "contoso"
	}
	if project == "" {
		project = "0d1f9b4e-5c2a-4e8b-9a6f-3c7d2e1b0a99"
	}
	return org, project
}

// Stage is a stage of a run, as a stage-state-changed event describes it.
type Stage struct {
	Name, DisplayName string // the YAML name ("__default" for a pipeline without stages) and its displayName
	State             string // notStarted, waiting, running or completed
	Result            string // when completed: succeeded, failed, canceled, skipped, rejected, partiallySucceeded
}

// StageNotification is the body Azure posts when a stage of r changes state, in the
// shape of Microsoft's published sample (azure-devops-docs, service-hooks/events.md,
// "Run stage state changed", resourceVersion 5.1-preview.1): the stage carries the
// run's page as its web link; the run carries no links.
func StageNotification(r Run, st Stage) []byte {
	org, project := r.defaults()
	base := "https://dev.azure.com/" + org + "/" + project
	pipe := map[string]any{
		"url":      fmt.Sprintf("%s/_apis/Pipelines/%d?revision=1", base, r.PipelineID),
		"id":       r.PipelineID,
		"revision": 1,
		"name":     r.PipelineName,
		"folder":   "\\",
	}
	stage := map[string]any{
		"_links": map[string]any{
			"web":          map[string]string{"href": r.WebURL()},
			"pipeline.web": map[string]string{"href": fmt.Sprintf("%s/_build/definition?definitionId=%d", base, r.PipelineID)},
		},
		"id":          "c2c2c2c2-dddd-eeee-ffff-" + fmt.Sprintf("%012d", r.ID),
		"name":        st.Name,
		"displayName": nil,
		"state":       st.State,
	}
	if st.DisplayName != "" {
		stage["displayName"] = st.DisplayName
	}
	if st.State == "completed" {
		stage["result"] = st.Result
	}
	run := map[string]any{"pipeline": pipe, "state": r.State, "createdDate": "2026-12-01T10:00:00.000Z", "id": r.ID, "name": r.Name}
	if r.State == "completed" {
		run["result"] = r.Result
	}
	if r.NoID {
		delete(run, "id")
		delete(run, "name")
	}
	text := fmt.Sprintf("Run %s stage %s %s.", r.Name, st.Name, st.State)
	body, _ := json.Marshal(map[string]any{
		"id":              "a0a0a0a0-bbbb-cccc-dddd-" + fmt.Sprintf("%012d", r.ID),
		"eventType":       StageEventType,
		"publisherId":     "pipelines",
		"message":         map[string]string{"text": text, "html": text, "markdown": text},
		"detailedMessage": map[string]string{"text": text, "html": text, "markdown": text},
		"resource":        map[string]any{"stage": stage, "run": run, "pipeline": pipe},
		"resourceVersion": "5.1-preview.1",
		"resourceContainers": map[string]any{
			"collection": map[string]string{"id": "c2a1b3d4-0000-4000-8000-000000000001"},
			"account":    map[string]string{"id": "a1b2c3d4-0000-4000-8000-000000000002"},
			"project":    map[string]string{"id": project},
		},
		"createdDate": "2026-12-01T10:02:00.000Z",
	})
	return body
}

// Notification is the body Azure posts for r with resourceDetailsToSend "all", in
// the shape of Microsoft's published sample for resourceVersion 5.1-preview.1.
func Notification(r Run) []byte {
	org, project := r.defaults()
	base := "https://dev.azure.com/" + org + "/" + project
	pipe := map[string]any{
		"url":      fmt.Sprintf("%s/_apis/Pipelines/%d?revision=1", base, r.PipelineID),
		"id":       r.PipelineID,
		"revision": 1,
		"name":     r.PipelineName,
		"folder":   "\\",
	}
	run := map[string]any{
		"_links": map[string]any{
			"self":     map[string]string{"href": fmt.Sprintf("%s/_apis/Pipelines/%d/runs/%d", base, r.PipelineID, r.ID)},
			"web":      map[string]string{"href": r.WebURL()},
			"pipeline": map[string]string{"href": pipe["url"].(string)},
		},
		"pipeline":    pipe,
		"state":       r.State,
		"createdDate": "2026-12-01T10:00:00.000Z",
		"url":         fmt.Sprintf("%s/_apis/Pipelines/%d/runs/%d", base, r.PipelineID, r.ID),
		"id":          r.ID,
		"name":        r.Name,
	}
	if r.State == "completed" {
		run["result"] = r.Result
		run["finishedDate"] = "2026-12-01T10:04:00.000Z"
	}
	if r.NoID {
		delete(run, "id")
		delete(run, "name")
	}
	text := fmt.Sprintf("Run %d %s.", r.ID, r.State)
	body, _ := json.Marshal(map[string]any{
		"subscriptionId": "fd7f4d8c-1a3b-4c5d-8e9f-0a1b2c3d4e5f",
		"notificationId": 3,
		"id":             "e0ab7ed6-3e3b-4ff1-8c50-" + fmt.Sprintf("%012d", r.ID),
		"eventType":      EventType,
		"publisherId":    "pipelines",
		"message":        map[string]string{"text": text, "html": text, "markdown": text},
		"detailedMessage": map[string]string{
			"text": text, "html": text, "markdown": text,
		},
		"resource":        map[string]any{"run": run, "pipeline": pipe},
		"resourceVersion": "5.1-preview.1",
		"resourceContainers": map[string]any{
			"collection": map[string]string{"id": "c2a1b3d4-0000-4000-8000-000000000001", "baseUrl": "https://dev.azure.com/" + org + "/"},
			"account":    map[string]string{"id": "a1b2c3d4-0000-4000-8000-000000000002", "baseUrl": "https://dev.azure.com/" + org + "/"},
			"project":    map[string]string{"id": project, "baseUrl": "https://dev.azure.com/" + org + "/"},
		},
		"createdDate": "2026-12-01T10:04:01.000Z",
	})
	return body
}

// Sender posts notifications to one subscription's URL as Azure's Web Hooks consumer does.
type Sender struct {
	URL      string
	Username string // Azure sends whatever the subscription holds; the status function ignores it
	Password string // with Username also "", no Authorization header is sent

	HTTP   *http.Client    // nil: a client with a 10 s timeout
	Delays []time.Duration // the waits before each retry; nil: AzureDelays
}

// Delivery is how one notification went.
type Delivery struct {
	Statuses  []int // each attempt's status; 0 for an attempt that got no answer
	Bodies    [][]byte
	Delivered bool // a 2xx ended it
	Probation bool // a failure Azure does not retry: the subscription is put on probation
	Disabled  bool // 410: Azure disables the subscription
}

// Last returns the last attempt's status and body.
func (d Delivery) Last() (int, []byte) {
	if len(d.Statuses) == 0 {
		return 0, nil
	}
	return d.Statuses[len(d.Statuses)-1], d.Bodies[len(d.Bodies)-1]
}

// transient are the statuses Azure retries.
func transient(status int) bool {
	switch status {
	case 0, http.StatusRequestTimeout, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Send posts body, retrying transient failures by Azure's rule. An attempt that gets
// no answer counts as transient (Azure does not document it). The error is only for
// a cancelled ctx; how the delivery went is in Delivery.
func (s *Sender) Send(ctx context.Context, body []byte) (Delivery, error) {
	delays := s.Delays
	if delays == nil {
		delays = AzureDelays
	}
	var d Delivery
	for attempt := 0; ; attempt++ {
		status, answer := s.post(ctx, body)
		d.Statuses, d.Bodies = append(d.Statuses, status), append(d.Bodies, answer)
		switch {
		case status/100 == 2:
			d.Delivered = true
			return d, nil
		case status == http.StatusGone:
			d.Disabled = true
			return d, nil
		case !transient(status):
			d.Probation = true
			return d, nil
		case attempt == len(delays):
			d.Probation = true // retries exhausted
			return d, nil
		}
		select {
		case <-time.After(delays[attempt]):
		case <-ctx.Done():
			return d, ctx.Err()
		}
	}
}

func (s *Sender) post(ctx context.Context, body []byte) (int, []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "VSServices/16.255.0 (ServiceHooks)")
	req.Header.Set("X-Request-Id", rand.Text())
	if s.Username != "" || s.Password != "" {
		req.SetBasicAuth(s.Username, s.Password)
	}
	client := s.HTTP
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, nil
	}
	return resp.StatusCode, answer
}
