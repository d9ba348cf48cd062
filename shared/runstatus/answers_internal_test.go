package runstatus

import (
	"testing"

	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/secret"
)

// TestEveryErrorHasAnAnswer: a sentinel of a package the status function calls that the
// table forgot would fall through to a 500, which puts Azure's subscription on probation.
func TestEveryErrorHasAnAnswer(t *testing.T) {
	for pkg, errs := range map[string][]error{"portapi": portapi.Errors, "secret": secret.Errors} {
		for _, err := range answers.Missing(errs...) {
			t.Errorf("%s's %q has no answer in the status function's table", pkg, err)
		}
	}
}
