package bootstrap

// Filter chain matching, listener filters (internal/listener,
// internal/listenerfilter, internal/filter/listener/*), listener-level
// socket settings, and the overload manager (internal/overload).

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/proxy_protocol/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
)

const (
	typeTLSInspector   = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
	typeHTTPInspector  = "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
	typeProxyProtocol  = "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"
	typeOriginalDst    = "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
	typeFixedHeap      = "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig"
	typeDownstreamConn = "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"
)

func init() {
	extendFields("envoy.config.bootstrap.v3.Bootstrap",
		field{Name: "overload_manager", Note: "see Overload manager below"})
	extendFields("envoy.config.listener.v3.Listener",
		field{Name: "default_filter_chain", Note: "serves connections no filter chain matches; without it they are closed and counted in `listener.<stat_prefix>.no_filter_chain_match`"},
		field{Name: "listener_filters", Note: "run in order before the filter chain is chosen; a listener whose chains match on server_names, transport_protocol `tls` or application_protocols gets a TLS inspector when it has none, as in Envoy"},
		field{Name: "listener_filters_timeout", Note: "default 15 s, as in Envoy; 0 disables. A connection whose listener filters take longer is closed (`downstream_pre_cx_timeout`)"},
		field{Name: "continue_on_listener_filters_timeout", Note: "on the timeout, choose the filter chain with what the filters found so far"},
		field{Name: "enable_reuse_port", Note: "true sets SO_REUSEPORT (other processes may bind the address too); unset or false does not: Legate has one accept queue per listener and no worker threads to spread it over, so Envoy's default of true would only let a second process share the port silently"},
		field{Name: "connection_balance_config", Note: "exact_balance accepted with no effect: one accept loop hands connections to goroutines, already balanced"},
		field{Name: "bypass_overload_manager", Note: "the overload manager's connection actions do not apply to the listener"},
		field{Name: "ignore_global_conn_limit", Note: "the listener's connections are not counted against the global connection limit"},
		field{Name: "socket_options", Note: "applied to the listening socket in their state (STATE_PREBIND, STATE_BOUND, STATE_LISTENING); datagram-only options are skipped"},
		field{Name: "traffic_direction", Note: "OUTBOUND: the connection manager's tracing spans are CLIENT spans and the default OpenTelemetry operation is `egress`; INBOUND and unset: SERVER, `ingress`, as in Envoy"},
	)
	extendFields("envoy.config.listener.v3.FilterChain",
		field{Name: "filter_chain_match", Note: "criteria in Envoy's order: destination_port, prefix_ranges, server_names, transport_protocol, application_protocols, direct_source_prefix_ranges, source_type, source_prefix_ranges, source_ports; the most specific entry that matches wins at each step and the match never goes back a step; two chains with the same criteria are an error"},
		field{Name: "name", Note: "unique per listener; a filter-chain-only update keeps the connections of the chains it leaves unchanged (`listener_manager.listener_in_place_updated`)"},
	)
	extendFields("envoy.config.core.v3.Address", field{Name: "pipe", Note: "listeners only: a unix domain socket path (a stale socket file is replaced) or an abstract name `@name`"})
	addMessages("Listeners", "",
		message{"envoy.config.listener.v3.FilterChainMatch", fs(
			field{Name: "destination_port", Note: "the connection's local port (original_dst or a PROXY header may restore it)"},
			field{Name: "prefix_ranges", Note: "the local address; longest prefix wins"},
			"direct_source_prefix_ranges", "source_type", "source_prefix_ranges", "source_ports",
			field{Name: "server_names", Note: "exact names, then the longest `*.suffix` wildcard; case-insensitive; partial wildcards are refused"},
			field{Name: "transport_protocol", Note: "`tls` from the TLS inspector, else `raw_buffer`"},
			field{Name: "application_protocols", Note: "the ClientHello's ALPN (TLS inspector) or `http/1.1`, `http/1.0`, `h2c` (HTTP inspector)"},
		)},
		message{"envoy.config.listener.v3.ListenerFilter", fs("name", field{Name: "typed_config",
			Types: []string{typeTLSInspector, typeHTTPInspector, typeProxyProtocol, typeOriginalDst}})},
		message{"envoy.config.listener.v3.Listener.ConnectionBalanceConfig", fs("exact_balance")},
		message{"envoy.config.listener.v3.Listener.ConnectionBalanceConfig.ExactBalance", nil},
		message{"envoy.config.core.v3.SocketOption", fs("description", "level", "name", "int_value", "buf_value", "state", "type")},
		message{"envoy.config.core.v3.SocketOption.SocketType", fs("stream", "datagram")},
		message{"envoy.config.core.v3.SocketOption.SocketType.Stream", nil},
		message{"envoy.config.core.v3.SocketOption.SocketType.Datagram", nil},
		message{"envoy.config.core.v3.Pipe", fs("path", field{Name: "mode", Note: "file mode of the socket; default as the umask leaves it"})},
	)
	addMessages("Listener filters",
		"Listener filters run on an accepted connection before its filter chain is chosen; the bytes they read are "+
			"read again by the chain.",
		message{typeTLSInspector, fs(
			field{Name: "max_client_hello_size", Note: "default and at most 64 KiB; a larger ClientHello closes the connection (`tls_inspector.client_hello_too_large`)"},
			field{Name: "close_connection_on_client_hello_parsing_errors", Note: "default false: a malformed ClientHello is treated as not TLS"},
			field{Name: "initial_read_buffer_size", Note: "accepted; reads grow as needed"},
		)},
		message{typeHTTPInspector, nil},
		message{typeOriginalDst, nil},
		message{typeProxyProtocol, fs(
			field{Name: "rules", Note: "TLV values into dynamic metadata"},
			field{Name: "allow_requests_without_proxy_protocol", Note: "a connection without a header goes on with its socket's addresses"},
			"disallowed_versions",
			field{Name: "stat_prefix", Note: "stats `proxy_proto.[<stat_prefix>.]…`"},
			field{Name: "tlv_location", Enum: []string{"DYNAMIC_METADATA"}},
		)},
		message{"envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol.Rule", fs("tlv_type", "on_tlv_present")},
		message{"envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol.KeyValuePair", fs(
			field{Name: "metadata_namespace", Note: "default `envoy.filters.listener.proxy_protocol`"}, "key", "value_string_encoding")},
	)
	addMessages("Overload manager",
		"Resource monitors measured every refresh_interval; actions fire while a trigger's threshold is reached. "+
			"Stats `overload.<monitor>.pressure` (percent), `overload.<action>.active`, `overload.<action>.scale_percent`.",
		message{"envoy.config.overload.v3.OverloadManager", fs(field{Name: "refresh_interval", Note: "default 1 s"}, "resource_monitors", "actions")},
		message{"envoy.config.overload.v3.ResourceMonitor", fs("name", field{Name: "typed_config", Types: []string{typeFixedHeap, typeDownstreamConn}})},
		message{typeFixedHeap, fs(field{Name: "max_heap_size_bytes", Note: "against the Go heap the process holds from the OS (released pages excluded)"})},
		message{typeDownstreamConn, fs(field{Name: "max_active_downstream_connections", Note: "open downstream connections of all listeners; one more is closed on accept (`listener.<stat_prefix>.downstream_global_cx_overflow`)"})},
		message{"envoy.config.overload.v3.OverloadAction", fs(
			field{Name: "name", Note: "`envoy.overload_actions.shrink_heap` (free memory returned to the OS every 10 s while active), `stop_accepting_requests` (503 `envoy overloaded`, flag OM, `downstream_rq_overload_close`), `disable_http_keepalive` (HTTP/1.1 responses close), `stop_accepting_connections` (new connections wait in the kernel's queue), `reject_incoming_connections` (closed on accept, `downstream_cx_overload_reject`)"},
			"triggers")},
		message{"envoy.config.overload.v3.Trigger", fs("name", field{Name: "threshold", Note: "scaled triggers are refused"})},
		message{"envoy.config.overload.v3.ThresholdTrigger", fs("value")},
	)
	runtimeKeys = append(runtimeKeys,
		runtimeKey{"overload.global_downstream_max_connections", "maximum open downstream connections of all listeners together (deprecated in Envoy for the downstream connections resource monitor, which wins when both are set)"})
}
