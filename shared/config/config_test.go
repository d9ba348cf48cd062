package config_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/config"
)

// env is a map-backed getenv.
type env map[string]string

func (e env) get(name string) string { return e[name] }

// with returns a copy of e with name set to value, or removed when value is unset.
func (e env) with(name, value string) env {
	out := make(env, len(e)+1)
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

func TestLoadVerifier(t *testing.T) {
	base := env{"PORT_SECRET_ID": "port/client-secret"}
	t.Run("the secret id alone takes the defaults", func(t *testing.T) {
		got, err := config.Load(base.get)
		want := config.Common{SecretID: "port/client-secret", Header: "x-port-signature", Tolerance: 5 * time.Minute, SecretTTL: 5 * time.Minute, Namespace: "PortAzureRelay"}
		if err != nil || got != want {
			t.Errorf("LoadVerifier() = %+v, %v, want %+v, nil", got, err, want)
		}
	})
	t.Run("the relay's variables are not needed", func(t *testing.T) {
		if _, err := config.Load(base.with("AZURE_DEVOPS_ORG", "not an org").get); err != nil {
			t.Errorf("LoadVerifier(AZURE_DEVOPS_ORG=%q) = %v, want nil", "not an org", err)
		}
	})
	t.Run("a header and tolerance are read", func(t *testing.T) {
		e := base.with("AZURE_SIGNATURE_HEADER", "X-Azure-Sig").with("PORT_SIGNATURE_TOLERANCE", "2m")
		got, err := config.Load(e.get)
		if err != nil || got.Header != "x-azure-sig" || got.Tolerance != 2*time.Minute {
			t.Errorf("LoadVerifier() = %+v, %v, want header x-azure-sig and tolerance 2m", got, err)
		}
	})

	refused := []struct {
		name  string
		set   string
		value string
	}{
		{name: "a missing secret id is refused", set: "PORT_SECRET_ID", value: unset},
		{name: "an invalid header name is refused", set: "AZURE_SIGNATURE_HEADER", value: "x(sig)"},
		{name: "a bad tolerance is refused", set: "PORT_SIGNATURE_TOLERANCE", value: "soon"},
		{name: "a tolerance out of range is refused", set: "PORT_SIGNATURE_TOLERANCE", value: "48h"},
		{name: "an invalid metrics namespace is refused", set: "METRICS_NAMESPACE", value: ":ns"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(base.with(tt.set, tt.value).get)
			var cerr *config.Error
			if !errors.As(err, &cerr) || cerr.Var != tt.set {
				t.Errorf("LoadVerifier(%s=%q) = %v, want a *config.Error naming %s", tt.set, tt.value, err, tt.set)
			}
		})
	}
}

// TestAllowedSources is the loader the functions share: each reads the same
// variable the same way.
func TestAllowedSources(t *testing.T) {
	t.Run("unset allows everyone", func(t *testing.T) {
		l, err := config.AllowedSources(env{}.get)
		if err != nil || !l.Empty() {
			t.Errorf("AllowedSources() = %v, %v, want an empty list", l, err)
		}
	})
	t.Run("a list is read", func(t *testing.T) {
		l, err := config.AllowedSources(env{"ALLOWED_SOURCE_IPS": "port-us"}.get)
		if err != nil || !l.Allows(netip.MustParseAddr("44.221.30.248")) || l.Allows(netip.MustParseAddr("3.251.12.205")) {
			t.Errorf("AllowedSources(port-us) = %v, %v, want Port's US addresses", l, err)
		}
	})
	t.Run("a bad list names the variable and the entry in one line", func(t *testing.T) {
		_, err := config.AllowedSources(env{"ALLOWED_SOURCE_IPS": "port-eu, example.com"}.get)
		want := `ALLOWED_SOURCE_IPS entry "example.com" is not an IP address, a CIDR block, port-eu or port-us`
		var cerr *config.Error
		if !errors.As(err, &cerr) || err.Error() != want {
			t.Errorf("AllowedSources() = %v, want %q", err, want)
		}
	})
}

func TestErrorNamesTheVariable(t *testing.T) {
	err := error(&config.Error{Var: "AZURE_DEVOPS_ORG", Reason: "is required"})
	if got, want := err.Error(), "AZURE_DEVOPS_ORG is required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
