package wiring

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
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

// TestAzureRefusalsNameTheirSide: a federated sign-in refused from a shell is not
// checked (the shell is not the relay's role); Entra's or Azure's refusal of a
// stored credential is a failure.
func TestAzureRefusalsNameTheirSide(t *testing.T) {
	tests := []struct {
		err  error
		want State
	}{
		{fmt.Errorf("azdo: Entra token: %w", entra.ErrFederatedCredential), NotChecked},
		{fmt.Errorf("sts: %w", entra.ErrAWSDenied), NotChecked},
		{fmt.Errorf("sts: %w", entra.ErrSTSUnavailable), NotChecked},
		{fmt.Errorf("entra: %w", entra.ErrRefused), Failed},
		{&azdo.Error{Status: 401, Err: azdo.ErrCredentials}, Failed},
		{&azdo.Error{Err: azdo.ErrUnavailable}, Failed},
	}
	for _, tt := range tests {
		if say, fix, got := azureRefusal(tt.err, "the secret's azurePat"); got != tt.want || say == "" || fix == "" {
			t.Errorf("azureRefusal(%v) = %v (%q, %q), want %v", tt.err, got, say, fix, tt.want)
		}
	}
}
