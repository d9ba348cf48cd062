package azdotest_test

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
)

func Example() {
	srv := azdotest.New("contoso", azdotest.Webhook{Name: "deploy", Secret: "secret", Header: "X-Hub-Signature"})
	defer srv.Close()
	srv.Script(azdotest.Status(429).RetryAfter(1)) // the first request is throttled

	body := `{"resource":{"message":{"title":"Hello, world!","subtitle":"I'm using WebHooks!"}}}`
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.WebhookURL("deploy"), strings.NewReader(body))
		req.Header.Set("X-Hub-Signature", "sha1=750d33212d3ad4932cc390819050734831a0a94f")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Printf("%d Retry-After=%q\n", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	fmt.Println(srv.Count(), srv.Deliveries()[1].Verified)
	// Output:
	// 429 Retry-After="1"
	// 200 Retry-After=""
	// 2 true
}
