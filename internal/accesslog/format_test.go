package accesslog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/jsonenc"
)

// operatorFormats is every command operator Legate supports, in the forms
// users write them.
var operatorFormats = []string{
	"%START_TIME%",
	"%START_TIME(%s)%",
	"%START_TIME(%s.%3f)%",
	"%START_TIME(%s.%6f)%",
	"%START_TIME(%s.%9f)%",
	"%START_TIME(%Y/%m/%dT%H:%M:%S%z)%",
	"%START_TIME(%d/%b/%Y:%H:%M:%S %z)%",
	"%START_TIME(%a, %d %b %Y %T GMT)%",
	"%START_TIME(%F %H:%M:%E3S)%",
	"%START_TIME(%E*S|%E6S|%j|%e|%I%p|%A %B|%D|%R|%u %w|%C%y|%Ez)%",
	"%REQ(:METHOD)%",
	"%REQ(:PATH)%",
	"%REQ(:AUTHORITY)%",
	"%REQ(:SCHEME)%",
	"%REQ(HOST)%",
	"%REQ(USER-AGENT)%",
	"%REQ(user-agent)%",
	"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"%REQ(X-MISSING?:PATH)%",
	"%REQ(X-MISSING)%",
	"%REQ(USER-AGENT):4%",
	"%REQ(X-QUOTE)%",
	"%RESP(CONTENT-TYPE)%",
	"%RESP(X-MISSING?CONTENT-TYPE)%",
	"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
	"%RESP(CONTENT-TYPE):11%",
	"%TRAILER(GRPC-STATUS)%",
	"%TRAILER(X-MISSING?GRPC-STATUS)%",
	"%TRAILER(GRPC-MESSAGE)%",
	"%RESPONSE_CODE%",
	"%RESPONSE_FLAGS%",
	"%RESPONSE_CODE_DETAILS%",
	"%BYTES_RECEIVED%",
	"%BYTES_SENT%",
	"%DURATION%",
	"%REQUEST_DURATION%",
	"%RESPONSE_DURATION%",
	"%UPSTREAM_HOST%",
	"%UPSTREAM_CLUSTER%",
	"%UPSTREAM_REMOTE_ADDRESS%",
	"%UPSTREAM_LOCAL_ADDRESS%",
	"%UPSTREAM_TRANSPORT_FAILURE_REASON%",
	"%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
	"%DOWNSTREAM_REMOTE_ADDRESS%",
	"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
	"%DOWNSTREAM_REMOTE_PORT%",
	"%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%",
	"%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%",
	"%DOWNSTREAM_DIRECT_REMOTE_PORT%",
	"%DOWNSTREAM_LOCAL_ADDRESS%",
	"%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%",
	"%DOWNSTREAM_LOCAL_PORT%",
	"%PROTOCOL%",
	"%HOSTNAME%",
	"%ROUTE_NAME%",
	"%REQUESTED_SERVER_NAME%",
	"%CONNECTION_ID%",
	"%DYNAMIC_METADATA(envoy.filters.network.rbac:shadow_engine_result)%",
	"%DYNAMIC_METADATA(envoy.filters.network.rbac)%",
	"%DYNAMIC_METADATA(test.ns:count)%",
	"%FILTER_STATE(envoy.tcp_proxy.cluster)%",
	"%FILTER_STATE(envoy.tcp_proxy.cluster:PLAIN)%",
	"%ENVIRONMENT(LEGATE_ACCESSLOG_TEST)%",
	"%ENVIRONMENT(LEGATE_ACCESSLOG_UNSET)%",
	"100%% literal, then %PROTOCOL%",
}

// TestOperatorsGolden renders every operator for an HTTP request and for a
// TCP connection (no request), as text, as text with omit_empty_values,
// and as a typed JSON value.
func TestOperatorsGolden(t *testing.T) {
	t.Setenv("LEGATE_ACCESSLOG_TEST", "env-value")
	host, _ := os.Hostname()
	var b strings.Builder
	for _, src := range operatorFormats {
		text, err := compileText(src, false)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		omit, err := compileText(src, true)
		if err != nil {
			t.Fatal(err)
		}
		f, err := formatter.Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(src + "\n")
		for _, c := range []struct {
			name string
			ctx  *formatter.Context
		}{{"http", httpContext()}, {"tcp", tcpContext()}} {
			line := string(text.appendLine(nil, c.ctx))
			omitted := string(omit.appendLine(nil, c.ctx))
			typed, kind := f.AppendTyped(nil, c.ctx)
			tv := string(jsonenc.AppendString(nil, string(typed)))
			switch kind {
			case formatter.KindMissing:
				tv = "null"
			case formatter.KindNumber, formatter.KindJSON:
				tv = string(typed)
			}
			r := strings.NewReplacer("\n", `\n`)
			if src == "%HOSTNAME%" {
				// The one machine-dependent value.
				r = strings.NewReplacer(host, "<hostname>")
			}
			b.WriteString("  " + c.name + ": " + r.Replace(line) + "\n")
			b.WriteString("    omit_empty: " + r.Replace(omitted) + "\n")
			b.WriteString("    typed: " + r.Replace(tv) + "\n")
		}
	}
	golden(t, "operators.golden", b.String())
}

func TestDefaultFormat(t *testing.T) {
	m, _ := newManager(t)
	path := filepath.Join(t.TempDir(), "access.log")
	ls, err := New(parseLogs(t, `
- name: envoy.access_loggers.file
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: `+path+`
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: `+path+`
    format: ""
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: `+path+`
    log_format:
      text_format_source:
        inline_string: "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"
`), Deps{Files: m})
	if err != nil {
		t.Fatal(err)
	}
	if ls[0].Name() != "envoy.access_loggers.file" {
		t.Fatalf("name %q", ls[0].Name())
	}
	ls.Log(httpContext())
	ls.Log(tcpContext())
	m.Flush()
	want := `[2024-02-29T23:59:58.987Z] "POST /orig/items?id=7 HTTP/1.1" 201 - 42 1234 21 12 "203.0.113.9" "curl/8.5.0" "0000002a-9c4f-4e0b-a4f2-1d8b5f0c7e11" "api.example.com" "10.0.0.5:8080"` + "\n"
	wantTCP := `[2024-02-29T23:59:58.987Z] "- - -" 0 UF 100 200 1500 - "-" "-" "-" "-" "10.0.0.9:5432"` + "\n"
	if got := readFile(t, path); got != strings.Repeat(want, 3)+strings.Repeat(wantTCP, 3) {
		t.Fatalf("got:\n%s\nwant 3× each of:\n%s%s", got, want, wantTCP)
	}
}

func TestTextFormatSourceFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "format.txt")
	if err := os.WriteFile(src, []byte("%RESPONSE_CODE% %REQ(X-MISSING)%|\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := newManager(t)
	out := filepath.Join(dir, "out.log")
	ls, err := New(parseLogs(t, `
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: `+out+`
    log_format:
      text_format_source: {filename: `+src+`}
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: `+out+`
    log_format:
      text_format: "%RESPONSE_CODE% %REQ(X-MISSING)%|\n"
      omit_empty_values: true
      content_type: text/plain
`), Deps{Files: m})
	if err != nil {
		t.Fatal(err)
	}
	ls.Log(httpContext())
	m.Flush()
	if got, want := readFile(t, out), "201 -|\n201 |\n"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestJSONFormatsGolden(t *testing.T) {
	cases := []struct{ name, cfg string }{
		{"log_format.json_format (typed)", `
log_format:
  json_format:
    status: "%RESPONSE_CODE%"
    bytes: {in: "%BYTES_RECEIVED%", out: "%BYTES_SENT%"}
    method: "%REQ(:METHOD)%"
    missing: "%REQ(X-MISSING)%"
    mixed: "%REQ(:METHOD)% %REQ(X-MISSING)% %RESPONSE_CODE%"
    quote: "%REQ(X-QUOTE)%"
    literal_string: "plain"
    literal_number: 1.5
    literal_int: 7
    literal_bool: true
    literal_null: null
    list: ["%RESPONSE_CODE%", "%REQ(X-MISSING)%", "x"]
    duration: "%DURATION%"
    upstream_duration: "%RESPONSE_DURATION%"
    start: "%START_TIME%"
    port: "%DOWNSTREAM_LOCAL_PORT%"
    service_time: "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%"
    trailer: "%TRAILER(GRPC-STATUS)%"
`},
		{"log_format.json_format omit_empty_values", `
log_format:
  omit_empty_values: true
  json_format:
    status: "%RESPONSE_CODE%"
    missing: "%REQ(X-MISSING)%"
    nested: {a: "%REQ(X-MISSING)%", b: "%PROTOCOL%"}
    empty_nested: {a: "%REQ(X-MISSING)%"}
    mixed: "[%REQ(X-MISSING)%]"
  json_format_options: {sort_properties: false}
`},
		{"typed_json_format (legacy)", `
typed_json_format:
  status: "%RESPONSE_CODE%"
  missing: "%REQ(X-MISSING)%"
  flags: "%RESPONSE_FLAGS%"
`},
		{"json_format (legacy, all strings)", `
json_format:
  status: "%RESPONSE_CODE%"
  missing: "%REQ(X-MISSING)%"
  number: 3
  nested: {bytes: "%BYTES_SENT%"}
`},
	}
	var b strings.Builder
	for _, c := range cases {
		m, _ := newManager(t)
		path := filepath.Join(t.TempDir(), "json.log")
		indented := "    " + strings.ReplaceAll(strings.TrimSpace(c.cfg), "\n", "\n    ")
		ls, err := New(parseLogs(t, `
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: `+path+"\n"+indented+"\n"), Deps{Files: m})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ls.Log(httpContext())
		ls.Log(tcpContext())
		m.Flush()
		b.WriteString("# " + c.name + "\n" + readFile(t, path))
	}
	golden(t, "json.golden", b.String())
}

func TestStdoutStderr(t *testing.T) {
	m, _ := newManager(t)
	dir := t.TempDir()
	var err error
	if m.stdout, err = os.Create(filepath.Join(dir, "stdout")); err != nil {
		t.Fatal(err)
	}
	if m.stderr, err = os.Create(filepath.Join(dir, "stderr")); err != nil {
		t.Fatal(err)
	}
	ls, err := New(parseLogs(t, `
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
    log_format: {text_format: "out %RESPONSE_CODE%\n"}
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog
    log_format: {json_format: {code: "%RESPONSE_CODE%"}}
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
`), Deps{Files: m})
	if err != nil {
		t.Fatal(err)
	}
	ls.Log(httpContext())
	m.Flush()
	if err := m.Reopen(); err != nil { // streams are not reopened
		t.Fatal(err)
	}
	wantOut := "out 201\n" + `[2024-02-29T23:59:58.987Z] "POST /orig/items?id=7 HTTP/1.1" 201 - 42 1234 21 12 "203.0.113.9" "curl/8.5.0" "0000002a-9c4f-4e0b-a4f2-1d8b5f0c7e11" "api.example.com" "10.0.0.5:8080"` + "\n"
	if got := readFile(t, filepath.Join(dir, "stdout")); got != wantOut {
		t.Fatalf("stdout %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "stderr")); got != `{"code":201}`+"\n" {
		t.Fatalf("stderr %q", got)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	file := func(rest string) string {
		return `
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: ` + filepath.Join(dir, "ok.log") + "\n" + rest
	}
	tests := []struct{ cfg, want string }{
		{`[{name: x}]`, "access_log[0].typed_config: required"},
		{`
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: ` + filepath.Join(dir, "missing-dir", "a.log"), "access_log[0].typed_config.path: open"},
		{`
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: ""`, "access_log[0].typed_config.path: must not be empty"},
		{file(`    format: "%NOPE%"`), "access_log[0].typed_config.format: format \"%NOPE%\" at position 0: unsupported command operator %NOPE%"},
		{file(`    log_format: {text_format: "%REQ%"}`), "access_log[0].typed_config.log_format.text_format:"},
		{file(`    log_format: {json_format: {a: {b: "%BAD("}}}`), "access_log[0].typed_config.log_format.json_format.a.b: format"},
		{file(`    json_format: {}`), "access_log[0].typed_config.json_format: the format dictionary must not be empty"},
		{file(`    log_format: {text_format: x, formatters: [{name: f, typed_config: {"@type": type.googleapis.com/google.protobuf.Struct, value: {}}}]}`), "log_format.formatters: formatter extensions are not supported"},
		{file(`    log_format: {text_format_source: {filename: /nonexistent/legate/format}}`), "log_format.text_format_source: filename: open /nonexistent/legate/format"},
		{file(`    log_format: {text_format_source: {environment_variable: X}}`), "text_format_source: only inline_string, inline_bytes and filename are supported"},
		{file(`    log_format: {omit_empty_values: true}`), "log_format: one of text_format, text_format_source or json_format is required"},
		{file(`  filter: {}`), "access_log[0].filter: a filter kind is required"},
		{file(`  filter: {traceable_filter: {}}`), "access_log[0].filter: filter kind *accesslogv3.AccessLogFilter_TraceableFilter is not supported"},
		{file(`  filter: {status_code_filter: {}}`), "access_log[0].filter.status_code_filter.comparison: required"},
		{file(`  filter: {duration_filter: {comparison: {op: GE}}}`), "access_log[0].filter.duration_filter.comparison.value: required"},
		{file(`  filter: {and_filter: {filters: [{status_code_filter: {comparison: {op: EQ, value: {default_value: 1, runtime_key: k}}}}, {response_flag_filter: {flags: [XX]}}]}}`),
			`access_log[0].filter.and_filter.filters[1].response_flag_filter.flags[0]: unknown response flag "XX"`},
		{file(`  filter: {or_filter: {}}`), "access_log[0].filter.or_filter.filters: at least one filter is required"},
		{file(`  filter: {header_filter: {header: {name: "", exact_match: x}}}`), "access_log[0].filter.header_filter.header.name: must not be empty"},
		{file(`  filter: {header_filter: {}}`), "access_log[0].filter.header_filter.header: required"},
		{file(`  filter: {runtime_filter: {runtime_key: ""}}`), "access_log[0].filter.runtime_filter.runtime_key: must not be empty"},
		{`
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog
    log_format: {text_format: "%X("}`, "access_log[1].typed_config.log_format.text_format:"},
		{`
- typed_config:
    "@type": type.googleapis.com/google.protobuf.Struct
    value: {}`, "access_log[0].typed_config: access logger type google.protobuf.Struct is not supported"},
	}
	for _, tt := range tests {
		m, _ := newManager(t)
		_, err := New(parseLogs(t, tt.cfg), Deps{Files: m})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("config %s\nerror = %v\nwant it to contain %q", tt.cfg, err, tt.want)
		}
	}
	if ls, err := New(nil, Deps{}); ls != nil || err != nil {
		t.Fatalf("New(nil) = %v, %v", ls, err)
	}
	if _, err := New(parseLogs(t, file("")), Deps{}); err == nil {
		t.Fatal("New without a FileManager succeeded")
	}
}
