package stats

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// sampleStore holds the kinds of stats Legate's server, listeners, HCMs
// and clusters create.
func sampleStore() *Store {
	s := NewStore()
	s.Gauge("server.live", NeverImport).Set(1)
	s.Gauge("server.concurrency", NeverImport).Set(2)
	s.Counter("listener.0.0.0.0_8080.downstream_cx_total").Add(7)
	s.Gauge("listener.0.0.0.0_8080.downstream_cx_active", Accumulate).Set(2)
	s.Counter("listener.0.0.0.0_8080.http.ingress_http.downstream_rq_2xx").Add(5)
	s.Counter("listener.admin.downstream_cx_total").Add(1)
	s.Counter("http.ingress_http.downstream_rq_total").Add(6)
	s.Counter("http.ingress_http.downstream_rq_2xx").Add(5)
	s.Counter("http.ingress_http.downstream_rq_5xx").Add(1)
	s.Counter("http.ingress_http.downstream_rq_4xx")
	s.Counter("cluster.service1.upstream_rq_total").Add(3)
	s.Counter("cluster.service1.upstream_rq_200").Add(2)
	s.Counter("cluster.service1.upstream_rq_503").Add(1)
	s.Counter("cluster.service2.upstream_rq_total").Add(4)
	s.Counter("cluster_manager.cluster_added").Add(2)
	s.Gauge("cluster.service1.membership_healthy", Accumulate).Set(3)
	h := s.Histogram("cluster.service1.upstream_rq_time", Milliseconds)
	for _, v := range []uint64{1, 3, 4, 7, 20, 20, 90, 4000} {
		h.Record(v)
	}
	s.Histogram("http.ingress_http.downstream_rq_time", Milliseconds)
	return s
}

func TestWriteTextGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, sampleStore(), nil, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "stats.txt", b.Bytes())
}

func TestWriteTextFilterUsedOnly(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, sampleStore(), regexp.MustCompile(`ingress_http\.downstream_rq`), true); err != nil {
		t.Fatal(err)
	}
	want := "http.ingress_http.downstream_rq_2xx: 5\n" +
		"http.ingress_http.downstream_rq_5xx: 1\n" +
		"http.ingress_http.downstream_rq_total: 6\n" +
		"listener.0.0.0.0_8080.http.ingress_http.downstream_rq_2xx: 5\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWriteJSONGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sampleStore(), nil, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "stats.json", b.Bytes())

	var doc struct {
		Stats []json.RawMessage `json:"stats"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	var last struct {
		Histograms struct {
			Supported []float64 `json:"supported_quantiles"`
			Computed  []struct {
				Name   string `json:"name"`
				Values []struct {
					Interval   *float64 `json:"interval"`
					Cumulative *float64 `json:"cumulative"`
				} `json:"values"`
			} `json:"computed_quantiles"`
		} `json:"histograms"`
	}
	if err := json.Unmarshal(doc.Stats[len(doc.Stats)-1], &last); err != nil {
		t.Fatal(err)
	}
	hs := last.Histograms
	if len(hs.Supported) != 10 || hs.Supported[9] != 100 || len(hs.Computed) != 2 {
		t.Fatalf("histograms = %+v", hs)
	}
	if hs.Computed[0].Name != "cluster.service1.upstream_rq_time" || hs.Computed[0].Values[2].Cumulative == nil {
		t.Errorf("first histogram = %+v", hs.Computed[0])
	}
	if hs.Computed[1].Values[2].Cumulative != nil {
		t.Errorf("empty histogram has a P50")
	}

	// No histograms: just the scalar list.
	b.Reset()
	if err := WriteJSON(&b, sampleStore(), regexp.MustCompile(`^server\.`), false); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), `{"stats":[{"name":"server.concurrency","value":2},{"name":"server.live","value":1}]}`+"\n"; got != want {
		t.Errorf("got %s want %s", got, want)
	}
}

func TestWritePrometheusGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WritePrometheus(&b, sampleStore(), nil, nil, false); err != nil {
		t.Fatal(err)
	}
	golden(t, "stats.prom", b.Bytes())

	// The exposition parser rejects duplicate TYPE lines, bad names,
	// unsorted or non-cumulative buckets and so on.
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("not valid exposition format: %v", err)
	}
	rq := fams["envoy_cluster_upstream_rq_total"]
	if rq == nil || rq.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("envoy_cluster_upstream_rq_total = %v", rq)
	}
	if v := findMetric(rq, map[string]string{"envoy_cluster_name": "service1"}); v == nil || v.GetCounter().GetValue() != 3 {
		t.Errorf("service1 upstream_rq_total = %v", v)
	}
	// Counters whose Envoy name lacks _total keep it, declared untyped.
	code := fams["envoy_cluster_upstream_rq"]
	if code.GetType() != dto.MetricType_UNTYPED {
		t.Errorf("envoy_cluster_upstream_rq type = %v", code.GetType())
	}
	if v := findMetric(code, map[string]string{"envoy_cluster_name": "service1", "envoy_response_code": "503"}); v == nil || v.GetUntyped().GetValue() != 1 {
		t.Errorf("upstream_rq 503 = %v", v)
	}
	class := fams["envoy_listener_http_downstream_rq_xx"]
	if v := findMetric(class, map[string]string{"envoy_listener_address": "0.0.0.0_8080", "envoy_http_conn_manager_prefix": "ingress_http", "envoy_response_code_class": "2"}); v == nil || v.GetUntyped().GetValue() != 5 {
		t.Errorf("listener http 2xx = %v", v)
	}
	hist := fams["envoy_cluster_upstream_rq_time"]
	if hist.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("type = %v", hist.GetType())
	}
	h := hist.Metric[0].GetHistogram()
	if h.GetSampleCount() != 8 || h.GetSampleSum() != 4145 || len(h.Bucket) != len(DefaultBuckets)+1 {
		t.Errorf("histogram = count %d sum %v buckets %d", h.GetSampleCount(), h.GetSampleSum(), len(h.Bucket))
	}
	if fams["envoy_listener_downstream_cx_total"] == nil || fams["envoy_listener_admin_downstream_cx_total"] == nil {
		t.Errorf("listener families missing")
	}
}

func findMetric(f *dto.MetricFamily, labels map[string]string) *dto.Metric {
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		return m
	}
	return nil
}

func TestPrometheusEscapesLabelValues(t *testing.T) {
	s := NewStore()
	s.Counter(`cluster.we"ird\x.upstream_rq_total`).Inc()
	var b bytes.Buffer
	if err := WritePrometheus(&b, s, NewTagExtractor(), nil, true); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if v := findMetric(fams["envoy_cluster_upstream_rq_total"], map[string]string{"envoy_cluster_name": `we"ird\x`}); v == nil {
		t.Errorf("label not round-tripped:\n%s", b.String())
	}
}

func TestQuantile(t *testing.T) {
	bounds := []float64{1, 5, 10}
	tests := []struct {
		counts []uint64
		q      float64
		want   float64
		ok     bool
	}{
		{[]uint64{0, 0, 0, 0}, 0.5, 0, false},
		{[]uint64{0, 4, 0, 0}, 0, 1, true},      // lower edge of first non-empty bucket
		{[]uint64{0, 4, 0, 0}, 0.5, 3, true},    // halfway through (1,5]
		{[]uint64{0, 4, 0, 0}, 1, 5, true},      // top of the bucket
		{[]uint64{2, 0, 2, 0}, 0.75, 7.5, true}, // half of (5,10]
		{[]uint64{1, 0, 0, 1}, 1, 10, true},     // overflow reports the highest bound
	}
	for _, tc := range tests {
		got, ok := Quantile(bounds, tc.counts, tc.q)
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Quantile(%v, %v) = %v, %v; want %v, %v", tc.counts, tc.q, got, ok, tc.want, tc.ok)
		}
	}
}

func TestResetCounters(t *testing.T) {
	s := sampleStore()
	s.ResetCounters()
	for _, c := range s.Counters() {
		if c.Value() != 0 {
			t.Errorf("%s = %d after reset", c.Name(), c.Value())
		}
	}
	if s.Gauge("server.live", NeverImport).Value() != 1 {
		t.Error("reset touched a gauge")
	}
}

func TestServerStats(t *testing.T) {
	s := NewStore()
	ss := NewServerStats(s, time.Now().Add(-90*time.Second))
	if ss.State.Value() != int64(StatePreInitializing) {
		t.Errorf("initial state = %d", ss.State.Value())
	}
	ss.SetState(StateLive)
	ss.SetLive(true)
	ss.Concurrency.Set(2)
	s.Gauge("listener.0.0.0.0_8080.downstream_cx_active", Accumulate).Set(3)
	s.Gauge("listener.[__]_8443.downstream_cx_active", Accumulate).Set(2)
	s.Gauge("listener.admin.downstream_cx_active", Accumulate).Set(1)
	ss.Refresh()
	for _, g := range s.Gauges() {
		if g.Name() == "server.days_until_first_cert_expiring" {
			t.Error("days_until_first_cert_expiring exists without certificates")
		}
	}
	ss.FirstCertExpiry = func() (time.Time, bool) { return time.Now().Add(10*24*time.Hour + time.Hour), true }
	ss.Refresh()

	get := func(name string) int64 { return s.Gauge(name, Accumulate).Value() }
	if up := get("server.uptime"); up < 90 || up > 3600 {
		t.Errorf("uptime = %d", up)
	}
	if get("server.memory_allocated") <= 0 || get("server.memory_heap_size") < get("server.memory_allocated") || get("server.memory_physical_size") <= 0 {
		t.Errorf("memory = %d / %d / %d", get("server.memory_allocated"), get("server.memory_heap_size"), get("server.memory_physical_size"))
	}
	if got := get("server.total_connections"); got != 5 {
		t.Errorf("total_connections = %d, want 5 (admin excluded)", got)
	}
	if got := get("server.days_until_first_cert_expiring"); got != 10 {
		t.Errorf("days_until_first_cert_expiring = %d", got)
	}
	if get("server.live") != 1 || get("server.state") != 0 || get("server.concurrency") != 2 {
		t.Error("live/state/concurrency not as set")
	}
	ss.TotalConnectionsFunc = func() int64 { return 42 }
	ss.Refresh()
	if got := get("server.total_connections"); got != 42 {
		t.Errorf("total_connections via func = %d", got)
	}
	if StateDraining.String() != "DRAINING" {
		t.Error("state name")
	}
	var b bytes.Buffer
	WriteText(&b, s, regexp.MustCompile(`^server\.(live|state)$`), false)
	if b.String() != "server.live: 1\nserver.state: 0\n" {
		t.Errorf("text = %q", b.String())
	}
}

func TestFormatFloat(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 0.5: "0.5", 3600000: "3600000", 99.9: "99.9", 1e20: "1e+20"} {
		if got := formatFloat(in); got != want {
			t.Errorf("formatFloat(%v) = %q, want %q", in, got, want)
		}
	}
	if strings.Contains(formatFloat(1.0/3), "e") {
		t.Error("exponent for 1/3")
	}
}
