// Command rotationdemo shows both rotations with nothing refused, on one machine:
// the real relay bootstrap under the Lambda Runtime Interface Emulator, a local
// Secrets Manager with version stages, and an Azure DevOps double that checks
// signatures as Azure does. The operator's steps are the runbook's
// (docs/operations.md): put-secret-value, then the service connection.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
	"github.com/port-azure-relay/relay/shared/signature"
)

const (
	org     = "demo-org"
	webhook = "port_trigger"
	name    = "port/azure-relay"
	ttl     = 2 * time.Second // SECRET_CACHE_TTL, short so that the demo shows AWSPREVIOUS at work
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-rotation:", err)
		os.Exit(1)
	}
}

// demo is the running chain and what it has counted.
type demo struct {
	ctx     context.Context
	sm      *smtest.Server
	az      *azdotest.Server
	relay   *lambdatest.Function
	port    string // the clientSecret Port signs with
	refused int
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rie, err := lambdatest.FindRIE()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "relay-rotation-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "relay", "bootstrap")
	fmt.Println("· building the relay bootstrap")
	if err := lambdatest.Build(ctx, "./functions/relay", bin); err != nil {
		return err
	}

	d := &demo{ctx: ctx, sm: smtest.New(), port: random("port")}
	defer d.sm.Close()
	azure1, azure2 := random("azure"), random("azure")
	d.sm.Put(name, stored(d.port, azure1))
	d.az = azdotest.New(org, azdotest.Webhook{Name: webhook, Secret: azure1, Header: signature.AzureDefaultHeader})
	defer d.az.Close()
	d.relay, err = lambdatest.Start(ctx, lambdatest.Options{
		RIE: rie, Bootstrap: bin, Timeout: 10 * time.Second,
		Env: append(d.sm.Env(), "PORT_SECRET_ID="+name, "AZURE_DEVOPS_ORG="+org, "AZURE_DEVOPS_WEBHOOK="+webhook,
			"AZURE_DEVOPS_URL="+d.az.URL, "SECRET_CACHE_TTL="+ttl.String(), "PORT_API_URL=http://127.0.0.1:9"),
	})
	if err != nil {
		return err
	}
	defer d.relay.Close()
	fmt.Printf("· secret %q holds clientSecret and azureWebhookSecret; Azure's service connection holds the same azureWebhookSecret\n\n", name)
	if err := d.send("Port → relay → Azure"); err != nil {
		return err
	}

	fmt.Println("\n1. Rotating Azure's webhook secret")
	fmt.Println("   operator: aws secretsmanager put-secret-value … (the old value becomes AWSPREVIOUS)")
	d.sm.Put(name, stored(d.port, azure2))
	time.Sleep(ttl + 200*time.Millisecond) // the container's cache expires: it signs with the new value
	for range 2 {
		if err := d.send("before the service connection is changed"); err != nil {
			return err
		}
	}
	fmt.Println("   operator: Azure DevOps → service connection → new secret")
	d.az.SetSecret(webhook, azure2)
	if err := d.send("after"); err != nil {
		return err
	}

	fmt.Println("\n2. Rotating Port's clientSecret (the relay's cache is warm)")
	fmt.Println("   operator: Port → credentials → reset; aws secretsmanager put-secret-value … with the new clientSecret")
	d.port = random("port")
	d.sm.Put(name, stored(d.port, azure2))
	for range 2 {
		if err := d.send("Port signs with the new clientSecret"); err != nil {
			return err
		}
	}

	queued := 0
	for _, del := range d.az.Deliveries() {
		if del.Verified {
			queued++
		}
	}
	fmt.Printf("\nRequests refused: %d. Runs queued by Azure: %d, one per request. Secrets Manager calls: %d (AWSPREVIOUS: %d).\n",
		d.refused, queued, d.sm.Calls(), d.sm.StageCalls(smtest.StagePrevious))
	if d.refused > 0 {
		return fmt.Errorf("%d requests refused", d.refused)
	}
	return nil
}

// send makes one Port invocation and prints what the relay answered and logged.
func (d *demo) send(what string) error {
	body := []byte(fmt.Sprintf(`{"environment":"staging","port_context":{"runId":"r_%s"}}`, rand.Text()[:10]))
	h := map[string][]string{}
	ts := time.Now().Unix()
	h[signature.PortTimestampHeader] = []string{fmt.Sprint(ts)}
	h[signature.PortSignatureHeader] = []string{signature.SignPort([]byte(d.port), ts, body)}
	from := len(d.relay.Lines())
	out, err := d.relay.Invoke(d.ctx, lambdatest.HTTPAPIEvent("POST", "/", h, body))
	if err != nil {
		return err
	}
	var resp struct {
		StatusCode int `json:"statusCode"`
	}
	_ = json.Unmarshal(out, &resp)
	var line struct {
		Attempts    int    `json:"attempts"`
		AzureSecret string `json:"azureSecret"`
	}
	for _, l := range d.relay.Lines()[from:] {
		if strings.HasPrefix(l, "{") && strings.Contains(l, `"requestId"`) {
			_ = json.Unmarshal([]byte(l), &line)
		}
	}
	note := "signed once"
	switch line.AzureSecret {
	case "AWSPREVIOUS":
		note = "Azure refused the new value (nothing queued); signed again with AWSPREVIOUS"
	case "AWSCURRENT":
		note = "Azure refused the cached value; signed again with the value read anew"
	}
	attempts := fmt.Sprintf("%d Azure attempts", line.Attempts)
	if line.Attempts == 1 {
		attempts = "1 Azure attempt"
	}
	fmt.Printf("   %-44s %d  (%s: %s)\n", what, resp.StatusCode, attempts, note)
	if resp.StatusCode != 200 {
		d.refused++
	}
	return nil
}

func stored(clientSecret, azure string) string {
	return fmt.Sprintf(`{"clientSecret":%q,"azureWebhookSecret":%q}`, clientSecret, azure)
}

func random(prefix string) string { return "demo_" + prefix + "_" + strings.ToLower(rand.Text()) }
