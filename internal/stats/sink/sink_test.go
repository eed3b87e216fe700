package sink

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

func sockAddr(addr net.Addr) *corev3.Address {
	host, port, _ := net.SplitHostPort(addr.String())
	p, _ := strconv.Atoi(port)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}
}

func sinkPB(t *testing.T, name string, m proto.Message) *metricsv3.StatsSink {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &metricsv3.StatsSink{Name: name, ConfigType: &metricsv3.StatsSink_TypedConfig{TypedConfig: a}}
}

// udpCollector reads datagrams from a real UDP socket.
type udpCollector struct {
	t    *testing.T
	conn net.PacketConn
}

func newUDPCollector(t *testing.T) *udpCollector {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &udpCollector{t: t, conn: pc}
}

// until reads datagrams until every wanted line has been seen, returning
// all datagrams read.
func (c *udpCollector) until(want ...string) []string {
	c.t.Helper()
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	var got []string
	buf := make([]byte, 65536)
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(missing) > 0 {
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			c.t.Fatalf("still missing %v after %d datagrams %q: %v", keys(missing), len(got), got, err)
		}
		d := string(buf[:n])
		got = append(got, d)
		for _, l := range strings.Split(d, "\n") {
			delete(missing, l)
		}
	}
	return got
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestStatsdUDP(t *testing.T) {
	col := newUDPCollector(t)
	store := stats.NewStore()
	f, err := New([]*metricsv3.StatsSink{sinkPB(t, "envoy.stat_sinks.statsd", &metricsv3.StatsdSink{
		StatsdSpecifier: &metricsv3.StatsdSink_Address{Address: sockAddr(col.conn.LocalAddr())},
	})}, time.Hour, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	rq := store.Counter("cluster.svc.upstream_rq_total")
	rq.Add(5)
	store.Counter("cluster.svc.upstream_rq_timeout") // never used: never sent
	active := store.Gauge("cluster.svc.upstream_cx_active", stats.Accumulate)
	active.Set(3)
	rqTime := store.Histogram("cluster.svc.upstream_rq_time", stats.Milliseconds)
	rqTime.Record(12)
	f.Flush()
	first := col.until(
		"envoy.cluster.svc.upstream_rq_total:5|c",
		"envoy.cluster.svc.upstream_cx_active:3|g",
		"envoy.cluster.svc.upstream_rq_time:12|ms", // a lone sample is exact
	)
	for _, d := range first {
		if strings.Contains(d, "\n") || strings.Contains(d, "upstream_rq_timeout") {
			t.Errorf("datagram %q: want one used stat per datagram", d)
		}
	}

	// Second interval: counters are deltas, a used counter with no change
	// still reports 0, a gauge back at 0 is still sent, and histogram
	// samples are summarised per bucket.
	rq.Add(2)
	active.Set(0)
	for _, v := range []uint64{3, 3, 4, 4} { // all in (1, 5]: their mean
		rqTime.Record(v)
	}
	cx := store.Histogram("cluster.svc.upstream_cx_length_ms", stats.Milliseconds)
	cx.Record(2)  // (1, 5]: midpoint 3
	cx.Record(20) // (10, 25]: midpoint 17.5
	cx.Record(7_000_000)
	f.Flush()
	col.until(
		"envoy.cluster.svc.upstream_rq_total:2|c",
		"envoy.cluster.svc.upstream_cx_active:0|g",
		"envoy.cluster.svc.upstream_rq_time:3.5|ms|@0.25",
		"envoy.cluster.svc.upstream_cx_length_ms:3|ms",
		"envoy.cluster.svc.upstream_cx_length_ms:17.5|ms",
		"envoy.cluster.svc.upstream_cx_length_ms:3600000|ms", // overflow: the highest bound
	)
	f.Flush()
	for _, d := range col.until("envoy.cluster.svc.upstream_rq_total:0|c", "envoy.cluster.svc.upstream_cx_active:0|g") {
		if strings.Contains(d, "|ms") {
			t.Errorf("histogram sent without new samples: %q", d)
		}
	}
}

func TestDogStatsdTagsAndDatagrams(t *testing.T) {
	col := newUDPCollector(t)
	store := stats.NewStore()
	tx, err := stats.NewTagExtractorFromConfig(&metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{
		{TagName: "env", TagValue: &metricsv3.TagSpecifier_FixedValue{FixedValue: "prod"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	const maxBytes = 200
	f, err := New([]*metricsv3.StatsSink{sinkPB(t, "envoy.stat_sinks.dog_statsd", &metricsv3.DogStatsdSink{
		DogStatsdSpecifier:  &metricsv3.DogStatsdSink_Address{Address: sockAddr(col.conn.LocalAddr())},
		Prefix:              "legate",
		MaxBytesPerDatagram: wrapperspb.UInt64(maxBytes),
	})}, time.Hour, store, tx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	store.Counter("cluster.svc.upstream_rq_503").Add(2)
	store.Counter("http.ingress_http.downstream_rq_2xx").Add(9)
	store.Gauge("server.live", stats.NeverImport).Set(1)
	h := store.Histogram("http.ingress_http.downstream_rq_time", stats.Milliseconds)
	h.Record(30)
	h.Record(40)
	for i := range 20 { // enough lines to need several datagrams
		store.Counter("cluster.c" + strconv.Itoa(i) + ".upstream_rq_total").Inc()
	}
	f.Flush()
	got := col.until(
		"legate.cluster.upstream_rq:2|c|#envoy.response_code:503,envoy.cluster_name:svc,env:prod",
		"legate.http.downstream_rq_xx:9|c|#envoy.response_code_class:2,envoy.http_conn_manager_prefix:ingress_http,env:prod",
		"legate.server.live:1|g|#env:prod",
		"legate.http.downstream_rq_time:35|ms|@0.5|#envoy.http_conn_manager_prefix:ingress_http,env:prod",
		"legate.cluster.upstream_rq_total:1|c|#envoy.cluster_name:c19,env:prod",
	)
	multi := false
	for _, d := range got {
		if len(d) > maxBytes {
			t.Errorf("datagram of %d bytes > max_bytes_per_datagram %d", len(d), maxBytes)
		}
		if strings.Contains(d, "\n") {
			multi = true
		}
	}
	if !multi {
		t.Error("max_bytes_per_datagram set but no datagram carries several lines")
	}
}

func staticCluster(name string, addr net.Addr) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(2 * time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: sockAddr(addr)}}}},
		}}},
	}
}

func TestStatsdTCPCluster(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	store := stats.NewStore()
	m, err := cluster.NewManager([]*clusterv3.Cluster{staticCluster("statsd", ln.Addr())}, cluster.Options{Stats: store})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	f, err := New([]*metricsv3.StatsSink{sinkPB(t, "envoy.stat_sinks.statsd", &metricsv3.StatsdSink{
		StatsdSpecifier: &metricsv3.StatsdSink_TcpClusterName{TcpClusterName: "statsd"},
		Prefix:          "edge",
	})}, time.Hour, store, nil, Clusters(m))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	rq := store.Counter("cluster.svc.upstream_rq_total")
	rq.Add(4)
	store.Histogram("cluster.svc.upstream_rq_time", stats.Milliseconds).Record(9)
	f.Flush()

	accept := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}
	readUntil := func(r *bufio.Reader, want ...string) {
		t.Helper()
		missing := map[string]bool{}
		for _, w := range want {
			missing[w] = true
		}
		for len(missing) > 0 {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("missing %v: %v", keys(missing), err)
			}
			delete(missing, strings.TrimSuffix(line, "\n"))
		}
	}
	c, r := accept()
	// TCP lines carry full names (no tags) and a newline each.
	readUntil(r, "edge.cluster.svc.upstream_rq_total:4|c", "edge.cluster.svc.upstream_rq_time:9|ms")

	// The same connection carries the next flush.
	rq.Inc()
	f.Flush()
	readUntil(r, "edge.cluster.svc.upstream_rq_total:1|c")

	// The collector goes away: a later flush reconnects.
	c.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			rq.Inc()
			f.Flush()
		}
	}()
	c2, r2 := accept()
	defer c2.Close()
	line, err := r2.ReadString('\n')
	done <- struct{}{}
	<-done
	if err != nil || !strings.HasPrefix(line, "edge.") {
		t.Errorf("after reconnect: %q, %v", line, err)
	}
}

// A sink nobody listens on, or that cannot be reached, costs the flusher
// nothing: Flush only queues.
func TestUnreachableSinksDoNotBlock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr()
	ln.Close() // connection refused from now on
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadUDP := pc.LocalAddr()
	pc.Close()

	store := stats.NewStore()
	m, err := cluster.NewManager([]*clusterv3.Cluster{staticCluster("dead", deadAddr)}, cluster.Options{Stats: store})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	f, err := New([]*metricsv3.StatsSink{
		sinkPB(t, "tcp", &metricsv3.StatsdSink{StatsdSpecifier: &metricsv3.StatsdSink_TcpClusterName{TcpClusterName: "dead"}}),
		sinkPB(t, "udp", &metricsv3.StatsdSink{StatsdSpecifier: &metricsv3.StatsdSink_Address{Address: sockAddr(deadUDP)}}),
	}, time.Hour, store, nil, Clusters(m))
	if err != nil {
		t.Fatal(err)
	}
	store.Counter("c").Inc()
	for range 50 {
		f.Flush()
	}
	f.Close()
	f.Flush() // after Close: nothing, no panic
}

func TestRunFlushesOnStop(t *testing.T) {
	col := newUDPCollector(t)
	store := stats.NewStore()
	bs := &bootstrapv3.Bootstrap{
		StatsFlushInterval: durationpb.New(4 * time.Minute), // never ticks during the test
		StatsSinks: []*metricsv3.StatsSink{sinkPB(t, "envoy.stat_sinks.statsd", &metricsv3.StatsdSink{
			StatsdSpecifier: &metricsv3.StatsdSink_Address{Address: sockAddr(col.conn.LocalAddr())},
		})},
	}
	f, err := FromBootstrap(bs, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	refreshed := 0
	f.BeforeFlush = func() { refreshed++; store.Gauge("server.uptime", stats.Accumulate).Set(42) }
	store.Counter("http.x.downstream_rq_total").Add(3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	cancel()
	<-done
	col.until("envoy.http.x.downstream_rq_total:3|c", "envoy.server.uptime:42|g")
	if refreshed != 1 {
		t.Errorf("BeforeFlush ran %d times", refreshed)
	}
}

func TestConfigErrors(t *testing.T) {
	store := stats.NewStore()
	udp := &metricsv3.StatsdSink{StatsdSpecifier: &metricsv3.StatsdSink_Address{Address: sockAddr(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8125})}}
	tests := []struct {
		bs   *bootstrapv3.Bootstrap
		want string
	}{
		{&bootstrapv3.Bootstrap{StatsSinks: []*metricsv3.StatsSink{sinkPB(t, "x", &metricsv3.StatsdSink{
			StatsdSpecifier: &metricsv3.StatsdSink_TcpClusterName{TcpClusterName: "nope"}})}},
			`stats_sinks[0]: tcp_cluster_name: unknown cluster "nope"`},
		{&bootstrapv3.Bootstrap{StatsSinks: []*metricsv3.StatsSink{sinkPB(t, "x", &metricsv3.StatsdSink{})}},
			"stats_sinks[0]: one of address or tcp_cluster_name is required"},
		{&bootstrapv3.Bootstrap{StatsSinks: []*metricsv3.StatsSink{sinkPB(t, "x", &metricsv3.DogStatsdSink{})}},
			"stats_sinks[0]: address: a socket_address is required"},
		{&bootstrapv3.Bootstrap{StatsSinks: []*metricsv3.StatsSink{{Name: "x"}}}, "stats_sinks[0]: typed_config is required"},
		{&bootstrapv3.Bootstrap{StatsSinks: []*metricsv3.StatsSink{sinkPB(t, "x", &metricsv3.HystrixSink{})}},
			"HystrixSink is not a supported stats sink"},
		{&bootstrapv3.Bootstrap{StatsFlushInterval: durationpb.New(time.Hour),
			StatsSinks: []*metricsv3.StatsSink{sinkPB(t, "x", udp)}}, "stats_flush_interval: 1h0m0s is outside"},
	}
	for _, tc := range tests {
		_, err := FromBootstrap(tc.bs, store, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
	f, err := FromBootstrap(&bootstrapv3.Bootstrap{}, store, nil, nil)
	if f != nil || err != nil {
		t.Errorf("no sinks: %v, %v", f, err)
	}
	f, err = FromBootstrap(&bootstrapv3.Bootstrap{StatsSinks: []*metricsv3.StatsSink{sinkPB(t, "x", udp)}}, store, nil, nil)
	if err != nil || f.Interval() != DefaultFlushInterval {
		t.Errorf("default interval: %v, %v", f, err)
	}
	f.Close()
}
