package bootstrap

// The TCP proxy network filter (internal/filter/network/tcp_proxy) and the
// listener-level access log (internal/listener). The AccessLog message
// itself is allowlisted with the access loggers (allowlist_accesslog.go).

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

const typeTCPProxy = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

func init() {
	extendTypes("envoy.config.listener.v3.Filter", "typed_config", typeTCPProxy)
	extendFields("envoy.config.listener.v3.Listener",
		field{Name: "access_log", Note: "one entry per downstream connection, when it closes; with tcp_proxy it shows the upstream host, bytes and flags"})
	addMessages("TCP proxy",
		"A terminal network filter: each downstream connection is proxied to one upstream connection, "+
			"half-closes passed on both ways.",
		message{typeTCPProxy, fs(
			field{Name: "stat_prefix", Note: "stats under `tcp.<stat_prefix>.`"},
			field{Name: "cluster", Note: "a cluster unknown at startup refuses connections (`downstream_cx_no_route`, flag NC), as in Envoy"},
			"weighted_clusters",
			field{Name: "idle_timeout", Note: "default 1 h; 0 disables"},
			field{Name: "max_connect_attempts", Note: "default 1; retries prefer hosts not tried yet"},
			field{Name: "access_log", Note: "one entry per connection, when it closes; flags NC, UH, UF, URX"},
		)},
		message{"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster", fs("clusters")},
		message{"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight", fs("name", field{Name: "weight", Note: "at least 1"})},
	)
}
