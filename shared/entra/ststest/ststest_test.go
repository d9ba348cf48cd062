package ststest_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/entra/ststest"
)

const azureAudience = "api://AzureADTokenExchange"

func newServer(t *testing.T) *ststest.Server {
	t.Helper()
	srv := ststest.New()
	t.Cleanup(srv.Close)
	return srv
}

// oneAttempt turns the SDK's retries off, so that a refusal comes back as it was answered.
func oneAttempt(o *sts.Options) { o.RetryMaxAttempts = 1 }

func request(aud ...string) *sts.GetWebIdentityTokenInput {
	if len(aud) == 0 {
		aud = []string{azureAudience}
	}
	return &sts.GetWebIdentityTokenInput{Audience: aud, SigningAlgorithm: aws.String("RS256"), DurationSeconds: aws.Int32(300)}
}

// jwt is a decoded token.
type jwt struct {
	header struct {
		Alg, Kid, Typ string
	}
	claims map[string]any
	signed string // header.payload
	sig    []byte
}

func decode(t *testing.T, tok string) jwt {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts, want 3", tok, len(parts))
	}
	var j jwt
	for i, v := range []any{&j.header, &j.claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(v); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	j.signed, j.sig = parts[0]+"."+parts[1], sig
	return j
}

// verify checks the token's signature with the key its kid names, fetched as a verifier would: discovery, then JWKS.
func verify(t *testing.T, issuer string, j jwt) {
	t.Helper()
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, issuer+"/.well-known/openid-configuration", &doc)
	if doc.Issuer != issuer {
		t.Fatalf("discovery issuer = %q, want %q", doc.Issuer, issuer)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	getJSON(t, doc.JWKSURI, &set)
	i := slices.IndexFunc(set.Keys, func(k map[string]string) bool { return k["kid"] == j.header.Kid })
	if i < 0 {
		t.Fatalf("kid %q not in the JWKS %v", j.header.Kid, set.Keys)
	}
	k := set.Keys[i]
	num := func(s string) *big.Int {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return new(big.Int).SetBytes(b)
	}
	switch j.header.Alg {
	case "RS256":
		pub := &rsa.PublicKey{N: num(k["n"]), E: int(num(k["e"]).Int64())}
		sum := sha256.Sum256([]byte(j.signed))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], j.sig); err != nil || k["kty"] != "RSA" {
			t.Fatalf("RS256 signature: %v (key %v)", err, k)
		}
	case "ES384":
		point := append([]byte{4}, append(num(k["x"]).FillBytes(make([]byte, 48)), num(k["y"]).FillBytes(make([]byte, 48))...)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P384(), point)
		if err != nil || len(j.sig) != 96 {
			t.Fatalf("ES384 key %v, signature of %d bytes: %v", k, len(j.sig), err)
		}
		sum := sha512.Sum384([]byte(j.signed))
		if !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(j.sig[:48]), new(big.Int).SetBytes(j.sig[48:])) {
			t.Fatal("ES384 signature does not verify")
		}
	default:
		t.Fatalf("alg %q", j.header.Alg)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestTheSDKGetsATokenWithTheClaimsAWSDocuments(t *testing.T) {
	srv := newServer(t)
	issuer := srv.EnableFederation()
	if !strings.HasPrefix(issuer, srv.URL+"/") || srv.EnableFederation() != issuer {
		t.Fatalf("EnableFederation() = %q, want the same URL under %s on every call", issuer, srv.URL)
	}
	before := time.Now().Truncate(time.Second)
	out, err := srv.Client().GetWebIdentityToken(t.Context(), request())
	if err != nil {
		t.Fatalf("GetWebIdentityToken = %v", err)
	}
	exp := aws.ToTime(out.Expiration)
	if d := exp.Sub(before); d < 300*time.Second || d > 302*time.Second {
		t.Errorf("Expiration = %v, %v after the request, want 300 s", exp, d)
	}
	j := decode(t, aws.ToString(out.WebIdentityToken))
	if j.header.Alg != "RS256" || j.header.Kid == "" || j.header.Typ != "JWT" {
		t.Errorf("header = %+v, want RS256 with a kid", j.header)
	}
	c := j.claims
	if c["iss"] != issuer || c["sub"] != ststest.DefaultRole || c["aud"] != azureAudience || c["jti"] == "" {
		t.Errorf("claims = %v, want iss %s, sub %s, aud %s (a string for one audience) and a jti", c, issuer, ststest.DefaultRole, azureAudience)
	}
	iat, _ := c["iat"].(json.Number).Int64()
	nbf, _ := c["nbf"].(json.Number).Int64()
	expClaim, _ := c["exp"].(json.Number).Int64()
	if iat < before.Unix() || nbf != iat || expClaim != iat+300 || expClaim != exp.Unix() {
		t.Errorf("iat %d, nbf %d, exp %d, want iat ≥ %d, nbf = iat, exp = iat + 300 = Expiration", iat, nbf, expClaim, before.Unix())
	}
	ns, _ := c["https://sts.amazonaws.com/"].(map[string]any)
	if ns["aws_account"] != awstest.AccountID || ns["source_region"] != awstest.Region || ns["principal_id"] != ststest.DefaultRole {
		t.Errorf(`claims["https://sts.amazonaws.com/"] = %v`, ns)
	}
	verify(t, issuer, j)
	if srv.Calls() != 1 || srv.Issued() != 1 {
		t.Errorf("Calls() = %d, Issued() = %d, want 1, 1", srv.Calls(), srv.Issued())
	}
}

func TestTheTokenFollowsTheRequest(t *testing.T) {
	srv := newServer(t)
	issuer := srv.EnableFederation()
	role := "arn:aws:iam::210987654321:role/path/Other"
	srv.SetRole(role)
	in := &sts.GetWebIdentityTokenInput{
		Audience: []string{"a", "b"}, SigningAlgorithm: aws.String("ES384"), DurationSeconds: aws.Int32(3600),
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("relay")}},
	}
	out, err := srv.Client().GetWebIdentityToken(t.Context(), in)
	if err != nil {
		t.Fatalf("GetWebIdentityToken = %v", err)
	}
	j := decode(t, aws.ToString(out.WebIdentityToken))
	aud, _ := j.claims["aud"].([]any)
	ns, _ := j.claims["https://sts.amazonaws.com/"].(map[string]any)
	tags, _ := ns["request_tags"].(map[string]any)
	if j.header.Alg != "ES384" || j.claims["sub"] != role || len(aud) != 2 || aud[0] != "a" || aud[1] != "b" ||
		ns["aws_account"] != "210987654321" || tags["team"] != "relay" {
		t.Errorf("token = %+v %v, want ES384, sub %s, aud [a b], the role's account and the tag", j.header, j.claims, role)
	}
	if d := time.Until(aws.ToTime(out.Expiration)); d < 3590*time.Second || d > 3600*time.Second {
		t.Errorf("Expiration in %v, want an hour", d)
	}
	verify(t, issuer, j)
}

// The wire format is pinned: the stand-in parses this body, and an SDK upgrade that changes it shows here.
func TestTheSDKSendsTheQueryProtocol(t *testing.T) {
	srv := newServer(t)
	srv.EnableFederation()
	rec := &recorder{}
	_, err := srv.Client(func(o *sts.Options) { o.HTTPClient = rec }).GetWebIdentityToken(t.Context(), request())
	if err != nil {
		t.Fatalf("GetWebIdentityToken = %v", err)
	}
	const want = "Action=GetWebIdentityToken&Audience.member.1=api%3A%2F%2FAzureADTokenExchange&DurationSeconds=300&SigningAlgorithm=RS256&Version=2011-06-15"
	if rec.body != want || rec.method != http.MethodPost || rec.path != "/" || rec.contentType != "application/x-www-form-urlencoded" {
		t.Errorf("the SDK sent %s %s %q %q, want POST / application/x-www-form-urlencoded %q", rec.method, rec.path, rec.contentType, rec.body, want)
	}
}

type recorder struct {
	method, path, contentType, body string
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	r.method, r.path, r.contentType, r.body = req.Method, req.URL.Path, req.Header.Get("Content-Type"), string(b)
	req.Body = io.NopCloser(bytes.NewReader(b))
	return http.DefaultClient.Do(req)
}

func TestRefusalsBecomeTheSDKsErrors(t *testing.T) {
	long := strings.Repeat("a", 1001)
	eleven := slices.Repeat([]string{azureAudience}, 11)
	tests := []struct {
		name     string
		setup    func(*ststest.Server)
		in       *sts.GetWebIdentityTokenInput
		status   int
		code     string
		message  string // a part of the message
		disabled bool   // federation is left off, and the SDK's error is typed
	}{
		{name: "federation off is OutboundWebIdentityFederationDisabledException",
			status: 403, code: "OutboundWebIdentityFederationDisabledException",
			message: "not enabled for this account", disabled: true},
		{name: "an audience the policy does not allow is AccessDenied",
			setup: func(s *ststest.Server) { s.SetPolicy("api://other", 300) }, status: 403, code: "AccessDenied",
			message: "User: arn:aws:sts::123456789012:assumed-role/relay-RelayFunctionRole-XYZ/ststest is not authorized to perform: sts:GetWebIdentityToken"},
		{name: "one audience of two outside the policy is AccessDenied",
			setup: func(s *ststest.Server) { s.SetPolicy(azureAudience, 300) }, in: request(azureAudience, "api://other"),
			status: 403, code: "AccessDenied"},
		{name: "a duration above the policy's is AccessDenied",
			setup: func(s *ststest.Server) { s.SetPolicy(azureAudience, 299) }, status: 403, code: "AccessDenied"},
		{name: "no duration under a policy that caps it is AccessDenied",
			setup:  func(s *ststest.Server) { s.SetPolicy(azureAudience, 3600) },
			in:     &sts.GetWebIdentityTokenInput{Audience: []string{azureAudience}, SigningAlgorithm: aws.String("RS256")},
			status: 403, code: "AccessDenied"},
		{name: "an empty policy allows nothing",
			setup: func(s *ststest.Server) { s.SetPolicy("", 0) }, status: 403, code: "AccessDenied"},
		{name: "a duration under 60 s is a ValidationError",
			in:     &sts.GetWebIdentityTokenInput{Audience: []string{azureAudience}, SigningAlgorithm: aws.String("RS256"), DurationSeconds: aws.Int32(59)},
			status: 400, code: "ValidationError", message: "greater than or equal to 60"},
		{name: "a duration over an hour is a ValidationError",
			in:     &sts.GetWebIdentityTokenInput{Audience: []string{azureAudience}, SigningAlgorithm: aws.String("RS256"), DurationSeconds: aws.Int32(3601)},
			status: 400, code: "ValidationError", message: "less than or equal to 3600"},
		{name: "eleven audiences are a ValidationError",
			in: request(eleven...), status: 400, code: "ValidationError", message: "at 'audience'"},
		{name: "an audience of 1001 characters is a ValidationError",
			in: request(long), status: 400, code: "ValidationError", message: "between 1 and 1000"},
		{name: "an empty audience is a ValidationError",
			in: request(""), status: 400, code: "ValidationError", message: "between 1 and 1000"},
		{name: "HS256 is a ValidationError",
			in:     &sts.GetWebIdentityTokenInput{Audience: []string{azureAudience}, SigningAlgorithm: aws.String("HS256")},
			status: 400, code: "ValidationError", message: "[RS256, ES384]"},
		{name: "two problems are one ValidationError naming both",
			in:     &sts.GetWebIdentityTokenInput{Audience: []string{azureAudience}, SigningAlgorithm: aws.String("none"), DurationSeconds: aws.Int32(1)},
			status: 400, code: "ValidationError", message: "2 validation errors detected"},
		{name: "a throttled request is Throttling",
			setup: func(s *ststest.Server) { s.SetFault(ststest.Throttle) }, status: 400, code: "Throttling"},
		{name: "a failure is InternalFailure",
			setup: func(s *ststest.Server) { s.SetFault(ststest.InternalError) }, status: 500, code: "InternalFailure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			if !tt.disabled {
				srv.EnableFederation()
			}
			if tt.setup != nil {
				tt.setup(srv)
			}
			in := tt.in
			if in == nil {
				in = request()
			}
			_, err := srv.Client(oneAttempt).GetWebIdentityToken(t.Context(), in)
			var apiErr smithy.APIError
			var respErr *awshttp.ResponseError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.code || !strings.Contains(apiErr.ErrorMessage(), tt.message) ||
				!errors.As(err, &respErr) || respErr.HTTPStatusCode() != tt.status {
				t.Fatalf("GetWebIdentityToken = %v, want %d %s with %q", err, tt.status, tt.code, tt.message)
			}
			var disabled *types.OutboundWebIdentityFederationDisabledException
			if errors.As(err, &disabled) != tt.disabled {
				t.Errorf("errors.As(%v, *OutboundWebIdentityFederationDisabledException) = %v, want %v", err, !tt.disabled, tt.disabled)
			}
			if respErr.ServiceRequestID() == "" {
				t.Errorf("no request id in %v", err)
			}
			if srv.Issued() != 0 {
				t.Errorf("Issued() = %d after a refusal", srv.Issued())
			}
		})
	}
}

func TestAnotherSignatureIsRefused(t *testing.T) {
	srv := newServer(t)
	srv.EnableFederation()
	cfg := aws.Config{Region: awstest.Region, Credentials: credentials.NewStaticCredentialsProvider(awstest.AccessKeyID, "wrong", "")}
	client := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(srv.URL); o.RetryMaxAttempts = 1 })
	_, err := client.GetWebIdentityToken(t.Context(), request())
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "SignatureDoesNotMatch" {
		t.Fatalf("GetWebIdentityToken with a wrong secret key = %v, want SignatureDoesNotMatch", err)
	}
	if srv.Calls() != 0 {
		t.Errorf("Calls() = %d, want 0: an unauthenticated request is not counted", srv.Calls())
	}
}

// Raw requests show what the SDK never sends: the server still refuses them as STS does.
func TestTheServerRefusesWhatTheQueryProtocolDoesNot(t *testing.T) {
	const valid = "Action=GetWebIdentityToken&Audience.member.1=api%3A%2F%2FAzureADTokenExchange&SigningAlgorithm=RS256&Version=2011-06-15"
	tests := []struct {
		name, contentType, body string
		sign                    bool
		key                     string // the access key to sign with, when not the test account's
		tamper                  bool   // change the body after signing
		status                  int
		code                    string
	}{
		{name: "the form the SDK sends passes", body: valid, sign: true, status: 200},
		{name: "a charset parameter passes", contentType: "application/x-www-form-urlencoded; charset=utf-8", body: valid, sign: true, status: 200},
		{name: "another action is InvalidAction", body: strings.Replace(valid, "GetWebIdentityToken", "GetCallerIdentity", 1), sign: true, status: 400, code: "InvalidAction"},
		{name: "another version is InvalidAction", body: strings.Replace(valid, "2011-06-15", "2010-05-08", 1), sign: true, status: 400, code: "InvalidAction"},
		{name: "a JSON body has no action", contentType: "application/x-amz-json-1.1", body: `{"Action":"GetWebIdentityToken"}`, sign: true, status: 400, code: "MissingAction"},
		{name: "no audience is a ValidationError", body: "Action=GetWebIdentityToken&SigningAlgorithm=RS256&Version=2011-06-15", sign: true, status: 400, code: "ValidationError"},
		{name: "no signing algorithm is a ValidationError", body: "Action=GetWebIdentityToken&Audience.member.1=a&Version=2011-06-15", sign: true, status: 400, code: "ValidationError"},
		{name: "a duration that is not a number is a ValidationError", body: valid + "&DurationSeconds=5m", sign: true, status: 400, code: "ValidationError"},
		{name: "no action is MissingAction", body: "Version=2011-06-15", sign: true, status: 400, code: "MissingAction"},
		{name: "an unsigned request is MissingAuthenticationToken", body: valid, status: 403, code: "MissingAuthenticationToken"},
		{name: "an unknown access key is InvalidClientTokenId", body: valid, sign: true, key: "AKIAOTHER", status: 403, code: "InvalidClientTokenId"},
		{name: "a body changed after signing is SignatureDoesNotMatch", body: valid, sign: true, tamper: true, status: 403, code: "SignatureDoesNotMatch"},
	}
	srv := newServer(t)
	srv.EnableFederation()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			ct := tt.contentType
			if ct == "" {
				ct = "application/x-www-form-urlencoded"
			}
			req.Header.Set("Content-Type", ct)
			if tt.sign {
				signRequest(t, req, tt.body, tt.key)
			}
			if tt.tamper {
				changed := strings.Replace(tt.body, "RS256", "ES384", 1)
				req.Body, req.ContentLength = io.NopCloser(strings.NewReader(changed)), int64(len(changed))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || tt.code != "" && !bytes.Contains(body, []byte("<Code>"+tt.code+"</Code>")) {
				t.Fatalf("POST %q = %d %s, want %d %s", tt.body, resp.StatusCode, body, tt.status, tt.code)
			}
			if tt.code != "" && (!bytes.HasPrefix(body, []byte(`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>`)) ||
				!bytes.Contains(body, []byte("<RequestId>")) || resp.Header.Get("Content-Type") != "text/xml") {
				t.Errorf("error answer %s (%s), want STS's ErrorResponse shape in text/xml", body, resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestDiscoveryIsServedOnceFederationIsOn(t *testing.T) {
	srv := newServer(t)
	// Before EnableFederation nobody knows the issuer path; a guess finds nothing either.
	resp, err := http.Get(srv.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("discovery at the root = %d, want 404", resp.StatusCode)
	}
	issuer := srv.EnableFederation()
	var doc map[string]any
	getJSON(t, issuer+"/.well-known/openid-configuration", &doc)
	if doc["issuer"] != issuer || doc["jwks_uri"] != issuer+"/.well-known/jwks.json" {
		t.Errorf("discovery = %v", doc)
	}
}

func TestFaultsAndTheSDKsRetries(t *testing.T) {
	t.Run("down is a transport error", func(t *testing.T) {
		srv := newServer(t)
		srv.EnableFederation()
		srv.SetFault(ststest.Down)
		_, err := srv.Client(oneAttempt).GetWebIdentityToken(t.Context(), request())
		var apiErr smithy.APIError
		if err == nil || errors.As(err, &apiErr) {
			t.Fatalf("GetWebIdentityToken while down = %v, want a transport error", err)
		}
	})
	for _, f := range []struct {
		name  string
		fault ststest.Fault
	}{{"throttling", ststest.Throttle}, {"an internal failure", ststest.InternalError}} {
		t.Run("the SDK retries "+f.name+" once", func(t *testing.T) {
			srv := newServer(t)
			srv.EnableFederation()
			srv.SetFault(f.fault.Times(1))
			if _, err := srv.Client().GetWebIdentityToken(t.Context(), request()); err != nil {
				t.Fatalf("GetWebIdentityToken = %v, want a success on the second attempt", err)
			}
			if srv.Calls() != 2 || srv.Issued() != 1 {
				t.Errorf("Calls() = %d, Issued() = %d, want 2, 1", srv.Calls(), srv.Issued())
			}
		})
	}
	t.Run("slow waits until the client gives up", func(t *testing.T) {
		srv := newServer(t)
		srv.EnableFederation()
		srv.SetFault(ststest.Slow(time.Minute))
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := srv.Client(oneAttempt).GetWebIdentityToken(ctx, request())
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
			t.Fatalf("GetWebIdentityToken = %v after %v, want the deadline", err, time.Since(start))
		}
	})
}

// LoadDefaultConfig reads the machine's environment and files, so every variable it would read is set here.
func TestTheEnvironmentRouteReachesTheServer(t *testing.T) {
	srv := newServer(t)
	srv.EnableFederation()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_CA_BUNDLE":                       "",
		"AWS_CONFIG_FILE":                     dir + "/config",
		"AWS_SHARED_CREDENTIALS_FILE":         dir + "/credentials",
		"AWS_ENDPOINT_URL":                    "",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "",
		"AWS_USE_FIPS_ENDPOINT":               "",
		"AWS_USE_DUALSTACK_ENDPOINT":          "",
		"AWS_DEFAULT_REGION":                  "",
		"AWS_STS_REGIONAL_ENDPOINTS":          "",
	} {
		t.Setenv(k, v)
	}
	env := srv.Env()
	if !slices.Contains(env, "AWS_ENDPOINT_URL_STS="+srv.URL) {
		t.Errorf("Env() = %q, want AWS_ENDPOINT_URL_STS=%s", env, srv.URL)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatalf("LoadDefaultConfig = %v", err)
	}
	if _, err := sts.NewFromConfig(cfg).GetWebIdentityToken(t.Context(), request()); err != nil {
		t.Fatalf("GetWebIdentityToken = %v", err)
	}
}

func TestConcurrentUseIsSafe(t *testing.T) {
	srv := newServer(t)
	srv.EnableFederation()
	client := srv.Client()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if _, err := client.GetWebIdentityToken(context.Background(), request()); err != nil {
					errs <- err
				}
			}
		})
	}
	for range 10 {
		srv.SetRole(ststest.DefaultRole)
		srv.SetFault(ststest.None)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("GetWebIdentityToken = %v", err)
	}
	if srv.Issued() != 40 {
		t.Errorf("Issued() = %d, want 40", srv.Issued())
	}
}

// signRequest signs req with the SDK's own signer and the test account's secret key, under accessKey when it is set.
func signRequest(t *testing.T, req *http.Request, body, accessKey string) {
	t.Helper()
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: cmp.Or(accessKey, awstest.AccessKeyID), SecretAccessKey: awstest.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "sts", awstest.Region, time.Now()); err != nil {
		t.Fatal(err)
	}
}
