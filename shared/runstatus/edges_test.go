package runstatus_test

// Edges where a Port run could end with another pipeline's truth, or none.

import (
	"testing"

	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/runstatus/servicehooktest"
)

// A notification carries its organization in its links. Another organization's run 500
// (a second stack's service hook pointed at this URL, both stacks reading one secret)
// is not looked up by this organization's externalRunId: this organization's Port run
// of its own run 500 is left alone.
func TestAnotherOrganizationsRunLeavesThisOnesPortRunAlone(t *testing.T) {
	e := newEnv(t, fullSecret)
	pc := portapi.Credentials{ClientID: clientID, ClientSecret: clientSecret}
	if err := (&portapi.Client{BaseURL: e.port.URL}).Update(t.Context(), pc, portRun, portapi.RunUpdate{ExternalRunID: portapi.ExternalRunID("contoso", "500")}); err != nil {
		t.Fatal(err)
	}
	fabrikams := servicehooktest.Run{Org: "fabrikam", PipelineID: 7, ID: 500, Name: "20261206.9", State: "completed", Result: "failed"}
	a := handle(t, e, hookEvent(servicehooktest.Notification(fabrikams), hookPassword))
	if got, _ := e.port.Run(portRun); got.Status != "IN_PROGRESS" {
		t.Errorf("fabrikam's run 500 failed; contoso's function answered %d %v and contoso's Port run of its own run 500 is %+v: want it untouched", a.status, a.body, got)
	}
}

// The run name is read first. A pipeline started by id whose run name happens to hold
// a word like a Port run id (name: $(Build.SourceBranchName)-$(Rev:r) on branch r_2)
// is looked for under that id, Port answers 404, and the function then finds the Port
// run by the externalRunId, which it ends.
func TestARunNameThatLooksLikeAPortRunIDFallsBackToTheExternalRunID(t *testing.T) {
	e := newEnv(t, fullSecret)
	pc := portapi.Credentials{ClientID: clientID, ClientSecret: clientSecret}
	if err := (&portapi.Client{BaseURL: e.port.URL}).Update(t.Context(), pc, portRun, portapi.RunUpdate{StatusLabel: "Queued in Azure DevOps", ExternalRunID: portapi.ExternalRunID("contoso", "777")}); err != nil {
		t.Fatal(err)
	}
	done := servicehooktest.Run{PipelineID: 7, PipelineName: "deploy-service", ID: 777, Name: "r_2-1", State: "completed", Result: "succeeded"}
	a := handle(t, e, hookEvent(servicehooktest.Notification(done), hookPassword))
	if got, _ := e.port.Run(portRun); got.Status != "SUCCESS" {
		t.Errorf("the run the relay started succeeded; the function answered %d %v and its Port run is %+v: want SUCCESS", a.status, a.body, got)
	}
}
