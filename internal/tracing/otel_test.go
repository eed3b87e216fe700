package tracing

import (
	"encoding/hex"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/stats"
)

func grpcCfg(cluster string) *tracev3.OpenTelemetryConfig {
	return &tracev3.OpenTelemetryConfig{
		ServiceName: "edge",
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster}},
			InitialMetadata: []*corev3.HeaderValue{{Key: "X-Tenant", Value: "acme"}},
		},
	}
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	return m
}

func TestOTelGRPCRootAndJoinedSpans(t *testing.T) {
	st := stats.NewStore()
	rcv := newOTLPGRPC(t, nil)
	ring := NewRing(10)
	deps := Deps{Stats: st, Ring: ring, NodeID: "n1", Clusters: staticClustersExtra(t, st, map[string]string{"otel": rcv.addr}, "http2_protocol_options: {}\n")}
	tr := newTracer(t, hcmTracing(t, grpcCfg("otel"), ""), deps)

	// A request without context starts a trace.
	root := request()
	rootInfo := streamInfo()
	rs := tr.Start(root, rootInfo, "")
	if rs == nil {
		t.Fatal("no root span")
	}
	if got, want := root.Header.Value("traceparent"), "00-"+rs.TraceID()+"-"+rs.SpanID()+"-01"; got != want {
		t.Fatalf("traceparent %q, want %q", got, want)
	}
	if root.Header.Has("x-b3-traceid") {
		t.Error("OpenTelemetry wrote B3 headers")
	}

	// A request with a W3C context joins it, as the caller's child.
	const callerTrace, callerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	joined := request("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01", "tracestate", "congo=t61")
	joinedInfo := streamInfo()
	js := tr.Start(joined, joinedInfo, "checkout")
	if js.TraceID() != callerTrace || js.SpanID() == callerSpan {
		t.Fatalf("joined span %s/%s", js.TraceID(), js.SpanID())
	}
	if got := joined.Header.Value("traceparent"); got != "00-"+callerTrace+"-"+js.SpanID()+"-01" {
		t.Errorf("upstream traceparent %q", got)
	}
	if joined.Header.Value("tracestate") != "congo=t61" {
		t.Errorf("tracestate %q", joined.Header.Value("tracestate"))
	}

	rs.Finish(root, nil, finished(rootInfo))
	joinedInfo.ResponseCode = 502
	js.Finish(joined, nil, joinedInfo)
	tr.Close()

	spans := rcv.waitSpans(t, 2)
	byID := map[string]*tracepb.Span{}
	for _, s := range spans {
		byID[hex.EncodeToString(s.GetSpanId())] = s
	}
	r, j := byID[rs.SpanID()], byID[js.SpanID()]
	if r == nil || j == nil {
		t.Fatalf("spans received: %v", spans)
	}
	if hex.EncodeToString(r.GetTraceId()) != rs.TraceID() || len(r.GetParentSpanId()) != 0 || r.GetName() != "ingress" ||
		r.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("root span: %v", r)
	}
	if hex.EncodeToString(j.GetTraceId()) != callerTrace || hex.EncodeToString(j.GetParentSpanId()) != callerSpan ||
		j.GetName() != "checkout" || j.GetTraceState() != "congo=t61" {
		t.Errorf("joined span: %v", j)
	}
	if j.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || attrs(j.GetAttributes())["error"] != "true" {
		t.Errorf("502: status %v", j.GetStatus())
	}
	a := attrs(r.GetAttributes())
	if a["http.status_code"] != "200" || a["node_id"] != "n1" || a["upstream_cluster"] != "service" || a["component"] != "proxy" {
		t.Errorf("root attributes: %v", a)
	}
	if r.GetEndTimeUnixNano() <= r.GetStartTimeUnixNano() {
		t.Errorf("times %d..%d", r.GetStartTimeUnixNano(), r.GetEndTimeUnixNano())
	}

	rcv.mu.Lock()
	req, md := rcv.reqs[0], rcv.md[0]
	rcv.mu.Unlock()
	res := attrs(req.GetResourceSpans()[0].GetResource().GetAttributes())
	if res["service.name"] != "edge" || res["telemetry.sdk.name"] != "envoy" {
		t.Errorf("resource: %v", res)
	}
	if md["x-tenant"][0] != "acme" || md[":authority"][0] != "otel" {
		t.Errorf("metadata: %v", md)
	}
	if got := st.Counter("tracing.opentelemetry.grpc_reports_success").Value(); got != 1 {
		t.Errorf("grpc_reports_success = %d", got)
	}
	if got := st.Counter("tracing.opentelemetry.spans_sent").Value(); got != 2 {
		t.Errorf("spans_sent = %d", got)
	}
	if len(ring.Snapshot()) != 2 {
		t.Errorf("ring holds %d spans", len(ring.Snapshot()))
	}
}

func TestOTelSampling(t *testing.T) {
	st := stats.NewStore()
	rcv := newOTLPGRPC(t, nil)
	deps := Deps{Stats: st, Clusters: staticClustersExtra(t, st, map[string]string{"otel": rcv.addr}, "http2_protocol_options: {}\n")}
	tr := newTracer(t, hcmTracing(t, grpcCfg("otel"), "random_sampling: {value: 0}"), deps)

	// Not sampled: no span, but a context with flags 00 goes upstream.
	req := request()
	if sp := tr.Start(req, streamInfo(), ""); sp != nil {
		t.Fatal("random 0% sampled")
	}
	if tp := req.Header.Value("traceparent"); len(tp) != 55 || tp[53:] != "00" {
		t.Errorf("traceparent %q", tp)
	}
	// Forced.
	req = request("x-envoy-force-trace", "yes")
	if sp := tr.Start(req, streamInfo(), ""); sp == nil {
		t.Error("forced trace not sampled")
	}
	// The caller's sampled flag wins over the local decision.
	req = request("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if sp := tr.Start(req, streamInfo(), ""); sp == nil {
		t.Error("caller-sampled context not sampled")
	}
	// A malformed traceparent: no span, nothing injected.
	req = request("traceparent", "00-zz")
	if sp := tr.Start(req, streamInfo(), ""); sp != nil || req.Header.Value("traceparent") != "00-zz" {
		t.Errorf("malformed context: span=%v traceparent %q", sp != nil, req.Header.Value("traceparent"))
	}
}

func TestOTelHTTP(t *testing.T) {
	st := stats.NewStore()
	rcv := newOTLPHTTP(t)
	deps := Deps{Stats: st, Clusters: staticClusters(t, st, map[string]string{"otlp-http": rcv.addr})}
	cfg := &tracev3.OpenTelemetryConfig{
		ServiceName:                     "edge",
		SetServiceNameResourceAttribute: wrapperspb.Bool(false),
		HttpService: &corev3.HttpService{
			HttpUri: &corev3.HttpUri{
				Uri:              "http://collector.example:4318/v1/traces",
				HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "otlp-http"},
				Timeout:          durationpb.New(10 * time.Second),
			},
			RequestHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-token", Value: "s3cret"}}},
		},
	}
	tr := newTracer(t, hcmTracing(t, cfg, ""), deps)
	req := request()
	info := streamInfo()
	sp := tr.Start(req, info, "")
	sp.Finish(req, nil, finished(info))
	tr.Close()
	spans := rcv.waitSpans(t, 1)
	if hex.EncodeToString(spans[0].GetSpanId()) != sp.SpanID() {
		t.Errorf("span id %x, want %s", spans[0].GetSpanId(), sp.SpanID())
	}
	rcv.mu.Lock()
	md, r := rcv.md[0], rcv.reqs[0]
	rcv.mu.Unlock()
	if md[":path"][0] != "/v1/traces" || md[":authority"][0] != "collector.example:4318" || md["x-token"][0] != "s3cret" {
		t.Errorf("request: %v", md)
	}
	if _, ok := attrs(r.GetResourceSpans()[0].GetResource().GetAttributes())["service.name"]; ok {
		t.Error("service.name set despite set_service_name_resource_attribute: false")
	}
	if st.Counter("tracing.opentelemetry.http_reports_sent").Value() != 1 || st.Counter("tracing.opentelemetry.http_reports_success").Value() != 1 {
		t.Errorf("http report stats: sent %d success %d", st.Counter("tracing.opentelemetry.http_reports_sent").Value(),
			st.Counter("tracing.opentelemetry.http_reports_success").Value())
	}
}

// A collector that stops reading: the queue (max_cache_size) fills and
// further spans are dropped and counted; Finish never waits.
func TestOTelQueueFullDrops(t *testing.T) {
	st := stats.NewStore()
	block := make(chan struct{})
	rcv := newOTLPGRPC(t, block)
	deps := Deps{Stats: st, Clusters: staticClustersExtra(t, st, map[string]string{"otel": rcv.addr}, "http2_protocol_options: {}\n")}
	cfg := grpcCfg("otel")
	cfg.MaxCacheSize = wrapperspb.UInt32(2)
	cfg.GrpcService.Timeout = durationpb.New(time.Minute)
	tr := newTracer(t, hcmTracing(t, cfg, ""), deps)
	const n = 50
	for range n {
		req := request()
		info := streamInfo()
		tr.Start(req, info, "").Finish(req, nil, finished(info))
	}
	// At most one report (≤ 5 + 2 spans) is in flight and 2 queued.
	if d := st.Counter("tracing.opentelemetry.spans_dropped").Value(); d < n-9 {
		t.Errorf("spans_dropped = %d, want >= %d", d, n-9)
	}
	close(block)
	tr.Close()
	sent := st.Counter("tracing.opentelemetry.spans_sent").Value()
	dropped := st.Counter("tracing.opentelemetry.spans_dropped").Value()
	if sent+dropped != n {
		t.Errorf("sent %d + dropped %d != %d", sent, dropped, n)
	}
	if got := len(rcv.spans()); uint64(got) != sent {
		t.Errorf("receiver got %d spans, sent %d", got, sent)
	}
}

func TestOTelDeadCollector(t *testing.T) {
	st := stats.NewStore()
	deps := Deps{Stats: st, Clusters: staticClustersExtra(t, st, map[string]string{"otel": deadAddr(t)}, "http2_protocol_options: {}\n")}
	cfg := grpcCfg("otel")
	cfg.GrpcService.Timeout = durationpb.New(2 * time.Second)
	tr := newTracer(t, hcmTracing(t, cfg, ""), deps)
	for range 5 {
		req := request()
		info := streamInfo()
		tr.Start(req, info, "").Finish(req, nil, finished(info))
	}
	waitCounter(t, st, "tracing.opentelemetry.grpc_reports_failed", 1)
}
