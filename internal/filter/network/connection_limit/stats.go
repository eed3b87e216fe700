package connection_limit

import "github.com/legate-proxy/legate/internal/stats"

// Stats are Envoy's, under connection_limit.<stat_prefix>.
type Stats struct {
	LimitedConnections *stats.Counter
	ActiveConnections  *stats.Gauge
}

func newStats(st *stats.Store, prefix string) *Stats {
	sc := st.Scope("connection_limit").Scope(prefix)
	return &Stats{
		LimitedConnections: sc.Counter("limited_connections"),
		ActiveConnections:  sc.Gauge("active_connections", stats.Accumulate),
	}
}
