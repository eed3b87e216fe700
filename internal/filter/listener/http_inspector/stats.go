package http_inspector

import "github.com/legate-proxy/legate/internal/stats"

// Stats are Envoy's, under http_inspector.
type Stats struct {
	HTTP10, HTTP11, HTTP2, NotFound, ReadError *stats.Counter
}

func newStats(st *stats.Store) *Stats {
	sc := st.Scope("http_inspector")
	return &Stats{
		HTTP10: sc.Counter("http10_found"), HTTP11: sc.Counter("http11_found"), HTTP2: sc.Counter("http2_found"),
		NotFound: sc.Counter("http_not_found"), ReadError: sc.Counter("read_error"),
	}
}
