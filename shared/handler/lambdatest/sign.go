package lambdatest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/port-azure-relay/relay/shared/signature"
)

// httpEvent is an HTTP event read for its body and headers; numbers are kept as
// they are written, so that the event can be written back unchanged but for them.
type httpEvent map[string]any

func readHTTPEvent(ev []byte) (httpEvent, []byte, map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(ev))
	dec.UseNumber()
	var m httpEvent
	if err := dec.Decode(&m); err != nil {
		return nil, nil, nil, fmt.Errorf("not a JSON event: %w", err)
	}
	headers, _ := m["headers"].(map[string]any)
	if headers == nil {
		return nil, nil, nil, errors.New("no headers: only HTTP events carry Port's signature")
	}
	text, _ := m["body"].(string)
	body := []byte(text)
	if b64, _ := m["isBase64Encoded"].(bool); b64 {
		var err error
		if body, err = base64.StdEncoding.DecodeString(text); err != nil {
			return nil, nil, nil, fmt.Errorf("body is marked base64 but is not: %w", err)
		}
	}
	return m, body, headers, nil
}

func header(headers map[string]any, name string) (key, value string) {
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			value, _ = v.(string)
			return k, value
		}
	}
	return name, ""
}

// PortSignature returns an HTTP event's body, decoded from base64 where marked, and
// its x-port-signature and x-port-timestamp values.
func PortSignature(ev []byte) (body []byte, sig, ts string, err error) {
	_, body, headers, err := readHTTPEvent(ev)
	if err != nil {
		return nil, "", "", err
	}
	_, sig = header(headers, signature.PortSignatureHeader)
	_, ts = header(headers, signature.PortTimestampHeader)
	return body, sig, ts, nil
}

// SignPort returns the HTTP event ev signed again as Port signs, at ts, with secret:
// over the body, or over its compact form with compact, as Port's agent signs. Both
// headers are replaced in headers and, for REST events, in multiValueHeaders.
func SignPort(ev, secret []byte, ts int64, compact bool) ([]byte, error) {
	m, body, headers, err := readHTTPEvent(ev)
	if err != nil {
		return nil, err
	}
	if compact {
		var buf bytes.Buffer
		if err := json.Compact(&buf, body); err != nil {
			return nil, fmt.Errorf("compact signing needs a JSON body: %w", err)
		}
		body = buf.Bytes()
	}
	multi, _ := m["multiValueHeaders"].(map[string]any)
	set := func(name, value string) {
		key, _ := header(headers, name)
		headers[key] = value
		if multi != nil {
			for k := range multi {
				if strings.EqualFold(k, name) {
					delete(multi, k)
				}
			}
			multi[key] = []string{value}
		}
	}
	set(signature.PortTimestampHeader, strconv.FormatInt(ts, 10))
	set(signature.PortSignatureHeader, signature.SignPort(secret, ts, body))
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
