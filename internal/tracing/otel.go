package tracing

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/grpcclient"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/version"
)

// reportStats count one transport's reports: sent (attempted), success
// (accepted by the collector) and failed (error or rejection).
type reportStats struct {
	sent, success, failed *stats.Counter
}

func newReportStats(sc stats.Scope, prefix string) reportStats {
	return reportStats{
		sent:    sc.Counter(prefix + "_reports_sent"),
		success: sc.Counter(prefix + "_reports_success"),
		failed:  sc.Counter(prefix + "_reports_failed"),
	}
}

// otelSender exports OTLP over gRPC (conn) or HTTP (target).
type otelSender struct {
	resource *resourcepb.Resource
	scope    *commonpb.InstrumentationScope

	conn   *grpc.ClientConn
	client coltracepb.TraceServiceClient
	md     metadata.MD
	target *httpTarget
	st     reportStats
}

func newOTelExporter(c *tracev3.OpenTelemetryConfig, deps Deps) (*exporter, error) {
	if c.GetExporter() != nil || c.GetSampler() != nil || len(c.GetResourceDetectors()) > 0 {
		return nil, fmt.Errorf("exporter, sampler and resource_detectors are not supported")
	}
	sc := deps.Stats.Scope("tracing").Scope("opentelemetry")
	s := &otelSender{}
	service := c.GetServiceName()
	if service == "" {
		service = "unknown_service:envoy"
	}
	res := &resourcepb.Resource{}
	if v := c.GetSetServiceNameResourceAttribute(); v == nil || v.GetValue() {
		res.Attributes = append(res.Attributes, strAttr("service.name", service))
	}
	if v := c.GetSetTelemetrySdkResourceAttributes(); v == nil || v.GetValue() {
		res.Attributes = append(res.Attributes,
			strAttr("telemetry.sdk.language", "go"),
			strAttr("telemetry.sdk.name", "envoy"),
			strAttr("telemetry.sdk.version", version.Version+"/"+runtime.Version()))
	}
	s.resource = res
	if v := c.GetSetInstrumentationScope(); v == nil || v.GetValue() {
		s.scope = &commonpb.InstrumentationScope{Name: "envoy", Version: version.Version}
	}

	timeout := defaultSendTimeout
	switch {
	case c.GetGrpcService() != nil && c.GetHttpService() != nil:
		return nil, fmt.Errorf("only one of grpc_service and http_service may be set")
	case c.GetGrpcService() != nil:
		svc, err := grpcclient.New(c.GetGrpcService(), deps.Clusters, "grpc_service")
		if err != nil {
			return nil, err
		}
		if svc.Timeout > 0 {
			timeout = svc.Timeout
		}
		s.md = svc.MD
		if s.conn, err = svc.Dial(); err != nil {
			return nil, fmt.Errorf("grpc_service: %w", err)
		}
		s.client = coltracepb.NewTraceServiceClient(s.conn)
		s.st = newReportStats(sc, "grpc")
	case c.GetHttpService() != nil:
		cl, host, path, to, headers, err := httpService(c.GetHttpService(), deps.Clusters)
		if err != nil {
			return nil, fmt.Errorf("http_service.%w", err)
		}
		if to > 0 {
			timeout = to
		}
		if s.target, err = newHTTPTarget(cl, host, path, "application/x-protobuf", headers); err != nil {
			return nil, fmt.Errorf("http_service: %w", err)
		}
		s.st = newReportStats(sc, "http")
	default:
		// Envoy allows neither: spans are made and propagated but not
		// exported. The ring still records them.
		s.st = newReportStats(sc, "none")
	}
	queue := 0
	if v := c.GetMaxCacheSize(); v != nil {
		queue = int(v.GetValue())
	}
	return newExporter(sc, s, deps.Logger, exporterOptions{queue: queue, timeout: timeout}), nil
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func (o *otelSender) send(ctx context.Context, spans []*Span) {
	if o.client == nil && o.target == nil {
		return
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   o.resource,
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: o.scope, Spans: otlpSpans(spans)}},
	}}}
	o.st.sent.Inc()
	if o.client != nil {
		if o.md != nil {
			ctx = metadata.NewOutgoingContext(ctx, o.md)
		}
		if _, err := o.client.Export(ctx, req); err != nil {
			o.st.failed.Inc()
			return
		}
		o.st.success.Inc()
		return
	}
	body, err := proto.Marshal(req)
	if err != nil {
		o.st.failed.Inc()
		return
	}
	status, err := o.target.post(ctx, body)
	if err != nil || status/100 != 2 {
		o.st.failed.Inc()
		return
	}
	o.st.success.Inc()
}

func (o *otelSender) close() {
	if o.conn != nil {
		o.conn.Close()
	}
	if o.target != nil {
		o.target.close()
	}
}

func otlpSpans(spans []*Span) []*tracepb.Span {
	out := make([]*tracepb.Span, len(spans))
	for i, s := range spans {
		var tid [16]byte
		binary.BigEndian.PutUint64(tid[:8], s.ctx.traceHi)
		binary.BigEndian.PutUint64(tid[8:], s.ctx.traceLo)
		sp := &tracepb.Span{
			TraceId:           tid[:],
			SpanId:            binary.BigEndian.AppendUint64(nil, s.ctx.spanID),
			TraceState:        s.ctx.tracestate,
			Name:              s.name,
			Kind:              tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: uint64(s.start.UnixNano()),
			EndTimeUnixNano:   uint64(s.start.Add(s.duration).UnixNano()),
			Flags:             1, // sampled
			Attributes:        make([]*commonpb.KeyValue, 0, len(s.tags)),
		}
		if s.ctx.parentID != 0 {
			sp.ParentSpanId = binary.BigEndian.AppendUint64(nil, s.ctx.parentID)
		}
		for _, t := range s.tags {
			sp.Attributes = append(sp.Attributes, strAttr(t.Key, t.Value))
			if t.Key == TagError && t.Value == "true" {
				sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}
			}
		}
		out[i] = sp
	}
	return out
}
