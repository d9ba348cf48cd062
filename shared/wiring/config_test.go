package wiring_test

import (
	"errors"
	"testing"

	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/wiring"
)

func TestLoadWatchConfig(t *testing.T) {
	valid := map[string]string{
		"PORT_SECRET_ID": "port/azure-relay", "AZURE_DEVOPS_ORG": "contoso",
		"AZURE_DEVOPS_PIPELINES": "deploy=Payments/42", "SERVICE_HOOK_URL": "https://abc.execute-api.eu-west-1.amazonaws.com/azure/events",
	}
	with := func(k, v string) func(string) string {
		return func(name string) string {
			if name == k {
				return v
			}
			return valid[name]
		}
	}
	c, err := wiring.LoadWatchConfig(with("", ""))
	if err != nil || c.Org != "contoso" || len(c.Pipelines) != 1 || c.AzureURL != "https://dev.azure.com" || c.Namespace != "PortAzureRelay" {
		t.Fatalf("LoadWatchConfig = %+v, %v", c, err)
	}
	for _, tt := range []struct{ name, key, value, want string }{
		{"no hook URL", "SERVICE_HOOK_URL", "", "SERVICE_HOOK_URL"},
		{"an http hook URL", "SERVICE_HOOK_URL", "http://abc/azure/events", "SERVICE_HOOK_URL"},
		{"the relay's URL for the hook's", "SERVICE_HOOK_URL", "https://abc/", "SERVICE_HOOK_URL"},
		{"no secret", "PORT_SECRET_ID", "", "PORT_SECRET_ID"},
		{"a bad organization", "AZURE_DEVOPS_ORG", "a/b", "AZURE_DEVOPS_ORG"},
		{"a bad pipeline entry", "AZURE_DEVOPS_PIPELINES", "deploy", "AZURE_DEVOPS_PIPELINES"},
	} {
		var cerr *config.Error
		if _, err := wiring.LoadWatchConfig(with(tt.key, tt.value)); !errors.As(err, &cerr) || cerr.Var != tt.want {
			t.Errorf("%s: LoadWatchConfig = %v, want an error naming %s", tt.name, err, tt.want)
		}
	}
}
