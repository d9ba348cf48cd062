package ststest

import (
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/awstest"
)

const (
	service     = "sts"
	version     = "2011-06-15"
	xmlns       = "https://sts.amazonaws.com/doc/2011-06-15/"
	maxBodySize = 1 << 20
	// The SDK sends exactly this content type; AWS also takes a charset parameter.
	formType = "application/x-www-form-urlencoded"
)

var (
	errThrottled = &awstest.Error{Status: http.StatusBadRequest, Code: "Throttling", Message: "Rate exceeded"}
	errInternal  = &awstest.Error{Status: http.StatusInternalServerError, Code: "InternalFailure",
		Message: "The request processing has failed because of an unknown error, exception or failure."}
	errTooLarge = &awstest.Error{Status: http.StatusRequestEntityTooLarge, Code: "RequestEntityTooLarge", Message: "Request body too large."}
	errDisabled = &awstest.Error{Status: http.StatusForbidden, Code: "OutboundWebIdentityFederationDisabledException",
		Message: "The outbound web identity federation feature is not enabled for this account. To use this feature, you must first enable it through the AWS Management Console or API."}
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		s.serveIssuer(w, r)
		return
	}
	fault := s.faults.Take("")
	if fault.Kind == "down" {
		if !awstest.Drop(w) {
			writeError(w, errInternal)
		}
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		writeError(w, errTooLarge)
		return
	}
	if e := awstest.Verify(r, body, service, time.Now()); e != nil {
		writeError(w, queryError(e))
		return
	}
	form := url.Values{}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == formType && r.Method == http.MethodPost {
		form, _ = url.ParseQuery(string(body))
	}
	if form.Get("Action") == "" {
		writeError(w, &awstest.Error{Status: http.StatusBadRequest, Code: "MissingAction", Message: "The request is missing an action or a required parameter."})
		return
	}
	if action := form.Get("Action"); action != "GetWebIdentityToken" || form.Get("Version") != version {
		writeError(w, &awstest.Error{Status: http.StatusBadRequest, Code: "InvalidAction",
			Message: fmt.Sprintf("Could not find operation %s for version %s", action, form.Get("Version"))})
		return
	}
	s.calls.Add(1)
	if e := s.inject(r.Context(), fault); e != nil {
		writeError(w, e)
		return
	}
	in, e := parseInput(form)
	if e != nil {
		writeError(w, e)
		return
	}
	tok, expires, e := s.getWebIdentityToken(in)
	if e != nil {
		writeError(w, e)
		return
	}
	s.issued.Add(1)
	type result struct {
		WebIdentityToken string
		Expiration       string
	}
	type metadata struct {
		RequestID string `xml:"RequestId"`
	}
	id := awstest.NewUUID()
	writeXML(w, http.StatusOK, id, struct {
		XMLName  xml.Name `xml:"GetWebIdentityTokenResponse"`
		Xmlns    string   `xml:"xmlns,attr"`
		Result   result   `xml:"GetWebIdentityTokenResult"`
		Metadata metadata `xml:"ResponseMetadata"`
	}{Xmlns: xmlns, Result: result{tok, expires.UTC().Format("2006-01-02T15:04:05.000Z")}, Metadata: metadata{id}})
}

// queryError renames awstest's authentication errors, which carry the JSON protocols' codes, to the codes the
// Query protocol's services answer (AWS's common errors): the SDK returns them as the API error's code.
func queryError(e *awstest.Error) *awstest.Error {
	q := *e
	switch e.Code {
	case "MissingAuthenticationTokenException":
		q.Code = "MissingAuthenticationToken"
	case "UnrecognizedClientException":
		q.Code = "InvalidClientTokenId"
	case "IncompleteSignatureException":
		q.Status, q.Code = http.StatusBadRequest, "IncompleteSignature"
	case "InvalidSignatureException":
		q.Code = "SignatureDoesNotMatch"
	}
	return &q
}

// input is GetWebIdentityToken's parameters.
type input struct {
	audience    []string
	algorithm   string
	duration    int  // seconds
	durationSet bool // DurationSeconds was sent: the condition key sts:DurationSeconds exists
	tags        map[string]string
}

// parseInput reads the Query form, validating as STS does; all validation errors are reported together.
func parseInput(form url.Values) (*input, *awstest.Error) {
	in := &input{duration: 300, tags: map[string]string{}}
	var problems []string
	invalid := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	in.audience = members(form, "Audience.member.")
	switch n := len(in.audience); {
	case n == 0:
		invalid("Value null at 'audience' failed to satisfy constraint: Member must not be null")
	case n > 10:
		invalid("Value '[%s]' at 'audience' failed to satisfy constraint: Member must have length less than or equal to 10", strings.Join(in.audience, ", "))
	}
	for i, a := range in.audience {
		if len(a) < 1 || len(a) > 1000 {
			invalid("Value '%.40s' at 'audience.%d.member' failed to satisfy constraint: Member must have length between 1 and 1000", a, i+1)
		}
	}

	switch in.algorithm = form.Get("SigningAlgorithm"); in.algorithm {
	case "RS256", "ES384":
	case "":
		invalid("Value null at 'signingAlgorithm' failed to satisfy constraint: Member must not be null")
	default:
		invalid("Value '%s' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [RS256, ES384]", in.algorithm)
	}

	if form.Has("DurationSeconds") {
		v := form.Get("DurationSeconds")
		d, err := strconv.Atoi(v)
		switch {
		case err != nil:
			invalid("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must be an integer", v)
		case d < 60:
			invalid("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60", d)
		case d > 3600:
			invalid("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 3600", d)
		}
		in.duration, in.durationSet = d, true
	}

	for i := 1; ; i++ {
		prefix := "Tags.member." + strconv.Itoa(i) + "."
		if !form.Has(prefix+"Key") && !form.Has(prefix+"Value") {
			break
		}
		k := form.Get(prefix + "Key")
		if k == "" {
			invalid("Value null at 'tags.%d.member.key' failed to satisfy constraint: Member must not be null", i)
		}
		in.tags[k] = form.Get(prefix + "Value")
	}

	if len(problems) > 0 {
		word := "error"
		if len(problems) > 1 {
			word = "errors"
		}
		return nil, &awstest.Error{Status: http.StatusBadRequest, Code: "ValidationError",
			Message: fmt.Sprintf("%d validation %s detected: %s", len(problems), word, strings.Join(problems, "; "))}
	}
	return in, nil
}

// members reads a Query list, prefix1, prefix2, … in order, as the SDK numbers them from 1.
func members(form url.Values, prefix string) []string {
	type member struct {
		n int
		v string
	}
	var ms []member
	for k, vs := range form {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if n, err := strconv.Atoi(rest); err == nil && n >= 1 && len(vs) > 0 {
				ms = append(ms, member{n, vs[0]})
			}
		}
	}
	slices.SortFunc(ms, func(a, b member) int { return a.n - b.n })
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.v
	}
	return out
}

// getWebIdentityToken applies the account setting and the role's policy, then mints the token.
func (s *Server) getWebIdentityToken(in *input) (string, time.Time, *awstest.Error) {
	s.mu.Lock()
	issuer, role, pol := s.issuer, s.role, s.policy
	s.mu.Unlock()
	if issuer == "" {
		return "", time.Time{}, errDisabled
	}
	if pol != nil && !pol.allows(in) {
		return "", time.Time{}, &awstest.Error{Status: http.StatusForbidden, Code: "AccessDenied",
			Message: "User: " + sessionARN(role) + " is not authorized to perform: sts:GetWebIdentityToken because no identity-based policy allows the sts:GetWebIdentityToken action"}
	}
	return s.mint(issuer, role, in, time.Now())
}

// allows evaluates ForAllValues:StringEquals sts:IdentityTokenAudience and NumericLessThanEquals
// sts:DurationSeconds.
func (p *policy) allows(in *input) bool {
	for _, a := range in.audience {
		if a != p.audience {
			return false
		}
	}
	return in.durationSet && in.duration <= p.maxDuration
}

// sessionARN is the caller as IAM names it in a denial: the role's session, which Lambda names after the function.
func sessionARN(roleARN string) string {
	i := strings.Index(roleARN, ":role/")
	if i < 0 || !strings.HasPrefix(roleARN, "arn:aws:iam::") {
		return roleARN
	}
	name := roleARN[i+len(":role/"):]
	if j := strings.LastIndex(name, "/"); j >= 0 {
		name = name[j+1:]
	}
	account := strings.TrimPrefix(roleARN[:i], "arn:aws:iam::")
	return "arn:aws:sts::" + account + ":assumed-role/" + name + "/ststest"
}

func writeError(w http.ResponseWriter, e *awstest.Error) {
	typ := "Sender"
	if e.Status >= 500 {
		typ = "Receiver"
	}
	type errorBody struct {
		Type    string
		Code    string
		Message string
	}
	id := awstest.NewUUID()
	writeXML(w, e.Status, id, struct {
		XMLName   xml.Name  `xml:"ErrorResponse"`
		Xmlns     string    `xml:"xmlns,attr"`
		Error     errorBody `xml:"Error"`
		RequestID string    `xml:"RequestId"`
	}{Xmlns: xmlns, Error: errorBody{typ, e.Code, e.Message}, RequestID: id})
}

// writeXML answers as STS does: text/xml, with the request id (also in the body) in x-amzn-RequestId, where the SDK
// reads it.
func writeXML(w http.ResponseWriter, status int, id string, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, nil
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", id)
	w.WriteHeader(status)
	w.Write(b)
}
