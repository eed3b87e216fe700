package connpool

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// countConn is the TCP connection under TLS and the codecs: it counts
// bytes into the cluster's rx/tx totals and, on its first Close, settles
// the connection's stats.
type countConn struct {
	net.Conn
	p       *Pool
	start   time.Time
	rxTotal uint64 // bytes read so far; only the reading goroutine touches it
	// remote is set when a read saw the peer go away, so Close counts
	// upstream_cx_destroy_remote rather than _local.
	remote  atomic.Bool
	closed  atomic.Bool
	onClose func() // extra per-protocol bookkeeping; may be nil
}

func (c *countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.rxTotal += uint64(n)
		c.p.stats.UpstreamCxRxBytesTotal.Add(uint64(n))
	}
	if err != nil && !isTimeout(err) && !errors.Is(err, net.ErrClosed) {
		c.remote.Store(true)
	}
	return n, err
}

func (c *countConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.p.stats.UpstreamCxTxBytesTotal.Add(uint64(n))
	}
	return n, err
}

func (c *countConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := c.Conn.Close()
	st := c.p.stats
	st.UpstreamCxActive.Dec()
	c.p.host.CxActive.Add(-1)
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

var _ io.ReadWriteCloser = (*countConn)(nil)

// dial opens a connection to the host within the connect timeout (TLS
// handshake included), counting Envoy's connection stats. A failure is an
// *Error with Envoy's reset reason, or ctx's error when ctx ended first.
func (p *Pool) dial(ctx context.Context) (net.Conn, *countConn, error) {
	st := p.stats
	st.UpstreamCxTotal.Inc()
	st.UpstreamCxActive.Inc()
	p.host.CxTotal.Add(1)
	p.host.CxActive.Add(1)
	if p.settings.Protocol == cluster.HTTP2 {
		st.UpstreamCxHTTP2Total.Inc()
	} else {
		st.UpstreamCxHTTP1Total.Inc()
	}
	fail := func(err error) (net.Conn, *countConn, error) {
		st.UpstreamCxActive.Dec()
		p.host.CxActive.Add(-1)
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		e := connectError(err)
		if e.Reason == ConnectionTimeout {
			st.UpstreamCxConnectTimeout.Inc()
		}
		st.UpstreamCxConnectFail.Inc()
		p.host.CxConnectFail.Add(1)
		return nil, nil, e
	}

	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, p.connectTimeout)
	defer cancel()
	raw, err := p.dialer.DialContext(dctx, "tcp", p.host.Address)
	if err != nil {
		return fail(err)
	}
	st.UpstreamCxConnectMs.Record(uint64(time.Since(start).Milliseconds()))
	cc := &countConn{Conn: raw, p: p, start: time.Now()}
	if p.tlsConfig == nil {
		return cc, cc, nil
	}
	tc := tls.Client(cc, p.tlsConfig)
	if err := tc.HandshakeContext(dctx); err != nil {
		// Undo Close's accounting: this connection never counted as open
		// for destroy stats, only as a connect failure.
		cc.closed.Store(true)
		raw.Close()
		return fail(err)
	}
	return tc, cc, nil
}

// CloseWrite half-closes the TCP connection (upgraded streams pass a
// downstream EOF on).
func (c *countConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
