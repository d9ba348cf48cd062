package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeAWS stands in for the AWS CLI in TestMakeRedrive: it writes each call's arguments
// to $AWS_CALLS, one line each, and answers describe-stacks with $DLQ_ARN and $QUEUE_ARN
// as the CLI prints a list in text (tab-separated, "None" for an output that is missing),
// or fails as the CLI does for a missing stack.
const fakeAWS = `#!/usr/bin/env bash
printf '%s\n' "$*" >> "$AWS_CALLS"
case "$1 $2" in
"cloudformation describe-stacks")
  if [ -n "${NO_STACK:-}" ]; then echo "An error occurred (ValidationError) when calling the DescribeStacks operation: Stack with id $4 does not exist" >&2; exit 254; fi
  printf '%s\t%s\n' "${DLQ_ARN:-None}" "${QUEUE_ARN:-None}" ;;
"sqs start-message-move-task") echo '{"TaskHandle": "eyJ0YXNrSWQiOiJ4In0="}' ;;
*) echo "unexpected call" >&2; exit 252 ;;
esac
`

// TestMakeRedrive: make redrive reads the stack's DeliveryDLQArn and DeliveryQueueArn
// outputs and starts SQS's move of the dead letters to the delivery queue, named: the
// relay sends dead letters itself, so SQS keeps no source queue for them. It says what it
// needs when STACK or the AWS CLI is missing, and moves nothing for a stack without the
// queue. The AWS CLI is a stand-in on a PATH that holds nothing else.
func TestMakeRedrive(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed: make redrive is not checked here")
	}
	tpl := loadTemplate(t)
	// What it moves: from DeliveryQueue's dead-letter queue (SQS moves only from a queue that is
	// one) to DeliveryQueue.
	if render(get(tpl, "Outputs", "DeliveryDLQArn", "Value")) != "!GetAtt DeliveryDLQ.Arn" ||
		render(get(tpl, "Outputs", "DeliveryQueueArn", "Value")) != "!GetAtt DeliveryQueue.Arn" ||
		render(get(tpl, "Resources", "DeliveryQueue", "Properties", "RedrivePolicy", "deadLetterTargetArn")) != "!GetAtt DeliveryDLQ.Arn" {
		t.Fatal("DeliveryDLQArn and DeliveryQueueArn are not the ARNs of DeliveryQueue's dead-letter queue and of DeliveryQueue")
	}
	bin, withAWS := t.TempDir(), t.TempDir()
	for _, tool := range []string{"bash", "go"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s is not installed", tool)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(withAWS, "aws"), []byte(fakeAWS), 0o755); err != nil {
		t.Fatal(err)
	}
	const dlq = "arn:aws:sqs:eu-west-1:123456789012:port-azure-relay-DeliveryDLQ-AbC123"
	const queue = "arn:aws:sqs:eu-west-1:123456789012:port-azure-relay-DeliveryQueue-dEf456"
	const describe = "cloudformation describe-stacks --stack-name relay --output text --query " +
		"[Stacks[0].Outputs[?OutputKey=='DeliveryDLQArn'].OutputValue | [0], Stacks[0].Outputs[?OutputKey=='DeliveryQueueArn'].OutputValue | [0]]"
	tests := []struct {
		name     string
		args     []string
		env      []string
		aws      bool
		ok       bool
		say      string
		wantArgs []string
	}{
		{"no stack", nil, nil, true, false, "make redrive STACK=<your stack's name>", nil},
		{"no AWS CLI", []string{"STACK=relay"}, nil, false, false, "needs the AWS CLI", nil},
		{"the stack has no queue", []string{"STACK=relay"}, nil, true, false, "outputs: queued delivery is off", []string{describe}},
		{"one output missing", []string{"STACK=relay"}, []string{"DLQ_ARN=" + dlq}, true, false, "outputs: queued delivery is off", []string{describe}},
		{"no such stack", []string{"STACK=relay"}, []string{"NO_STACK=1"}, true, false, "Stack with id relay does not exist", []string{describe}},
		{"moved", []string{"STACK=relay"}, []string{"DLQ_ARN=" + dlq, "QUEUE_ARN=" + queue}, true, true, "list-message-move-tasks --source-arn " + dlq,
			[]string{describe, "sqs start-message-move-task --source-arn " + dlq + " --destination-arn " + queue}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := filepath.Join(t.TempDir(), "calls")
			path := bin
			if tt.aws {
				path = withAWS + ":" + bin
			}
			cmd := exec.Command(mk, append([]string{"--no-print-directory", "-C", root, "redrive"}, tt.args...)...)
			cmd.Env = append([]string{"PATH=" + path, "HOME=" + emptyHome(t), "XDG_CONFIG_HOME=", "AWS_CALLS=" + calls}, tt.env...)
			out, err := cmd.CombinedOutput()
			if (err == nil) != tt.ok || !strings.Contains(string(out), tt.say) {
				t.Errorf("make redrive %s: %v, want success %v and %q in:\n%s", strings.Join(tt.args, " "), err, tt.ok, tt.say, out)
			}
			var got []string
			if b, err := os.ReadFile(calls); err == nil {
				got = strings.Split(strings.TrimSpace(string(b)), "\n")
			}
			if !slices.Equal(got, tt.wantArgs) {
				t.Errorf("make redrive called aws %q, want %q", got, tt.wantArgs)
			}
		})
	}
}
