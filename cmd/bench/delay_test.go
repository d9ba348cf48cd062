package main

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// The proxy must cost what it models: one round trip per exchange, and one more for
// the first on a new connection (the TCP connect), whatever the chunk sizes.
func TestDelayProxy(t *testing.T) {
	const rtt = 40 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // echo each line
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadBytes('\n')
					if err != nil {
						return
					}
					if _, err := c.Write(line); err != nil {
						return
					}
				}
			}()
		}
	}()
	p, err := newDelayProxy(ln.Addr().String(), rtt)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	start := time.Now()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	big := make([]byte, 256<<10) // many chunks: they travel together, not one delay each
	for i := range big {
		big[i] = 'x'
	}
	big[len(big)-1] = '\n'
	for _, tc := range []struct {
		name     string
		msg      []byte
		min, max time.Duration
	}{
		// Upper bounds leave a round trip of room for a loaded machine: a proxy that
		// delayed each chunk on its own would take many round trips for 256 KiB.
		{"first exchange, new connection", []byte("hello\n"), 2 * rtt, 3 * rtt},
		{"second exchange", []byte("again\n"), rtt, 2 * rtt},
		{"256 KiB", big, rtt, 2 * rtt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.min != 2*rtt {
				start = time.Now()
			}
			if _, err := c.Write(tc.msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(tc.msg))
			if _, err := io.ReadFull(r, got); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took < tc.min || took > tc.max {
				t.Errorf("took %v, want %v to %v", took, tc.min, tc.max)
			}
			if string(got) != string(tc.msg) {
				t.Errorf("echo differs")
			}
		})
	}
	c.Close()
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
