//go:build linux

// Package netpoll waits for idle sockets to become readable without a
// goroutine per socket. A connection parked between requests costs a small
// Waiter instead of a goroutine stack (KBs once a request has grown it)
// and the buffers that stack holds: a keep-alive connection that stays
// quiet is then only its socket and its protocol state.
//
// It is one epoll instance, separate from the Go runtime's: a socket is
// added to it one-shot when its owner parks it and removed before the
// callback runs, so the runtime's own poller keeps working as usual for
// the reads that follow. Parking is for connections that have already
// been idle a while (the owner waits in Read first, see the callers), so
// the syscalls it costs are not paid per request.
package netpoll

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Waiter states.
const (
	armed  int32 = iota
	firing       // the poller is removing the socket before starting fn
	fired
	stopped
)

// Waiter is one parked socket.
type Waiter struct {
	p     *Poller
	fd    int
	slot  int32
	gen   int32
	fn    func()
	state atomic.Int32
}

// Poller is an epoll instance with one goroutine waiting on it.
type Poller struct {
	epfd int

	mu    sync.Mutex
	slots []*Waiter // indexed by the slot carried in the epoll event
	free  []int32
	gen   int32
	// parked counts armed waiters, for tests and stats.
	parked atomic.Int64
}

var (
	defaultOnce   sync.Once
	defaultPoller *Poller
	defaultErr    error
)

// Default returns the process's poller, starting it on first use.
func Default() (*Poller, error) {
	defaultOnce.Do(func() { defaultPoller, defaultErr = New() })
	return defaultPoller, defaultErr
}

// New starts a poller. Pollers live as long as the process.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create1: %w", err)
	}
	p := &Poller{epfd: epfd}
	go p.loop()
	return p, nil
}

// Parked is the number of sockets currently waited on.
func (p *Poller) Parked() int64 { return p.parked.Load() }

// ErrNotSocket is returned for a connection whose descriptor cannot be had.
var ErrNotSocket = errors.New("netpoll: connection exposes no file descriptor")

// Wait parks c: fn runs once, on a new goroutine, when c's socket becomes
// readable, is hung up or fails. The caller must not read c until fn runs
// or Stop returns true, and must call Stop before closing c (a closed
// descriptor's number can be reused by another socket).
func (p *Poller) Wait(c syscall.Conn, fn func()) (*Waiter, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, ErrNotSocket
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return nil, fmt.Errorf("netpoll: %w", err)
	}
	w := &Waiter{p: p, fd: fd, fn: fn}
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		w.slot = p.free[n-1]
		p.free = p.free[:n-1]
		p.slots[w.slot] = w
	} else {
		w.slot = int32(len(p.slots))
		p.slots = append(p.slots, w)
	}
	p.gen++
	w.gen = p.gen
	p.mu.Unlock()
	p.parked.Add(1)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: w.slot, Pad: w.gen}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.release(w)
		return nil, fmt.Errorf("netpoll: epoll_ctl add: %w", err)
	}
	return w, nil
}

// Stop cancels the wait. It reports true when fn will not run (the caller
// owns the connection again), false when fn has been or is being started.
// Either way the socket is out of the poller when Stop returns, so the
// connection may then be closed.
func (w *Waiter) Stop() bool {
	if !w.state.CompareAndSwap(armed, stopped) {
		for w.state.Load() == firing {
			runtime.Gosched()
		}
		return false
	}
	unix.EpollCtl(w.p.epfd, unix.EPOLL_CTL_DEL, w.fd, nil)
	w.p.release(w)
	return true
}

func (p *Poller) release(w *Waiter) {
	p.parked.Add(-1)
	p.mu.Lock()
	if p.slots[w.slot] == w {
		p.slots[w.slot] = nil
		p.free = append(p.free, w.slot)
	}
	p.mu.Unlock()
}

func (p *Poller) loop() {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			// Only a broken epoll descriptor gets here; nothing can
			// be waited on any more.
			panic(fmt.Sprintf("netpoll: epoll_wait: %v", err))
		}
		for i := range events[:n] {
			p.fire(events[i].Fd, events[i].Pad)
		}
	}
}

func (p *Poller) fire(slot, gen int32) {
	p.mu.Lock()
	var w *Waiter
	if int(slot) < len(p.slots) {
		w = p.slots[slot]
	}
	p.mu.Unlock()
	// A stale event (the waiter stopped, its slot reused) carries an old
	// generation.
	if w == nil || w.gen != gen || !w.state.CompareAndSwap(armed, firing) {
		return
	}
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, w.fd, nil)
	w.state.Store(fired)
	p.release(w)
	go w.fn()
}
