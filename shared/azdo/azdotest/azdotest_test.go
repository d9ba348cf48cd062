package azdotest

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Known-answer vectors from docs/protocols.md.
const (
	msBody = `{"resource":{"message":{"title":"Hello, world!","subtitle":"I'm using WebHooks!"}}}`
	msSig  = "750d33212d3ad4932cc390819050734831a0a94f" // key "secret"
	htBody = `{"port_context":{"runId":"r_abc"},"name":"<svc>&é"}`
	htSig  = "eef32f4d1bacc11efe580beb176bd7297119a76e" // key "test"
)

var hooks = []Webhook{
	{Name: "deploy", Secret: "secret", Header: "X-Hub-Signature"},
	{Name: "port", Secret: "test", Header: "x-port-signature"},
	{Name: "open", Secret: "secret"}, // a secret but no header name: Azure checks nothing
}

func sign(secret, body string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(body))
	return hex.EncodeToString(mac.Sum(nil))
}

// post sends body to rawURL with header set verbatim, names not canonicalized.
func post(t *testing.T, c *http.Client, method, rawURL string, header map[string]string, body string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = []string{v}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b), nil
}

func TestServe(t *testing.T) {
	const path = "/contoso/_apis/public/distributedtask/webhooks/deploy?api-version=6.0-preview"
	tests := []struct {
		name        string
		method      string // POST unless set
		path        string // path unless set
		header      map[string]string
		body        string
		wantStatus  int
		wantKey     string // typeKey of Azure's envelope; empty for none
		wantMessage string // part of the envelope's message
	}{
		{name: "Microsoft's vector with a sha1= prefix is accepted",
			header: map[string]string{"X-Hub-Signature": "sha1=" + msSig}, body: msBody, wantStatus: 200},
		{name: "an upper-case SHA1= prefix is accepted",
			header: map[string]string{"X-Hub-Signature": "SHA1=" + msSig}, body: msBody, wantStatus: 200},
		{name: "bare hex is accepted",
			header: map[string]string{"X-Hub-Signature": msSig}, body: msBody, wantStatus: 200},
		{name: "upper-case hex is accepted",
			header: map[string]string{"X-Hub-Signature": "sha1=" + strings.ToUpper(msSig)}, body: msBody, wantStatus: 200},
		{name: "the header name matches in any case",
			header: map[string]string{"x-hub-signature": "sha1=" + msSig}, body: msBody, wantStatus: 200},
		{name: "the webhook name matches in any case",
			path:   "/contoso/_apis/public/distributedtask/webhooks/DEPLOY?api-version=6.0-preview",
			header: map[string]string{"X-Hub-Signature": "sha1=" + msSig}, body: msBody, wantStatus: 200},
		{name: "the organization matches in any case",
			path:   "/Contoso/_apis/public/distributedtask/webhooks/deploy?api-version=6.0-preview",
			header: map[string]string{"X-Hub-Signature": "sha1=" + msSig}, body: msBody, wantStatus: 200},
		{name: "the api-version may come in the Accept header",
			path:   "/contoso/_apis/public/distributedtask/webhooks/deploy",
			header: map[string]string{"X-Hub-Signature": "sha1=" + msSig, "Accept": "application/json; api-version=6.0-preview"},
			body:   msBody, wantStatus: 200},
		{name: "the HTML and non-ASCII vector is accepted",
			path:   "/contoso/_apis/public/distributedtask/webhooks/port?api-version=6.0-preview",
			header: map[string]string{"X-Port-Signature": "sha1=" + htSig}, body: htBody, wantStatus: 200},
		{name: "a wrong secret is a hash mismatch that echoes the whole body unescaped",
			header: map[string]string{"X-Hub-Signature": "sha1=" + htSig}, body: htBody,
			wantStatus: 500, wantKey: "WebHookException", wantMessage: "Payload hash does not match. Received Event payload: " + htBody},
		{name: "a signature of one byte less is a hash mismatch",
			header: map[string]string{"X-Hub-Signature": "sha1=" + msSig[:38]}, body: msBody,
			wantStatus: 500, wantKey: "WebHookException", wantMessage: "Payload hash does not match"},
		{name: "a body that is not UTF-8 is hashed as Azure decodes it",
			header: map[string]string{"X-Hub-Signature": "sha1=" + sign("secret", "{\xff}")}, body: "{\xff}",
			wantStatus: 500, wantKey: "WebHookException", wantMessage: "Payload hash does not match"},
		{name: "a body that is not UTF-8 matches once decoded",
			header: map[string]string{"X-Hub-Signature": "sha1=" + sign("secret", "{\uFFFD}")}, body: "{\xff}", wantStatus: 200},
		{name: "a missing header is refused",
			body:       msBody,
			wantStatus: 500, wantKey: "WebHookException", wantMessage: "RequiredHeaderSignatureNotFound"},
		{name: "a signature in another header is refused",
			header: map[string]string{"X-Port-Signature": "sha1=" + msSig}, body: msBody,
			wantStatus: 500, wantKey: "WebHookException", wantMessage: "RequiredHeaderSignatureNotFound"},
		{name: "an empty body is refused",
			header:     map[string]string{"X-Hub-Signature": "sha1=" + msSig},
			wantStatus: 500, wantKey: "WebHookException", wantMessage: "EmptyWebHookEventPayload"},
		{name: "non-hex is a bad request",
			header: map[string]string{"X-Hub-Signature": "sha1=" + strings.Repeat("z", 40)}, body: msBody,
			wantStatus: 400, wantKey: "ArgumentException"},
		{name: "odd-length hex is a bad request",
			header: map[string]string{"X-Hub-Signature": msSig[:39]}, body: msBody,
			wantStatus: 400, wantKey: "ArgumentException"},
		{name: "a sha256= prefix is not stripped",
			header: map[string]string{"X-Hub-Signature": "sha256=" + msSig}, body: msBody,
			wantStatus: 400, wantKey: "ArgumentException"},
		{name: "an unknown webhook is not found",
			path:   "/contoso/_apis/public/distributedtask/webhooks/other?api-version=6.0-preview",
			header: map[string]string{"X-Hub-Signature": "sha1=" + msSig}, body: msBody,
			wantStatus: 500, wantKey: "WebHookException",
			wantMessage: "Cannot find webhook for the given webHookId other. Try enabling CD trigger for this artifact."},
		{name: "a webhook without header name accepts anything",
			path: "/contoso/_apis/public/distributedtask/webhooks/open?api-version=6.0-preview",
			body: "not even JSON", wantStatus: 200},
		{name: "a webhook without header name ignores a wrong signature",
			path:   "/contoso/_apis/public/distributedtask/webhooks/open?api-version=6.0-preview",
			header: map[string]string{"X-Hub-Signature": "sha1=0000"}, body: msBody, wantStatus: 200},
		{name: "a missing api-version is a bad request",
			path:   "/contoso/_apis/public/distributedtask/webhooks/deploy",
			header: map[string]string{"X-Hub-Signature": "sha1=" + msSig}, body: msBody,
			wantStatus: 400, wantKey: "VssVersionNotSpecifiedException", wantMessage: `No api-version was supplied for the "POST" request.`},
		{name: "an api-version without -preview is a bad request",
			path:   "/contoso/_apis/public/distributedtask/webhooks/deploy?api-version=6.0",
			header: map[string]string{"X-Hub-Signature": "sha1=" + msSig}, body: msBody,
			wantStatus: 400, wantKey: "VssInvalidPreviewVersionException", wantMessage: `For example: "6.0-preview"`},
		{name: "a malformed api-version is a bad request",
			path:   "/contoso/_apis/public/distributedtask/webhooks/deploy?api-version=latest",
			header: map[string]string{"X-Hub-Signature": "sha1=" + msSig}, body: msBody,
			wantStatus: 400, wantKey: "VssInvalidApiVersionException"},
		{name: "another organization is not found",
			path:   "/fabrikam/_apis/public/distributedtask/webhooks/deploy?api-version=6.0-preview",
			header: map[string]string{"X-Hub-Signature": "sha1=" + msSig}, body: msBody, wantStatus: 404},
		{name: "a path below the webhook is not found",
			path:   "/contoso/_apis/public/distributedtask/webhooks/deploy/x?api-version=6.0-preview",
			header: map[string]string{"X-Hub-Signature": "sha1=" + msSig}, body: msBody, wantStatus: 404},
		{name: "a GET is not allowed",
			method: http.MethodGet, wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := New("contoso", hooks...)
			defer srv.Close()
			method, p := cmp.Or(tt.method, http.MethodPost), cmp.Or(tt.path, path)

			resp, body, err := post(t, http.DefaultClient, method, srv.URL+p, tt.header, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s = %d %s, want %d", method, p, resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantStatus == 200 && body != "" {
				t.Errorf("body = %q, want it empty", body)
			}
			if tt.wantKey != "" {
				e := decodeEnvelope(t, body)
				if e.TypeKey != tt.wantKey || !strings.Contains(e.Message, tt.wantMessage) {
					t.Errorf("envelope = %+v, want typeKey %q and a message containing %q", e, tt.wantKey, tt.wantMessage)
				}
				if got, want := resp.Header.Get("X-TFS-ServiceError"), url.QueryEscape(e.Message); got != want {
					t.Errorf("X-TFS-ServiceError = %q, want %q", got, want)
				}
			}

			ds := srv.Deliveries()
			if len(ds) != 1 {
				t.Fatalf("%d deliveries, want 1", len(ds))
			}
			if d := ds[0]; d.Status != tt.wantStatus || d.Verified != (tt.wantStatus == 200) || string(d.Body) != tt.body {
				t.Errorf("delivery = {Status: %d, Verified: %v, Body: %q}, want {%d, %v, %q}",
					d.Status, d.Verified, d.Body, tt.wantStatus, tt.wantStatus == 200, tt.body)
			}
		})
	}
}

// decodeEnvelope checks the shape of Azure's error body, field order included, and returns it.
func decodeEnvelope(t *testing.T, body string) apiError {
	t.Helper()
	if prefix := `{"$id":"1","innerException":null,"message":`; !strings.HasPrefix(body, prefix) {
		t.Fatalf("body = %s, want it to start with %s", body, prefix)
	}
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("body = %s: %v", body, err)
	}
	if e.ErrorCode != 0 || e.EventID != 3000 || e.TypeName == "" {
		t.Errorf("envelope = %+v, want errorCode 0, eventId 3000 and a typeName", e)
	}
	return e
}

func TestScript(t *testing.T) {
	signed := map[string]string{"X-Hub-Signature": "sha1=" + msSig}
	tests := []struct {
		name        string
		step        Step
		timeout     time.Duration // client timeout; none if zero
		wantStatus  int           // 0: the request fails
		wantRetry   string
		wantMessage string
		wantAtLeast time.Duration
	}{
		{name: "a 429 carries Retry-After", step: Status(429).RetryAfter(1),
			wantStatus: 429, wantRetry: "1", wantMessage: "Too Many Requests"},
		{name: "a 503 carries its message", step: Status(503).Message("TF400898: An internal error occurred."),
			wantStatus: 503, wantMessage: "TF400898: An internal error occurred."},
		{name: "a 400 answers whatever the signature", step: Status(400), wantStatus: 400, wantMessage: "Bad Request"},
		{name: "a 429 after a delay, as Azure delays before it throttles", step: Status(429).RetryAfter(30).After(200 * time.Millisecond),
			wantStatus: 429, wantRetry: "30", wantMessage: "Too Many Requests", wantAtLeast: 200 * time.Millisecond},
		{name: "a delay answers normally, late", step: Delay(200 * time.Millisecond),
			wantStatus: 200, wantAtLeast: 200 * time.Millisecond},
		{name: "a hang ends when the client gives up", step: Hang(), timeout: 200 * time.Millisecond,
			wantAtLeast: 200 * time.Millisecond},
		{name: "a delay longer than the client's patience gets no answer", step: Delay(time.Minute),
			timeout: 200 * time.Millisecond},
		{name: "a drop closes the connection unanswered", step: Drop()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := New("contoso", hooks...)
			defer srv.Close()
			srv.Script(tt.step)
			c := &http.Client{Timeout: tt.timeout}

			start := time.Now()
			resp, body, err := post(t, c, http.MethodPost, srv.WebhookURL("deploy"), signed, msBody)
			elapsed := time.Since(start)
			switch {
			case tt.wantStatus == 0 && err == nil:
				t.Fatalf("POST = %d %s, want an error", resp.StatusCode, body)
			case tt.wantStatus != 0 && err != nil:
				t.Fatalf("POST: %v", err)
			case tt.wantStatus != 0 && resp.StatusCode != tt.wantStatus:
				t.Fatalf("POST = %d %s, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if elapsed < tt.wantAtLeast {
				t.Errorf("answered after %v, want at least %v", elapsed, tt.wantAtLeast)
			}
			if resp != nil && resp.Header.Get("Retry-After") != tt.wantRetry {
				t.Errorf("Retry-After = %q, want %q", resp.Header.Get("Retry-After"), tt.wantRetry)
			}
			if tt.wantMessage != "" {
				if e := decodeEnvelope(t, body); e.Message != tt.wantMessage {
					t.Errorf("message = %q, want %q", e.Message, tt.wantMessage)
				}
			}

			// The step is spent: the next request behaves normally.
			resp, body, err = post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("deploy"), signed, msBody)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("second POST = %v %q %v, want 200", resp, body, err)
			}
			// A delay notices the client left only once the connection closes: give it a moment.
			ds := srv.Deliveries()
			for deadline := time.Now().Add(2 * time.Second); ds[0].Status != tt.wantStatus && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
				ds = srv.Deliveries()
			}
			if len(ds) != 2 || ds[0].Status != tt.wantStatus || !ds[0].Verified {
				t.Errorf("deliveries = %+v, want 2, the first with Status %d and Verified", ds, tt.wantStatus)
			}
		})
	}
}

// SetSecret is the operator changing the service connection: the old signature is
// refused from the next request on, the new one accepted.
func TestSetSecretChangesTheCheck(t *testing.T) {
	srv := New("contoso", hooks...)
	defer srv.Close()
	status := func(secret string) int {
		resp, _, err := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("deploy"),
			map[string]string{"X-Hub-Signature": "sha1=" + sign(secret, msBody)}, msBody)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	if got := status("secret"); got != 200 {
		t.Fatalf("before: %d, want 200", got)
	}
	srv.SetSecret("Deploy", "rotated")
	if old, now := status("secret"), status("rotated"); old != 500 || now != 200 {
		t.Errorf("after SetSecret: old secret %d, new secret %d; want 500 and 200", old, now)
	}
	if hooks[0].Secret != "secret" {
		t.Error("SetSecret changed the caller's slice")
	}
}

func TestScriptPlaysInOrder(t *testing.T) {
	srv := New("contoso", hooks...)
	defer srv.Close()
	srv.Script(Status(503), Status(429).RetryAfter(2))
	var got []int
	for range 3 {
		resp, _, err := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("open"), nil, msBody)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.StatusCode)
	}
	if want := []int{503, 429, 200}; !slices.Equal(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	srv.Script(Status(500))
	srv.Reset()
	if resp, _, err := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("open"), nil, msBody); err != nil || resp.StatusCode != 200 {
		t.Errorf("after Reset: POST = %v %v, want 200", resp, err)
	}
	if n := srv.Count(); n != 1 {
		t.Errorf("after Reset: Count() = %d, want 1", n)
	}
}

func TestCloseReleasesHang(t *testing.T) {
	srv := New("contoso", hooks...)
	srv.Script(Hang())
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Post(srv.WebhookURL("open"), "application/json", strings.NewReader(msBody))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for srv.Count() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a request hung")
	}
	if err := <-errc; err == nil {
		t.Error("hung POST succeeded after Close, want an error")
	}
}

func TestTLSIsNotTrustedByDefault(t *testing.T) {
	srv := NewTLS("contoso", hooks...)
	defer srv.Close()
	_, _, err := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("open"), nil, msBody)
	if err == nil {
		t.Fatal("POST with the default client succeeded, want a certificate error")
	}
	resp, _, err := post(t, srv.Client(), http.MethodPost, srv.WebhookURL("open"), nil, msBody)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST with srv.Client() = %v %v, want 200", resp, err)
	}
}

func TestTooLargeBodyIsTruncated(t *testing.T) {
	srv := New("contoso", hooks...)
	defer srv.Close()
	body := `{"pad":"` + strings.Repeat("x", MaxBody) + `"}`
	signed := map[string]string{"X-Hub-Signature": "sha1=" + sign("secret", body)}
	resp, _, err := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("deploy"), signed, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 500 {
		t.Errorf("POST of %d bytes = %d, want 500: Azure hashes only the first %d", len(body), resp.StatusCode, MaxBody)
	}
	if d := srv.Deliveries()[0]; len(d.Body) != MaxBody {
		t.Errorf("recorded %d bytes, want %d", len(d.Body), MaxBody)
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	srv := New("contoso", hooks...)
	defer srv.Close()
	srv.Script(Status(503), Delay(10*time.Millisecond))
	const n = 32
	signed := map[string]string{"X-Hub-Signature": "sha1=" + msSig}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			resp, _, err := post(t, http.DefaultClient, http.MethodPost, srv.WebhookURL("deploy"), signed, msBody)
			if err == nil && resp.StatusCode != 200 && resp.StatusCode != 503 {
				err = errors.New(resp.Status)
			}
			errs <- err
		})
		wg.Go(func() {
			for _, d := range srv.Deliveries() {
				d.Header.Set("X-Hub-Signature", "tampered") // copies: must not reach the server's records
			}
			_ = srv.Count()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	ds := srv.Deliveries()
	if len(ds) != n {
		t.Fatalf("%d deliveries, want %d", len(ds), n)
	}
	statuses := map[int]int{}
	for _, d := range ds {
		statuses[d.Status]++
		if !d.Verified || d.Header.Get("X-Hub-Signature") != "sha1="+msSig {
			t.Errorf("delivery = %+v, want Verified with the header as sent", d)
		}
	}
	if statuses[503] != 1 || statuses[200] != n-1 {
		t.Errorf("statuses = %v, want one 503 and %d 200", statuses, n-1)
	}
}

func TestNewRefusesInvalidNames(t *testing.T) {
	for _, name := range []string{"", "a.b", "a/b", "é"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New with webhook %q did not panic", name)
				}
			}()
			New("contoso", Webhook{Name: name}).Close()
		}()
	}
}
