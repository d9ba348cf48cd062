# The one entry point: build, test, lint, demo, bench, invoke, deploy. `make` alone lists the targets.
# Needs only Go; every tool below is installed by this Makefile with `go install`.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# A GOPROXY you set (a company mirror, in the environment or with `go env -w`) is used as it is.
# Only Go's own default is replaced, by the public proxy alone: its `,direct` fallback cannot
# resolve on closed networks.
comma := ,
ifeq ($(shell go env GOPROXY),https://proxy.golang.org$(comma)direct)
export GOPROXY := https://proxy.golang.org
endif

TOOLS   := $(CURDIR)/.tools/bin
RIE     := $(TOOLS)/aws-lambda-rie
STATICCHECK := $(TOOLS)/staticcheck
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
STATICCHECK_VERSION := v0.8.2

# Deployed binaries: static, arm64, without the RPC mode, stripped.
LAMBDA_GOFLAGS := -tags lambda.norpc -trimpath -ldflags "-s -w"
LAMBDA_ENV     := GOOS=linux GOARCH=arm64 CGO_ENABLED=0

FUZZTIME ?= 3s
EVENT    ?= events/relay/httpapi.json

.PHONY: help all build build-RelayFunction build-VerifierFunction build-StatusFunction build-HookCheckFunction test fuzz lint demo \
        demo-rotation doctor redrive bench bench-burst invoke-relay invoke-verifier deploy clean tools

help: ## list the targets (this)
	@echo "make <target>, where <target> is one of:"
	@grep -hE '^[A-Za-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([A-Za-z-]+):.*## (.*)/  \1\t\2/' | expand -t 18

all: lint test build ## lint, test and build, as CI does

build: bin/relay/bootstrap bin/verifier/bootstrap bin/status/bootstrap bin/hookcheck/bootstrap ## the four functions' bootstraps under bin/ (linux/arm64, static)
	@ls -l bin/*/bootstrap

bin/%/bootstrap: FORCE
	$(LAMBDA_ENV) go build $(LAMBDA_GOFLAGS) -o $@ ./functions/$*

# `sam build` runs these (BuildMethod: makefile) and deploys $(ARTIFACTS_DIR)/bootstrap.
build-RelayFunction:
	$(LAMBDA_ENV) go build $(LAMBDA_GOFLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/relay

build-VerifierFunction:
	$(LAMBDA_ENV) go build $(LAMBDA_GOFLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/verifier

build-StatusFunction:
	$(LAMBDA_ENV) go build $(LAMBDA_GOFLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/status

build-HookCheckFunction:
	$(LAMBDA_ENV) go build $(LAMBDA_GOFLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/hookcheck

tools: $(RIE) $(STATICCHECK) ## install the runtime emulator and staticcheck into .tools/bin

$(RIE):
	GOBIN=$(TOOLS) go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

$(STATICCHECK):
	GOBIN=$(TOOLS) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Unit, handler, template and end-to-end tests (the built bootstraps under the Lambda
# runtime emulator), with the race detector; then every fuzz target for $(FUZZTIME).
# The e2e package runs verbose so that its matrix counts show; passing cases are elided.
test: $(RIE) ## unit, template and end-to-end tests (under the Lambda runtime emulator), every benchmark once, then the fuzzers briefly
	go test -race -count=1 $$(go list ./... | grep -v /e2e$$)
	go test -run '^$$' -skip '^BenchmarkBurst$$' -bench . -benchtime 1x ./shared/... ./functions/... | { grep -E '^(--- FAIL|FAIL|panic)|_test.go:' || true; }
	E2E_REQUIRE=1 AWS_LAMBDA_RIE=$(RIE) go test -race -count=1 -v ./e2e/ | grep -Ev '^(=== (RUN|PAUSE|CONT|NAME)|[[:space:]]*--- PASS)'
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME)

# Every Fuzz function, one at a time: a finding fails with its whole output and saved
# input; a failure of the fuzzing engine alone is shown and tried again (.ci/fuzz).
fuzz: ## every fuzz target for FUZZTIME (3s; make fuzz FUZZTIME=1m for longer)
	bash .ci/fuzz $(FUZZTIME)

lint: $(STATICCHECK) ## gofmt, go vet, staticcheck, go mod tidy clean
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	go vet ./...
	$(STATICCHECK) ./...
	@cp go.mod /tmp/relay.go.mod.bak; cp go.sum /tmp/relay.go.sum.bak; go mod tidy; \
	  if ! git diff --quiet -- go.mod go.sum; then git diff -- go.mod go.sum; \
	    cp /tmp/relay.go.mod.bak go.mod; cp /tmp/relay.go.sum.bak go.sum; echo "go mod tidy is not clean"; exit 1; fi

# The whole chain on this machine: no AWS account, no Docker.
demo: $(RIE) ## the whole chain on this machine: no AWS account, no Docker
	AWS_LAMBDA_RIE=$(RIE) go run ./cmd/demo

# Both rotations (Azure's webhook secret, Port's clientSecret) with no refused request.
demo-rotation: $(RIE) ## both rotations (Azure's webhook secret, Port's clientSecret) on this machine, nothing refused
	AWS_LAMBDA_RIE=$(RIE) go run ./cmd/rotationdemo

bench: $(RIE) ## cold start, warm latency, own work per invocation, binary size (docs/performance.md)
	AWS_LAMBDA_RIE=$(RIE) go run ./cmd/bench
	go test -run '^$$' -skip '^BenchmarkBurst$$' -bench . -benchmem ./shared/... ./functions/...

# 1,000 signed Port invocations at once against an Azure DevOps that takes RUNS runs per
# WINDOW (429 beyond), the relay's queue drained as Lambda's mapping does; real time, so
# BURSTS bursts take about BURSTS × 1000/RUNS windows (docs/performance.md).
RUNS   ?= 100
WINDOW ?= 1s
BURSTS ?= 3
bench-burst: ## a burst of 1,000 Port invocations against a throttled Azure: delivered, doubled, lost, time to drain (RUNS=100 WINDOW=1s BURSTS=3)
	go test -run '^$$' -bench '^BenchmarkBurst$$' -benchtime 1x -count $(BURSTS) ./functions/relay/ -args -burst.runs=$(RUNS) -burst.window=$(WINDOW)

# The wiring of a deployed stack, link by link (docs/troubleshooting.md): STACK=<name>, with
# your AWS credentials; FIX=1 creates the missing service hooks and re-enables the disabled ones.
STACK ?=
doctor: ## check a deployed stack's wiring, Port to Azure and back (STACK=name; FIX=1 repairs the service hooks)
	@test -n "$(STACK)" || { echo "make doctor STACK=<your stack's name> [FIX=1] (or: go run ./cmd/doctor -h)"; exit 2; }
	go run ./cmd/doctor -stack $(STACK) $(if $(FIX),-fix)

# Queued deliveries that waited too long or could not be read wait in the stack's delivery
# dead-letter queue; after a fix, SQS moves them back to the delivery queue, and the ledger sends
# none that was, or may have been, sent (docs/operations.md). The destination is named: the relay
# sends dead letters itself, so SQS has no source queue of its own on record for them.
redrive: ## move a stack's queued deliveries back from its dead-letter queue after a fix (STACK=name)
	@test -n "$(STACK)" || { echo "make redrive STACK=<your stack's name>: moves the delivery dead-letter queue's messages back to the delivery queue"; exit 2; }
	@command -v aws >/dev/null || { echo "make redrive needs the AWS CLI (aws), with credentials for the stack's account and region"; exit 2; }
	@out=$$(aws cloudformation describe-stacks --stack-name "$(STACK)" --output text \
	    --query "[Stacks[0].Outputs[?OutputKey=='DeliveryDLQArn'].OutputValue | [0], Stacks[0].Outputs[?OutputKey=='DeliveryQueueArn'].OutputValue | [0]]"); \
	  read -r dlq queue <<<"$$out"; \
	  if [ -z "$$dlq" ] || [ "$$dlq" = None ] || [ -z "$$queue" ] || [ "$$queue" = None ]; then \
	    echo "stack $(STACK) has no DeliveryDLQArn and DeliveryQueueArn outputs: queued delivery is off (QueuedDelivery and Ledger must both be true)"; exit 2; fi; \
	  echo "moving the messages of $$dlq back to $$queue"; \
	  aws sqs start-message-move-task --source-arn "$$dlq" --destination-arn "$$queue"; \
	  echo "progress: aws sqs list-message-move-tasks --source-arn $$dlq"

# sam local invoke with a sample event, signed again now with $$PORT_CLIENT_SECRET
# (the secret the deployed relay reads), so the timestamp is inside the tolerance.
invoke-relay: ## sam local invoke the relay with EVENT (signed again with $PORT_CLIENT_SECRET)
	@test -n "$${PORT_CLIENT_SECRET:-}" || { echo "export PORT_CLIENT_SECRET (Port's clientSecret) first"; exit 2; }
	@if grep -qi x-port-signature $(EVENT); then go run ./cmd/portsign $(EVENT) > /tmp/relay-event.json; else cp $(EVENT) /tmp/relay-event.json; fi
	sam local invoke RelayFunction -e /tmp/relay-event.json

invoke-verifier: ## sam local invoke the verifier with EVENT
	sam local invoke VerifierFunction -e $(or $(filter events/verifier/%,$(EVENT)),events/verifier/azure-signed.json)

deploy: ## sam build and sam deploy (--guided, or CONFIG_ENV=roundtrip)
	sam build
	sam deploy $(if $(CONFIG_ENV),--config-env $(CONFIG_ENV),--guided)

clean: ## remove bin/, .aws-sam/ and .tools/
	rm -rf bin .aws-sam .tools

FORCE:
