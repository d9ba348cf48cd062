package lambdatest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Endpoint is a local stand-in for an API Gateway HTTP API with one $default route
// to a function.
type Endpoint struct {
	// URL is the base URL, http://127.0.0.1:port.
	URL string

	srv *http.Server
}

// Gateway starts an endpoint on 127.0.0.1 in front of fn. Each request becomes an
// HTTP API (payload 2.0) event; the function's answer becomes the HTTP response as
// API Gateway builds it, and a function error a 502 {"message":"Internal Server
// Error"}. Like httptest.NewServer, it panics if it cannot listen. Close it when done.
func Gateway(fn Invoker) *Endpoint { return serve(handler{fn: fn}) }

// RESTGateway is Gateway as an API Gateway REST API with a Lambda proxy integration
// fronts a function: each request becomes a payload 1.0 event, and the answer must
// be a 1.0 response. A response with a key the REST API does not know (such as the
// 2.0 shape's "cookies"), or without statusCode, is a "Malformed Lambda proxy
// response": the caller gets 502 {"message": "Internal server error"}.
func RESTGateway(fn Invoker) *Endpoint { return serve(handler{fn: fn, rest: true}) }

func serve(h handler) *Endpoint {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("lambdatest: gateway: " + err.Error())
	}
	e := &Endpoint{URL: "http://" + ln.Addr().String()}
	e.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	return e
}

// Close stops the endpoint; requests in progress are cut off.
func (e *Endpoint) Close() error { return e.srv.Close() }

// maxPayload is Lambda's limit for a synchronous invocation's event.
const maxPayload = 6 << 20

type handler struct {
	fn   Invoker
	rest bool
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayload))
	if err != nil {
		gatewayError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	header := r.Header.Clone()
	header.Set("Host", r.Host)
	var ev []byte
	if h.rest {
		ev = RESTEvent(r.Method, r.URL.RequestURI(), header, b)
	} else {
		ev = httpAPIEvent(r.Method, r.URL.RequestURI(), header, b, "$default")
	}
	if peer, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		ev = WithSourceIP(ev, peer.Addr().String()) // as API Gateway: the connection's peer
	}
	out, err := h.fn.Invoke(r.Context(), ev)
	var fe *FunctionError
	switch {
	case errors.Is(err, ErrTimedOut):
		gatewayError(w, http.StatusGatewayTimeout, "Endpoint request timed out")
		return
	case errors.As(err, &fe), err != nil:
		gatewayError(w, http.StatusBadGateway, "Internal Server Error")
		return
	}
	if h.rest && !restResponse(out) {
		gatewayError(w, http.StatusBadGateway, "Internal server error")
		return
	}
	writeResponse(w, out)
}

// restKeys are the keys a REST API's Lambda proxy integration accepts in a response.
var restKeys = map[string]bool{"statusCode": true, "headers": true, "multiValueHeaders": true, "body": true, "isBase64Encoded": true}

// restResponse reports whether out is a response a REST API accepts: an object
// with statusCode and no key beyond restKeys.
func restResponse(out []byte) bool {
	var keys map[string]json.RawMessage
	if json.Unmarshal(out, &keys) != nil || keys["statusCode"] == nil {
		return false
	}
	for k := range keys {
		if !restKeys[k] {
			return false
		}
	}
	return true
}

// writeResponse writes a payload 2.0 answer: an object with statusCode is a
// response; anything else is a body that HTTP APIs answer with 200 as JSON.
func writeResponse(w http.ResponseWriter, out []byte) {
	var resp struct {
		StatusCode        *int                `json:"statusCode"`
		Headers           map[string]string   `json:"headers"`
		MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
		Body              *string             `json:"body"`
		IsBase64Encoded   bool                `json:"isBase64Encoded"`
		Cookies           []string            `json:"cookies"`
	}
	if json.Unmarshal(out, &resp) != nil || resp.StatusCode == nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
		return
	}
	if *resp.StatusCode < 100 || *resp.StatusCode > 599 {
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	var b []byte
	if resp.Body != nil {
		b = []byte(*resp.Body)
		if resp.IsBase64Encoded {
			decoded, err := base64.StdEncoding.DecodeString(*resp.Body)
			if err != nil {
				gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
				return
			}
			b = decoded
		}
	}
	for name, values := range resp.MultiValueHeaders {
		for _, v := range values {
			w.Header().Add(name, v)
		}
	}
	for name, v := range resp.Headers {
		w.Header().Set(name, v)
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	w.WriteHeader(*resp.StatusCode)
	_, _ = w.Write(b)
}

func gatewayError(w http.ResponseWriter, status int, message string) {
	b, _ := json.Marshal(map[string]string{"message": message})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", strings.ReplaceAll(http.StatusText(status), " ", "")+"Exception")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// newID returns a random (version 4) UUID, the form of API Gateway's request ids.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return strings.Join([]string{h[:8], h[8:12], h[12:16], h[16:20], h[20:]}, "-")
}
