package bootstrap

import (
	// Tracing provider configs are typed_config in Tracing.Http.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
)

const (
	typeZipkin        = "envoy.config.trace.v3.ZipkinConfig"
	typeOpenTelemetry = "envoy.config.trace.v3.OpenTelemetryConfig"
)

// Tracing: the connection manager's tracing block, the Zipkin and
// OpenTelemetry providers (internal/tracing) and the route decorator.
func init() {
	extendFields(typeHCM, field{Name: "tracing", Note: "Zipkin and OpenTelemetry; see Tracing"})
	extendFields("envoy.config.route.v3.Route", field{Name: "decorator", Note: "names the span; see Tracing"})
	addMessages("Tracing",
		"HTTP tracing on the connection manager: Envoy's sampling decision (carried in `x-request-id`, "+
			"`x-envoy-force-trace`, `x-client-trace-id`), B3 and W3C propagation, Envoy's span tags, and batched "+
			"asynchronous export (flush every 5 s or at 5 spans; a full queue drops and counts spans in "+
			"`tracing.<provider>.spans_dropped`). The runtime keys `tracing.*` are not read.",
		message{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing", fs(
			field{Name: "client_sampling", Note: "default 100%"},
			field{Name: "random_sampling", Note: "default 100%, decided on x-request-id"},
			field{Name: "overall_sampling", Note: "default 100%"},
			"custom_tags",
			field{Name: "max_path_tag_length", Note: "default 256"},
			field{Name: "provider", Note: "required for tracing; without it nothing is traced"},
		)},
		message{"envoy.type.v3.Percent", fs("value")},
		message{"envoy.config.trace.v3.Tracing.Http", fs("name", field{Name: "typed_config", Types: []string{typeZipkin, typeOpenTelemetry}})},
		message{typeZipkin, fs(
			"collector_cluster", "collector_endpoint",
			field{Name: "collector_endpoint_version", Enum: []string{"HTTP_JSON", "HTTP_PROTO"}},
			field{Name: "trace_id_128bit", Note: "default false"},
			field{Name: "shared_span_context", Note: "default true"},
			field{Name: "collector_hostname", Note: "default: the collector cluster's name"},
			field{Name: "trace_context_option", Enum: []string{"USE_B3", "USE_B3_WITH_W3C_PROPAGATION"}},
			field{Name: "collector_service", Note: "takes precedence over collector_cluster/endpoint/hostname"},
			"timestamp_trace_ids",
		)},
		message{typeOpenTelemetry, fs(
			field{Name: "grpc_service", Note: "OTLP/gRPC; default export timeout 5 s"},
			field{Name: "http_service", Note: "OTLP/HTTP protobuf"},
			field{Name: "service_name", Note: `default "unknown_service:envoy"`},
			field{Name: "max_cache_size", Note: "export queue length, default 1024"},
			"set_telemetry_sdk_resource_attributes", "set_service_name_resource_attribute", "set_instrumentation_scope",
		)},
		message{"envoy.config.core.v3.GrpcService", fs("envoy_grpc", "google_grpc",
			field{Name: "timeout", Note: "per request (trace exports); xDS streams are long-lived and take none, as in Envoy"}, "initial_metadata")},
		message{"envoy.config.core.v3.GrpcService.EnvoyGrpc", fs("cluster_name", field{Name: "authority", Note: "default: the cluster name"})},
		message{"envoy.config.core.v3.GrpcService.GoogleGrpc", fs(
			field{Name: "target_uri", Note: "plaintext only"},
			field{Name: "stat_prefix", Note: "required by Envoy; accepted, no per-client stats are kept"})},
		message{"envoy.config.core.v3.HttpService", fs("http_uri", field{Name: "request_headers_to_add", Note: "header key/value, added to every report"})},
		message{"envoy.config.core.v3.HttpUri", fs(
			field{Name: "uri", Note: "a path, or a full URI whose authority becomes the Host header"},
			"cluster",
			field{Name: "timeout", Note: "0 or unset: 5 s"})},
		message{"envoy.type.tracing.v3.CustomTag", fs("tag", "literal", "environment", "request_header",
			field{Name: "metadata", Note: "Legate has no route/cluster/host or dynamic metadata, so the default_value is used"})},
		message{"envoy.type.tracing.v3.CustomTag.Literal", fs("value")},
		message{"envoy.type.tracing.v3.CustomTag.Environment", fs("name", field{Name: "default_value", Note: "the variable is read once, at config load"})},
		message{"envoy.type.tracing.v3.CustomTag.Header", fs("name", "default_value")},
		message{"envoy.type.tracing.v3.CustomTag.Metadata", fs("kind", "metadata_key", "default_value")},
		message{"envoy.type.metadata.v3.MetadataKind", fs("request", "route", "cluster", "host")},
		message{"envoy.type.metadata.v3.MetadataKind.Request", nil},
		message{"envoy.type.metadata.v3.MetadataKind.Route", nil},
		message{"envoy.type.metadata.v3.MetadataKind.Cluster", nil},
		message{"envoy.type.metadata.v3.MetadataKind.Host", nil},
		message{"envoy.type.metadata.v3.MetadataKey", fs("key", "path")},
		message{"envoy.type.metadata.v3.MetadataKey.PathSegment", fs("key")},
		message{"envoy.config.route.v3.Decorator", fs("operation", field{Name: "propagate", Note: "default true"})},
	)
}
