package hcm

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/legate-proxy/legate/internal/http/h2"
	"github.com/legate-proxy/legate/internal/netpoll"
	"github.com/legate-proxy/legate/internal/networkfilter"
)

// parkAfter is how long an HTTP/1 keep-alive connection waits for its next
// request in Read (a goroutine and the codec's buffers held) before it is
// parked: its buffers go back to the pool, its goroutine ends, and the
// socket is watched by netpoll until bytes arrive, the idle timeout ends or
// a drain wakes it. A client sending its next request within parkAfter —
// any busy connection — pays nothing for this; an idle one then costs its
// socket and a few hundred bytes of state instead of ~20 KB.
var parkAfter = time.Second // a variable for tests

// idling is a connection's parking state.
type idling struct {
	// idleDeadline is when the current idle period ends (zero: never);
	// kept across parking, which must not restart it.
	idleDeadline time.Time
	// resumed: the loop continues the idle period it parked in.
	resumed bool
	// noPark: this connection cannot park (its owner cannot detach it,
	// the platform has no netpoll, or parking failed once). Set when the
	// connection starts, so requests only read it.
	noPark bool
	// idleExpired: the idle timer resumed the parked connection.
	idleExpired bool
	parked      atomic.Pointer[parking]
	waker       func()
}

// parking is one stretch of a connection parked.
type parking struct {
	mu    sync.Mutex
	w     *netpoll.Waiter
	timer *time.Timer
}

// initPark decides once whether this connection may ever park.
func (c *conn) initPark() {
	_, err := netpoll.Default()
	c.noPark = err != nil || !c.nc.CanDetach()
}

// serveH2 runs the HTTP/2 connection until it ends (false) or parks
// (true). The server returns h2.ErrIdle once it has had no stream for
// parkAfter, its buffers released; the connection parks until its socket is
// readable, the rest of the idle timeout passes, or a drain wakes it.
func (c *conn) serveH2(ctx context.Context) bool {
	for {
		if c.idleExpired {
			// The idle timeout passed while parked: the server's drain
			// sends GOAWAY and closes, as its own idle timer would.
			c.cfg.Stats.CxIdleTimeout.Inc()
			done, cancel := context.WithCancel(ctx)
			cancel()
			ctx = done
		}
		if c.h2.Serve(ctx) != h2.ErrIdle {
			return false
		}
		if c.cfg.IdleTimeout > 0 {
			c.idleDeadline = time.Now().Add(c.cfg.IdleTimeout - parkAfter)
		}
		if c.park() {
			return true
		}
		// Not parked: serve on (the server offers to park again after
		// another parkAfter, which costs a wake-up a second).
	}
}

// readDeadline is the deadline of a read between requests: the end of the
// idle period, or parkAfter from now when the connection would park then.
func (c *conn) readDeadline(now time.Time) time.Time {
	if c.noPark {
		return c.idleDeadline
	}
	d := now.Add(parkAfter)
	if !c.idleDeadline.IsZero() && c.idleDeadline.Before(d) {
		return c.idleDeadline
	}
	return d
}

// graceOver reports whether a failed read between requests only means that
// parkAfter has passed: nothing arrived, and the idle period goes on.
func (c *conn) graceOver(err error) bool {
	if c.noPark || c.state.Load() != stateIdle || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	return c.idleDeadline.IsZero() || time.Now().Before(c.idleDeadline)
}

// park hands the idle connection to netpoll and reports true, or false when
// it cannot be parked (no socket to wait on, bytes held above the socket,
// a platform without netpoll, the listener waking it already). The codec's
// buffers have been released; the caller returns at once when parked.
func (c *conn) park() bool {
	if len(c.replay) > 0 || c.nc.Buffered() {
		return false
	}
	raw := networkfilter.RawSocket(c.Conn)
	poller, err := netpoll.Default()
	if raw == nil || err != nil {
		return false
	}
	if c.waker == nil {
		c.waker = c.wakeParked
	}
	p := &parking{}
	c.parked.Store(p)
	// From here the connection may resume on another goroutine before
	// park returns: everything it needs is written above.
	wasDetached := c.nc.Detached()
	if !wasDetached {
		c.nc.Detach()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w, err := poller.Wait(raw, func() {
		if c.unpark(p, false) {
			c.resume()
		}
	})
	if err != nil {
		c.parked.Store(nil)
		if !wasDetached {
			c.nc.Reattach()
		}
		return false
	}
	p.w = w
	if !c.nc.SetWaker(c.waker) {
		// The listener is closing the socket: stay with it.
		c.parked.Store(nil)
		w.Stop()
		if !wasDetached {
			c.nc.Reattach()
		}
		return false
	}
	if !c.idleDeadline.IsZero() {
		p.timer = time.AfterFunc(time.Until(c.idleDeadline), func() {
			if c.unpark(p, true) {
				c.idleExpired = true
				c.resume()
			}
		})
	}
	return true
}

// unpark claims the parked connection for whoever resumes it (the socket
// became readable, the idle timer fired, a drain or close woke it). Only
// one caller gets true. stop says netpoll may still be watching the socket.
func (c *conn) unpark(p *parking, stop bool) bool {
	if !c.parked.CompareAndSwap(p, nil) {
		return false
	}
	c.nc.SetWaker(nil)
	p.mu.Lock()
	if p.timer != nil {
		p.timer.Stop()
	}
	if stop && p.w != nil {
		p.w.Stop()
	}
	p.mu.Unlock()
	return true
}

// wakeParked resumes the connection if it is parked, on a new goroutine:
// the caller (a drain, the listener about to close the socket) goes on.
func (c *conn) wakeParked() {
	if p := c.parked.Load(); p != nil && c.unpark(p, true) {
		go c.resume()
	}
}

// resume continues serving a parked connection on the current goroutine.
func (c *conn) resume() {
	if c.h2 != nil {
		if c.serveH2(c.drain) {
			return
		}
		c.end()
		return
	}
	c.resumed = true
	if c.cfg.serveHTTP1(c.drain, c) {
		return
	}
	c.end()
}
