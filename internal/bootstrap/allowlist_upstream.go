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

func init() {
	extendEnum("envoy.config.cluster.v3.Cluster", "lb_policy", "RING_HASH", "MAGLEV")
	extendFields("envoy.config.cluster.v3.Cluster", "ring_hash_lb_config", "maglev_lb_config")
	addOrExtendMessages("Clusters",
		message{"envoy.config.cluster.v3.Cluster.RingHashLbConfig", fs(
			field{Name: "minimum_ring_size", Note: "default 1024; each host's point count is rounded up to a power of two, so the ring holds up to twice this and adding or removing a host moves only that host's keys"},
			field{Name: "maximum_ring_size", Note: "default 8M"},
			field{Name: "hash_function", Enum: []string{"XX_HASH"}})},
		message{"envoy.config.cluster.v3.Cluster.MaglevLbConfig", fs(field{Name: "table_size", Note: "default 65537; must be prime"})},
	)
}

func init() {
	extendFields("envoy.config.route.v3.RouteAction",
		field{Name: "hash_policy", Note: "used by RING_HASH and MAGLEV clusters; values hash with xxHash64 and combine as in Envoy"})
	addOrExtendMessages("Routing",
		message{"envoy.config.route.v3.RouteAction.HashPolicy", fs("header", "cookie", "connection_properties", "query_parameter", "filter_state", "terminal")},
		message{"envoy.config.route.v3.RouteAction.HashPolicy.Header", fs(field{Name: "header_name", Note: "several values hash in sorted order"})},
		message{"envoy.config.route.v3.RouteAction.HashPolicy.Cookie", fs("name",
			field{Name: "ttl", Note: "when set and the cookie is absent, one is generated and sent in Set-Cookie (0: a session cookie)"},
			"path", "attributes")},
		message{"envoy.config.route.v3.RouteAction.HashPolicy.CookieAttribute", fs("name", "value")},
		message{"envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties", fs(field{Name: "source_ip", Note: "the downstream address after x-forwarded-for processing"})},
		message{"envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter", fs("name")},
		message{"envoy.config.route.v3.RouteAction.HashPolicy.FilterState", fs(field{Name: "key", Note: "objects with a string form"})},
	)
}

func init() {
	extendFields("envoy.config.endpoint.v3.Endpoint",
		field{Name: "health_check_config", Note: "validated and kept for the active health checker (not yet implemented)"})
	addOrExtendMessages("Clusters",
		message{"envoy.config.endpoint.v3.Endpoint.HealthCheckConfig", fs("port_value", "hostname", "address", "disable_active_health_check")},
	)
}

func init() {
	extendFields(typeHTTPOptions,
		field{Name: "auto_config", Note: "ALPN offers h2 and http/1.1 and each connection speaks what the upstream chose; without TLS, HTTP/1.1"})
	addOrExtendMessages("Clusters",
		message{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig", fs("http_protocol_options", "http2_protocol_options")},
	)
}
