package azdo

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/port-azure-relay/relay/shared/entra"
)

// Auth gives the Authorization header for Azure DevOps' REST API. Run calls Header
// for each request and Refused with a header Azure refused, so that a cached token
// can be dropped; Run tries again once when Header then gives another header.
type Auth interface {
	Header(ctx context.Context) (string, error)
	Refused(header string)
}

// PAT signs in with a personal access token: Basic, an empty user name and the
// token as the password, as Azure DevOps documents and Microsoft's own Go client
// sends it. It needs the scope "Build: Read & execute" (vso.build_execute). An
// empty token is an error from Header, before anything is sent.
func PAT(pat string) Auth {
	if pat == "" {
		return patAuth{}
	}
	return patAuth{header: "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+pat))}
}

type patAuth struct{ header string }

func (a patAuth) Header(context.Context) (string, error) {
	if a.header == "" {
		return "", ErrNoCredentials
	}
	return a.header, nil
}

// Refused does nothing: a refused PAT stays refused until someone replaces it.
func (patAuth) Refused(string) {}

// String and GoString keep the token out of %v, %+v and %#v.
func (patAuth) String() string   { return "azdo.PAT(redacted)" }
func (patAuth) GoString() string { return "azdo.PAT(redacted)" }

// Entra signs in as a Microsoft Entra service principal: Bearer, with a token from
// tokens, which caches it. A token Azure DevOps refuses is invalidated, so that the
// next Header asks Entra for a new one. Header's errors are entra's, wrapped
// (test them with errors.Is against entra's sentinels); they never hold a token.
func Entra(tokens *entra.Client, app entra.App) Auth {
	return entraAuth{tokens: tokens, app: app}
}

type entraAuth struct {
	tokens *entra.Client
	app    entra.App
}

const bearer = "Bearer "

func (a entraAuth) Header(ctx context.Context) (string, error) {
	if a.tokens == nil {
		return "", ErrNoCredentials
	}
	tok, err := a.tokens.Token(ctx, a.app)
	if err != nil {
		return "", fmt.Errorf("azdo: Entra token: %w", err)
	}
	return bearer + tok, nil
}

func (a entraAuth) Refused(header string) {
	if a.tokens != nil && strings.HasPrefix(header, bearer) {
		a.tokens.Invalidate(a.app, strings.TrimPrefix(header, bearer))
	}
}

func (a entraAuth) String() string   { return "azdo.Entra(" + a.app.String() + ")" }
func (a entraAuth) GoString() string { return a.String() }
