package bootstrap

// Upstream connections (internal/upstream/dialer): how every connection to
// a cluster's host is opened.

func init() {
	extendFields("envoy.config.cluster.v3.Cluster",
		field{Name: "upstream_bind_config", Note: "applies to every connection to the cluster's hosts: proxied traffic and Legate's own (tracers, stat sinks, gRPC services)"})
	addOrExtendMessages("Clusters",
		message{"envoy.config.core.v3.BindConfig", fs(
			field{Name: "source_address", Note: "an IP address; port 0 or unset lets the kernel choose"},
			field{Name: "freebind", Note: "Linux: IP_FREEBIND / IPV6_FREEBIND"},
			"socket_options")},
		message{"envoy.config.core.v3.SocketOption", fs("description", "level", "name", "int_value", "buf_value",
			field{Name: "state", Note: "upstream: STATE_PREBIND and STATE_BOUND are both set before connect; STATE_LISTENING is refused"})},
	)
}
