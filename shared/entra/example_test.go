package entra_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/entra/entratest"
	"github.com/port-azure-relay/relay/shared/entra/ststest"
)

func Example() {
	login := entratest.New() // stands in for https://login.microsoftonline.com
	defer login.Close()
	login.AddApp("contoso.onmicrosoft.com", "a8fdfbd0-da97-42d9-8f1a-fd6a7cb650b4", "s3cret")

	c := &entra.Client{AuthorityHost: login.URL} // AZURE_AUTHORITY_HOST
	app := entra.App{TenantID: "contoso.onmicrosoft.com", ClientID: "a8fdfbd0-da97-42d9-8f1a-fd6a7cb650b4", ClientSecret: "s3cret"}
	ctx := context.Background()

	tok, err := c.Token(ctx, app) // for Authorization: Bearer, on Azure DevOps' Runs API
	_, client, ok := login.Valid(tok)
	fmt.Println(err, client, ok)
	again, _ := c.Token(ctx, app)
	fmt.Println("from memory:", again == tok, "requests:", login.Requests(""))

	app.ClientSecret = "wrong"
	_, err = c.Token(ctx, app)
	fmt.Println(errors.Is(err, entra.ErrRefused))
	fmt.Println(err)
	// Output:
	// <nil> a8fdfbd0-da97-42d9-8f1a-fd6a7cb650b4 true
	// from memory: true requests: 1
	// true
	// entra: token for client a8fdfbd0-da97-42d9-8f1a-fd6a7cb650b4 in tenant contoso.onmicrosoft.com: client credentials refused by Entra: invalid_client AADSTS7000215 (status 401)
}

// A function that stores no secret signs in with its IAM role: STS issues a token for the role, and Entra accepts it
// for the application's federated identity credential (issuer, subject, audience).
func ExampleAWSAssertion() {
	aws := ststest.New() // stands in for STS in the function's region
	defer aws.Close()
	issuer := aws.EnableFederation() // aws iam enable-outbound-web-identity-federation
	login := entratest.New()
	defer login.Close()
	login.AddApp("contoso.onmicrosoft.com", "9d6c9d56-6a1c-4f7e-8a3c-4b1f2e0d7a11", "")

	c := &entra.Client{AuthorityHost: login.URL, Assertion: &entra.AWSAssertion{STS: aws.Client()}}
	app := entra.App{TenantID: "contoso.onmicrosoft.com", ClientID: "9d6c9d56-6a1c-4f7e-8a3c-4b1f2e0d7a11"}
	ctx := context.Background()

	_, err := c.Token(ctx, app)
	fmt.Println(errors.Is(err, entra.ErrFederatedCredential), err)

	login.AddFederatedCredential("contoso.onmicrosoft.com", "9d6c9d56-6a1c-4f7e-8a3c-4b1f2e0d7a11",
		issuer, ststest.DefaultRole, entra.TokenExchangeAudience)
	c = &entra.Client{AuthorityHost: login.URL, Assertion: &entra.AWSAssertion{STS: aws.Client()}} // a new container
	_, err = c.Token(ctx, app)
	fmt.Println(err, "STS calls:", aws.Calls())
	// Output:
	// true entra: token for client 9d6c9d56-6a1c-4f7e-8a3c-4b1f2e0d7a11 in tenant contoso.onmicrosoft.com: no federated identity credential in Entra accepts the AWS token: invalid_request AADSTS70021 (status 400)
	// <nil> STS calls: 2
}
