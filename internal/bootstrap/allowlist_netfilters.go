package bootstrap

// Network filter chains (internal/networkfilter) and the non-terminal
// network filters: rbac (internal/filter/network/rbac, engine in
// internal/rbac), local_ratelimit, connection_limit and sni_cluster.

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/connection_limit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/sni_cluster/v3"
)

const (
	typeNetworkRBAC     = "envoy.extensions.filters.network.rbac.v3.RBAC"
	typeLocalRateLimit  = "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit"
	typeConnectionLimit = "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit"
	typeSniCluster      = "envoy.extensions.filters.network.sni_cluster.v3.SniCluster"
)

const runtimeFlagNote = "read when the configuration loads (static runtime); unset: enabled"

func init() {
	extendTypes("envoy.config.listener.v3.Filter", "typed_config",
		typeNetworkRBAC, typeLocalRateLimit, typeConnectionLimit, typeSniCluster)
	addMessages("Network filters",
		"A filter chain's `filters` are non-terminal filters, which act when a connection starts and may see its "+
			"bytes both ways, followed by one terminal filter (the HTTP connection manager or the TCP proxy); a "+
			"terminal filter anywhere but last, or a non-terminal one last, is an error. An empty list closes the "+
			"chain's connections, as in Envoy. Dynamic metadata and filter state that filters set are seen by later "+
			"filters, by the HTTP connection manager's requests (which start from their connection's) and by "+
			"access logs (`%DYNAMIC_METADATA(ns:key)%`, `%FILTER_STATE(key)%`, `%FILTER_STATE(key:PLAIN)%`).",
		message{typeNetworkRBAC, fs(
			field{Name: "stat_prefix", Note: "stats `<stat_prefix>.rbac.allowed`, `.denied`, `.shadow_allowed`, `.shadow_denied`"},
			field{Name: "rules", Note: "unset: no enforcement"},
			field{Name: "shadow_rules", Note: "counted, and recorded as dynamic metadata `envoy.filters.network.rbac` `shadow_engine_result` and `shadow_effective_policy_id`; never enforced"},
			field{Name: "shadow_rules_stat_prefix", Note: "prefixes the shadow stats and metadata keys, as in Envoy"},
			field{Name: "enforcement_type", Enum: []string{"ONE_TIME_ON_FIRST_BYTE", "CONTINUOUS"},
				Note: "ONE_TIME_ON_FIRST_BYTE decides at connection start (TLS is already done then, so the result is the one the first byte would get; a denied connection never reaches the terminal filter) unless a policy reads dynamic metadata or filter state, which decides on the first byte as in Envoy; CONTINUOUS decides on every read"},
		)},
		message{"envoy.config.rbac.v3.RBAC", fs(field{Name: "action", Enum: []string{"ALLOW", "DENY", "LOG"},
			Note: "LOG allows and sets `envoy.common` `access_log_hint`"}, field{Name: "policies", Note: "tried in name order; the first match is the effective policy"})},
		message{"envoy.config.rbac.v3.Policy", fs(field{Name: "permissions", Note: "at least one"}, field{Name: "principals", Note: "at least one; CEL `condition` is refused"})},
		message{"envoy.config.rbac.v3.Permission", fs("and_rules", "or_rules", "any", "not_rule",
			field{Name: "destination_ip", Note: "the address the connection was accepted on"},
			"destination_port", field{Name: "destination_port_range", Note: "end exclusive"},
			field{Name: "requested_server_name", Note: "the SNI"},
			field{Name: "metadata", Note: "deprecated in Envoy; accepted"}, "sourced_metadata")},
		message{"envoy.config.rbac.v3.Permission.Set", fs("rules")},
		message{"envoy.config.rbac.v3.Principal", fs("and_ids", "or_ids", "any", "not_id",
			field{Name: "authenticated", Note: "a TLS connection; with principal_name its peer certificate's URI SAN, else DNS SAN, else subject (RFC 2253) must match"},
			field{Name: "source_ip", Note: "deprecated in Envoy; accepted: the connection's remote address"},
			field{Name: "direct_remote_ip", Note: "the socket's peer"},
			field{Name: "remote_ip", Note: "the connection's remote address at L4"},
			field{Name: "metadata", Note: "deprecated in Envoy; accepted"}, "sourced_metadata", "filter_state")},
		message{"envoy.config.rbac.v3.SourcedMetadata", fs("metadata_matcher",
			field{Name: "metadata_source", Enum: []string{"DYNAMIC"}, Note: "ROUTE needs the HTTP RBAC filter"})},
		message{"envoy.config.rbac.v3.Principal.Set", fs("ids")},
		message{"envoy.config.rbac.v3.Principal.Authenticated", fs("principal_name")},
		message{"envoy.type.v3.Int32Range", fs("start", "end")},
		message{"envoy.type.matcher.v3.MetadataMatcher", fs(field{Name: "filter", Note: "the dynamic metadata namespace"}, "path", "value", "invert")},
		message{"envoy.type.matcher.v3.MetadataMatcher.PathSegment", fs("key")},
		message{"envoy.type.matcher.v3.ValueMatcher", fs("null_match", "double_match", "string_match", "bool_match",
			field{Name: "present_match", Note: "true matches any value that is there"}, "list_match", "or_match")},
		message{"envoy.type.matcher.v3.ValueMatcher.NullMatch", nil},
		message{"envoy.type.matcher.v3.DoubleMatcher", fs(field{Name: "range", Note: "end exclusive"}, "exact")},
		message{"envoy.type.v3.DoubleRange", fs("start", "end")},
		message{"envoy.type.matcher.v3.ListMatcher", fs("one_of")},
		message{"envoy.type.matcher.v3.OrMatcher", fs("value_matchers")},
		message{"envoy.type.matcher.v3.FilterStateMatcher", fs("key",
			field{Name: "string_match", Note: "against the object's plain form"},
			field{Name: "address_match", Note: "the object's plain form must be an IP address"})},
		message{"envoy.type.matcher.v3.AddressMatcher", fs("ranges", "invert_match")},
		message{"xds.core.v3.CidrRange", fs("address_prefix", field{Name: "prefix_len", Note: "default 0, as in Envoy"})},
		message{typeLocalRateLimit, fs(
			field{Name: "stat_prefix", Note: "stat `local_rate_limit.<stat_prefix>.rate_limited`"},
			field{Name: "token_bucket", Note: "one bucket for all the connections of the filter's config, starting full and refilled continuously (Envoy's atomic bucket); a connection without a token is closed at once, flag URX"},
			field{Name: "runtime_enabled", Note: runtimeFlagNote})},
		message{"envoy.type.v3.TokenBucket", fs(field{Name: "max_tokens", Note: "at least 1"},
			field{Name: "tokens_per_fill", Note: "default 1"}, field{Name: "fill_interval", Note: "at least 50 ms"})},
		message{"envoy.config.core.v3.RuntimeFeatureFlag", fs("default_value", field{Name: "runtime_key", Note: "a boolean runtime value"})},
		message{typeConnectionLimit, fs(
			field{Name: "stat_prefix", Note: "stats `connection_limit.<stat_prefix>.limited_connections` and `.active_connections`"},
			field{Name: "max_connections", Note: "open connections of the filter's config; one more is closed before the terminal filter sees it"},
			field{Name: "delay", Note: "a refused connection is closed after it, unread; it holds its place in the count meanwhile, as in Envoy"},
			field{Name: "runtime_enabled", Note: runtimeFlagNote})},
		message{typeSniCluster, nil},
	)
	addOrExtendMessages("Network filters",
		message{"envoy.config.core.v3.CidrRange", fs("address_prefix", field{Name: "prefix_len", Note: "default 0, as in Envoy: the range then holds every address of its family"})},
	)
}
