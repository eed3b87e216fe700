package bootstrap

// Access logs (internal/accesslog): the AccessLog message, its filters and
// the file, stdout and stderr loggers. HttpConnectionManager.access_log is
// added here; Listener.access_log and TcpProxy.access_log are added with the
// TCP proxy (allowlist_tcpproxy.go) and share everything below.

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
)

const (
	typeFileAccessLog   = "envoy.extensions.access_loggers.file.v3.FileAccessLog"
	typeStdoutAccessLog = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
	typeStderrAccessLog = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
)

const accessLogComparisonNote = "runtime_key is read when the configuration loads (static runtime)"

func init() {
	extendFields(typeHCM, field{Name: "access_log", Note: "one entry per request, after the response completes"})
	addMessages("Access logs",
		"`access_log` on the HTTP connection manager, the TCP proxy and listeners. Lines are formatted on the "+
			"request's goroutine and written by one buffered writer per file, flushed every second or at 64 KiB; "+
			"a full buffer (4 MiB per file) drops lines and counts them in `filesystem.write_dropped`. "+
			"A file that cannot be opened fails the configuration, as in Envoy; later write and reopen failures "+
			"are logged and counted (`filesystem.write_failed`, `filesystem.reopen_failed`), never fatal. "+
			"`POST /reopen_logs` reopens every file (log rotation).",
		message{"envoy.config.accesslog.v3.AccessLog", fs("name", "filter",
			field{Name: "typed_config", Types: []string{typeFileAccessLog, typeStdoutAccessLog, typeStderrAccessLog}})},
		message{typeFileAccessLog, fs("path",
			field{Name: "format", Note: "deprecated in Envoy; empty means the default format"},
			field{Name: "json_format", Note: "deprecated in Envoy; every value rendered as a string"},
			field{Name: "typed_json_format", Note: "deprecated in Envoy"},
			field{Name: "log_format", Note: "unset: Envoy's default format"})},
		message{typeStdoutAccessLog, fs("log_format")},
		message{typeStderrAccessLog, fs("log_format")},
		message{"envoy.config.core.v3.SubstitutionFormatString", fs(
			field{Name: "text_format", Note: "deprecated in Envoy; accepted"},
			field{Name: "text_format_source", Note: "inline_string, inline_bytes or filename, read at load time"},
			field{Name: "json_format", Note: "keys sorted; a value that is one command operator keeps its type (numbers for codes, sizes, durations); missing values are null"},
			"omit_empty_values",
			field{Name: "content_type", Note: "a local reply's content-type (default text/plain, application/json for json_format); no effect on access logs"},
			field{Name: "json_format_options", Note: "keys are always sorted"})},
		message{"envoy.config.core.v3.JsonFormatOptions", fs("sort_properties")},
		message{"envoy.config.accesslog.v3.AccessLogFilter", fs("status_code_filter", "duration_filter",
			field{Name: "not_health_check_filter", Note: "Legate has no health check filter: every request passes"},
			"runtime_filter", "and_filter", "or_filter", "header_filter", "response_flag_filter")},
		message{"envoy.config.accesslog.v3.StatusCodeFilter", fs("comparison")},
		message{"envoy.config.accesslog.v3.DurationFilter", fs("comparison")},
		message{"envoy.config.accesslog.v3.ComparisonFilter", fs("op", field{Name: "value", Note: accessLogComparisonNote})},
		message{"envoy.config.core.v3.RuntimeUInt32", fs("default_value", "runtime_key")},
		message{"envoy.config.accesslog.v3.NotHealthCheckFilter", nil},
		message{"envoy.config.accesslog.v3.AndFilter", fs("filters")},
		message{"envoy.config.accesslog.v3.OrFilter", fs("filters")},
		message{"envoy.config.accesslog.v3.HeaderFilter", fs(field{Name: "header", Note: "matched as route header matchers are; a TCP connection has no headers"})},
		message{"envoy.config.accesslog.v3.ResponseFlagFilter", fs(field{Name: "flags", Note: "empty: any flag; flags Legate never sets never match"})},
		message{"envoy.config.accesslog.v3.RuntimeFilter", fs(
			field{Name: "runtime_key", Note: "an integer value is a percentage; a {numerator, denominator} value a fraction"},
			field{Name: "percent_sampled", Note: "default 0%"},
			field{Name: "use_independent_randomness", Note: "unset: the x-request-id's first 8 hex digits pick the sample"})},
		message{"envoy.type.v3.FractionalPercent", fs("numerator", "denominator")},
	)
}
