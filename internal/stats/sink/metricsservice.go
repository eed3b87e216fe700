package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	msv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	promv1 "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/grpcclient"
	"github.com/legate-proxy/legate/internal/stats"
)

// TypeMetricsService is envoy.stat_sinks.metrics_service's config type.
const TypeMetricsService = "envoy.config.metrics.v3.MetricsServiceConfig"

// GRPCServices resolves a GrpcService for a sink; the server's cluster
// lookup (Clusters) implements it.
type GRPCServices interface {
	GRPCService(gs *corev3.GrpcService, field string) (*grpcclient.Service, error)
	// Node identifies the proxy (nil: none).
	Node() *corev3.Node
}

// summaryQuantiles are the quantiles Envoy's metrics service reports.
var summaryQuantiles = []float64{0, 0.25, 0.5, 0.75, 0.90, 0.95, 0.99, 0.995, 0.999, 1}

// metricsService streams each flush as Prometheus MetricFamily messages
// over StreamMetrics; the stream opens on the first flush and again after
// it fails. Only the sink's goroutine uses it.
type metricsService struct {
	svc        *grpcclient.Service
	node       *corev3.Node
	deltas     bool
	labels     bool
	summary    bool
	histogram  bool
	batch      int
	conn       *grpc.ClientConn
	stream     grpc.ClientStreamingClient[msv3.StreamMetricsMessage, msv3.StreamMetricsResponse]
	cancel     context.CancelFunc
	histograms func() []*stats.Histogram
}

func newMetricsService(c *metricsv3.MetricsServiceConfig, clusters ClusterLookup, store *stats.Store) (*metricsService, error) {
	switch v := c.GetTransportApiVersion(); v {
	case corev3.ApiVersion_V3, corev3.ApiVersion_AUTO:
	default:
		return nil, fmt.Errorf("transport_api_version: %v is not supported, only V3", v)
	}
	gs, ok := clusters.(GRPCServices)
	if !ok || c.GetGrpcService() == nil {
		return nil, errors.New("grpc_service: is required")
	}
	svc, err := gs.GRPCService(c.GetGrpcService(), "grpc_service")
	if err != nil {
		return nil, err
	}
	m := &metricsService{svc: svc, node: gs.Node(), labels: c.GetEmitTagsAsLabels(), batch: int(c.GetBatchSize()), histograms: store.Histograms}
	// Envoy's default reports counters as cumulative values.
	m.deltas = c.GetReportCountersAsDeltas().GetValue()
	switch c.GetHistogramEmitMode() {
	case metricsv3.HistogramEmitMode_SUMMARY_AND_HISTOGRAM:
		m.summary, m.histogram = true, true
	case metricsv3.HistogramEmitMode_SUMMARY:
		m.summary = true
	case metricsv3.HistogramEmitMode_HISTOGRAM:
		m.histogram = true
	}
	return m, nil
}

// families converts one snapshot; called by Flush under the flusher's lock.
func (m *metricsService) families(snap []metric, tx *stats.TagExtractor) []*promv1.MetricFamily {
	ts := proto.Int64(time.Now().UnixMilli())
	var out []*promv1.MetricFamily
	add := func(name string, typ promv1.MetricType, metric *promv1.Metric) {
		metric.TimestampMs = ts
		if m.labels {
			t := tx.Extract(name)
			name = t.Name
			for _, tag := range t.Tags {
				metric.Label = append(metric.Label, &promv1.LabelPair{Name: proto.String(tag.Name), Value: proto.String(tag.Value)})
			}
		}
		out = append(out, &promv1.MetricFamily{Name: proto.String(name), Type: typ.Enum(), Metric: []*promv1.Metric{metric}})
	}
	for _, s := range snap {
		switch s.kind {
		case 'c':
			v := s.total
			if m.deltas {
				v = uint64(s.value)
			}
			add(s.name, promv1.MetricType_COUNTER, &promv1.Metric{Counter: &promv1.Counter{Value: proto.Float64(float64(v))}})
		case 'g':
			add(s.name, promv1.MetricType_GAUGE, &promv1.Metric{Gauge: &promv1.Gauge{Value: proto.Float64(float64(s.value))}})
		}
	}
	// Histograms go as their cumulative distribution, as Envoy sends them.
	for _, h := range m.histograms() {
		counts := h.BucketCounts()
		var total uint64
		for _, c := range counts {
			total += c
		}
		if total == 0 {
			continue
		}
		bounds := h.Bounds()
		if m.summary {
			sum := &promv1.Summary{SampleCount: proto.Uint64(total), SampleSum: proto.Float64(float64(h.Sum()))}
			for _, q := range summaryQuantiles {
				v, _ := stats.Quantile(bounds, counts, q)
				sum.Quantile = append(sum.Quantile, &promv1.Quantile{Quantile: proto.Float64(q), Value: proto.Float64(v)})
			}
			add(h.Name(), promv1.MetricType_SUMMARY, &promv1.Metric{Summary: sum})
		}
		if m.histogram {
			hist := &promv1.Histogram{SampleCount: proto.Uint64(total), SampleSum: proto.Float64(float64(h.Sum()))}
			var cum uint64
			for i, b := range bounds {
				cum += counts[i]
				hist.Bucket = append(hist.Bucket, &promv1.Bucket{UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(cum)})
			}
			add(h.Name(), promv1.MetricType_HISTOGRAM, &promv1.Metric{Histogram: hist})
		}
	}
	return out
}

// sendFamilies sends one flush, in messages of at most batch families.
func (m *metricsService) sendFamilies(fams []*promv1.MetricFamily) error {
	for len(fams) > 0 {
		n := len(fams)
		if m.batch > 0 && n > m.batch {
			n = m.batch
		}
		if err := m.sendOne(fams[:n]); err != nil {
			return err
		}
		fams = fams[n:]
	}
	return nil
}

func (m *metricsService) sendOne(fams []*promv1.MetricFamily) error {
	msg := &msv3.StreamMetricsMessage{EnvoyMetrics: fams}
	if m.stream == nil {
		if m.conn == nil {
			conn, err := m.svc.Dial()
			if err != nil {
				return err
			}
			m.conn = conn
		}
		ctx, cancel := context.WithCancel(m.svc.Outgoing(context.Background()))
		st, err := msv3.NewMetricsServiceClient(m.conn).StreamMetrics(ctx)
		if err != nil {
			cancel()
			return err
		}
		m.stream, m.cancel = st, cancel
		// The node identifies the stream on its first message only.
		msg.Identifier = &msv3.StreamMetricsMessage_Identifier{Node: m.node}
	}
	if err := m.stream.Send(msg); err != nil {
		m.cancel()
		m.stream, m.cancel = nil, nil
		return err
	}
	return nil
}

// send and close make the service an output; flushes reach it as
// families, never as lines.
func (m *metricsService) send([]string) error { return nil }

func (m *metricsService) close() {
	if m.cancel != nil {
		m.cancel()
	}
	if m.conn != nil {
		m.conn.Close()
	}
}

// nodeOf is the Node a metrics service stream identifies itself with.
func nodeOf(id, cluster string) *corev3.Node {
	return &corev3.Node{Id: id, Cluster: strings.Clone(cluster)}
}
