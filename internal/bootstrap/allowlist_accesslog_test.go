package bootstrap

import (
	"strings"
	"testing"
)

// accessLogBootstrap is a listener whose HCM carries accessLogs (YAML
// indented for the access_log list).
func accessLogBootstrap(accessLogs string) string {
	return `
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config: {virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          access_log:
` + accessLogs
}

func TestAccessLogAccepted(t *testing.T) {
	cfg := accessLogBootstrap(`
          - name: envoy.access_loggers.file
            filter:
              and_filter:
                filters:
                - status_code_filter: {comparison: {op: GE, value: {default_value: 400, runtime_key: al.status}}}
                - or_filter:
                    filters:
                    - duration_filter: {comparison: {op: GE, value: {default_value: 100, runtime_key: al.dur}}}
                    - response_flag_filter: {flags: [UF, URX]}
                    - header_filter: {header: {name: x-debug, string_match: {exact: "1"}}}
                    - not_health_check_filter: {}
                    - runtime_filter: {runtime_key: al.sample, percent_sampled: {numerator: 5, denominator: HUNDRED}, use_independent_randomness: true}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: /dev/null
              log_format:
                json_format: {code: "%RESPONSE_CODE%", nested: {path: "%REQ(:PATH)%"}}
                omit_empty_values: true
                json_format_options: {sort_properties: true}
          - typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: /dev/null
              typed_json_format: {code: "%RESPONSE_CODE%"}
          - typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: {text_format_source: {inline_string: "%RESPONSE_CODE%\n"}}
          - typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog
`)
	if _, err := Load(Options{ConfigYAML: cfg}); err != nil {
		t.Fatal(err)
	}
}

func TestAccessLogRejectsUnsupported(t *testing.T) {
	const al = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.access_log[0]"
	tests := []struct{ cfg, want string }{
		{`
          - filter: {traceable_filter: {}}
            typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog}`,
			al + ".filter.traceable_filter: field is not supported"},
		{`
          - filter: {grpc_status_filter: {statuses: [OK]}}
            typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog}`,
			al + ".filter.grpc_status_filter: field is not supported"},
		{`
          - typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: {text_format_source: {environment_variable: FMT}}`,
			al + ".typed_config.log_format.text_format_source.environment_variable: field is not supported"},
		{`
          - typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig
              common_config: {log_name: x, filter_state_objects_to_log: [foo], grpc_service: {envoy_grpc: {cluster_name: als}}}`,
			al + ".typed_config.common_config.filter_state_objects_to_log: field is not supported"},
	}
	for _, tt := range tests {
		_, err := Load(Options{ConfigYAML: accessLogBootstrap(tt.cfg)})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error = %v\nwant it to contain %q", err, tt.want)
		}
	}
}
