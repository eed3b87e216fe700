package hcm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/legate-proxy/legate/internal/http/h2"
	"github.com/legate-proxy/legate/internal/http/http1"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/networkfilter"
)

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Connection states, for timeouts and draining.
const (
	stateIdle    int32 = iota // between requests: idle_timeout applies
	stateHeaders              // a request's first byte has arrived
	stateActive               // a stream is being served
	stateDiscard              // the codec discards an unread request body
	stateClosing
	stateH2 // the HTTP/2 server owns the deadlines
)

// bodyDiscardTime bounds how long the codec may spend discarding the rest
// of a request body nobody read, to keep the connection: a client that
// trickles it costs its connection rather than holding it.
const bodyDiscardTime = time.Second

// conn wraps a downstream connection: it counts bytes, replays bytes peeked
// during codec detection, and moves read deadlines as the connection goes
// from idle to reading headers to serving a stream.
type conn struct {
	net.Conn
	nc  *networkfilter.Conn
	cfg *Config
	// drain is cancelled when the listener drains; streams do not see it
	// (they run on streamCtx) so draining never aborts a request.
	drain     context.Context
	streamCtx context.Context
	state     atomic.Int32
	// replay holds bytes read while sniffing for the HTTP/2 preface.
	replay []byte
	// lastRefresh throttles stream-idle deadline updates to one a second.
	lastRefresh time.Time
	// peerIP is the peer's address as x-forwarded-for carries it, formatted
	// once per connection; set only with use_remote_address.
	peerIP string

	start     time.Time
	stopWatch func()
	http1     bool
	http2     bool
	h2        *h2.ServerConn
	idling    // parking state, park.go
}

func (c *conn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		c.onRead(n)
		return n, nil
	}
	n, err := c.Conn.Read(p)
	c.onRead(n)
	return n, err
}

func (c *conn) onRead(n int) {
	if n <= 0 {
		return
	}
	c.cfg.Stats.CxRxBytesTotal.Add(uint64(n))
	switch c.state.Load() {
	case stateIdle:
		if c.state.CompareAndSwap(stateIdle, stateHeaders) {
			c.Conn.SetReadDeadline(deadline(c.headersTimeout()))
		}
	case stateActive:
		c.refreshStreamIdle()
	}
}

// CloseWrite half-closes when the transport can, so a final GOAWAY is read
// before the socket closes.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.cfg.Stats.CxTxBytesTotal.Add(uint64(n))
	}
	return n, err
}

// draining reports whether the connection should close after its current
// request: the listener is draining, or (drain_type DEFAULT) the server is
// failing its health checks.
func (c *conn) draining() bool {
	return c.drain.Err() != nil || (c.nc.DrainOnHealthFail && c.cfg.healthFailed.Load())
}

// headersTimeout is request_headers_timeout, or the stream idle timeout
// when that is unset. Envoy then bounds headers only by the stream idle
// timeout between bytes; Legate applies it to the header block as a whole
// so a client trickling bytes cannot hold a connection forever.
func (c *conn) headersTimeout() time.Duration {
	if c.cfg.RequestHeadersTimeout > 0 {
		return c.cfg.RequestHeadersTimeout
	}
	return c.cfg.StreamIdleTimeout
}

// refreshStreamIdle pushes the stream idle deadline forward on activity, at
// most once a second so the hot path rarely touches the timer.
func (c *conn) refreshStreamIdle() {
	if c.cfg.StreamIdleTimeout <= 0 {
		return
	}
	now := time.Now()
	if now.Sub(c.lastRefresh) < time.Second {
		return
	}
	c.lastRefresh = now
	d := now.Add(c.cfg.StreamIdleTimeout)
	c.Conn.SetReadDeadline(d)
	c.Conn.SetWriteDeadline(d)
}

// boundDiscard limits the codec's discarding of an unread request body
// (ServerConn.KeepAlive) to bodyDiscardTime; reads no longer push the
// stream idle deadline forward.
func (c *conn) boundDiscard() {
	c.state.Store(stateDiscard)
	c.Conn.SetReadDeadline(time.Now().Add(bodyDiscardTime))
}

func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// ServeConn runs the connection until it closes, times out, or ctx is
// cancelled (drain) and in-flight streams have finished. An idle HTTP/1
// connection may be parked (see park.go): ServeConn then returns with the
// connection detached, and it ends later on another goroutine.
func (cfg *Config) ServeConn(ctx context.Context, nc *networkfilter.Conn) {
	st := cfg.Stats
	st.CxTotal.Inc()
	st.CxActive.Inc()
	if nc.TLS != nil {
		st.CxSSLTotal.Inc()
	}
	c := &conn{Conn: nc.Conn, nc: nc, cfg: cfg, drain: ctx, streamCtx: context.WithoutCancel(ctx), start: time.Now()}
	if cfg.UseRemoteAddress {
		c.peerIP = nc.RemoteAddr.Addr().String()
	}
	c.initPark()
	c.stopWatch = c.watchDrain()
	useH2, err := c.detectH2()
	if err != nil {
		c.end()
		return
	}
	if useH2 {
		st.CxHTTP2Total.Inc()
		st.CxHTTP2Active.Inc()
		// The HTTP/2 server keeps its own deadlines.
		c.state.Store(stateH2)
		h2cfg := cfg.H2.Server
		h2cfg.IdleTimeout = cfg.IdleTimeout
		h2cfg.HandshakeTimeout = c.headersTimeout()
		h2cfg.FrameTimeout = c.headersTimeout()
		h2cfg.WriteTimeout = cfg.StreamIdleTimeout
		h2cfg.MaxHeaderBytes = cfg.Limits.MaxHeaderBytes
		h2cfg.MaxHeaders = cfg.Limits.MaxHeaders
		h2cfg.OnPrematureResets = st.RqTooManyPrematureResets.Inc
		h2cfg.OnProtocolError = st.CxProtocolError.Inc
		c.http2 = true
		if !c.noPark {
			h2cfg.IdleGrace = parkAfter
		}
		c.h2 = h2.NewServerConn(c, h2cfg, func(sctx context.Context, req *message.Request, w message.ResponseWriter) {
			if cfg.Limits.Underscores != http1.AllowUnderscores && !cfg.h2Underscores(req) {
				// Envoy resets an HTTP/2 stream it rejects for this.
				h2.AbortStream()
			}
			if c.nc.TLS != nil {
				req.Scheme = "https"
			}
			if cfg.serveStream(sctx, c, req, w, nil) == endReset {
				h2.AbortStream()
			}
		})
		if c.serveH2(ctx) {
			return // parked
		}
		c.end()
		return
	}
	st.CxHTTP1Total.Inc()
	st.CxHTTP1Active.Inc()
	c.http1 = true
	if cfg.serveHTTP1(ctx, c) {
		return // parked
	}
	c.end()
}

// end closes the connection and counts its end; for a detached (parked
// once) connection it also runs what the listener registered.
func (c *conn) end() {
	st := c.cfg.Stats
	if c.http1 {
		st.CxHTTP1Active.Dec()
	}
	if c.http2 {
		st.CxHTTP2Active.Dec()
	}
	c.stopWatch()
	c.nc.Close()
	st.CxActive.Dec()
	st.CxDestroy.Inc()
	st.CxLengthMs.Record(uint64(time.Since(c.start).Milliseconds()))
	if c.nc.Detached() {
		c.nc.End()
	}
}

// detectH2 decides the codec: ALPN on TLS, the client preface on cleartext
// AUTO (bytes read while sniffing are replayed to the chosen codec).
func (c *conn) detectH2() (bool, error) {
	switch c.cfg.Codec {
	case CodecHTTP1:
		return false, nil
	case CodecHTTP2:
		return true, nil
	}
	if c.nc.TLS != nil {
		return c.nc.TLS.NegotiatedProtocol == "h2", nil
	}
	c.Conn.SetReadDeadline(deadline(c.cfg.IdleTimeout))
	// A drain's wake-up may have come just before that deadline replaced
	// its own.
	if c.state.Load() == stateClosing {
		return false, net.ErrClosed
	}
	buf := make([]byte, 0, len(h2Preface))
	for len(buf) < len(h2Preface) {
		n, err := c.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if !bytes.HasPrefix([]byte(h2Preface), buf) {
			break
		}
		if err != nil {
			return false, err
		}
	}
	c.replay = buf
	c.cfg.Stats.CxRxBytesTotal.Add(uint64(len(buf)))
	if len(buf) > 0 {
		c.state.Store(stateHeaders)
		c.Conn.SetReadDeadline(deadline(c.headersTimeout()))
	}
	return string(buf) == h2Preface, nil
}

// serveHTTP1 reads requests one after another on a keep-alive connection.
// It reports true when it parked the connection (park.go): the connection
// then continues on another goroutine, and the caller must leave it be.
func (cfg *Config) serveHTTP1(ctx context.Context, c *conn) (parked bool) {
	sc := http1.NewServerConn(c, cfg.Limits)
	defer func() { sc.Release() }()
	var req message.Request
	for {
		// Bytes already arrived (sniffed preface) keep the headers deadline.
		if c.state.Load() != stateHeaders {
			c.state.Store(stateIdle)
			// A gentle drain does not wake idle connections, so the
			// idle deadline replaces the stream's (or a discard's).
			if ctx.Err() == nil || c.gentleDrain() {
				// A parked connection resumes in the idle period it
				// parked in.
				now := time.Now()
				if !c.resumed {
					c.idleDeadline = time.Time{}
					if cfg.IdleTimeout > 0 {
						c.idleDeadline = now.Add(cfg.IdleTimeout)
					}
				}
				c.Conn.SetReadDeadline(c.readDeadline(now))
			}
			c.resumed = false
			// Checked after setting the deadline: a drain that started in
			// between may have had its wake-up overwritten.
			if ctx.Err() != nil && !c.gentleDrain() {
				cfg.Stats.CxDrainClose.Inc()
				return false
			}
		}
		// Keep the header slice: the codec fills it in place, saving an
		// allocation per request.
		req = message.Request{Header: req.Header[:0]}
		err := sc.ReadRequest(&req)
		if err != nil {
			if c.graceOver(err) {
				sc.Release()
				if c.park() {
					return true
				}
				// Not parked: wait in Read for the rest of the idle time.
				c.noPark = true
				c.resumed = true
				sc = http1.NewServerConn(c, cfg.Limits)
				continue
			}
			cfg.readError(c, sc, err)
			return false
		}
		if req.Body != nil && req.ContentLength < 0 {
			if err := sc.CheckBufferedBody(); err != nil {
				cfg.readError(c, sc, err)
				return false
			}
		}
		c.state.Store(stateActive)
		c.lastRefresh = time.Time{}
		c.refreshStreamIdle()
		if cfg.StreamIdleTimeout <= 0 {
			c.Conn.SetReadDeadline(time.Time{})
			c.Conn.SetWriteDeadline(time.Time{})
		}
		if c.draining() {
			sc.CloseAfterResponse()
		}
		if cfg.serveStream(c.streamCtx, c, &req, sc.ResponseWriter(), sc) != endNormal {
			return false
		}
		if err := sc.FinishResponse(); err != nil {
			return false
		}
		if !sc.KeepAlive() {
			// Legate ends the connection: let the peer read the response
			// before the socket goes (delayed_close_timeout).
			cfg.delayedClose(c)
			return false
		}
		c.Conn.SetWriteDeadline(time.Time{})
		c.state.Store(stateIdle)
	}
}

// watchDrain makes a drain wake a connection parked between requests (or
// before its first byte) and close it. An updated listener's drain does
// not (gentleDrain): closing an idle connection races with a request the
// client may be sending, so the connection is told instead (Connection:
// close on its next response) and the listener closes it if it stays idle
// until the drain ends, or the server shuts down. The returned func stops
// watching.
func (c *conn) watchDrain() (stop func()) {
	wake := func() {
		if c.state.CompareAndSwap(stateIdle, stateClosing) {
			c.Conn.SetReadDeadline(time.Now())
			c.wakeParked()
		}
	}
	// The shutdown watch is only registered once a gentle drain starts.
	var stopShutdown atomic.Pointer[func() bool]
	stopDrain := context.AfterFunc(c.drain, func() {
		// A parked HTTP/2 connection has no Serve running to send its
		// GOAWAY: resume it for that, whatever the drain.
		if c.state.Load() == stateH2 {
			c.wakeParked()
		}
		if !c.gentleDrain() {
			wake()
			return
		}
		if c.nc.Shutdown != nil {
			s := context.AfterFunc(c.nc.Shutdown, wake)
			stopShutdown.Store(&s)
		}
	})
	return func() {
		stopDrain()
		if s := stopShutdown.Load(); s != nil {
			(*s)()
		}
	}
}

// gentleDrain reports whether the connection drains for an LDS update of
// its listener while the server keeps running.
func (c *conn) gentleDrain() bool {
	return listenerDrain(c.drain) && (c.nc.Shutdown == nil || c.nc.Shutdown.Err() == nil)
}

// listenerDrain reports whether ctx was cancelled by an LDS update of the
// listener (networkfilter.ErrListenerDrain) rather than a server drain.
func listenerDrain(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), networkfilter.ErrListenerDrain)
}

// h2Underscores applies headers_with_underscores_action to an HTTP/2
// request (the HTTP/1 codec applies it while parsing): it drops such
// headers, or reports false when the request must be rejected.
func (cfg *Config) h2Underscores(req *message.Request) bool {
	h := req.Header
	j := 0
	for _, f := range h {
		if strings.IndexByte(f.Name, '_') < 0 {
			h[j] = f
			j++
			continue
		}
		if cfg.Limits.Underscores == http1.RejectUnderscores {
			cfg.Stats.RejectedUnderscores.Inc()
			return false
		}
		cfg.Stats.DroppedUnderscores.Inc()
	}
	clear(h[j:])
	req.Header = h[:j]
	return true
}

// readError handles a failed ReadRequest: a clean close, a timeout, or a
// protocol error answered with Envoy's local reply before closing.
func (cfg *Config) readError(c *conn, sc *http1.ServerConn, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		switch c.state.Load() {
		case stateIdle:
			cfg.Stats.CxIdleTimeout.Inc()
		case stateHeaders:
			cfg.Stats.RqHeaderTimeout.Inc()
			// Envoy answers a request header timeout with 408.
			cfg.writeCodecError(c, sc, 408, "request_headers_timeout")
		}
		return
	}
	var pe *http1.ProtocolError
	if errors.As(err, &pe) {
		cfg.Stats.CxProtocolError.Inc()
		if pe.Status == 431 || pe.Status == 413 {
			cfg.Stats.RqTooLarge.Inc()
		}
		if pe.Details == underscoreDetails {
			cfg.Stats.RejectedUnderscores.Inc()
		}
		cfg.writeCodecError(c, sc, pe.Status, pe.Details)
	}
}

// delayedClose half-closes and briefly drains before the connection is
// closed, so the peer reads the error reply instead of a reset caused by
// its own unread bytes (delayed_close_timeout, 1 s by default).
func (cfg *Config) delayedClose(c *conn) {
	if cfg.DelayedCloseTimeout <= 0 {
		return
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.Conn.SetReadDeadline(time.Now().Add(cfg.DelayedCloseTimeout))
	io.CopyN(io.Discard, c.Conn, 1<<20)
}

// underscoreDetails is the response code details of a request rejected for
// underscores in header names.
const underscoreDetails = "http1.unexpected_underscore"

// writeCodecError answers a request the codec refused and closes.
func (cfg *Config) writeCodecError(c *conn, sc *http1.ServerConn, status int, details string) {
	c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	sc.CloseAfterResponse()
	w := sc.ResponseWriter()
	status, body, ctype := cfg.codecErrorReply(c, status, statusText(status), details)
	h := message.Headers{{Name: "content-type", Value: ctype}}
	cfg.addResponseHeaders(&h, time.Now())
	if w.WriteHeader(status, h, int64(len(body))) == nil {
		w.Write([]byte(body))
	}
	sc.FinishResponse()
	cfg.Stats.recordStatus(status)
	cfg.delayedClose(c)
	cfg.Logger.Debug("rejected request", "status", status, "details", details, "remote", c.nc.RemoteAddr)
}
