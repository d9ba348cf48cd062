package portapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// maxActions bounds what is read of the actions list: an organization's actions
// with their forms and bodies, a few kB each.
const maxActions = 16 << 20

// Action is a self-service action or automation as GET /v1/actions?version=v2 lists
// it: the parts that say how Port invokes it.
type Action struct {
	Identifier       string           `json:"identifier"`
	Title            string           `json:"title"`
	InvocationMethod InvocationMethod `json:"invocationMethod"`
}

// InvocationMethod is an action's backend: for a Webhook backend its URL, whether
// Port takes the run's status from the answer (synchronized) and the body template.
type InvocationMethod struct {
	Type         string          `json:"type"`
	URL          string          `json:"url"`
	Synchronized bool            `json:"synchronized"`
	Body         json.RawMessage `json:"body"`
}

// Actions lists the organization's actions and automations: GET /v1/actions?version=v2
// (scope read:actions). A refused token is fetched again once; refused credentials
// are ErrToken, an unreachable Port ErrUnavailable, another answer ErrRejected.
func (c *Client) Actions(ctx context.Context, creds Credentials) ([]Action, error) {
	if creds.ClientID == "" || creds.ClientSecret == "" {
		return nil, ErrNoCredentials
	}
	tok, err := c.token(ctx, creds, "")
	if err != nil {
		return nil, fmt.Errorf("portapi: actions: %w", err)
	}
	actions, status, err := c.listActions(ctx, tok)
	if status == http.StatusUnauthorized {
		if tok, err = c.token(ctx, creds, tok); err != nil {
			return nil, fmt.Errorf("portapi: actions: %w", err)
		}
		actions, status, err = c.listActions(ctx, tok)
	}
	switch {
	case err != nil && status == 0:
		return nil, fmt.Errorf("portapi: actions: %w: %w", ErrUnavailable, transportError(ctx, err))
	case status == http.StatusTooManyRequests || status/100 == 5:
		return nil, fmt.Errorf("portapi: actions: %w: %w: status %d", ErrRejected, ErrUnavailable, status)
	case status != http.StatusOK:
		return nil, fmt.Errorf("portapi: actions: %w: status %d", ErrRejected, status)
	case err != nil:
		return nil, fmt.Errorf("portapi: actions: %w: %w", ErrRejected, err)
	}
	return actions, nil
}

func (c *Client) listActions(ctx context.Context, tok string) ([]Action, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base()+"/v1/actions?version=v2", nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil, resp.StatusCode, nil
	}
	var answer struct {
		Actions []Action `json:"actions"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxActions)).Decode(&answer); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("an answer that is not the actions list")
	}
	return answer.Actions, resp.StatusCode, nil
}
