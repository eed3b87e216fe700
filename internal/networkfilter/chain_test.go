package networkfilter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil/loopback"
)

// tcpPair is a connected loopback pair: the proxy's side and the client's.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln := loopback.Listen(t)
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-ch
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	deadline := time.Now().Add(10 * time.Second)
	server.SetDeadline(deadline)
	client.SetDeadline(deadline)
	return server, client
}

// serve runs ch on the server side of a fresh pair in the background and
// returns the client side and a channel closed when ServeConn returns.
func serve(t *testing.T, ch *Chain) (net.Conn, <-chan struct{}) {
	t.Helper()
	server, client := tcpPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ch.ServeConn(context.Background(), &Conn{Conn: server})
	}()
	t.Cleanup(func() { <-done })
	return client, done
}

// echo is a terminal filter that sends back what it reads, readSize bytes
// at a time, and half-closes at the end of the stream.
type echo struct {
	readSize int
	called   atomic.Int32
	readErr  atomic.Value // error
	wrapped  atomic.Bool  // Conn.Conn was the chain's wrapper
}

func (e *echo) ServeConn(_ context.Context, c *Conn) {
	e.called.Add(1)
	_, isSession := c.Conn.(*session)
	e.wrapped.Store(isSession)
	buf := make([]byte, max(e.readSize, 1))
	for {
		n, err := c.Conn.Read(buf)
		if n > 0 {
			if _, werr := c.Conn.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			e.readErr.Store(err)
			if err == io.EOF {
				c.Conn.(interface{ CloseWrite() error }).CloseWrite()
			}
			c.Conn.Close()
			return
		}
	}
}

// exchange writes each chunk, half-closes, and reads until EOF.
func exchange(t *testing.T, c net.Conn, chunks ...string) string {
	t.Helper()
	go func() {
		for _, s := range chunks {
			c.Write([]byte(s))
			time.Sleep(time.Millisecond) // separate reads, mostly; correctness does not depend on it
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v", err)
	}
	return string(got)
}

// hooks is a NonTerminal built from functions; nil ones pass through.
type hooks struct {
	PassThrough
	newConn func(c *Conn) Status
	data    func(c *Conn, b *Buffer, end bool) Status
	write   func(c *Conn, b *Buffer, end bool) Status
	closed  atomic.Int32
}

func (h *hooks) Hooks() Hooks {
	var hk Hooks = HookClose
	if h.data != nil {
		hk |= HookData
	}
	if h.write != nil {
		hk |= HookWrite
	}
	return hk
}
func (h *hooks) NewConn(*Conn) Instance { return h }
func (h *hooks) OnNewConnection(c *Conn) Status {
	if h.newConn != nil {
		return h.newConn(c)
	}
	return Continue
}
func (h *hooks) OnData(c *Conn, b *Buffer, end bool) Status {
	if h.data != nil {
		return h.data(c, b, end)
	}
	return Continue
}
func (h *hooks) OnWrite(c *Conn, b *Buffer, end bool) Status {
	if h.write != nil {
		return h.write(c, b, end)
	}
	return Continue
}
func (h *hooks) OnClose(*Conn) { h.closed.Add(1) }

func TestChainHoldThenTransform(t *testing.T) {
	var mu sync.Mutex
	var upperSaw []string
	hold := &hooks{data: func(_ *Conn, b *Buffer, end bool) Status {
		if b.Len() < 5 && !end {
			return StopIteration
		}
		return Continue
	}}
	upper := &hooks{data: func(_ *Conn, b *Buffer, _ bool) Status {
		mu.Lock()
		upperSaw = append(upperSaw, string(b.Bytes()))
		mu.Unlock()
		copy(b.Bytes(), bytes.ToUpper(b.Bytes()))
		return Continue
	}}
	term := &echo{readSize: 64}
	c, _ := serve(t, NewChain(term, hold, upper))
	if got := exchange(t, c, "ab", "cde", "fg"); got != "ABCDEFG" {
		t.Fatalf("echoed %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(upperSaw) == 0 || len(upperSaw[0]) < 5 || !strings.HasPrefix("abcdefg", upperSaw[0]) {
		t.Errorf("the second filter saw %q: held bytes must reach it together, in order", upperSaw)
	}
	if strings.Join(upperSaw, "") != "abcdefg" {
		t.Errorf("the second filter saw %q: every byte once", upperSaw)
	}
	if !term.wrapped.Load() {
		t.Error("a chain with data filters must wrap the connection")
	}
}

func TestChainReplacementLongerThanRead(t *testing.T) {
	double := &hooks{data: func(_ *Conn, b *Buffer, _ bool) Status {
		out := make([]byte, 0, 2*b.Len())
		for _, c := range b.Bytes() {
			out = append(out, c, c)
		}
		b.Set(out)
		return Continue
	}}
	drop := &hooks{data: func(_ *Conn, b *Buffer, _ bool) Status {
		if i := bytes.IndexByte(b.Bytes(), '#'); i >= 0 {
			b.Set(append(b.Bytes()[:i:i], b.Bytes()[i+1:]...))
		}
		return Continue
	}}
	term := &echo{readSize: 3}
	c, _ := serve(t, NewChain(term, double, drop))
	if got := exchange(t, c, "abc#", "de"); got != "aabbcc#ddee" {
		t.Fatalf("echoed %q", got)
	}
}

func TestChainDrain(t *testing.T) {
	skipped := 0
	skip := &hooks{data: func(_ *Conn, b *Buffer, _ bool) Status {
		n := min(4-skipped, b.Len())
		b.Drain(n)
		skipped += n
		return Continue
	}}
	c, _ := serve(t, NewChain(&echo{readSize: 64}, skip))
	if got := exchange(t, c, "12", "3456", "78"); got != "5678" {
		t.Fatalf("echoed %q, want the first 4 bytes dropped", got)
	}
}

func TestChainFilterCloses(t *testing.T) {
	var afterX atomic.Bool
	guard := &hooks{data: func(c *Conn, b *Buffer, _ bool) Status {
		if bytes.IndexByte(b.Bytes(), 'x') >= 0 {
			c.Close()
			return StopIteration
		}
		return Continue
	}}
	spy := &hooks{data: func(_ *Conn, b *Buffer, _ bool) Status {
		if bytes.IndexByte(b.Bytes(), 'x') >= 0 {
			afterX.Store(true)
		}
		return Continue
	}}
	term := &echo{readSize: 64}
	c, done := serve(t, NewChain(term, guard, spy))
	c.Write([]byte("x and more"))
	io.ReadAll(c)
	<-done
	if afterX.Load() {
		t.Error("bytes reached the next filter after a filter closed the connection")
	}
	if err, _ := term.readErr.Load().(error); !errors.Is(err, net.ErrClosed) {
		t.Errorf("terminal read error %v, want ErrClosed", err)
	}
	if guard.closed.Load() != 1 || spy.closed.Load() != 1 {
		t.Errorf("OnClose ran %d/%d times", guard.closed.Load(), spy.closed.Load())
	}
}

func TestChainGateRejects(t *testing.T) {
	for _, delay := range []time.Duration{0, 20 * time.Millisecond} {
		gate := &hooks{newConn: func(c *Conn) Status {
			c.CloseAfter(delay)
			return StopIteration
		}}
		after := &hooks{newConn: func(*Conn) Status {
			t.Error("OnNewConnection ran after a filter stopped the connection")
			return Continue
		}}
		term := &echo{}
		c, done := serve(t, NewChain(term, gate, after))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("read %d bytes from a rejected connection", n)
		}
		<-done
		if term.called.Load() != 0 {
			t.Error("the terminal filter saw a rejected connection")
		}
		if gate.closed.Load() != 1 || after.closed.Load() != 0 {
			t.Errorf("OnClose: gate %d, later filter %d; want 1 and 0", gate.closed.Load(), after.closed.Load())
		}
	}
}

// A chain whose filters only gate leaves the connection as it is.
func TestChainGatesOnlyDoNotWrap(t *testing.T) {
	var started atomic.Int32
	gate := &hooks{newConn: func(*Conn) Status { started.Add(1); return Continue }}
	term := &echo{readSize: 64}
	c, _ := serve(t, NewChain(term, gate))
	if got := exchange(t, c, "hello"); got != "hello" {
		t.Fatalf("echoed %q", got)
	}
	if term.wrapped.Load() || started.Load() != 1 || gate.closed.Load() != 1 {
		t.Errorf("wrapped %v, started %d, closed %d", term.wrapped.Load(), started.Load(), gate.closed.Load())
	}
}

func TestChainWriteFilters(t *testing.T) {
	var order []string
	var mu sync.Mutex
	// Both hold everything until the terminal half-closes, then flush:
	// the last configured sees the bytes first.
	mk := func(tag string) *hooks {
		return &hooks{write: func(_ *Conn, b *Buffer, end bool) Status {
			mu.Lock()
			order = append(order, tag)
			mu.Unlock()
			if !end {
				return StopIteration
			}
			b.Set(append([]byte(tag+"["), append(b.Bytes()[:b.Len():b.Len()], ']')...))
			return Continue
		}}
	}
	first, second := mk("first"), mk("second")
	c, _ := serve(t, NewChain(&echo{readSize: 2}, first, second))
	if got := exchange(t, c, "abcd"); got != "first[second[abcd]]" {
		t.Fatalf("got %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if order[0] != "second" {
		t.Errorf("write filters ran %v; want reverse chain order", order)
	}
}

func TestConnBuffered(t *testing.T) {
	triple := &hooks{data: func(_ *Conn, b *Buffer, _ bool) Status {
		b.Set(bytes.Repeat(b.Bytes(), 3))
		return Continue
	}}
	server, client := tcpPair(t)
	ch := NewChain(nil, triple)
	c := &Conn{Conn: server}
	s := &session{Conn: server, ch: ch, c: c}
	s.insts = append(s.arr[:0], triple)
	c.Conn = s
	client.Write([]byte("ab"))
	buf := make([]byte, 2)
	if n, err := c.Read(buf); n != 2 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	if !c.Buffered() {
		t.Error("Buffered is false with 4 filtered bytes not yet read")
	}
	for range 2 {
		c.Read(buf)
	}
	if c.Buffered() {
		t.Error("Buffered is true with nothing left")
	}
	if (&Conn{Conn: server}).Buffered() {
		t.Error("an unwrapped connection reports buffered bytes")
	}
}

// memConn is an endless source and a sink, for measuring the chain alone.
type memConn struct{ net.Conn }

func (memConn) Read(p []byte) (int, error)  { return len(p), nil }
func (memConn) Write(p []byte) (int, error) { return len(p), nil }

type passThrough struct{ PassThrough }

func (*passThrough) Hooks() Hooks             { return HookData | HookWrite }
func (p *passThrough) NewConn(*Conn) Instance { return p }

func wrapped(filters ...NonTerminal) *Conn {
	ch := NewChain(nil, filters...)
	c := &Conn{}
	s := &session{Conn: memConn{}, ch: ch, c: c}
	s.insts = s.arr[:0]
	for _, f := range filters {
		s.insts = append(s.insts, f.NewConn(c))
	}
	c.Conn = s
	return c
}

func TestPassThroughChainAllocatesNothing(t *testing.T) {
	c := wrapped(&passThrough{}, &passThrough{})
	buf := make([]byte, 32<<10)
	if n := testing.AllocsPerRun(1000, func() {
		c.Read(buf)
		c.Write(buf)
	}); n != 0 {
		t.Errorf("%v allocations per read and write", n)
	}
}

// BenchmarkChainReadWrite is one 32 KiB read and write through a chain of
// two pass-through filters (0 allocations), against the bare transport.
func BenchmarkChainReadWrite(b *testing.B) {
	buf := make([]byte, 32<<10)
	for _, bc := range []struct {
		name string
		conn net.Conn
	}{
		{"bare", memConn{}},
		{"two-pass-through-filters", wrapped(&passThrough{}, &passThrough{}).Conn},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.conn.Read(buf)
				bc.conn.Write(buf)
			}
		})
	}
}

type nopTerminal struct{}

func (nopTerminal) ServeConn(context.Context, *Conn) {}

type gate struct{ PassThrough }

func (*gate) Hooks() Hooks             { return HookClose }
func (g *gate) NewConn(*Conn) Instance { return g }

// A chain of gates costs a connection no allocation.
func TestGatedChainAllocatesNothing(t *testing.T) {
	ch := NewChain(nopTerminal{}, &gate{}, &gate{}, &gate{})
	c := &Conn{}
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { ch.ServeConn(ctx, c) }); n != 0 {
		t.Errorf("%v allocations per connection", n)
	}
}
