package portapi_test

import (
	"context"
	"fmt"

	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/porttest"
)

func Example() {
	port := porttest.New("my-client-id", "my-client-secret") // stands in for https://api.port.io
	defer port.Close()

	c := &portapi.Client{BaseURL: port.URL}
	creds := portapi.Credentials{ClientID: "my-client-id", ClientSecret: "my-client-secret"}
	ctx := context.Background()

	err := c.Log(ctx, creds, "r_accepted", "Azure DevOps accepted webhook deploy (pipeline queued)")
	fmt.Println(err, port.Logs("r_accepted")[0].Message)

	err = c.Fail(ctx, creds, "r_refused", "Webhook not registered", "Create the incoming webhook deploy in Azure DevOps.")
	u := port.Updates("r_refused")[0]
	fmt.Println(err, u.Status, u.StatusLabel)
	fmt.Println("token requests:", port.TokenRequests())
	// Output:
	// <nil> Azure DevOps accepted webhook deploy (pipeline queued)
	// <nil> FAILURE Webhook not registered
	// token requests: 1
}
