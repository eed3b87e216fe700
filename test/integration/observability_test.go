package integration

// End-to-end observability through the real binary: tracing to an in-test
// Zipkin v2 collector and OTLP receivers, access logs on disk, statsd and
// DogStatsD over real UDP sockets, and /stats/prometheus through promlint.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	zmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// ---------------------------------------------------------------------------
// Collectors.

// zipkinSpan is one span a collector received, with how it came.
type zipkinSpan struct {
	*zmodel.SpanModel
	Proto bool // decoded from application/x-protobuf
	Path  string
}

// zipkinCollector is a Zipkin v2 HTTP collector: it accepts JSON and proto
// span lists on any path and answers 202, as Zipkin does.
type zipkinCollector struct {
	Addr string
	mu   sync.Mutex
	got  []zipkinSpan
	errs []string
}

func startZipkin(t testing.TB) *zipkinCollector {
	t.Helper()
	z := &zipkinCollector{}
	u := startUpstream(t, "zipkin", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var spans []*zmodel.SpanModel
		var err error
		isProto := r.Header.Get("Content-Type") == "application/x-protobuf"
		if isProto {
			spans, err = zipkin_proto3.ParseSpans(body, false)
		} else {
			err = json.Unmarshal(body, &spans)
		}
		z.mu.Lock()
		defer z.mu.Unlock()
		if r.Method != http.MethodPost || err != nil {
			z.errs = append(z.errs, fmt.Sprintf("%s %s (%s): %v", r.Method, r.URL.Path, r.Header.Get("Content-Type"), err))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for _, s := range spans {
			z.got = append(z.got, zipkinSpan{SpanModel: s, Proto: isProto, Path: r.URL.Path})
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	z.Addr = u.Addr
	return z
}

// find returns the span with trace id tid and span id sid, if received.
func (z *zipkinCollector) find(tid, sid string) (zipkinSpan, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, s := range z.got {
		if s.TraceID.String() == tid && (sid == "" || s.ID.String() == sid) {
			return s, true
		}
	}
	return zipkinSpan{}, false
}

// wait waits for the span (tid, sid) and fails the test on a malformed
// report. Legate sends a report every 5 s or once 5 spans are pending;
// rather than wait for the timer, nudge (when not nil) sends a traced
// request through the same exporter every few polls to fill the batch.
func (z *zipkinCollector) wait(t *testing.T, tid, sid string, nudge func()) zipkinSpan {
	t.Helper()
	var s zipkinSpan
	eventually(t, 20*time.Second, "span "+tid+"/"+sid+" at the Zipkin collector", nudging(nudge, func() bool {
		var ok bool
		s, ok = z.find(tid, sid)
		return ok
	}))
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(z.errs) > 0 {
		t.Fatalf("collector got malformed reports: %v", z.errs)
	}
	return s
}

// otlpReceiver is an OTLP trace receiver for both transports: a gRPC
// TraceService and an HTTP handler for POST /v1/traces (protobuf).
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	reqs  []*coltracepb.ExportTraceServiceRequest
	meta  []metadata.MD // gRPC metadata per request
	hdrs  []http.Header // HTTP headers per request
	paths []string
}

func (o *otlpReceiver) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reqs = append(o.reqs, req)
	o.meta = append(o.meta, md)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	o.reqs = append(o.reqs, req)
	o.hdrs = append(o.hdrs, r.Header.Clone())
	o.paths = append(o.paths, r.URL.Path)
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = w.Write(b)
}

// startOTLPGRPC serves the receiver over gRPC (HTTP/2 cleartext).
func startOTLPGRPC(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &otlpReceiver{}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, o)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return o, ln.Addr().String()
}

// otlpSpan is a received span with the resource it came under.
type otlpSpan struct {
	*tracepb.Span
	Resource map[string]string
	Index    int // which request carried it
}

func (o *otlpReceiver) find(tid string) (otlpSpan, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, req := range o.reqs {
		for _, rs := range req.GetResourceSpans() {
			res := map[string]string{}
			for _, kv := range rs.GetResource().GetAttributes() {
				res[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					if hex.EncodeToString(sp.GetTraceId()) == tid {
						return otlpSpan{Span: sp, Resource: res, Index: i}, true
					}
				}
			}
		}
	}
	return otlpSpan{}, false
}

// wait waits for a span of trace tid; nudge is as for zipkinCollector.wait.
func (o *otlpReceiver) wait(t *testing.T, tid string, nudge func()) otlpSpan {
	t.Helper()
	var s otlpSpan
	eventually(t, 20*time.Second, "span of trace "+tid+" at the OTLP receiver", nudging(nudge, func() bool {
		var ok bool
		s, ok = o.find(tid)
		return ok
	}))
	return s
}

// nudging wraps an eventually condition: every 10th poll that finds cond
// false calls nudge.
func nudging(nudge func(), cond func() bool) func() bool {
	polls := 0
	return func() bool {
		if cond() {
			return true
		}
		polls++
		if nudge != nil && polls%10 == 0 {
			nudge()
		}
		return false
	}
}

func otlpAttrs(sp *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range sp.GetAttributes() {
		m[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	return m
}

// randHex returns n random bytes in hex.
func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ---------------------------------------------------------------------------
// Config fragments.

const nodeYAML = "node: {id: it-node, cluster: it-service}\n"

// zipkinTracing is an HCM tracing block for the Zipkin provider; extra is
// added to the ZipkinConfig and tracingExtra to the tracing block.
func zipkinTracing(tracingExtra, extra string) string {
	s := "tracing:\n"
	if tracingExtra != "" {
		s += indent(tracingExtra, 2) + "\n"
	}
	s += `  provider:
    name: envoy.tracers.zipkin
    typed_config:
      "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
      collector_cluster: zipkin
`
	if !strings.Contains(extra, "collector_endpoint:") {
		s += "      collector_endpoint: /api/v2/spans\n"
	}
	// Envoy refuses the enum's default (the removed v1 format).
	if !strings.Contains(extra, "collector_endpoint_version:") {
		s += "      collector_endpoint_version: HTTP_JSON\n"
	}
	if extra != "" {
		s += indent(extra, 6) + "\n"
	}
	return s
}

// decoratedRoutes sends everything to svc; /decorated names its span.
const decoratedRoutes = `route_config:
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: {prefix: "/decorated"}
      route: {cluster: svc}
      decorator: {operation: checkout}
    - match: {prefix: "/"}
      route: {cluster: svc}`

// h2Options makes a cluster speak HTTP/2 (prior knowledge).
const h2Options = `typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config:
      http2_protocol_options: {}`

// tracedGet sends a GET with headers through the proxy and returns the
// response and what the (echo) upstream saw.
func tracedGet(t *testing.T, url string, hdr map[string]string) (*http.Response, Echo) {
	t.Helper()
	req := mustReq(t, "GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, body := do(t, defaultClient, req)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return resp, decodeEcho(t, body)
}

// ---------------------------------------------------------------------------
// Tracing.

// filler returns a nudge for collector waits: a traced request through
// the listener, whose span fills the exporter's batch.
func filler(l *Legate, listener string) func() {
	return func() {
		if resp, err := defaultClient.Get(l.URL(listener, "/filler")); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

func TestTracingZipkin(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "svc", nil)
	col := startZipkin(t)
	listeners := []string{
		listenerYAML("shared", "use_remote_address: true\n"+zipkinTracing("random_sampling: {value: 100}", "")+decoratedRoutes, ""),
		listenerYAML("unshared", zipkinTracing("", "shared_span_context: false")+decoratedRoutes, ""),
		// Same provider config as "shared": one exporter feeds both.
		listenerYAML("nosample", "use_remote_address: true\n"+zipkinTracing("random_sampling: {value: 0}", "")+decoratedRoutes, ""),
		listenerYAML("forced", "use_remote_address: true\n"+zipkinTracing("random_sampling: {value: 0}", "")+decoratedRoutes, ""),
		listenerYAML("proto", zipkinTracing("", "collector_endpoint: /api/v2/spans.proto\ncollector_endpoint_version: HTTP_PROTO\ntrace_context_option: USE_B3_WITH_W3C_PROPAGATION")+decoratedRoutes, ""),
	}
	clusters := []string{testutil.StaticClusterYAML("svc", "", up.Addr), testutil.StaticClusterYAML("zipkin", "", col.Addr)}
	l := startLegate(t, nodeYAML+bootstrapYAML(listeners, clusters), nil)
	fill := func(listener string) func() { return filler(l, listener) }

	// checkTags checks Envoy's span tags against what the client and the
	// upstream saw.
	checkTags := func(t *testing.T, sp zipkinSpan, e Echo, listener, path string, bodyLen int) {
		t.Helper()
		want := map[string]string{
			"http.method":       "GET",
			"http.url":          "http://" + l.Addr(listener) + path,
			"http.protocol":     "HTTP/1.1",
			"http.status_code":  "200",
			"upstream_cluster":  "svc",
			"upstream_address":  up.Addr,
			"node_id":           "it-node",
			"guid:x-request-id": e.Header("x-request-id"),
			"response_size":     itoa(bodyLen),
			"request_size":      "0",
			"component":         "proxy",
			"response_flags":    "-",
			"user_agent":        e.Header("user-agent"),
			"peer.address":      "127.0.0.1",
		}
		for k, v := range want {
			if got, ok := sp.Tags[k]; !ok || got != v {
				t.Errorf("tag %s = %q (present %v), want %q", k, got, ok, v)
			}
		}
		if _, ok := sp.Tags["error"]; ok {
			t.Errorf("a 200 is tagged error: %v", sp.Tags)
		}
		if e.Header("x-request-id") == "" {
			t.Error("the upstream saw no x-request-id")
		}
		if sp.Kind != zmodel.Server {
			t.Errorf("kind %q, want SERVER", sp.Kind)
		}
		if sp.LocalEndpoint == nil || sp.LocalEndpoint.ServiceName != "it-service" {
			t.Errorf("local endpoint %+v, want service it-service", sp.LocalEndpoint)
		}
		if sp.Timestamp.IsZero() || sp.Duration <= 0 {
			t.Errorf("timestamp %v duration %v", sp.Timestamp, sp.Duration)
		}
	}

	t.Run("no incoming context", func(t *testing.T) {
		t.Parallel()
		req := mustReq(t, "GET", l.URL("shared", "/a?x=1"), nil)
		resp, body := do(t, defaultClient, req)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		e := decodeEcho(t, body)
		tid, sid := e.Header("x-b3-traceid"), e.Header("x-b3-spanid")
		if len(tid) != 16 || len(sid) != 16 || e.Header("x-b3-sampled") != "1" || e.Has("x-b3-parentspanid") {
			t.Fatalf("upstream saw B3 %v, want a new 64-bit trace, a span id, sampled=1, no parent", e.Headers)
		}
		if rid := e.Header("x-request-id"); len(rid) != 36 || rid[14] != 'a' {
			t.Errorf("x-request-id %q, want a UUID marked randomly sampled ('a' at 14)", rid)
		}
		sp := col.wait(t, tid, sid, fill("shared"))
		if sp.ParentID != nil || sp.Shared {
			t.Errorf("root span has parent %v shared %v", sp.ParentID, sp.Shared)
		}
		if sp.Proto || sp.Path != "/api/v2/spans" {
			t.Errorf("span came as proto=%v to %s, want JSON to /api/v2/spans", sp.Proto, sp.Path)
		}
		checkTags(t, sp, e, "shared", "/a?x=1", len(body))
	})

	t.Run("incoming B3 shared span", func(t *testing.T) {
		t.Parallel()
		tid, sid, pid := randHex(t, 8), randHex(t, 8), randHex(t, 8)
		_, e := tracedGet(t, l.URL("shared", "/b"), map[string]string{
			"x-b3-traceid": tid, "x-b3-spanid": sid, "x-b3-parentspanid": pid, "x-b3-sampled": "1"})
		// shared_span_context (default true): Legate's server span is the
		// caller's span, so the upstream's parent is the caller's span id.
		if e.Header("x-b3-traceid") != tid || e.Header("x-b3-spanid") != sid || e.Header("x-b3-parentspanid") != pid || e.Header("x-b3-sampled") != "1" {
			t.Errorf("upstream saw %v, want trace %s span %s parent %s sampled 1", e.Headers, tid, sid, pid)
		}
		sp := col.wait(t, tid, sid, fill("shared"))
		if !sp.Shared || sp.ParentID == nil || sp.ParentID.String() != pid {
			t.Errorf("span shared=%v parent=%v, want shared with parent %s", sp.Shared, sp.ParentID, pid)
		}
	})

	t.Run("incoming B3 child span", func(t *testing.T) {
		t.Parallel()
		tid, sid := randHex(t, 16), randHex(t, 8) // a 128-bit trace id is kept
		_, e := tracedGet(t, l.URL("unshared", "/c"), map[string]string{
			"x-b3-traceid": tid, "x-b3-spanid": sid, "x-b3-sampled": "1"})
		own := e.Header("x-b3-spanid")
		if e.Header("x-b3-traceid") != tid || own == sid || len(own) != 16 || e.Header("x-b3-parentspanid") != sid {
			t.Fatalf("upstream saw %v, want trace %s, a new span id whose parent is %s", e.Headers, tid, sid)
		}
		sp := col.wait(t, tid, own, fill("unshared"))
		if sp.Shared || sp.ParentID == nil || sp.ParentID.String() != sid {
			t.Errorf("span shared=%v parent=%v, want a child of %s", sp.Shared, sp.ParentID, sid)
		}
	})

	t.Run("incoming single b3 header", func(t *testing.T) {
		t.Parallel()
		tid, sid := randHex(t, 8), randHex(t, 8)
		_, e := tracedGet(t, l.URL("unshared", "/single"), map[string]string{"b3": tid + "-" + sid + "-1"})
		own := e.Header("x-b3-spanid")
		if want := tid + "-" + own + "-1-" + sid; e.Header("b3") != want || e.Header("x-b3-traceid") != tid || own == sid {
			t.Fatalf("upstream saw b3 %q and %v, want b3 %q", e.Header("b3"), e.Headers, want)
		}
		sp := col.wait(t, tid, own, fill("unshared"))
		if sp.ParentID == nil || sp.ParentID.String() != sid {
			t.Errorf("span parent %v, want %s", sp.ParentID, sid)
		}
	})

	t.Run("random_sampling 0", func(t *testing.T) {
		t.Parallel()
		_, e := tracedGet(t, l.URL("nosample", "/unsampled"), nil)
		tid := e.Header("x-b3-traceid")
		if len(tid) != 16 || e.Header("x-b3-sampled") != "0" {
			t.Fatalf("upstream saw %v, want a trace id with sampled=0", e.Headers)
		}
		// The span (if any) is queued before the request is counted
		// complete; a span queued after it on the same exporter arriving
		// then proves nothing is left to come for the unsampled one.
		eventually(t, 10*time.Second, "nosample request completed", func() bool {
			return l.Counter(t, "http.nosample.downstream_rq_completed") == 1
		})
		_, ce := tracedGet(t, l.URL("shared", "/control"), nil)
		col.wait(t, ce.Header("x-b3-traceid"), ce.Header("x-b3-spanid"), fill("shared"))
		if sp, ok := col.find(tid, ""); ok {
			t.Errorf("an unsampled request was exported: %+v", sp.SpanModel)
		}
		if n := l.Counter(t, "http.nosample.tracing.not_traceable"); n != 1 {
			t.Errorf("http.nosample.tracing.not_traceable = %d, want 1", n)
		}
	})

	t.Run("x-envoy-force-trace", func(t *testing.T) {
		t.Parallel()
		resp, e := tracedGet(t, l.URL("forced", "/forced"), map[string]string{"x-envoy-force-trace": "true"})
		tid, sid, rid := e.Header("x-b3-traceid"), e.Header("x-b3-spanid"), e.Header("x-request-id")
		if e.Header("x-b3-sampled") != "1" || len(rid) != 36 || rid[14] != '9' {
			t.Errorf("upstream saw sampled=%q x-request-id=%q, want 1 and a UUID marked forced ('9' at 14)", e.Header("x-b3-sampled"), rid)
		}
		if got := resp.Header.Get("x-request-id"); got != rid {
			t.Errorf("response x-request-id %q, want the upstream's %q", got, rid)
		}
		sp := col.wait(t, tid, sid, fill("shared"))
		if sp.Tags["guid:x-request-id"] != rid {
			t.Errorf("guid:x-request-id %q, want %q", sp.Tags["guid:x-request-id"], rid)
		}
		if n := l.Counter(t, "http.forced.tracing.service_forced"); n != 1 {
			t.Errorf("http.forced.tracing.service_forced = %d, want 1", n)
		}
		// Without the header the same listener traces nothing, and does
		// not echo the request id.
		resp, e = tracedGet(t, l.URL("forced", "/not-forced"), nil)
		if e.Header("x-b3-sampled") != "0" || resp.Header.Get("x-request-id") != "" {
			t.Errorf("unforced: sampled=%q response x-request-id=%q", e.Header("x-b3-sampled"), resp.Header.Get("x-request-id"))
		}
	})

	t.Run("route decorator", func(t *testing.T) {
		t.Parallel()
		resp, e := tracedGet(t, l.URL("shared", "/decorated/item"), nil)
		if got := resp.Header.Get("x-envoy-decorator-operation"); got != "checkout" {
			t.Errorf("response x-envoy-decorator-operation %q, want checkout", got)
		}
		if e.Has("x-envoy-decorator-operation") {
			t.Error("the decorator header went upstream")
		}
		sp := col.wait(t, e.Header("x-b3-traceid"), e.Header("x-b3-spanid"), fill("shared"))
		if sp.Name != "checkout" {
			t.Errorf("span name %q, want checkout", sp.Name)
		}
		// A downstream proxy's decorator header names the span instead
		// and is consumed; the route's operation is then not sent back.
		resp, e = tracedGet(t, l.URL("shared", "/decorated/item"), map[string]string{"x-envoy-decorator-operation": "from-downstream"})
		if got := resp.Header.Get("x-envoy-decorator-operation"); got != "" {
			t.Errorf("overridden: response x-envoy-decorator-operation %q, want none", got)
		}
		sp = col.wait(t, e.Header("x-b3-traceid"), e.Header("x-b3-spanid"), fill("shared"))
		if sp.Name != "from-downstream" {
			t.Errorf("span name %q, want from-downstream", sp.Name)
		}
	})

	t.Run("HTTP_PROTO and W3C propagation", func(t *testing.T) {
		t.Parallel()
		_, e := tracedGet(t, l.URL("proto", "/p"), nil)
		tid, sid := e.Header("x-b3-traceid"), e.Header("x-b3-spanid")
		if want := "00-0000000000000000" + tid + "-" + sid + "-01"; e.Header("traceparent") != want {
			t.Errorf("traceparent %q, want %q", e.Header("traceparent"), want)
		}
		sp := col.wait(t, tid, sid, fill("proto"))
		if !sp.Proto || sp.Path != "/api/v2/spans.proto" {
			t.Errorf("span came as proto=%v to %s, want proto to /api/v2/spans.proto", sp.Proto, sp.Path)
		}
		if sp.Tags["http.status_code"] != "200" || sp.Tags["upstream_cluster"] != "svc" || sp.Tags["node_id"] != "it-node" {
			t.Errorf("proto span tags %v", sp.Tags)
		}
		// An incoming traceparent (no B3) is joined under this option.
		ptid, psid := randHex(t, 16), randHex(t, 8)
		_, e = tracedGet(t, l.URL("proto", "/p2"), map[string]string{"traceparent": "00-" + ptid + "-" + psid + "-01"})
		if e.Header("x-b3-traceid") != ptid {
			t.Fatalf("upstream trace id %q, want the traceparent's %s", e.Header("x-b3-traceid"), ptid)
		}
		col.wait(t, ptid, e.Header("x-b3-spanid"), fill("proto"))
	})

	// After the parallel subtests (and before legate stops): every
	// report was accepted.
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		if n := l.Counter(t, "tracing.zipkin.reports_sent"); n < 1 {
			t.Errorf("tracing.zipkin.reports_sent = %d", n)
		}
		for _, k := range []string{"tracing.zipkin.reports_failed", "tracing.zipkin.reports_dropped", "tracing.zipkin.spans_dropped"} {
			if n := l.Counter(t, k); n != 0 {
				t.Errorf("%s = %d, want 0", k, n)
			}
		}
	})
}

func TestTracingOpenTelemetry(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "svc", nil)
	grpcRecv, grpcAddr := startOTLPGRPC(t)
	httpRecv := &otlpReceiver{}
	httpUp := startUpstream(t, "otlp-http", httpRecv)

	otel := func(service, transport string) string {
		return `tracing:
  provider:
    name: envoy.tracers.opentelemetry
    typed_config:
      "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
      service_name: ` + service + "\n" + indent(transport, 6) + "\n"
	}
	listeners := []string{
		listenerYAML("grpc", otel("legate-grpc", `grpc_service:
  envoy_grpc: {cluster_name: otlp}
  timeout: 2s`)+routeAll("svc"), ""),
		listenerYAML("http", otel("legate-http", `http_service:
  http_uri:
    uri: http://collector.test/v1/traces
    cluster: otlp_http
    timeout: 2s
  request_headers_to_add:
  - header: {key: x-collector-token, value: it-secret}`)+routeAll("svc"), ""),
	}
	clusters := []string{
		testutil.StaticClusterYAML("svc", "", up.Addr),
		testutil.StaticClusterYAML("otlp", h2Options, grpcAddr),
		testutil.StaticClusterYAML("otlp_http", "", httpUp.Addr),
	}
	l := startLegate(t, nodeYAML+bootstrapYAML(listeners, clusters), nil)
	fill := func(listener string) func() { return filler(l, listener) }

	// traceparentParts splits "00-<trace>-<span>-<flags>".
	traceparentParts := func(t *testing.T, tp string) (tid, sid, flags string) {
		t.Helper()
		p := strings.Split(tp, "-")
		if len(p) != 4 || p[0] != "00" || len(p[1]) != 32 || len(p[2]) != 16 || len(p[3]) != 2 {
			t.Fatalf("upstream traceparent %q malformed", tp)
		}
		return p[1], p[2], p[3]
	}

	t.Run("gRPC joins incoming traceparent", func(t *testing.T) {
		t.Parallel()
		tid, caller := randHex(t, 16), randHex(t, 8)
		_, e := tracedGet(t, l.URL("grpc", "/otel?q=1"), map[string]string{
			"traceparent": "00-" + tid + "-" + caller + "-01", "tracestate": "vendor=opaque"})
		gotTid, own, flags := traceparentParts(t, e.Header("traceparent"))
		if gotTid != tid || own == caller || flags != "01" {
			t.Errorf("upstream traceparent %q, want trace %s, a new span id, sampled", e.Header("traceparent"), tid)
		}
		if e.Header("tracestate") != "vendor=opaque" {
			t.Errorf("tracestate %q not passed on", e.Header("tracestate"))
		}
		sp := grpcRecv.wait(t, tid, fill("grpc"))
		if got := hex.EncodeToString(sp.GetSpanId()); got != own {
			t.Errorf("span id %s, want the upstream's parent %s", got, own)
		}
		if got := hex.EncodeToString(sp.GetParentSpanId()); got != caller {
			t.Errorf("parent span id %s, want the caller's %s", got, caller)
		}
		if sp.GetKind() != tracepb.Span_SPAN_KIND_SERVER || sp.GetTraceState() != "vendor=opaque" {
			t.Errorf("kind %v tracestate %q", sp.GetKind(), sp.GetTraceState())
		}
		if sp.Resource["service.name"] != "legate-grpc" {
			t.Errorf("resource %v, want service.name legate-grpc", sp.Resource)
		}
		a := otlpAttrs(sp.Span)
		for k, v := range map[string]string{"http.method": "GET", "http.status_code": "200", "upstream_cluster": "svc",
			"node_id": "it-node", "guid:x-request-id": e.Header("x-request-id"), "http.url": "http://" + l.Addr("grpc") + "/otel?q=1"} {
			if a[k] != v {
				t.Errorf("attribute %s = %q, want %q", k, a[k], v)
			}
		}
		if sp.GetStartTimeUnixNano() == 0 || sp.GetEndTimeUnixNano() < sp.GetStartTimeUnixNano() {
			t.Errorf("span times %d..%d", sp.GetStartTimeUnixNano(), sp.GetEndTimeUnixNano())
		}
		grpcRecv.mu.Lock()
		md := grpcRecv.meta[sp.Index]
		grpcRecv.mu.Unlock()
		if a := md.Get(":authority"); len(a) != 1 || a[0] != "otlp" {
			t.Errorf(":authority %v, want the cluster name otlp", a)
		}
	})

	t.Run("gRPC new trace", func(t *testing.T) {
		t.Parallel()
		_, e := tracedGet(t, l.URL("grpc", "/fresh"), nil)
		tid, own, flags := traceparentParts(t, e.Header("traceparent"))
		if flags != "01" {
			t.Errorf("flags %s, want sampled", flags)
		}
		sp := grpcRecv.wait(t, tid, fill("grpc"))
		if hex.EncodeToString(sp.GetSpanId()) != own || len(sp.GetParentSpanId()) != 0 {
			t.Errorf("span %x parent %x, want %s and none", sp.GetSpanId(), sp.GetParentSpanId(), own)
		}
	})

	t.Run("OTLP/HTTP", func(t *testing.T) {
		t.Parallel()
		tid, caller := randHex(t, 16), randHex(t, 8)
		_, e := tracedGet(t, l.URL("http", "/over-http"), map[string]string{"traceparent": "00-" + tid + "-" + caller + "-01"})
		_, own, _ := traceparentParts(t, e.Header("traceparent"))
		sp := httpRecv.wait(t, tid, fill("http"))
		if hex.EncodeToString(sp.GetSpanId()) != own || hex.EncodeToString(sp.GetParentSpanId()) != caller {
			t.Errorf("span %x parent %x, want %s child of %s", sp.GetSpanId(), sp.GetParentSpanId(), own, caller)
		}
		if sp.Resource["service.name"] != "legate-http" {
			t.Errorf("resource %v", sp.Resource)
		}
		httpRecv.mu.Lock()
		h, path := httpRecv.hdrs[sp.Index], httpRecv.paths[sp.Index]
		httpRecv.mu.Unlock()
		if path != "/v1/traces" || h.Get("Content-Type") != "application/x-protobuf" || h.Get("X-Collector-Token") != "it-secret" {
			t.Errorf("report went to %s with headers %v", path, h)
		}
	})

	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		for _, k := range []string{"tracing.opentelemetry.grpc_reports_success", "tracing.opentelemetry.http_reports_success"} {
			if n := l.Counter(t, k); n < 1 {
				t.Errorf("%s = %d, want ≥ 1", k, n)
			}
		}
		for _, k := range []string{"tracing.opentelemetry.grpc_reports_failed", "tracing.opentelemetry.http_reports_failed"} {
			if n := l.Counter(t, k); n != 0 {
				t.Errorf("%s = %d, want 0", k, n)
			}
		}
	})
}

// TestTracingDeadCollector points Zipkin at a closed port: requests are
// unaffected and the failed reports are counted.
func TestTracingDeadCollector(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "svc", nil)
	dead := closedPort(t)
	cfg := nodeYAML + bootstrapYAML(
		[]string{listenerYAML("main", zipkinTracing("", "")+routeAll("svc"), "")},
		[]string{testutil.StaticClusterYAML("svc", "", up.Addr), testutil.StaticClusterYAML("zipkin", "", "127.0.0.1:"+itoa(dead))})
	l := startLegate(t, cfg, nil)
	// Five spans fill a report (min_flush_spans).
	for i := range 6 {
		_, e := tracedGet(t, l.URL("main", "/r"+itoa(i)), nil)
		if e.Header("x-b3-sampled") != "1" {
			t.Fatalf("request %d not traced: %v", i, e.Headers)
		}
	}
	eventually(t, 20*time.Second, "tracing.zipkin.reports_failed", func() bool {
		return l.Counter(t, "tracing.zipkin.reports_failed") >= 1
	})
	if n := l.Counter(t, "tracing.zipkin.reports_sent"); n != 0 {
		t.Errorf("tracing.zipkin.reports_sent = %d with no collector", n)
	}
	if _, e := tracedGet(t, l.URL("main", "/after"), nil); e.Upstream != "svc" {
		t.Errorf("after a failed report: %+v", e)
	}
}

// benchProxy measures sequential keep-alive GETs through the binary.
func benchProxy(b *testing.B, hcm string, clusters ...string) {
	up := startUpstream(b, "svc", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	clusters = append(clusters, testutil.StaticClusterYAML("svc", "", up.Addr))
	l := startLegate(b, nodeYAML+bootstrapYAML([]string{listenerYAML("main", hcm+routeAll("svc"), "")}, clusters), nil)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	url := l.URL("main", "/bench")
	get := func() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	for range 50 {
		get()
	}
	b.ResetTimer()
	for b.Loop() {
		get()
	}
}

func BenchmarkProxyNoTracing(b *testing.B) { benchProxy(b, "") }

// BenchmarkProxyDeadCollector traces every request to a Zipkin collector
// that refuses connections; compare with BenchmarkProxyLiveCollector (the
// cost of tracing itself) and BenchmarkProxyNoTracing.
func BenchmarkProxyDeadCollector(b *testing.B) {
	benchProxy(b, zipkinTracing("", ""), testutil.StaticClusterYAML("zipkin", "", "127.0.0.1:"+itoa(closedPort(b))))
}

// BenchmarkProxyHungCollector traces to a collector that accepts
// connections and never answers: reports wait out their timeout while the
// queue fills and drops.
func BenchmarkProxyHungCollector(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var conns sync.WaitGroup
	b.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { defer conns.Done(); _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	benchProxy(b, zipkinTracing("", ""), testutil.StaticClusterYAML("zipkin", "", ln.Addr().String()))
}

// BenchmarkProxyLiveCollector traces every request to a working collector.
func BenchmarkProxyLiveCollector(b *testing.B) {
	col := startZipkin(b)
	benchProxy(b, zipkinTracing("", ""), testutil.StaticClusterYAML("zipkin", "", col.Addr))
}

// ---------------------------------------------------------------------------
// Access logs.

// fileLogger is an access_log entry for path with a log_format body and an
// optional filter.
func fileLogger(path, logFormat, filter string) string {
	s := "- name: envoy.access_loggers.file\n"
	if filter != "" {
		s += "  filter:\n" + indent(filter, 4) + "\n"
	}
	s += `  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: ` + path + "\n"
	if logFormat != "" {
		s += "    log_format:\n" + indent(logFormat, 6) + "\n"
	}
	return s
}

// yamlQuote renders s as a YAML double-quoted scalar.
func yamlQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// trailerUpstream answers over h2c: "ok <n>" for a body of n bytes, with a
// trailer on /app/trailers.
func trailerUpstream(t *testing.T) *Upstream {
	return startH2CUpstream(t, "svc", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/trailers") {
			w.Header().Set("Trailer", "X-Checksum")
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok "+strconv.FormatInt(n, 10))
		if strings.HasSuffix(r.URL.Path, "/trailers") {
			w.Header().Set("X-Checksum", "c0ffee")
		}
	}))
}

func TestAccessLogs(t *testing.T) {
	t.Parallel()
	up := trailerUpstream(t)
	dir := t.TempDir()
	mainLog, jsonLog, errLog := filepath.Join(dir, "main.log"), filepath.Join(dir, "json.log"), filepath.Join(dir, "errors.log")

	const textFormat = "%START_TIME(%Y)%|%REQ(:METHOD)%|%REQ(X-FOO?X-BAR):5%|%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%|" +
		"%TRAILER(X-CHECKSUM)%|%RESPONSE_CODE%|%RESPONSE_FLAGS%|%BYTES_RECEIVED%|%BYTES_SENT%|%UPSTREAM_HOST%|" +
		"%UPSTREAM_CLUSTER%|%ROUTE_NAME%|%PROTOCOL%|%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%|%CONNECTION_ID%|%REQ(:PATH)%\n"
	hcm := "access_log:\n" +
		fileLogger(mainLog, "text_format_source: {inline_string: "+yamlQuote(textFormat)+"}", "") +
		fileLogger(jsonLog, `json_format:
  method: "%REQ(:METHOD)%"
  code: "%RESPONSE_CODE%"
  path: "%REQ(:PATH)%"
  flags: "%RESPONSE_FLAGS%"
  received: "%BYTES_RECEIVED%"
  upstream: "%UPSTREAM_HOST%"
  fixed: literal
  mixed: "code=%RESPONSE_CODE%"`, "") +
		fileLogger(errLog, `text_format_source: {inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS% %REQ(:PATH)%\n"}`, `status_code_filter:
  comparison:
    op: GE
    value: {default_value: 400, runtime_key: access_log.error_status}`) +
		`route_config:
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - name: app
      match: {prefix: "/app"}
      route: {cluster: svc}`
	l := startLegate(t, bootstrapYAML([]string{listenerYAML("main", hcm, "")},
		[]string{testutil.StaticClusterYAML("svc", h2Options, up.Addr)}), nil)

	year := strconv.Itoa(time.Now().Year())
	c := newClient()
	type sent struct {
		status int
		body   string
	}
	h2 := false // send the next request over h2c (prior knowledge)
	send := func(method, path, body string, hdr map[string]string) sent {
		t.Helper()
		var rb io.Reader
		if body != "" {
			rb = strings.NewReader(body)
		}
		req := mustReq(t, method, l.URL("main", path), rb)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		client := c
		if h2 {
			client = h2cClient()
		}
		resp, b := do(t, client, req)
		// HTTP/1.1 drops proxied trailers (Envoy's default without
		// enable_trailers); HTTP/2 carries them.
		if path == "/app/trailers" && resp.Trailer.Get("X-Checksum") != "c0ffee" {
			t.Errorf("trailer X-Checksum %q did not reach the HTTP/2 client", resp.Trailer.Get("X-Checksum"))
		}
		return sent{resp.StatusCode, b}
	}
	h2 = true
	post := send("POST", "/app/trailers", "hello world", map[string]string{"X-Foo": "abcdefgh", "X-Bar": "ignored"})
	h2 = false
	get := send("GET", "/app/bar", "", map[string]string{"X-Bar": "xyz"})
	nr := send("GET", "/nope", "", nil)
	if post.status != 200 || post.body != "ok 11" || get.status != 200 || nr.status != 404 {
		t.Fatalf("responses %+v %+v %+v", post, get, nr)
	}

	lines := readLines(t, mainLog, 3)
	digits := regexp.MustCompile(`^[0-9]+$`)
	byPath := map[string][]string{}
	for _, ln := range lines {
		f := strings.Split(ln, "|")
		if len(f) != 16 {
			t.Fatalf("line %q has %d fields, want 16", ln, len(f))
		}
		if !digits.MatchString(f[14]) {
			t.Errorf("CONNECTION_ID %q in %q", f[14], ln)
		}
		if f[0] != year && f[0] != strconv.Itoa(time.Now().Year()) {
			t.Errorf("START_TIME(%%Y) %q, want %s", f[0], year)
		}
		byPath[f[15]] = f
	}
	// Fields 0 (year), 3 (upstream service time) and 14 (connection id)
	// vary; the rest is exact.
	check := func(path string, svcTime bool, want ...string) {
		t.Helper()
		f := byPath[path]
		if f == nil {
			t.Errorf("no line for %s in:\n%s", path, strings.Join(lines, "\n"))
			return
		}
		if svcTime != digits.MatchString(f[3]) || !svcTime && f[3] != "-" {
			t.Errorf("%s: upstream service time %q", path, f[3])
		}
		got := append(append([]string{f[1], f[2]}, f[4:14]...), f[15])
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s:\n got %s\nwant %s", path, strings.Join(got, "|"), strings.Join(want, "|"))
		}
	}
	check("/app/trailers", true, "POST", "abcde", "c0ffee", "200", "-", "11", itoa(len(post.body)), up.Addr, "svc", "app", "HTTP/2", "127.0.0.1", "/app/trailers")
	check("/app/bar", true, "GET", "xyz", "-", "200", "-", "0", itoa(len(get.body)), up.Addr, "svc", "app", "HTTP/1.1", "127.0.0.1", "/app/bar")
	check("/nope", false, "GET", "-", "-", "404", "NR", "0", itoa(len(nr.body)), "-", "-", "-", "HTTP/1.1", "127.0.0.1", "/nope")

	t.Run("json_format", func(t *testing.T) {
		got := map[string]map[string]any{}
		for _, ln := range readLines(t, jsonLog, 3) {
			var m map[string]any
			if err := json.Unmarshal([]byte(ln), &m); err != nil {
				t.Fatalf("not JSON: %q: %v", ln, err)
			}
			got[fmt.Sprint(m["path"])] = m
		}
		want := map[string]map[string]any{
			"/app/trailers": {"method": "POST", "code": 200.0, "path": "/app/trailers", "flags": "-", "received": 11.0, "upstream": up.Addr, "fixed": "literal", "mixed": "code=200"},
			"/app/bar":      {"method": "GET", "code": 200.0, "path": "/app/bar", "flags": "-", "received": 0.0, "upstream": up.Addr, "fixed": "literal", "mixed": "code=200"},
			"/nope":         {"method": "GET", "code": 404.0, "path": "/nope", "flags": "NR", "received": 0.0, "upstream": nil, "fixed": "literal", "mixed": "code=404"},
		}
		for p, w := range want {
			g, _ := json.Marshal(got[p])
			wb, _ := json.Marshal(w)
			if string(g) != string(wb) {
				t.Errorf("%s:\n got %s\nwant %s", p, g, wb)
			}
		}
	})

	t.Run("status_code_filter", func(t *testing.T) {
		// The 404 is the only line; a later 503 joins it.
		lines := readLines(t, errLog, 1)
		if lines[0] != "404 NR /nope" {
			t.Errorf("errors.log: %q", lines)
		}
	})

	t.Run("reopen_logs", func(t *testing.T) {
		rotated := mainLog + ".1"
		if err := os.Rename(mainLog, rotated); err != nil {
			t.Fatal(err)
		}
		resp, body := do(t, defaultClient, mustReq(t, "POST", l.AdminURL("/reopen_logs"), nil))
		if resp.StatusCode != 200 {
			t.Fatalf("POST /reopen_logs: %d %s", resp.StatusCode, body)
		}
		send("GET", "/app/after-reopen", "", nil)
		if got := readLines(t, mainLog, 1); !strings.HasSuffix(got[0], "|/app/after-reopen") {
			t.Errorf("new main.log: %q", got)
		}
		if got := readLines(t, rotated, 3); len(got) != 3 {
			t.Errorf("rotated file changed: %q", got)
		}

		// SIGUSR1 reopens too; the new file exists once it has.
		rotated2 := mainLog + ".2"
		if err := os.Rename(mainLog, rotated2); err != nil {
			t.Fatal(err)
		}
		l.Signal(syscall.SIGUSR1)
		eventually(t, 10*time.Second, "main.log recreated after SIGUSR1", func() bool {
			_, err := os.Stat(mainLog)
			return err == nil
		})
		send("GET", "/app/after-signal", "", nil)
		if got := readLines(t, mainLog, 1); !strings.HasSuffix(got[0], "|/app/after-signal") {
			t.Errorf("main.log after SIGUSR1: %q", got)
		}
		if got := readLines(t, rotated2, 1); !strings.HasSuffix(got[0], "|/app/after-reopen") {
			t.Errorf("file rotated before SIGUSR1: %q", got)
		}
	})

	if n := l.Counter(t, "filesystem.write_failed"); n != 0 {
		t.Errorf("filesystem.write_failed = %d", n)
	}
}

// TestAccessLogUnwritable: write and reopen failures are counted and never
// affect traffic. As root, permissions do not stop a write, so the
// failures are made with /dev/full (every write fails with ENOSPC) and by
// replacing the log's directory with a regular file (ENOTDIR on reopen).
func TestAccessLogUnwritable(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("SKIP: no /dev/full: %v", err)
	}
	up := startUpstream(t, "svc", nil)
	dir := t.TempDir()
	sub := filepath.Join(dir, "logs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(sub, "access.log")
	const f = `text_format_source: {inline_string: "%REQ(:PATH)%\n"}`
	hcm := "access_log:\n" + fileLogger("/dev/full", f, "") + fileLogger(logPath, f, "") + routeAll("svc")
	l := startLegate(t, bootstrapYAML([]string{listenerYAML("main", hcm, "")}, []string{testutil.StaticClusterYAML("svc", "", up.Addr)}), nil)

	get := func(path string) {
		t.Helper()
		if resp, body := httpGet(t, l.URL("main", path)); resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	get("/one")
	eventually(t, 15*time.Second, "filesystem.write_failed", func() bool {
		return l.Counter(t, "filesystem.write_failed") >= 1
	})
	readLines(t, logPath, 1) // the healthy file is unaffected

	// The directory goes away and a file takes its name: reopening fails.
	moved := filepath.Join(dir, "logs.old")
	if err := os.Rename(sub, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sub, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, defaultClient, mustReq(t, "POST", l.AdminURL("/reopen_logs"), nil))
	if resp.StatusCode != 500 || !strings.Contains(body, "not a directory") {
		t.Errorf("POST /reopen_logs with an unopenable file: %d %q, want 500 naming the error", resp.StatusCode, body)
	}
	if n := l.Counter(t, "filesystem.reopen_failed"); n < 1 {
		t.Errorf("filesystem.reopen_failed = %d", n)
	}
	get("/two")
	// Still written through the old descriptor.
	if got := readLines(t, filepath.Join(moved, "access.log"), 2); got[1] != "/two" {
		t.Errorf("old file: %q", got)
	}
	// Once the path works again, the retry made before the next write
	// succeeds: that write lands in the new file.
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	get("/three")
	if got := readLines(t, logPath, 1); got[0] != "/three" {
		t.Errorf("re-created log: %q", got)
	}
	if !strings.Contains(l.Stderr(), "access log") {
		t.Error("the failures were not logged")
	}
}

// ---------------------------------------------------------------------------
// Stats sinks and Prometheus.

// statsdListener collects statsd lines from a UDP socket.
type statsdListener struct {
	Port  int
	mu    sync.Mutex
	lines []string
}

func startStatsd(t *testing.T) *statsdListener {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &statsdListener{Port: pc.LocalAddr().(*net.UDPAddr).Port}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.lines = append(s.lines, strings.Split(strings.TrimRight(string(buf[:n]), "\n"), "\n")...)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return s
}

// sum adds the counter deltas received for the exact name (and tag
// suffix, for DogStatsD).
func (s *statsdListener) sum(name, suffix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for _, ln := range s.lines {
		v, ok := strings.CutPrefix(ln, name+":")
		if !ok {
			continue
		}
		v, ok = strings.CutSuffix(v, "|c"+suffix)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err == nil {
			total += n
		}
	}
	return total
}

func (s *statsdListener) has(prefix string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.lines {
		if strings.HasPrefix(ln, prefix) {
			return true
		}
	}
	return false
}

func (s *statsdListener) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(s.lines), 40)
	return strings.Join(s.lines[:n], "\n")
}

func TestStatsSinksAndPrometheus(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "svc", nil)
	statsd, dog := startStatsd(t), startStatsd(t)
	cfg := `stats_flush_interval: 0.2s
stats_sinks:
- name: envoy.stat_sinks.statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink
    address: {socket_address: {address: 127.0.0.1, port_value: ` + itoa(statsd.Port) + `}}
- name: envoy.stat_sinks.dog_statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink
    address: {socket_address: {address: 127.0.0.1, port_value: ` + itoa(dog.Port) + `}}
    prefix: dog
stats_config:
  stats_matcher:
    exclusion_list:
      patterns:
      - exact: cluster.svc.upstream_rq_200
      - prefix: cluster.svc.upstream_cx_connect_ms
`
	cfg += bootstrapYAML([]string{listenerYAML("main", "stat_prefix: ingress\n"+routeAll("svc"), "")},
		[]string{testutil.StaticClusterYAML("svc", "", up.Addr)})
	l := startLegate(t, cfg, nil)
	const n = 7
	for i := range n {
		if resp, body := httpGet(t, l.URL("main", "/s"+itoa(i))); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}

	t.Run("statsd", func(t *testing.T) {
		eventually(t, 20*time.Second, "statsd upstream_rq_total deltas summing to 7", func() bool {
			return statsd.sum("envoy.cluster.svc.upstream_rq_total", "") == n &&
				statsd.sum("envoy.http.ingress.downstream_rq_2xx", "") == n
		})
		if !statsd.has("envoy.server.memory_allocated:") || !statsd.has("envoy.cluster.svc.membership_healthy:1|g") {
			t.Errorf("gauges missing from statsd:\n%s", statsd)
		}
		if statsd.has("envoy.cluster.svc.upstream_rq_200:") {
			t.Error("an excluded stat was sent to statsd")
		}
	})

	t.Run("dog_statsd tags", func(t *testing.T) {
		eventually(t, 20*time.Second, "tagged upstream_rq_total at DogStatsD", func() bool {
			return dog.sum("dog.cluster.upstream_rq_total", "|#envoy.cluster_name:svc") == n &&
				dog.sum("dog.http.downstream_rq_xx", "|#envoy.response_code_class:2,envoy.http_conn_manager_prefix:ingress") == n
		})
	})

	t.Run("stats_matcher", func(t *testing.T) {
		eventually(t, 10*time.Second, "upstream_rq_2xx", func() bool { return l.Counter(t, "cluster.svc.upstream_rq_2xx") == n })
		st := l.Stats(t)
		for k := range st {
			if k == "cluster.svc.upstream_rq_200" || strings.HasPrefix(k, "cluster.svc.upstream_cx_connect_ms") {
				t.Errorf("excluded stat %s is in /stats", k)
			}
		}
		if st["cluster.svc.upstream_rq_total"] != itoa(n) {
			t.Errorf("cluster.svc.upstream_rq_total = %q", st["cluster.svc.upstream_rq_total"])
		}
		_, prom := httpGet(t, l.AdminURL("/stats/prometheus"))
		for _, ln := range strings.Split(prom, "\n") {
			if strings.HasPrefix(ln, "envoy_cluster_upstream_cx_connect_seconds") || strings.HasPrefix(ln, "envoy_cluster_upstream_cx_connect_ms") ||
				strings.HasPrefix(ln, "envoy_cluster_upstream_rq{") && strings.Contains(ln, `envoy_response_code="200"`) {
				t.Errorf("excluded stat in /stats/prometheus: %s", ln)
			}
		}
		if !strings.Contains(prom, "\nenvoy_cluster_upstream_rq_xx{") {
			t.Error("envoy_cluster_upstream_rq_xx missing from /stats/prometheus")
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		resp, body := httpGet(t, l.AdminURL("/stats/prometheus"))
		if resp.StatusCode != 200 {
			t.Fatalf("%d", resp.StatusCode)
		}
		problems, err := promlint.New(strings.NewReader(body)).Lint()
		if err != nil {
			t.Fatalf("promlint: %v", err)
		}
		for _, p := range problems {
			// Envoy's names keep their units (…_length_ms, …_time_ms):
			// dashboards query them, so promlint's unit advice is not taken.
			if strings.Contains(p.Text, "abbreviated units") {
				continue
			}
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "envoy_server_memory_allocated"} {
			f := fams[name]
			if f == nil || len(f.Metric) == 0 {
				t.Errorf("%s missing", name)
				continue
			}
			m := f.Metric[0]
			if v := m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue(); v <= 0 && name != "process_cpu_seconds_total" {
				t.Errorf("%s = %v", name, v)
			}
		}
		h := fams["envoy_cluster_upstream_rq_time"]
		if h == nil || h.GetType().String() != "HISTOGRAM" || len(h.Metric) == 0 || h.Metric[0].GetHistogram().GetSampleCount() != n {
			t.Errorf("envoy_cluster_upstream_rq_time: %v", h)
		}
		if f := fams["envoy_cluster_upstream_rq_total"]; f == nil || f.Metric[0].GetCounter().GetValue() != n {
			t.Errorf("envoy_cluster_upstream_rq_total: %v", f)
		}
	})
}
