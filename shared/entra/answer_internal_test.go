package entra

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Answers as Entra wrote them (from public reports), and shapes it might write.
var errorAnswers = []struct {
	body   string
	code   string
	aadsts int
	ok     bool
}{
	{`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app 'a8fdfbd0-da97-42d9-8f1a-fd6a7cb650b4'.\r\nTrace ID: 6f6c4645-0202-4486-b625-fa957dfc4700\r\nCorrelation ID: 5fc87507-4086-4e77-b415-cee677eb232e\r\nTimestamp: 2023-05-06 06:03:00Z","error_codes":[7000215],"timestamp":"2023-05-06 06:03:00Z","trace_id":"6f6c4645-0202-4486-b625-fa957dfc4700","correlation_id":"5fc87507-4086-4e77-b415-cee677eb232e","error_uri":"https://login.microsoftonline.com/error?code=7000215"}`,
		"invalid_client", 7000215, true},
	{`{"error":"invalid_tenant","error_description":"AADSTS90002: Tenant 'secrets' not found.","error_codes":[90002]}`, "invalid_tenant", 90002, true},
	{`{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found for presented assertion subject 'arn:aws:iam::1:role/x'."}`,
		"invalid_client", 700213, true},
	{`{"error":"invalid_request","error_codes":[70021,50000]}`, "invalid_request", 70021, true},
	{`{"error":"Invalid Client","error_codes":[1]}`, "unrecognized", 1, true},
	{`{"error":"invalid_client","error_codes":[1e30]}`, "invalid_client", 0, true},
	{`{"error":"invalid_client","error_codes":[-5]}`, "invalid_client", 0, true},
	{`{"error":"invalid_client","error_description":"AADSTS12x: nope"}`, "invalid_client", 0, true},
	{`{"error":""}`, "unrecognized", 0, true},
	{`{"error_description":"AADSTS50000: no error field"}`, "", 0, false},
	{`<html>Sign in</html>`, "", 0, false},
	{``, "", 0, false},
	{`null`, "", 0, false},
	{`{"error":["invalid_client"]}`, "", 0, false},
}

func TestParseErrorKeepsTheCodeAndTheAADSTSNumberOnly(t *testing.T) {
	for _, tt := range errorAnswers {
		code, aadsts, ok := parseError([]byte(tt.body))
		if code != tt.code || aadsts != tt.aadsts || ok != tt.ok {
			t.Errorf("parseError(%.60q) = %q, %d, %v, want %q, %d, %v", tt.body, code, aadsts, ok, tt.code, tt.aadsts, tt.ok)
		}
	}
}

// FuzzParseError: whatever Entra (or an impostor) answers, what reaches an error message is a plain OAuth word and a
// number, never a piece of the body.
func FuzzParseError(f *testing.F) {
	for _, tt := range errorAnswers {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code, aadsts, ok := parseError(body)
		if !ok {
			if code != "" || aadsts != 0 {
				t.Fatalf("parseError(%q) = %q, %d, false, want nothing", body, code, aadsts)
			}
			return
		}
		if !oauthWord(code) && code != "unrecognized" {
			t.Fatalf("parseError(%q) code %q is not an OAuth word", body, code)
		}
		if aadsts < 0 || aadsts > 999_999_999 {
			t.Fatalf("parseError(%q) AADSTS %d out of range", body, aadsts)
		}
		d := describe(code, aadsts)
		if strings.ContainsAny(d, "\r\n\"'<>") || len(d) > 64+len(" AADSTS")+9 {
			t.Fatalf("describe = %q", d)
		}
		err := refusal(400, body)
		if err == nil || strings.ContainsAny(err.Error(), "\r\n") {
			t.Fatalf("refusal(400, %q) = %v", body, err)
		}
	})
}

func TestRefusalsAreClassifiedBySideAndCode(t *testing.T) {
	answer := func(code string, n int) []byte {
		return []byte(`{"error":"` + code + `","error_codes":[` + strconv.Itoa(n) + `]}`)
	}
	tests := []struct {
		status int
		body   []byte
		want   error
	}{
		{400, answer("invalid_tenant", 90002), ErrRefused},
		{400, answer("unauthorized_client", 700016), ErrRefused},
		{401, answer("invalid_client", 7000215), ErrRefused},
		{400, answer("invalid_scope", 1002012), ErrRefused},
		{400, answer("invalid_request", 70021), ErrFederatedCredential},
		{401, answer("invalid_client", 700211), ErrFederatedCredential},
		{401, answer("invalid_client", 700212), ErrFederatedCredential},
		{401, answer("invalid_client", 700213), ErrFederatedCredential},
		{401, answer("invalid_client", 7002138), ErrFederatedCredential},
		{401, answer("invalid_client", 700024), ErrFederatedCredential},
		{401, answer("invalid_client", 700027), ErrFederatedCredential},
		{401, answer("invalid_client", 7000272), ErrFederatedCredential},
		{400, answer("invalid_request", 50166), ErrUnavailable}, // Entra could not reach the issuer: try again
		{400, answer("invalid_request", 90061), ErrUnavailable},
		{429, answer("temporarily_unavailable", 90055), ErrUnavailable},
		{503, []byte("Service Unavailable"), ErrUnavailable},
		{500, answer("server_error", 50000), ErrUnavailable},
		{302, nil, ErrBadAnswer},
		{400, []byte("<html>"), ErrBadAnswer},
	}
	for _, tt := range tests {
		if err := refusal(tt.status, tt.body); !errors.Is(err, tt.want) {
			t.Errorf("refusal(%d, %s) = %v, want %v", tt.status, tt.body, err, tt.want)
		}
	}
}

func TestValidTenantAndGUID(t *testing.T) {
	for s, want := range map[string]bool{
		"72f988bf-86f1-41af-91ab-2d7cd011db47": true,
		"72F988BF-86F1-41AF-91AB-2D7CD011DB47": true,
		"contoso.onmicrosoft.com":              true,
		"login.contoso-corp.co.uk":             true,
		"contoso":                              false,
		"common":                               false,
		"contoso..com":                         false,
		"contoso.com.":                         false,
		"-contoso.com":                         false,
		"contoso-.com":                         false,
		"contoso.com/oauth2":                   false,
		"contoso.com%2F..":                     false,
		"con toso.com":                         false,
		"72f988bf-86f1-41af-91ab-2d7cd011db4g": false,
		strings.Repeat("a", 64) + ".com":       false,
		"":                                     false,
	} {
		if got := validTenant(s); got != want {
			t.Errorf("validTenant(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for v, want := range map[string]int{"": 0, "30": 30, " 7 ": 7, "-3": 0, "x": 0, "99999": 3600} {
		if got := retryAfter(v); got.Seconds() != float64(want) {
			t.Errorf("retryAfter(%q) = %v, want %ds", v, got, want)
		}
	}
}

// FuzzParseToken: a token that is accepted can go into an Authorization header, and its life is bounded.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{
		`{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiI0OTkifQ.c2ln"}`,
		`{"token_type":"bearer","expires_in":"3599","access_token":"abc"}`,
		`{"token_type":"Bearer","expires_in":0,"access_token":"abc"}`,
		`{"token_type":"Bearer","expires_in":3599,"access_token":"a\r\nb"}`,
		`<html></html>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, life, err := parseToken(body)
		if err != nil {
			if tok != "" || life != 0 {
				t.Fatalf("parseToken(%q) = %q, %v, %v", body, tok, life, err)
			}
			return
		}
		if !validToken(tok) || strings.ContainsAny(tok, " \r\n\t,;") || life <= 0 || life > 24*time.Hour {
			t.Fatalf("parseToken(%q) = %q, %v", body, tok, life)
		}
	})
}
