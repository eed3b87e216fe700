// Package sni_cluster is Envoy's SNI cluster network filter
// (type.googleapis.com/envoy.extensions.filters.network.sni_cluster.v3.SniCluster):
// it sets the connection's filter state envoy.tcp_proxy.cluster to the
// server name the client asked for (SNI), so that a later tcp_proxy sends
// the connection to the cluster of that name instead of its configured
// one. A connection without SNI is left alone.
//
// The SNI is the connection's RequestedServerName: from the handshake
// when the listener terminates TLS, from tls_inspector when it passes TLS
// through.
package sni_cluster

import (
	sniv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/sni_cluster/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/networkfilter"
)

func init() {
	networkfilter.Registry.Register(&sniv3.SniCluster{}, New)
}

// New is the network filter factory; the config has no fields.
func New(proto.Message, *networkfilter.FactoryContext) (networkfilter.Filter, error) {
	return &Filter{}, nil
}
