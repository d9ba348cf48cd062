package azdotest

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// A Path is a broken network path to Azure DevOps: an address on 127.0.0.1 that
// fails a client's connection before any byte of a request can be sent. Azure never
// sees such a request, so it can never have queued a run: a client must be able to
// tell these failures from those after sending.
type Path struct {
	URL string // https://127.0.0.1:port

	close func()
	once  sync.Once
}

// Close releases the address and every connection held on it.
func (p *Path) Close() { p.once.Do(p.close) }

// SilentHandshake accepts TCP connections and never answers the TLS ClientHello: a
// handshake that hangs until the client's timeout or deadline.
func SilentHandshake() *Path {
	return holding(func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c) // reads the ClientHello, answers nothing
	})
}

// ResetHandshake accepts TCP connections, reads the TLS ClientHello and resets the
// connection (RST): a middlebox or a host that drops the connection mid-handshake.
func ResetHandshake() *Path {
	return holding(func(c net.Conn) {
		buf := make([]byte, 512)
		_, _ = c.Read(buf)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // Close sends RST, not FIN
		}
		c.Close()
	})
}

// holding serves each accepted connection with serve, and closes them all on Close.
func holding(serve func(net.Conn)) *Path {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("azdotest: listen: %v", err))
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	return &Path{URL: "https://" + l.Addr().String(), close: func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}}
}

// Unanswered is an address whose TCP handshake never completes: a listening socket
// whose accept queue (backlog 0, one connection parked in it) is full, so Linux drops
// every further SYN, as a firewall that drops packets would. A dial there times out.
func Unanswered() *Path {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		panic(fmt.Sprintf("azdotest: socket: %v", err))
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		panic(fmt.Sprintf("azdotest: bind: %v", err))
	}
	if err := syscall.Listen(fd, 0); err != nil {
		panic(fmt.Sprintf("azdotest: listen: %v", err))
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		panic(fmt.Sprintf("azdotest: getsockname: %v", err))
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	parked, err := net.Dial("tcp", addr) // fills the queue; never accepted
	if err != nil {
		panic(fmt.Sprintf("azdotest: dial: %v", err))
	}
	f := os.NewFile(uintptr(fd), "unanswered")
	return &Path{URL: "https://" + addr, close: func() { parked.Close(); f.Close() }}
}
