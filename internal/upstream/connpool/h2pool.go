package connpool

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/legate-proxy/legate/internal/http/h2"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/upstream/dialer"
)

// h2state is a host's HTTP/2 connections. Requests scan the published
// slice; only dialing and removal take mu.
type h2state struct {
	mu      sync.Mutex
	conns   atomic.Pointer[[]*h2conn]
	dialing *h2dial
}

type h2conn struct {
	cc    *h2.ClientConn
	nc    *dialer.Conn
	guard *h2guard
}

// usable reports whether the connection can take a new stream.
func (c *h2conn) usable() bool { return !c.guard.unsolicited.Load() && c.cc.CanTakeNewRequest() }

// h2dial is one in-flight dial that concurrent requests wait on, so a burst
// of requests to a new host opens one connection, not one each.
type h2dial struct {
	done chan struct{}
	c    *h2conn
	err  error
}

// maxH2Attempts bounds how often one request moves to another connection
// because the chosen one could not take it (full, draining, closed).
const maxH2Attempts = 4

func (p *Pool) roundTripH2(ctx context.Context, req *message.Request) (*message.Response, error) {
	var lastErr error
	for range maxH2Attempts {
		c, err := p.getH2(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.cc.RoundTrip(ctx, req)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var he *h2.Error
		if errors.As(err, &he) && he.Unprocessed && he.Kind == h2.ConnectionTermination {
			// Nothing reached the upstream (the connection was full,
			// draining or dead); another connection may take it.
			lastErr = err
			continue
		}
		return nil, streamError(err)
	}
	return nil, streamError(lastErr)
}

// getH2 returns a connection that can take a stream, dialing one when none
// can.
func (p *Pool) getH2(ctx context.Context) (*h2conn, error) {
	for _, c := range *p.h2.conns.Load() {
		if c.usable() {
			return c, nil
		}
	}
	p.h2.mu.Lock()
	for _, c := range *p.h2.conns.Load() {
		if c.usable() {
			p.h2.mu.Unlock()
			return c, nil
		}
	}
	p.pruneH2Locked()
	d := p.h2.dialing
	if d == nil {
		d = &h2dial{done: make(chan struct{})}
		p.h2.dialing = d
		// The dial serves whoever is waiting, so it is not bound to
		// this request's ctx; the connect timeout bounds it.
		go p.dialH2(d)
	}
	p.h2.mu.Unlock()
	// Pending until the dial ends, as in Envoy.
	p.stats.UpstreamRqPendingTotal.Inc()
	p.stats.UpstreamRqPendingActive.Inc()
	defer p.stats.UpstreamRqPendingActive.Dec()
	select {
	case <-d.done:
		return d.c, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Pool) dialH2(d *h2dial) {
	nc, cnt, err := p.dial(context.Background())
	var c *h2conn
	if err == nil {
		c, err = p.newH2Conn(nc, cnt)
	}
	p.h2.mu.Lock()
	if err == nil {
		if p.closed.Load() {
			// The pool closed while dialing: serve the waiters, then go.
			go c.cc.Shutdown(context.Background())
		}
		list := append(slices.Clone(*p.h2.conns.Load()), c)
		p.h2.conns.Store(&list)
	}
	p.h2.dialing = nil
	p.h2.mu.Unlock()
	d.c, d.err = c, err
	close(d.done)
}

// newH2Conn starts HTTP/2 on a dialled connection.
func (p *Pool) newH2Conn(nc net.Conn, cnt *dialer.Conn) (*h2conn, error) {
	c := &h2conn{nc: cnt, guard: newH2Guard(p, nc)}
	cnt.OnClose(func() { p.removeH2(c) })
	var err error
	if c.cc, err = p.h2t.NewClientConn(c.guard); err != nil {
		return nil, streamError(err)
	}
	return c, nil
}

// addH2 publishes a connection made outside dialH2 (auto_config).
func (p *Pool) addH2(c *h2conn) {
	p.h2.mu.Lock()
	list := append(slices.Clone(*p.h2.conns.Load()), c)
	p.h2.conns.Store(&list)
	p.h2.mu.Unlock()
}

// removeH2 drops a closed connection from the published slice.
func (p *Pool) removeH2(c *h2conn) {
	p.h2.mu.Lock()
	defer p.h2.mu.Unlock()
	cur := *p.h2.conns.Load()
	if i := slices.Index(cur, c); i >= 0 {
		list := slices.Delete(slices.Clone(cur), i, i+1)
		p.h2.conns.Store(&list)
	}
}

// pruneH2Locked closes connections that drained after a GOAWAY; x/net
// keeps them open until told.
func (p *Pool) pruneH2Locked() {
	for _, c := range *p.h2.conns.Load() {
		if st := c.cc.State(); st.Closing && st.ActiveStreams == 0 && !st.Closed {
			go c.cc.Close()
		}
	}
}
