package listener

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/accesslog"
	_ "github.com/legate-proxy/legate/internal/filter/network/tcp_proxy"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func fileLog(t *testing.T, path, format string) *accesslogv3.AccessLog {
	return &accesslogv3.AccessLog{
		Name: "envoy.access_loggers.file",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(t, &filev3.FileAccessLog{
			Path: path, AccessLogFormat: textFormat(format),
		})},
	}
}

func staticCluster(name, addr string) *clusterv3.Cluster {
	host, port, _ := net.SplitHostPort(addr)
	pv, _ := strconv.Atoi(port)
	return &clusterv3.Cluster{
		Name: name,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(pv)},
				}}},
			}}}},
		}}},
	}
}

// TestListenerAccessLog runs a listener with a tcp_proxy and a listener
// access_log: every connection gets one line when it closes, carrying
// what the TCP proxy learnt (upstream host, flags, bytes).
func TestListenerAccessLog(t *testing.T) {
	// An echo upstream, and an address where nothing listens.
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	deadLn, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := deadLn.Addr().String()
	deadLn.Close()

	store := stats.NewStore()
	quiet := slog.New(slog.DiscardHandler)
	cm, err := cluster.NewManager([]*clusterv3.Cluster{
		staticCluster("echo", up.Addr().String()), staticCluster("dead", dead),
	}, cluster.Options{Stats: store, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Close()
	files := accesslog.NewFileManager(store, quiet)
	defer files.Close()
	fc := &networkfilter.FactoryContext{Clusters: cm, Stats: store, Logger: quiet, AccessLogFiles: files}

	logPath := filepath.Join(t.TempDir(), "conn.log")
	pbFor := func(name, clusterName string) *listenerv3.Listener {
		return &listenerv3.Listener{
			Name: name,
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
			}}},
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
				Name: "envoy.filters.network.tcp_proxy",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &tcpv3.TcpProxy{
					StatPrefix: name, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: clusterName},
				})},
			}}}},
			AccessLog: []*accesslogv3.AccessLog{fileLog(t, logPath,
				name+" %CONNECTION_ID% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% %BYTES_RECEIVED% %BYTES_SENT% %RESPONSE_FLAGS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\n")},
		}
	}
	m := NewManager(ManagerOptions{Factory: *fc, Stats: store, Logger: quiet})
	if err := m.AddStatic([]*listenerv3.Listener{pbFor("ok", "echo"), pbFor("bad", "dead")}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addrs := m.Addrs()

	roundTrip := func(name, msg string) string {
		c, err := net.DialTimeout("tcp", addrs[name].String(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if msg != "" {
			c.Write([]byte(msg))
		}
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := roundTrip("ok", "hello"); got != "hello" {
		t.Fatalf("echo through the listener: %q", got)
	}
	if got := roundTrip("ok", "longer message"); got != "longer message" {
		t.Fatalf("echo through the listener: %q", got)
	}
	roundTrip("bad", "")

	// Stopping and waiting for the listeners means every connection has
	// been logged.
	m.StopListening()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := m.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	files.Flush()
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	echoHost := up.Addr().String()
	want := map[string]bool{
		"ok echo " + echoHost + " 5 5 - 127.0.0.1":   false,
		"ok echo " + echoHost + " 14 14 - 127.0.0.1": false,
		"bad dead " + dead + " 0 0 UF,URX 127.0.0.1": false,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), data)
	}
	for _, line := range lines {
		// Drop the connection id after checking it is a number.
		f := strings.SplitN(line, " ", 3)
		if len(f) < 3 {
			t.Fatalf("short line %q", line)
		}
		if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
			t.Errorf("connection id %q in %q", f[1], line)
		}
		key := f[0] + " " + f[2]
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected line %q", line)
		}
		want[key] = true
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("missing line %q in:\n%s", k, data)
		}
	}
}

// TestListenerAccessLogErrors: a bad access_log fails the listener with
// the field's path.
func TestListenerAccessLogErrors(t *testing.T) {
	store := stats.NewStore()
	quiet := slog.New(slog.DiscardHandler)
	files := accesslog.NewFileManager(store, quiet)
	defer files.Close()
	fc := &networkfilter.FactoryContext{Stats: store, Logger: quiet, AccessLogFiles: files}
	pb := &listenerv3.Listener{
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &tcpv3.TcpProxy{
				StatPrefix: "x", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "x"},
			})},
		}}}},
		AccessLog: []*accesslogv3.AccessLog{fileLog(t, filepath.Join(t.TempDir(), "no", "such", "dir", "x.log"), "")},
	}
	var ids atomic.Uint64
	_, err := Build(pb, fc, &ids)
	if err == nil || !strings.Contains(err.Error(), "access_log[0]") {
		t.Fatalf("err %v, want one naming access_log[0]", err)
	}
}

// textFormat is a log_format with text_format_source.
func textFormat(f string) *filev3.FileAccessLog_LogFormat {
	return &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
		Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: f},
		}},
	}}
}
