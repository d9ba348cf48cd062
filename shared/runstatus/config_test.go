package runstatus_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/allowlist"
	"github.com/port-azure-relay/relay/shared/config"
	"github.com/port-azure-relay/relay/shared/runstatus"
)

// vars is a map-backed getenv.
type vars map[string]string

func (e vars) get(name string) string { return e[name] }

// with returns a copy of e with name set to value, or removed when value is unset.
func (e vars) with(name, value string) vars {
	out := make(vars, len(e)+1)
	for k, v := range e {
		out[k] = v
	}
	if value == unset {
		delete(out, name)
	} else {
		out[name] = value
	}
	return out
}

const unset = "\x00"

func mustList(s string) allowlist.List {
	l, err := allowlist.Parse(s)
	if err != nil {
		panic(err)
	}
	return l
}

func TestLoadStatus(t *testing.T) {
	base := vars{"PORT_SECRET_ID": "port/client-secret", "AZURE_DEVOPS_ORG": " contoso "}
	got, err := runstatus.LoadConfig(base.with("SECRET_CACHE_TTL", "1m").with("LEDGER_TABLE", "relay-ledger").get)
	want := runstatus.Config{SecretID: "port/client-secret", SecretTTL: time.Minute, PortAPIURL: "https://api.port.io", Namespace: "PortAzureRelay", Org: "contoso"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("LoadStatus() = %+v, %v, want %+v, nil", got, err, want)
	}
	if got, err := runstatus.LoadConfig(base.with("ALLOWED_SOURCE_IPS", "192.0.2.0/24").get); err != nil || !reflect.DeepEqual(got.Sources, mustList("192.0.2.0/24")) {
		t.Errorf("LoadStatus(ALLOWED_SOURCE_IPS) = %+v, %v, want the list", got, err)
	}
	for _, tt := range []struct{ name, set, value string }{
		{"a missing secret id is refused", "PORT_SECRET_ID", unset},
		{"a missing org is refused: it names the Port runs the relay started", "AZURE_DEVOPS_ORG", unset},
		{"an org with an underscore is refused: it would make externalRunIds ambiguous", "AZURE_DEVOPS_ORG", "contoso_eu"},
		{"an org with a slash is refused", "AZURE_DEVOPS_ORG", "contoso/x"},
		{"a Port API URL with a query is refused", "PORT_API_URL", "https://api.port.io/?x=1"},
		{"a metrics namespace CloudWatch reserves is refused", "METRICS_NAMESPACE", "AWS/Lambda"},
		{"a bad source allow-list is refused", "ALLOWED_SOURCE_IPS", "port-asia"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runstatus.LoadConfig(base.with(tt.set, tt.value).get)
			var cerr *config.Error
			if !errors.As(err, &cerr) || cerr.Var != tt.set {
				t.Errorf("LoadStatus(%s=%q) = %v, want a *config.Error naming %s", tt.set, tt.value, err, tt.set)
			}
		})
	}
}
