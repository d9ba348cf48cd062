// Package e2e proves the built bootstrap binaries under the AWS Lambda Runtime
// Interface Emulator, against a Secrets Manager endpoint that checks SigV4 and an
// Azure DevOps double that checks signatures as Azure does, under faults and bad input.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
)

// What every test shares: the binaries, the emulator, and what the log audit reads.
var (
	rie           string
	relayBin      string
	verifierBin   string
	statusBin     string
	hookcheckBin  string
	skipReason    string
	faultCases    atomic.Int64
	badCases      atomic.Int64
	awsCases      atomic.Int64
	acceptedCases atomic.Int64
	configCases   atomic.Int64
	sampleCases   atomic.Int64
	reportCases   atomic.Int64
	statusCases   atomic.Int64
	ledgerCases   atomic.Int64
	pipelineCases atomic.Int64
	auditMu       sync.Mutex
	auditSources  []func() []string // every function's output, read at the end
)

// The secrets and the marker the log audit looks for. The marker is in every
// payload the suite sends.
const (
	portSecret  = "e2e-port-client-secret-Zq7xK2"
	otherSecret = "e2e-service-connection-other-secret-Wm4"
	marker      = "E2E-PAYLOAD-MARKER-5c1d"
	secretName  = "port/relay/e2e"
)

// azureEchoes are what Azure's error bodies hold (azdotest's too): never to be logged.
var azureEchoes = []string{"Payload hash does not match", "Received Event payload", "Cannot find webhook for the given", "VssServiceException", "WebHookException"}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	rie, err = lambdatest.FindRIE()
	if err != nil {
		if os.Getenv("E2E_REQUIRE") == "1" {
			fmt.Fprintln(os.Stderr, "e2e: FAIL:", err)
			return 1
		}
		skipReason = "e2e: skipped: " + err.Error()
		fmt.Println(skipReason)
	} else {
		dir, err := os.MkdirTemp("", "e2e-bootstrap-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		relayBin = filepath.Join(dir, "relay", "bootstrap")
		verifierBin = filepath.Join(dir, "verifier", "bootstrap")
		statusBin = filepath.Join(dir, "status", "bootstrap")
		hookcheckBin = filepath.Join(dir, "hookcheck", "bootstrap")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for pkg, out := range map[string]string{"../functions/relay": relayBin, "../functions/verifier": verifierBin, "../functions/status": statusBin, "../functions/hookcheck": hookcheckBin} {
			if err := lambdatest.Build(ctx, pkg, out); err != nil {
				fmt.Fprintln(os.Stderr, "e2e:", err)
				return 1
			}
		}
	}

	code := m.Run()
	if skipReason != "" {
		return code
	}
	lines, dirty, records, invalid := audit()
	if len(dirty) > 0 {
		fmt.Printf("e2e: FAIL: log audit: %d of %d lines leak the secret, a payload or Azure's error body:\n", len(dirty), lines)
		for _, l := range dirty {
			fmt.Println("  ", l)
		}
		code = 1
	}
	if problems := readmeLogSamples(); len(problems) > 0 && flag.Lookup("test.run").Value.String() == "" {
		for _, p := range problems {
			fmt.Println("e2e: FAIL:", p)
		}
		code = 1
	}
	if len(invalid) > 0 {
		fmt.Printf("e2e: FAIL: EMF audit: %d of %d lines break the Embedded Metric Format:\n", len(invalid), lines)
		for _, l := range invalid {
			fmt.Println("  ", l)
		}
		code = 1
	}
	fmt.Printf("e2e: fault matrix %d cases passed, bad-input matrix %d cases passed, accepted edges %d passed, AWS events %d passed, start-up configuration %d passed, samples in events/ %d passed, reports to Port %d passed, status function %d passed, log audit %d lines clean, %d EMF records valid\n",
		faultCases.Load(), badCases.Load(), acceptedCases.Load(), awsCases.Load(), configCases.Load(), sampleCases.Load(), reportCases.Load(), statusCases.Load(), lines-len(dirty), records)
	fmt.Printf("e2e: source allow-list %d cases passed, ledger across containers %d cases passed, pipelines by id %d cases passed, queued delivery %d cases passed\n", sourceCases.Load(), ledgerCases.Load(), pipelineCases.Load(), queueCases.Load())
	return code
}

// audit reads every line any function wrote during the suite and returns those
// that hold the secret, the payload marker or Azure's error text, and those that
// break the Embedded Metric Format (auditEMF), with the EMF records counted.
func audit() (total int, dirty []string, records int, invalid []string) {
	auditMu.Lock()
	defer auditMu.Unlock()
	for _, src := range auditSources {
		for _, line := range src() {
			total++
			if leaks(line) {
				dirty = append(dirty, line)
			}
			n, problems := auditEMF(line)
			records += n
			if len(problems) > 0 {
				invalid = append(invalid, strings.Join(problems, "; ")+": "+line)
			}
		}
	}
	return total, dirty, records, invalid
}

func leaks(line string) bool {
	if strings.Contains(line, portSecret) || strings.Contains(line, otherSecret) || strings.Contains(line, demoSecret) ||
		strings.Contains(line, marker) || strings.Contains(line, hookPassword) ||
		strings.Contains(line, samplePassword) ||
		strings.Contains(line, "eyJ") { // a JWT: STS's identity token or an Entra token
		return true
	}
	for _, s := range append(rotationSecrets, azureCredentials...) {
		if strings.Contains(line, s) {
			return true
		}
	}
	for _, s := range azureEchoes {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

func addAuditSource(src func() []string) {
	auditMu.Lock()
	defer auditMu.Unlock()
	auditSources = append(auditSources, src)
}

// requireRIE skips (or, with E2E_REQUIRE=1, TestMain has already failed) when the
// emulator is not installed.
func requireRIE(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}
