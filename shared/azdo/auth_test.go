package azdo_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
)

func TestPATIsBasicWithAnEmptyUserName(t *testing.T) {
	h, err := azdo.PAT(pat).Header(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+pat)); h != want {
		t.Errorf("Header = %q, want %q", h, want)
	}
	azdo.PAT(pat).Refused(h) // nothing to drop
	if again, _ := azdo.PAT(pat).Header(context.Background()); again != h {
		t.Errorf("Header after Refused = %q, want %q", again, h)
	}
	if _, err := azdo.PAT("").Header(context.Background()); !errors.Is(err, azdo.ErrNoCredentials) {
		t.Errorf("PAT(\"\").Header = %v, want %v", err, azdo.ErrNoCredentials)
	}
}

func TestAuthNeverPrintsItsSecret(t *testing.T) {
	f := newEntra(t)
	for _, a := range []azdo.Auth{azdo.PAT(pat), azdo.Entra(f.tokens, f.app)} {
		s := fmt.Sprintf("%v %+v %#v %s", a, a, a, a)
		for _, secret := range []string{pat, base64.StdEncoding.EncodeToString([]byte(":" + pat)), appPass} {
			if strings.Contains(s, secret) {
				t.Errorf("%T prints %q", a, s)
			}
		}
	}
}

func TestEntraRefusedDropsTheToken(t *testing.T) {
	f := newEntra(t)
	auth := azdo.Entra(f.tokens, f.app)
	ctx := context.Background()
	h, err := auth.Header(ctx)
	if err != nil || !strings.HasPrefix(h, "Bearer ") {
		t.Fatalf("Header = %q, %v; want a Bearer token", h, err)
	}
	if again, _ := auth.Header(ctx); again != h || f.login.Requests("") != 1 {
		t.Fatalf("second Header = %q after %d requests, want the cached %q", again, f.login.Requests(""), h)
	}
	auth.Refused("Basic something") // not its header: ignored
	if again, _ := auth.Header(ctx); again != h {
		t.Errorf("Header after refusing another header = %q, want %q", again, h)
	}
	auth.Refused(h)
	fresh, err := auth.Header(ctx)
	if err != nil || fresh == h || f.login.Requests("") != 2 {
		t.Errorf("Header after Refused = %q, %v after %d requests; want a new token", fresh, err, f.login.Requests(""))
	}
}

func TestEntraErrorsAreEntras(t *testing.T) {
	f := newEntra(t)
	app := f.app
	app.TenantID = "not a tenant"
	_, err := azdo.Entra(f.tokens, app).Header(context.Background())
	if !errors.Is(err, entra.ErrConfig) {
		t.Errorf("Header = %v, want %v", err, entra.ErrConfig)
	}
	auditError(t, err)
}
