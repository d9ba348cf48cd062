// Command portsign signs the body of an HTTP Lambda event the way Port does, so that
// the samples in events/ can be sent to a relay that reads a real secret.
//
//	PORT_CLIENT_SECRET=… go run ./cmd/portsign events/relay/httpapi.json > /tmp/event.json
//
// It sets x-port-timestamp (now, or -ts) and x-port-signature over the body exactly
// as the event holds it (decoded from base64 where marked), or over its compact form
// with -compact, as Port's agent does. The secret is read from an environment
// variable, never from the command line, so it stays out of shell history.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/signature"
)

func main() {
	ts := flag.Int64("ts", 0, "timestamp to sign at, in seconds (default now)")
	secretEnv := flag.String("secret-env", "PORT_CLIENT_SECRET", "environment variable holding Port's clientSecret")
	compact := flag.Bool("compact", false, "sign the compacted body, as Port's agent does")
	write := flag.Bool("w", false, "rewrite the file in place instead of printing")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: portsign [-ts N] [-compact] [-w] EVENT.json")
		os.Exit(2)
	}
	secret := os.Getenv(*secretEnv)
	if secret == "" {
		fmt.Fprintf(os.Stderr, "portsign: %s is empty: export Port's clientSecret in it\n", *secretEnv)
		os.Exit(2)
	}
	if *ts == 0 {
		*ts = time.Now().Unix()
	}
	out, err := sign(flag.Arg(0), []byte(secret), *ts, *compact)
	if err != nil {
		fmt.Fprintln(os.Stderr, "portsign:", err)
		os.Exit(1)
	}
	if *write {
		err = os.WriteFile(flag.Arg(0), out, 0o644)
	} else {
		_, err = os.Stdout.Write(out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "portsign:", err)
		os.Exit(1)
	}
}

func sign(path string, secret []byte, ts int64, compact bool) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("%s: not a JSON event: %w", path, err)
	}
	bodyText, _ := ev["body"].(string)
	headers, _ := ev["headers"].(map[string]any)
	if headers == nil {
		return nil, errors.New(path + ": no headers: only HTTP events carry Port's signature")
	}
	body := []byte(bodyText)
	if b64, _ := ev["isBase64Encoded"].(bool); b64 {
		if body, err = base64.StdEncoding.DecodeString(bodyText); err != nil {
			return nil, fmt.Errorf("%s: body is marked base64 but is not: %w", path, err)
		}
	}
	if compact {
		var buf bytes.Buffer
		if err := json.Compact(&buf, body); err != nil {
			return nil, fmt.Errorf("%s: -compact needs a JSON body: %w", path, err)
		}
		body = buf.Bytes()
	}
	multi, _ := ev["multiValueHeaders"].(map[string]any) // REST events repeat headers here
	set := func(name, value string) {
		key := name
		for k := range headers {
			if strings.EqualFold(k, name) {
				key = k
			}
		}
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
	set(signature.PortTimestampHeader, fmt.Sprint(ts))
	set(signature.PortSignatureHeader, signature.SignPort(secret, ts, body))
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ev); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
