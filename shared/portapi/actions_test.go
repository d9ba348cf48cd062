package portapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
)

func TestActionsListsWhatPortHas(t *testing.T) {
	port := porttest.New("id", "secret")
	defer port.Close()
	port.SetActions(porttest.Action{Identifier: "deploy", Trigger: map[string]any{"type": "self-service"},
		InvocationMethod: porttest.InvocationMethod{Type: "WEBHOOK", URL: "https://relay.example/", Synchronized: true, Body: json.RawMessage(`{"a":1}`)}})
	c := &portapi.Client{BaseURL: port.URL}
	got, err := c.Actions(context.Background(), portapi.Credentials{ClientID: "id", ClientSecret: "secret"})
	if err != nil || len(got) != 1 || got[0].Identifier != "deploy" || got[0].InvocationMethod.URL != "https://relay.example/" ||
		!got[0].InvocationMethod.Synchronized || string(got[0].InvocationMethod.Body) != `{"a":1}` {
		t.Fatalf("Actions = %+v, %v", got, err)
	}
	// An expired token is fetched again once.
	port.ExpireTokens()
	if _, err := c.Actions(context.Background(), portapi.Credentials{ClientID: "id", ClientSecret: "secret"}); err != nil {
		t.Errorf("Actions after the token expired = %v", err)
	}
	if _, err := c.Actions(context.Background(), portapi.Credentials{ClientID: "id", ClientSecret: "wrong"}); !errors.Is(err, portapi.ErrToken) {
		t.Errorf("Actions with a wrong secret = %v, want ErrToken", err)
	}
	down := &portapi.Client{BaseURL: "http://127.0.0.1:9"}
	if _, err := down.Actions(context.Background(), portapi.Credentials{ClientID: "id", ClientSecret: "secret"}); !errors.Is(err, portapi.ErrUnavailable) {
		t.Errorf("Actions with Port unreachable = %v, want ErrUnavailable", err)
	}
}
