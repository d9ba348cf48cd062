// Package azdo delivers signed payloads to Azure DevOps incoming webhooks, or starts
// pipelines by id through the Runs API, and turns Azure's answers, silent or not,
// into errors that name their cause.
package azdo

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/port-azure-relay/relay/shared/signature"
)

// DefaultBaseURL is Azure DevOps Services.
const DefaultBaseURL = "https://dev.azure.com"

// APIVersion is the only version the incoming-webhook resource has: it is preview-only.
const APIVersion = "6.0-preview"

// Errors returned by Deliver and Run, each with the *Error that carries Azure's status
// (0 for none), and by RunBody. None holds Azure's body, a payload value, a PAT or a
// token.
var (
	ErrBadName          = errors.New("azdo: webhook name must match [-_A-Za-z0-9]+")
	ErrWebhookNotFound  = errors.New("azdo: webhook not found")
	ErrSignatureRefused = errors.New("azdo: signature refused")
	ErrThrottled        = errors.New("azdo: throttled")
	ErrUnavailable      = errors.New("azdo: unavailable")
	ErrRefused          = errors.New("azdo: request refused")
	ErrServerError      = errors.New("azdo: server error")
	ErrTLS              = errors.New("azdo: TLS certificate not trusted")
	ErrNoAnswer         = errors.New("azdo: no answer in time")
	ErrNoTime           = errors.New("azdo: no time left to call")
	ErrConnection       = errors.New("azdo: connection failed after the request was sent")

	// ErrBadPipeline means Run was given no organization, no project or no positive
	// pipeline id. Nothing was sent.
	ErrBadPipeline = errors.New("azdo: a pipeline needs an organization, a project and a positive id")
	// ErrNoCredentials means the Auth has nothing to sign in with (an empty PAT).
	// Nothing was sent.
	ErrNoCredentials = errors.New("azdo: no Azure DevOps credentials")
	// ErrCredentials means Azure DevOps refused the credentials: a 401, a sign-in page
	// (a 2xx that is not JSON, typically 203) or a redirect to sign in. A PAT that is
	// wrong, expired, revoked or lacks "Build: Read & execute"; a token of a service
	// principal that is not in the organization. Nothing was queued.
	ErrCredentials = errors.New("azdo: Azure DevOps refused the credentials")
	// ErrForbidden (403) means the identity may not queue this pipeline.
	ErrForbidden = errors.New("azdo: the identity may not queue this pipeline")
	// ErrUnexpectedParameter means the pipeline declares no template parameter of a
	// name in the body; a *ParameterError wrapping it names the parameter.
	ErrUnexpectedParameter = errors.New("azdo: the pipeline declares no such template parameter")
	// ErrPipelineNotFound (404) means the pipeline, or its project, was not found.
	ErrPipelineNotFound = errors.New("azdo: pipeline not found")
	// ErrProjectNotFound is the ErrPipelineNotFound of a project Azure does not know.
	ErrProjectNotFound = fmt.Errorf("%w: no such project", ErrPipelineNotFound)
	// ErrNoRunID means Azure accepted the request (2xx, JSON) but its answer names no
	// run: a run may have been queued (MayHaveQueued).
	ErrNoRunID = errors.New("azdo: Azure accepted the run but its answer names no run id")
	// ErrRunBody means Port's body has one of the run parameters in a shape Azure does
	// not take; the text names the key and the shape expected, never a value.
	ErrRunBody = errors.New("azdo: run parameters")
)

// Error is a failed delivery: the sentinel it wraps says why, Status what Azure
// answered (0 for none). It never holds Azure's body, which repeats the payload.
type Error struct {
	Status   int
	Attempts int
	Err      error
	// RetryAfter is the wait Azure asked for with its last answer (Retry-After), at
	// most 12 hours; 0 when it asked for none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v (HTTP %d)", e.Err, e.Status)
}

func (e *Error) Unwrap() error { return e.Err }

// Result is an accepted delivery. Azure's 200 means a run was queued, not started.
type Result struct {
	Status   int
	Attempts int
}

// ValidName reports whether name is a webhook name Azure DevOps allows:
// ^[-_A-Za-z0-9]+$, at most 256 bytes (checked without a regexp compiled at start-up).
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 256 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Client posts to Azure DevOps. Retries happen only where no run can have started:
// 429 and 503 answers and refused connections, within the context's deadline.
type Client struct {
	BaseURL     string // DefaultBaseURL when empty
	Org         string
	Header      string        // the service connection's header; signature.AzureDefaultHeader when empty
	HTTP        *http.Client  // a shared NewHTTPClient(nil) when nil
	MaxAttempts int           // 3 when zero
	Backoff     time.Duration // first wait when Azure gives no Retry-After; 250ms when zero
	IdleReset   time.Duration // DefaultIdleReset when zero
	// MaxWait, when set, is the longest wait before a retry within one call: a longer
	// one ends the call with the *Error, whose RetryAfter says when to try again (a
	// caller that can put the delivery aside does better than wait). Zero: any wait
	// that fits before the context's deadline.
	MaxWait time.Duration

	lastUsed atomic.Int64 // unix nanoseconds when the last request ended
	pre      atomic.Pointer[preconn]
}

// DefaultIdleReset is the idle gap after which pooled connections are closed before
// a delivery. Lambda freezes a container between invocations, and a connection
// kept through a long freeze may have been dropped on the way to Azure: a POST
// on it fails only after it was sent, which reads as "may have been queued" and is
// never retried. A new connection costs a TLS handshake; a lost run costs more.
const DefaultIdleReset = 30 * time.Second

// NewHTTPClient returns the client Deliver should use: bounded connection set-up,
// connections kept across warm invocations, and no overall timeout of its own, as
// each delivery's context carries the Lambda deadline.
func NewHTTPClient(tlsConfig *tls.Config) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 3 * time.Second
	t.IdleConnTimeout = 90 * time.Second
	t.MaxIdleConnsPerHost = 8
	t.TLSClientConfig = tlsConfig
	// The same TLS as the transport's own, by a dialer that can hand over a
	// connection Preconnect made; offering HTTP/2 as the transport would.
	d := &dialer{net: &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}, handshakeTimeout: t.TLSHandshakeTimeout}
	if d.tls = tlsConfig.Clone(); d.tls == nil {
		d.tls = &tls.Config{}
	}
	if d.tls.NextProtos == nil {
		d.tls.NextProtos = []string{"h2", "http/1.1"}
	}
	t.DialTLSContext = d.dialTLS
	return &http.Client{Transport: t, CheckRedirect: noRedirects}
}

// defaultHTTP is for a Client with no HTTP: http.DefaultClient would follow redirects.
// It is made when first needed, not at every start-up.
var defaultHTTP = sync.OnceValue(func() *http.Client { return NewHTTPClient(nil) })

// A redirect would move a signed payload elsewhere: Azure's webhook endpoint never
// redirects, so one means misconfiguration.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// URL returns the endpoint for a webhook.
func (c *Client) URL(webhook string) string {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	return strings.TrimRight(base, "/") + "/" + url.PathEscape(c.Org) +
		"/_apis/public/distributedtask/webhooks/" + url.PathEscape(webhook) + "?api-version=" + APIVersion
}

// Deliver posts body to the webhook, signed with secret over exactly those bytes.
func (c *Client) Deliver(ctx context.Context, webhook string, body, secret []byte) (Result, error) {
	if !ValidName(webhook) {
		return Result{}, &Error{Err: ErrBadName}
	}
	if len(secret) == 0 {
		return Result{}, &Error{Err: signature.ErrNoSecret}
	}
	header := c.Header
	if header == "" {
		header = signature.AzureDefaultHeader
	}
	sig := signature.SignAzure(secret, body)
	a, err := c.post(ctx, exchange{
		target: c.URL(webhook),
		body:   body,
		prepare: func(req *http.Request) error {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(header, sig)
			return nil
		},
		judge: func(resp *http.Response, body []byte) error {
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return nil
			}
			return classify(resp.StatusCode, string(body))
		},
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Status: a.status, Attempts: a.attempts}, nil
}

// exchange is one call to Azure DevOps: what post sends and how it reads the answers.
type exchange struct {
	method string // POST when empty
	target string
	body   []byte
	limit  int64 // bytes of an answer read for judge; 8 KiB when zero
	// prepare sets the headers of each attempt's request. Its error ends the call
	// before anything is sent.
	prepare func(req *http.Request) error
	// judge classes an answer: nil accepts it, an error refuses it.
	judge func(resp *http.Response, body []byte) error
	// again, when set, reports whether a refusal is worth one more attempt at once,
	// outside MaxAttempts: a refused token that has been replaced.
	again func(err error) bool
}

// answer is the accepted answer to an exchange.
type answer struct {
	status   int
	attempts int
}

// post sends x.body to x.target until judge accepts an answer, retrying only
// where nothing can have been queued (retryable), within ctx's deadline.
func (c *Client) post(ctx context.Context, x exchange) (answer, error) {
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP()
	}
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 3
	}
	backoff := c.Backoff
	if backoff <= 0 {
		backoff = 250 * time.Millisecond
	}
	limit := x.limit
	if limit <= 0 {
		limit = 8 << 10
	}
	c.resetIfIdle(hc)
	defer c.lastUsed.Store(time.Now().UnixNano())
	if p := c.pre.Swap(nil); p != nil {
		// The first delivery's dial to Azure takes the connection Preconnect made.
		ctx = context.WithValue(ctx, preconnKey{}, p)
		defer p.discard()
	}

	method := x.method
	if method == "" {
		method = http.MethodPost
	}
	again := false
	for n := 1; ; n++ {
		if ctx.Err() != nil {
			// Nothing was sent: say so, rather than the "may have been queued" of a timeout.
			return answer{}, &Error{Attempts: n - 1, Err: ErrNoTime}
		}
		var body io.Reader
		if x.body != nil {
			body = bytes.NewReader(x.body)
		}
		req, err := http.NewRequestWithContext(ctx, method, x.target, body)
		if err != nil {
			return answer{}, &Error{Err: fmt.Errorf("%w: bad URL", ErrRefused), Attempts: n}
		}
		if err := x.prepare(req); err != nil {
			return answer{}, &Error{Attempts: n - 1, Err: err}
		}
		req, sent := traceSent(req)
		resp, err := hc.Do(req)
		var status int
		var retryAfter time.Duration
		if err == nil {
			status = resp.StatusCode
			retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
			body := readSome(resp.Body, limit)
			if err = x.judge(resp, body); err == nil {
				return answer{status: status, attempts: n}, nil
			}
		} else {
			err = transportError(ctx, err, sent.Load())
		}
		if x.again != nil && !again && status != 0 && ctx.Err() == nil && x.again(err) {
			again = true
			attempts++ // this attempt does not count against MaxAttempts
			continue
		}
		if !retryable(err) || n >= attempts {
			return answer{}, &Error{Status: status, Attempts: n, Err: err, RetryAfter: retryAfter}
		}
		wait := retryAfter
		if wait <= 0 {
			wait = backoff << (n - 1)
		}
		if c.MaxWait > 0 && wait > c.MaxWait || !sleep(ctx, wait) {
			return answer{}, &Error{Status: status, Attempts: n, Err: err, RetryAfter: retryAfter}
		}
	}
}

// resetIfIdle closes hc's idle connections when none was used for IdleReset.
func (c *Client) resetIfIdle(hc *http.Client) {
	bound := c.IdleReset
	if bound <= 0 {
		bound = DefaultIdleReset
	}
	if last := c.lastUsed.Load(); last != 0 && time.Since(time.Unix(0, last)) > bound {
		hc.CloseIdleConnections()
	}
}

// MayHaveQueued reports whether err leaves it unknown whether Azure queued a run:
// the request was sent and no clear answer came back (a timeout, a connection
// broken after sending, a bare 5xx, a Runs API 2xx without a run id). Such a delivery must never be sent again,
// by this client or by anyone retrying the invocation: Azure does not deduplicate.
func MayHaveQueued(err error) bool {
	return errors.Is(err, ErrNoAnswer) || errors.Is(err, ErrConnection) || errors.Is(err, ErrServerError) ||
		errors.Is(err, ErrNoRunID)
}

// retryable holds only for answers that prove no run was queued.
func retryable(err error) bool {
	return errors.Is(err, ErrThrottled) || errors.Is(err, ErrUnavailable)
}

// sleep waits d unless the context would expire first: then it returns false at
// once, so that the caller answers with the error it has rather than time out.
func sleep(ctx context.Context, d time.Duration) bool {
	const minAttempt = 500 * time.Millisecond // time one more try needs to be worth making
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d+minAttempt {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func classify(status int, body string) error {
	// Azure's hash-mismatch message ends with the payload, which may quote any other
	// message: the marker that comes first is Azure's own. Only Azure's own markers
	// count: a word such as "signature" may come from the payload, and reading it as
	// a refused signature would throw the cached secret away.
	notFound := strings.Index(body, "Cannot find webhook")
	refused := -1
	for _, marker := range []string{"RequiredHeaderSignatureNotFound", "hash does not match", "HashMismatch"} {
		if i := strings.Index(body, marker); i >= 0 && (refused < 0 || i < refused) {
			refused = i
		}
	}
	switch {
	case status == http.StatusTooManyRequests:
		return ErrThrottled
	case status == http.StatusServiceUnavailable:
		return ErrUnavailable
	case notFound >= 0 && (refused < 0 || notFound < refused):
		return ErrWebhookNotFound
	case refused >= 0:
		return ErrSignatureRefused
	case status >= 500:
		return ErrServerError
	default:
		return ErrRefused
	}
}

// traceSent reports, once req's round trip has ended, whether the whole request
// may have reached Azure: the transport wrote all of it without an error. Until
// then Azure cannot have queued a run: a dial that failed or timed out, a TLS
// handshake that was reset or never answered, the deadline passing mid-dial, a
// write cut off part way (Azure reads the whole body before it checks the
// signature). The flag is set before the transport flushes its buffer, so a true
// is "may have been sent", never a false "not sent".
func traceSent(req *http.Request) (*http.Request, *atomic.Bool) {
	sent := new(atomic.Bool)
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		if info.Err == nil {
			sent.Store(true)
		}
	}}
	return req.WithContext(httptrace.WithClientTrace(req.Context(), trace)), sent
}

// transportError classes a failed round trip by what the transport did: nothing
// sent is safe to try again (ErrUnavailable) or out of time (ErrNoTime); after the
// request was written, no answer leaves it unknown whether a run was queued.
func transportError(ctx context.Context, err error, sent bool) error {
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &invalid):
		return ErrTLS
	case !sent && ctx.Err() != nil:
		return fmt.Errorf("%w: the deadline passed before the request was sent", ErrNoTime)
	case !sent && errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: connection refused", ErrUnavailable)
	case !sent && errors.As(err, &dnsErr):
		return fmt.Errorf("%w: host not found", ErrUnavailable)
	case !sent && isTimeout(err):
		return fmt.Errorf("%w: no connection in time, nothing was sent", ErrUnavailable)
	case !sent:
		return fmt.Errorf("%w: the connection failed before the request was sent", ErrUnavailable)
	case ctx.Err() != nil, isTimeout(err):
		return ErrNoAnswer
	default:
		return ErrConnection
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// readSome reads up to limit bytes of Azure's answer, enough to classify it, and
// drains the rest of a small body so that the connection can be reused.
func readSome(body io.ReadCloser, limit int64) []byte {
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, limit))
	_, _ = io.CopyN(io.Discard, body, 64<<10)
	return b
}

// maxRetryAfter caps the wait Azure may ask for: SQS keeps a message invisible for 12
// hours at most. A wait within a call is bounded by its deadline, or MaxWait.
const maxRetryAfter = 12 * time.Hour

// parseRetryAfter reads seconds or an HTTP date; it caps the wait at maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		// Clamped before the multiplication, which would overflow past 292 years.
		d = time.Duration(min(max(secs, 0), int(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// Errors lists the package's sentinel errors, for the answer tables of the functions
// that meet them: a test fails when one has no answer.
var Errors = []error{
	ErrBadName, ErrWebhookNotFound, ErrSignatureRefused, ErrThrottled, ErrUnavailable, ErrRefused, ErrServerError, ErrTLS, ErrNoAnswer, ErrNoTime, ErrConnection,
	ErrBadPipeline, ErrNoCredentials, ErrCredentials, ErrForbidden, ErrUnexpectedParameter, ErrPipelineNotFound, ErrProjectNotFound, ErrNoRunID, ErrRunBody, ErrNotFound,
}
