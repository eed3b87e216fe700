package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/tracing"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture is a store with one listener, its HCM and one cluster, named as
// the proxy names them (scope names with dots on purpose).
type fixture struct {
	store             *stats.Store
	hRq, cRq, lCx     *stats.Counter
	hClass, cClass    [5]*stats.Counter
	hRx, hTx          *stats.Counter
	hTime, cTime      *stats.Histogram
	lActive, cxActive *stats.Gauge
	healthy, members  *stats.Gauge
	hostRq            atomic.Uint64 // the first host's rq_total
	d                 *Dashboard
}

func newFixture(t *testing.T, deps Deps) *fixture {
	t.Helper()
	f := &fixture{store: stats.NewStore()}
	s := f.store
	f.lCx = s.Counter("listener.0.0.0.0_8080.downstream_cx_total")
	f.lActive = s.Gauge("listener.0.0.0.0_8080.downstream_cx_active", stats.Accumulate)
	f.hRq = s.Counter("http.ingress.v1.downstream_rq_total")
	f.cRq = s.Counter("cluster.svc.v1.upstream_rq_total")
	for i := range 5 {
		f.hClass[i] = s.Counter(fmt.Sprintf("http.ingress.v1.downstream_rq_%dxx", i+1))
		f.cClass[i] = s.Counter(fmt.Sprintf("cluster.svc.v1.upstream_rq_%dxx", i+1))
	}
	f.hRx = s.Counter("http.ingress.v1.downstream_cx_rx_bytes_total")
	f.hTx = s.Counter("http.ingress.v1.downstream_cx_tx_bytes_total")
	f.hTime = s.Histogram("http.ingress.v1.downstream_rq_time", stats.Milliseconds)
	f.cTime = s.Histogram("cluster.svc.v1.upstream_rq_time", stats.Milliseconds)
	f.cxActive = s.Gauge("cluster.svc.v1.upstream_cx_active", stats.Accumulate)
	f.healthy = s.Gauge("cluster.svc.v1.membership_healthy", stats.NeverImport)
	f.members = s.Gauge("cluster.svc.v1.membership_total", stats.NeverImport)
	s.Gauge("server.concurrency", stats.NeverImport).Set(2)
	// Not an entity: the admin's own listener.
	s.Counter("listener.admin.downstream_cx_total")

	deps.Store = s
	if deps.Listeners == nil {
		deps.Listeners = func() []ListenerView {
			return []ListenerView{{Name: "ingress", Address: "0.0.0.0:8080", StatName: "0.0.0.0_8080", HTTPStatPrefix: "ingress.v1"}}
		}
	}
	deps.Clusters = func() []ClusterView {
		return []ClusterView{{Name: "svc", StatName: "svc.v1", Hosts: []HostView{
			{Address: "127.0.0.1:9000", Weight: 1, Healthy: true, RqTotal: f.hostRq.Load()},
			{Address: "127.0.0.1:9001", Weight: 2, Healthy: false, HealthFlags: "/failed_active_hc"},
		}}}
	}
	f.d = New(deps)
	return f
}

func (f *fixture) sampleAt(sec float64) {
	f.d.sample(t0.Add(time.Duration(sec * float64(time.Second))))
}

// requests records n HCM and cluster requests answered with class cls,
// each taking ms.
func (f *fixture) requests(n int, cls int, ms uint64) {
	for range n {
		f.hRq.Inc()
		f.hClass[cls-1].Inc()
		f.hTime.Record(ms)
		f.cRq.Inc()
		f.cClass[cls-1].Inc()
		f.cTime.Record(ms)
		f.hostRq.Add(1)
	}
}

func (f *fixture) entity(t *testing.T, key string) *entity {
	t.Helper()
	e := f.d.s.entities[key]
	if e == nil {
		keys := []string{}
		for k := range f.d.s.entities {
			keys = append(keys, k)
		}
		t.Fatalf("no entity %q; have %q", key, keys)
	}
	return e
}

func lastPoint(t *testing.T, e *entity) point {
	t.Helper()
	if len(e.pts) == 0 {
		t.Fatalf("%s: no points", e.key)
	}
	return e.pts[len(e.pts)-1]
}

func near(a num, b float64) bool {
	return !math.IsNaN(float64(a)) && math.Abs(float64(a)-b) < 1e-9
}

func TestRates(t *testing.T) {
	f := newFixture(t, Deps{})
	f.sampleAt(0)
	l := f.entity(t, "listener.0.0.0.0_8080")
	if len(l.pts) != 0 {
		t.Fatalf("a point from a single reading: %+v", l.pts)
	}
	if _, ok := f.d.s.entities["listener.admin"]; ok {
		t.Error("the admin listener is shown")
	}
	if _, ok := f.d.s.entities["http.ingress.v1"]; ok {
		t.Error("an HCM linked to a listener also has its own row")
	}

	f.requests(8, 2, 3)
	f.requests(2, 5, 3)
	f.hRx.Add(1000)
	f.hTx.Add(5000)
	f.lCx.Add(4)
	f.lActive.Set(3)
	f.sampleAt(1)
	p := lastPoint(t, l)
	for _, c := range []struct {
		name string
		got  num
		want float64
	}{
		{"qps", p.QPS, 10}, {"2xx", p.Class[1], 8}, {"5xx", p.Class[4], 2}, {"1xx", p.Class[0], 0},
		{"err", p.Err, 0.2}, {"rx", p.Rx, 1000}, {"tx", p.Tx, 5000}, {"cxr", p.CxRate, 4}, {"cx", p.Cx, 3},
	} {
		if !near(c.got, c.want) {
			t.Errorf("listener %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if cp := lastPoint(t, f.entity(t, "cluster.svc.v1")); !near(cp.QPS, 10) || !near(cp.Err, 0.2) {
		t.Errorf("cluster qps %v err %v, want 10 and 0.2", cp.QPS, cp.Err)
	}

	// Over the 5 s window: 20 requests in 2 s.
	f.requests(10, 2, 3)
	f.sampleAt(2)
	if p := lastPoint(t, l); !near(p.QPS, 10) || !near(p.Err, 0.1) {
		t.Errorf("at 2 s: qps %v err %v, want 10 and 0.1", p.QPS, p.Err)
	}
	// Ticks drift: a reading 5.4 s back still counts as "5 s back".
	for s := 3; s <= 6; s++ {
		f.sampleAt(float64(s) + 0.4)
	}
	if p := lastPoint(t, l); !near(p.QPS, 10.0/5.4) {
		t.Errorf("at 6.4 s: qps %v, want %v (10 requests since 1 s)", p.QPS, 10.0/5.4)
	}
	// Quiet for longer than the window: zero, not "no data", and no
	// errors rather than an undefined share.
	for s := 8; s <= 14; s++ {
		f.sampleAt(float64(s))
	}
	if p := lastPoint(t, l); !near(p.QPS, 0) || !near(p.Err, 0) {
		t.Errorf("idle: qps %v err %v, want 0 and 0", p.QPS, p.Err)
	}

	// /reset_counters: the drop is not a negative rate.
	f.store.ResetCounters()
	f.requests(3, 2, 3)
	f.sampleAt(15)
	if p := lastPoint(t, l); !near(p.QPS, 3.0/5) {
		t.Errorf("after reset: qps %v, want 0.6", p.QPS)
	}

	// Per-host rates and health come from the cluster view.
	c := f.entity(t, "cluster.svc.v1")
	if len(c.hosts) != 2 || !c.hosts[0].Healthy || c.hosts[1].Healthy || c.hosts[1].HealthFlags != "/failed_active_hc" {
		t.Fatalf("hosts: %+v", c.hosts)
	}
	if c.hosts[0].HealthFlags != "healthy" {
		t.Errorf("default health flags %q, want healthy", c.hosts[0].HealthFlags)
	}
	if !near(c.hosts[0].QPS, 3.0/5) || !near(c.hosts[1].QPS, 0) {
		t.Errorf("host qps %v %v, want 0.6 and 0", c.hosts[0].QPS, c.hosts[1].QPS)
	}
}

func TestQuantilesFromBucketDeltas(t *testing.T) {
	f := newFixture(t, Deps{})
	f.sampleAt(0)
	f.requests(100, 2, 3) // bucket (1, 5]
	f.sampleAt(1)
	l := f.entity(t, "listener.0.0.0.0_8080")
	p := lastPoint(t, l)
	if !near(p.P50, 3) || !near(p.P99, 4.96) {
		t.Errorf("p50 %v p99 %v, want 3 and 4.96", p.P50, p.P99)
	}
	// Past the 10 s latency window the fast requests are forgotten.
	for s := 2; s <= 12; s++ {
		f.sampleAt(float64(s))
	}
	if p := lastPoint(t, l); !math.IsNaN(float64(p.P50)) {
		t.Errorf("p50 with no requests in the window = %v, want none", p.P50)
	}
	f.requests(100, 2, 700) // bucket (500, 1000]
	f.sampleAt(13)
	p = lastPoint(t, l)
	// From the deltas alone: 100 samples in (500, 1000]. The cumulative
	// histogram would put p50 at the top of the (1, 5] bucket.
	want50, _ := stats.Quantile(stats.DefaultBuckets, deltaCounts(100, 700), 0.5)
	want90, _ := stats.Quantile(stats.DefaultBuckets, deltaCounts(100, 700), 0.9)
	if !near(p.P50, want50) || !near(p.P90, want90) || want50 != 750 {
		t.Errorf("p50 %v p90 %v, want %v and %v", p.P50, p.P90, want50, want90)
	}
	if cp := lastPoint(t, f.entity(t, "cluster.svc.v1")); !near(cp.P50, 750) {
		t.Errorf("cluster p50 %v, want 750", cp.P50)
	}
}

// deltaCounts is the bucket counts of n samples of value v.
func deltaCounts(n uint64, v float64) []uint64 {
	c := make([]uint64, len(stats.DefaultBuckets)+1)
	i := 0
	for i < len(stats.DefaultBuckets) && stats.DefaultBuckets[i] < v {
		i++
	}
	c[i] = n
	return c
}

func TestWindowQuantilesReset(t *testing.T) {
	bounds := []float64{1, 10, 100}
	// A bucket went down: counters were reset, so the current counts are
	// the window's samples.
	p50, _, p99 := windowQuantiles(bounds, []uint64{0, 0, 4, 0}, []uint64{0, 7, 9, 0})
	if !near(p50, 55) || !near(p99, 99.1) {
		t.Errorf("after reset p50 %v p99 %v, want 55 and 99.1", p50, p99)
	}
	p50, _, _ = windowQuantiles(bounds, []uint64{1, 2, 3, 0}, []uint64{1, 2, 3, 0})
	if !math.IsNaN(float64(p50)) {
		t.Errorf("no samples: p50 %v, want NaN", p50)
	}
}

func TestHistoryTrimming(t *testing.T) {
	f := newFixture(t, Deps{History: 10 * time.Second})
	for s := 0; s < 60; s++ {
		f.requests(1, 2, 3)
		f.sampleAt(float64(s))
	}
	for _, e := range f.d.s.order {
		if len(e.pts) == 0 || len(e.pts) > 11 {
			t.Errorf("%s: %d points kept for 10 s at 1/s", e.key, len(e.pts))
		}
		if first := time.UnixMilli(e.pts[0].T); first.Before(t0.Add(49 * time.Second)) {
			t.Errorf("%s: oldest point %v is older than the history", e.key, first.Sub(t0))
		}
		// Readings: the 10 s latency window plus slack.
		if len(e.raws) > 12 {
			t.Errorf("%s: %d readings kept", e.key, len(e.raws))
		}
	}
	if n := len(f.d.s.procPts); n == 0 || n > 11 {
		t.Errorf("%d process points kept", n)
	}
	if n := len(f.d.s.procRaws); n > 12 {
		t.Errorf("%d process readings kept", n)
	}
}

func TestUnlinkedListenersAndHCMs(t *testing.T) {
	f := newFixture(t, Deps{Listeners: func() []ListenerView { return nil }})
	f.sampleAt(0)
	f.requests(5, 2, 3)
	f.lCx.Add(2)
	f.sampleAt(1)
	l := lastPoint(t, f.entity(t, "listener.0.0.0.0_8080"))
	if !math.IsNaN(float64(l.QPS)) || !near(l.CxRate, 2) {
		t.Errorf("bare listener: qps %v cxr %v, want none and 2", l.QPS, l.CxRate)
	}
	h := f.entity(t, "http.ingress.v1")
	if h.name != "http.ingress.v1" || h.http != "ingress.v1" {
		t.Errorf("HCM row %q/%q", h.name, h.http)
	}
	if p := lastPoint(t, h); !near(p.QPS, 5) {
		t.Errorf("HCM qps %v, want 5", p.QPS)
	}
	// Linking later starts the listener's readings afresh rather than
	// mixing two sources into one rate.
	f.d.deps.Listeners = func() []ListenerView {
		return []ListenerView{{Name: "ingress", StatName: "0.0.0.0_8080", HTTPStatPrefix: "ingress.v1"}}
	}
	f.sampleAt(2)
	if _, ok := f.d.s.entities["http.ingress.v1"]; ok {
		t.Error("HCM row stays once linked")
	}
	if e := f.entity(t, "listener.0.0.0.0_8080"); len(e.raws) != 1 || e.name != "ingress" {
		t.Errorf("after linking: %d readings, name %q", len(e.raws), e.name)
	}
}

func TestNumJSON(t *testing.T) {
	b, err := json.Marshal([]num{nan, 1.23456, 0, 1e12, num(math.Inf(1))})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "[null,1.235,0,1000000000000,null]" {
		t.Errorf("got %s", b)
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == 200 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", url, ct)
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v\n%s", url, err, body)
		}
	}
	return resp.StatusCode
}

// wire mirrors the JSON the page reads, so the test fails when a field it
// relies on changes name.
type wire struct {
	Now             int64            `json:"now"`
	IntervalMs      int64            `json:"interval_ms"`
	RateWindowMs    int64            `json:"rate_window_ms"`
	LatencyWindowMs int64            `json:"latency_window_ms"`
	Server          map[string]int64 `json:"server"`
	Process         struct {
		Points []map[string]*float64 `json:"points"`
	} `json:"process"`
	Listeners []wireEntity      `json:"listeners"`
	Clusters  []wireEntity      `json:"clusters"`
	Traces    []json.RawMessage `json:"traces"`
}

type wireEntity struct {
	Key     string `json:"key"`
	Name    string `json:"name"`
	Address string `json:"address"`
	HTTP    string `json:"http"`
	Active  int64  `json:"active"`
	Healthy *int64 `json:"healthy"`
	Members *int64 `json:"members"`
	Totals  struct {
		Rq  uint64    `json:"rq"`
		Cls [5]uint64 `json:"cls"`
	} `json:"totals"`
	Hosts []struct {
		Address string   `json:"address"`
		Healthy bool     `json:"healthy"`
		Flags   string   `json:"health_flags"`
		QPS     *float64 `json:"qps"`
	} `json:"hosts"`
	Points []struct {
		T   int64      `json:"t"`
		QPS *float64   `json:"qps"`
		P99 *float64   `json:"p99"`
		Cls []*float64 `json:"cls"`
	} `json:"points"`
}

func TestDataEndpoint(t *testing.T) {
	ring := tracing.NewRing(16)
	f := newFixture(t, Deps{Ring: ring})
	f.healthy.Set(1)
	f.members.Set(2)
	srv := httptest.NewServer(f.d.Handler())
	defer srv.Close()

	var w wire
	if code := getJSON(t, srv.URL+"/dashboard/data", &w); code != 200 {
		t.Fatalf("before any sample: %d", code)
	}
	if w.Now != 0 || len(w.Listeners) != 0 || w.Traces == nil || len(w.Traces) != 0 {
		t.Errorf("before any sample: %+v", w)
	}

	for s := 0; s < 4; s++ {
		f.requests(2, 2, 3)
		f.sampleAt(float64(s))
	}
	w = wire{}
	getJSON(t, srv.URL+"/dashboard/data?since=0", &w)
	if w.Now != t0.Add(3*time.Second).UnixMilli() || w.IntervalMs != 1000 || w.RateWindowMs != 5000 || w.LatencyWindowMs != 10000 {
		t.Errorf("header: %+v", w)
	}
	if w.Server["concurrency"] != 2 {
		t.Errorf("server gauges: %v", w.Server)
	}
	if len(w.Listeners) != 1 || len(w.Clusters) != 1 {
		t.Fatalf("entities: %+v %+v", w.Listeners, w.Clusters)
	}
	l, c := w.Listeners[0], w.Clusters[0]
	if l.Name != "ingress" || l.HTTP != "ingress.v1" || l.Address != "0.0.0.0:8080" || l.Totals.Rq != 8 || l.Totals.Cls[1] != 8 {
		t.Errorf("listener: %+v", l)
	}
	if len(l.Points) != 3 || l.Points[2].QPS == nil || *l.Points[2].QPS != 2 || len(l.Points[2].Cls) != 5 {
		t.Errorf("listener points: %+v", l.Points)
	}
	if c.Name != "svc" || c.Healthy == nil || *c.Healthy != 1 || *c.Members != 2 || len(c.Hosts) != 2 || c.Hosts[1].Flags != "/failed_active_hc" {
		t.Errorf("cluster: %+v", c)
	}
	if n := len(w.Process.Points); n != 4 {
		t.Errorf("%d process points, want 4", n)
	} else if p := w.Process.Points[3]; p["gor"] == nil || *p["gor"] < 1 || p["heap"] == nil || *p["heap"] <= 0 {
		t.Errorf("process point: gor %v heap %v", p["gor"], p["heap"])
	}

	// ?since= returns only newer points; the metadata comes every time.
	since := l.Points[1].T
	w = wire{}
	getJSON(t, srv.URL+"/dashboard/data?since="+strconv.FormatInt(since, 10), &w)
	if len(w.Listeners) != 1 || len(w.Listeners[0].Points) != 1 || w.Listeners[0].Points[0].T != l.Points[2].T {
		t.Errorf("since=%d: %+v", since, w.Listeners)
	}
	if len(w.Process.Points) != 1 || len(w.Clusters[0].Hosts) != 2 {
		t.Errorf("since: process %d points, hosts %d", len(w.Process.Points), len(w.Clusters[0].Hosts))
	}
	if code := getJSON(t, srv.URL+"/dashboard/data?since=soon", &w); code != 400 {
		t.Errorf("bad since: %d", code)
	}
}

func TestTracesEndpoints(t *testing.T) {
	ring := tracing.NewRing(8)
	base := t0
	span := func(trace, id, parent, name string, off, dur time.Duration, tags ...tracing.Tag) {
		ring.Add(tracing.SpanRecord{TraceID: trace, SpanID: id, ParentID: parent, Name: name, Service: "legate",
			Kind: "SERVER", Start: base.Add(off), Duration: dur, Tags: tags, Sampled: true})
	}
	// Trace a: an incoming context (parent 00ff never seen), with a child
	// recorded before its parent finished.
	span("a", "02", "01", "router svc egress", 2*time.Millisecond, 5*time.Millisecond, tracing.Tag{Key: "upstream_cluster", Value: "svc"})
	span("a", "01", "00ff", "ingress", 0, 10*time.Millisecond, tracing.Tag{Key: "http.status_code", Value: "503"}, tracing.Tag{Key: "error", Value: "true"})
	span("b", "11", "", "later", time.Second, time.Millisecond, tracing.Tag{Key: "http.status_code", Value: "200"})

	d := New(Deps{Store: stats.NewStore(), Ring: ring})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	var w struct {
		Traces []traceSummary `json:"traces"`
	}
	getJSON(t, srv.URL+"/dashboard/data", &w)
	if len(w.Traces) != 2 || w.Traces[0].ID != "b" || w.Traces[1].ID != "a" {
		t.Fatalf("traces, newest first: %+v", w.Traces)
	}
	a := w.Traces[1]
	if a.Name != "ingress" || a.Spans != 2 || a.Status != "503" || !a.Error || a.DurationUs != 10000 || a.Start != base.UnixMilli() {
		t.Errorf("trace a: %+v", a)
	}

	var td traceDetail
	if code := getJSON(t, srv.URL+"/dashboard/trace?id=a", &td); code != 200 {
		t.Fatalf("trace a: %d", code)
	}
	if len(td.SpanList) != 2 {
		t.Fatalf("spans: %+v", td.SpanList)
	}
	root, child := td.SpanList[0], td.SpanList[1]
	if root.ID != "01" || root.Depth != 0 || root.OffsetUs != 0 || root.DurationUs != 10000 {
		t.Errorf("root: %+v", root)
	}
	if child.ID != "02" || child.Depth != 1 || child.OffsetUs != 2000 || child.DurationUs != 5000 ||
		len(child.Tags) != 1 || child.Tags[0] != [2]string{"upstream_cluster", "svc"} {
		t.Errorf("child: %+v", child)
	}
	if code := getJSON(t, srv.URL+"/dashboard/trace?id=nope", &td); code != 404 {
		t.Errorf("unknown trace: %d", code)
	}

	// Without a ring the list is null, which the page shows as "tracing
	// not enabled".
	d = New(Deps{Store: stats.NewStore()})
	srv2 := httptest.NewServer(d.Handler())
	defer srv2.Close()
	var raw map[string]json.RawMessage
	getJSON(t, srv2.URL+"/dashboard/data", &raw)
	if string(raw["traces"]) != "null" {
		t.Errorf("traces without a ring: %s", raw["traces"])
	}
}

func TestTraceCycleStillListed(t *testing.T) {
	ring := tracing.NewRing(4)
	ring.Add(tracing.SpanRecord{TraceID: "c", SpanID: "1", ParentID: "2", Start: t0})
	ring.Add(tracing.SpanRecord{TraceID: "c", SpanID: "2", ParentID: "1", Start: t0})
	d, ok := traceByID(ring.Snapshot(), "c")
	if !ok || len(d.SpanList) != 2 {
		t.Fatalf("cyclic trace: %+v", d)
	}
}

func TestIndexAndAssets(t *testing.T) {
	srv := httptest.NewServer(New(Deps{Store: stats.NewStore()}).Handler())
	defer srv.Close()
	for path, want := range map[string]int{
		"/": 200, "/dashboard/static/app.js": 200, "/dashboard/static/style.css": 200,
		"/dashboard/static/index.html": 301, "/index.html": 404, "/dashboard/static/missing.js": 404,
	} {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Post(srv.URL+"/dashboard/data", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST data: %d", resp.StatusCode)
	}
}

// Run and the handler share the sampler; under -race this checks the
// locking.
func TestRunServesWhileSampling(t *testing.T) {
	f := newFixture(t, Deps{Interval: 5 * time.Millisecond, Ring: tracing.NewRing(4)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(f.d.Handler())
	defer srv.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f.requests(1, 2, 3)
		var w wire
		getJSON(t, srv.URL+"/dashboard/data", &w)
		if len(w.Listeners) == 1 && len(w.Listeners[0].Points) >= 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no points after 30 s: %+v", w)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
