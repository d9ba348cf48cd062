// Package portapi reports the outcome of a relayed invocation back to Port's action-run API.
package portapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultBaseURL is Port's EU API. Accounts in the US region use https://api.us.port.io.
const DefaultBaseURL = "https://api.port.io"

// Port documents a token life of 3 hours; a token is used until TokenMargin before it ends.
const (
	TokenLifetime = 3 * time.Hour
	TokenMargin   = 5 * time.Minute
)

// Errors returned by Client, wrapped with context; test for them with errors.Is. An
// error that is two of them names the specific one first (ErrRunNotFound before
// ErrRejected), as the functions' answer tables read it.
var (
	// ErrNoCredentials means the client id or client secret is empty.
	ErrNoCredentials = errors.New("no Port client credentials")
	// ErrBadRunID means the run id is not of the form [A-Za-z0-9_-]{1,100}; no request was made.
	ErrBadRunID = errors.New("invalid Port run id")
	// ErrToken means Port did not issue an access token for the credentials.
	ErrToken = errors.New("no access token from Port")
	// ErrRejected means Port answered the run request with a status other than 2xx. The errors below
	// wrap it too, and name the answers a caller treats apart.
	ErrRejected = errors.New("request rejected by Port")
	// ErrRunNotFound means Port has no run with this id (404).
	ErrRunNotFound = errors.New("no such Port run")
	// ErrRunEnded means the run already has a final status, after which Port refuses any change. Port documents
	// the refusal but not its status, so a refused change is checked against the run itself (GET).
	ErrRunEnded = errors.New("the Port run has already ended")
	// ErrUnavailable means Port could not be reached, answered 429 or 5xx, or its answer could not be read: trying
	// again later may succeed.
	ErrUnavailable = errors.New("the Port API is unavailable")
)

// Credentials are a Port client id and client secret.
type Credentials struct {
	ClientID     string
	ClientSecret string
}

// Client calls Port's API. The zero value is ready to use and safe for concurrent use; it caches one access token
// per client id. Deadlines come from the caller's context, and nothing is retried except one request whose token
// Port refused (401), which is sent again once with a fresh token.
type Client struct {
	BaseURL string           // empty means DefaultBaseURL
	HTTP    *http.Client     // nil means http.DefaultClient; redirects are refused either way
	Now     func() time.Time // nil means time.Now

	httpOnce sync.Once
	hc       *http.Client // HTTP without redirects

	once   sync.Once
	lock   chan struct{} // held while reading or fetching a token; a channel so waiters can give up on ctx
	tokens map[string]token
}

type token struct {
	secret  string // the secret the token was issued for: a new secret needs a new token
	value   string
	expires time.Time
}

// maxBody bounds what is read of Port's answers; error bodies are never shown, only their status.
const maxBody = 64 << 10

// maxRunsBody bounds the answer of a run search. A run in it carries the action's inputs and the payload sent,
// each up to the 1 MiB Port takes, so it is read up to a few times that.
const maxRunsBody = 4 << 20

// ExternalRunID is the externalRunId that names an Azure DevOps pipeline run on the Port run it follows:
// "ado_<org>_<azureRunID>". Azure's run (build) ids are unique only within one organization, and one Port
// organization may be wired to several Azure DevOps organizations, so the id carries the organization too, in
// lower case as Azure compares names; organization names have no underscore, so the id reads one way only. The
// relay sets it when it starts a pipeline, and the status function finds the Port run by it.
func ExternalRunID(org, azureRunID string) string {
	return "ado_" + strings.ToLower(org) + "_" + azureRunID
}

// ValidRunID reports whether id can be a Port run id, ^[A-Za-z0-9_-]{1,100}$ (checked without a
// regexp compiled at start-up).
func ValidRunID(id string) bool {
	if len(id) == 0 || len(id) > 100 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Log adds a line to the run's log: POST /v1/actions/runs/{runID}/logs.
func (c *Client) Log(ctx context.Context, creds Credentials, runID, message string) error {
	body := struct {
		Message string `json:"message"`
	}{message}
	if err := c.run(ctx, creds, http.MethodPost, runID, "/logs", body); err != nil {
		return fmt.Errorf("portapi: log to run: %w", err)
	}
	return nil
}

// RunUpdate is the body of PATCH /v1/actions/runs/{runID}: the keys Port documents, each replacing the run's
// value when set. Status SUCCESS or FAILURE ends the run; empty leaves it in progress.
type RunUpdate struct {
	Status        string `json:"status,omitempty"`
	StatusLabel   string `json:"statusLabel,omitempty"`
	Link          string `json:"link,omitempty"`
	Summary       string `json:"summary,omitempty"`
	ExternalRunID string `json:"externalRunId,omitempty"`
}

// Update changes the run: PATCH /v1/actions/runs/{runID}. Besides ErrRejected, its errors say whether the run
// does not exist (ErrRunNotFound), has already ended (ErrRunEnded), or Port could not be reached (ErrUnavailable).
func (c *Client) Update(ctx context.Context, creds Credentials, runID string, u RunUpdate) error {
	if err := c.run(ctx, creds, http.MethodPatch, runID, "", u); err != nil {
		return fmt.Errorf("portapi: update run: %w", err)
	}
	return nil
}

// run sends body to /v1/actions/runs/{runID}{suffix}, refreshing the token once if Port refuses it.
func (c *Client) run(ctx context.Context, creds Credentials, method, runID, suffix string, body any) error {
	if !ValidRunID(runID) {
		return ErrBadRunID
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	path := "/v1/actions/runs/" + url.PathEscape(runID) + suffix
	tok, status, err := c.authorized(ctx, creds, method, path, payload, nil)
	if err != nil {
		return err
	}
	switch {
	case status/100 == 2:
		return nil
	case status == http.StatusNotFound:
		return fmt.Errorf("%w: %w: %s %s: status %d", ErrRunNotFound, ErrRejected, method, path, status)
	case status == http.StatusTooManyRequests || status/100 == 5:
		return fmt.Errorf("%w: %w: %s %s: status %d", ErrUnavailable, ErrRejected, method, path, status)
	case status/100 == 4 && status != http.StatusUnauthorized && status != http.StatusRequestEntityTooLarge && c.ended(ctx, tok, runID):
		// Port's API spec documents 401, 404, 413 and 422 (a body that does not match the schema) for these
		// routes, and says that an ended run "can no longer be modified" without naming the answer: the run
		// itself tells the one from the other.
		return fmt.Errorf("%w: %w: %s %s: status %d", ErrRunEnded, ErrRejected, method, path, status)
	default:
		return fmt.Errorf("%w: %s %s: status %d", ErrRejected, method, path, status)
	}
}

// RunByExternalID finds the run whose externalRunId is externalRunID: GET /v1/actions/runs?version=v2&
// external_run_id=…, which answers the matching runs newest first; the newest is the one, as Port's own
// integrations take it. It returns the run's id, or false when Port has none (not an error). Its errors are
// ErrUnavailable (Port unreachable, 429, 5xx, an answer that cannot be read), ErrToken and ErrRejected.
func (c *Client) RunByExternalID(ctx context.Context, creds Credentials, externalRunID string) (string, bool, error) {
	query := url.Values{"version": {"v2"}, "external_run_id": {externalRunID}, "limit": {"1"}}
	path := "/v1/actions/runs?" + query.Encode()
	var answer struct {
		OK   bool `json:"ok"`
		Runs []struct {
			ID string `json:"id"`
		} `json:"runs"`
	}
	_, status, err := c.authorized(ctx, creds, http.MethodGet, path, nil, &answer)
	switch {
	case err != nil:
		return "", false, fmt.Errorf("portapi: find run: %w", err)
	case status == http.StatusTooManyRequests || status/100 == 5:
		return "", false, fmt.Errorf("portapi: find run: %w: %w: status %d", ErrUnavailable, ErrRejected, status)
	case status != http.StatusOK:
		return "", false, fmt.Errorf("portapi: find run: %w: status %d", ErrRejected, status)
	case !answer.OK:
		return "", false, fmt.Errorf("portapi: find run: %w: an answer without ok", ErrUnavailable)
	case len(answer.Runs) == 0:
		return "", false, nil
	case !ValidRunID(answer.Runs[0].ID):
		return "", false, fmt.Errorf("portapi: find run: %w: a run id Port does not issue", ErrUnavailable)
	}
	return answer.Runs[0].ID, true, nil
}

// Ended reports whether the run has a final status (SUCCESS, FAILURE, DECLINED):
// GET /v1/actions/runs/{runID}. A run Port does not know is ErrRunNotFound.
func (c *Client) Ended(ctx context.Context, creds Credentials, runID string) (bool, error) {
	if !ValidRunID(runID) {
		return false, ErrBadRunID
	}
	var answer struct {
		Run struct {
			Status string `json:"status"`
		} `json:"run"`
	}
	_, status, err := c.authorized(ctx, creds, http.MethodGet, "/v1/actions/runs/"+url.PathEscape(runID), nil, &answer)
	switch {
	case err != nil:
		return false, fmt.Errorf("portapi: read run: %w", err)
	case status == http.StatusNotFound:
		return false, fmt.Errorf("portapi: read run: %w: %w: status %d", ErrRunNotFound, ErrRejected, status)
	case status == http.StatusTooManyRequests || status/100 == 5:
		return false, fmt.Errorf("portapi: read run: %w: %w: status %d", ErrUnavailable, ErrRejected, status)
	case status != http.StatusOK:
		return false, fmt.Errorf("portapi: read run: %w: status %d", ErrRejected, status)
	}
	switch answer.Run.Status {
	case "SUCCESS", "FAILURE", "DECLINED":
		return true, nil
	}
	return false, nil
}

// authorized sends one request with a token for creds, and once more with a fresh token if Port refuses it
// (401). It returns the token last used and Port's status; a 200's JSON answer is decoded into out when set.
func (c *Client) authorized(ctx context.Context, creds Credentials, method, path string, payload []byte, out any) (string, int, error) {
	if creds.ClientID == "" || creds.ClientSecret == "" {
		return "", 0, ErrNoCredentials
	}
	tok, err := c.token(ctx, creds, "")
	if err != nil {
		return "", 0, err
	}
	status, err := c.send(ctx, method, path, tok, payload, out)
	if status == http.StatusUnauthorized {
		if tok, err = c.token(ctx, creds, tok); err != nil {
			return "", 0, err
		}
		status, err = c.send(ctx, method, path, tok, payload, out)
	}
	if err != nil {
		return tok, 0, fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, strings.SplitN(path, "?", 2)[0], transportError(ctx, err))
	}
	return tok, status, nil
}

// ended reports whether Port says the run has a final status: GET /v1/actions/runs/{runID}. Anything else,
// a failed request included, is "not known to have ended".
func (c *Client) ended(ctx context.Context, tok, runID string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base()+"/v1/actions/runs/"+url.PathEscape(runID), nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var answer struct {
		Run struct {
			Status string `json:"status"`
		} `json:"run"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&answer) != nil {
		return false
	}
	switch answer.Run.Status {
	case "SUCCESS", "FAILURE", "DECLINED":
		return true
	}
	return false
}

// send makes one request and returns Port's status. A 200's JSON answer is decoded into out when it is set (an
// answer that cannot be read is errMalformed); any other body is drained and dropped, never shown. A nil payload
// sends no body.
func (c *Client) send(ctx context.Context, method, path, tok string, payload []byte, out any) (int, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base()+path, body)
	if err != nil {
		return 0, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxRunsBody)).Decode(out); err != nil {
			return 0, errMalformed
		}
		return resp.StatusCode, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	return resp.StatusCode, nil
}

// errMalformed is a 200 whose JSON could not be read: cut off, or not Port's.
var errMalformed = errors.New("an answer that is not JSON")

// transportError names the class of a failed request (the context's own error when it ended) without the
// transport's text.
func transportError(ctx context.Context, err error) error {
	var timeout interface{ Timeout() bool }
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, errMalformed):
		return err
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.As(err, &timeout) && timeout.Timeout():
		return errors.New("timed out")
	default:
		return errors.New("request failed")
	}
}

// token returns a cached token for creds, or fetches one. A non-empty refused token is never returned again: the
// first caller to see it refused fetches a new one, and the others get that.
func (c *Client) token(ctx context.Context, creds Credentials, refused string) (string, error) {
	c.once.Do(func() {
		c.lock = make(chan struct{}, 1)
		c.tokens = make(map[string]token)
	})
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("%w: %w", ErrToken, ctx.Err())
	}
	defer func() { <-c.lock }()

	now := c.now()
	if t, ok := c.tokens[creds.ClientID]; ok && t.secret == creds.ClientSecret && t.value != refused && now.Before(t.expires) {
		return t.value, nil
	}
	delete(c.tokens, creds.ClientID)
	t, err := c.fetchToken(ctx, creds, now)
	if err != nil {
		return "", err
	}
	c.tokens[creds.ClientID] = t
	return t.value, nil
}

// fetchToken asks Port for a token: POST /v1/auth/access_token.
func (c *Client) fetchToken(ctx context.Context, creds Credentials, now time.Time) (token, error) {
	payload, err := json.Marshal(struct {
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
	}{creds.ClientID, creds.ClientSecret})
	if err != nil {
		return token{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base()+"/v1/auth/access_token", bytes.NewReader(payload))
	if err != nil {
		return token{}, fmt.Errorf("%w: %w", ErrToken, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return token{}, fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrToken, transportError(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5 {
			return token{}, fmt.Errorf("%w: %w: status %d", ErrUnavailable, ErrToken, resp.StatusCode)
		}
		return token{}, fmt.Errorf("%w: status %d%s", ErrToken, resp.StatusCode, c.regionHint())
	}
	var answer struct {
		AccessToken string `json:"accessToken"`
		ExpiresIn   int64  `json:"expiresIn"` // seconds
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&answer); err != nil || answer.AccessToken == "" {
		return token{}, fmt.Errorf("%w: malformed answer", ErrToken)
	}
	life := TokenLifetime
	if s := answer.ExpiresIn; s > 0 && s < int64(TokenLifetime/time.Second) {
		life = time.Duration(s) * time.Second
	}
	// A token whose life is shorter than the margin serves this request only.
	return token{secret: creds.ClientSecret, value: answer.AccessToken, expires: now.Add(life - TokenMargin)}, nil
}

// regionHint names the likeliest cause of refused credentials at Port's EU API: an
// organization in Port's US region, whose credentials only the US API knows.
func (c *Client) regionHint() string {
	switch c.base() {
	case DefaultBaseURL, "https://api.getport.io":
		return " (a Port organization in the US region needs PORT_API_URL=https://api.us.port.io)"
	}
	return ""
}

func (c *Client) base() string {
	if c.BaseURL == "" {
		return DefaultBaseURL
	}
	return strings.TrimRight(c.BaseURL, "/")
}

// httpClient is c.HTTP refusing redirects: Port's API does not redirect these
// calls, and following one would send the token request, whose body holds the
// clientSecret, or the bearer token to whatever host the redirect names.
func (c *Client) httpClient() *http.Client {
	c.httpOnce.Do(func() {
		base := http.DefaultClient
		if c.HTTP != nil {
			base = c.HTTP
		}
		hc := *base
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		c.hc = &hc
	})
	return c.hc
}

func (c *Client) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// Errors lists the package's sentinel errors, for the answer tables of the functions
// that meet them: a test fails when one has no answer.
var Errors = []error{
	ErrNoCredentials, ErrBadRunID, ErrToken, ErrRejected, ErrRunNotFound, ErrRunEnded, ErrUnavailable,
}
