package wiring

import (
	"encoding/json"
	"testing"

	"github.com/port-azure-relay/relay/shared/azdo"
)

func TestCarriesRunID(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"port_context":{"runId":"{{ .run.id }}"}}`, true},
		{`{"port_context":{"runId":"{{.run.id}}"},"x":1}`, true},
		{`{"port_context":{"run_id":"{{ .run.id }}"}}`, false},
		{`{"port_context":{"runId":"r_fixed"}}`, false},
		{`{"runId":"{{ .run.id }}"}`, false},
		{`"{{ . }}"`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := carriesRunID(json.RawMessage(tt.body)); got != tt.want {
			t.Errorf("carriesRunID(%s) = %v, want %v", tt.body, got, tt.want)
		}
	}
}

func TestRoutesNameWhatIsConfigured(t *testing.T) {
	d := &Doctor{Stack: Stack{Webhooks: []string{"port_trigger"}, Pipelines: []azdo.Pipeline{{Name: "deploy"}}}}
	tests := []struct {
		path string
		want bool
	}{
		{"/", true}, {"", true}, {"/webhooks/port_trigger", true}, {"/pipelines/deploy", true},
		{"/webhooks/deploy", false}, {"/pipelines/port_trigger", false}, {"/azure/events", false}, {"/webhooks/", false},
	}
	for _, tt := range tests {
		if _, got := d.route(tt.path); got != tt.want {
			t.Errorf("route(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestResultLines(t *testing.T) {
	tests := []struct {
		r    Result
		want string
	}{
		{passed("secret", "holds clientSecret"), "✓ secret: holds clientSecret"},
		{failed("Port", "refused", "copy both"), "✗ Port: refused → copy both"},
		{notChecked("service hooks", "the PAT lacks the scope", "give it Build"), "– service hooks: not checked: the PAT lacks the scope → give it Build"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
