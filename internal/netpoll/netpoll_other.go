//go:build !linux

// Package netpoll waits for idle sockets to become readable without a
// goroutine per socket; off Linux it is unavailable and callers keep a
// goroutine waiting in Read instead.
package netpoll

import (
	"errors"
	"syscall"
)

// ErrNotSocket is returned for a connection whose descriptor cannot be had.
var ErrNotSocket = errors.New("netpoll: connection exposes no file descriptor")

var errUnsupported = errors.New("netpoll: not supported on this platform")

// Poller is unavailable on this platform.
type Poller struct{}

// Waiter is unavailable on this platform.
type Waiter struct{}

// Default reports that parking is unsupported here.
func Default() (*Poller, error) { return nil, errUnsupported }

// Parked is 0.
func (p *Poller) Parked() int64 { return 0 }

// Wait fails: parking is unsupported here.
func (p *Poller) Wait(syscall.Conn, func()) (*Waiter, error) { return nil, errUnsupported }

// Stop reports true: nothing was waiting.
func (w *Waiter) Stop() bool { return true }
