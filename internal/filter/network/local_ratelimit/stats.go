package local_ratelimit

import "github.com/legate-proxy/legate/internal/stats"

// Stats are Envoy's, under local_rate_limit.<stat_prefix>.
type Stats struct {
	RateLimited *stats.Counter
}

func newStats(st *stats.Store, prefix string) *Stats {
	sc := st.Scope("local_rate_limit").Scope(prefix)
	return &Stats{RateLimited: sc.Counter("rate_limited")}
}
