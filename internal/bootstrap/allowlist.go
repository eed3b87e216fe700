package bootstrap

// This file is the single source of truth for what Legate accepts from an
// Envoy v3 configuration. The support check (CheckResource) enforces it and
// docs/compatibility.md is generated from it, so the two cannot drift apart.
// Anything not listed here is rejected with an error naming its path.

import (
	// The extension types Legate implements must be linked so that their
	// typed_config can be parsed. Types not listed here are deliberately not
	// linked: the parser's resolver turns them into "<type> is not supported".
	_ "github.com/cncf/xds/go/udpa/type/v1"
	_ "github.com/cncf/xds/go/xds/type/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/network/dns_resolver/cares/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// Extension types, by proto full name (the part of a type URL after the last '/').
const (
	typeHCM           = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	typeRouter        = "envoy.extensions.filters.http.router.v3.Router"
	typeDownstreamTLS = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	typeUpstreamTLS   = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	typeHTTPOptions   = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	typeCares         = "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig"
	typePreviousHosts = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"

	// Wrappers that carry another type's config as a Struct; always unwrapped.
	typeXDSTypedStruct  = "xds.type.v3.TypedStruct"
	typeUDPATypedStruct = "udpa.type.v1.TypedStruct"
)

// field is one allowed field of a message.
type field struct {
	Name string
	// Enum, if set, lists the allowed enum value names; other values are rejected.
	Enum []string
	// Types, if set, lists the typed_config types allowed in the first Any at or
	// below this field (the Any itself, or e.g. TransportSocket.typed_config).
	Types []string
	// Keys, if set, lists the allowed keys of a map field.
	Keys []string
	// Tokens, if set, lists the allowed items of a comma-separated string.
	Tokens []string
	// Note is shown in docs/compatibility.md (defaults, caveats).
	Note string
}

// message lists the fields Legate supports in one proto message.
type message struct {
	Name   string // proto full name
	Fields []field
}

// area groups messages into a section of docs/compatibility.md.
type area struct {
	Title    string
	Intro    string
	Messages []message
}

// fs builds a field list: a string is a plain field, a field is taken as is.
func fs(items ...any) []field {
	out := make([]field, 0, len(items))
	for _, it := range items {
		switch v := it.(type) {
		case string:
			out = append(out, field{Name: v})
		case field:
			out = append(out, v)
		default:
			panic("bootstrap: bad allowlist item")
		}
	}
	return out
}

var headerMutation = []any{"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"}

func withHeaders(items ...any) []field { return fs(append(items, headerMutation...)...) }

// allowlist is the data: every message Legate reads, with the fields it honours.
var allowlist = []area{
	{
		Title: "Bootstrap",
		Intro: "The top-level `envoy.config.bootstrap.v3.Bootstrap`: static resources, and dynamic ones (see Dynamic configuration below).",
		Messages: []message{
			{"envoy.config.bootstrap.v3.Bootstrap", fs("node", "static_resources", "admin", "layered_runtime")},
			{"envoy.config.core.v3.Node", fs("id", "cluster", "metadata")},
			{"envoy.config.bootstrap.v3.Bootstrap.StaticResources", fs("listeners", "clusters")},
			{"envoy.config.bootstrap.v3.Admin", fs("address", field{Name: "access_log_path", Note: "deprecated in Envoy; accepted"})},
			{"envoy.config.bootstrap.v3.LayeredRuntime", fs("layers")},
			{"envoy.config.bootstrap.v3.RuntimeLayer", fs("name", field{Name: "static_layer", Note: "only static layers; see runtime keys below"})},
		},
	},
	{
		Title: "Listeners",
		Intro: "Listeners on IPv4/IPv6 TCP addresses, static or from LDS.",
		Messages: []message{
			{"envoy.config.listener.v3.Listener", fs("name", "address", "filter_chains",
				field{Name: "per_connection_buffer_limit_bytes", Note: bufferLimitNote}, "stat_prefix",
				field{Name: "drain_type", Note: "DEFAULT also drains while /healthcheck/fail is in effect"})},
			{"envoy.config.listener.v3.FilterChain", fs("filters", field{Name: "transport_socket", Types: []string{typeDownstreamTLS}})},
			{"envoy.config.listener.v3.Filter", fs("name", field{Name: "typed_config", Types: []string{typeHCM}})},
			{"envoy.config.core.v3.Address", fs("socket_address")},
			{"envoy.config.core.v3.SocketAddress", fs("address", "port_value", field{Name: "protocol", Enum: []string{"TCP"}},
				field{Name: "ipv4_compat", Note: "without it an IPv6 listener is IPv6-only, as in Envoy"})},
			{"envoy.config.core.v3.TransportSocket", fs("name", field{Name: "typed_config", Note: "type depends on where the socket is used"})},
		},
	},
	{
		Title: "HTTP connection manager",
		Intro: "HTTP/1.1 and HTTP/2 (cleartext prior knowledge, or ALPN over TLS); HTTP filters are listed under HTTP filters.",
		Messages: []message{
			{typeHCM, fs(
				field{Name: "codec_type", Enum: []string{"AUTO", "HTTP1", "HTTP2"}},
				"stat_prefix", "route_config", "http_filters", "server_name", "server_header_transformation",
				"use_remote_address", "xff_num_trusted_hops", "skip_xff_append",
				field{Name: "generate_request_id", Note: "default true"},
				"preserve_external_request_id", "common_http_protocol_options", "http2_protocol_options",
				field{Name: "stream_idle_timeout", Note: "default 5 min"},
				"request_timeout", field{Name: "request_headers_timeout", Note: "unset: the stream idle timeout bounds the header block"},
				field{Name: "drain_timeout", Note: "HTTP/2 drains with one graceful GOAWAY; in-flight streams finish"},
				field{Name: "max_request_headers_kb", Note: "default 60"},
				"upgrade_configs", "delayed_close_timeout",
			)},
			{"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", fs("name", field{Name: "typed_config", Types: []string{typeRouter}})},
			{typeRouter, fs("suppress_envoy_headers")},
			{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig", fs("upgrade_type", "enabled")},
			{"envoy.config.core.v3.HttpProtocolOptions", fs(
				field{Name: "idle_timeout", Note: "default 1 h downstream"},
				field{Name: "max_headers_count", Note: "default 100; downstream only, refused on clusters"},
				"headers_with_underscores_action")},
			{"envoy.config.core.v3.Http1ProtocolOptions", nil},
			{"envoy.config.core.v3.Http2ProtocolOptions", fs(field{Name: "max_concurrent_streams", Note: "downstream capped at 1000"},
				field{Name: "initial_stream_window_size", Note: "unset downstream: 1 MiB (Envoy: 256 MiB)"},
				field{Name: "initial_connection_window_size", Note: "unset downstream: 1 MiB"},
				field{Name: "max_outbound_frames", Note: "default 10000; downstream only"},
				field{Name: "max_outbound_control_frames", Note: "default 1000; downstream only"},
				field{Name: "max_consecutive_inbound_frames_with_empty_payload", Note: "default 1; downstream only"},
				field{Name: "max_inbound_priority_frames_per_stream", Note: "default 100; downstream only"},
				field{Name: "max_inbound_window_update_frames_per_data_frame_sent", Note: "default 10; downstream only"},
				field{Name: "stream_error_on_invalid_http_messaging", Note: "default false: a malformed request closes the connection; downstream only"},
				field{Name: "override_stream_error_on_invalid_http_message", Note: "overrides stream_error_on_invalid_http_messaging; downstream only"})},
		},
	},
	{
		Title: "Routing",
		Intro: "Inline `route_config`, or from RDS (`rds`); a `RouteConfiguration` received over RDS is checked against the same table.",
		Messages: []message{
			{"envoy.config.route.v3.RouteConfiguration", withHeaders("name", "virtual_hosts", "validate_clusters", "most_specific_header_mutations_wins",
				field{Name: "max_direct_response_body_size_bytes", Note: "default 4096"}, "ignore_port_in_host_matching")},
			{"envoy.config.route.v3.VirtualHost", withHeaders("name", "domains", "routes", "retry_policy")},
			{"envoy.config.route.v3.Route", withHeaders("name", "match", "route", "redirect", "direct_response")},
			{"envoy.config.route.v3.RouteMatch", fs("prefix", "path", "safe_regex", "path_separated_prefix", "case_sensitive", "headers", "query_parameters")},
			{"envoy.config.route.v3.HeaderMatcher", fs("name", "string_match",
				field{Name: "exact_match", Note: "deprecated in Envoy; accepted"},
				field{Name: "prefix_match", Note: "deprecated in Envoy; accepted"},
				field{Name: "suffix_match", Note: "deprecated in Envoy; accepted"},
				field{Name: "contains_match", Note: "deprecated in Envoy; accepted"},
				field{Name: "safe_regex_match", Note: "deprecated in Envoy; accepted"},
				"present_match", "range_match", "invert_match", "treat_missing_header_as_empty")},
			{"envoy.config.route.v3.QueryParameterMatcher", fs("name", "string_match", "present_match")},
			{"envoy.type.matcher.v3.StringMatcher", fs("exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case")},
			{"envoy.type.matcher.v3.RegexMatcher", fs("regex", "google_re2")},
			{"envoy.type.matcher.v3.RegexMatcher.GoogleRE2", nil},
			{"envoy.type.matcher.v3.RegexMatchAndSubstitute", fs("pattern", "substitution")},
			{"envoy.type.v3.Int64Range", fs("start", "end")},
			{"envoy.config.route.v3.RouteAction", fs("cluster", "cluster_header", "weighted_clusters",
				"cluster_not_found_response_code", "prefix_rewrite", "regex_rewrite", "host_rewrite_literal", "auto_host_rewrite",
				field{Name: "timeout", Note: "default 15 s, covers retries"},
				"idle_timeout", "retry_policy", "upgrade_configs")},
			{"envoy.config.route.v3.RouteAction.UpgradeConfig", fs("upgrade_type", "enabled")},
			{"envoy.config.route.v3.WeightedCluster", fs("clusters", field{Name: "total_weight", Note: "deprecated in Envoy; accepted"})},
			{"envoy.config.route.v3.WeightedCluster.ClusterWeight", withHeaders("name", "weight")},
			{"envoy.config.route.v3.RetryPolicy", fs(
				field{Name: "retry_on", Tokens: []string{"5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream", "retriable-status-codes"}},
				field{Name: "num_retries", Note: "default 1"},
				"per_try_timeout", "retry_back_off",
				field{Name: "retry_host_predicate", Types: []string{typePreviousHosts}},
				"host_selection_retry_max_attempts", "retriable_status_codes")},
			{"envoy.config.route.v3.RetryPolicy.RetryBackOff", fs(
				field{Name: "base_interval", Note: "default 25 ms"},
				field{Name: "max_interval", Note: "default 10 × base_interval"})},
			{"envoy.config.route.v3.RetryPolicy.RetryHostPredicate", fs("name", "typed_config")},
			{typePreviousHosts, nil},
			{"envoy.config.route.v3.RedirectAction", fs("https_redirect", "scheme_redirect", "host_redirect", "port_redirect",
				"path_redirect", "prefix_rewrite", "regex_rewrite", "response_code", "strip_query")},
			{"envoy.config.route.v3.DirectResponseAction", fs("status", "body")},
			{"envoy.config.core.v3.DataSource", fs("filename", "inline_bytes", "inline_string")},
			{"envoy.config.core.v3.HeaderValueOption", fs("header",
				field{Name: "append", Note: "deprecated in Envoy; accepted"},
				"append_action", "keep_empty_value")},
			{"envoy.config.core.v3.HeaderValue", fs("key", "value")},
		},
	},
	{
		Title: "Clusters",
		Intro: "Clusters, static or from CDS, with an inline `load_assignment` or their endpoints from EDS (`type: EDS`).",
		Messages: []message{
			{"envoy.config.cluster.v3.Cluster", fs("name", "alt_stat_name",
				field{Name: "type", Enum: []string{"STATIC", "STRICT_DNS", "LOGICAL_DNS"}},
				field{Name: "connect_timeout", Note: "default 5 s"},
				field{Name: "lb_policy", Enum: []string{"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"}},
				"least_request_lb_config", "load_assignment",
				field{Name: "dns_refresh_rate", Note: "default 5 s"},
				"respect_dns_ttl", "dns_lookup_family",
				field{Name: "typed_dns_resolver_config", Types: []string{typeCares}},
				field{Name: "dns_resolvers", Note: "deprecated in Envoy; accepted"},
				field{Name: "http2_protocol_options", Note: "deprecated in Envoy; accepted: the upstream speaks HTTP/2"},
				field{Name: "typed_extension_protocol_options", Keys: []string{typeHTTPOptions}, Types: []string{typeHTTPOptions}},
				field{Name: "transport_socket", Types: []string{typeUpstreamTLS}},
				field{Name: "per_connection_buffer_limit_bytes", Note: bufferLimitNote})},
			{"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig", fs("choice_count")},
			{"envoy.config.endpoint.v3.ClusterLoadAssignment", fs("cluster_name", "endpoints")},
			{"envoy.config.endpoint.v3.LocalityLbEndpoints", fs("lb_endpoints")},
			{"envoy.config.endpoint.v3.LbEndpoint", fs("endpoint", "load_balancing_weight")},
			{"envoy.config.endpoint.v3.Endpoint", fs("address", "hostname")},
			{"envoy.config.core.v3.TypedExtensionConfig", fs("name", field{Name: "typed_config", Note: "type depends on the enclosing field"})},
			{typeCares, fs("resolvers")},
			{typeHTTPOptions, fs("explicit_http_config", "common_http_protocol_options")},
			{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig", fs("http_protocol_options", "http2_protocol_options")},
		},
	},
	{
		Title: "TLS",
		Intro: "Downstream termination on listeners and upstream origination on clusters.",
		Messages: []message{
			{typeDownstreamTLS, fs("common_tls_context", "require_client_certificate")},
			{typeUpstreamTLS, fs("common_tls_context", "sni")},
			{"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext", fs("tls_certificates", "tls_params", "alpn_protocols", "validation_context")},
			{"envoy.extensions.transport_sockets.tls.v3.TlsCertificate", fs("certificate_chain", "private_key")},
			{"envoy.extensions.transport_sockets.tls.v3.TlsParameters", fs("tls_minimum_protocol_version", "tls_maximum_protocol_version", "cipher_suites")},
			{"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext", fs("trusted_ca")},
		},
	},
}

// runtimeKey is a layered_runtime key Legate reads.
type runtimeKey struct {
	Key, Meaning string
}

// runtimeKeys lists the runtime keys Legate honours; others are stored but unused.
var runtimeKeys = []runtimeKey{
	{"envoy.resource_limits.listener.<listener name>.connection_limit", "maximum concurrent connections on that listener; further connections are closed on accept"},
}

// notYetSupported is shown in docs/compatibility.md; these come in later issues.
var notYetSupported = []string{
	"xDS: REST config sources, `self` and `authorities` config sources, xDS-TP resource locators (`lds_resources_locator`, `cds_resources_locator`), VHDS, SRDS, ECDS, LEDS, `static_resources.secrets`.",
	"Active health checks (`health_checks`), outlier detection, circuit breakers (`circuit_breakers`).",
	"Other load balancers (locality weighting, priorities, `load_balancing_policy`) and cluster types (ORIGINAL_DST).",
	"Listener filters (`tls_inspector`, …), filter chain matching, and network filters other than the HTTP connection manager, the TCP proxy, `rbac`, `local_ratelimit`, `connection_limit` and `sni_cluster` (`redis_proxy`, `mongo_proxy`, `mysql_proxy`, `ext_authz`, `ratelimit`, …).",
	"HTTP filters other than the router (fault, local/global rate limit, CORS, gRPC-Web, Lua, …), request mirroring.",
	"HTTP/3, overload manager, runtime layers other than `static_layer`.",
}

// bufferLimitNote explains per_connection_buffer_limit_bytes: Legate
// streams bodies through fixed buffers instead of queueing them.
const bufferLimitNote = "accepted; bodies stream through fixed buffers (HTTP/1.1: 32 KiB per direction; HTTP/2: the flow-control windows), never queued whole, so no separate limit is applied"
