// Package dialer opens every upstream connection Legate makes: the HTTP
// connection pools, tcp_proxy, and the clients that reach a cluster on
// Legate's own behalf (tracers, stat sinks, xDS and other gRPC services).
// In one place it applies the cluster's connect_timeout, source address
// (upstream_bind_config) and socket options, performs the TLS handshake
// when asked to, and counts the cluster's and host's upstream_cx_* stats,
// so that a connection an exporter opens shows in its cluster's stats as
// in Envoy, and circuit breakers and health checks have one seam to
// attach to.
package dialer

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// DefaultConnectTimeout applies when a cluster has none (Envoy's 5 s).
const DefaultConnectTimeout = 5 * time.Second

// Protocol selects the per-protocol connection counter.
type Protocol uint8

const (
	// Raw counts no protocol counter (tcp_proxy, exporters).
	Raw Protocol = iota
	// HTTP1 counts upstream_cx_http1_total.
	HTTP1
	// HTTP2 counts upstream_cx_http2_total.
	HTTP2
)

// Target is what to dial and how.
type Target struct {
	Stats    *cluster.Stats // the cluster's stats; required
	Host     *cluster.Host  // the endpoint; required
	Settings *cluster.Settings
	// TLS, when set, is handshaken within the connect timeout; nil dials
	// plaintext (or leaves TLS to the caller, as gRPC credentials do).
	TLS      *tls.Config
	Protocol Protocol
}

// ForCluster is the target for host h of cluster c with c's TLS settings.
func ForCluster(c *cluster.Cluster, h *cluster.Host, p Protocol) Target {
	return Target{Stats: c.Stats, Host: h, Settings: &c.Settings, TLS: c.Settings.TLS, Protocol: p}
}

// Error is a failed connect or TLS handshake.
type Error struct {
	Err error
	// Handshake is set when TCP connected and TLS failed.
	Handshake bool
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports a connect timeout.
func (e *Error) Timeout() bool { return IsTimeout(e.Err) }

// Dial connects to t.Host within the connect timeout (TLS included). It
// returns the connection to use (TLS over raw, or raw) and raw, the
// counted TCP connection, whose first Close settles the destroy stats. A
// failure is an *Error, or ctx's error when ctx ended first (then no
// connect failure is counted: the caller gave up).
func Dial(ctx context.Context, t Target) (net.Conn, *Conn, error) {
	st, h := t.Stats, t.Host
	if st == nil {
		// A cluster built without stats (tests, tools) still connects;
		// its numbers go nowhere.
		st = cluster.NewStats(stats.NewStore().Scope("cluster.unnamed."))
	}
	st.UpstreamCxTotal.Inc()
	st.UpstreamCxActive.Inc()
	h.CxTotal.Add(1)
	h.CxActive.Add(1)
	switch t.Protocol {
	case HTTP1:
		st.UpstreamCxHTTP1Total.Inc()
	case HTTP2:
		st.UpstreamCxHTTP2Total.Inc()
	}
	fail := func(err error, handshake bool) (net.Conn, *Conn, error) {
		st.UpstreamCxActive.Dec()
		h.CxActive.Add(-1)
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if IsTimeout(err) {
			st.UpstreamCxConnectTimeout.Inc()
		}
		st.UpstreamCxConnectFail.Inc()
		h.CxConnectFail.Add(1)
		return nil, nil, &Error{Err: err, Handshake: handshake}
	}
	timeout := DefaultConnectTimeout
	var s *cluster.Settings
	if t.Settings != nil {
		s = t.Settings
		if s.ConnectTimeout > 0 {
			timeout = s.ConnectTimeout
		}
	}
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{}
	if s != nil && s.Bind != nil {
		d.LocalAddr = s.Bind.LocalAddr
		if len(s.Bind.SocketOptions) > 0 {
			opts := s.Bind.SocketOptions
			d.Control = func(_, _ string, rc syscall.RawConn) error { return applySocketOptions(rc, opts) }
		}
	}
	raw, err := d.DialContext(dctx, "tcp", h.Address)
	if err != nil {
		return fail(err, false)
	}
	st.UpstreamCxConnectMs.Record(uint64(time.Since(start).Milliseconds()))
	c := &Conn{Conn: raw, stats: st, host: h, start: time.Now()}
	if t.TLS == nil {
		return c, c, nil
	}
	tc := tls.Client(c, t.TLS)
	// A deadline, not HandshakeContext: on cancel that closes the
	// connection from its own goroutine, which would count a destroy for a
	// connection that never opened.
	dl, _ := dctx.Deadline()
	raw.SetDeadline(dl)
	err = tc.Handshake()
	raw.SetDeadline(time.Time{})
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		// The connection never counted as open for the destroy stats,
		// only as a connect failure.
		c.closed.Store(true)
		raw.Close()
		return fail(err, true)
	}
	return tc, c, nil
}

// IsTimeout reports a deadline or timeout error.
func IsTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Conn is a dialled TCP connection. It counts bytes into the cluster's
// upstream_cx_rx/tx_bytes_total and, on its first Close, settles
// upstream_cx_active, upstream_cx_destroy(_local|_remote) and
// upstream_cx_length_ms.
type Conn struct {
	net.Conn
	stats   *cluster.Stats
	host    *cluster.Host
	start   time.Time
	rxTotal uint64 // bytes read so far; only the reading goroutine touches it
	// remote is set when a read saw the peer go away, so Close counts
	// upstream_cx_destroy_remote rather than _local.
	remote  atomic.Bool
	closed  atomic.Bool
	onClose func()
}

func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.rxTotal += uint64(n)
		c.stats.UpstreamCxRxBytesTotal.Add(uint64(n))
	}
	if err != nil && !IsTimeout(err) && !errors.Is(err, net.ErrClosed) {
		c.remote.Store(true)
	}
	return n, err
}

func (c *Conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.stats.UpstreamCxTxBytesTotal.Add(uint64(n))
	}
	return n, err
}

// Close closes the connection; the first call settles the stats.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := c.Conn.Close()
	st := c.stats
	st.UpstreamCxActive.Dec()
	c.host.CxActive.Add(-1)
	st.UpstreamCxDestroy.Inc()
	if c.remote.Load() {
		st.UpstreamCxDestroyRemote.Inc()
	} else {
		st.UpstreamCxDestroyLocal.Inc()
	}
	st.UpstreamCxLengthMs.Record(uint64(time.Since(c.start).Milliseconds()))
	if c.onClose != nil {
		c.onClose()
	}
	return err
}

// CloseWrite half-closes the TCP connection.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// RxTotal is the bytes read so far; call it from the reading goroutine.
func (c *Conn) RxTotal() uint64 { return c.rxTotal }

// MarkRemote records that the peer closed the connection, for a close
// noticed other than by a failing Read (an idle check).
func (c *Conn) MarkRemote() { c.remote.Store(true) }

// OnClose sets f to run after the first Close; set it before the
// connection is shared.
func (c *Conn) OnClose(f func()) { c.onClose = f }

// Raw is the TCP connection underneath, for system-level checks.
func (c *Conn) Raw() net.Conn { return c.Conn }
