//go:build linux

package netpoll

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func waitFired(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: callback did not run", what)
	}
}

func TestFiresOnData(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	c, s := pair(t)
	ch := make(chan struct{})
	if _, err := p.Wait(s, func() { close(ch) }); err != nil {
		t.Fatal(err)
	}
	if p.Parked() != 1 {
		t.Fatalf("Parked = %d", p.Parked())
	}
	select {
	case <-ch:
		t.Fatal("fired before any byte arrived")
	case <-time.After(50 * time.Millisecond):
	}
	c.Write([]byte("x"))
	waitFired(t, ch, "data")
	// The connection reads normally afterwards: the runtime's poller is
	// untouched by ours.
	buf := make([]byte, 1)
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := s.Read(buf); n != 1 || err != nil {
		t.Fatalf("read after wake = %d, %v", n, err)
	}
	if p.Parked() != 0 {
		t.Fatalf("Parked after firing = %d", p.Parked())
	}
}

func TestFiresOnHangUp(t *testing.T) {
	p, _ := New()
	c, s := pair(t)
	ch := make(chan struct{})
	if _, err := p.Wait(s, func() { close(ch) }); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFired(t, ch, "peer close")
}

func TestStopPreventsCallback(t *testing.T) {
	p, _ := New()
	c, s := pair(t)
	var ran atomic.Bool
	w, err := p.Wait(s, func() { ran.Store(true) })
	if err != nil {
		t.Fatal(err)
	}
	if !w.Stop() {
		t.Fatal("Stop of an armed waiter = false")
	}
	if w.Stop() {
		t.Fatal("second Stop = true")
	}
	c.Write([]byte("x"))
	// Park a second socket and wake it: by then the poller has handled
	// any event the first one could have produced.
	c2, s2 := pair(t)
	ch := make(chan struct{})
	p.Wait(s2, func() { close(ch) })
	c2.Write([]byte("y"))
	waitFired(t, ch, "second socket")
	if ran.Load() {
		t.Fatal("callback ran after Stop")
	}
}

func TestStopAfterFire(t *testing.T) {
	p, _ := New()
	c, s := pair(t)
	ch := make(chan struct{})
	w, _ := p.Wait(s, func() { close(ch) })
	c.Write([]byte("x"))
	waitFired(t, ch, "data")
	if w.Stop() {
		t.Fatal("Stop after the callback started = true")
	}
}

// Rearming the same socket after each wake works, and slots are reused.
func TestRearm(t *testing.T) {
	p, _ := New()
	c, s := pair(t)
	buf := make([]byte, 1)
	for i := range 50 {
		ch := make(chan struct{})
		if _, err := p.Wait(s, func() { close(ch) }); err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{byte(i)})
		waitFired(t, ch, "rearmed")
		if _, err := s.Read(buf); err != nil || buf[0] != byte(i) {
			t.Fatalf("round %d: read %v %v", i, buf[0], err)
		}
	}
	p.mu.Lock()
	n := len(p.slots)
	p.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d slots for one socket parked 50 times", n)
	}
}

func TestManySockets(t *testing.T) {
	p, _ := New()
	const n = 200
	var fired atomic.Int64
	done := make(chan struct{}, n)
	var clients []*net.TCPConn
	for range n {
		c, s := pair(t)
		clients = append(clients, c)
		if _, err := p.Wait(s, func() { fired.Add(1); done <- struct{}{} }); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range clients {
		c.Write([]byte("x"))
	}
	for range n {
		waitFired(t, done, "many")
	}
	if fired.Load() != n {
		t.Fatalf("fired %d of %d", fired.Load(), n)
	}
}
