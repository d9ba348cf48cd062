package azdo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// RunsAPIVersion is the api-version sent to "Runs - Run Pipeline": the resource's
// first released version (earlier ones need -preview).
const RunsAPIVersion = "7.1"

// maxRunAnswer bounds how much of a Runs API answer is read. Azure's Run echoes the
// template parameters sent, so it can be as large as the body; one that is cut off
// cannot be read and counts as ErrNoRunID.
const maxRunAnswer = 4 << 20

// Pipeline is a pipeline to start by id.
type Pipeline struct {
	Name    string // the relay's name for it; never sent
	Project string // the project's name (or id)
	ID      int
	Branch  string // a full ref (refs/heads/main) for RunBody, or empty for the pipeline's default branch
}

// RunResult is a run Azure queued, read from its Run JSON.
type RunResult struct {
	Status   int
	Attempts int
	ID       int
	Name     string // the run's name, its build number (e.g. 20261206.1)
	State    string // inProgress, canceling, completed
	WebURL   string // _links.web.href, kept only when it is an http or https URL
}

// ParameterError is an ErrUnexpectedParameter that names the parameter: a key of
// the body's templateParameters, never its value. Name is empty when Azure's
// message named no key of the body, or one with characters other than
// [A-Za-z0-9_.-] or longer than 100.
type ParameterError struct {
	Name string
}

func (e *ParameterError) Error() string {
	if e.Name == "" {
		return ErrUnexpectedParameter.Error()
	}
	return fmt.Sprintf("%v: %q", ErrUnexpectedParameter, e.Name)
}

func (e *ParameterError) Unwrap() error { return ErrUnexpectedParameter }

// RunURL returns the "Runs - Run Pipeline" endpoint of p.
func (c *Client) RunURL(p Pipeline) string {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	return strings.TrimRight(base, "/") + "/" + url.PathEscape(c.Org) + "/" + url.PathEscape(p.Project) +
		"/_apis/pipelines/" + strconv.Itoa(p.ID) + "/runs?api-version=" + RunsAPIVersion
}

// Run starts pipeline p with body, Azure's RunPipelineParameters (build it with
// RunBody; an empty body is sent as {}, as Azure refuses none). Its retries, deadline
// handling and "nothing sent" classes are Deliver's; besides, a refused
// token is given to auth.Refused and, when auth then gives another header, tried
// again once at once: a refusal queues nothing. Errors are *Error values wrapping
// the package's sentinels (or, for auth's own failures, auth's error); MayHaveQueued
// tells those after which a run may exist.
func (c *Client) Run(ctx context.Context, p Pipeline, body []byte, auth Auth) (RunResult, error) {
	if c.Org == "" || p.Project == "" || p.ID <= 0 {
		return RunResult{}, &Error{Err: ErrBadPipeline}
	}
	if auth == nil {
		return RunResult{}, &Error{Err: ErrNoCredentials}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	var (
		current string // the Authorization of the latest attempt
		next    string // a fresh one to use after a refusal
		res     RunResult
	)
	a, err := c.post(ctx, exchange{
		target: c.RunURL(p),
		body:   body,
		limit:  maxRunAnswer,
		prepare: func(req *http.Request) error {
			h := next
			if h == "" {
				var err error
				if h, err = auth.Header(req.Context()); err != nil {
					return err
				}
			}
			current, next = h, ""
			req.Header.Set("Authorization", h)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			// Without it Azure answers refused credentials with a redirect to its
			// sign-in page instead of a 401 (Azure DevOps Server's
			// TeamFoundationAuthenticationService; Microsoft's Go client sends it).
			req.Header.Set("X-TFS-FedAuthRedirect", "Suppress")
			return nil
		},
		judge: func(resp *http.Response, answer []byte) error {
			var err error
			res, err = judgeRun(resp, answer, body)
			return err
		},
		again: func(err error) bool {
			if !errors.Is(err, ErrCredentials) {
				return false
			}
			auth.Refused(current)
			h, herr := auth.Header(ctx)
			if herr != nil || h == current {
				return false // a PAT, or no new token: trying again would be refused alike
			}
			next = h
			return true
		},
	})
	if err != nil {
		return RunResult{}, err
	}
	res.Status, res.Attempts = a.status, a.attempts
	return res, nil
}

// judgeRun classes an answer of the Runs API. sent is the body sent, whose
// templateParameters keys are the only names an ErrUnexpectedParameter may carry.
func judgeRun(resp *http.Response, answer, sent []byte) (RunResult, error) {
	status := resp.StatusCode
	switch {
	case status == http.StatusTooManyRequests:
		return RunResult{}, ErrThrottled
	case status == http.StatusServiceUnavailable:
		return RunResult{}, ErrUnavailable
	case status >= 200 && status < 300:
		return readRun(resp.Header.Get("Content-Type"), answer)
	case status >= 300 && status < 400:
		if signIn(resp.Header.Get("Location")) {
			return RunResult{}, fmt.Errorf("%w: it redirected to sign in", ErrCredentials)
		}
		return RunResult{}, fmt.Errorf("%w: a redirect, not followed", ErrRefused)
	case status == http.StatusUnauthorized:
		return RunResult{}, ErrCredentials
	}
	e := readEnvelope(answer)
	switch {
	case status == http.StatusForbidden:
		return RunResult{}, e.wrap(ErrForbidden)
	case status == http.StatusNotFound && strings.HasPrefix(e.TypeKey, "ProjectDoesNotExist"):
		return RunResult{}, e.wrap(ErrProjectNotFound)
	case status == http.StatusNotFound:
		return RunResult{}, e.wrap(ErrPipelineNotFound)
	case status == http.StatusBadRequest:
		if name, ok := unexpectedParameter(e.Message, sent); ok {
			return RunResult{}, &ParameterError{Name: name}
		}
		return RunResult{}, e.wrap(ErrRefused)
	case status >= 500:
		return RunResult{}, e.wrap(ErrServerError)
	default:
		return RunResult{}, e.wrap(ErrRefused)
	}
}

// readRun reads Azure's Run JSON. An answer that is not JSON is the sign-in page
// Azure serves for refused credentials (203 text/html); JSON without a run id may
// follow a run queued all the same.
func readRun(contentType string, answer []byte) (RunResult, error) {
	answer = bytes.TrimPrefix(answer, []byte("\xef\xbb\xbf"))
	mt, _, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(answer)
	isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		(mt == "" && len(trimmed) > 0 && trimmed[0] == '{')
	if !isJSON {
		return RunResult{}, fmt.Errorf("%w: it answered a sign-in page", ErrCredentials)
	}
	var run struct {
		ID    runID  `json:"id"`
		Name  string `json:"name"`
		State string `json:"state"`
		Links struct {
			Web struct {
				Href string `json:"href"`
			} `json:"web"`
		} `json:"_links"`
	}
	// A member of another type than Azure's (a name that is a number) leaves that
	// member empty; the run is still the run its id names.
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(answer, &run); err != nil && !errors.As(err, &typeErr) {
		return RunResult{}, fmt.Errorf("%w: its answer is not a Run", ErrNoRunID)
	}
	if run.ID <= 0 {
		return RunResult{}, ErrNoRunID
	}
	return RunResult{ID: int(run.ID), Name: runName(run.Name), State: identifier(run.State, 32), WebURL: webURL(run.Links.Web.Href)}, nil
}

// runID is a run's id as a JSON number or a string of digits: Azure writes a number,
// and clients in between (proxies, recorders) may write it as a string. Anything else
// reads as no id.
type runID int

func (id *runID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	}
	if n, err := strconv.ParseInt(string(b), 10, 32); err == nil && n > 0 && b[0] != '+' {
		*id = runID(n)
	}
	return nil
}

// envelope is what the package reads of Azure DevOps' error JSON.
type envelope struct {
	Message string `json:"message"`
	TypeKey string `json:"typeKey"`
}

func readEnvelope(answer []byte) envelope {
	var e envelope
	if json.Unmarshal(bytes.TrimPrefix(answer, []byte("\xef\xbb\xbf")), &e) != nil {
		return envelope{}
	}
	e.TypeKey = identifier(e.TypeKey, 100)
	return e
}

// wrap adds Azure's typeKey, a .NET type name, to the sentinel. The message is never
// kept: Azure's validation messages quote parameter values.
func (e envelope) wrap(sentinel error) error {
	if e.TypeKey == "" {
		return sentinel
	}
	return fmt.Errorf("%w: %s", sentinel, e.TypeKey)
}

// unexpectedParameter finds Azure's "Unexpected parameter 'x'", a line of its own in
// a PipelineValidationException (one error per line; the runtime-parameter check of
// Azure DevOps Server's TemplateParametersBuilder adds it without a file position,
// while a template's own undeclared parameter comes with one and is the pipeline's
// fault). The name returned is the body's key Azure meant, compared as Azure
// compares them (any case), so that no value quoted elsewhere in the message can
// pass for a name.
func unexpectedParameter(message string, sent []byte) (string, bool) {
	const prefix = "Unexpected parameter '"
	keys := templateParameterKeys(sent)
	found := false
	for line := range strings.SplitSeq(message, "\n") {
		line = strings.TrimSpace(line)
		name, ok := strings.CutPrefix(line, prefix)
		if !ok || !strings.HasSuffix(name, "'") {
			continue
		}
		name = strings.TrimSuffix(name, "'")
		if strings.Contains(name, "'") {
			continue
		}
		found = true
		for _, k := range keys {
			if strings.EqualFold(k, name) && safeName(k) {
				return k, true
			}
		}
	}
	return "", found
}

// templateParameterKeys returns the keys of body's templateParameters object.
func templateParameterKeys(body []byte) []string {
	var b struct {
		TemplateParameters map[string]json.RawMessage `json:"templateParameters"`
	}
	if json.Unmarshal(body, &b) != nil {
		return nil
	}
	keys := make([]string, 0, len(b.TemplateParameters))
	for k := range b.TemplateParameters {
		keys = append(keys, k)
	}
	return keys
}

// identifier returns s if it is a plain identifier ([A-Za-z0-9_.]) of at most n bytes.
func identifier(s string, n int) string {
	if !safeName(s) || len(s) > n || strings.Contains(s, "-") {
		return ""
	}
	return s
}

// runName keeps a run name Azure could have given: at most 255 bytes of UTF-8
// without control characters.
func runName(s string) string {
	if len(s) > 255 || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return ""
	}
	return s
}

// webURL keeps href if it is an absolute http or https URL without credentials.
func webURL(href string) string {
	if len(href) > 2048 {
		return ""
	}
	u, err := url.Parse(href)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return ""
	}
	return href
}

// signIn reports whether a redirect's Location is Azure DevOps' or Entra's sign-in.
func signIn(location string) bool {
	u, err := url.Parse(location)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	for _, h := range []string{"login.microsoftonline.com", "login.live.com", "vssps.visualstudio.com"} {
		if host == h || strings.HasSuffix(host, "."+h) {
			return true
		}
	}
	return strings.Contains(strings.ToLower(u.Path), "signin")
}
