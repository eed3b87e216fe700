package stats_test

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

func staticCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9}}}}}}}},
		}}},
	}
}

// realisticStore holds what a running Legate has: the cluster manager's and
// clusters' own stats (created by the cluster package), listener, HCM,
// router and TCP proxy stats under the names those packages use, server.*
// gauges, and histograms with samples.
func realisticStore(t *testing.T) (*stats.Store, *stats.TagExtractor) {
	t.Helper()
	s, tx, err := stats.NewStoreFromConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cluster.NewManager([]*clusterv3.Cluster{staticCluster("service1"), staticCluster("statsd")}, cluster.Options{Stats: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	cs := m.Get("service1").Stats
	cs.UpstreamRqTotal.Add(10)
	cs.RecordStatus(200)
	cs.RecordStatus(503)
	cs.UpstreamCxConnectMs.Record(2)
	cs.UpstreamCxLengthMs.Record(1500)
	cs.UpstreamRqTime.Record(12)
	cs.UpstreamRqTime.Record(4000)
	cs.UpstreamCxRxBytesTotal.Add(1 << 20)

	ss := stats.NewServerStats(s, time.Now().Add(-time.Minute))
	ss.FirstCertExpiry = func() (time.Time, bool) { return time.Now().Add(30 * 24 * time.Hour), true }
	ss.Refresh()

	for _, l := range []string{"listener.0.0.0.0_10000.", "listener.[__]_8443.", "listener.admin."} {
		sc := s.Scope(l)
		sc.Counter("downstream_cx_total").Add(3)
		sc.Counter("downstream_cx_destroy").Add(1)
		sc.Counter("downstream_cx_overflow")
		sc.Gauge("downstream_cx_active", stats.Accumulate).Set(2)
		sc.Histogram("downstream_cx_length_ms", stats.Milliseconds).Record(250)
		sc.Counter("ssl.handshake")
		sc.Counter("http.ingress_http.downstream_rq_2xx").Inc()
	}
	for _, p := range []string{"http.ingress_http.", "http.admin."} {
		sc := s.Scope(p)
		for _, n := range []string{"downstream_cx_total", "downstream_cx_http1_total", "downstream_cx_destroy",
			"downstream_cx_rx_bytes_total", "downstream_cx_tx_bytes_total", "downstream_rq_total", "downstream_rq_completed",
			"downstream_rq_timeout", "downstream_rq_rx_reset", "no_route", "no_cluster", "rq_redirect", "rq_total",
			"downstream_rq_1xx", "downstream_rq_2xx", "downstream_rq_3xx", "downstream_rq_4xx", "downstream_rq_5xx"} {
			sc.Counter(n).Inc()
		}
		sc.Gauge("downstream_cx_active", stats.Accumulate).Set(1)
		sc.Gauge("downstream_rq_active", stats.Accumulate)
		sc.Histogram("downstream_cx_length_ms", stats.Milliseconds).Record(30)
		sc.Histogram("downstream_rq_time", stats.Milliseconds).Record(7)
	}
	tcp := s.Scope("tcp.egress.")
	tcp.Counter("downstream_cx_total").Inc()
	tcp.Counter("downstream_cx_rx_bytes_total").Add(100)
	tcp.Counter("idle_timeout")
	tcp.Counter("upstream_flush_total")
	s.Counter("statsd.cx_overflow")
	s.Gauge("listener_manager.total_listeners_active", stats.NeverImport).Set(2)
	s.Counter("listener_manager.listener_added").Add(2)
	s.Histogram("listener_manager.worker_0.dispatcher.loop_duration_us", stats.Microseconds).Record(1500)
	return s, tx
}

func TestPrometheusPassesPromlint(t *testing.T) {
	s, tx := realisticStore(t)
	var b bytes.Buffer
	if err := stats.WritePrometheus(&b, s, tx, nil, false); err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.New(bytes.NewReader(b.Bytes())).Lint()
	if err != nil {
		t.Fatalf("promlint cannot parse the output: %v\n%s", err, b.String())
	}
	for _, p := range problems {
		// Envoy's unit-suffixed names (_ms, _us, days) are kept, because
		// dashboards query them; that is the one complaint allowed.
		if strings.HasPrefix(p.Text, "use base unit") || p.Text == "metric names should not contain abbreviated units" {
			continue
		}
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if t.Failed() {
		t.Logf("output:\n%s", b.String())
	}

	fams, err := parse(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	// Envoy's series names are kept, including those promlint would
	// want renamed; the dashboards' queries keep working.
	for _, name := range []string{"envoy_cluster_upstream_rq_xx", "envoy_cluster_upstream_rq", "envoy_cluster_upstream_rq_total",
		"envoy_http_downstream_rq_xx", "envoy_cluster_upstream_rq_time", "envoy_http_downstream_rq_time",
		"envoy_cluster_upstream_cx_rx_bytes_total", "envoy_server_memory_allocated", "envoy_server_total_connections",
		"envoy_cluster_membership_total", "envoy_listener_downstream_cx_active"} {
		if fams[name] == nil {
			t.Errorf("family %s missing", name)
		}
	}
	if f := fams["envoy_cluster_upstream_rq_xx"]; f.GetType() != dto.MetricType_UNTYPED {
		t.Errorf("upstream_rq_xx type = %v", f.GetType())
	}
	if f := fams["envoy_cluster_upstream_rq_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("upstream_rq_total type = %v", f.GetType())
	}
	// Unit-suffixed stats keep Envoy's names and units (milliseconds,
	// microseconds, days), bucket bounds included.
	connect := fams["envoy_cluster_upstream_cx_connect_ms"]
	if connect.GetType() != dto.MetricType_HISTOGRAM || fams["envoy_cluster_upstream_cx_connect_seconds"] != nil {
		t.Fatalf("connect histogram = %v", connect)
	}
	h := connect.Metric[0].GetHistogram()
	if h.GetSampleCount() != 1 || h.GetSampleSum() != 2 || h.Bucket[0].GetUpperBound() != 0.5 {
		t.Errorf("connect histogram in ms = %v", h)
	}
	if !strings.Contains(b.String(), "\nenvoy_cluster_upstream_cx_connect_ms_bucket{") {
		t.Error("envoy_cluster_upstream_cx_connect_ms_bucket missing")
	}
	if loop := fams["envoy_listener_manager_dispatcher_loop_duration_us"]; loop == nil || loop.Metric[0].GetHistogram().GetSampleSum() != 1500 {
		t.Errorf("loop_duration_us in us = %v", loop)
	}
	days := fams["envoy_server_days_until_first_cert_expiring"]
	if days == nil || days.Metric[0].GetGauge().GetValue() != 29 && days.Metric[0].GetGauge().GetValue() != 30 {
		t.Errorf("cert expiry in days = %v", days)
	}
}

func TestProcessMetrics(t *testing.T) {
	p := stats.ReadProcess()
	if !p.Proc {
		t.Skip("no /proc on this platform")
	}
	if p.CPUSeconds <= 0 || p.ResidentBytes < 1<<20 || p.VirtualBytes < p.ResidentBytes ||
		p.OpenFDs < 3 || p.MaxFDs < p.OpenFDs || p.Goroutines < 1 || p.Threads < 1 || p.HeapBytes == 0 || p.HeapSysBytes < p.HeapBytes {
		t.Errorf("implausible: %+v", p)
	}
	if age := time.Since(p.StartTime); age < 0 || age > time.Hour {
		t.Errorf("start time %v is %v ago", p.StartTime, age)
	}

	s, tx, err := stats.NewStoreFromConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := stats.WritePrometheus(&b, s, tx, nil, false); err != nil {
		t.Fatal(err)
	}
	fams, err := parse(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	want := map[string]dto.MetricType{
		"process_cpu_seconds_total": dto.MetricType_COUNTER, "process_resident_memory_bytes": dto.MetricType_GAUGE,
		"process_virtual_memory_bytes": dto.MetricType_GAUGE, "process_open_fds": dto.MetricType_GAUGE,
		"process_max_fds": dto.MetricType_GAUGE, "process_start_time_seconds": dto.MetricType_GAUGE,
		"go_goroutines": dto.MetricType_GAUGE, "go_threads": dto.MetricType_GAUGE, "go_info": dto.MetricType_GAUGE,
		"go_memstats_heap_alloc_bytes": dto.MetricType_GAUGE,
	}
	for name, typ := range want {
		f := fams[name]
		if f == nil || f.GetType() != typ {
			t.Errorf("%s = %v", name, f)
		}
	}
	if v := fams["process_start_time_seconds"].GetMetric()[0].GetGauge().GetValue(); math.Abs(v-float64(p.StartTime.Unix())) > 2 {
		t.Errorf("process_start_time_seconds = %v", v)
	}
	// A plain NewStore (as internal packages and tests use) has none.
	b.Reset()
	stats.WritePrometheus(&b, stats.NewStore(), nil, nil, false)
	if b.Len() != 0 {
		t.Errorf("NewStore output = %q", b.String())
	}
}

func parse(r *bytes.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	return p.TextToMetricFamilies(r)
}
