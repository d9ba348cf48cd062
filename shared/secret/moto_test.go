package secret_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/port-azure-relay/relay/shared/awstest"
	"github.com/port-azure-relay/relay/shared/secret"
)

// motoEnv is the whole AWS environment of the test and of boto3: fake credentials,
// a region, the endpoint, and nothing from this machine (its CA bundle, profiles).
func motoEnv(endpoint string) map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":                "testing",
		"AWS_SECRET_ACCESS_KEY":            "testing",
		"AWS_SESSION_TOKEN":                "",
		"AWS_REGION":                       "eu-west-1",
		"AWS_DEFAULT_REGION":               "eu-west-1",
		"AWS_PROFILE":                      "",
		"AWS_CA_BUNDLE":                    "",
		"AWS_ENDPOINT_URL":                 "",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint,
		"AWS_EC2_METADATA_DISABLED":        "true",
	}
}

// startMoto runs moto_server on a free loopback port until the test ends, or skips
// the test where moto or boto3 is not installed.
func startMoto(t *testing.T) string {
	t.Helper()
	url, stop, err := awstest.StartMoto(t.TempDir())
	if errors.Is(err, awstest.ErrNoMoto) {
		t.Skip("moto interop skipped: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	if err := exec.Command("python3", "-c", "import boto3").Run(); err != nil {
		t.Skip("moto interop skipped: python3 with boto3 is not installed (pip install boto3)")
	}
	return url
}

// operator is boto3 in one Python process, as an operator's script would be:
// create-secret, then put-secret-value, one command a line.
type operator struct {
	t   *testing.T
	in  io.WriteCloser
	out *bufio.Scanner
}

func newOperator(t *testing.T, endpoint string) *operator {
	t.Helper()
	script := `import sys, boto3
sm = boto3.client("secretsmanager")
for line in sys.stdin:
    op, name, value = line.rstrip("\n").split(" ", 2)
    try:
        if op == "create":
            sm.create_secret(Name=name, SecretString=value)
        else:
            sm.put_secret_value(SecretId=name, SecretString=value)
        print("ok", flush=True)
    except Exception as e:
        print(type(e).__name__, flush=True)
`
	cmd := exec.Command("python3", "-c", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range motoEnv(endpoint) {
		if v != "" { // boto3 takes an empty AWS_PROFILE for a profile named ""
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Wait()
	})
	return &operator{t: t, in: in, out: bufio.NewScanner(out)}
}

func (o *operator) do(op, name, value string) {
	o.t.Helper()
	fmt.Fprintf(o.in, "%s %s %s\n", op, name, value)
	if !o.out.Scan() || o.out.Text() != "ok" {
		o.t.Fatalf("boto3 %s: %s %v", op, o.out.Text(), o.out.Err())
	}
}

// TestRotationAgainstMoto: a Secrets Manager nobody here wrote, reached the way the
// Lambda reaches AWS (the SDK's default configuration and AWS_ENDPOINT_URL_SECRETS_MANAGER),
// rotated with boto3's put_secret_value: AWSCURRENT and AWSPREVIOUS move as the relay expects.
func TestRotationAgainstMoto(t *testing.T) {
	endpoint := startMoto(t)
	for k, v := range motoEnv(endpoint) {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	const name = "port/azure-relay"
	value := func(azure string) string {
		return `{"clientId":"moto-id","clientSecret":"moto-port-secret","azureWebhookSecret":"` + azure + `"}`
	}

	op := newOperator(t, endpoint)
	op.do("create", name, value("az-1"))
	current := secret.NewSource(sm, name, time.Hour, nil)
	previous := secret.NewPrevious(sm, name, time.Hour, nil)
	c1, err := current.Get(ctx)
	if err != nil || c1.AzureWebhookSecret != "az-1" || c1.ClientSecret != "moto-port-secret" || c1.ClientID != "moto-id" {
		t.Fatalf("AWSCURRENT after create-secret = %+v, %v, want az-1", c1, err)
	}
	if p, err := previous.Get(ctx, c1); !errors.Is(err, secret.ErrNotFound) {
		t.Fatalf("AWSPREVIOUS before any rotation = %+v, %v, want ErrNotFound", p, err)
	}

	for i, want := range []string{"az-2", "az-3"} {
		op.do("put", name, value(want))
		current.Invalidate()
		c, err := current.Get(ctx)
		if err != nil || c.AzureWebhookSecret != want {
			t.Fatalf("rotation %d: AWSCURRENT = %+v, %v, want %s", i+1, c, err, want)
		}
		p, err := previous.Get(ctx, c)
		if wantPrev := fmt.Sprintf("az-%d", i+1); err != nil || p.AzureWebhookSecret != wantPrev {
			t.Fatalf("rotation %d: AWSPREVIOUS = %+v, %v, want %s", i+1, p, err, wantPrev)
		}
	}
}
