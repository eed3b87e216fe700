package networkfilter

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// Detaching lets a connection outlive its goroutine. A terminal filter
// whose connection goes idle (the HCM between keep-alive requests) may park
// it — no goroutine, no buffers, only a wait on the socket — and return
// from ServeConn; the connection resumes on a new goroutine when bytes
// arrive. Whatever must run when the connection really ends is therefore
// registered with OnEnd rather than run after ServeConn returns, and only
// a connection whose every owner did so can detach (CanDetach).

// endState is the part of Conn that detaching needs.
type endState struct {
	onEnd      []func()
	detachable bool
	// detached is read by the goroutine that returned from ServeConn
	// while the one serving the connection since may detach it again.
	detached atomic.Bool
	ended    bool

	mu    sync.Mutex
	waker func()
	woken bool
}

// AllowDetach says that the caller of ServeConn runs its end-of-connection
// work through OnEnd and End, so the terminal filter may detach.
func (c *Conn) AllowDetach() { c.end.detachable = true }

// CanDetach reports whether the terminal filter may detach the connection.
func (c *Conn) CanDetach() bool { return c.end.detachable }

// forbidDetach is for a chain whose filters run work after the terminal
// filter returns.
func (c *Conn) forbidDetach() { c.end.detachable = false }

// OnEnd registers f to run when the connection ends; End runs them in
// reverse order of registration, as deferred calls would.
func (c *Conn) OnEnd(f func()) { c.end.onEnd = append(c.end.onEnd, f) }

// Detach is called by the terminal filter, only when CanDetach, before it
// returns from ServeConn with the connection still open: it then calls End
// itself when the connection ends, from whichever goroutine serves it.
func (c *Conn) Detach() { c.end.detached.Store(true) }

// Reattach undoes Detach when the terminal filter did not return after
// all (parking failed before anything could resume the connection).
func (c *Conn) Reattach() { c.end.detached.Store(false) }

// Detached reports whether the terminal filter detached the connection:
// the caller of ServeConn must then not call End.
func (c *Conn) Detached() bool { return c.end.detached.Load() }

// End runs the OnEnd functions, once.
func (c *Conn) End() {
	if c.end.ended {
		return
	}
	c.end.ended = true
	for i := len(c.end.onEnd) - 1; i >= 0; i-- {
		c.end.onEnd[i]()
	}
	c.end.onEnd = nil
}

// SetWaker registers what Wake calls: a parked connection's owner sets it
// while parked (nil clears it). It reports false, registering nothing, when
// Wake has already been called: the connection must not park then.
func (c *Conn) SetWaker(f func()) bool {
	c.end.mu.Lock()
	defer c.end.mu.Unlock()
	if c.end.woken && f != nil {
		return false
	}
	c.end.waker = f
	return true
}

// Wake resumes a parked connection (if one is) so that its owner sees what
// changed, and keeps it from parking again. The listener calls it before
// closing the socket of a connection that may be parked: a parked socket
// is watched by descriptor number, which a close frees for reuse.
func (c *Conn) Wake() {
	c.end.mu.Lock()
	f := c.end.waker
	c.end.woken = true
	c.end.mu.Unlock()
	if f != nil {
		f()
	}
}

// RawSocket returns the socket under c's transport (through TLS and the
// chain's wrapping), or nil when there is none to wait on.
func RawSocket(c net.Conn) syscall.Conn {
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case *net.UnixConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// NetConn is the transport below the chain, for RawSocket.
func (s *session) NetConn() net.Conn { return s.Conn }
