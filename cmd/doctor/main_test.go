package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
)

// stackTemplate stands for the deployed stack: the parameters and the two outputs
// the doctor reads, as template.yaml names them (moto does not run SAM's transform).
const stackTemplate = `{
  "Parameters": {
    "PortSecretArn": {"Type": "String"}, "AzureDevOpsOrg": {"Type": "String"},
    "AzureDevOpsWebhook": {"Type": "String", "Default": ""}, "AzureDevOpsWebhooks": {"Type": "String", "Default": ""},
    "AzureDevOpsPipelines": {"Type": "String", "Default": ""}, "AzureDevOpsUrl": {"Type": "String", "Default": "https://dev.azure.com"},
    "AzureAuthorityHost": {"Type": "String", "Default": "https://login.microsoftonline.com"},
    "PortApiUrl": {"Type": "String", "Default": "https://api.port.io"}, "AzureFederation": {"Type": "String", "Default": "false"}
  },
  "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
  "Outputs": {
    "RelayUrl": {"Value": "https://abc123.execute-api.eu-west-1.amazonaws.com/"},
    "AzureServiceHookUrl": {"Value": "https://abc123.execute-api.eu-west-1.amazonaws.com/azure/events"}
  }
}`

// TestStackWiringFromMoto reads a stack through the real CloudFormation client
// against moto's server, and runs the whole doctor on it with the stand-ins: the
// outputs and parameters say the same wiring the functions' variables would.
func TestStackWiringFromMoto(t *testing.T) {
	motoURL, stop, err := awstest.StartMoto(t.TempDir())
	if errors.Is(err, awstest.ErrNoMoto) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	sm := smtest.New()
	t.Cleanup(sm.Close)
	for _, kv := range sm.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", motoURL)
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AZURE_DEVOPS_PAT", "")

	az := azdotest.New("contoso")
	t.Cleanup(az.Close)
	az.AddPipeline(azdotest.RunsPipeline{Project: "Payments", ID: 42, Name: "deploy-service"})
	az.AddPAT("stack-pat-Qx")
	port := porttest.New("stack-client", "stack-port-secret-Lm")
	t.Cleanup(port.Close)
	port.SetActions(porttest.Action{Identifier: "deploy", InvocationMethod: porttest.InvocationMethod{Type: "WEBHOOK",
		URL: "https://abc123.execute-api.eu-west-1.amazonaws.com/pipelines/deploy", Body: json.RawMessage(`{"port_context":{"runId":"{{ .run.id }}"}}`)}})
	arn := sm.Put("port/azure-relay", `{"clientId":"stack-client","clientSecret":"stack-port-secret-Lm","serviceHookPassword":"stack-hook-Pw","azurePat":"stack-pat-Qx"}`)

	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cf := cloudformation.NewFromConfig(cfg)
	param := func(k, v string) cftypes.Parameter {
		return cftypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(v)}
	}
	if _, err := cf.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String("relay-prod"), TemplateBody: aws.String(stackTemplate),
		Parameters: []cftypes.Parameter{param("PortSecretArn", arn), param("AzureDevOpsOrg", "contoso"), param("AzureDevOpsPipelines", "deploy=Payments/42"),
			param("AzureDevOpsUrl", az.URL), param("PortApiUrl", port.URL)}}); err != nil {
		t.Fatalf("CreateStack on moto: %v", err)
	}

	w, err := wiringOf(ctx, cfg, "relay-prod", "", "", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if w.stack.RelayURL != "https://abc123.execute-api.eu-west-1.amazonaws.com/" || w.stack.HookURL != "https://abc123.execute-api.eu-west-1.amazonaws.com/azure/events" ||
		w.stack.SecretID != arn || w.stack.Org != "contoso" || len(w.stack.Pipelines) != 1 || w.stack.Pipelines[0].Project != "Payments" ||
		w.azureURL != az.URL || w.portAPI != port.URL || w.stack.Federation == nil || *w.stack.Federation || w.stack.Name != "relay-prod" {
		t.Fatalf("wiring of the stack = %+v, want its outputs and parameters", w)
	}
	if _, err := wiringOf(ctx, cfg, "no-such-stack", "", "", nil); err == nil {
		t.Errorf("a stack that does not exist: no error")
	}

	var out, stderr bytes.Buffer
	// Without subscriptions: each missing one is a ✗, and -fix creates them.
	if code := run(ctx, []string{"-stack", "relay-prod"}, func(string) string { return "" }, &out, &stderr); code != 1 ||
		!strings.Contains(out.String(), "✗ service hook run-state-changed in Payments: no subscription posts it") {
		t.Fatalf("doctor -stack = %d:\n%s%s", code, out.String(), stderr.String())
	}
	out.Reset()
	if code := run(ctx, []string{"-stack", "relay-prod", "-fix"}, func(string) string { return "" }, &out, &stderr); code != 0 ||
		len(az.Subscriptions()) != 2 || strings.Contains(out.String(), "stack-pat-Qx") || strings.Contains(out.String(), "stack-hook-Pw") {
		t.Fatalf("doctor -stack -fix = %d, %d subscriptions:\n%s%s", code, len(az.Subscriptions()), out.String(), stderr.String())
	}
}

// TestFlagsAndConfiguration: the command refuses what it cannot run with, as a
// usage error (2), before any check.
func TestFlagsAndConfiguration(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-west-1")
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no URLs without -stack", nil, map[string]string{"PORT_SECRET_ID": "s", "AZURE_DEVOPS_ORG": "o", "AZURE_DEVOPS_WEBHOOK": "w"}, "-relay-url and -hook-url are required"},
		{"both -stack and URLs", []string{"-stack", "s", "-relay-url", "https://x/"}, nil, "not both"},
		{"the relay's variables missing", []string{"-relay-url", "https://x/", "-hook-url", "https://x/azure/events"}, nil, "PORT_SECRET_ID is required"},
		{"an unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, stderr bytes.Buffer
			if code := run(context.Background(), tt.args, env(tt.env), &out, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.want) || out.Len() != 0 {
				t.Errorf("run(%q) = %d, stderr %q, stdout %q; want 2 and %q", tt.args, code, stderr.String(), out.String(), tt.want)
			}
		})
	}
}
