package listener

import (
	"sync/atomic"

	"github.com/legate-proxy/legate/internal/overload"
)

// Limits are what every listener of the server shares: the global
// downstream connection limit (the overload manager's
// envoy.resource_monitors.global_downstream_max_connections, or the
// overload.global_downstream_max_connections runtime key) and the
// overload actions that act on accepting.
type Limits struct {
	// Max is the global limit; 0 is none.
	Max atomic.Uint64
	// Open counts open downstream connections of listeners that do not
	// ignore the global limit.
	Open atomic.Int64
	// Overload is the overload manager's state; nil: no overload manager.
	Overload *overload.State
}

// acquire counts one more connection; false when that is over the limit.
func (g *Limits) acquire() bool {
	n := g.Open.Add(1)
	if m := g.Max.Load(); m > 0 && uint64(n) > m {
		g.Open.Add(-1)
		return false
	}
	return true
}

func (g *Limits) release() { g.Open.Add(-1) }
