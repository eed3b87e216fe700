package tls_inspector

import "github.com/legate-proxy/legate/internal/stats"

// Stats are Envoy's, under tls_inspector.
type Stats struct {
	TLSFound, TLSNotFound, SNIFound, SNINotFound *stats.Counter
	ALPNFound, ALPNNotFound, TooLarge, ReadError *stats.Counter
}

func newStats(st *stats.Store) *Stats {
	sc := st.Scope("tls_inspector")
	return &Stats{
		TLSFound: sc.Counter("tls_found"), TLSNotFound: sc.Counter("tls_not_found"),
		SNIFound: sc.Counter("sni_found"), SNINotFound: sc.Counter("sni_not_found"),
		ALPNFound: sc.Counter("alpn_found"), ALPNNotFound: sc.Counter("alpn_not_found"),
		TooLarge: sc.Counter("client_hello_too_large"), ReadError: sc.Counter("read_error"),
	}
}
