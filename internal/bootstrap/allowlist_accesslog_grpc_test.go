package bootstrap

import "testing"

// TestGrpcAccessLogsAccepted: the gRPC and OpenTelemetry access loggers as
// go-control-plane's test driver and Envoy's opentelemetry sandbox
// configure them pass the allowlist.
func TestGrpcAccessLogsAccepted(t *testing.T) {
	cfg := accessLogBootstrap(`
          - name: access-logger
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig
              common_config:
                log_name: echo
                transport_api_version: V3
                grpc_service: {envoy_grpc: {cluster_name: als_cluster}, timeout: 1s}
                buffer_size_bytes: 1024
                buffer_flush_interval: 0.5s
              additional_request_headers_to_log: [x-a]
              additional_response_headers_to_log: [x-b]
              additional_response_trailers_to_log: [grpc-status]
          - typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig
              common_config: {log_name: tcp, grpc_service: {envoy_grpc: {cluster_name: als_cluster}}}
          - typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig
              common_config: {log_name: otel, grpc_service: {envoy_grpc: {cluster_name: otel}}}
              body: {string_value: "%REQ(:METHOD)%"}
              attributes: {values: [{key: a, value: {kvlist_value: {values: [{key: b, value: {string_value: "%PROTOCOL%"}}]}}}]}
              resource_attributes: {values: [{key: region, value: {string_value: eu}}]}
`)
	if _, err := Load(Options{ConfigYAML: cfg}); err != nil {
		t.Fatal(err)
	}
}
