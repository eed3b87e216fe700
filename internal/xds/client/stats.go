package client

import (
	"hash/fnv"
	"time"

	"github.com/legate-proxy/legate/internal/stats"
)

// scopeStats are Envoy's subscription stats under one Watch.Stats scope.
// Several watches may share a scope; each response counts once per scope.
type scopeStats struct {
	attempt, success, rejected, failure, empty, initTimeout *stats.Counter
	updateTime, version                                     *stats.Gauge
}

func (c *Client) scopeStatsLocked(sc stats.Scope) *scopeStats {
	if s := c.scopes[sc]; s != nil {
		return s
	}
	s := &scopeStats{
		attempt:     sc.Counter("update_attempt"),
		success:     sc.Counter("update_success"),
		rejected:    sc.Counter("update_rejected"),
		failure:     sc.Counter("update_failure"),
		empty:       sc.Counter("update_empty"),
		initTimeout: sc.Counter("init_fetch_timeout"),
		updateTime:  sc.Gauge("update_time", stats.NeverImport),
		version:     sc.Gauge("version", stats.NeverImport),
	}
	c.scopes[sc] = s
	return s
}

func (s *scopeStats) accepted(version string, now time.Time) {
	s.success.Inc()
	s.updateTime.Set(now.UnixMilli())
	s.version.Set(versionHash(version))
}

// versionHash is the version gauge: Envoy publishes a 64-bit hash of
// version_info. FNV-1a is stable across runs; the top bit is cleared so
// the gauge reads as a positive number.
func versionHash(v string) int64 {
	if v == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(v))
	return int64(h.Sum64() &^ (1 << 63))
}

// scopeSet collects the distinct scopes one response touches.
type scopeSet []*scopeStats

func (ss *scopeSet) add(s *scopeStats) {
	if s == nil {
		return
	}
	for _, x := range *ss {
		if x == s {
			return
		}
	}
	*ss = append(*ss, s)
}
