// Package loopback runs throwaway TCP servers on 127.0.0.1 for tests.
//
// It is only imported by tests (_test.go files); production code must not
// depend on it.
package loopback

import (
	"net"
	"sync"
	"testing"
)

// Listen returns a TCP listener on 127.0.0.1 with a kernel-chosen port; it
// is closed at cleanup.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Serve listens on loopback and runs handle for every accepted connection,
// each in its own goroutine; see ServeListener. It returns the address.
func Serve(t testing.TB, handle func(net.Conn)) (addr string) {
	t.Helper()
	return ServeListener(t, Listen(t), handle)
}

// ServeListener runs handle for every connection accepted on ln (which may
// wrap a loopback listener, e.g. to count accepts), each in its own
// goroutine, and closes the connection when handle returns. At cleanup it
// closes ln and any connection still open, so that handlers blocked on the
// peer return, and waits for every goroutine it started: nothing outlives
// the test. It returns ln's address.
func ServeListener(t testing.TB, ln net.Listener, handle func(net.Conn)) (addr string) {
	t.Helper()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed bool
		conns  = map[net.Conn]struct{}{}
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				// Accepted in the race with cleanup: nobody will serve it.
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}
