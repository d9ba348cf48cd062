package awstest

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file checks Signature Version 4 on its own, from AWS's specification, rather than with the SDK's signer:
// a stand-in that shared the client's code would agree with the client's mistakes.

const (
	algorithm         = "AWS4-HMAC-SHA256"
	amzDateFormat     = "20060102T150405Z"
	signatureMismatch = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

// The errors AWS answers for a request it cannot authenticate; each stand-in writes them in its protocol's shape.
var (
	errNoAuth       = NewError(http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
	errUnknownKey   = NewError(http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
	errNoDate       = incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	errHostUnsigned = invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
)

func incomplete(msg string) *Error {
	return NewError(http.StatusForbidden, "IncompleteSignatureException", msg)
}

func invalid(msg string) *Error {
	return NewError(http.StatusForbidden, "InvalidSignatureException", msg)
}

// authorization is a parsed Authorization header.
type authorization struct {
	accessKey, date, region, service, terminator string
	signedHeaders                                []string
	signature                                    string
}

// parseAuthorization reads "AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request,
// SignedHeaders=a;b, Signature=hex".
func parseAuthorization(h string) (*authorization, *Error) {
	alg, rest, _ := strings.Cut(h, " ")
	if alg != algorithm {
		return nil, incomplete("Authorization header requires the '" + algorithm + "' algorithm. Authorization=" + h)
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, incomplete("Authorization header key-value pairs must be separated by '='. Authorization=" + h)
		}
		fields[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if fields[k] == "" {
			return nil, incomplete("Authorization header requires '" + k + "' parameter. Authorization=" + h)
		}
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 {
		return nil, incomplete("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '" + fields["Credential"] + "'")
	}
	return &authorization{
		accessKey: scope[0], date: scope[1], region: scope[2], service: scope[3], terminator: scope[4],
		signedHeaders: strings.Split(fields["SignedHeaders"], ";"),
		signature:     fields["Signature"],
	}, nil
}

// Verify checks r's signature over body as AWS does for service (its signing name: "secretsmanager",
// "dynamodb", "sts"), signed with this package's credentials and Region, and returns nil or the error AWS
// would answer.
func Verify(r *http.Request, body []byte, service string, now time.Time) *Error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return errNoAuth
	}
	a, err := parseAuthorization(h)
	if err != nil {
		return err
	}
	// The server knows one long-term key and no session tokens, so a token is as unknown as a wrong key.
	if a.accessKey != AccessKeyID || r.Header.Get("X-Amz-Security-Token") != "" {
		return errUnknownKey
	}
	switch {
	case a.service != service:
		return invalid("Credential should be scoped to correct service: '" + service + "'.")
	case a.region != Region:
		return invalid("Credential should be scoped to a valid region.")
	case a.terminator != "aws4_request":
		return invalid("Credential should be scoped with a valid terminator: 'aws4_request', not '" + a.terminator + "'.")
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return errNoDate
	}
	t, perr := time.Parse(amzDateFormat, amzDate)
	if perr != nil {
		return incomplete("Date must be in ISO-8601 'basic format'. Got '" + amzDate + "'.")
	}
	if day := t.Format("20060102"); a.date != day {
		return invalid(fmt.Sprintf("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", a.date, day, amzDate))
	}
	// Replays are bounded by the clock: a signature is good for MaxClockSkew either side of now.
	now = now.UTC()
	if t.Before(now.Add(-MaxClockSkew)) {
		return invalid(fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 5 min.)",
			amzDate, now.Add(-MaxClockSkew).Format(amzDateFormat), now.Format(amzDateFormat)))
	}
	if t.After(now.Add(MaxClockSkew)) {
		return invalid(fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + 5 min.)",
			amzDate, now.Add(MaxClockSkew).Format(amzDateFormat), now.Format(amzDateFormat)))
	}
	if !slices.Contains(a.signedHeaders, "host") {
		return errHostUnsigned
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payloadHash {
		return invalid("The provided 'x-amz-content-sha256' header does not match what was computed.")
	}

	canonical := canonicalRequest(r, a.signedHeaders, payloadHash)
	scope := strings.Join([]string{a.date, Region, service, "aws4_request"}, "/")
	stringToSign := stringToSign(amzDate, scope, canonical)
	want := hex.EncodeToString(hmacSHA256(signingKey(SecretAccessKey, a.date, service), stringToSign))
	if !hmac.Equal([]byte(want), []byte(a.signature)) {
		// Like AWS, say what was expected, so a client's mistake can be found by comparing.
		return invalid(signatureMismatch + "\n\nThe Canonical String for this request should have been\n'" +
			canonical + "'\n\nThe String-to-Sign should have been\n'" + stringToSign + "'\n")
	}
	return nil
}

// canonicalRequest is step 1 of SigV4: method, URI, query, headers, signed header names and payload hash.
func canonicalRequest(r *http.Request, signed []string, payloadHash string) string {
	var headers strings.Builder
	for _, name := range signed {
		headers.WriteString(name + ":" + headerValue(r, name) + "\n")
	}
	return strings.Join([]string{
		r.Method,
		canonicalURI(r.URL),
		canonicalQuery(r.URL.RawQuery),
		headers.String(),
		strings.Join(signed, ";"),
		payloadHash,
	}, "\n")
}

// headerValue joins a header's values with commas, trimmed and with runs of spaces collapsed.
// Go's server moves Host and sometimes Content-Length out of r.Header, so they are read from r.
func headerValue(r *http.Request, name string) string {
	var values []string
	switch name {
	case "host":
		values = []string{r.Host}
	case "content-length":
		values = r.Header.Values(name)
		if len(values) == 0 && r.ContentLength >= 0 {
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		values = r.Header.Values(name)
	}
	cleaned := make([]string, len(values))
	for i, v := range values {
		cleaned[i] = collapseSpaces(v)
	}
	return strings.Join(cleaned, ",")
}

// collapseSpaces trims spaces and turns runs of them into one, as SigV4 asks (tabs stay).
func collapseSpaces(v string) string {
	words := strings.Split(strings.Trim(v, " "), " ")
	return strings.Join(slices.DeleteFunc(words, func(w string) bool { return w == "" }), " ")
}

// canonicalURI escapes the path once more: every service but S3 signs the already-escaped path escaped again.
func canonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == '/' || unreserved(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// canonicalQuery encodes each name and value (space as %20), then sorts: AWS sorts after encoding.
func canonicalQuery(raw string) string {
	q, _ := url.ParseQuery(raw)
	var pairs [][2]string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, [2]string{uriEncode(k), uriEncode(v)})
		}
	}
	slices.SortFunc(pairs, func(a, b [2]string) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
	})
	encoded := make([]string, len(pairs))
	for i, p := range pairs {
		encoded[i] = p[0] + "=" + p[1]
	}
	return strings.Join(encoded, "&")
}

func uriEncode(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// stringToSign is step 2 of SigV4.
func stringToSign(amzDate, scope, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return strings.Join([]string{algorithm, amzDate, scope, hex.EncodeToString(sum[:])}, "\n")
}

// signingKey is step 3 of SigV4: the secret key narrowed to one day, region and service.
func signingKey(secretKey, date, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secretKey), date)
	k = hmacSHA256(k, Region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
