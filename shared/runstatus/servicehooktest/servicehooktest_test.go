package servicehooktest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/runstatus/servicehooktest"
)

func TestSenderRetriesAsAzureDoes(t *testing.T) {
	tests := []struct {
		name    string
		answers []int // the receiver's answers in turn; the last repeats
		want    []int
		end     string // delivered, probation or disabled
	}{
		{"a 200 is delivered at once", []int{200}, []int{200}, "delivered"},
		{"503 then 200 is retried and delivered", []int{503, 200}, []int{503, 200}, "delivered"},
		{"408, 502 and 504 are retried", []int{408, 502, 504, 204}, []int{408, 502, 504, 204}, "delivered"},
		{"a 500 is not retried: probation", []int{500}, []int{500}, "probation"},
		{"a 401 is not retried: probation", []int{401}, []int{401}, "probation"},
		{"a 410 disables the subscription", []int{410}, []int{410}, "disabled"},
		{"503 for ever: 8 retries, then probation", []int{503}, slices.Repeat([]int{503}, 9), "probation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			n := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				status := tt.answers[min(n, len(tt.answers)-1)]
				n++
				mu.Unlock()
				if u, p, ok := r.BasicAuth(); !ok || u != "azure" || p != "hook-pass" {
					t.Errorf("Basic auth = %q %q %v, want azure hook-pass", u, p, ok)
				}
				w.WriteHeader(status)
			}))
			defer srv.Close()
			s := &servicehooktest.Sender{URL: srv.URL, Username: "azure", Password: "hook-pass", Delays: slices.Repeat([]time.Duration{time.Millisecond}, 8)}
			d, err := s.Send(t.Context(), servicehooktest.Notification(servicehooktest.Run{ID: 1, Name: "x", State: "inProgress"}))
			if err != nil {
				t.Fatal(err)
			}
			end := map[bool]string{true: "delivered"}[d.Delivered] + map[bool]string{true: "probation"}[d.Probation] + map[bool]string{true: "disabled"}[d.Disabled]
			if !slices.Equal(d.Statuses, tt.want) || end != tt.end {
				t.Errorf("Send() = %v %s, want %v %s", d.Statuses, end, tt.want, tt.end)
			}
		})
	}
}

func TestNotificationHasTheDocumentedFields(t *testing.T) {
	r := servicehooktest.Run{PipelineID: 7, PipelineName: "deploy-service", ID: 11, Name: "20261201.1 r_QOz6WoOB1Q2lmhZZ", State: "completed", Result: "succeeded"}
	var n struct {
		EventType string `json:"eventType"`
		Resource  struct {
			Run struct {
				ID     int    `json:"id"`
				Name   string `json:"name"`
				State  string `json:"state"`
				Result string `json:"result"`
				Links  struct {
					Web struct{ Href string } `json:"web"`
				} `json:"_links"`
			} `json:"run"`
			Pipeline struct {
				ID   int    `json:"id"`
				Name string `json:"name"`
			} `json:"pipeline"`
		} `json:"resource"`
		ResourceVersion string `json:"resourceVersion"`
	}
	if err := json.Unmarshal(servicehooktest.Notification(r), &n); err != nil {
		t.Fatal(err)
	}
	run := n.Resource.Run
	if n.EventType != servicehooktest.EventType || n.ResourceVersion != "5.1-preview.1" || run.ID != 11 || run.Name != r.Name ||
		run.State != "completed" || run.Result != "succeeded" || run.Links.Web.Href != r.WebURL() || n.Resource.Pipeline.Name != "deploy-service" {
		t.Errorf("Notification() = %+v", n)
	}
}

// TestNotificationWithoutAnID: as in Microsoft's current sample, the run has neither
// id nor name; its id is in its self link, its url and its page's buildId, and a
// stage event's in the stage's page.
func TestNotificationWithoutAnID(t *testing.T) {
	r := servicehooktest.Run{PipelineID: 7, ID: 11, Name: "20261201.1", State: "completed", Result: "succeeded", NoID: true}
	var n struct {
		Resource struct {
			Run   map[string]json.RawMessage `json:"run"`
			Stage struct {
				Links struct {
					Web struct{ Href string } `json:"web"`
				} `json:"_links"`
			} `json:"stage"`
		} `json:"resource"`
	}
	if err := json.Unmarshal(servicehooktest.Notification(r), &n); err != nil {
		t.Fatal(err)
	}
	var links struct {
		Self, Web struct{ Href string }
	}
	_ = json.Unmarshal(n.Resource.Run["_links"], &links)
	if n.Resource.Run["id"] != nil || n.Resource.Run["name"] != nil || !strings.HasSuffix(links.Self.Href, "/runs/11") ||
		string(n.Resource.Run["url"]) != `"`+links.Self.Href+`"` || links.Web.Href != r.WebURL() || !strings.HasSuffix(r.WebURL(), "buildId=11") {
		t.Errorf("Notification(NoID) run = %s, want no id or name, the id in the links", n.Resource.Run)
	}
	if err := json.Unmarshal(servicehooktest.StageNotification(r, servicehooktest.Stage{Name: "build", State: "running"}), &n); err != nil {
		t.Fatal(err)
	}
	if n.Resource.Run["id"] != nil || n.Resource.Run["name"] != nil || n.Resource.Stage.Links.Web.Href != r.WebURL() {
		t.Errorf("StageNotification(NoID) = %+v, want a run without id or name, the stage linked to the run's page", n.Resource)
	}
}
