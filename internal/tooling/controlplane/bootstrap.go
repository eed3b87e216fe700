package controlplane

import "fmt"

// BootstrapOptions shape Bootstrap.
type BootstrapOptions struct {
	NodeID, NodeCluster string
	AdminPort, XDSPort  int
	Delta               bool // DELTA_GRPC rather than GRPC
	PerType             bool // CDS and LDS each on its own stream rather than ADS
}

// Bootstrap is a Legate (or Envoy) bootstrap that takes CDS and LDS from
// the xDS server on 127.0.0.1:XDSPort (legate-cp's --xds-address) through
// the static HTTP/2 cluster xds_cluster: the shape docs/control-plane.md
// shows.
func Bootstrap(o BootstrapOptions) string {
	api := "GRPC"
	if o.Delta {
		api = "DELTA_GRPC"
	}
	dyn := fmt.Sprintf(`dynamic_resources:
  ads_config:
    api_type: %s
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services:
    - envoy_grpc: {cluster_name: xds_cluster}
  cds_config: {ads: {}, resource_api_version: V3}
  lds_config: {ads: {}, resource_api_version: V3}
`, api)
	if o.PerType {
		src := fmt.Sprintf(`
    resource_api_version: V3
    api_config_source:
      api_type: %s
      transport_api_version: V3
      grpc_services:
      - envoy_grpc: {cluster_name: xds_cluster}`, api)
		dyn = "dynamic_resources:\n  cds_config:" + src + "\n  lds_config:" + src + "\n"
	}
	return fmt.Sprintf(`node:
  id: %q
  cluster: %q
admin:
  address:
    socket_address: {address: 127.0.0.1, port_value: %d}
%sstatic_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {address: 127.0.0.1, port_value: %d}
`, o.NodeID, o.NodeCluster, o.AdminPort, dyn, o.XDSPort)
}
