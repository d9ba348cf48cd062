package azdo_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
)

func ExampleRunBody() {
	port := []byte(`{"port_context":{"runId":"r_abc"},"templateParameters":{"env":"prod","replicas":3,"tags":["a","b"]},"variables":{"LOG_LEVEL":"debug"}}`)
	body, err := azdo.RunBody(port, "refs/heads/main")
	fmt.Println(string(body), err)

	_, err = azdo.RunBody([]byte(`{"templateParameters":["prod"]}`), "")
	fmt.Println(err)
	// Output:
	// {"templateParameters":{"env":"prod","replicas":"3","tags":"[\"a\",\"b\"]"},"variables":{"LOG_LEVEL":{"value":"debug"}},"resources":{"repositories":{"self":{"refName":"refs/heads/main"}}}} <nil>
	// azdo: run parameters: templateParameters must be an object of parameter names and values
}

func ExampleClient_RunURL() {
	c := &azdo.Client{Org: "contoso"}
	fmt.Println(c.RunURL(azdo.Pipeline{Project: "Fabrikam Web", ID: 7}))
	// Output:
	// https://dev.azure.com/contoso/Fabrikam%20Web/_apis/pipelines/7/runs?api-version=7.1
}

func ExampleClient_Run() {
	srv := azdotest.New("contoso") // stands in for https://dev.azure.com
	defer srv.Close()
	srv.AddPipeline(azdotest.RunsPipeline{Project: "Fabrikam Web", ID: 7, Name: "deploy-service", Parameters: []string{"env"}})
	srv.AddPAT("my-pat")

	c := &azdo.Client{BaseURL: srv.URL, Org: "contoso"}
	p := azdo.Pipeline{Name: "deploy", Project: "Fabrikam Web", ID: 7, Branch: "refs/heads/main"}
	body, _ := azdo.RunBody([]byte(`{"port_context":{"runId":"r_abc"},"templateParameters":{"env":"prod"}}`), p.Branch)

	res, err := c.Run(context.Background(), p, body, azdo.PAT("my-pat"))
	fmt.Println(res.ID, res.State, res.WebURL == srv.Runs()[0].WebURL, err)

	body, _ = azdo.RunBody([]byte(`{"templateParameters":{"region":"eu"}}`), p.Branch)
	_, err = c.Run(context.Background(), p, body, azdo.PAT("my-pat"))
	var pe *azdo.ParameterError
	fmt.Println(errors.As(err, &pe), pe.Name, azdo.MayHaveQueued(err))
	fmt.Println(err)

	_, err = c.Run(context.Background(), p, body, azdo.PAT("revoked-pat"))
	fmt.Println(err)
	// Output:
	// 1001 inProgress true <nil>
	// true region false
	// azdo: the pipeline declares no such template parameter: "region" (HTTP 400)
	// azdo: Azure DevOps refused the credentials (HTTP 401)
}
