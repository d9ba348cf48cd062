package azdo

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// PreconnectMaxAge bounds how old a pre-dialled connection may be when the first
// delivery takes it (IdleReset, when shorter, bounds it too). A server may close a
// connection that carries no request sooner than an idle one, and a POST on a
// connection the server has closed reads as "may have been queued".
const PreconnectMaxAge = 10 * time.Second

// Preconnect dials Azure's host (TCP and the TLS handshake, no request) in the
// background, so that a cold container's first delivery need not wait for it: that
// delivery's dial to the same host takes the connection, or joins the dial in
// flight. It never blocks, and sends Azure nothing but the handshake. A dial that
// fails, or a connection that is older than PreconnectMaxAge (or IdleReset) or
// closed by the server by then, is not used: the delivery dials as without it. It
// works with a client from NewHTTPClient (or a nil HTTP) and an https BaseURL, and
// does nothing otherwise.
func (c *Client) Preconnect(ctx context.Context) {
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP()
	}
	t, ok := hc.Transport.(*http.Transport)
	if !ok || t.DialTLSContext == nil {
		return
	}
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	maxAge := PreconnectMaxAge
	if c.IdleReset > 0 {
		maxAge = min(maxAge, c.IdleReset)
	}
	p := &preconn{addr: addr, maxAge: maxAge, done: make(chan struct{})}
	if old := c.pre.Swap(p); old != nil {
		old.discard()
	}
	go func() {
		conn, err := t.DialTLSContext(ctx, "tcp", addr)
		p.mu.Lock()
		if p.dropped && conn != nil {
			conn.Close()
			conn = nil
		}
		p.conn, p.err, p.at = conn, err, time.Now()
		p.mu.Unlock()
		close(p.done)
	}()
}

// preconn is one connection dialled ahead, for one taker.
type preconn struct {
	addr   string
	maxAge time.Duration
	done   chan struct{} // closed when the dial has ended

	mu      sync.Mutex
	claimed bool // a delivery's dial took it, or will have nothing of it
	dropped bool // nobody will use it: close it
	conn    net.Conn
	err     error
	at      time.Time // when the dial ended
}

type preconnKey struct{}

// take returns the pre-dialled connection to addr, waiting for its dial, or nil
// when there is none to use; it hands it out at most once.
func (p *preconn) take(ctx context.Context, addr string) net.Conn {
	p.mu.Lock()
	if p.claimed || addr != p.addr {
		p.mu.Unlock()
		return nil
	}
	p.claimed = true
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-ctx.Done():
		p.drop()
		return nil
	}
	p.mu.Lock()
	conn, at := p.conn, p.at
	p.conn = nil // the caller's now
	p.mu.Unlock()
	if conn == nil {
		return nil // the dial failed: the caller dials as without it
	}
	if time.Since(at) > p.maxAge || !open(conn) {
		conn.Close()
		return nil
	}
	return conn
}

// drop closes the connection, now or when its dial ends.
func (p *preconn) drop() {
	p.mu.Lock()
	p.dropped = true
	conn := p.conn
	p.conn = nil
	p.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// discard drops the connection unless a delivery's dial has claimed it.
func (p *preconn) discard() {
	p.mu.Lock()
	claimed := p.claimed
	p.claimed = true
	p.mu.Unlock()
	if !claimed {
		p.drop()
	}
}

// open reports whether the server has not closed conn: no end of stream or error
// is waiting to be read. Data waiting (TLS session tickets, HTTP/2 settings) is
// left for the transport.
func open(conn net.Conn) bool {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return true
	}
	return peekOpen(tc.NetConn())
}

// dialer makes NewHTTPClient's TLS connections, as http.Transport would, and hands
// a request's dial the connection Preconnect made when there is one.
type dialer struct {
	net              *net.Dialer
	tls              *tls.Config
	handshakeTimeout time.Duration
}

func (d *dialer) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	if p, ok := ctx.Value(preconnKey{}).(*preconn); ok {
		if conn := p.take(ctx, addr); conn != nil {
			return conn, nil
		}
	}
	raw, err := d.net.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := d.tls.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	conn := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, d.handshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}
