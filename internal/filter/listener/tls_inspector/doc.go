// Package tls_inspector is Envoy's TLS inspector listener filter
// (type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector).
// It reads the connection's first bytes without consuming them; when they
// are a TLS ClientHello it sets the transport protocol "tls", the
// requested server name (SNI, lower case) and the ALPN list, which the
// filter chain match uses and the chain sees (TLS passthrough to tcp_proxy
// by SNI; sni_cluster). Anything else continues untouched, as in Envoy.
// Stats are Envoy's under tls_inspector.: tls_found, tls_not_found,
// sni_found, sni_not_found, alpn_found, alpn_not_found,
// client_hello_too_large, read_error.
package tls_inspector
