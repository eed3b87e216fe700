// Package connpool keeps per-host upstream connections: HTTP/1.1 keep-alive
// pools and multiplexed HTTP/2 connections.
//
// The request path takes no pool lock: HTTP/1.1 idle connections sit in a
// buffered channel used as a free list, HTTP/2 connections in an
// atomically published slice. A mutex guards only HTTP/2 dialing and the
// slice's replacement, which happen per connection, not per request.
//
// No response reaches the wrong client: an HTTP/1.1 connection goes back
// to the free list only when nothing is buffered after the response
// (ClientConn.Stray), and is peeked at once more when taken from it
// (checkIdle) — bytes or a close while idle discard it. HTTP/2
// connections refuse response frames on streams never opened or already
// reset by the upstream (h2guard). Both count upstream_cx_protocol_error.
//
// Not applied yet: per_connection_buffer_limit_bytes (the codecs use fixed
// buffers) and circuit breakers; HTTP/2 upstreams carry no Upgrade.
package connpool

import (
	"context"
	"crypto/tls"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/legate-proxy/legate/internal/http/h2"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// maxIdlePerHost bounds the HTTP/1.1 free list; a connection released
// when it is full is closed. Envoy keeps every connection, but it also
// caps them with circuit breakers (1024 by default).
const maxIdlePerHost = 1024

// Pool is one host's connections.
type Pool struct {
	host      *cluster.Host
	settings  cluster.Settings
	stats     *cluster.Stats
	tlsConfig *tls.Config
	closed    atomic.Bool

	// HTTP/1.1
	idle     chan *h1conn
	sweeping atomic.Bool

	// HTTP/2
	h2t *h2.Transport
	h2  h2state

	// auto_config: which protocol ALPN chose (protoUnknown until the
	// first connection is up).
	auto  bool
	proto atomic.Uint32
}

const (
	protoUnknown uint32 = iota
	protoH1
	protoH2
)

// New returns a pool for host; it dials lazily. Everything derived from
// the cluster's settings is computed here, once.
func New(c *cluster.Cluster, h *cluster.Host) *Pool {
	p := &Pool{
		host:     h,
		settings: c.Settings,
		stats:    c.Stats,
	}
	if p.stats == nil {
		// A cluster built without stats (tests, tools) still gets a
		// working pool; its numbers go nowhere.
		p.stats = cluster.NewStats(stats.NewStore().Scope("cluster." + c.Name + "."))
	}
	if t := c.Settings.TLS; t != nil {
		t = t.Clone()
		if len(t.NextProtos) == 0 {
			// With no alpn_protocols configured, Envoy offers the
			// protocol the cluster is configured to speak.
			switch c.Settings.Protocol {
			case cluster.HTTP2:
				t.NextProtos = []string{"h2"}
			case cluster.AutoHTTP:
				t.NextProtos = []string{"h2", "http/1.1"}
			default:
				t.NextProtos = []string{"http/1.1"}
			}
		}
		p.tlsConfig = t
	}
	if c.Settings.Protocol == cluster.AutoHTTP {
		p.auto = true
		if p.tlsConfig == nil {
			// No ALPN without TLS: HTTP/1.1.
			p.proto.Store(protoH1)
		}
	}
	if c.Settings.Protocol != cluster.HTTP1 {
		p.h2t = h2.NewTransport(h2.ClientConfig{
			MaxConcurrentStreams: c.Settings.H2MaxConcurrentStreams,
			InitialStreamWindow:  c.Settings.H2InitialStreamWindow,
			InitialConnWindow:    c.Settings.H2InitialConnWindow,
			IdleTimeout:          c.Settings.IdleTimeout,
		})
		p.h2.conns.Store(&[]*h2conn{})
	}
	if c.Settings.Protocol != cluster.HTTP2 {
		p.idle = make(chan *h1conn, maxIdlePerHost)
	}
	return p
}

// Factories are the pool factories by cluster protocol that this package
// serves: one pool type speaks HTTP/1.1, HTTP/2 and auto_config.
func Factories() map[cluster.Protocol]cluster.PoolFactory {
	f := func(c *cluster.Cluster, h *cluster.Host) cluster.HostPool { return New(c, h) }
	return map[cluster.Protocol]cluster.PoolFactory{cluster.HTTP1: f, cluster.HTTP2: f, cluster.AutoHTTP: f}
}

// Host returns the host this pool dials.
func (p *Pool) Host() *cluster.Host { return p.host }

// RoundTrip sends req (streaming its body) and returns when the response
// headers arrive. The response body streams; reading it to io.EOF or
// closing it (the body implements io.Closer) releases the connection or
// stream. ctx covers the whole exchange, body included: when it ends the
// stream is reset and reads fail with ctx's error. A 101 response to an
// Upgrade request returns an upgraded stream from Upgraded.
//
// Failures are *Error carrying Envoy's reset reason, or ctx's own error.
// The request body is read on another goroutine (full duplex) until it
// returns io.EOF or an error, which may be after RoundTrip has returned;
// a failing body aborts the upstream connection. A kept-alive HTTP/1.1
// connection found closed before any response byte is replaced and the
// request sent again once, when it has no body.
func (p *Pool) RoundTrip(ctx context.Context, req *message.Request) (*message.Response, error) {
	if p.auto {
		switch p.proto.Load() {
		case protoH1:
			return p.roundTripH1(ctx, req)
		case protoH2:
			return p.roundTripH2(ctx, req)
		}
		return p.roundTripAuto(ctx, req)
	}
	if p.h2t != nil {
		return p.roundTripH2(ctx, req)
	}
	return p.roundTripH1(ctx, req)
}

// Upgraded returns the raw byte stream of a 101 response from RoundTrip:
// reads return what the upstream sends (bytes it sent along with the 101
// first), writes go to the upstream, Close closes the connection.
func Upgraded(resp *message.Response) (io.ReadWriteCloser, bool) {
	if resp == nil {
		return nil, false
	}
	u, ok := resp.Body.(*upgradedStream)
	return u, ok
}

// Close closes idle connections now and busy ones when they finish.
func (p *Pool) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	if p.idle != nil {
		p.drainIdle()
	}
	if p.h2t != nil {
		p.h2.mu.Lock()
		conns := slices.Clone(*p.h2.conns.Load())
		p.h2.mu.Unlock()
		for _, c := range conns {
			// Shutdown sends GOAWAY and waits for open streams.
			go c.cc.Shutdown(context.Background())
		}
	}
	return nil
}

// drainIdle closes every connection in the free list.
func (p *Pool) drainIdle() {
	for {
		select {
		case c := <-p.idle:
			c.nc.Close()
		default:
			return
		}
	}
}

// DeadlineContext carries a deadline for an HTTP/1.1 RoundTrip without a
// timer: the pool applies it as the upstream socket's deadline, so a route
// timeout costs no timer or goroutine per request. Its Done is the
// parent's (nil for a parent that is never cancelled), so it must only be
// given to pools of HTTP/1.1 clusters; HTTP/2 connections wait on Done.
type DeadlineContext struct {
	context.Context
	At time.Time
}

// Deadline returns At.
func (c *DeadlineContext) Deadline() (time.Time, bool) { return c.At, true }

// Err reports context.DeadlineExceeded once At has passed.
func (c *DeadlineContext) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.At) {
		return context.DeadlineExceeded
	}
	return nil
}
