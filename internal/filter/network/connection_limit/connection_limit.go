package connection_limit

import (
	"sync/atomic"
	"time"

	"github.com/legate-proxy/legate/internal/networkfilter"
)

// Filter is a compiled connection limit. The count is one atomic shared by
// every connection of the config; the filter keeps no per-connection state
// and sees no bytes.
type Filter struct {
	networkfilter.PassThrough
	max     uint64
	delay   time.Duration
	enabled bool
	open    atomic.Uint64 // connections counted, refused ones included
	stats   *Stats
}

// Hooks: the filter acts when a connection starts and when it ends.
func (f *Filter) Hooks() networkfilter.Hooks { return networkfilter.HookClose }

// NewConn returns the shared filter.
func (f *Filter) NewConn(*networkfilter.Conn) networkfilter.Instance { return f }

// Stats returns the filter's stats.
func (f *Filter) Stats() *Stats { return f.stats }

// OnNewConnection counts the connection, and refuses it when it is one
// over the limit.
func (f *Filter) OnNewConnection(c *networkfilter.Conn) networkfilter.Status {
	if !f.enabled {
		return networkfilter.Continue
	}
	f.stats.ActiveConnections.Inc()
	// Compare and swap: concurrent connections never take more than
	// max places between them.
	for {
		n := f.open.Load()
		if n >= f.max {
			break
		}
		if f.open.CompareAndSwap(n, n+1) {
			return networkfilter.Continue
		}
	}
	f.stats.LimitedConnections.Inc()
	// A refused connection holds a place too until it closes (after the
	// delay), as in Envoy; OnClose gives it back.
	f.open.Add(1)
	c.CloseAfter(f.delay)
	return networkfilter.StopIteration
}

// OnClose uncounts the connection.
func (f *Filter) OnClose(*networkfilter.Conn) {
	if !f.enabled {
		return
	}
	f.open.Add(^uint64(0))
	f.stats.ActiveConnections.Dec()
}
