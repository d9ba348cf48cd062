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
)

// APIVersion71 is the api-version of the REST resources the wiring checks read and
// write: projects, pipelines, permissions and service hook subscriptions.
const APIVersion71 = "7.1"

// The service hook events the status function follows, their publisher and the
// resource version it reads, and the Web Hooks consumer that posts them.
const (
	PipelinesPublisher       = "pipelines"
	RunStateChangedEvent     = "ms.vss-pipelines.run-state-changed-event"
	StageStateChangedEvent   = "ms.vss-pipelines.stage-state-changed-event"
	PipelinesResourceVersion = "5.1-preview.1"
	WebHooksConsumer         = "webHooks"
	HTTPRequestAction        = "httpRequest"
	// MaskedValue is what Azure answers for a confidential input such as
	// basicAuthPassword; sent back unchanged in a PUT, it keeps the stored value.
	MaskedValue = "********"
)

// Subscription statuses, as Azure DevOps names them. A subscription whose answer
// has no status is enabled (the enum's default, which Azure's examples omit).
const (
	StatusEnabled                    = "enabled"
	StatusOnProbation                = "onProbation"
	StatusDisabledByUser             = "disabledByUser"
	StatusDisabledBySystem           = "disabledBySystem"
	StatusDisabledByInactiveIdentity = "disabledByInactiveIdentity"
)

// ErrNotFound means Azure answered 404 to a read: the subscription, or another
// resource than a project or a pipeline, does not exist.
var ErrNotFound = errors.New("azdo: not found")

// Subscription is a service hook subscription as the REST API reads and writes it.
type Subscription struct {
	ID               string            `json:"id,omitempty"`
	Status           string            `json:"status,omitempty"`
	PublisherID      string            `json:"publisherId"`
	EventType        string            `json:"eventType"`
	ResourceVersion  string            `json:"resourceVersion,omitempty"`
	ConsumerID       string            `json:"consumerId"`
	ConsumerActionID string            `json:"consumerActionId"`
	PublisherInputs  map[string]string `json:"publisherInputs"`
	ConsumerInputs   map[string]string `json:"consumerInputs"`
}

// State is the subscription's status, StatusEnabled when Azure named none.
func (s Subscription) State() string {
	if s.Status == "" {
		return StatusEnabled
	}
	return s.Status
}

// Project is a project's id and name.
type Project struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// PipelineInfo is what "Pipelines - Get" answers that the checks use.
type PipelineInfo struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	Folder string `json:"folder"`
}

// buildNamespace is the security namespace of build definitions; QueueBuilds its bit.
const (
	buildNamespace = "33344d9c-fc72-4d6f-aba5-fa317101a7e9"
	queueBuilds    = 128
)

func (c *Client) orgURL() string {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	return strings.TrimRight(base, "/") + "/" + url.PathEscape(c.Org)
}

// GetProject reads a project by name or id: GET {org}/_apis/projects/{project}.
// ErrProjectNotFound when Azure does not know it.
func (c *Client) GetProject(ctx context.Context, project string, auth Auth) (Project, error) {
	var p Project
	err := c.call(ctx, http.MethodGet, c.orgURL()+"/_apis/projects/"+url.PathEscape(project)+"?api-version="+APIVersion71, nil, auth, ErrProjectNotFound, &p)
	if err == nil && p.ID == "" {
		err = &Error{Err: fmt.Errorf("%w: a project without an id", ErrRefused)}
	}
	return p, err
}

// GetPipeline reads a pipeline: GET {org}/{project}/_apis/pipelines/{id}.
// ErrPipelineNotFound (or ErrProjectNotFound) when Azure does not show it to auth.
func (c *Client) GetPipeline(ctx context.Context, project string, id int, auth Auth) (PipelineInfo, error) {
	var p PipelineInfo
	target := c.orgURL() + "/" + url.PathEscape(project) + "/_apis/pipelines/" + strconv.Itoa(id) + "?api-version=" + APIVersion71
	err := c.call(ctx, http.MethodGet, target, nil, auth, ErrPipelineNotFound, &p)
	return p, err
}

// CanQueue reports whether auth's identity may queue the pipeline (the Build
// namespace's QueueBuilds bit on its token, {projectId}/{folders}/{id}), through
// "Permissions - Has Permissions", which evaluates the caller's own permissions. A
// run's dry run (previewRun) cannot tell: Azure's build service skips the
// QueueBuilds check for it.
func (c *Client) CanQueue(ctx context.Context, projectID, folder string, id int, auth Auth) (bool, error) {
	token := strings.ToLower(projectID) + "/"
	for part := range strings.FieldsFuncSeq(folder, func(r rune) bool { return r == '\\' || r == '/' }) {
		token += part + "/"
	}
	token += strconv.Itoa(id)
	target := c.orgURL() + "/_apis/permissions/" + buildNamespace + "/" + strconv.Itoa(queueBuilds) +
		"?tokens=" + url.QueryEscape(token) + "&alwaysAllowAdministrators=true&api-version=" + APIVersion71
	var answer struct {
		Value []bool `json:"value"`
	}
	if err := c.call(ctx, http.MethodGet, target, nil, auth, ErrNotFound, &answer); err != nil {
		return false, err
	}
	if len(answer.Value) != 1 {
		return false, &Error{Err: fmt.Errorf("%w: %d answers for one token", ErrRefused, len(answer.Value))}
	}
	return answer.Value[0], nil
}

// Subscriptions lists the organization's service hook subscriptions of the Web
// Hooks consumer: GET {org}/_apis/hooks/subscriptions.
func (c *Client) Subscriptions(ctx context.Context, auth Auth) ([]Subscription, error) {
	var answer struct {
		Value []Subscription `json:"value"`
	}
	target := c.orgURL() + "/_apis/hooks/subscriptions?consumerId=" + WebHooksConsumer + "&api-version=" + APIVersion71
	err := c.call(ctx, http.MethodGet, target, nil, auth, ErrNotFound, &answer)
	return answer.Value, err
}

// CreateSubscription creates s (POST) and returns it as Azure stored it.
func (c *Client) CreateSubscription(ctx context.Context, s Subscription, auth Auth) (Subscription, error) {
	s.ID, s.Status = "", ""
	return c.writeSubscription(ctx, http.MethodPost, c.orgURL()+"/_apis/hooks/subscriptions?api-version="+APIVersion71, s, auth)
}

// ReplaceSubscription replaces the subscription s.ID with s (PUT). A confidential
// input sent as MaskedValue keeps the value Azure stores.
func (c *Client) ReplaceSubscription(ctx context.Context, s Subscription, auth Auth) (Subscription, error) {
	if s.ID == "" {
		return Subscription{}, &Error{Err: fmt.Errorf("%w: a subscription without an id", ErrRefused)}
	}
	target := c.orgURL() + "/_apis/hooks/subscriptions/" + url.PathEscape(s.ID) + "?api-version=" + APIVersion71
	return c.writeSubscription(ctx, http.MethodPut, target, s, auth)
}

func (c *Client) writeSubscription(ctx context.Context, method, target string, s Subscription, auth Auth) (Subscription, error) {
	body, err := json.Marshal(s)
	if err != nil {
		return Subscription{}, &Error{Err: err}
	}
	var out Subscription
	err = c.call(ctx, method, target, body, auth, ErrNotFound, &out)
	return out, err
}

// maxAPIAnswer bounds what is read of a REST answer: an organization's
// subscriptions list is the largest, a few kB each.
const maxAPIAnswer = 8 << 20

// call makes one REST call with auth and reads its JSON answer into out. A refused
// token is given to auth.Refused and tried again once when auth then has another,
// as Run does. 404 is notFound, with Azure's typeKey; the other answers are classed
// as for Run: ErrCredentials (401, a sign-in page or a redirect to it), ErrForbidden
// (403: the identity lacks the permission), ErrThrottled, ErrUnavailable, ErrServerError,
// ErrRefused. A PAT whose scopes do not cover the call is ErrCredentials too: Azure's
// scope check fails the authentication itself (Azure DevOps Server's
// ScopesValidationService), so only a call the same PAT passed tells "lacks the scope"
// from "refused".
func (c *Client) call(ctx context.Context, method, target string, body []byte, auth Auth, notFound error, out any) error {
	if c.Org == "" {
		return &Error{Err: ErrBadPipeline}
	}
	if auth == nil {
		return &Error{Err: ErrNoCredentials}
	}
	var current, next string
	_, err := c.post(ctx, exchange{
		method: method,
		target: target,
		body:   body,
		limit:  maxAPIAnswer,
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
			req.Header.Set("Accept", "application/json")
			req.Header.Set("X-TFS-FedAuthRedirect", "Suppress")
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			return nil
		},
		judge: func(resp *http.Response, answer []byte) error {
			return judgeAPI(resp, answer, notFound, out)
		},
		again: func(err error) bool {
			if !errors.Is(err, ErrCredentials) {
				return false
			}
			auth.Refused(current)
			h, herr := auth.Header(ctx)
			if herr != nil || h == current {
				return false
			}
			next = h
			return true
		},
	})
	return err
}

// judgeAPI classes a REST answer and reads a 2xx JSON one into out.
func judgeAPI(resp *http.Response, answer []byte, notFound error, out any) error {
	status := resp.StatusCode
	switch {
	case status == http.StatusTooManyRequests:
		return ErrThrottled
	case status == http.StatusServiceUnavailable:
		return ErrUnavailable
	case status >= 200 && status < 300:
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		answer = bytes.TrimPrefix(answer, []byte("\xef\xbb\xbf"))
		if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			return fmt.Errorf("%w: it answered a sign-in page", ErrCredentials)
		}
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("%w: an answer that is not the resource's JSON", ErrRefused)
		}
		return nil
	case status >= 300 && status < 400:
		if signIn(resp.Header.Get("Location")) {
			return fmt.Errorf("%w: it redirected to sign in", ErrCredentials)
		}
		return fmt.Errorf("%w: a redirect, not followed", ErrRefused)
	case status == http.StatusUnauthorized:
		return ErrCredentials
	}
	e := readEnvelope(answer)
	switch {
	case status == http.StatusForbidden:
		return e.wrap(ErrForbidden)
	case status == http.StatusNotFound && strings.HasPrefix(e.TypeKey, "ProjectDoesNotExist"):
		return e.wrap(ErrProjectNotFound)
	case status == http.StatusNotFound:
		return e.wrap(notFound)
	case status >= 500:
		return e.wrap(ErrServerError)
	default:
		return e.wrap(ErrRefused)
	}
}
