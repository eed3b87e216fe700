package buffer

import (
	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/stats"
)

// stats are the counters the filter moves. Envoy's v3 buffer filter has
// none of its own: a body past the limit counts in the connection
// manager's http.<stat_prefix>.downstream_rq_too_large, as in Envoy.
type filterStats struct {
	rqTooLarge *stats.Counter
}

func newStats(fc *httpfilter.FactoryContext) filterStats {
	return filterStats{rqTooLarge: fc.Stats.Scope(fc.StatPrefix).Counter("downstream_rq_too_large")}
}
