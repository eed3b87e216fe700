package local_ratelimit

import (
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/tokenbucket"
)

// Filter is a compiled local rate limit; it keeps no per-connection state
// and sees no bytes, so a connection costs it one atomic token take.
type Filter struct {
	networkfilter.PassThrough
	enabled bool
	bucket  *tokenbucket.Bucket
	stats   *Stats
}

// Hooks: the filter acts at connection start only.
func (f *Filter) Hooks() networkfilter.Hooks { return 0 }

// NewConn returns the shared filter.
func (f *Filter) NewConn(*networkfilter.Conn) networkfilter.Instance { return f }

// Stats returns the filter's stats.
func (f *Filter) Stats() *Stats { return f.stats }

// OnNewConnection takes a token or closes the connection.
func (f *Filter) OnNewConnection(c *networkfilter.Conn) networkfilter.Status {
	if !f.enabled || f.bucket.Take() {
		return networkfilter.Continue
	}
	f.stats.RateLimited.Inc()
	c.AddFlags(streaminfo.UpstreamRetryLimitExceeded)
	return networkfilter.StopIteration
}
