package formatter

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

func testContext() *Context {
	return &Context{
		Request: &message.Request{
			Method: "GET", Scheme: "https", Authority: "example.com:8443", Path: "/a/b?x=1",
			Header: message.Headers{{Name: "user-agent", Value: "curl/8"}, {Name: "x-request-id", Value: "abc"}, {Name: "x-multi", Value: "1"}, {Name: "x-multi", Value: "2"}},
		},
		ResponseHeaders: message.Headers{{Name: "content-type", Value: "text/plain"}},
		Info: &streaminfo.StreamInfo{
			StartTime:                      time.Date(2021, 10, 22, 18, 5, 12, 123456789, time.UTC),
			LastDownstreamTxByte:           1500 * time.Millisecond,
			ConnectionID:                   42,
			DownstreamRemoteAddr:           netip.MustParseAddrPort("10.0.0.1:5555"),
			DownstreamDirectAddr:           netip.MustParseAddrPort("[::1]:6000"),
			DownstreamLocalAddr:            netip.MustParseAddrPort("127.0.0.1:8080"),
			RequestedServerName:            "sni.example",
			Protocol:                       message.HTTP2,
			RouteName:                      "r1",
			UpstreamCluster:                "service1",
			UpstreamHost:                   "10.1.1.1:80",
			UpstreamTransportFailureReason: "",
			ResponseCode:                   503,
			ResponseCodeDetails:            "via_upstream",
			Flags:                          streaminfo.UpstreamConnectionFailure | streaminfo.UpstreamRetryLimitExceeded,
			BytesReceived:                  10,
			BytesSent:                      20,
		},
	}
}

func TestFormat(t *testing.T) {
	t.Setenv("LEGATE_FMT_TEST", "envval")
	ctx := testContext()
	tests := []struct {
		format, want, wantOmit string
	}{
		{"plain text", "plain text", "plain text"},
		{"100%% sure", "100% sure", "100% sure"},
		{"%DOWNSTREAM_REMOTE_ADDRESS%", "10.0.0.1:5555", ""},
		{"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.0.1", ""},
		{"%DOWNSTREAM_REMOTE_PORT%", "5555", ""},
		{"%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%", "[::1]:6000", ""},
		{"%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%", "::1", ""},
		{"%DOWNSTREAM_LOCAL_ADDRESS%", "127.0.0.1:8080", ""},
		{"%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "127.0.0.1", ""},
		{"%DOWNSTREAM_LOCAL_PORT%", "8080", ""},
		{"%UPSTREAM_REMOTE_ADDRESS%", "10.1.1.1:80", ""},
		{"%UPSTREAM_HOST%", "10.1.1.1:80", ""},
		{"%UPSTREAM_CLUSTER%", "service1", ""},
		{"%UPSTREAM_TRANSPORT_FAILURE_REASON%", "-", "<empty>"},
		{"%START_TIME%", "2021-10-22T18:05:12.123Z", ""},
		{"%START_TIME(%s)%", "1634925912", ""},
		{"%START_TIME(%s.%3f)%", "1634925912.123", ""},
		{"%START_TIME(%s.%6f)%", "1634925912.123456", ""},
		{"%START_TIME(%s.%9f)%", "1634925912.123456789", ""},
		{"%START_TIME(%f)%", "123456789", ""},
		{"%START_TIME(%Y/%m/%dT%H:%M:%S%z)%", "2021/10/22T18:05:12+0000", ""},
		{"%START_TIME(%a %b %e %T %Y)%", "Fri Oct 22 18:05:12 2021", ""},
		{"%START_TIME(%E6S|%E*S)%", "12.123456|12.123456789", ""},
		{"%PROTOCOL%", "HTTP/2", ""},
		{"%REQ(:METHOD)% %REQ(:PATH)% %REQ(:AUTHORITY)% %REQ(:SCHEME)%", "GET /a/b?x=1 example.com:8443 https", ""},
		{"%REQ(USER-AGENT)%", "curl/8", ""},
		{"%REQ(X-MISSING)%", "-", "<empty>"},
		{"%REQ(X-MISSING?X-REQUEST-ID)%", "abc", ""},
		{"%REQ(X-REQUEST-ID?X-MISSING)%", "abc", ""},
		{"%REQ(USER-AGENT):3%", "cur", ""},
		{"%REQ(X-MULTI)%", "1", ""},
		{"%REQ(HOST)%", "example.com:8443", ""},
		{"%RESP(CONTENT-TYPE)%", "text/plain", ""},
		{"%RESP(X-NONE)%", "-", "<empty>"},
		{"%RESPONSE_CODE%", "503", ""},
		{"%RESPONSE_FLAGS%", "UF,URX", ""},
		{"%RESPONSE_CODE_DETAILS%", "via_upstream", ""},
		{"%ROUTE_NAME%", "r1", ""},
		{"%REQUESTED_SERVER_NAME%", "sni.example", ""},
		{"%CONNECTION_ID%", "42", ""},
		{"%BYTES_RECEIVED% %BYTES_SENT%", "10 20", ""},
		{"%DURATION%", "1500", ""},
		{"%ENVIRONMENT(LEGATE_FMT_TEST)%", "envval", ""},
		{"%ENVIRONMENT(LEGATE_FMT_TEST):3%", "env", ""},
		{"%ENVIRONMENT(LEGATE_FMT_TEST_UNSET)%", "-", "<empty>"},
		{"[%REQ(X-MISSING)%]", "[-]", "[]"},
	}
	for _, tt := range tests {
		f, err := Compile(tt.format)
		if err != nil {
			t.Errorf("Compile(%q): %v", tt.format, err)
			continue
		}
		if got := f.Format(ctx); got != tt.want {
			t.Errorf("Format(%q) = %q, want %q", tt.format, got, tt.want)
		}
		want := tt.wantOmit
		switch want {
		case "":
			want = tt.want
		case "<empty>":
			want = ""
		}
		fh, err := CompileHeaderValue(tt.format)
		if err != nil {
			t.Fatal(err)
		}
		if got := fh.Format(ctx); got != want {
			t.Errorf("header Format(%q) = %q, want %q", tt.format, got, want)
		}
	}
}

func TestFormatMissingSources(t *testing.T) {
	f, err := Compile("%REQ(a)% %RESP(b)% %UPSTREAM_HOST% %START_TIME% %PROTOCOL% %DURATION%")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Format(&Context{}), "- - - - - -"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestHostname(t *testing.T) {
	f, err := Compile("%HOSTNAME%")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Format(&Context{}); got == "" || strings.Contains(got, "%") {
		t.Fatalf("HOSTNAME rendered %q", got)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct{ format, want string }{
		{"%NOT_AN_OPERATOR%", "unsupported command operator %NOT_AN_OPERATOR%"},
		{"%REQ%", "REQ requires a header name"},
		{"%REQ(a?b?c)%", "bad header specification"},
		{"%REQ(x", "missing ')'"},
		{"%PROTOCOL", "not terminated"},
		{"50% off", "no valid command operator"},
		{"%START_TIME(%Q)%", "unsupported time specifier %Q"},
		{"%PROTOCOL(x)%", "takes no argument"},
	}
	for _, tt := range tests {
		_, err := Compile(tt.format)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Compile(%q) error = %v, want it to contain %q", tt.format, err, tt.want)
		}
	}
}

func TestStatic(t *testing.T) {
	f, err := CompileHeaderValue("a%%b")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := f.Static(); !ok || v != "a%b" {
		t.Fatalf("Static() = %q, %v", v, ok)
	}
	if n := testing.AllocsPerRun(100, func() { _ = f.Format(nil) }); n != 0 {
		t.Fatalf("static Format allocates %v times", n)
	}
	g, _ := Compile("%PROTOCOL%")
	if _, ok := g.Static(); ok {
		t.Fatal("a format with an operator is not static")
	}
}

func TestAppendNoAllocs(t *testing.T) {
	f, err := Compile(`[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "%REQ(USER-AGENT)%" "%DOWNSTREAM_REMOTE_ADDRESS%" "%UPSTREAM_HOST%"`)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext()
	ctx.Info.Flags = streaminfo.NoRouteFound | streaminfo.UpstreamOverflow
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = f.Append(buf[:0], ctx) }); n != 0 {
		t.Fatalf("Append allocates %v times", n)
	}
	want := `[2021-10-22T18:05:12.123Z] "GET /a/b?x=1 HTTP/2" 503 UO,NR 10 20 1500 "curl/8" "10.0.0.1:5555" "10.1.1.1:80"`
	if got := string(f.Append(nil, ctx)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func BenchmarkAccessLogFormat(b *testing.B) {
	f, err := Compile(`[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%UPSTREAM_HOST%"` + "\n")
	if err != nil {
		b.Fatal(err)
	}
	ctx := testContext()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = f.Append(buf[:0], ctx)
	}
}

// FuzzCompile: any format string either fails to compile or renders
// without panicking, in both compilation modes and on full and empty
// contexts; Format and Append agree (Append keeps what dst held); a
// static format renders its constant whatever the context; literal-only
// formats round-trip; and a value typed as JSON is valid JSON.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{"", "a%%b", "%REQ(x?y):3%", "%START_TIME(%s.%3f %E*S)%", "%", "%A(", "%REQ()%", "%START_TIME(%E)%",
		"%REQ(:PATH)%", "%RESP(content-type):0%", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "%RESPONSE_FLAGS%", "%BYTES_RECEIVED%",
		"%REQ(X-MULTI)% %REQ(x-multi):1%", "%DYNAMIC_METADATA(a:b:c)%", "%FILTER_STATE(k:PLAIN)%", "%START_TIME(%Y%m%d%H%M%S%z %9f %%)%",
		"%START_TIME(%" + strings.Repeat("9", 30) + "f)%", "%REQ(x):99999999999999999999%", "%UPSTREAM_HOST%%%", "\x00%PROTOCOL%\r\n"} {
		f.Add(s)
	}
	ctx := testContext()
	f.Fuzz(func(t *testing.T, s string) {
		for _, omit := range []bool{false, true} {
			fm, err := CompileWith(s, Options{OmitEmptyValues: omit})
			if err != nil {
				continue
			}
			if fm.String() != s {
				t.Fatalf("String() %q, source %q", fm.String(), s)
			}
			for _, c := range []*Context{ctx, {}, nil} {
				out := fm.Format(c)
				if got := string(fm.Append([]byte("prefix"), c)); got != "prefix"+out {
					t.Fatalf("%q: Append %q, Format %q", s, got, out)
				}
				if constant, static := fm.Static(); static && out != constant {
					t.Fatalf("%q: static %q rendered %q", s, constant, out)
				}
				typed, kind := fm.AppendTyped(nil, c)
				if kind != KindMissing && kind != KindString && !json.Valid(typed) {
					t.Fatalf("%q: typed value %q (kind %v) is not JSON", s, typed, kind)
				}
			}
			if !strings.Contains(s, "%") && fm.Format(ctx) != s {
				t.Fatalf("literal %q rendered %q", s, fm.Format(ctx))
			}
		}
	})
}
