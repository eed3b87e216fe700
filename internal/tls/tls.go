// Package tls turns Envoy's DownstreamTlsContext and UpstreamTlsContext into
// crypto/tls configurations.
package tls

import (
	"crypto/tls"
	"errors"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// ServerConfig builds the listener side. ALPN from the context is kept as
// given; the connection manager adds h2/http/1.1 when the context lists none.
func ServerConfig(ctx *tlsv3.DownstreamTlsContext) (*tls.Config, error) {
	return nil, errors.New("tls: not implemented")
}

// ClientConfig builds the upstream side; sni is UpstreamTlsContext.sni.
func ClientConfig(ctx *tlsv3.UpstreamTlsContext) (*tls.Config, error) {
	return nil, errors.New("tls: not implemented")
}
