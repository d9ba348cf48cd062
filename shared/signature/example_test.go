package signature_test

import (
	"fmt"
	"time"

	"github.com/port-azure-relay/relay/shared/signature"
)

func ExampleSignAzure() {
	body := []byte(`{"resource":{"message":{"title":"Hello, world!","subtitle":"I'm using WebHooks!"}}}`)
	fmt.Println(signature.SignAzure([]byte("secret"), body))
	// Output: sha1=750d33212d3ad4932cc390819050734831a0a94f
}

func ExamplePort_Verify() {
	secret := []byte("test")
	body := []byte(`{"port_context":{"runId":"r_abc"},"name":"<svc>&é"}`)
	p := signature.Port{
		Tolerance: 5 * time.Minute,
		Now:       func() time.Time { return time.Unix(1700000060, 0) }, // a minute after Port signed
	}

	err := p.Verify(secret, "v1,vP64bIauDZkvB3Um7fP5jVuQ7aaq/0xKztLlzeT91ts=", "1700000000", body)
	fmt.Println(err)

	err = p.Verify(secret, "v1,vP64bIauDZkvB3Um7fP5jVuQ7aaq/0xKztLlzeT91ts=", "1700000000", []byte(`{"name":"other"}`))
	fmt.Println(err)
	// Output:
	// <nil>
	// signature does not match
}
