// Command bench measures the relay against the floor its mandated packages set and
// against the simplest relay anyone could write: it builds the relay and three
// baselines (hello, a bare aws-lambda-go function; sdkhello, which also loads the AWS
// config and creates the Secrets Manager client; naive, which reads the secret and
// posts to Azure the obvious way), runs all four under the Lambda Runtime Interface
// Emulator on 127.0.0.1 with a local Secrets Manager and Azure DevOps behind TLS (a
// CA made for the run), interleaved so that machine noise hits all alike, and prints
// a table with the targets beside the figures: once on bare
// loopback, and once with the network modelled (a delaying proxy in front of each
// upstream, see delay.go), since a cold start against AWS and Azure waits on round
// trips that loopback does not have.
//
//	AWS_LAMBDA_RIE=.tools/bin/aws-lambda-rie go run ./cmd/bench [-cold 20] [-warm 2000] [-size 16384]
//	    [-rtt-sm 2ms] [-rtt-azure 5ms] [-azure-origin 20ms] [-warm-modeled 500]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/port-azure-relay/relay/shared/azdo/azdotest"
	"github.com/port-azure-relay/relay/shared/handler/lambdatest"
	"github.com/port-azure-relay/relay/shared/portapi/porttest"
	"github.com/port-azure-relay/relay/shared/secret/smtest"
	"github.com/port-azure-relay/relay/shared/signature"
)

const (
	secret  = "bench-port-client-secret" // plain: no clientId, so nothing is reported to Port
	org     = "bench-org"
	webhook = "port_trigger"
)

// Targets: a cold start no slower than the simplest relay anyone could write, a warm
// invocation about as fast, under 100 µs of own work at 16 KiB without the ledger, a
// small binary and little memory.
const (
	maxColdRatio  = 1.00 // relay / naive, cold start
	maxWarmRatio  = 1.05 // relay / naive, warm p50
	maxOwnP50     = 100 * time.Microsecond
	maxBinary     = 10 << 20
	maxRSS        = 30 << 20
	deployedFlags = `-tags lambda.norpc -trimpath -ldflags "-s -w"`
)

// function is one of the four under test.
type function struct {
	name, pkg string
	env       []string
	host, arm string // bootstraps: for this machine, and as deployed

	cold   []time.Duration // RIE start to first response
	first  []time.Duration // first invocation alone, once the RIE listens
	warm   []time.Duration
	own    []time.Duration // warm less the Azure double's time
	smCold int             // GetSecretValue calls during the cold starts
	rss    int64           // bytes, VmHWM of the bootstrap after the warm run
	size   int64           // bytes, arm64
}

func main() {
	cold := flag.Int("cold", 20, "cold starts per function (the median is reported)")
	warm := flag.Int("warm", 2000, "warm invocations per function")
	size := flag.Int("size", 16<<10, "body size of the relay's Port-signed request, in bytes")
	handlerBench := flag.Bool("handler-bench", true, "run BenchmarkHandler for the relay's own work in-process")
	// The modelled network (docs/performance.md says why these defaults): a Lambda
	// calling Secrets Manager in its region, and dev.azure.com, whose TLS ends at a
	// Microsoft edge near the caller, with the organisation's region behind it.
	rttSM := flag.Duration("rtt-sm", 2*time.Millisecond, "modelled round trip to Secrets Manager")
	rttAzure := flag.Duration("rtt-azure", 5*time.Millisecond, "modelled round trip to where Azure's TLS ends")
	origin := flag.Duration("azure-origin", 20*time.Millisecond, "modelled time from Azure's edge to the organisation's region and back, added to each delivery")
	warmModeled := flag.Int("warm-modeled", 500, "warm invocations per function on the modelled network (0: loopback only)")
	flag.Parse()
	log.SetFlags(0)
	nets := []network{{name: "loopback (no added latency)", warmN: *warm}}
	if *warmModeled > 0 {
		nets = append(nets, network{
			name:  fmt.Sprintf("modelled network (Secrets Manager rtt %v; Azure rtt %v to its edge, +%v to the organisation per delivery)", *rttSM, *rttAzure, *origin),
			rttSM: *rttSM, rttAzure: *rttAzure, origin: *origin, warmN: *warmModeled,
		})
	}
	if err := run(*cold, *size, *handlerBench, nets); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

// network is how the functions reach the two upstreams in one pass of the bench.
type network struct {
	name            string
	rttSM, rttAzure time.Duration // through a delayProxy when not 0
	origin          time.Duration // added by the Azure double to each delivery
	warmN           int
}

func run(coldN, size int, handlerBench bool, nets []network) error {
	ctx := context.Background()
	rie, err := lambdatest.FindRIE()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "relay-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	serverTLS, tlsEnv, err := newTLS(dir)
	if err != nil {
		return err
	}
	sm := smtest.NewTLS(serverTLS)
	defer sm.Close()
	arn := sm.Put("port/relay", secret)
	az := azdotest.New(org, azdotest.Webhook{Name: webhook, Secret: secret, Header: signature.AzureDefaultHeader})
	defer az.Close()

	fns := []*function{
		{name: "hello", pkg: "./cmd/bench/hello"},
		{name: "sdkhello", pkg: "./cmd/bench/sdkhello"},
		{name: "naive", pkg: "./cmd/bench/naive"},
		{name: "relay", pkg: "./functions/relay"},
	}
	fmt.Fprintf(os.Stderr, "building %d bootstraps for %s/%s and for linux/arm64 …\n", len(fns), runtime.GOOS, runtime.GOARCH)
	for _, f := range fns {
		f.host = filepath.Join(dir, f.name, "bootstrap")
		if err := lambdatest.Build(ctx, f.pkg, f.host); err != nil {
			return err
		}
		f.arm = filepath.Join(dir, f.name, "arm64", "bootstrap")
		if f.size, err = buildDeployed(ctx, f.pkg, f.arm); err != nil {
			return err
		}
	}

	var inProcess, withLedger benchResult
	if handlerBench {
		fmt.Fprintf(os.Stderr, "in-process: BenchmarkHandler/%s and /16KiB-ledger …\n", sizeName(size))
		if inProcess, err = runHandlerBench(ctx, sizeName(size)); err != nil {
			return err
		}
		if withLedger, err = runHandlerBench(ctx, "16KiB-ledger"); err != nil {
			return err
		}
	}

	b := &bench{rie: rie, size: size, coldN: coldN, sm: sm, az: az, serverTLS: serverTLS, tlsEnv: tlsEnv, arn: arn}
	var ratios []string
	for i, n := range nets {
		results, in, err := b.measure(ctx, n, fns)
		if err != nil {
			return err
		}
		if i == 0 {
			in.inProcess, in.withLedger = inProcess, withLedger
		}
		ratios = append(ratios, report(os.Stdout, results, in))
	}
	deliveries := 0
	for _, n := range nets {
		deliveries += 2 * (coldN + 1 + n.warmN) // naive and relay
	}
	if d := az.Count(); d != deliveries {
		return fmt.Errorf("the Azure double received %d deliveries, want %d", d, deliveries)
	}
	for _, d := range az.Deliveries() {
		if !d.Verified || len(d.Body) != size {
			return errors.New("the Azure double received a delivery it could not verify, or not the body sent")
		}
	}
	fmt.Println()
	for _, r := range ratios {
		fmt.Println(r)
	}
	return nil
}

// bench holds what every pass shares: the emulator, the doubles, the trust.
type bench struct {
	rie         string
	size, coldN int
	sm          *smtest.Server
	az          *azdotest.Server
	serverTLS   *tls.Config
	tlsEnv      []string
	arn         string
	invocations int
}

// event is a new Port-signed invocation. Port signs each invocation once and the
// relay refuses a repeat: each event has its own run id, and is signed now (the
// relay's tolerance is five minutes).
func (b *bench) event() []byte {
	b.invocations++
	body := bytes.Replace(porttest.Payload(b.size), []byte(porttest.RunID), fmt.Appendf(nil, "r_%016x", b.invocations), 1)
	ts := time.Now().Unix()
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(signature.PortTimestampHeader, strconv.FormatInt(ts, 10))
	h.Set(signature.PortSignatureHeader, signature.SignPort([]byte(secret), ts, body))
	return lambdatest.HTTPAPIEvent(http.MethodPost, "/", h, body)
}

// measure runs the cold starts and the warm invocations of every function with the
// upstreams reached through network n, and returns fresh copies of fns with the
// figures.
func (b *bench) measure(ctx context.Context, n network, static []*function) ([]*function, reportInput, error) {
	fmt.Fprintf(os.Stderr, "%s:\n", n.name)
	// Azure's share of each round trip, timed on the server side: from the handler's
	// start (headers read) to its answer, the modelled origin leg included. Whatever
	// else the round trip costs stays in the relay's figure.
	var h http.Handler = b.az.Handler()
	if n.origin > 0 {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(n.origin)
			inner.ServeHTTP(w, r)
		})
	}
	azure := &timed{h: h}
	front := httptest.NewUnstartedServer(azure)
	front.TLS = b.serverTLS
	front.StartTLS()
	defer front.Close()
	smURL, azURL := b.sm.URL, front.URL
	for _, up := range []struct {
		url *string
		rtt time.Duration
	}{{&smURL, n.rttSM}, {&azURL, n.rttAzure}} {
		if up.rtt <= 0 {
			continue
		}
		p, err := newDelayProxy(strings.TrimPrefix(*up.url, "https://"), up.rtt)
		if err != nil {
			return nil, reportInput{}, err
		}
		defer p.Close()
		*up.url = "https://" + p.Addr()
	}

	base := slices.Concat(b.tlsEnv, b.sm.Env())
	for i, kv := range base {
		if strings.HasPrefix(kv, "AWS_ENDPOINT_URL_SECRETS_MANAGER=") {
			base[i] = "AWS_ENDPOINT_URL_SECRETS_MANAGER=" + smURL
		}
	}
	relayEnv := []string{
		"PORT_SECRET_ID=" + b.arn,
		"AZURE_DEVOPS_ORG=" + org,
		"AZURE_DEVOPS_WEBHOOK=" + webhook,
		"AZURE_DEVOPS_URL=" + azURL,
	}
	fns := make([]*function, len(static))
	for i, f := range static {
		fns[i] = &function{name: f.name, pkg: f.pkg, host: f.host, arm: f.arm, size: f.size, env: base}
	}
	fns[2].env = slices.Concat(base, relayEnv) // naive
	fns[3].env = slices.Concat(base, relayEnv, []string{
		"PORT_API_URL=https://127.0.0.1:9", // never called: the secret has no clientId
	})
	relay := fns[3]
	sm := b.sm

	// Cold starts, interleaved: a new emulator each time, the same event for all.
	fmt.Fprintf(os.Stderr, "  cold starts: %d × %d …\n", b.coldN, len(fns))
	for range b.coldN {
		ev := b.event()
		for _, f := range fns {
			smBefore := sm.Calls()
			t0 := time.Now()
			fn, err := lambdatest.Start(ctx, lambdatest.Options{RIE: b.rie, Bootstrap: f.host, Env: f.env, Timeout: 10 * time.Second})
			if err != nil {
				return nil, reportInput{}, err
			}
			t1 := time.Now()
			out, err := fn.Invoke(ctx, ev)
			done := time.Now()
			fn.Close()
			if err := answered200(f.name, out, err); err != nil {
				return nil, reportInput{}, err
			}
			f.cold = append(f.cold, done.Sub(t0))
			f.first = append(f.first, done.Sub(t1))
			f.smCold += sm.Calls() - smBefore
		}
	}

	// Warm invocations, interleaved, each function in one container.
	fmt.Fprintf(os.Stderr, "  warm invocations: %d × %d …\n", n.warmN, len(fns))
	// The relay may read the secret as soon as its container starts: count from here.
	smBefore := sm.Calls()
	running := make([]*lambdatest.Function, len(fns))
	for i, f := range fns {
		fn, err := lambdatest.Start(ctx, lambdatest.Options{RIE: b.rie, Bootstrap: f.host, Env: f.env, Timeout: 10 * time.Second})
		if err != nil {
			return nil, reportInput{}, err
		}
		defer fn.Close()
		running[i] = fn
	}
	ev := b.event()
	for i, f := range fns { // the cold invocation, not counted as warm
		out, err := running[i].Invoke(ctx, ev)
		if err := answered200(f.name, out, err); err != nil {
			return nil, reportInput{}, err
		}
	}
	for range n.warmN {
		ev := b.event() // built before the clock starts
		for i, f := range fns {
			azure.spent.Store(0)
			t0 := time.Now()
			out, err := running[i].Invoke(ctx, ev)
			took := time.Since(t0)
			if err := answered200(f.name, out, err); err != nil {
				return nil, reportInput{}, err
			}
			f.warm = append(f.warm, took)
			f.own = append(f.own, took-time.Duration(azure.spent.Load()))
		}
	}
	// Only naive and relay call Secrets Manager, and naive exactly once: its first
	// invocation answered 200, and it never reads again.
	warmSMCalls := sm.Calls() - smBefore - 1
	for i, f := range fns {
		var err error
		if f.rss, err = peakRSS(running[i]); err != nil {
			return nil, reportInput{}, err
		}
	}
	return fns, reportInput{
		title: n.name,
		coldN: b.coldN, warmN: n.warmN, size: b.size,
		coldSMCalls: relay.smCold, warmSMCalls: warmSMCalls,
		azureP50: percentile(azure.all(), 50),
	}, nil
}

// timed wraps the Azure double's handler and adds up the time it spends.
type timed struct {
	h     http.Handler
	spent atomic.Int64

	mu    sync.Mutex
	times []time.Duration
}

func (t *timed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t.h.ServeHTTP(w, r)
	d := time.Since(start)
	t.spent.Add(int64(d))
	t.mu.Lock()
	t.times = append(t.times, d)
	t.mu.Unlock()
}

func (t *timed) all() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.times)
}

func answered200(name string, out []byte, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var resp struct {
		StatusCode int `json:"statusCode"`
	}
	if json.Unmarshal(out, &resp) != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %.300s, want a 200", name, out)
	}
	return nil
}

// buildDeployed builds pkg as make build does for Lambda and returns its size.
func buildDeployed(ctx context.Context, pkg, out string) (int64, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build %s for linux/arm64: %w\n%s", pkg, err, msg)
	}
	fi, err := os.Stat(out)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// peakRSS reads VmHWM, the bootstrap's peak resident set, from /proc.
func peakRSS(fn *lambdatest.Function) (int64, error) {
	pid, err := fn.BootstrapPID()
	if err != nil {
		return 0, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

type benchResult struct {
	ran            bool
	nsPerOp, ownNs float64
	ownP50Ns       float64
	azureNs        float64
	ledgerNs       float64 // the ledger rows only
	allocs         float64 // allocs/op
	line           string
}

var metric = regexp.MustCompile(`([0-9.]+) ([a-zA-Z0-9/-]+)`)

// runHandlerBench runs the in-process benchmark of the whole handler, whose own-p50
// (total less the Azure round trip, measured at the HTTP transport) is what the
// target on the relay's own work compares.
func runHandlerBench(ctx context.Context, name string) (benchResult, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkHandler$/^"+name+"$",
		"-benchtime", "3000x", "-benchmem", "./functions/relay")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return benchResult{}, fmt.Errorf("go test -bench BenchmarkHandler: %w\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "BenchmarkHandler/") {
			continue
		}
		r := benchResult{ran: true, line: strings.TrimSpace(line)}
		for _, m := range metric.FindAllStringSubmatch(line, -1) {
			v, _ := strconv.ParseFloat(m[1], 64)
			switch m[2] {
			case "ns/op":
				r.nsPerOp = v
			case "own-ns/op":
				r.ownNs = v
			case "own-p50-ns":
				r.ownP50Ns = v
			case "azure-ns/op":
				r.azureNs = v
			case "ledger-ns/op":
				r.ledgerNs = v
			case "allocs/op":
				r.allocs = v
			}
		}
		return r, nil
	}
	return benchResult{}, fmt.Errorf("no BenchmarkHandler line in:\n%s", out)
}

func sizeName(size int) string {
	switch {
	case size >= 1<<20 && size%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", size>>20)
	case size%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", size>>10)
	}
	return strconv.Itoa(size)
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p+99)/100 - 1 // nearest rank
	return s[max(i, 0)]
}

type reportInput struct {
	title                    string
	coldN, warmN, size       int
	coldSMCalls, warmSMCalls int
	azureP50                 time.Duration
	inProcess                benchResult
	withLedger               benchResult // BenchmarkHandler/16KiB-ledger: the delivery ledger on a local DynamoDB
}

// report prints one pass's table and returns its ratios line.
func report(w io.Writer, fns []*function, in reportInput) string {
	hello, sdk, naive, relay := fns[0], fns[1], fns[2], fns[3]
	mark := func(ok bool) string {
		if ok {
			return "✓"
		}
		return "✗"
	}
	row := func(figure string, h, s, n, r, target, verdict string) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", figure, h, s, n, r, target, verdict)
	}
	med := func(ds []time.Duration) string { return ms(percentile(ds, 50)) }
	p50 := func(f *function) time.Duration { return percentile(f.warm, 50) }

	coldN, coldR := percentile(naive.cold, 50), percentile(relay.cold, 50)
	coldRatio := float64(coldR) / float64(coldN)
	firstRatio := float64(percentile(relay.first, 50)) / float64(percentile(naive.first, 50))
	warmRatio := float64(p50(relay)) / float64(p50(naive))
	invocations := in.warmN + 1 // the warm container's first invocation read the secret
	perK := float64(in.warmSMCalls) * 1000 / float64(invocations)
	smOK := in.coldSMCalls == in.coldN && in.warmSMCalls == 1

	fmt.Fprintf(w, "\n%s: relay vs baselines under aws-lambda-rie on 127.0.0.1, Secrets Manager and Azure behind TLS; %s Port-signed HTTP API body; %d cold starts and %d warm invocations each, interleaved\n\n",
		in.title, sizeName(in.size), in.coldN, in.warmN)
	row("figure", "hello", "sdkhello", "naive", "relay", "target", "")
	row("---", "---:", "---:", "---:", "---:", "---", ":-:")
	row(fmt.Sprintf("cold start, RIE start → first response, median of %d", in.coldN),
		med(hello.cold), med(sdk.cold), ms(coldN), ms(coldR),
		fmt.Sprintf("relay ≤ %.2f × naive", maxColdRatio), fmt.Sprintf("%s %.2f", mark(coldRatio <= maxColdRatio), coldRatio))
	row("first invocation alone (init + handling), median", med(hello.first), med(sdk.first), med(naive.first), med(relay.first),
		"", fmt.Sprintf("%.2f", firstRatio))
	row(fmt.Sprintf("warm invocation p50, %d", in.warmN), us(p50(hello)), us(p50(sdk)), us(p50(naive)), us(p50(relay)),
		fmt.Sprintf("relay ≤ %.2f × naive", maxWarmRatio), fmt.Sprintf("%s %.2f", mark(warmRatio <= maxWarmRatio), warmRatio))
	row(fmt.Sprintf("warm invocation p99, %d", in.warmN), us(percentile(hello.warm, 99)), us(percentile(sdk.warm, 99)),
		us(percentile(naive.warm, 99)), us(percentile(relay.warm, 99)), "", "")
	row("less the Azure double's time, p50", "", "", us(percentile(naive.own, 50)), us(percentile(relay.own, 50)), "", "")
	row("  the Azure double's handling (subtracted above), p50", "", "", "", us(in.azureP50), "", "")
	if in.inProcess.ran {
		own := time.Duration(in.inProcess.ownP50Ns)
		row(fmt.Sprintf("own work in-process, p50 (BenchmarkHandler/%s own-p50-ns)", sizeName(in.size)), "", "", "", us(own),
			fmt.Sprintf("≤ %s at 16KiB", us(maxOwnP50)), mark(own <= maxOwnP50))
		row("  mean: ns/op − Azure round trip = own-ns/op", "", "", "", fmt.Sprintf("%s − %s = %s",
			us(time.Duration(in.inProcess.nsPerOp)), us(time.Duration(in.inProcess.azureNs)), us(time.Duration(in.inProcess.ownNs))), "", "")
	}
	if l := in.withLedger; l.ran {
		// Not held to the 100 µs: the difference is the AWS SDK's client side of the two
		// DynamoDB calls (a claim and an outcome), which the ledger's guarantee costs.
		own := time.Duration(l.ownP50Ns)
		extra := ""
		if in.inProcess.ran {
			extra = fmt.Sprintf("+%s and %.0f allocations against %.0f without it: the SDK's two DynamoDB calls",
				us(own-time.Duration(in.inProcess.ownP50Ns)), l.allocs, in.inProcess.allocs)
		}
		row("own work in-process with the ledger, p50 (BenchmarkHandler/16KiB-ledger own-p50-ns)", "", "", "", us(own),
			"the ledger's cost, said", extra)
		row("  the ledger's round trips (claim + outcome), mean, and their share of the invocation", "", "", "",
			fmt.Sprintf("%s, %.0f%% of %s", us(time.Duration(l.ledgerNs)), 100*l.ledgerNs/l.nsPerOp, us(time.Duration(l.nsPerOp))), "", "")
	}
	row("Secrets Manager calls per 1,000 warm invocations", "—", "—", "", fmt.Sprintf("%.2f (%d in %d)", perK, in.warmSMCalls, invocations),
		"1 per container per cache period", mark(smOK))
	row("Secrets Manager calls per cold container", "—", "—",
		fmt.Sprintf("%.2f", float64(naive.smCold)/float64(in.coldN)),
		fmt.Sprintf("%.2f (%d in %d)", float64(in.coldSMCalls)/float64(in.coldN), in.coldSMCalls, in.coldN), "", "")
	row("binary, linux/arm64 as deployed", mb(hello.size), mb(sdk.size), mb(naive.size), mb(relay.size), "≤ 10 MB (MiB)", mark(relay.size <= maxBinary))
	row(fmt.Sprintf("peak RSS (VmHWM) after %d invocations", in.warmN+1), mb(hello.rss), mb(sdk.rss), mb(naive.rss), mb(relay.rss),
		"≤ 30 MB (MiB)", mark(relay.rss <= maxRSS))
	fmt.Fprintf(w, "\narm64 build flags: %s\n", deployedFlags)
	if in.inProcess.ran {
		fmt.Fprintf(w, "in-process: %s\n", in.inProcess.line)
	}
	if in.withLedger.ran {
		fmt.Fprintf(w, "in-process: %s\n", in.withLedger.line)
	}
	holds := coldRatio <= maxColdRatio && warmRatio <= maxWarmRatio
	line := fmt.Sprintf("ratios, %s: cold relay/naive %.2f (target ≤ %.2f), warm p50 relay/naive %.2f (target ≤ %.2f): %s",
		in.title, coldRatio, maxColdRatio, warmRatio, maxWarmRatio, map[bool]string{true: "they hold", false: "NOT MET"}[holds])
	fmt.Fprintf(w, "\n%s\n", line)
	return line
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }
func mb(n int64) string         { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
