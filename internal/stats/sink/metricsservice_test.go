package sink

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	msv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	promv1 "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/testutil"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// metricsServer is a real StreamMetrics service that keeps every message.
type metricsServer struct {
	msv3.UnimplementedMetricsServiceServer
	mu   sync.Mutex
	msgs []*msv3.StreamMetricsMessage
}

func (s *metricsServer) StreamMetrics(st msv3.MetricsService_StreamMetricsServer) error {
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return st.SendAndClose(&msv3.StreamMetricsResponse{})
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
	}
}

func (s *metricsServer) got() []*msv3.StreamMetricsMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*msv3.StreamMetricsMessage(nil), s.msgs...)
}

// TestMetricsService: flushes reach a real metrics service as Prometheus
// families — cumulative counters, gauges, a histogram as summary and
// buckets — with the node on the stream's first message only.
func TestMetricsService(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ms := &metricsServer{}
	msv3.RegisterMetricsServiceServer(srv, ms)
	go srv.Serve(ln)
	defer srv.Stop()
	c := testutil.StaticCluster("metrics", ln.Addr())
	//lint:ignore SA1019 the deprecated field is the shortest way to say HTTP/2
	c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
	cm, err := cluster.NewManager([]*clusterv3.Cluster{c}, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Close()

	store := stats.NewStore()
	store.Counter("cluster.a.upstream_rq_total").Add(3)
	store.Gauge("server.live", stats.NeverImport).Set(1)
	h := store.Histogram("cluster.a.upstream_rq_time", stats.Milliseconds)
	h.Record(7)
	h.Record(30)
	f, err := New([]*metricsv3.StatsSink{sinkPB(t, "envoy.stat_sinks.metrics_service", &metricsv3.MetricsServiceConfig{
		GrpcService:         &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "metrics"}}},
		TransportApiVersion: corev3.ApiVersion_V3,
		EmitTagsAsLabels:    true,
	})}, 0, store, nil, ClustersFor(cm, "node-1", "edge"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Flush()
	store.Counter("cluster.a.upstream_rq_total").Add(2)
	testutil.WaitFor(t, "the first flush at the service", func() bool { return len(ms.got()) == 1 })
	f.Flush()
	testutil.WaitFor(t, "the second flush at the service", func() bool { return len(ms.got()) == 2 })

	msgs := ms.got()
	if id := msgs[0].GetIdentifier().GetNode(); id.GetId() != "node-1" || id.GetCluster() != "edge" {
		t.Errorf("identifier = %v", msgs[0].GetIdentifier())
	}
	if msgs[1].GetIdentifier() != nil {
		t.Error("identifier repeated on the second message")
	}
	fams := map[string][]*promv1.MetricFamily{}
	for _, fam := range msgs[1].GetEnvoyMetrics() {
		fams[fam.GetName()] = append(fams[fam.GetName()], fam)
	}
	rq := fams["cluster.upstream_rq_total"]
	if len(rq) != 1 || rq[0].GetType() != promv1.MetricType_COUNTER || rq[0].GetMetric()[0].GetCounter().GetValue() != 5 {
		t.Fatalf("counter = %v (families %v)", rq, fams)
	}
	if l := rq[0].GetMetric()[0].GetLabel(); len(l) != 1 || l[0].GetName() != "envoy.cluster_name" || l[0].GetValue() != "a" {
		t.Errorf("labels = %v", l)
	}
	if g := fams["server.live"]; len(g) != 1 || g[0].GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Errorf("gauge = %v", g)
	}
	var sawSummary, sawHist bool
	for _, fam := range fams["cluster.upstream_rq_time"] {
		m := fam.GetMetric()[0]
		switch fam.GetType() {
		case promv1.MetricType_SUMMARY:
			sawSummary = m.GetSummary().GetSampleCount() == 2 && m.GetSummary().GetSampleSum() == 37 && len(m.GetSummary().GetQuantile()) == len(summaryQuantiles)
		case promv1.MetricType_HISTOGRAM:
			b := m.GetHistogram().GetBucket()
			sawHist = m.GetHistogram().GetSampleCount() == 2 && b[len(b)-1].GetCumulativeCount() == 2
		}
	}
	if !sawSummary || !sawHist {
		t.Errorf("histogram families = %v", fams["cluster.upstream_rq_time"])
	}
}

// TestMetricsServiceErrors: config errors name the field.
func TestMetricsServiceErrors(t *testing.T) {
	store := stats.NewStore()
	cm, err := cluster.NewManager(nil, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Close()
	for _, tc := range []struct {
		c    *metricsv3.MetricsServiceConfig
		want string
	}{
		{&metricsv3.MetricsServiceConfig{}, "stats_sinks[0]: grpc_service: is required"},
		{&metricsv3.MetricsServiceConfig{GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "x"}}},
			ReportCountersAsDeltas: wrapperspb.Bool(true)}, `grpc_service.envoy_grpc.cluster_name: unknown cluster "x"`},
	} {
		_, err := New([]*metricsv3.StatsSink{sinkPB(t, "ms", tc.c)}, 0, store, nil, ClustersFor(cm, "", ""))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}
