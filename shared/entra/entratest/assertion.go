package entratest

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// This file checks a client assertion as Entra checks a federated identity credential's token: it trusts an issuer
// only once a credential names it, then fetches that issuer's keys through OIDC discovery.

const (
	clockSkew    = 5 * time.Minute // how far ahead nbf may be
	maxDiscovery = 1 << 20
	fedDocs      = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
	// Entra's time format in AADSTS700024: "2024-10-02T22:05:03.6755165Z".
	validityFormat = "2006-01-02T15:04:05.0000000Z"
)

var errMalformed = badRequest(50027, "JWT token is invalid or malformed.")

// claims are the assertion's claims Entra reads.
type claims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	Expiry   *float64 `json:"exp"`
	NotBef   *float64 `json:"nbf"`
}

// audience is aud: one string or an array of them (RFC 7519, 4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// verifyAssertion checks a JWT against the app's (replicated) federated credentials.
func (s *Server) verifyAssertion(ctx context.Context, token string, creds []federated, now time.Time) *refusal {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errMalformed
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var c claims
	if !decodeSegment(parts[0], &header) || !decodeSegment(parts[1], &c) || c.Issuer == "" || c.Expiry == nil {
		return errMalformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || header.Alg != "RS256" {
		// RS256 is what the relay sends; no source found says which other algorithms Entra accepts.
		return errMalformed
	}
	if len(creds) == 0 {
		return badRequest(70021, "No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'. %s",
			c.Issuer, c.Subject, strings.Join(c.Audience, ","), fedDocs)
	}
	creds = slices.DeleteFunc(creds, func(f federated) bool { return f.issuer != c.Issuer })
	if len(creds) == 0 {
		return invalidClient(700211, "No matching federated identity record found for presented assertion issuer '%s'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. %s", c.Issuer, fedDocs)
	}

	keys, e := s.issuerKeys(ctx, c.Issuer)
	if e != nil {
		return e
	}
	key, ok := keys[header.Kid]
	if !ok || header.Kid == "" {
		return invalidClient(7000272, "The certificate with identifier %s used to sign the federated credential could not be found in the metadata of identity provider %s. Please validate that your Identity Provider's metadata exposes the key used to sign the incoming token.", header.Kid, c.Issuer)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig) != nil {
		return invalidClient(700027, "Client assertion contains an invalid signature.")
	}

	exp := unixTime(*c.Expiry)
	nbf := time.Unix(0, 0).UTC()
	if c.NotBef != nil {
		nbf = unixTime(*c.NotBef)
	}
	if !now.Before(exp) || now.Add(clockSkew).Before(nbf) {
		return invalidClient(700024, "Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
			now.UTC().Format(validityFormat), nbf.Format(validityFormat), exp.Format(validityFormat))
	}

	creds = slices.DeleteFunc(creds, func(f federated) bool { return f.subject != c.Subject })
	if len(creds) == 0 {
		return invalidClient(700213, "No matching federated identity record found for presented assertion subject '%s'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. %s", c.Subject, fedDocs)
	}
	if !slices.ContainsFunc(creds, func(f federated) bool { return slices.Contains(c.Audience, f.audience) }) {
		return invalidClient(700212, "No matching federated identity record found for presented assertion audience '%s'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. %s", strings.Join(c.Audience, ","), fedDocs)
	}
	return nil
}

func decodeSegment(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	return err == nil && json.Unmarshal(b, v) == nil
}

func unixTime(secs float64) time.Time {
	return time.Unix(0, 0).Add(time.Duration(secs * float64(time.Second))).UTC()
}

// issuerKeys fetches the issuer's RSA keys by kid through OIDC discovery; any failure is AADSTS50166.
func (s *Server) issuerKeys(ctx context.Context, issuer string) (map[string]*rsa.PublicKey, *refusal) {
	s.mu.Lock()
	client := s.discovery
	s.mu.Unlock()
	failed := badRequest(50166, "Request to External OIDC endpoint failed.")

	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := fetchJSON(ctx, client, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", &doc); err != nil ||
		doc.Issuer != issuer || doc.JWKSURI == "" {
		return nil, failed
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := fetchJSON(ctx, client, doc.JWKSURI, &set); err != nil {
		return nil, failed
	}
	keys := make(map[string]*rsa.PublicKey)
	for _, k := range set.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			continue
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return keys, nil
}

// fetchJSON GETs a document from a loopback address, as Entra GETs it from the issuer's host.
func fetchJSON(ctx context.Context, client *http.Client, rawURL string, v any) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("not an http(s) URL")
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return errors.New("not a loopback address")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxDiscovery)).Decode(v)
}
