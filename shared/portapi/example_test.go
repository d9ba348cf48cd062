package portapi_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
)

func Example() {
	port := porttest.New("my-client-id", "my-client-secret") // stands in for https://api.port.io
	defer port.Close()
	port.CreateRuns("r_accepted", "r_refused", "r_running") // as invoking an action does

	c := &portapi.Client{BaseURL: port.URL}
	creds := portapi.Credentials{ClientID: "my-client-id", ClientSecret: "my-client-secret"}
	ctx := context.Background()

	err := c.Log(ctx, creds, "r_accepted", "Azure DevOps accepted webhook deploy (pipeline queued)")
	fmt.Println(err, port.Logs("r_accepted")[0].Message)

	err = c.Update(ctx, creds, "r_refused", portapi.RunUpdate{Status: "FAILURE", StatusLabel: "Webhook not registered", Summary: "Create the incoming webhook deploy in Azure DevOps."})
	u := port.Updates("r_refused")[0]
	fmt.Println(err, u.Status, u.StatusLabel)

	done := portapi.RunUpdate{Status: "SUCCESS", StatusLabel: "Azure DevOps run succeeded", Link: "https://dev.azure.com/org/p/_build/results?buildId=11", ExternalRunID: "11"}
	err = c.Update(ctx, creds, "r_running", done)
	run, _ := port.Run("r_running")
	fmt.Println(err, run.Status, run.Link)
	err = c.Update(ctx, creds, "r_running", done)
	fmt.Println(errors.Is(err, portapi.ErrRunEnded))
	fmt.Println("token requests:", port.TokenRequests())
	// Output:
	// <nil> Azure DevOps accepted webhook deploy (pipeline queued)
	// <nil> FAILURE Webhook not registered
	// <nil> SUCCESS https://dev.azure.com/org/p/_build/results?buildId=11
	// true
	// token requests: 1
}

func ExampleExternalRunID() {
	// The relay names run 42 of the contoso organization on the Port run it started;
	// the status function finds that Port run by the same name.
	fmt.Println(portapi.ExternalRunID("contoso", "42"))
	// Output: ado_contoso_42
}
