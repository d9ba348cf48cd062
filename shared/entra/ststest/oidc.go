package ststest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/port-azure-relay/relay/shared/awstest"
)

// This file is the issuer's side: the keys, the tokens they sign, and the OIDC discovery document and JWKS that
// AWS publishes at the account's issuer URL.

// claimsNamespace holds AWS's own claims in the token.
const claimsNamespace = "https://sts.amazonaws.com/"

// sharedKeys are generated once per process: an RSA key takes long enough to slow a suite that starts many servers.
var sharedKeys = sync.OnceValue(func() struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
} {
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return struct {
		rsa *rsa.PrivateKey
		ec  *ecdsa.PrivateKey
	}{r, e}
})

// keySet is one server's signing keys, named by their own kids, and its issuer path.
type keySet struct {
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	rsaKid   string
	ecKid    string
	issuerID string
}

func newKeySet() *keySet {
	k := sharedKeys()
	return &keySet{rsa: k.rsa, ec: k.ec, rsaKid: "rs256-" + rand.Text()[:16], ecKid: "es384-" + rand.Text()[:16],
		issuerID: strings.ToLower(awstest.NewUUID())}
}

// mint signs the token for role with the requested algorithm, audience and lifetime.
func (s *Server) mint(issuer, role string, in *input, now time.Time) (string, time.Time, *awstest.Error) {
	now = now.Truncate(time.Second)
	exp := now.Add(time.Duration(in.duration) * time.Second)
	var aud any = in.audience
	if len(in.audience) == 1 {
		aud = in.audience[0]
	}
	aws := map[string]any{
		"aws_account":   accountOf(role),
		"source_region": awstest.Region,
		"principal_id":  role,
	}
	if len(in.tags) > 0 {
		aws["request_tags"] = in.tags
	}
	claims := map[string]any{
		"iss": issuer, "sub": role, "aud": aud,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
		"jti":           awstest.NewUUID(),
		claimsNamespace: aws,
	}
	kid := s.keys.rsaKid
	if in.algorithm == "ES384" {
		kid = s.keys.ecKid
	}
	header, _ := json.Marshal(map[string]string{"alg": in.algorithm, "kid": kid, "typ": "JWT"})
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", time.Time{}, errInternal
	}
	signed := b64(header) + "." + b64(payload)
	sig, err := s.keys.sign(in.algorithm, signed)
	if err != nil {
		return "", time.Time{}, errInternal
	}
	return signed + "." + b64(sig), exp, nil
}

// sign is JWS's RS256 (PKCS #1 v1.5 over SHA-256) or ES384 (P-384 over SHA-384, r and s as 48 bytes each).
func (k *keySet) sign(alg, signed string) ([]byte, error) {
	if alg == "ES384" {
		sum := sha512.Sum384([]byte(signed))
		r, s, err := ecdsa.Sign(rand.Reader, k.ec, sum[:])
		if err != nil {
			return nil, err
		}
		sig := make([]byte, 96)
		r.FillBytes(sig[:48])
		s.FillBytes(sig[48:])
		return sig, nil
	}
	sum := sha256.Sum256([]byte(signed))
	return rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, sum[:])
}

// serveIssuer answers GET {issuer}/.well-known/openid-configuration and {issuer}/.well-known/jwks.json once
// federation is on; anything else is 404.
func (s *Server) serveIssuer(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	issuer := s.issuer
	s.mu.Unlock()
	base := "/" + s.keys.issuerID + "/.well-known/"
	if issuer == "" || !strings.HasPrefix(r.URL.Path, base) {
		http.NotFound(w, r)
		return
	}
	switch strings.TrimPrefix(r.URL.Path, base) {
	case "openid-configuration":
		writeJSON(w, map[string]any{
			"issuer":                                issuer,
			"jwks_uri":                              issuer + "/.well-known/jwks.json",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256", "ES384"},
		})
	case "jwks.json":
		point, err := s.keys.ec.PublicKey.Bytes() // 0x04 || x || y
		if err != nil {
			http.Error(w, "", http.StatusInternalServerError)
			return
		}
		x, y := point[1:49], point[49:]
		writeJSON(w, map[string]any{"keys": []map[string]string{
			{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": s.keys.rsaKid,
				"n": b64(s.keys.rsa.N.Bytes()), "e": b64(big.NewInt(int64(s.keys.rsa.E)).Bytes())},
			{"kty": "EC", "use": "sig", "alg": "ES384", "kid": s.keys.ecKid, "crv": "P-384", "x": b64(x), "y": b64(y)},
		}})
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// accountOf reads the account id from an IAM ARN (arn:aws:iam::123456789012:role/name).
func accountOf(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) < 6 {
		return awstest.AccountID
	}
	return parts[4]
}
