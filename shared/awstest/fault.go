package awstest

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// A Fault is a failure an AWS stand-in injects. Down and Slow mean the same to every
// stand-in; each names its service's own failures (Throttle, AccessDenied, …) as a
// Kind it answers in that service's error shape. The zero value is None.
type Fault struct {
	Kind  string        // "down", "slow", or a stand-in's own
	Delay time.Duration // for "slow"
	times int           // 0: until the next Set
	op    string        // "": every operation
}

// The faults every AWS stand-in knows.
var (
	// None answers normally.
	None = Fault{}
	// Down closes every connection without answering, like an unreachable endpoint:
	// the request reached no AWS service.
	Down = Fault{Kind: "down"}
)

// Slow delays each answer by d, or until the client gives up.
func Slow(d time.Duration) Fault { return Fault{Kind: "slow", Delay: d} }

// Times limits f to the next n requests it applies to, after which the stand-in
// answers normally again: Throttle.Times(1) shows whether a caller survives one
// throttled attempt.
func (f Fault) Times(n int) Fault {
	f.times = n
	return f
}

// For limits f to one operation (e.g. "UpdateItem"), so that a test can fail one step
// of a sequence.
func (f Fault) For(op string) Fault {
	f.op = op
	return f
}

// Wait sleeps through a Slow fault's delay, or until the client gives up (ctx) or the
// stand-in closes (done); other faults do not wait.
func (f Fault) Wait(ctx context.Context, done <-chan struct{}) {
	if f.Kind != "slow" {
		return
	}
	t := time.NewTimer(f.Delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-done:
	}
}

// Faults is the fault a stand-in injects now. The zero value injects none; it is safe
// for concurrent use.
type Faults struct {
	mu sync.Mutex
	f  Fault
}

// Set makes the stand-in fail from now on as f says; Set(None) heals it.
func (fs *Faults) Set(f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.f = f
}

// Take returns the fault for one request for op ("" for a stand-in of one
// operation), using up one of its times.
func (fs *Faults) Take(op string) Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.f
	if f.op != "" && f.op != op {
		return None
	}
	if fs.f.times > 0 {
		if fs.f.times--; fs.f.times == 0 {
			fs.f = None
		}
	}
	return f
}

// Drop closes the connection without a word, so the client sees a reset or EOF, not
// an HTTP answer. It reports false when the connection cannot be taken over.
func Drop(w http.ResponseWriter) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	if conn, _, err := hj.Hijack(); err == nil {
		conn.Close()
	}
	return true
}
