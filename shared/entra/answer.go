package entra

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// This file reads Entra's answers. A token answer is
// {"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"…"}; an error answer is
// {"error":"invalid_client","error_description":"AADSTS7000215: …","error_codes":[7000215],"timestamp":…,
// "trace_id":…,"correlation_id":…,"error_uri":…}. Of an error only the OAuth code and the AADSTS number are kept.

const maxTokenLen = 16 << 10

// parseToken reads a 200 answer and returns the access token and its life.
func parseToken(body []byte) (string, time.Duration, error) {
	var answer struct {
		TokenType   string  `json:"token_type"`
		ExpiresIn   seconds `json:"expires_in"`
		AccessToken string  `json:"access_token"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return "", 0, errors.New("a 200 answer that is not Entra's token JSON")
	}
	switch {
	case !strings.EqualFold(answer.TokenType, "Bearer"):
		return "", 0, errors.New("a token that is not a Bearer token")
	case !validToken(answer.AccessToken):
		return "", 0, errors.New("no usable access_token")
	case answer.ExpiresIn <= 0:
		return "", 0, errors.New("no expires_in")
	}
	return answer.AccessToken, time.Duration(answer.ExpiresIn) * time.Second, nil
}

// seconds is expires_in: a number, or (as Entra's v1 endpoint sent it) a string of digits.
type seconds int64

func (s *seconds) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n > 24*3600 {
		return errors.New("expires_in is not a number of seconds")
	}
	*s = seconds(n)
	return nil
}

// validToken accepts what may go into an Authorization header: a JWT's characters (base64url and dots), and
// base64's + / =, nothing that could end the header or add another.
func validToken(t string) bool {
	if len(t) == 0 || len(t) > maxTokenLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// parseError reads Entra's error answer and returns its OAuth error code and its first AADSTS number (0 when it has
// none), or ok false for a body that is not Entra's error JSON. The description is dropped: it names the app, the
// tenant and the presented subject, and may change at any time. A code that is not a plain OAuth word becomes
// "unrecognized", so that no text from the body reaches an error message.
func parseError(body []byte) (code string, aadsts int, ok bool) {
	var answer struct {
		Error       *string       `json:"error"`
		Description string        `json:"error_description"`
		Codes       []json.Number `json:"error_codes"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Error == nil {
		return "", 0, false
	}
	code = *answer.Error
	if !oauthWord(code) {
		code = "unrecognized"
	}
	if len(answer.Codes) > 0 {
		aadsts = aadstsNumber(string(answer.Codes[0]))
	} else if rest, found := strings.CutPrefix(answer.Description, "AADSTS"); found {
		// Older answers carry the number only in the description: "AADSTS50012: …".
		digits, _, _ := strings.Cut(rest, ":")
		aadsts = aadstsNumber(digits)
	}
	return code, aadsts, true
}

// aadstsNumber reads an AADSTS number: 1 to 9 digits, no sign, no exponent.
func aadstsNumber(s string) int {
	if len(s) == 0 || len(s) > 9 {
		return 0
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// oauthWord accepts an OAuth error code as Entra writes them: invalid_client, unauthorized_client, invalid_tenant.
func oauthWord(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

// describe writes what an error message may show of Entra's answer: "invalid_client AADSTS7000215".
func describe(code string, aadsts int) string {
	if aadsts == 0 {
		return code
	}
	return code + " AADSTS" + strconv.Itoa(aadsts)
}
