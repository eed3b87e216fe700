package bootstrap

// gRPC access loggers (internal/accesslog/grpc.go, otel.go): the HTTP and
// TCP loggers of the gRPC access log service (envoy.service.accesslog.v3)
// and the OpenTelemetry (OTLP/gRPC logs) logger.
// GrpcService itself is listed with tracing (allowlist_tracing.go).

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/open_telemetry/v3"
)

const (
	typeHTTPGrpcAccessLog   = "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig"
	typeTCPGrpcAccessLog    = "envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig"
	typeCommonGrpcAccessLog = "envoy.extensions.access_loggers.grpc.v3.CommonGrpcAccessLogConfig"
	typeOTelAccessLog       = "envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig"
)

func init() {
	extendTypes("envoy.config.accesslog.v3.AccessLog", "typed_config", typeHTTPGrpcAccessLog, typeTCPGrpcAccessLog, typeOTelAccessLog)
	addMessages("Access logs", "",
		message{typeHTTPGrpcAccessLog, fs("common_config",
			field{Name: "additional_request_headers_to_log", Note: "into request.request_headers"},
			field{Name: "additional_response_headers_to_log", Note: "into response.response_headers"},
			field{Name: "additional_response_trailers_to_log", Note: "into response.response_trailers"})},
		message{typeTCPGrpcAccessLog, fs("common_config")},
		message{typeCommonGrpcAccessLog, fs(
			field{Name: "log_name", Note: "sent in the identifier of each stream's first message, with the node"},
			field{Name: "grpc_service", Note: "StreamAccessLogs; loggers with the same config share one stream, as in Envoy"},
			field{Name: "transport_api_version", Note: "V3 (or unset)"},
			field{Name: "buffer_flush_interval", Note: "default 1 s"},
			field{Name: "buffer_size_bytes", Note: "default 16384; a batch is sent once this size is reached, 0 sends every entry at once. " +
				"At most 4096 entries wait for the sender; beyond that they are dropped and counted in " +
				"`access_logs.grpc_access_log.logs_dropped` (sent entries in `logs_written`)"})},
		message{typeOTelAccessLog, fs(
			field{Name: "common_config", Note: "deprecated in Envoy; OTLP logs Export calls, batched as for gRPC access logs; default call timeout 5 s"},
			field{Name: "grpc_service", Note: "with log_name, buffer_flush_interval and buffer_size_bytes beside it: the same as common_config"},
			"log_name", "buffer_flush_interval", "buffer_size_bytes",
			field{Name: "body", Note: "string values are access log format strings; lists and maps are walked"},
			field{Name: "attributes", Note: "values formatted as body is"},
			field{Name: "resource_attributes", Note: "after the built-in labels"},
			field{Name: "disable_builtin_labels", Note: "the labels are log_name, zone_name (empty), cluster_name and node_name"})},
		message{"opentelemetry.proto.common.v1.AnyValue", fs("string_value", "bool_value", "int_value", "double_value", "array_value", "kvlist_value", "bytes_value")},
		message{"opentelemetry.proto.common.v1.ArrayValue", fs("values")},
		message{"opentelemetry.proto.common.v1.KeyValueList", fs("values")},
		message{"opentelemetry.proto.common.v1.KeyValue", fs("key", "value")},
	)
}
