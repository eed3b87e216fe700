package proxy_protocol

import "github.com/legate-proxy/legate/internal/stats"

// Stats are Envoy's, under proxy_proto.[<stat_prefix>.].
type Stats struct {
	NotFoundAllowed, NotFoundDisallowed *stats.Counter
	// Per version, indexed by version-1.
	Found, Disallowed, Error [2]*stats.Counter
}

func newStats(st *stats.Store, prefix string) *Stats {
	sc := st.Scope("proxy_proto")
	if prefix != "" {
		sc = sc.Scope(prefix)
	}
	s := &Stats{NotFoundAllowed: sc.Counter("not_found_allowed"), NotFoundDisallowed: sc.Counter("not_found_disallowed")}
	for i, v := range []string{"v1", "v2"} {
		vs := sc.Scope("versions").Scope(v)
		s.Found[i], s.Disallowed[i], s.Error[i] = vs.Counter("found"), vs.Counter("disallowed"), vs.Counter("error")
	}
	return s
}
