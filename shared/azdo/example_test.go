package azdo_test

import (
	"fmt"

	"github.com/port-azure-relay/relay/shared/azdo"
)

func ExampleClient_URL() {
	c := &azdo.Client{Org: "contoso"}
	fmt.Println(c.URL("deploy"))

	// A local stand-in, and an organization name that needs escaping.
	c = &azdo.Client{BaseURL: "http://127.0.0.1:8080/", Org: "my org"}
	fmt.Println(c.URL("deploy-prod"))
	// Output:
	// https://dev.azure.com/contoso/_apis/public/distributedtask/webhooks/deploy?api-version=6.0-preview
	// http://127.0.0.1:8080/my%20org/_apis/public/distributedtask/webhooks/deploy-prod?api-version=6.0-preview
}
