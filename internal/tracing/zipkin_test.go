package tracing

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	zmodel "github.com/openzipkin/zipkin-go/model"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/xds"
)

func zipkinCfg(mod func(*tracev3.ZipkinConfig)) *tracev3.ZipkinConfig {
	c := &tracev3.ZipkinConfig{
		CollectorCluster:         "zipkin",
		CollectorEndpoint:        "/api/v2/spans",
		CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON,
	}
	if mod != nil {
		mod(c)
	}
	return c
}

type zipkinEnv struct {
	st   *stats.Store
	col  *zipkinCollector
	ring *Ring
	deps Deps
}

func newZipkinEnv(t *testing.T) *zipkinEnv {
	st := stats.NewStore()
	col := newZipkinCollector(t)
	ring := NewRing(100)
	return &zipkinEnv{st: st, col: col, ring: ring, deps: Deps{
		Clusters:       staticClusters(t, st, map[string]string{"zipkin": col.addr}),
		Stats:          st,
		Ring:           ring,
		NodeID:         "node-1",
		ServiceCluster: "front-proxy",
		StatPrefix:     "ingress_http",
	}}
}

func TestZipkinRootSpanTagsAndHeaders(t *testing.T) {
	t.Setenv("LEGATE_TEST_ZONE", "zone-a")
	env := newZipkinEnv(t)
	tr := newTracer(t, hcmTracing(t, zipkinCfg(nil), `
max_path_tag_length: 4
custom_tags:
- {tag: lit, literal: {value: v1}}
- {tag: env, environment: {name: LEGATE_TEST_ZONE}}
- {tag: env-missing, environment: {name: LEGATE_TEST_UNSET_VAR, default_value: dflt}}
- {tag: hdr, request_header: {name: X-Tenant}}
- {tag: hdr-missing, request_header: {name: x-absent, default_value: none}}
- {tag: hdr-missing-nodefault, request_header: {name: x-absent}}
- {tag: md, metadata: {kind: {route: {}}, metadata_key: {key: k, path: [{key: a}]}, default_value: md-default}}
`), env.deps)

	req := request("x-tenant", "acme", "user-agent", "curl/8", "x-client-trace-id", "client-1",
		"x-envoy-downstream-service-cluster", "mobile")
	info := streamInfo()
	sp := tr.Start(req, info, "")
	if sp == nil {
		t.Fatal("default sampling (100%) gave no span")
	}
	h := req.Header
	if h.Value("x-b3-traceid") != sp.TraceID() || h.Value("x-b3-spanid") != sp.SpanID() ||
		h.Value("x-b3-sampled") != "1" || h.Has("x-b3-parentspanid") {
		t.Fatalf("upstream headers: %v (span %s/%s)", h, sp.TraceID(), sp.SpanID())
	}
	if len(sp.TraceID()) != 16 {
		t.Errorf("trace id %q: want 64-bit by default", sp.TraceID())
	}
	if id := h.Value("x-request-id"); id[14] != 'b' {
		t.Errorf("x-request-id %q: client-forced reason not packed", id)
	}
	sp.Finish(req, nil, finished(info))
	tr.Close() // flushes

	spans := env.col.waitSpans(t, 1)
	s := spans[0]
	if s.TraceID.String() != sp.TraceID() || s.ID.String() != sp.SpanID() || s.ParentID != nil {
		t.Errorf("ids: %s/%s parent %v", s.TraceID, s.ID, s.ParentID)
	}
	if s.Kind != zmodel.Server || s.Name != "example.com" || s.Shared {
		t.Errorf("kind %q name %q shared %v", s.Kind, s.Name, s.Shared)
	}
	if s.LocalEndpoint == nil || s.LocalEndpoint.ServiceName != "front-proxy" || s.LocalEndpoint.IPv4.String() != "127.0.0.1" {
		t.Errorf("local endpoint %+v", s.LocalEndpoint)
	}
	want := map[string]string{
		"guid:x-request-id":      h.Value("x-request-id"),
		"guid:x-client-trace-id": "client-1",
		"http.url":               "http://example.com/p?q",
		"http.method":            "GET",
		"http.protocol":          "HTTP/1.1",
		"http.status_code":       "200",
		"downstream_cluster":     "mobile",
		"user_agent":             "curl/8",
		"peer.address":           "127.0.0.7",
		"node_id":                "node-1",
		"component":              "proxy",
		"upstream_cluster":       "service",
		"upstream_address":       "127.0.0.2:8080",
		"response_flags":         "-",
		"request_size":           "12",
		"response_size":          "34",
		"lit":                    "v1",
		"env":                    "zone-a",
		"env-missing":            "dflt",
		"hdr":                    "acme",
		"hdr-missing":            "none",
		"md":                     "md-default",
	}
	for k, v := range want {
		if s.Tags[k] != v {
			t.Errorf("tag %s = %q, want %q", k, s.Tags[k], v)
		}
	}
	for _, k := range []string{"error", "hdr-missing-nodefault"} {
		if _, ok := s.Tags[k]; ok {
			t.Errorf("unexpected tag %s=%q", k, s.Tags[k])
		}
	}
	if got := env.col.hosts[0]; got != "zipkin" {
		t.Errorf("Host %q, want the cluster name", got)
	}
	if got := env.col.paths[0]; got != "/api/v2/spans" {
		t.Errorf("path %q", got)
	}
	if env.col.types[0] != "application/json" {
		t.Errorf("content-type %q", env.col.types[0])
	}
	rec := env.ring.Snapshot()
	if len(rec) != 1 || rec[0].TraceID != sp.TraceID() || rec[0].Kind != "SERVER" || rec[0].Service != "front-proxy" ||
		tagMap(rec[0].Tags)["http.status_code"] != "200" || !rec[0].Sampled {
		t.Errorf("ring: %+v", rec)
	}
	for name, want := range map[string]uint64{
		"tracing.zipkin.spans_sent":                 1,
		"tracing.zipkin.reports_sent":               1,
		"http.ingress_http.tracing.client_enabled":  1,
		"http.ingress_http.tracing.random_sampling": 0,
	} {
		if got := env.st.Counter(name).Value(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

func TestZipkinErrorTagAndFlags(t *testing.T) {
	env := newZipkinEnv(t)
	tr := newTracer(t, hcmTracing(t, zipkinCfg(nil), ""), env.deps)
	for _, code := range []int{503, 0} {
		req := request()
		info := streamInfo()
		sp := tr.Start(req, info, "")
		info.ResponseCode = code
		info.Flags = streaminfo.NoHealthyUpstream
		sp.Finish(req, nil, info)
	}
	tr.Close()
	for _, s := range env.col.waitSpans(t, 2) {
		if s.Tags["error"] != "true" || s.Tags["response_flags"] != "UH" {
			t.Errorf("status %s: error=%q flags=%q", s.Tags["http.status_code"], s.Tags["error"], s.Tags["response_flags"])
		}
		if _, ok := s.Tags["upstream_cluster"]; ok {
			t.Errorf("upstream_cluster without an upstream")
		}
	}
}

// An incoming context is joined; the upstream receives Legate's span as
// its parent in whichever header form it will read.
func TestZipkinJoinsIncomingContext(t *testing.T) {
	const (
		tid64  = "463ac35c9f6413ad"
		tid128 = "80f198ee56343ba864fe8b2a57d3eff7"
		sid    = "a2fb4a1d1a96d312"
		pid    = "05e3ac9a4f6e3b90"
	)
	tests := []struct {
		name        string
		mod         func(*tracev3.ZipkinConfig)
		h           []string
		wantTrace   string
		sharedSpan  bool   // Legate's span id is the caller's
		wantParent  string // of Legate's span ("" = none)
		wantSingle  bool   // b3 single header rewritten
		wantW3C     bool
		contentType string
	}{
		{name: "multi shared", h: []string{"x-b3-traceid", tid64, "x-b3-spanid", sid, "x-b3-parentspanid", pid, "x-b3-sampled", "1"},
			wantTrace: tid64, sharedSpan: true, wantParent: pid},
		{name: "multi not shared", mod: func(c *tracev3.ZipkinConfig) { c.SharedSpanContext = wrapperspb.Bool(false) },
			h: []string{"x-b3-traceid", tid128, "x-b3-spanid", sid, "x-b3-sampled", "1"}, wantTrace: tid128, wantParent: sid},
		{name: "single b3, proto", mod: func(c *tracev3.ZipkinConfig) {
			c.SharedSpanContext = wrapperspb.Bool(false)
			c.CollectorEndpointVersion = tracev3.ZipkinConfig_HTTP_PROTO
		},
			h: []string{"b3", tid128 + "-" + sid + "-1"}, wantTrace: tid128, wantParent: sid, wantSingle: true, contentType: "application/x-protobuf"},
		{name: "w3c fallback", mod: func(c *tracev3.ZipkinConfig) {
			c.SharedSpanContext = wrapperspb.Bool(false)
			c.TraceContextOption = tracev3.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION
		},
			h: []string{"traceparent", "00-" + tid128 + "-" + sid + "-01"}, wantTrace: tid128, wantParent: sid, wantW3C: true},
		{name: "w3c ignored without the option",
			h: []string{"traceparent", "00-" + tid128 + "-" + sid + "-01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newZipkinEnv(t)
			tr := newTracer(t, hcmTracing(t, zipkinCfg(tt.mod), ""), env.deps)
			req := request(tt.h...)
			info := streamInfo()
			sp := tr.Start(req, info, "checkout")
			if sp == nil {
				t.Fatal("no span")
			}
			h := req.Header
			if tt.wantTrace != "" && sp.TraceID() != tt.wantTrace {
				t.Errorf("trace %s, want %s", sp.TraceID(), tt.wantTrace)
			}
			if tt.wantTrace == "" && sp.TraceID() == tid128 {
				t.Errorf("joined a context it should not read")
			}
			if tt.sharedSpan != (sp.SpanID() == sid) {
				t.Errorf("span id %s (caller's %s), shared=%v", sp.SpanID(), sid, tt.sharedSpan)
			}
			// What the upstream reads.
			if h.Value("x-b3-traceid") != sp.TraceID() || h.Value("x-b3-spanid") != sp.SpanID() || h.Value("x-b3-parentspanid") != tt.wantParent {
				t.Errorf("upstream B3: trace %q span %q parent %q", h.Value("x-b3-traceid"), h.Value("x-b3-spanid"), h.Value("x-b3-parentspanid"))
			}
			if tt.wantSingle && !strings.HasPrefix(h.Value("b3"), sp.TraceID()+"-"+sp.SpanID()+"-1") {
				t.Errorf("b3 single %q not rewritten", h.Value("b3"))
			}
			if tt.wantW3C && h.Value("traceparent") != "00-"+sp.TraceID()+"-"+sp.SpanID()+"-01" {
				t.Errorf("traceparent %q", h.Value("traceparent"))
			}
			sp.Finish(req, nil, finished(info))
			tr.Close()
			s := env.col.waitSpans(t, 1)[0]
			parent := ""
			if s.ParentID != nil {
				parent = s.ParentID.String()
			}
			if s.TraceID.String() != sp.TraceID() || s.ID.String() != sp.SpanID() || parent != tt.wantParent {
				t.Errorf("collected ids %s/%s parent %q", s.TraceID, s.ID, parent)
			}
			if s.Shared != tt.sharedSpan {
				t.Errorf("shared = %v", s.Shared)
			}
			if s.Name != "checkout" {
				t.Errorf("name %q, want the decorator's", s.Name)
			}
			if tt.contentType != "" && env.col.types[0] != tt.contentType {
				t.Errorf("content-type %q", env.col.types[0])
			}
		})
	}
}

func TestZipkinSamplingDecisions(t *testing.T) {
	tests := []struct {
		name    string
		tracing string
		h       []string
		sampled bool
		reason  byte // x-request-id position 14 afterwards
	}{
		{name: "random 100%", tracing: "random_sampling: {value: 100}", sampled: true, reason: 'a'},
		{name: "random 0%", tracing: "random_sampling: {value: 0}", reason: '4'},
		{name: "forced", tracing: "random_sampling: {value: 0}", h: []string{"x-envoy-force-trace", "true"}, sampled: true, reason: '9'},
		{name: "client trace id", tracing: "random_sampling: {value: 0}", h: []string{"x-client-trace-id", "c"}, sampled: true, reason: 'b'},
		{name: "client sampling 0%", tracing: "{random_sampling: {value: 0}, client_sampling: {value: 0}}", h: []string{"x-client-trace-id", "c"}, reason: '4'},
		{name: "overall 0% vetoes force", tracing: "overall_sampling: {value: 0}", h: []string{"x-envoy-force-trace", "true"}, reason: '4'},
		{name: "caller's sampled=0 wins over force", tracing: "", h: []string{"x-envoy-force-trace", "true", "x-b3-sampled", "0"}, reason: '9'},
		{name: "caller's sampled=1 wins over random 0%", tracing: "random_sampling: {value: 0}", h: []string{"x-b3-sampled", "1"}, sampled: true, reason: '4'},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newZipkinEnv(t)
			tr := newTracer(t, hcmTracing(t, zipkinCfg(nil), tt.tracing), env.deps)
			req := request(tt.h...)
			sp := tr.Start(req, streamInfo(), "")
			if (sp != nil) != tt.sampled {
				t.Fatalf("span = %v, want sampled=%v", sp != nil, tt.sampled)
			}
			h := req.Header
			want := "0"
			if tt.sampled {
				want = "1"
			}
			// Unsampled requests still carry a context upstream.
			if h.Value("x-b3-sampled") != want || len(h.Value("x-b3-traceid")) != 16 || len(h.Value("x-b3-spanid")) != 16 {
				t.Errorf("upstream headers: %v", h)
			}
			if got := h.Value("x-request-id")[14]; got != tt.reason {
				t.Errorf("x-request-id reason %q, want %q", got, tt.reason)
			}
		})
	}
}

func TestZipkinMalformedContextTracesNothing(t *testing.T) {
	env := newZipkinEnv(t)
	tr := newTracer(t, hcmTracing(t, zipkinCfg(nil), ""), env.deps)
	req := request("x-b3-traceid", "xyz", "x-b3-spanid", "a2fb4a1d1a96d312")
	if sp := tr.Start(req, streamInfo(), ""); sp != nil {
		t.Fatal("span from a malformed context")
	}
	if req.Header.Value("x-b3-traceid") != "xyz" || req.Header.Has("x-b3-sampled") {
		t.Fatalf("headers changed: %v", req.Header)
	}
}

func TestZipkin128BitAndDecoratorHeader(t *testing.T) {
	env := newZipkinEnv(t)
	tr := newTracer(t, hcmTracing(t, zipkinCfg(func(c *tracev3.ZipkinConfig) {
		c.TraceId_128Bit = true
		c.CollectorHostname = "zipkin.example"
	}), ""), env.deps)
	req := request("x-envoy-decorator-operation", "from-caller")
	sp := tr.Start(req, streamInfo(), "route-op")
	if len(sp.TraceID()) != 32 || req.Header.Value("x-b3-traceid") != sp.TraceID() {
		t.Fatalf("trace id %q / header %q", sp.TraceID(), req.Header.Value("x-b3-traceid"))
	}
	if req.Header.Has(DecoratorOperationHeader) {
		t.Error("x-envoy-decorator-operation forwarded upstream")
	}
	sp.Finish(req, nil, finished(streamInfo()))
	tr.Close()
	s := env.col.waitSpans(t, 1)[0]
	if s.Name != "from-caller" || s.TraceID.High == 0 {
		t.Errorf("name %q trace %s", s.Name, s.TraceID)
	}
	if env.col.hosts[0] != "zipkin.example" {
		t.Errorf("Host %q, want collector_hostname", env.col.hosts[0])
	}
}

// Five finished spans make a report without waiting for the timer; the
// rest goes out on Close.
func TestZipkinBatching(t *testing.T) {
	env := newZipkinEnv(t)
	tr := newTracer(t, hcmTracing(t, zipkinCfg(nil), ""), env.deps)
	finish := func(n int) {
		for range n {
			req := request()
			info := streamInfo()
			tr.Start(req, info, "").Finish(req, nil, finished(info))
		}
	}
	finish(5)
	env.col.waitSpans(t, 5)
	env.col.mu.Lock()
	first := len(env.col.reports)
	env.col.mu.Unlock()
	if first != 1 {
		t.Fatalf("%d reports for the first 5 spans, want 1", first)
	}
	finish(3)
	tr.Close()
	env.col.waitSpans(t, 8)
	if n := len(env.col.reports); n != 2 || len(env.col.reports[1]) != 3 {
		t.Fatalf("reports: %d (last has %d spans), want 2 with 3 flushed on Close", n, len(env.col.reports[n-1]))
	}
	if got := env.st.Counter("tracing.zipkin.reports_sent").Value(); got != 2 {
		t.Errorf("reports_sent = %d", got)
	}
}

func TestZipkinCollectorFailures(t *testing.T) {
	t.Run("dead collector", func(t *testing.T) {
		st := stats.NewStore()
		deps := Deps{Stats: st, Clusters: staticClusters(t, st, map[string]string{"zipkin": deadAddr(t)})}
		tr := newTracer(t, hcmTracing(t, zipkinCfg(nil), ""), deps)
		for range 5 {
			req := request()
			info := streamInfo()
			tr.Start(req, info, "").Finish(req, nil, finished(info))
		}
		waitCounter(t, st, "tracing.zipkin.reports_failed", 1)
		if st.Counter("tracing.zipkin.spans_sent").Value() != 5 || st.Counter("tracing.zipkin.reports_sent").Value() != 0 {
			t.Errorf("spans_sent %d reports_sent %d", st.Counter("tracing.zipkin.spans_sent").Value(), st.Counter("tracing.zipkin.reports_sent").Value())
		}
	})
	t.Run("collector rejects", func(t *testing.T) {
		env := newZipkinEnv(t)
		env.col.status = http.StatusInternalServerError
		tr := newTracer(t, hcmTracing(t, zipkinCfg(nil), ""), env.deps)
		req := request()
		info := streamInfo()
		tr.Start(req, info, "").Finish(req, nil, finished(info))
		tr.Close()
		if got := env.st.Counter("tracing.zipkin.reports_dropped").Value(); got != 1 {
			t.Errorf("reports_dropped = %d, want 1", got)
		}
	})
}

// Tracers with the same provider config share one exporter, which lives
// until the last of them closes.
func TestExporterShared(t *testing.T) {
	env := newZipkinEnv(t)
	pb := hcmTracing(t, zipkinCfg(nil), "")
	a := newTracer(t, pb, env.deps)
	b := newTracer(t, hcmTracing(t, zipkinCfg(nil), "random_sampling: {value: 50}"), env.deps)
	c := newTracer(t, hcmTracing(t, zipkinCfg(func(c *tracev3.ZipkinConfig) { c.TraceId_128Bit = true }), ""), env.deps)
	if a.exp != b.exp {
		t.Error("same provider config: separate exporters")
	}
	if a.exp == c.exp {
		t.Error("different provider configs share an exporter")
	}
	a.Close()
	a.Close() // idempotent: must not release b's reference
	req := request()
	info := streamInfo()
	b.Start(req, info, "").Finish(req, nil, finished(info))
	b.Close()
	env.col.waitSpans(t, 1)
}

func TestConfigErrors(t *testing.T) {
	st := stats.NewStore()
	deps := Deps{Stats: st, Clusters: staticClusters(t, st, map[string]string{"zipkin": "127.0.0.1:1"})}
	tests := []struct {
		name    string
		cfg     *tracev3.ZipkinConfig
		tracing string
		want    string
	}{
		{name: "unknown cluster", cfg: zipkinCfg(func(c *tracev3.ZipkinConfig) { c.CollectorCluster = "nope" }), want: `unknown cluster "nope"`},
		{name: "no endpoint", cfg: zipkinCfg(func(c *tracev3.ZipkinConfig) { c.CollectorEndpoint = "" }), want: "collector_endpoint"},
		{name: "v1 json", cfg: zipkinCfg(func(c *tracev3.ZipkinConfig) {
			c.CollectorEndpointVersion = 0 // Envoy's deprecated v1 JSON
		}), want: "collector_endpoint_version"},
		{name: "custom tag without type", cfg: zipkinCfg(nil), tracing: "custom_tags: [{tag: x}]", want: "custom_tags[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(hcmTracing(t, tt.cfg, tt.tracing), deps)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if tr, err := New(nil, deps); tr != nil || err != nil {
		t.Fatalf("nil config: %v %v", tr, err)
	}
	var none *Tracer
	if none.Start(request(), streamInfo(), "") != nil {
		t.Fatal("nil tracer made a span")
	}
	none.Close()
	var sp *Span
	sp.Finish(request(), nil, streamInfo())
}

// A collector cluster that speaks HTTP/2 gets reports over h2c.
func TestZipkinHTTP2Collector(t *testing.T) {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	col := newZipkinCollectorProto(t, &p)
	st := stats.NewStore()
	deps := Deps{Stats: st, Clusters: staticClustersExtra(t, st, map[string]string{"zipkin": col.addr}, "http2_protocol_options: {}\n")}
	tr := newTracer(t, hcmTracing(t, zipkinCfg(nil), ""), deps)
	req := request()
	info := streamInfo()
	tr.Start(req, info, "").Finish(req, nil, finished(info))
	tr.Close()
	col.waitSpans(t, 1)
	if col.protos[0] != "HTTP/2.0" {
		t.Fatalf("collector saw %s", col.protos[0])
	}
}

// A collector cluster CDS manages: the tracer holds its Ref, so a move to
// another collector is followed per export and a removal skips reports.
func TestZipkinCollectorFollowsCDS(t *testing.T) {
	st := stats.NewStore()
	one, two := newZipkinCollector(t), newZipkinCollector(t)
	cm, err := cluster.NewManager(nil, cluster.Options{Stats: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cm.Close)
	cds := func(v string, addr string) {
		t.Helper()
		u := &xds.Update{Version: v, Full: true}
		if addr != "" {
			u.Resources = []xds.Resource{{Name: "zipkin", Message: collectorCluster(t, addr)}}
		}
		if err := cm.CDS().Update(u); err != nil {
			t.Fatal(err)
		}
	}
	cds("1", one.addr)
	tr := newTracer(t, hcmTracing(t, zipkinCfg(nil), ""), Deps{Stats: st, Clusters: cm})
	span := func() { // a batch's worth: no wait for the flush interval
		for range defaultMinFlushSpans {
			req := request()
			info := streamInfo()
			tr.Start(req, info, "").Finish(req, nil, finished(info))
		}
	}
	span()
	one.waitSpans(t, defaultMinFlushSpans)
	cds("2", two.addr)
	span()
	two.waitSpans(t, defaultMinFlushSpans)
	cds("3", "")
	span()
	waitCounter(t, st, "tracing.zipkin.reports_skipped_no_cluster", 1)
}

func collectorCluster(t *testing.T, addr string) *clusterv3.Cluster {
	ap := netip.MustParseAddrPort(addr)
	j, err := yaml.YAMLToJSON([]byte(`
name: zipkin
type: STATIC
load_assignment:
  endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: "` + ap.Addr().String() + `", port_value: ` + itoa(int(ap.Port())) + `}}}}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterv3.Cluster{}
	if err := protojson.Unmarshal(j, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// An OUTBOUND listener's spans are client spans (Envoy's egress).
func TestZipkinEgressSpanKind(t *testing.T) {
	env := newZipkinEnv(t)
	env.deps.Outbound = true
	tr := newTracer(t, hcmTracing(t, zipkinCfg(nil), ""), env.deps)
	req := request()
	info := streamInfo()
	sp := tr.Start(req, info, "")
	sp.Finish(req, nil, finished(info))
	tr.Close()
	if s := env.col.waitSpans(t, 1)[0]; s.Kind != zmodel.Client {
		t.Errorf("kind %q, want CLIENT", s.Kind)
	}
	if recs := env.ring.Snapshot(); len(recs) != 1 || recs[0].Kind != "CLIENT" {
		t.Errorf("ring: %+v", recs)
	}
}
