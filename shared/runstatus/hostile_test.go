package runstatus_test

// Reproductions of a hostile review: each test fails on the code it was written
// against, and shows a Port run that does not end with its own pipeline's truth.

import (
	"testing"

	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/runstatus/servicehooktest"
)

// A notification carries its organization in every link (resourceContainers, the
// run's url and page), but the function names the Port run by its own
// AZURE_DEVOPS_ORG and the Azure run id alone. A notification of another
// organization's run 500 (a second stack's service hook pointed at this URL, both
// stacks reading one secret, as one Port organization's would) ends this
// organization's Port run of its own run 500 with the other run's result.
func TestHostileAnotherOrganizationsRunEndsThisOnesPortRun(t *testing.T) {
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

// The run name is read first, and when it holds a word like a Port run id the
// externalRunId is never asked: a pipeline started by id whose run name happens to
// hold one (name: $(Build.SourceBranchName)-$(Rev:r) on branch r_2) is looked for
// under that id, Port answers 404, the notification is ignored, and the Port run the
// relay started stays in progress.
func TestHostileARunNameThatLooksLikeAPortRunIDHidesThePortRun(t *testing.T) {
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
