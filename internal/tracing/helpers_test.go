package tracing

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	zmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

const waitTimeout = 20 * time.Second

// staticClusters builds a cluster manager with one STATIC cluster per
// name → "ip:port".
func staticClusters(t testing.TB, st *stats.Store, hosts map[string]string) *cluster.Manager {
	return staticClustersExtra(t, st, hosts, "")
}

// staticClustersExtra adds extra YAML (top-level Cluster fields) to each.
func staticClustersExtra(t testing.TB, st *stats.Store, hosts map[string]string, extra string) *cluster.Manager {
	t.Helper()
	var protos []*clusterv3.Cluster
	for name, addr := range hosts {
		ap := netip.MustParseAddrPort(addr)
		y := `
name: ` + name + `
type: STATIC
load_assignment:
  cluster_name: ` + name + `
  endpoints:
  - lb_endpoints:
    - endpoint:
        address:
          socket_address: {address: "` + ap.Addr().String() + `", port_value: ` + itoa(int(ap.Port())) + `}
` + extra
		j, err := yaml.YAMLToJSON([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		c := &clusterv3.Cluster{}
		if err := protojson.Unmarshal(j, c); err != nil {
			t.Fatal(err)
		}
		protos = append(protos, c)
	}
	m, err := cluster.NewManager(protos, cluster.Options{Stats: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// hcmTracing parses an HCM tracing block from YAML (provider typed_config
// given as a message).
func hcmTracing(t testing.TB, provider proto.Message, y string) *hcmv3.HttpConnectionManager_Tracing {
	t.Helper()
	pb := &hcmv3.HttpConnectionManager_Tracing{}
	if y != "" {
		j, err := yaml.YAMLToJSON([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		if err := protojson.Unmarshal(j, pb); err != nil {
			t.Fatalf("tracing yaml: %v", err)
		}
	}
	a, err := anypb.New(provider)
	if err != nil {
		t.Fatal(err)
	}
	pb.Provider = &tracev3.Tracing_Http{Name: "provider", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: a}}
	return pb
}

func newTracer(t testing.TB, pb *hcmv3.HttpConnectionManager_Tracing, deps Deps) *Tracer {
	t.Helper()
	tr, err := New(pb, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

// A request as the connection manager hands it over: x-request-id present
// (here a plain v4 UUID whose first 8 digits choose the sampling bucket).
func request(h ...string) *message.Request {
	r := &message.Request{Method: "GET", Scheme: "http", Authority: "example.com", Path: "/p?q=1", Protocol: message.HTTP11}
	r.Header.Add("x-forwarded-proto", "http")
	for i := 0; i+1 < len(h); i += 2 {
		r.Header.Add(h[i], h[i+1])
	}
	if !r.Header.Has("x-request-id") {
		r.Header.Add("x-request-id", "00000000-0000-4000-8000-000000000000")
	}
	return r
}

func streamInfo() *streaminfo.StreamInfo {
	return &streaminfo.StreamInfo{
		StartTime:            time.Now(),
		Protocol:             message.HTTP11,
		DownstreamDirectAddr: netip.MustParseAddrPort("127.0.0.7:5555"),
		DownstreamLocalAddr:  netip.MustParseAddrPort("127.0.0.1:10000"),
	}
}

// finished completes info as a proxied 200.
func finished(info *streaminfo.StreamInfo) *streaminfo.StreamInfo {
	info.UpstreamCluster = "service"
	info.UpstreamHost = "127.0.0.2:8080"
	info.ResponseCode = 200
	info.BytesReceived = 12
	info.BytesSent = 34
	return info
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// zipkinCollector is a Zipkin v2 HTTP collector decoding JSON and proto.
type zipkinCollector struct {
	addr string
	mu   sync.Mutex
	// reports holds each POST's spans; hosts, paths and types what came with it.
	reports [][]*zmodel.SpanModel
	hosts   []string
	paths   []string
	types   []string
	protos  []string
	got     chan struct{}
	status  int
}

func newZipkinCollector(t testing.TB) *zipkinCollector {
	return newZipkinCollectorProto(t, nil)
}

// newZipkinCollectorProto serves with the given protocols (nil: HTTP/1.1).
func newZipkinCollectorProto(t testing.TB, protos *http.Protocols) *zipkinCollector {
	t.Helper()
	z := &zipkinCollector{got: make(chan struct{}, 1000), status: http.StatusAccepted}
	ln := listen(t)
	z.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		var spans []*zmodel.SpanModel
		ct := r.Header.Get("Content-Type")
		if strings.Contains(ct, "protobuf") {
			spans, err = zipkin_proto3.ParseSpans(body, false)
		} else {
			err = json.Unmarshal(body, &spans)
		}
		if err != nil {
			t.Errorf("collector: decoding %s: %v", ct, err)
			w.WriteHeader(400)
			return
		}
		z.mu.Lock()
		z.reports = append(z.reports, spans)
		z.hosts = append(z.hosts, r.Host)
		z.paths = append(z.paths, r.URL.Path)
		z.protos = append(z.protos, r.Proto)
		z.types = append(z.types, ct)
		status := z.status
		z.mu.Unlock()
		w.WriteHeader(status)
		z.got <- struct{}{}
	}), Protocols: protos}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return z
}

func (z *zipkinCollector) spans() []*zmodel.SpanModel {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []*zmodel.SpanModel
	for _, r := range z.reports {
		out = append(out, r...)
	}
	return out
}

// waitSpans waits until the collector holds n spans.
func (z *zipkinCollector) waitSpans(t testing.TB, n int) []*zmodel.SpanModel {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		if s := z.spans(); len(s) >= n {
			return s
		}
		select {
		case <-z.got:
		case <-deadline:
			t.Fatalf("collector: %d spans, want %d", len(z.spans()), n)
		}
	}
}

// otlpReceiver implements the OTLP TraceService over gRPC, and OTLP/HTTP.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	addr string
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
	md   []map[string][]string
	got  chan struct{}
	// block, when non-nil, holds Export until closed (a slow collector).
	block chan struct{}
}

func (o *otlpReceiver) record(req *coltracepb.ExportTraceServiceRequest, md map[string][]string) {
	o.mu.Lock()
	o.reqs = append(o.reqs, req)
	o.md = append(o.md, md)
	o.mu.Unlock()
	o.got <- struct{}{}
}

func (o *otlpReceiver) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	if o.block != nil {
		select {
		case <-o.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	o.record(req, md)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func newOTLPGRPC(t testing.TB, block chan struct{}) *otlpReceiver {
	t.Helper()
	o := &otlpReceiver{got: make(chan struct{}, 1000), block: block}
	ln := listen(t)
	o.addr = ln.Addr().String()
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, o)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return o
}

func newOTLPHTTP(t testing.TB) *otlpReceiver {
	t.Helper()
	o := &otlpReceiver{got: make(chan struct{}, 1000)}
	ln := listen(t)
	o.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, req) != nil {
			t.Errorf("otlp/http: bad request %q", r.Header.Get("Content-Type"))
			w.WriteHeader(400)
			return
		}
		o.record(req, map[string][]string{":path": {r.URL.Path}, ":authority": {r.Host}, "x-token": r.Header.Values("X-Token")})
		w.WriteHeader(200)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *otlpReceiver) spans() []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*tracepb.Span
	for _, r := range o.reqs {
		for _, rs := range r.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				out = append(out, ss.GetSpans()...)
			}
		}
	}
	return out
}

func (o *otlpReceiver) waitSpans(t testing.TB, n int) []*tracepb.Span {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		if s := o.spans(); len(s) >= n {
			return s
		}
		select {
		case <-o.got:
		case <-deadline:
			t.Fatalf("receiver: %d spans, want %d", len(o.spans()), n)
		}
	}
}

// waitCounter waits until a counter reaches at least n.
func waitCounter(t testing.TB, st *stats.Store, name string, n uint64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for st.Counter(name).Value() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want >= %d", name, st.Counter(name).Value(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tagMap(tags []Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}
