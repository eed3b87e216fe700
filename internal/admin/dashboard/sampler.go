package dashboard

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/legate-proxy/legate/internal/stats"
)

// num is a chart value: JSON null when there is no data (NaN), otherwise
// rounded to three decimals so the polled JSON stays small.
type num float64

var nan = num(math.NaN())

func (n num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, math.Round(f*1000)/1000, 'f', -1, 64), nil
}

// point is one sample of a listener, HCM or cluster. Rates are per second
// over the rate window; quantiles (ms) over the latency window.
type point struct {
	T      int64  `json:"t"` // unix ms
	QPS    num    `json:"qps"`
	P50    num    `json:"p50"`
	P90    num    `json:"p90"`
	P99    num    `json:"p99"`
	Err    num    `json:"err"` // 5xx share of responses, 0..1
	Class  [5]num `json:"cls"` // 1xx..5xx responses per second
	Rx     num    `json:"rx"`  // bytes per second received
	Tx     num    `json:"tx"`  // bytes per second sent
	Cx     num    `json:"cx"`  // active connections
	CxRate num    `json:"cxr"` // new connections per second
}

// procPoint is one sample of the process.
type procPoint struct {
	T          int64 `json:"t"`
	CPU        num   `json:"cpu"` // percent of one core
	RSS        num   `json:"rss"` // bytes
	Heap       num   `json:"heap"`
	Goroutines num   `json:"gor"`
	FDs        num   `json:"fds"`
	Cx         num   `json:"cx"`  // active downstream connections, all listeners
	CxRate     num   `json:"cxr"` // new downstream connections per second
}

// source is where one entity's figures come from; any field may be nil
// (a listener without HTTP has no request stats).
type source struct {
	rq     *stats.Counter
	class  [5]*stats.Counter
	rx, tx *stats.Counter
	cx     *stats.Counter
	active *stats.Gauge
	time   *stats.Histogram
	// Cluster membership gauges.
	healthy, members *stats.Gauge
}

// raw is one reading of a source's cumulative values.
type raw struct {
	t              time.Time
	rq, rx, tx, cx uint64
	class          [5]uint64
	buckets        []uint64
}

func (src *source) read(t time.Time) raw {
	r := raw{t: t, rq: cval(src.rq), rx: cval(src.rx), tx: cval(src.tx), cx: cval(src.cx)}
	for i, c := range src.class {
		r.class[i] = cval(c)
	}
	if src.time != nil {
		r.buckets = src.time.BucketCounts()
	}
	return r
}

func cval(c *stats.Counter) uint64 {
	if c == nil {
		return 0
	}
	return c.Value()
}

func gval(g *stats.Gauge) int64 {
	if g == nil {
		return 0
	}
	return g.Value()
}

// delta is cur-prev, or cur when the counter was reset in between
// (/reset_counters), which undercounts once rather than going negative.
func delta(cur, prev uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// entity is a listener, HCM or cluster with its recent readings and chart
// history.
type entity struct {
	key      string // "listener.<stat>", "http.<prefix>", "cluster.<stat>"
	kind     string // "listener" or "cluster"
	name     string
	address  string
	http     string // HCM stat prefix feeding it, if any
	src      source
	raws     []raw   // oldest first, covering the longest window
	pts      []point // oldest first, covering History
	last     raw
	active   int64
	healthy  int64
	members  int64
	hosts    []hostData
	hostRaws map[string][]hostRaw // by address
	seen     bool                 // still present in this sample
}

type hostRaw struct {
	t         time.Time
	rq, rqErr uint64
}

// hostData is one host row of a cluster.
type hostData struct {
	Address     string `json:"address"`
	Hostname    string `json:"hostname,omitempty"`
	Weight      uint32 `json:"weight"`
	Healthy     bool   `json:"healthy"`
	HealthFlags string `json:"health_flags"`
	RqTotal     uint64 `json:"rq_total"`
	RqError     uint64 `json:"rq_error"`
	CxActive    int64  `json:"cx_active"`
	RqActive    int64  `json:"rq_active"`
	QPS         num    `json:"qps"`
}

// sampler turns store readings into chart history. Its methods run under
// Dashboard.mu.
type sampler struct {
	deps Deps

	// Name indexes of the store, rebuilt when it grows (stats are never
	// removed, so a count change is the only sign of new ones).
	nCounters, nGauges, nHists  int
	counters                    map[string]*stats.Counter
	gauges                      map[string]*stats.Gauge
	hists                       map[string]*stats.Histogram
	listenerStats, httpPrefixes []string
	clusterStats                []string
	serverGauges                []*stats.Gauge

	entities map[string]*entity
	order    []*entity // listeners then clusters, each by name

	procRaws []procSample
	procPts  []procPoint
	procLast procSample
	cxTotal  []hostRaw // t and total new downstream connections, for cxr
	server   map[string]int64
	now      time.Time
}

func (s *sampler) init(deps Deps) {
	s.deps = deps
	s.entities = map[string]*entity{}
	s.server = map[string]int64{}
}

// maxWindow is how far back readings are kept: the longer window plus one
// interval of slack for ticker jitter.
func (s *sampler) maxWindow() time.Duration {
	return max(s.deps.RateWindow, s.deps.LatencyWindow) + s.deps.Interval
}

func (s *sampler) index() {
	st := s.deps.Store
	if st == nil {
		return
	}
	cs, gs, hs := st.Counters(), st.Gauges(), st.Histograms()
	if len(cs) == s.nCounters && len(gs) == s.nGauges && len(hs) == s.nHists {
		return
	}
	s.nCounters, s.nGauges, s.nHists = len(cs), len(gs), len(hs)
	s.counters = make(map[string]*stats.Counter, len(cs))
	s.listenerStats, s.httpPrefixes, s.clusterStats = nil, nil, nil
	for _, c := range cs {
		n := c.Name()
		s.counters[n] = c
		// Scope names may hold dots ("0.0.0.0_80", "svc.v1"), so an
		// entity is recognised by its prefix and suffix, not split on dots.
		if m, ok := middle(n, "listener.", ".downstream_cx_total"); ok && m != "admin" {
			s.listenerStats = append(s.listenerStats, m)
		} else if m, ok := middle(n, "http.", ".downstream_rq_total"); ok && m != "admin" {
			s.httpPrefixes = append(s.httpPrefixes, m)
		} else if m, ok := middle(n, "cluster.", ".upstream_rq_total"); ok {
			s.clusterStats = append(s.clusterStats, m)
		}
	}
	s.gauges = make(map[string]*stats.Gauge, len(gs))
	s.serverGauges = s.serverGauges[:0]
	for _, g := range gs {
		s.gauges[g.Name()] = g
		if strings.HasPrefix(g.Name(), "server.") {
			s.serverGauges = append(s.serverGauges, g)
		}
	}
	s.hists = make(map[string]*stats.Histogram, len(hs))
	for _, h := range hs {
		s.hists[h.Name()] = h
	}
}

func middle(name, prefix, suffix string) (string, bool) {
	if len(name) <= len(prefix)+len(suffix) || !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
		return "", false
	}
	return name[len(prefix) : len(name)-len(suffix)], true
}

// httpSource reads an HCM's request stats under "http.<prefix>.".
func (s *sampler) httpSource(src *source, prefix string) {
	p := "http." + prefix + "."
	src.rq = s.counters[p+"downstream_rq_total"]
	for i := range src.class {
		src.class[i] = s.counters[p+"downstream_rq_"+strconv.Itoa(i+1)+"xx"]
	}
	src.rx = s.counters[p+"downstream_cx_rx_bytes_total"]
	src.tx = s.counters[p+"downstream_cx_tx_bytes_total"]
	src.time = s.hists[p+"downstream_rq_time"]
}

func (s *sampler) entity(key string) *entity {
	e := s.entities[key]
	if e == nil {
		e = &entity{key: key}
		s.entities[key] = e
	}
	e.seen = true
	return e
}

// setSource switches an entity to src, dropping readings that came from a
// different source (a listener newly linked to its HCM) so no rate spans
// two of them.
func (e *entity) setSource(src source) {
	if e.src != src {
		e.src, e.raws = src, nil
	}
}

// discover maps the store's names and the views onto entities.
func (s *sampler) discover(listeners []ListenerView, clusters []ClusterView) {
	for _, e := range s.entities {
		e.seen = false
	}
	linked := map[string]bool{}
	views := map[string]ListenerView{}
	for _, lv := range listeners {
		views[lv.StatName] = lv
	}
	for _, stat := range s.listenerStats {
		e := s.entity("listener." + stat)
		e.kind, e.name = "listener", stat
		lv, ok := views[stat]
		if ok && lv.Name != "" {
			e.name = lv.Name
		}
		e.address, e.http = lv.Address, ""
		p := "listener." + stat + "."
		src := source{cx: s.counters[p+"downstream_cx_total"], active: s.gauges[p+"downstream_cx_active"]}
		if ok && lv.HTTPStatPrefix != "" && s.counters["http."+lv.HTTPStatPrefix+".downstream_rq_total"] != nil {
			e.http = lv.HTTPStatPrefix
			linked[lv.HTTPStatPrefix] = true
			s.httpSource(&src, lv.HTTPStatPrefix)
		}
		e.setSource(src)
	}
	// An HCM no listener claims gets its own row, with its own connection
	// counts.
	for _, prefix := range s.httpPrefixes {
		if linked[prefix] {
			continue
		}
		e := s.entity("http." + prefix)
		e.kind, e.name, e.http = "listener", "http."+prefix, prefix
		p := "http." + prefix + "."
		src := source{cx: s.counters[p+"downstream_cx_total"], active: s.gauges[p+"downstream_cx_active"]}
		s.httpSource(&src, prefix)
		e.setSource(src)
	}

	byStat := map[string]ClusterView{}
	for _, cv := range clusters {
		if cv.StatName == "" {
			cv.StatName = cv.Name
		}
		byStat[cv.StatName] = cv
	}
	statNames := append([]string(nil), s.clusterStats...)
	for stat := range byStat {
		if s.counters["cluster."+stat+".upstream_rq_total"] == nil {
			statNames = append(statNames, stat) // hosts known, stats not (yet)
		}
	}
	for _, stat := range statNames {
		e := s.entity("cluster." + stat)
		e.kind, e.name = "cluster", stat
		cv, ok := byStat[stat]
		if ok {
			e.name = cv.Name
		}
		p := "cluster." + stat + "."
		src := source{
			rq:      s.counters[p+"upstream_rq_total"],
			rx:      s.counters[p+"upstream_cx_rx_bytes_total"],
			tx:      s.counters[p+"upstream_cx_tx_bytes_total"],
			cx:      s.counters[p+"upstream_cx_total"],
			active:  s.gauges[p+"upstream_cx_active"],
			time:    s.hists[p+"upstream_rq_time"],
			healthy: s.gauges[p+"membership_healthy"],
			members: s.gauges[p+"membership_total"],
		}
		for i := range src.class {
			src.class[i] = s.counters[p+"upstream_rq_"+strconv.Itoa(i+1)+"xx"]
		}
		e.setSource(src)
		e.hosts = e.hosts[:0]
		if ok {
			s.readHosts(e, cv.Hosts)
		}
	}

	s.order = s.order[:0]
	for k, e := range s.entities {
		if !e.seen {
			delete(s.entities, k)
			continue
		}
		s.order = append(s.order, e)
	}
	sort.Slice(s.order, func(i, j int) bool {
		a, b := s.order[i], s.order[j]
		if a.kind != b.kind {
			return a.kind == "listener"
		}
		if a.name != b.name {
			return a.name < b.name
		}
		return a.key < b.key
	})
}

// readHosts fills a cluster's host rows, with each host's request rate over
// the rate window.
func (s *sampler) readHosts(e *entity, hosts []HostView) {
	if e.hostRaws == nil {
		e.hostRaws = map[string][]hostRaw{}
	}
	keep := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		keep[h.Address] = true
		rs := trimOld(append(e.hostRaws[h.Address], hostRaw{t: s.now, rq: h.RqTotal, rqErr: h.RqError}),
			func(r hostRaw) time.Time { return r.t }, s.now.Add(-s.maxWindow()))
		e.hostRaws[h.Address] = rs
		qps := nan
		if b, ok := base(rs, func(r hostRaw) time.Time { return r.t }, s.now, s.deps.RateWindow, s.deps.Interval); ok {
			qps = rate(delta(h.RqTotal, b.rq), s.now.Sub(b.t))
		}
		flags := h.HealthFlags
		if flags == "" {
			flags = "healthy"
			if !h.Healthy {
				flags = "unhealthy"
			}
		}
		e.hosts = append(e.hosts, hostData{
			Address: h.Address, Hostname: h.Hostname, Weight: h.Weight, Healthy: h.Healthy, HealthFlags: flags,
			RqTotal: h.RqTotal, RqError: h.RqError, CxActive: h.CxActive, RqActive: h.RqActive, QPS: qps,
		})
	}
	for a := range e.hostRaws {
		if !keep[a] {
			delete(e.hostRaws, a)
		}
	}
}

// trimOld drops leading elements older than cutoff. Re-slicing from the
// front lets append reclaim the space when it next grows the array.
func trimOld[T any](xs []T, at func(T) time.Time, cutoff time.Time) []T {
	i := 0
	for i < len(xs) && at(xs[i]).Before(cutoff) {
		i++
	}
	return xs[i:]
}

// base finds the reading to measure a window back from now: the oldest one
// no further back than window (plus half an interval of ticker jitter),
// excluding now's own. ok is false with nothing older than now.
func base[T any](xs []T, at func(T) time.Time, now time.Time, window, interval time.Duration) (T, bool) {
	cutoff := now.Add(-window - interval/2)
	for _, x := range xs {
		t := at(x)
		if !t.Before(cutoff) && t.Before(now) {
			return x, true
		}
	}
	var zero T
	return zero, false
}

func rate(n uint64, d time.Duration) num {
	if d <= 0 {
		return nan
	}
	return num(float64(n) / d.Seconds())
}

func rawTime(r raw) time.Time { return r.t }

// point computes an entity's chart values from its readings.
func (s *sampler) point(e *entity, cur raw) (point, bool) {
	p := point{T: cur.t.UnixMilli(), QPS: nan, P50: nan, P90: nan, P99: nan, Err: nan, Rx: nan, Tx: nan, CxRate: nan}
	for i := range p.Class {
		p.Class[i] = nan
	}
	p.Cx = num(e.active)
	b, ok := base(e.raws, rawTime, cur.t, s.deps.RateWindow, s.deps.Interval)
	if !ok {
		return p, false
	}
	dt := cur.t.Sub(b.t)
	if e.src.cx != nil {
		p.CxRate = rate(delta(cur.cx, b.cx), dt)
	}
	if e.src.rq != nil {
		p.QPS = rate(delta(cur.rq, b.rq), dt)
		var done, errs uint64
		for i := range p.Class {
			if e.src.class[i] == nil {
				continue
			}
			d := delta(cur.class[i], b.class[i])
			p.Class[i] = rate(d, dt)
			done += d
			if i == 4 {
				errs = d
			}
		}
		// The share of completed responses (not of requests begun, which
		// would count in-flight ones as successes).
		if done > 0 {
			p.Err = num(float64(errs) / float64(done))
		} else {
			p.Err = 0
		}
	}
	if e.src.rx != nil {
		p.Rx = rate(delta(cur.rx, b.rx), dt)
	}
	if e.src.tx != nil {
		p.Tx = rate(delta(cur.tx, b.tx), dt)
	}
	if e.src.time != nil {
		if lb, ok := base(e.raws, rawTime, cur.t, s.deps.LatencyWindow, s.deps.Interval); ok {
			p.P50, p.P90, p.P99 = windowQuantiles(e.src.time.Bounds(), cur.buckets, lb.buckets)
		}
	}
	return p, true
}

// windowQuantiles estimates p50/p90/p99 of the samples recorded between two
// bucket readings; NaN when there were none.
func windowQuantiles(bounds []float64, cur, prev []uint64) (p50, p90, p99 num) {
	d := make([]uint64, len(cur))
	reset := false
	for i := range cur {
		if i >= len(prev) || cur[i] < prev[i] {
			reset = true
			break
		}
		d[i] = cur[i] - prev[i]
	}
	if reset {
		copy(d, cur)
	}
	q := func(x float64) num {
		v, ok := stats.Quantile(bounds, d, x)
		if !ok {
			return nan
		}
		return num(v)
	}
	return q(0.5), q(0.9), q(0.99)
}

// sample reads everything once.
func (s *sampler) sample(now time.Time, proc procSample, clusters []ClusterView, listeners []ListenerView) {
	s.now = now
	s.index()
	s.discover(listeners, clusters)
	cutoff := now.Add(-s.maxWindow())
	histCutoff := now.Add(-s.deps.History)
	var cxActive int64
	var cxTotal uint64
	for _, e := range s.order {
		cur := e.src.read(now)
		e.active = gval(e.src.active)
		e.healthy, e.members = gval(e.src.healthy), gval(e.src.members)
		if p, ok := s.point(e, cur); ok {
			e.pts = append(trimOld(e.pts, func(p point) time.Time { return time.UnixMilli(p.T) }, histCutoff), p)
		}
		e.raws = append(trimOld(e.raws, rawTime, cutoff), cur)
		e.last = cur
		if strings.HasPrefix(e.key, "listener.") {
			cxActive += e.active
			cxTotal += cur.cx
		}
	}
	for _, g := range s.serverGauges {
		s.server[strings.TrimPrefix(g.Name(), "server.")] = g.Value()
	}
	s.sampleProc(now, proc, cxActive, cxTotal)
}

func (s *sampler) sampleProc(now time.Time, proc procSample, cxActive int64, cxTotal uint64) {
	proc.t = now
	p := procPoint{T: now.UnixMilli(), CPU: nan, RSS: nan, Heap: num(proc.heap), Goroutines: num(proc.goroutines),
		FDs: nan, Cx: num(cxActive), CxRate: nan}
	if proc.rss > 0 {
		p.RSS = num(proc.rss)
	}
	if proc.fds >= 0 {
		p.FDs = num(proc.fds)
	}
	cx := hostRaw{t: now, rq: cxTotal}
	if b, ok := base(s.cxTotal, func(r hostRaw) time.Time { return r.t }, now, s.deps.RateWindow, s.deps.Interval); ok {
		p.CxRate = rate(delta(cxTotal, b.rq), now.Sub(b.t))
	}
	if b, ok := base(s.procRaws, func(r procSample) time.Time { return r.t }, now, s.deps.RateWindow, s.deps.Interval); ok && proc.cpuOK && b.cpuOK {
		if dt := now.Sub(b.t).Seconds(); dt > 0 {
			p.CPU = num(max(proc.cpu-b.cpu, 0) / dt * 100)
		}
	}
	cutoff := now.Add(-s.maxWindow())
	s.cxTotal = append(trimOld(s.cxTotal, func(r hostRaw) time.Time { return r.t }, cutoff), cx)
	s.procRaws = append(trimOld(s.procRaws, func(r procSample) time.Time { return r.t }, cutoff), proc)
	s.procPts = append(trimOld(s.procPts, func(p procPoint) time.Time { return time.UnixMilli(p.T) }, now.Add(-s.deps.History)), p)
	s.procLast = proc
}
