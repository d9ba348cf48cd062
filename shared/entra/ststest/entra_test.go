package ststest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/port-azure-relay/relay/shared/entra/entratest"
	"github.com/port-azure-relay/relay/shared/entra/ststest"
)

const (
	tenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	clientID = "a8fdfbd0-da97-42d9-8f1a-fd6a7cb650b4"
)

// The two stand-ins together: Entra verifies STS's token through the issuer's own discovery, as in production.
func TestEntraAcceptsTheTokenOnlyForTheRegisteredCredential(t *testing.T) {
	tests := []struct {
		name                      string
		issuer, subject, audience string // of the federated credential; "" means the right one
		tokenAudience, algorithm  string // of the request to STS
		skew                      time.Duration
		status                    int
		aadsts                    int
	}{
		{name: "the role's token for api://AzureADTokenExchange signs in", status: 200},
		{name: "a subject that differs in case is AADSTS700213", subject: strings.ToLower(ststest.DefaultRole), status: 401, aadsts: 700213},
		{name: "another role's ARN is AADSTS700213", subject: "arn:aws:iam::123456789012:role/other", status: 401, aadsts: 700213},
		{name: "another issuer is AADSTS700211", issuer: "https://abc123-def456.tokens.sts.global.api.aws", status: 401, aadsts: 700211},
		{name: "a token for another audience is AADSTS700212", tokenAudience: "api://other", status: 401, aadsts: 700212},
		{name: "an expired token is AADSTS700024", skew: 10 * time.Minute, status: 401, aadsts: 700024},
		{name: "an ES384 token is refused (RS256 only here)", algorithm: "ES384", status: 400, aadsts: 50027},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stsSrv := newServer(t)
			issuer := stsSrv.EnableFederation()
			entra := entratest.New()
			t.Cleanup(entra.Close)
			entra.AddApp(tenantID, clientID, "")
			entra.AddFederatedCredential(tenantID, clientID, or(tt.issuer, issuer), or(tt.subject, ststest.DefaultRole),
				or(tt.audience, azureAudience))
			if tt.skew != 0 {
				entra.SetClock(func() time.Time { return time.Now().Add(tt.skew) })
			}

			out, err := stsSrv.Client().GetWebIdentityToken(t.Context(), &sts.GetWebIdentityTokenInput{
				Audience: []string{or(tt.tokenAudience, azureAudience)}, SigningAlgorithm: aws.String(or(tt.algorithm, "RS256")),
				DurationSeconds: aws.Int32(300),
			})
			if err != nil {
				t.Fatal(err)
			}
			status, body := signIn(t, entra, aws.ToString(out.WebIdentityToken))
			codes, _ := body["error_codes"].([]any)
			if status != tt.status || tt.aadsts != 0 && (len(codes) != 1 || codes[0] != float64(tt.aadsts)) {
				t.Fatalf("sign-in = %d %v, want %d AADSTS%d", status, body, tt.status, tt.aadsts)
			}
			if tt.status == 200 {
				if _, client, ok := entra.Valid(body["access_token"].(string)); !ok || client != clientID {
					t.Errorf("Valid(access_token) = %q, %v", client, ok)
				}
			}
		})
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func signIn(t *testing.T, entra *entratest.Server, assertion string) (int, map[string]any) {
	t.Helper()
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {clientID},
		"scope":                 {entratest.AzureDevOpsResource + "/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	resp, err := http.PostForm(entra.URL+"/"+tenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}
