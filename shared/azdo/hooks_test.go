package azdo_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
)

func hooksServer(t *testing.T) (*azdotest.Server, *azdo.Client) {
	t.Helper()
	az := azdotest.New("contoso")
	t.Cleanup(az.Close)
	az.AddPipeline(azdotest.RunsPipeline{Project: "Payments", ID: 42, Name: "deploy", Folder: `\team\ops`})
	az.AddPipeline(azdotest.RunsPipeline{Project: "Payments", ID: 43, Name: "locked", QueueDenied: true})
	az.AddPAT("full-pat")
	return az, &azdo.Client{BaseURL: az.URL, Org: "contoso", Backoff: 1}
}

func TestReadsAProjectAPipelineAndItsQueuePermission(t *testing.T) {
	_, c := hooksServer(t)
	ctx, auth := context.Background(), azdo.PAT("full-pat")
	p, err := c.GetProject(ctx, "payments", auth)
	if err != nil || p.ID != azdotest.ProjectID("Payments") || p.Name != "Payments" {
		t.Fatalf("GetProject = %+v, %v", p, err)
	}
	info, err := c.GetPipeline(ctx, "Payments", 42, auth)
	if err != nil || info.ID != 42 || info.Name != "deploy" || info.Folder != `\team\ops` {
		t.Fatalf("GetPipeline = %+v, %v", info, err)
	}
	for id, want := range map[int]bool{42: true, 43: false} {
		if may, err := c.CanQueue(ctx, p.ID, info.Folder, id, auth); err != nil || may != want {
			t.Errorf("CanQueue(%d) = %v, %v, want %v", id, may, err, want)
		}
	}
	if _, err := c.GetPipeline(ctx, "Payments", 99, auth); !errors.Is(err, azdo.ErrPipelineNotFound) || errors.Is(err, azdo.ErrProjectNotFound) {
		t.Errorf("GetPipeline of an unknown id = %v, want ErrPipelineNotFound", err)
	}
	if _, err := c.GetProject(ctx, "Nowhere", auth); !errors.Is(err, azdo.ErrProjectNotFound) {
		t.Errorf("GetProject of an unknown project = %v, want ErrProjectNotFound", err)
	}
}

// TestScopesAsAzureChainsThem: Build (read and execute) reaches everything the checks
// and -fix use; a PAT with another scope is refused as a wrong one is.
func TestScopesAsAzureChainsThem(t *testing.T) {
	az, c := hooksServer(t)
	az.AddScopedPAT("project-pat", azdotest.ScopeProject)
	az.AddScopedPAT("hooks-read-pat", azdotest.ScopeHooks)
	ctx := context.Background()
	tests := []struct {
		pat              string
		project, list    error
		pipeline, create error
	}{
		{"full-pat", nil, nil, nil, nil},
		{"project-pat", nil, azdo.ErrCredentials, azdo.ErrCredentials, azdo.ErrCredentials},
		{"hooks-read-pat", nil, nil, azdo.ErrCredentials, azdo.ErrCredentials},
		{"unknown-pat", azdo.ErrCredentials, azdo.ErrCredentials, azdo.ErrCredentials, azdo.ErrCredentials},
	}
	for _, tt := range tests {
		auth := azdo.PAT(tt.pat)
		_, project := c.GetProject(ctx, "Payments", auth)
		_, list := c.Subscriptions(ctx, auth)
		_, pipeline := c.GetPipeline(ctx, "Payments", 42, auth)
		_, create := c.CreateSubscription(ctx, subscriptionTo("https://relay.example/azure/events"), auth)
		for _, got := range []struct {
			what      string
			err, want error
		}{{"GetProject", project, tt.project}, {"Subscriptions", list, tt.list}, {"GetPipeline", pipeline, tt.pipeline}, {"CreateSubscription", create, tt.create}} {
			if got.want == nil && got.err != nil || got.want != nil && !errors.Is(got.err, got.want) {
				t.Errorf("%s with %s = %v, want %v", got.what, tt.pat, got.err, got.want)
			}
		}
	}
}

func subscriptionTo(url string) azdo.Subscription {
	return azdo.Subscription{PublisherID: azdo.PipelinesPublisher, EventType: azdo.RunStateChangedEvent, ResourceVersion: azdo.PipelinesResourceVersion,
		ConsumerID: azdo.WebHooksConsumer, ConsumerActionID: azdo.HTTPRequestAction,
		PublisherInputs: map[string]string{"projectId": azdotest.ProjectID("Payments")},
		ConsumerInputs:  map[string]string{"url": url, "basicAuthUsername": "u", "basicAuthPassword": "hook-password"}}
}

// TestSubscriptionsRoundTrip: created, listed with the password masked, re-enabled
// with the masked value sent back, which keeps the stored password.
func TestSubscriptionsRoundTrip(t *testing.T) {
	az, c := hooksServer(t)
	ctx, auth := context.Background(), azdo.PAT("full-pat")
	made, err := c.CreateSubscription(ctx, subscriptionTo("https://relay.example/azure/events"), auth)
	if err != nil || made.ID == "" || made.State() != azdo.StatusEnabled || made.ConsumerInputs["basicAuthPassword"] != azdo.MaskedValue {
		t.Fatalf("CreateSubscription = %+v, %v, want it enabled, its password masked", made, err)
	}
	az.SetSubscriptionStatus(made.ID, azdo.StatusDisabledBySystem)
	list, err := c.Subscriptions(ctx, auth)
	if err != nil || len(list) != 1 || list[0].State() != azdo.StatusDisabledBySystem || list[0].ConsumerInputs["basicAuthPassword"] != azdo.MaskedValue {
		t.Fatalf("Subscriptions = %+v, %v", list, err)
	}
	sub := list[0]
	sub.Status = azdo.StatusEnabled
	if _, err := c.ReplaceSubscription(ctx, sub, auth); err != nil {
		t.Fatal(err)
	}
	if s := az.Subscriptions()[0]; s.Status != azdo.StatusEnabled || s.ConsumerInputs["basicAuthPassword"] != "hook-password" {
		t.Errorf("after the PUT: %s, password kept %v", s.Status, s.ConsumerInputs["basicAuthPassword"] == "hook-password")
	}
	// The masked password does not follow the subscription to another URL.
	sub.ConsumerInputs["url"] = "https://elsewhere.example/azure/events"
	if _, err := c.ReplaceSubscription(ctx, sub, auth); !errors.Is(err, azdo.ErrRefused) {
		t.Errorf("moving a masked password to another URL = %v, want ErrRefused (Azure's 400)", err)
	}
	if _, err := c.CreateSubscription(ctx, subscriptionTo("http://relay.example/azure/events"), auth); !errors.Is(err, azdo.ErrRefused) {
		t.Errorf("Basic auth to an http URL = %v, want ErrRefused (Azure requires https)", err)
	}
	sub.ID = "00000000-0000-0000-0000-000000000000"
	sub.ConsumerInputs["url"] = "https://relay.example/azure/events"
	if _, err := c.ReplaceSubscription(ctx, sub, auth); !errors.Is(err, azdo.ErrNotFound) {
		t.Errorf("replacing an unknown subscription = %v, want ErrNotFound", err)
	}
}

// TestAPIAnswersAreClassed: what Azure answers, besides the resource, names its cause.
func TestAPIAnswersAreClassed(t *testing.T) {
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		want   error
	}{
		{"the sign-in page", 203, "text/html", "<html>sign in</html>", azdo.ErrCredentials},
		{"refused", 401, "", "", azdo.ErrCredentials},
		{"forbidden", 403, "application/json", `{"typeKey":"AccessCheckException"}`, azdo.ErrForbidden},
		{"throttled", 429, "", "", azdo.ErrThrottled},
		{"a server error", 500, "", "", azdo.ErrServerError},
		{"not JSON of the resource", 200, "application/json", "[", azdo.ErrRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-TFS-FedAuthRedirect") != "Suppress" || !strings.Contains(r.URL.RawQuery, "api-version=7.1") {
					t.Errorf("request %s without Suppress or api-version 7.1", r.URL)
				}
				if tt.ctype != "" {
					w.Header().Set("Content-Type", tt.ctype)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := &azdo.Client{BaseURL: srv.URL, Org: "contoso", MaxAttempts: 1}
			if _, err := c.Subscriptions(context.Background(), azdo.PAT("p")); !errors.Is(err, tt.want) {
				t.Errorf("Subscriptions = %v, want %v", err, tt.want)
			}
		})
	}
}
