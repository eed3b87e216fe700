package connpool

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/legate-proxy/legate/internal/http/http1"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/upstream/dialer"
)

// h1conn is one upstream HTTP/1.1 connection. Between requests it sits in
// the pool's free list; during one, the request writer (when there is a
// body) and the response reader each hold a share of it, and whichever
// finishes last returns it to the list or closes it.
type h1conn struct {
	p      *Pool
	nc     net.Conn // what the codec uses: cnt, or TLS over cnt
	cnt    *dialer.Conn
	cc     *http1.ClientConn
	reused bool
	// idleSince is when the connection entered the free list (monotonic
	// nanoseconds since the pool package started).
	idleSince int64

	// Per request. pending counts the goroutines still using the
	// connection; the atomic hand-off orders writeErr and failed.
	pending  atomic.Int32
	writeErr error
	failed   bool
	stopCtx  func() bool
	// deadline is set when a DeadlineContext's deadline is on the socket.
	deadline bool
	// wake is c.wakeup bound once, so watching a request's ctx does not
	// allocate a closure per request.
	wake func()

	// The idle check (see checkIdle): the socket's raw handle and the
	// peek callback bound once, with its results.
	raw       syscall.RawConn
	peekFn    func(fd uintptr) bool
	peekBuf   [1]byte
	peekN     int
	peekErrno syscall.Errno
}

// wakeup runs when a request's ctx ends: the past deadline wakes whichever
// of reader and writer is blocked, and both then see ctx's error.
func (c *h1conn) wakeup() { c.nc.SetDeadline(aLongTimeAgo) }

// h1exchange holds the per-request allocations together, with room for a
// typical response's headers so parsing them does not grow a slice.
type h1exchange struct {
	resp message.Response
	body h1body
	hdr  [24]message.Header
}

// h1write is the caller's request with its body behind rb, so the writer
// can tell a failing downstream body from a failing socket.
type h1write struct {
	req message.Request
	rb  reqBody
}

// reqBody records whether an error came from the request body itself.
type reqBody struct {
	b      message.Body
	failed bool
}

func (r *reqBody) Read(p []byte) (int, error) {
	n, err := r.b.Read(p)
	if err != nil && err != io.EOF {
		r.failed = true
	}
	return n, err
}

func (r *reqBody) Trailers() message.Headers { return r.b.Trailers() }

var epoch = time.Now()

func nanotime() int64 { return int64(time.Since(epoch)) }

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked Read
// or Write at once.
var aLongTimeAgo = time.Unix(1, 0)

func (p *Pool) roundTripH1(ctx context.Context, req *message.Request) (*message.Response, error) {
	for attempt := 0; ; attempt++ {
		c, err := p.getH1(ctx)
		if err != nil {
			return nil, err
		}
		resp, err, stale := c.roundTrip(ctx, req)
		if err == nil {
			return resp, nil
		}
		// A kept-alive connection the upstream closed while it sat idle
		// fails before any response byte; Envoy's pool sends the request
		// again on a new connection. Only a request without a body can be
		// sent twice.
		if stale && attempt == 0 {
			continue
		}
		return nil, err
	}
}

// getH1 takes an idle connection or dials a new one.
func (p *Pool) getH1(ctx context.Context) (*h1conn, error) {
	for {
		select {
		case c := <-p.idle:
			if t := p.settings.IdleTimeout; t > 0 && nanotime()-c.idleSince > int64(t) {
				c.closeIdle()
				continue
			}
			if !c.checkIdle() {
				c.closeIdle()
				continue
			}
			c.reused = true
			return c, nil
		default:
		}
		// The request waits for a new connection: Envoy counts it as
		// pending until the connection is up.
		p.stats.UpstreamRqPendingTotal.Inc()
		p.stats.UpstreamRqPendingActive.Inc()
		nc, cnt, err := p.dial(ctx)
		p.stats.UpstreamRqPendingActive.Dec()
		if err != nil {
			return nil, err
		}
		return p.newH1Conn(nc, cnt), nil
	}
}

// newH1Conn wraps a dialled connection for HTTP/1.1.
func (p *Pool) newH1Conn(nc net.Conn, cnt *dialer.Conn) *h1conn {
	c := &h1conn{p: p, nc: nc, cnt: cnt, cc: http1.NewClientConn(nc)}
	c.wake = c.wakeup
	if sc, ok := cnt.Raw().(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
		c.peekFn = c.peek
	}
	return c
}

// roundTrip runs one exchange. stale reports a failure that a fresh
// connection may not have: the connection was reused, nothing came back,
// and the request can be sent again.
func (c *h1conn) roundTrip(ctx context.Context, req *message.Request) (resp *message.Response, err error, stale bool) {
	c.writeErr, c.failed, c.stopCtx = nil, false, nil
	if ctx.Done() != nil {
		c.stopCtx = context.AfterFunc(ctx, c.wake)
	} else if d, ok := ctx.Deadline(); ok {
		// A context that cannot be cancelled but has a deadline (see
		// DeadlineContext): the socket deadline enforces it.
		c.nc.SetDeadline(d)
		c.deadline = true
	}
	rx := c.cnt.RxTotal()
	staleFail := func(err error) bool {
		return c.reused && req.Body == nil && c.cnt.RxTotal() == rx && ctx.Err() == nil && !isProtocol(err)
	}
	ex := &h1exchange{}
	if req.Body == nil {
		c.pending.Store(1)
		if err := c.cc.WriteRequest(req); err != nil {
			stale = staleFail(err)
			c.kill()
			c.done()
			return nil, c.p.mapErr(ctx, err), stale
		}
	} else {
		// Full duplex: the upstream may answer before the body ends.
		c.pending.Store(2)
		w := &h1write{req: *req}
		w.rb.b = req.Body
		w.req.Body = &w.rb
		go c.writeBody(w)
	}
	resp = &ex.resp
	resp.Header = ex.hdr[:0]
	if err := c.cc.ReadResponse(resp, req.Method); err != nil {
		if isProtocol(err) {
			c.p.stats.UpstreamCxProtocolError.Inc()
		}
		stale = staleFail(err)
		c.kill()
		c.done()
		return nil, c.p.mapErr(ctx, err), stale
	}
	switch {
	case resp.Status == 101:
		if c.stopCtx != nil && !c.stopCtx() {
			c.kill()
			c.done()
			return nil, ctx.Err(), false
		}
		// The stream outlives the request's timeout, as upgraded streams
		// do in Envoy; its owner closes it.
		c.stopCtx = nil
		if c.deadline {
			c.deadline = false
			c.nc.SetDeadline(time.Time{})
		}
		nc, r := c.cc.Hijack()
		resp.Body = &upgradedStream{c: c, nc: nc, r: r}
	case resp.Body == nil:
		c.done()
	default:
		ex.body = h1body{c: c, b: resp.Body, ctx: ctx}
		resp.Body = &ex.body
	}
	return resp, nil, false
}

func isProtocol(err error) bool {
	var pe *http1.ProtocolError
	return errors.As(err, &pe)
}

func (c *h1conn) writeBody(w *h1write) {
	if err := c.cc.WriteRequest(&w.req); err != nil {
		c.writeErr = err
		if w.rb.failed {
			// The downstream body broke: the upstream would wait for the
			// rest forever, so abort the connection. A socket error needs
			// no help, and closing could cut off a response (an early 413)
			// the reader is still taking in.
			c.nc.Close()
		}
	}
	c.done()
}

// kill closes the connection after a failure; done still releases it.
func (c *h1conn) kill() {
	c.failed = true
	c.nc.Close()
}

// done drops one goroutine's share; the last one decides the
// connection's fate.
func (c *h1conn) done() {
	if c.pending.Add(-1) != 0 {
		return
	}
	ctxOK := c.stopCtx == nil || c.stopCtx()
	c.stopCtx = nil
	if c.deadline {
		c.deadline = false
		c.nc.SetDeadline(time.Time{})
	}
	if !ctxOK || c.failed || c.writeErr != nil || c.p.closed.Load() {
		c.closeIdle()
		return
	}
	if c.cc.Stray() {
		// Bytes after a complete response: served to the next request
		// they would shift every later response onto the wrong client.
		c.p.stats.UpstreamCxProtocolError.Inc()
		c.closeIdle()
		return
	}
	if !c.cc.Reusable() {
		c.closeIdle()
		return
	}
	c.p.putH1(c)
}

// closeIdle closes a connection no goroutine uses any more.
func (c *h1conn) closeIdle() {
	c.nc.Close()
	c.cc.Release()
}

func (p *Pool) putH1(c *h1conn) {
	c.idleSince = nanotime()
	select {
	case p.idle <- c:
	default:
		c.closeIdle()
		return
	}
	if p.closed.Load() {
		p.drainIdle() // lost a race with Close
		return
	}
	if p.settings.IdleTimeout > 0 && p.sweeping.CompareAndSwap(false, true) {
		go p.sweep()
	}
}

// sweep closes connections idle for longer than the idle timeout. It runs
// while the free list is non-empty; getH1 also skips expired ones.
func (p *Pool) sweep() {
	timeout := int64(p.settings.IdleTimeout)
	t := time.NewTicker(max(p.settings.IdleTimeout/2, 10*time.Millisecond))
	defer t.Stop()
	for range t.C {
		if p.closed.Load() {
			p.sweeping.Store(false)
			return
		}
		now := nanotime()
	scan:
		for n := len(p.idle); n > 0; n-- {
			select {
			case c := <-p.idle:
				if now-c.idleSince > timeout {
					c.closeIdle()
					continue
				}
				select {
				case p.idle <- c:
				default:
					c.closeIdle()
				}
			default:
				break scan
			}
		}
		if p.closed.Load() {
			p.drainIdle() // Close may have drained while we held some
		}
		if len(p.idle) == 0 {
			p.sweeping.Store(false)
			// A put may have raced the store; it starts a sweeper only
			// if it saw false, so re-check before leaving.
			if len(p.idle) == 0 || !p.sweeping.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// mapErr turns a codec or socket error into what RoundTrip returns.
func (p *Pool) mapErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return streamError(err)
}

// h1body is an upstream HTTP/1.1 response body. It captures the trailers
// before releasing the connection, whose codec reuses its memory.
type h1body struct {
	c        *h1conn
	b        message.Body
	ctx      context.Context
	trailers message.Headers
	done     bool
}

func (b *h1body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.b.Read(p)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		b.done = true
		if tr := b.b.Trailers(); len(tr) > 0 {
			b.trailers = slices.Clone(tr)
		}
		b.c.done()
		return n, io.EOF
	default:
		b.done = true
		b.c.kill()
		b.c.done()
		return n, b.c.p.mapErr(b.ctx, err)
	}
}

func (b *h1body) Trailers() message.Headers { return b.trailers }

// Close abandons the rest of the body; the connection cannot be reused.
func (b *h1body) Close() error {
	if !b.done {
		b.done = true
		b.c.kill()
		b.c.done()
	}
	return nil
}

// upgradedStream is the connection after a 101 response.
type upgradedStream struct {
	c      *h1conn
	nc     net.Conn
	r      io.Reader
	closed atomic.Bool
}

func (u *upgradedStream) Read(p []byte) (int, error)  { return u.r.Read(p) }
func (u *upgradedStream) Write(p []byte) (int, error) { return u.nc.Write(p) }

// Trailers makes the stream usable as a message.Body; there are none.
func (u *upgradedStream) Trailers() message.Headers { return nil }

// CloseWrite half-closes the upstream side when the connection supports
// it, so a peer waiting for EOF sees one.
func (u *upgradedStream) CloseWrite() error {
	if cw, ok := u.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (u *upgradedStream) Close() error {
	if !u.closed.CompareAndSwap(false, true) {
		return nil
	}
	u.c.failed = true // never reused
	u.c.done()
	return nil
}
