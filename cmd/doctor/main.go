// Command doctor checks the chain from Port's action to the Port run's end for one
// stack, link by link, one line each (✓, ✗ with the one fix, or – not checked),
// and exits 1 when any link is broken. With -fix it creates the missing service
// hook subscriptions and re-enables the disabled ones; it changes nothing else.
//
//	go run ./cmd/doctor -stack NAME [-fix] [-project NAME,…]
//	go run ./cmd/doctor -relay-url URL -hook-url URL [-fix] [-project NAME,…]   (the functions' variables from the environment)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/port-azure-relay/relay/shared/azdo"
	"github.com/port-azure-relay/relay/shared/entra"
	"github.com/port-azure-relay/relay/shared/portapi"
	"github.com/port-azure-relay/relay/shared/relay"
	"github.com/port-azure-relay/relay/shared/wiring"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the command with its arguments, environment and outputs, for tests.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stack := fs.String("stack", "", "the CloudFormation stack: its outputs and parameters say the wiring")
	relayURL := fs.String("relay-url", "", "without -stack: the relay's base URL (the RelayUrl output)")
	hookURL := fs.String("hook-url", "", "without -stack: the status function's URL (the AzureServiceHookUrl output)")
	projects := fs.String("project", "", "projects besides AzureDevOpsPipelines' where the service hooks belong, comma-separated (webhook-only wiring)")
	fix := fs.Bool("fix", false, "create the missing service hook subscriptions and re-enable the disabled ones")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err == nil && awsCfg.Region == "" {
		err = errors.New("AWS_REGION is required")
	}
	if err != nil {
		fmt.Fprintln(stderr, "doctor: AWS configuration:", err)
		return 2
	}
	w, err := wiringOf(ctx, awsCfg, *stack, *relayURL, *hookURL, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "doctor:", err)
		return 2
	}
	for p := range strings.SplitSeq(*projects, ",") {
		if p = strings.TrimSpace(p); p != "" {
			w.stack.Projects = append(w.stack.Projects, p)
		}
	}
	port := &portapi.Client{BaseURL: w.portAPI, HTTP: &http.Client{Timeout: 20 * time.Second}}
	d := &wiring.Doctor{
		Stack:   w.stack,
		Secrets: secretsmanager.NewFromConfig(awsCfg),
		Azure:   &azdo.Client{BaseURL: w.azureURL, Org: w.stack.Org, HTTP: azdo.NewHTTPClient(nil)},
		Tokens: &entra.Client{AuthorityHost: w.authority, HTTP: &http.Client{Timeout: 10 * time.Second},
			Assertion: &entra.AWSAssertion{STS: sts.NewFromConfig(awsCfg)}},
		Port: portActions(port),
		PAT:  strings.TrimSpace(getenv("AZURE_DEVOPS_PAT")),
	}
	results := d.Run(ctx, *fix)
	failures, unchecked := 0, 0
	for _, r := range results {
		fmt.Fprintln(stdout, r)
		switch r.State {
		case wiring.Failed:
			failures++
		case wiring.NotChecked:
			unchecked++
		}
	}
	fmt.Fprintf(stdout, "%d checks: %d passed, %d failed, %d not checked\n", len(results), len(results)-failures-unchecked, failures, unchecked)
	if failures > 0 {
		return 1
	}
	return 0
}

// portActions adapts Port's client to the checks' ActionLister, naming its
// refusals as the checks name them.
func portActions(c *portapi.Client) wiring.ActionLister {
	return func(ctx context.Context, id, secret string) ([]wiring.Action, error) {
		list, err := c.Actions(ctx, portapi.Credentials{ClientID: id, ClientSecret: secret})
		switch {
		case errors.Is(err, portapi.ErrToken) && !errors.Is(err, portapi.ErrUnavailable):
			return nil, wiring.ErrPortRefused
		case err != nil:
			return nil, fmt.Errorf("%w: %w", wiring.ErrPortUnavailable, err)
		}
		out := make([]wiring.Action, len(list))
		for i, a := range list {
			m := a.InvocationMethod
			out[i] = wiring.Action{Identifier: a.Identifier, Type: m.Type, URL: m.URL, Synchronized: m.Synchronized, Body: m.Body}
		}
		return out, nil
	}
}

// stackWiring is what the checks need besides the clients.
type stackWiring struct {
	stack                        wiring.Stack
	azureURL, authority, portAPI string
}

// wiringOf reads the wiring from the stack's outputs and parameters, or else from
// the functions' variables and the two URLs; both go through the relay's loader,
// so that the doctor refuses what the relay refuses.
func wiringOf(ctx context.Context, awsCfg aws.Config, stack, relayURL, hookURL string, getenv func(string) string) (stackWiring, error) {
	var federation *bool
	if stack != "" {
		if relayURL != "" || hookURL != "" {
			return stackWiring{}, errors.New("give -stack, or -relay-url and -hook-url, not both")
		}
		out, err := cloudformation.NewFromConfig(awsCfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
		if err != nil {
			return stackWiring{}, fmt.Errorf("stack %s: %w", stack, err)
		}
		if len(out.Stacks) != 1 {
			return stackWiring{}, fmt.Errorf("stack %s: %d stacks answered", stack, len(out.Stacks))
		}
		params, outputs := map[string]string{}, map[string]string{}
		for _, p := range out.Stacks[0].Parameters {
			params[aws.ToString(p.ParameterKey)] = aws.ToString(p.ParameterValue)
		}
		for _, o := range out.Stacks[0].Outputs {
			outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
		}
		relayURL, hookURL = outputs["RelayUrl"], outputs["AzureServiceHookUrl"]
		env := map[string]string{
			"PORT_SECRET_ID":         params["PortSecretArn"],
			"AZURE_DEVOPS_ORG":       params["AzureDevOpsOrg"],
			"AZURE_DEVOPS_WEBHOOK":   params["AzureDevOpsWebhook"],
			"AZURE_DEVOPS_WEBHOOKS":  params["AzureDevOpsWebhooks"],
			"AZURE_DEVOPS_PIPELINES": params["AzureDevOpsPipelines"],
			"AZURE_DEVOPS_URL":       params["AzureDevOpsUrl"],
			"AZURE_AUTHORITY_HOST":   params["AzureAuthorityHost"],
			"PORT_API_URL":           params["PortApiUrl"],
		}
		getenv = func(k string) string { return env[k] }
		f := params["AzureFederation"] == "true"
		federation = &f
	}
	if relayURL == "" || hookURL == "" {
		return stackWiring{}, errors.New("-relay-url and -hook-url are required without -stack (the RelayUrl and AzureServiceHookUrl outputs)")
	}
	cfg, err := relay.LoadConfig(getenv)
	if err != nil {
		return stackWiring{}, err
	}
	return stackWiring{
		stack: wiring.Stack{Name: stack, RelayURL: relayURL, HookURL: hookURL, SecretID: cfg.SecretID, Org: cfg.Org,
			Webhook: cfg.Webhook, Webhooks: cfg.Webhooks, Pipelines: cfg.Pipelines, Federation: federation},
		azureURL: cfg.AzureURL, authority: cfg.AuthorityHost, portAPI: cfg.PortAPIURL,
	}, nil
}
