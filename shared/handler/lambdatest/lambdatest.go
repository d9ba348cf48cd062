// Package lambdatest is the local Lambda runtime of the e2e suite, `make demo` and
// the benchmarks, never part of a function: it runs a function's bootstrap under the
// AWS Lambda Runtime Interface Emulator (the real runtime API, its deadlines, its
// function errors) and fronts it as API Gateway does: HTTP API and Function URL
// events in the 2.0 shape, REST (1.0) events through a gateway that refuses a
// malformed proxy response with a 502, as API Gateway's REST proxy does.
//
// It stands beside handler, the package that adapts the functions to Lambda. It does
// not import testing, so demos and benchmarks use it too. Everything it starts
// listens on 127.0.0.1 only.
package lambdatest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RIEModule is the pinned Runtime Interface Emulator; InstallHint says how to get it.
const (
	RIEModule   = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"
	InstallHint = "install the AWS Lambda Runtime Interface Emulator with: go install " + RIEModule
)

// InvokePath is where the emulator takes invocations.
const InvokePath = "/2015-03-31/functions/function/invocations"

// ErrTimedOut is returned by Invoke when the emulator stopped the function at its
// timeout ("Task timed out after N.00 seconds").
var ErrTimedOut = errors.New("lambdatest: task timed out")

// FunctionError is a function error as Lambda reports it: the invocation itself
// succeeded, and the body is {"errorType":…,"errorMessage":…}.
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("function error %s: %s", e.Type, e.Message)
}

// Build compiles pkg (an import path or a ./relative path, resolved from the working
// directory) into the static bootstrap the provided.al2023 runtime runs, for the host
// OS and architecture, so that the emulator runs it natively.
func Build(ctx context.Context, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("lambdatest: go build %s: %w\n%s", pkg, err, stderr.Bytes())
	}
	return nil
}

// FindRIE returns the path of aws-lambda-rie: $AWS_LAMBDA_RIE, then PATH, then
// $(go env GOPATH)/bin.
func FindRIE() (string, error) {
	if p := os.Getenv("AWS_LAMBDA_RIE"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("lambdatest: AWS_LAMBDA_RIE=%s is not an executable file; %s", p, InstallHint)
	}
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p, nil
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			if p := filepath.Join(dir, "bin", "aws-lambda-rie"); isExecutable(p) {
				return p, nil
			}
		}
	}
	return "", errors.New("lambdatest: aws-lambda-rie not found in $AWS_LAMBDA_RIE, PATH or $(go env GOPATH)/bin; " + InstallHint)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Options say what to run and how.
type Options struct {
	RIE       string        // the emulator; FindRIE's answer when empty
	Bootstrap string        // the function's binary
	Env       []string      // KEY=VALUE: the function's whole configuration
	Timeout   time.Duration // the function timeout, whole seconds; 30s when zero
	Name      string        // AWS_LAMBDA_FUNCTION_NAME; the bootstrap's file name when empty
	Stdout    io.Writer     // also receives the output, line by line, from another goroutine
}

// Function is one emulator running one bootstrap. Invoke is safe for concurrent
// use: invocations are serialised, as the emulator takes one at a time.
type Function struct {
	// URL is the emulator's base URL, http://127.0.0.1:port.
	URL string

	cmd      *exec.Cmd
	home     string
	client   *http.Client
	invokes  chan struct{} // a one-slot semaphore
	exited   chan struct{} // closed when the emulator exits
	readDone chan struct{}

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced whenever a line arrives
}

// Start runs the emulator with opts.Bootstrap and returns once it accepts
// connections. The bootstrap starts (Lambda's init) on the first invocation.
//
// The process environment is exactly opts.Env plus PATH, HOME (an empty temporary
// directory, so that no ~/.aws is read), AWS_LAMBDA_FUNCTION_TIMEOUT and
// AWS_LAMBDA_FUNCTION_NAME: the emulator passes its whole environment on to the
// function, and the caller's environment must not leak into it.
func Start(ctx context.Context, opts Options) (*Function, error) {
	if opts.RIE == "" {
		p, err := FindRIE()
		if err != nil {
			return nil, err
		}
		opts.RIE = p
	}
	bootstrap, err := filepath.Abs(opts.Bootstrap)
	if err != nil || !isExecutable(bootstrap) {
		return nil, fmt.Errorf("lambdatest: bootstrap %q is not an executable file", opts.Bootstrap)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	secs := int((timeout + time.Second - 1) / time.Second)
	name := opts.Name
	if name == "" {
		name = filepath.Base(bootstrap)
	}
	// Both addresses on loopback and per instance: the runtime API's default,
	// 127.0.0.1:9001, would collide between emulators running side by side.
	var lastErr error
	for range 3 {
		addrs, err := freeAddrs(2)
		if err != nil {
			return nil, err
		}
		f, err := start(ctx, opts, bootstrap, name, secs, addrs[0], addrs[1])
		if err == nil {
			return f, nil
		}
		lastErr = err // most likely a port taken between probing and binding: try others
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, opts Options, bootstrap, name string, secs int, emuAddr, apiAddr string) (*Function, error) {
	home, err := os.MkdirTemp("", "lambdatest-home-")
	if err != nil {
		return nil, err
	}
	env := append([]string(nil), opts.Env...)
	env = append(env,
		"PATH="+os.Getenv("PATH"),
		"HOME="+home,
		"AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(secs),
		"AWS_LAMBDA_FUNCTION_NAME="+name,
	)
	r, w, err := os.Pipe()
	if err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	cmd := exec.Command(opts.RIE,
		"--runtime-interface-emulator-address", emuAddr,
		"--runtime-api-address", apiAddr,
		bootstrap)
	cmd.Env = env
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Stdout, cmd.Stderr = w, w // one pipe: lines stay in the order they were written
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		os.RemoveAll(home)
		return nil, fmt.Errorf("lambdatest: start %s: %w", opts.RIE, err)
	}
	w.Close() // the emulator and the bootstrap hold the write end now

	f := &Function{
		URL:      "http://" + emuAddr,
		cmd:      cmd,
		home:     home,
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}},
		invokes:  make(chan struct{}, 1),
		exited:   make(chan struct{}),
		readDone: make(chan struct{}),
		changed:  make(chan struct{}),
	}
	go f.read(r, opts.Stdout)
	go func() {
		_ = cmd.Wait()
		close(f.exited)
	}()

	// Wait until the emulator accepts connections, or gives up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", emuAddr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return f, nil
		}
		select {
		case <-f.exited:
			f.Close()
			return nil, fmt.Errorf("lambdatest: the emulator exited at start:\n%s", strings.Join(f.Lines(), "\n"))
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lambdatest: the emulator did not listen on %s within 10s", emuAddr)
		}
	}
}

// freeAddrs returns n distinct loopback addresses that were free a moment ago.
func freeAddrs(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

func (f *Function) read(r *os.File, tee io.Writer) {
	defer close(f.readDone)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		line := sc.Text()
		if tee != nil {
			fmt.Fprintln(tee, line)
		}
		f.mu.Lock()
		f.lines = append(f.lines, line)
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
	}
}

// Lines returns the output so far, emulator and function together, line by line.
func (f *Function) Lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

// WaitLine waits until an output line contains substr, and returns the index of the
// first such line at or after from.
func (f *Function) WaitLine(ctx context.Context, from int, substr string) (int, error) {
	for {
		f.mu.Lock()
		for i := max(from, 0); i < len(f.lines); i++ {
			if strings.Contains(f.lines[i], substr) {
				f.mu.Unlock()
				return i, nil
			}
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-f.readDone:
			return -1, fmt.Errorf("lambdatest: output ended without a line containing %q", substr)
		case <-ctx.Done():
			return -1, fmt.Errorf("lambdatest: no line containing %q: %w", substr, ctx.Err())
		}
	}
}

type requestIDKey struct{}

// WithRequestID makes Invoke use id as the Lambda request id, so that the
// invocation's log lines can be told apart.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// Invoker is anything that answers a raw Lambda event; *Function is one.
type Invoker interface {
	Invoke(ctx context.Context, event []byte) ([]byte, error)
}

// Invoke sends one event and returns the function's result. A function error comes
// back as the body and a *FunctionError (with Type "Runtime.ExitError" when the
// bootstrap failed to start or exited), a timeout as the body and ErrTimedOut.
func (f *Function) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	select {
	case f.invokes <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-f.invokes }()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL+InvokePath, bytes.NewReader(event))
	if err != nil {
		return nil, err
	}
	if id, ok := ctx.Value(requestIDKey{}).(string); ok && id != "" {
		req.Header.Set("X-Amzn-RequestId", id)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("lambdatest: invoke: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("lambdatest: invoke: %w", err)
	}
	if resp.StatusCode == http.StatusBadGateway {
		// The emulator's answer when the runtime failed at init or exited during the
		// invocation: Lambda reports it as a Runtime.ExitError function error.
		return body, &FunctionError{Type: "Runtime.ExitError", Message: "Runtime exited with error: the bootstrap failed to start or exited; see its output"}
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("lambdatest: the emulator answered HTTP %d: %.200s", resp.StatusCode, body)
	}
	if bytes.HasPrefix(body, []byte("Task timed out after ")) {
		return body, fmt.Errorf("%w: %s", ErrTimedOut, body)
	}
	if fe := functionError(body); fe != nil {
		return body, fe
	}
	return body, nil
}

// functionError recognises the body Lambda gives a function error: an object whose
// keys are errorType, errorMessage and possibly stackTrace.
func functionError(body []byte) *FunctionError {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	var fe FunctionError
	if json.Unmarshal(m["errorType"], &fe.Type) != nil || json.Unmarshal(m["errorMessage"], &fe.Message) != nil {
		return nil
	}
	for k := range m {
		switch k {
		case "errorType", "errorMessage", "stackTrace", "requestId", "cause":
		default:
			return nil
		}
	}
	return &fe
}

// BootstrapPID returns the pid of the running bootstrap, the emulator's child; the
// emulator starts it at the first invocation.
func (f *Function) BootstrapPID() (int, error) {
	pids, err := children(f.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	if len(pids) == 0 {
		return 0, errors.New("lambdatest: no bootstrap process: the emulator starts it at the first invocation")
	}
	return pids[0], nil
}

// Signal sends sig to the bootstrap process.
func (f *Function) Signal(sig os.Signal) error {
	pid, err := f.BootstrapPID()
	if err != nil {
		return err
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}

// children lists the child processes of pid, from /proc.
func children(pid int) ([]int, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, fmt.Errorf("lambdatest: list the emulator's children: %w", err)
	}
	var pids []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(field); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids, nil
}

// Close kills the bootstrap and the emulator and waits for them. The emulator puts
// the bootstrap in a process group of its own, so each is killed by its pid.
func (f *Function) Close() error {
	select {
	case <-f.exited:
	default:
		if pids, err := children(f.cmd.Process.Pid); err == nil {
			for _, pid := range pids {
				_ = syscall.Kill(-pid, syscall.SIGKILL) // its group: the bootstrap leads it
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.exited
	}
	select {
	case <-f.readDone:
	case <-time.After(5 * time.Second): // a grandchild holding the pipe: give up on the rest
	}
	f.client.CloseIdleConnections()
	return os.RemoveAll(f.home)
}
