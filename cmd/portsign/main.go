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
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
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
	out, err := lambdatest.SignPort(raw, secret, ts, compact)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
