package bootstrap

import (
	// Original IP detection extensions are typed_config in
	// HttpConnectionManager.original_ip_detection_extensions.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/http/original_ip_detection/custom_header/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/http/original_ip_detection/xff/v3"
)

const (
	typeXffDetection          = "envoy.extensions.http.original_ip_detection.xff.v3.XffConfig"
	typeCustomHeaderDetection = "envoy.extensions.http.original_ip_detection.custom_header.v3.CustomHeaderConfig"
)

// L7 request handling in the connection manager and router: path and host
// normalization before routing, who counts as internal, and the x-envoy-*
// request controls (internal/http/hcm, internal/filter/http/router).
func init() {
	extendFields(typeHCM,
		field{Name: "normalize_path", Note: "RFC 3986 dot segments and unreserved percent-decoding, '\\' read as '/'; " +
			"a path climbing above the root is 400 (Envoy clamps it to the root); unset: runtime http_connection_manager.normalize_path (default off)"},
		"merge_slashes",
		field{Name: "path_with_escaped_slashes_action", Enum: []string{"IMPLEMENTATION_SPECIFIC_DEFAULT", "KEEP_UNCHANGED", "REJECT_REQUEST", "UNESCAPE_AND_REDIRECT", "UNESCAPE_AND_FORWARD"},
			Note: "default KEEP_UNCHANGED, or runtime http_connection_manager.path_with_escaped_slashes_action"},
		"strip_matching_host_port", "strip_any_host_port",
		field{Name: "internal_address_config", Note: "unset or without cidr_ranges: RFC 1918, loopback and unique-local addresses are internal " +
			"(Envoy 1.33+ trusts none by default)"},
		field{Name: "original_ip_detection_extensions", Types: []string{typeXffDetection, typeCustomHeaderDetection},
			Note: "only with use_remote_address off; the first extension that finds an address wins"},
	)
	addMessages("HTTP connection manager", "",
		message{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.InternalAddressConfig", fs("unix_sockets", "cidr_ranges")},
		message{typeXffDetection, fs("xff_num_trusted_hops", "xff_trusted_cidrs", field{Name: "skip_xff_append", Note: "default true"})},
		message{"envoy.extensions.http.original_ip_detection.xff.v3.XffTrustedCidrs", fs("cidrs")},
		message{typeCustomHeaderDetection, fs("header_name", "allow_extension_to_set_address_as_trusted", "reject_with_status")},
		message{"envoy.type.v3.HttpStatus", fs("code")},
	)
	// CidrRange is listed by the network filters (allowlist_netfilters.go),
	// FractionalPercent by access logs (allowlist_accesslog.go).
	extendFields(typeRouter,
		field{Name: "strict_check_headers", Note: "an invalid value is 400 with details request_headers_failed_strict_check{<header>}, flag IH"},
		field{Name: "dynamic_stats", Note: "default true; off: no upstream_rq_<code>, upstream_rq_<n>xx, upstream_rq_time or alternate stat tree from the router"},
	)
	extendFields("envoy.config.route.v3.VirtualHost", "include_request_attempt_count", "include_attempt_count_in_response")
	extendFields("envoy.config.route.v3.RouteMatch", field{Name: "runtime_fraction", Note: "each request sampled independently; the runtime key is read when the table is built (static runtime)"})
	extendFields("envoy.config.listener.v3.Listener", field{Name: "traffic_direction", Enum: []string{"UNSPECIFIED", "INBOUND", "OUTBOUND"},
		Note: "OUTBOUND: the connection manager's spans are client (egress) spans; otherwise server (ingress) spans"})
	addMessages("Routing", "",
		message{"envoy.config.core.v3.RuntimeFractionalPercent", fs("default_value", "runtime_key")})
	runtimeKeys = append(runtimeKeys,
		runtimeKey{"http_connection_manager.normalize_path", "percentage of connection managers built with normalize_path on when the field is unset (default 0)"},
		runtimeKey{"http_connection_manager.path_with_escaped_slashes_action", "path_with_escaped_slashes_action (enum number) when the field is unset or IMPLEMENTATION_SPECIFIC_DEFAULT"},
		runtimeKey{"http_connection_manager.path_with_escaped_slashes_action_enabled", "percentage of connection managers that apply path_with_escaped_slashes_action (default 100)"},
	)
}
