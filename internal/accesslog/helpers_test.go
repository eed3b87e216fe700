package accesslog

import (
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// parseLogs reads a YAML list of AccessLog messages.
func parseLogs(t testing.TB, y string) []*accesslogv3.AccessLog {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(j, &raws); err != nil {
		t.Fatal(err)
	}
	out := make([]*accesslogv3.AccessLog, len(raws))
	for i, r := range raws {
		out[i] = &accesslogv3.AccessLog{}
		if err := protojson.Unmarshal(r, out[i]); err != nil {
			t.Fatalf("access_log[%d]: %v", i, err)
		}
	}
	return out
}

func parseFilter(t testing.TB, y string) *accesslogv3.AccessLogFilter {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	f := &accesslogv3.AccessLogFilter{}
	if err := protojson.Unmarshal(j, f); err != nil {
		t.Fatalf("%s: %v", y, err)
	}
	return f
}

func testRuntime(t testing.TB, kv map[string]any) *runtime.Snapshot {
	t.Helper()
	st, err := structpb.NewStruct(kv)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.New([]*bootstrapv3.RuntimeLayer{{Name: "static", LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: st}}})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

var testStart = time.Date(2024, 2, 29, 23, 59, 58, 987654321, time.UTC)

// httpContext is a completed HTTP/1.1 request that was proxied.
func httpContext() *formatter.Context {
	return &formatter.Context{
		Request: &message.Request{
			Method: "POST", Scheme: "http", Authority: "api.example.com", Path: "/v1/items?id=7", Protocol: message.HTTP11,
			Header: message.Headers{
				{Name: "user-agent", Value: "curl/8.5.0"},
				{Name: "x-request-id", Value: "0000002a-9c4f-4e0b-a4f2-1d8b5f0c7e11"},
				{Name: "x-forwarded-for", Value: "203.0.113.9"},
				{Name: "x-envoy-original-path", Value: "/orig/items?id=7"},
				{Name: "x-quote", Value: `say "hi"\` + "\n"},
			},
		},
		ResponseHeaders: message.Headers{
			{Name: "content-type", Value: "application/json"},
			{Name: "x-envoy-upstream-service-time", Value: "12"},
		},
		ResponseTrailers: message.Headers{{Name: "grpc-status", Value: "0"}},
		Info: &streaminfo.StreamInfo{
			StartTime:                      testStart,
			LastDownstreamRxByte:           3 * time.Millisecond,
			FirstUpstreamTxByte:            4 * time.Millisecond,
			FirstUpstreamRxByte:            17 * time.Millisecond,
			LastDownstreamTxByte:           21 * time.Millisecond,
			ConnectionID:                   7,
			DownstreamRemoteAddr:           netip.MustParseAddrPort("203.0.113.9:0"),
			DownstreamDirectAddr:           netip.MustParseAddrPort("127.0.0.1:50123"),
			DownstreamLocalAddr:            netip.MustParseAddrPort("[::1]:10000"),
			RequestedServerName:            "api.example.com",
			Protocol:                       message.HTTP11,
			RouteName:                      "items",
			UpstreamCluster:                "backend",
			UpstreamHost:                   "10.0.0.5:8080",
			UpstreamLocalAddr:              "10.0.0.1:40000",
			UpstreamTransportFailureReason: "",
			ResponseCode:                   201,
			ResponseCodeDetails:            "via_upstream",
			BytesReceived:                  42,
			BytesSent:                      1234,
			Attempts:                       2,
		},
	}
}

// tcpContext is a TCP proxy connection: no request, no response headers.
func tcpContext() *formatter.Context {
	// What the RBAC (shadow rules) and SNI cluster filters leave.
	var d streaminfo.Dynamic
	d.SetMetadata("envoy.filters.network.rbac", &structpb.Struct{Fields: map[string]*structpb.Value{
		"shadow_engine_result":       structpb.NewStringValue("denied"),
		"shadow_effective_policy_id": structpb.NewStringValue(`policy "1"`),
	}})
	d.SetMetadata("test.ns", &structpb.Struct{Fields: map[string]*structpb.Value{"count": structpb.NewNumberValue(3)}})
	d.SetFilterState("envoy.tcp_proxy.cluster", streaminfo.StringObject("db"))
	return &formatter.Context{
		Info: &streaminfo.StreamInfo{
			Dynamic:                        &d,
			StartTime:                      testStart,
			LastDownstreamTxByte:           1500 * time.Millisecond,
			ConnectionID:                   9,
			DownstreamRemoteAddr:           netip.MustParseAddrPort("192.0.2.1:40404"),
			DownstreamDirectAddr:           netip.MustParseAddrPort("192.0.2.1:40404"),
			DownstreamLocalAddr:            netip.MustParseAddrPort("127.0.0.1:9000"),
			UpstreamCluster:                "db",
			UpstreamHost:                   "10.0.0.9:5432",
			UpstreamTransportFailureReason: "connection refused",
			Flags:                          streaminfo.UpstreamConnectionFailure,
			BytesReceived:                  100,
			BytesSent:                      200,
		},
	}
}

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s\n(run with -update to accept)", path, i+1, g, w)
			}
		}
	}
}

// newManager returns a FileManager on a fresh store, closed at the end of
// the test; its timer never fires during a test, so flushes are explicit.
func newManager(t testing.TB) (*FileManager, *stats.Store) {
	st := stats.NewStore()
	m := NewFileManager(st, nil)
	m.SetFlushInterval(time.Hour)
	t.Cleanup(m.Close)
	return m, st
}

func counter(st *stats.Store, name string) uint64 { return st.Counter(name).Value() }

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
