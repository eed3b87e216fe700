package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/stats"
)

type fixture struct {
	base       string
	client     *http.Client
	healthFail atomic.Bool
	quit       chan struct{}
	served     chan error
	store      *stats.Store

	mu     sync.Mutex
	levels map[string]string
}

func start(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		quit:   make(chan struct{}),
		served: make(chan error, 1),
		store:  stats.NewStore(),
		levels: map[string]string{"admin": "info", "http": "info", "upstream": "info"},
		client: &http.Client{Timeout: 30 * time.Second},
	}
	f.store.Counter("cluster.service1.upstream_rq_total").Add(3)
	f.store.Counter("cluster.service1.upstream_rq_200").Add(3)
	f.store.Counter("http.ingress_http.downstream_rq_2xx").Add(3)
	f.store.Histogram("cluster.service1.upstream_rq_time", stats.Milliseconds).Record(4)
	ss := stats.NewServerStats(f.store, time.Now().Add(-time.Minute))
	ss.SetState(stats.StateLive)
	ss.SetLive(true)

	clusterDump := &adminv3.ClustersConfigDump{VersionInfo: "v1"}
	for _, name := range []string{"service1", "service2"} {
		c, _ := anypb.New(&clusterv3.Cluster{Name: name})
		clusterDump.StaticClusters = append(clusterDump.StaticClusters, &adminv3.ClustersConfigDump_StaticCluster{Cluster: c})
	}
	cdAny, _ := anypb.New(clusterDump)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	deps := Deps{
		Store:       f.store,
		ServerStats: ss,
		StartTime:   time.Now().Add(-90 * time.Second),
		State: func() stats.ServerState {
			if f.healthFail.Load() {
				return stats.StateDraining
			}
			return stats.StateLive
		},
		Clusters: func(w io.Writer, asJSON bool) {
			if asJSON {
				io.WriteString(w, `{"cluster_statuses":[{"name":"service1"}]}`)
				return
			}
			io.WriteString(w, "service1::127.0.0.1:8000::health_flags::healthy\n")
		},
		Listeners: func(w io.Writer, asJSON bool) {
			if asJSON {
				io.WriteString(w, `{"listener_statuses":[]}`)
				return
			}
			io.WriteString(w, "listener_0::0.0.0.0:8080\n")
		},
		ConfigDump: func(bool) (proto.Message, error) {
			return &adminv3.ConfigDump{Configs: []*anypb.Any{cdAny}}, nil
		},
		ServerInfo: func() *adminv3.ServerInfo {
			return &adminv3.ServerInfo{Version: "legate/test", HotRestartVersion: "disabled",
				Node: &corev3.Node{Id: "front-proxy", Cluster: "front"}}
		},
		SetHealthFailed: func(b bool) { f.healthFail.Store(b) },
		Quit: func() {
			close(f.quit)
			cancel()
		},
		SetLogLevel: func(logger, level string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if logger == "" {
				for k := range f.levels {
					f.levels[k] = level
				}
				return nil
			}
			if _, ok := f.levels[logger]; !ok {
				return fmt.Errorf("unknown logger %q", logger)
			}
			f.levels[logger] = level
			return nil
		},
		Loggers: func() []Logger {
			f.mu.Lock()
			defer f.mu.Unlock()
			var out []Logger
			for k, v := range f.levels {
				out = append(out, Logger{k, v})
			}
			return out
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.base = "http://" + ln.Addr().String()
	go func() { f.served <- Serve(ctx, ln, New(deps)) }()
	return f
}

func (f *fixture) do(t *testing.T, method, path string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, f.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestEndpoints(t *testing.T) {
	f := start(t)
	tests := []struct {
		method, path string
		code         int
		contains     []string
		exact        string
		ctype        string
	}{
		{method: "GET", path: "/ready", code: 200, exact: "LIVE\n"},
		{method: "GET", path: "/stats?filter=service1", code: 200, contains: []string{
			"cluster.service1.upstream_rq_200: 3\ncluster.service1.upstream_rq_total: 3\n",
			"cluster.service1.upstream_rq_time: P0(",
		}},
		{method: "GET", path: "/stats?filter=" + url.QueryEscape(`^server\.(live|uptime)$`), code: 200, exact: "server.live: 1\nserver.uptime: 60\n"},
		{method: "GET", path: "/stats?format=json&filter=rq_total", code: 200, ctype: "application/json",
			exact: `{"stats":[{"name":"cluster.service1.upstream_rq_total","value":3}]}` + "\n"},
		{method: "GET", path: "/stats?format=prometheus&filter=rq_total", code: 200,
			exact: "# HELP envoy_cluster_upstream_rq_total Envoy counter cluster.upstream_rq_total.\n# TYPE envoy_cluster_upstream_rq_total counter\nenvoy_cluster_upstream_rq_total{envoy_cluster_name=\"service1\"} 3\n"},
		{method: "GET", path: "/stats/prometheus", code: 200, contains: []string{
			`envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="service1"} 3`,
			`envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="ingress_http"} 3`,
			`envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="service1",le="+Inf"} 1`,
			"# TYPE envoy_server_memory_allocated gauge\n",
		}},
		{method: "GET", path: "/stats?usedonly&filter=server.version", code: 200, exact: ""},
		{method: "GET", path: "/stats?filter=(", code: 400, contains: []string{"Invalid re2 regex"}},
		{method: "GET", path: "/stats?format=xml", code: 400},
		{method: "GET", path: "/clusters", code: 200, exact: "service1::127.0.0.1:8000::health_flags::healthy\n"},
		{method: "GET", path: "/clusters?format=json", code: 200, ctype: "application/json", contains: []string{`"cluster_statuses"`}},
		{method: "GET", path: "/listeners", code: 200, exact: "listener_0::0.0.0.0:8080\n"},
		{method: "GET", path: "/listeners?format=json", code: 200, contains: []string{"listener_statuses"}},
		{method: "GET", path: "/config_dump", code: 200, ctype: "application/json", contains: []string{
			`"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"`, `"version_info": "v1"`, `"static_clusters"`}},
		{method: "GET", path: "/config_dump?resource=static_clusters", code: 200, contains: []string{
			`"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.StaticCluster"`, `"name": "service2"`}},
		{method: "GET", path: "/config_dump?resource=nothing", code: 404},
		{method: "GET", path: "/config_dump?mask=configs", code: 400},
		{method: "GET", path: "/server_info", code: 200, ctype: "application/json", contains: []string{
			`"version": "legate/test"`, `"state": "LIVE"`, `"uptime_current_epoch": "90s"`, `"hot_restart_version": "disabled"`, `"id": "front-proxy"`}},
		{method: "GET", path: "/help", code: 200, contains: []string{"admin commands are:\n", "  /ready: ", "  /quitquitquit: "}},
		{method: "GET", path: "/", code: 200, ctype: "text/html; charset=UTF-8", contains: []string{`<a href="/stats">`, `<form action="/quitquitquit" method="post">`}},
		{method: "GET", path: "/nope", code: 404, contains: []string{"invalid path. admin commands are:\n"}},
		{method: "GET", path: "/healthcheck/fail", code: 405, exact: "Method GET not allowed, POST required."},
		{method: "PUT", path: "/quitquitquit", code: 405, exact: "Method PUT not allowed, POST required."},
		{method: "GET", path: "/logging?level=debug", code: 405},
		{method: "GET", path: "/reset_counters", code: 405},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			code, body, h := f.do(t, tc.method, tc.path)
			if code != tc.code {
				t.Fatalf("status %d, want %d; body:\n%s", code, tc.code, body)
			}
			if tc.exact != "" || (tc.contains == nil && tc.code == 200) {
				if body != tc.exact {
					t.Errorf("body %q, want %q", body, tc.exact)
				}
			}
			for _, c := range tc.contains {
				if !strings.Contains(body, c) {
					t.Errorf("body lacks %q:\n%s", c, body)
				}
			}
			if tc.ctype != "" && h.Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", h.Get("Content-Type"), tc.ctype)
			}
		})
	}
	// The server_info JSON is a well-formed ServerInfo.
	_, body, _ := f.do(t, "GET", "/server_info")
	var info map[string]any
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("server_info: %v", err)
	}
}

func TestHealthcheckFailFlipsReady(t *testing.T) {
	f := start(t)
	if code, body, _ := f.do(t, "POST", "/healthcheck/fail"); code != 200 || body != "OK\n" {
		t.Fatalf("fail: %d %q", code, body)
	}
	if code, body, _ := f.do(t, "GET", "/ready"); code != 503 || body != "DRAINING\n" {
		t.Fatalf("ready after fail: %d %q", code, body)
	}
	if _, body, _ := f.do(t, "GET", "/server_info"); !strings.Contains(body, `"state": "DRAINING"`) {
		t.Fatalf("server_info after fail: %s", body)
	}
	if _, body, _ := f.do(t, "GET", "/stats?filter=^server.live$"); body != "server.live: 1\n" {
		t.Fatalf("server.live changed: %q", body)
	}
	if code, _, _ := f.do(t, "POST", "/healthcheck/ok"); code != 200 {
		t.Fatal(code)
	}
	if code, body, _ := f.do(t, "GET", "/ready"); code != 200 || body != "LIVE\n" {
		t.Fatalf("ready after ok: %d %q", code, body)
	}
}

func TestLogging(t *testing.T) {
	f := start(t)
	code, body, _ := f.do(t, "POST", "/logging?level=debug")
	if code != 200 || body != "active loggers:\n  admin: debug\n  http: debug\n  upstream: debug\n" {
		t.Fatalf("level=debug: %d %q", code, body)
	}
	code, body, _ = f.do(t, "POST", "/logging?paths=http:warn,upstream:trace")
	if code != 200 || body != "active loggers:\n  admin: debug\n  http: warning\n  upstream: trace\n" {
		t.Fatalf("paths: %d %q", code, body)
	}
	code, body, _ = f.do(t, "POST", "/logging?admin=off")
	if code != 200 || !strings.Contains(body, "  admin: off\n") {
		t.Fatalf("name=level: %d %q", code, body)
	}
	for _, bad := range []string{"/logging?level=loud", "/logging?paths=http", "/logging?nosuch=info"} {
		code, body, _ = f.do(t, "POST", bad)
		if code != 404 || !strings.Contains(body, "usage: /logging?level=<level>") {
			t.Errorf("%s: %d %q", bad, code, body)
		}
	}
	if code, body, _ := f.do(t, "POST", "/logging"); code != 200 || !strings.HasPrefix(body, "active loggers:\n") {
		t.Errorf("list: %d %q", code, body)
	}
}

func TestResetCounters(t *testing.T) {
	f := start(t)
	if code, body, _ := f.do(t, "POST", "/reset_counters"); code != 200 || body != "OK\n" {
		t.Fatalf("%d %q", code, body)
	}
	if _, body, _ := f.do(t, "GET", "/stats?filter=upstream_rq_total"); body != "cluster.service1.upstream_rq_total: 0\n" {
		t.Fatalf("after reset: %q", body)
	}
}

func TestQuitQuitQuit(t *testing.T) {
	f := start(t)
	code, body, _ := f.do(t, "POST", "/quitquitquit")
	if code != 200 || body != "OK\n" {
		t.Fatalf("%d %q", code, body)
	}
	select {
	case <-f.quit:
	case <-time.After(30 * time.Second):
		t.Fatal("Quit not called")
	}
	select {
	case err := <-f.served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := f.client.Get(f.base + "/ready"); err == nil {
		t.Fatal("admin still answering after shutdown")
	}
}

func TestDefaultsWithoutDeps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := false
	go Serve(ctx, ln, New(Deps{Ready: func() bool { return ready }}))
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/ready"); code != 503 || body != "PRE_INITIALIZING\n" {
		t.Errorf("ready: %d %q", code, body)
	}
	if code, _ := get("/clusters"); code != 501 {
		t.Errorf("clusters without dep: %d", code)
	}
	if code, _ := get("/stats"); code != 501 {
		t.Errorf("stats without store: %d", code)
	}
}
