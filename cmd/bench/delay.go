package main

import (
	"net"
	"sync"
	"time"
)

// delayProxy stands for the network between a Lambda and one upstream: a TCP proxy
// on 127.0.0.1 that forwards every chunk to the target half a round trip after it
// arrived, in each direction. A new connection's bytes towards the target also wait
// until one round trip after the accept, as if the client's connect had taken that
// round trip (on loopback the kernel completes it at once). So a new TLS 1.3
// connection and its first request cost about three round trips (TCP, TLS, HTTP)
// and a reused one one, as over a real network; bandwidth is not limited.
type delayProxy struct {
	ln     net.Listener
	target string
	oneWay time.Duration

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// newDelayProxy listens on 127.0.0.1 and forwards to target (host:port) with a
// round trip time of rtt.
func newDelayProxy(target string, rtt time.Duration) (*delayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &delayProxy{ln: ln, target: target, oneWay: rtt / 2, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *delayProxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting and closes every connection.
func (p *delayProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *delayProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *delayProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		accepted := time.Now()
		upstream, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.track(client, true)
		p.track(upstream, true)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			var both sync.WaitGroup
			both.Add(2)
			go func() { defer both.Done(); p.pipe(upstream, client, accepted.Add(2*p.oneWay)) }()
			go func() { defer both.Done(); p.pipe(client, upstream, accepted) }()
			both.Wait()
			client.Close()
			upstream.Close()
			p.track(client, false)
			p.track(upstream, false)
		}()
	}
}

// pipe copies src to dst, each chunk written oneWay after it was read (or after
// open, if later), then half-closes dst. A failed write closes both, so that the
// other direction ends too.
func (p *delayProxy) pipe(dst, src net.Conn, open time.Time) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	chunks := make(chan chunk, 64) // full: the reader waits, as a sender would
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				now := time.Now()
				if now.Before(open) {
					now = open
				}
				chunks <- chunk{buf[:n], now.Add(p.oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			dst.Close()
			for range chunks { // let the reader end
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
