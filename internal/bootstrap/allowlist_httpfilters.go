package bootstrap

// The HTTP filter contract (internal/httpfilter): per-route filter config
// on virtual hosts, routes and weighted clusters
// (internal/httpfilter/perroute), disabled and optional filters,
// local_reply_config, and the HTTP filters built on it: buffer
// (internal/filter/http/buffer).

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
)

const (
	typeBuffer         = "envoy.extensions.filters.http.buffer.v3.Buffer"
	typeBufferPerRoute = "envoy.extensions.filters.http.buffer.v3.BufferPerRoute"
	typeFilterConfig   = "envoy.config.route.v3.FilterConfig"
)

// perFilterConfigTypes are the types a typed_per_filter_config entry may
// have: FilterConfig, or a filter's per-route config.
var perFilterConfigTypes = []string{typeFilterConfig, typeBufferPerRoute}

const perFilterNote = "keyed by the filter's `name`; decoded and checked by the filter when the route configuration loads; " +
	"per filter, the most specific level wins (weighted cluster, route, virtual host)"

func init() {
	extendTypes("envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", "typed_config", typeBuffer)
	extendFields("envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
		field{Name: "disabled", Note: "the filter runs only on routes whose typed_per_filter_config has an entry for it that is not disabled; the terminal filter cannot be disabled"},
		field{Name: "is_optional", Note: "a filter of a type Legate does not know is skipped instead of refused"})
	extendFields(typeHCM, field{Name: "local_reply_config", Note: "applies to every local reply a stream gets (router errors, filters' replies, timeouts); not to replies for requests the codec refused before a stream existed"})
	for _, m := range []string{"envoy.config.route.v3.VirtualHost", "envoy.config.route.v3.Route", "envoy.config.route.v3.WeightedCluster.ClusterWeight"} {
		extendFields(m, field{Name: "typed_per_filter_config", Types: perFilterConfigTypes, Note: perFilterNote})
	}
	addMessages("HTTP filters",
		"`http_filters` is a list of filters ending in the router. Every local reply (the router's 404 NR and 503s, "+
			"filters' replies, timeouts) goes through `local_reply_config`; a gRPC request (content-type `application/grpc...`) "+
			"gets it as a trailers-only response, HTTP 200 with `grpc-status` (from the HTTP status, as Envoy maps it) and "+
			"`grpc-message`. Per-route filter config is decoded when the route configuration loads, so a bad one fails the "+
			"configuration or the RDS update. The filter chain of a request is decided by the route it first matched; a filter "+
			"that changes the request and clears the route cache changes the route the router follows, not the chain.",
		message{typeFilterConfig, fs(
			field{Name: "config", Types: []string{typeBufferPerRoute}},
			field{Name: "is_optional", Note: "a config of a type Legate does not know is ignored instead of refused"},
			field{Name: "disabled", Note: "the filter does not run on the route (config is ignored)"})},
		message{typeBuffer, fs(field{Name: "max_request_bytes", Note: "required; a larger body gets 413 and counts in `http.<stat_prefix>.downstream_rq_too_large`; the buffered request goes upstream with content-length"})},
		message{typeBufferPerRoute, fs("disabled", "buffer")},
		message{"envoy.extensions.filters.network.http_connection_manager.v3.LocalReplyConfig", fs(
			field{Name: "mappers", Note: "tried in order; the first whose filter matches rewrites the reply"},
			field{Name: "body_format", Note: "unset: the body as it is, text/plain"})},
		message{"envoy.extensions.filters.network.http_connection_manager.v3.ResponseMapper", fs(
			field{Name: "filter", Note: "an access log filter, evaluated with the reply's status"},
			"status_code", "body", "body_format_override")},
	)
}
