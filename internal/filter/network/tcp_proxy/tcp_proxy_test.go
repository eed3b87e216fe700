package tcp_proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/accesslog"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/testutil/loopback"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/xds"
)

// waitTimeout bounds every wait; generous for a loaded machine.
const waitTimeout = 10 * time.Second

// startServer runs handle for every connection on a loopback listener.
func startServer(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	return loopback.Serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(waitTimeout))
		handle(c)
	})
}

// echo copies back what it reads and half-closes on EOF.
func echo(c net.Conn) {
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
}

// named writes its name first, then echoes.
func named(name string) func(net.Conn) {
	return func(c net.Conn) {
		c.Write([]byte(name + "\n"))
		echo(c)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func clusterPB(name string, addrs ...string) *clusterv3.Cluster {
	var eps []*endpointv3.LbEndpoint
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		pv, _ := strconv.Atoi(port)
		eps = append(eps, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(pv)},
			}}},
		}}})
	}
	return &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(2 * time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}},
		},
	}
}

// harness is a proxy in front of clusters, reachable on addr.
type harness struct {
	t        testing.TB
	store    *stats.Store
	clusters *cluster.Manager
	proxy    *Proxy
	files    *accesslog.FileManager
	addr     string
	// done receives each connection's stream info once ServeConn returned.
	done chan *streaminfo.StreamInfo
	// clusterState, when set, is each connection's filter state
	// envoy.tcp_proxy.cluster, as an earlier filter would set it.
	clusterState atomic.Value // string
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newHarness(t testing.TB, pb *tcpv3.TcpProxy, clusters ...*clusterv3.Cluster) *harness {
	t.Helper()
	store := stats.NewStore()
	cm, err := cluster.NewManager(clusters, cluster.Options{Stats: store, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cm.Close)
	files := accesslog.NewFileManager(store, quiet())
	t.Cleanup(files.Close)
	p, err := Build(pb, &networkfilter.FactoryContext{Clusters: cm, Stats: store, Logger: quiet(), AccessLogFiles: files})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: store, clusters: cm, proxy: p, files: files, done: make(chan *streaminfo.StreamInfo, 1000)}
	configured := p.log
	p.log = func(si *streaminfo.StreamInfo) {
		if configured != nil {
			configured(si)
		}
		cp := *si
		h.done <- &cp
	}
	var ids atomic.Uint64
	h.addr = loopback.Serve(t, func(nc net.Conn) {
		c := &networkfilter.Conn{Conn: nc, ID: ids.Add(1)}
		c.LocalAddr = nc.LocalAddr().(*net.TCPAddr).AddrPort()
		c.RemoteAddr = nc.RemoteAddr().(*net.TCPAddr).AddrPort()
		if name, ok := h.clusterState.Load().(string); ok {
			c.Dynamic.SetFilterState(PerConnectionClusterKey, streaminfo.StringObject(name))
		}
		p.ServeConn(context.Background(), c)
	})
	return h
}

func (h *harness) dial() *net.TCPConn {
	h.t.Helper()
	c, err := net.DialTimeout("tcp", h.addr, waitTimeout)
	if err != nil {
		h.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitTimeout))
	h.t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// wait returns the stream info of the next connection to finish.
func (h *harness) wait() *streaminfo.StreamInfo {
	h.t.Helper()
	select {
	case si := <-h.done:
		return si
	case <-time.After(waitTimeout):
		h.t.Fatal("connection did not finish")
		return nil
	}
}

func (h *harness) counter(name string) uint64 { return h.store.Counter(name).Value() }
func (h *harness) gauge(name string) int64 {
	return h.store.Gauge(name, stats.Accumulate).Value()
}

func simple(c string) *tcpv3.TcpProxy {
	return &tcpv3.TcpProxy{StatPrefix: "tp", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: c}}
}

func TestEchoAndStats(t *testing.T) {
	up := startServer(t, echo)
	h := newHarness(t, simple("svc"), clusterPB("svc", up))
	c := h.dial()
	msg := bytes.Repeat([]byte("0123456789abcdef"), 10000) // several buffers' worth
	go func() {
		c.Write(msg)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echoed %d bytes, want %d identical", len(got), len(msg))
	}
	si := h.wait()
	n := uint64(len(msg))
	if si.BytesReceived != n || si.BytesSent != n {
		t.Errorf("stream info bytes rx=%d tx=%d, want %d each", si.BytesReceived, si.BytesSent, n)
	}
	if si.UpstreamHost != up || si.UpstreamCluster != "svc" || si.Flags != 0 || si.Attempts != 1 {
		t.Errorf("stream info host=%q cluster=%q flags=%v attempts=%d", si.UpstreamHost, si.UpstreamCluster, si.Flags, si.Attempts)
	}
	if si.UpstreamLocalAddr == "" || si.ConnectionID == 0 || !si.DownstreamRemoteAddr.IsValid() || si.StartTime.IsZero() {
		t.Errorf("stream info incomplete: %+v", si)
	}
	for name, want := range map[string]uint64{
		"tcp.tp.downstream_cx_total":             1,
		"tcp.tp.downstream_cx_rx_bytes_total":    n,
		"tcp.tp.downstream_cx_tx_bytes_total":    n,
		"tcp.tp.downstream_cx_no_route":          0,
		"cluster.svc.upstream_cx_total":          1,
		"cluster.svc.upstream_cx_tx_bytes_total": n,
		"cluster.svc.upstream_cx_rx_bytes_total": n,
		"cluster.svc.upstream_cx_destroy":        1,
		"cluster.svc.upstream_cx_connect_fail":   0,
	} {
		if got := h.counter(name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if g := h.gauge("cluster.svc.upstream_cx_active"); g != 0 {
		t.Errorf("upstream_cx_active = %d after close", g)
	}
	if hs := h.clusters.Get("svc").Hosts(); hs[0].CxTotal.Load() != 1 || hs[0].CxActive.Load() != 0 {
		t.Errorf("host cx total=%d active=%d", hs[0].CxTotal.Load(), hs[0].CxActive.Load())
	}
}

// TestHalfClose checks that a FIN travels each way on its own while the
// other direction keeps flowing.
func TestHalfClose(t *testing.T) {
	t.Run("downstream first", func(t *testing.T) {
		// The upstream answers only after it has seen the end of the
		// request, which it can only see if the FIN was passed on.
		up := startServer(t, func(c net.Conn) {
			req, _ := io.ReadAll(c)
			c.Write([]byte("got " + string(req)))
		})
		h := newHarness(t, simple("svc"), clusterPB("svc", up))
		c := h.dial()
		c.Write([]byte("hello"))
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "got hello" {
			t.Fatalf("read %q, %v", got, err)
		}
		h.wait()
	})
	t.Run("upstream first", func(t *testing.T) {
		// The upstream says its piece and half-closes, then still reads
		// what the client sends after having seen EOF.
		rcvd := make(chan string, 1)
		up := startServer(t, func(c net.Conn) {
			c.Write([]byte("banner"))
			c.(*net.TCPConn).CloseWrite()
			b, _ := io.ReadAll(c)
			rcvd <- string(b)
		})
		h := newHarness(t, simple("svc"), clusterPB("svc", up))
		c := h.dial()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "banner" {
			t.Fatalf("read %q, %v", got, err)
		}
		c.Write([]byte("after eof"))
		c.CloseWrite()
		select {
		case s := <-rcvd:
			if s != "after eof" {
				t.Fatalf("upstream received %q", s)
			}
		case <-time.After(waitTimeout):
			t.Fatal("upstream never saw the client's EOF")
		}
		si := h.wait()
		if si.BytesReceived != 9 || si.BytesSent != 6 {
			t.Errorf("bytes rx=%d tx=%d", si.BytesReceived, si.BytesSent)
		}
		if h.counter("cluster.svc.upstream_cx_destroy_remote") != 1 {
			t.Errorf("upstream_cx_destroy_remote = %d, want 1", h.counter("cluster.svc.upstream_cx_destroy_remote"))
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	upClosed := make(chan struct{})
	up := startServer(t, func(c net.Conn) {
		io.Copy(io.Discard, c) // ends when the proxy closes the upstream
		close(upClosed)
	})
	pb := simple("svc")
	pb.IdleTimeout = durationpb.New(100 * time.Millisecond)
	h := newHarness(t, pb, clusterPB("svc", up))
	c := h.dial()
	c.Write([]byte("x")) // one byte, then silence
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("downstream read: %v (want EOF from the proxy closing)", err)
	}
	select {
	case <-upClosed:
	case <-time.After(waitTimeout):
		t.Fatal("upstream not closed on idle timeout")
	}
	h.wait()
	if n := h.counter("tcp.tp.idle_timeout"); n != 1 {
		t.Errorf("idle_timeout = %d, want 1", n)
	}
	if n := h.counter("cluster.svc.upstream_cx_destroy_local"); n != 1 {
		t.Errorf("upstream_cx_destroy_local = %d, want 1", n)
	}
}

func TestConnectRetryOnAnotherHost(t *testing.T) {
	dead := closedAddr(t)
	live := startServer(t, echo)
	pb := simple("svc")
	pb.MaxConnectAttempts = wrapperspb.UInt32(2)
	h := newHarness(t, pb, clusterPB("svc", dead, live))
	sawRetry := false
	for i := range 4 {
		c := h.dial()
		msg := "ping " + strconv.Itoa(i)
		c.Write([]byte(msg))
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != msg {
			t.Fatalf("connection %d: read %q, %v", i, got, err)
		}
		si := h.wait()
		if si.UpstreamHost != live {
			t.Errorf("connection %d ended on %s, want %s", i, si.UpstreamHost, live)
		}
		if si.Attempts == 2 {
			sawRetry = true
			// The failed attempt leaves UF, as in Envoy; the retry
			// limit was not reached.
			if si.Flags != streaminfo.UpstreamConnectionFailure {
				t.Errorf("flags after a retried connect: %v", si.Flags)
			}
		}
	}
	if !sawRetry {
		t.Error("round robin over two hosts never tried the dead one first")
	}
	if n := h.counter("cluster.svc.upstream_cx_connect_fail"); n == 0 {
		t.Error("upstream_cx_connect_fail not counted")
	}
	if n := h.counter("cluster.svc.upstream_cx_connect_attempts_exceeded"); n != 0 {
		t.Errorf("upstream_cx_connect_attempts_exceeded = %d, want 0", n)
	}
	for _, host := range h.clusters.Get("svc").Hosts() {
		if host.Address == dead && host.CxConnectFail.Load() == 0 {
			t.Error("dead host's connect failures not counted")
		}
	}
}

func TestConnectFailure(t *testing.T) {
	dead := closedAddr(t)
	h := newHarness(t, simple("svc"), clusterPB("svc", dead))
	c := h.dial()
	if got, err := io.ReadAll(c); err != nil || len(got) != 0 {
		t.Fatalf("read %q, %v; want an immediate close", got, err)
	}
	si := h.wait()
	if got := si.Flags.String(); got != "UF,URX" {
		t.Errorf("flags %q, want UF,URX", got)
	}
	if si.UpstreamHost != dead || !strings.Contains(si.UpstreamTransportFailureReason, "onnection refused") {
		t.Errorf("host %q reason %q", si.UpstreamHost, si.UpstreamTransportFailureReason)
	}
	if n := h.counter("cluster.svc.upstream_cx_connect_attempts_exceeded"); n != 1 {
		t.Errorf("upstream_cx_connect_attempts_exceeded = %d, want 1", n)
	}
	if n := h.counter("cluster.svc.upstream_cx_connect_fail"); n != 1 {
		t.Errorf("upstream_cx_connect_fail = %d, want 1", n)
	}
	if g := h.gauge("cluster.svc.upstream_cx_active"); g != 0 {
		t.Errorf("upstream_cx_active = %d", g)
	}
}

func TestNoRouteAndNoHost(t *testing.T) {
	for _, tt := range []struct {
		name, cluster, flags, stat string
	}{
		{"unknown cluster", "missing", "NC", "tcp.tp.downstream_cx_no_route"},
		{"cluster without hosts", "empty", "UH", "cluster.empty.upstream_cx_none_healthy"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, simple(tt.cluster), clusterPB("empty"))
			c := h.dial()
			if got, err := io.ReadAll(c); err != nil || len(got) != 0 {
				t.Fatalf("read %q, %v; want an immediate close", got, err)
			}
			if si := h.wait(); si.Flags.String() != tt.flags {
				t.Errorf("flags %v, want %s", si.Flags, tt.flags)
			}
			if n := h.counter(tt.stat); n != 1 {
				t.Errorf("%s = %d, want 1", tt.stat, n)
			}
			if n := h.counter("tcp.tp.downstream_cx_total"); n != 1 {
				t.Errorf("downstream_cx_total = %d", n)
			}
		})
	}
}

func weighted(ws ...any) *tcpv3.TcpProxy {
	wc := &tcpv3.TcpProxy_WeightedCluster{}
	for i := 0; i < len(ws); i += 2 {
		wc.Clusters = append(wc.Clusters, &tcpv3.TcpProxy_WeightedCluster_ClusterWeight{Name: ws[i].(string), Weight: uint32(ws[i+1].(int))})
	}
	return &tcpv3.TcpProxy{StatPrefix: "tp", ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: wc}}
}

func TestWeightedClusters(t *testing.T) {
	a := startServer(t, named("a"))
	b := startServer(t, named("b"))
	h := newHarness(t, weighted("a", 1, "b", 3), clusterPB("a", a), clusterPB("b", b))

	// The split follows the weights: 40000 picks put b's share within
	// a few points of 75 % (the standard deviation is about 0.2 %).
	const n = 40000
	count := map[string]int{}
	for range n {
		count[h.proxy.pick().name]++
	}
	if share := float64(count["b"]) / n; share < 0.72 || share > 0.78 {
		t.Errorf("b got %.3f of picks, want about 0.75 (%v)", share, count)
	}

	// And connections really go to both clusters.
	seen := map[string]bool{}
	for i := 0; i < 200 && len(seen) < 2; i++ {
		c := h.dial()
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSpace(string(got))
		seen[name] = true
		if si := h.wait(); si.UpstreamCluster != name {
			t.Errorf("stream info cluster %q, upstream said %q", si.UpstreamCluster, name)
		}
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("connections reached %v, want both clusters", seen)
	}
}

// A cluster named by the connection's filter state overrides the
// configured one; a name no cluster has refuses the connection (NC).
func TestClusterFromFilterState(t *testing.T) {
	a := startServer(t, named("a"))
	b := startServer(t, named("b"))
	h := newHarness(t, simple("a"), clusterPB("a", a), clusterPB("b", b))
	for _, tt := range []struct{ state, want, flags string }{
		{"", "a", "-"},
		{"b", "b", "-"},
		{"nope", "", "NC"},
	} {
		if tt.state != "" {
			h.clusterState.Store(tt.state)
		}
		c := h.dial()
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if name := strings.TrimSpace(string(got)); name != tt.want {
			t.Errorf("filter state %q: reached %q, want %q", tt.state, name, tt.want)
		}
		if si := h.wait(); si.Flags.String() != tt.flags || si.UpstreamCluster != tt.want {
			t.Errorf("filter state %q: flags %v, cluster %q", tt.state, si.Flags, si.UpstreamCluster)
		}
	}
	if n := h.counter("tcp.tp.downstream_cx_no_route"); n != 1 {
		t.Errorf("downstream_cx_no_route = %d, want 1", n)
	}
}

func TestConfigErrors(t *testing.T) {
	bad := func(f func(*tcpv3.TcpProxy)) *tcpv3.TcpProxy {
		pb := simple("svc")
		f(pb)
		return pb
	}
	for _, tt := range []struct {
		name string
		pb   *tcpv3.TcpProxy
		want string
	}{
		{"no stat_prefix", bad(func(p *tcpv3.TcpProxy) { p.StatPrefix = "" }), "stat_prefix"},
		{"no cluster", bad(func(p *tcpv3.TcpProxy) { p.ClusterSpecifier = nil }), "one of cluster or weighted_clusters"},
		{"empty cluster", simple(""), "cluster: must not be empty"},
		{"zero weight", weighted("svc", 1, "svc", 0), "weighted_clusters.clusters[1].weight"},
		{"no weighted clusters", weighted(), "weighted_clusters.clusters"},
		{"zero attempts", bad(func(p *tcpv3.TcpProxy) { p.MaxConnectAttempts = wrapperspb.UInt32(0) }), "max_connect_attempts"},
		{"negative idle", bad(func(p *tcpv3.TcpProxy) { p.IdleTimeout = durationpb.New(-time.Second) }), "idle_timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.pb, &networkfilter.FactoryContext{Stats: stats.NewStore(), Logger: quiet()})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	p, err := Build(simple("svc"), &networkfilter.FactoryContext{Stats: stats.NewStore(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if p.idleTimeout != time.Hour || p.maxAttempts != 1 {
		t.Errorf("idle %v attempts %d, want 1h and 1", p.idleTimeout, p.maxAttempts)
	}
	pb := simple("svc")
	pb.IdleTimeout = durationpb.New(0)
	if p, _ = Build(pb, &networkfilter.FactoryContext{Stats: stats.NewStore(), Logger: quiet()}); p.idleTimeout != 0 {
		t.Errorf("idle_timeout 0 gave %v, want disabled", p.idleTimeout)
	}
}

func TestAccessLog(t *testing.T) {
	up := startServer(t, echo)
	dead := closedAddr(t)
	path := filepath.Join(t.TempDir(), "tcp.log")
	tc, err := anypb.New(&filev3.FileAccessLog{Path: path, AccessLogFormat: textFormat(
		"%UPSTREAM_CLUSTER% %UPSTREAM_HOST% %BYTES_RECEIVED% %BYTES_SENT% %RESPONSE_FLAGS% %PROTOCOL%\n",
	)})
	if err != nil {
		t.Fatal(err)
	}
	pb := weighted("svc", 1, "dead", 1)
	pb.AccessLog = []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: tc}}}
	h := newHarness(t, pb, clusterPB("svc", up), clusterPB("dead", dead))
	want := map[string]bool{}
	for len(want) < 2 {
		c := h.dial()
		c.Write([]byte("abc"))
		c.CloseWrite()
		io.ReadAll(c)
		switch si := h.wait(); si.UpstreamCluster {
		case "svc":
			want["svc "+up+" 3 3 - -"] = true
		case "dead":
			// The bytes were never read: the upstream was not there.
			want["dead "+dead+" 0 0 UF,URX -"] = true
		}
	}
	h.files.Flush()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !want[line] {
			t.Errorf("unexpected line %q (want one of %v)", line, want)
		}
	}
	for line := range want {
		if !strings.Contains(string(data), line+"\n") {
			t.Errorf("missing line %q in:\n%s", line, data)
		}
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

// TestClusterFollowsCDS builds the proxy before its cluster exists: each
// connection loads the cluster, so CDS adding, changing and removing it
// applies to the next connection without rebuilding the proxy.
func TestClusterFollowsCDS(t *testing.T) {
	one := startServer(t, func(c net.Conn) { io.WriteString(c, "one") })
	two := startServer(t, func(c net.Conn) { io.WriteString(c, "two") })
	h := newHarness(t, simple("dyn"))
	read := func() (string, *streaminfo.StreamInfo) {
		t.Helper()
		c := h.dial()
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		c.Close() // the upstream's FIN only half-closes the session
		return string(got), h.wait()
	}
	if got, si := read(); got != "" || si.Flags.String() != "NC" {
		t.Fatalf("before CDS: %q %v", got, si.Flags)
	}
	cds := h.clusters.CDS()
	full := func(v string, cs ...*clusterv3.Cluster) {
		t.Helper()
		u := &xds.Update{Version: v, Full: true}
		for _, c := range cs {
			u.Resources = append(u.Resources, xds.Resource{Name: c.GetName(), Message: c})
		}
		if err := cds.Update(u); err != nil {
			t.Fatal(err)
		}
	}
	full("1", clusterPB("dyn", one))
	if got, si := read(); got != "one" || si.UpstreamCluster != "dyn" {
		t.Fatalf("after add: %q %q", got, si.UpstreamCluster)
	}
	full("2", clusterPB("dyn", two))
	if got, _ := read(); got != "two" {
		t.Fatalf("after modify: %q", got)
	}
	full("3")
	if got, si := read(); got != "" || si.Flags.String() != "NC" {
		t.Fatalf("after removal: %q %v", got, si.Flags)
	}
	if n := h.counter("tcp.tp.downstream_cx_no_route"); n != 2 {
		t.Fatalf("downstream_cx_no_route = %d, want 2", n)
	}
}

// Each connect attempt reports its outcome once, for outlier detection.
func TestConnectOutcomesReported(t *testing.T) {
	dead := closedAddr(t)
	live := startServer(t, echo)
	pb := simple("svc")
	pb.MaxConnectAttempts = wrapperspb.UInt32(2)
	h := newHarness(t, pb, clusterPB("svc", dead, live))
	var mu sync.Mutex
	got := map[string][]cluster.OutcomeKind{}
	h.clusters.Get("svc").ObserveOutcomes(func(_ *cluster.Cluster, o cluster.Outcome) {
		mu.Lock()
		got[o.Host.Address] = append(got[o.Host.Address], o.Kind)
		mu.Unlock()
	})
	for range 4 {
		c := h.dial()
		c.CloseWrite()
		io.ReadAll(c)
		h.wait()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got[live]) != 4 || len(got[dead]) == 0 {
		t.Fatalf("outcomes: %v", got)
	}
	for _, k := range got[live] {
		if k != cluster.OutcomeConnected {
			t.Errorf("live host outcome %v", k)
		}
	}
	for _, k := range got[dead] {
		if k != cluster.OutcomeConnectFailed {
			t.Errorf("dead host outcome %v", k)
		}
	}
}
