// Package stats holds Envoy-named counters, gauges and histograms.
//
// Stats are created while config is built (Store.Counter and friends take a
// lock and a map lookup); the request path only touches the returned
// pointers, which are plain atomics. Creating the same name twice returns the
// same stat, so a rebuilt config keeps its counts, as Envoy's do across
// updates.
package stats

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Counter only goes up.
type Counter struct {
	name string
	v    atomic.Uint64
}

func (c *Counter) Inc()          { c.v.Add(1) }
func (c *Counter) Add(n uint64)  { c.v.Add(n) }
func (c *Counter) Value() uint64 { return c.v.Load() }
func (c *Counter) Name() string  { return c.name }

// GaugeMode says how a gauge merges across hot restarts in Envoy; Legate
// keeps it so /stats and sinks can report it the same way.
type GaugeMode uint8

const (
	Accumulate GaugeMode = iota
	NeverImport
)

// Gauge goes up and down.
type Gauge struct {
	name string
	mode GaugeMode
	v    atomic.Int64
}

func (g *Gauge) Inc()            { g.v.Add(1) }
func (g *Gauge) Dec()            { g.v.Add(-1) }
func (g *Gauge) Add(n int64)     { g.v.Add(n) }
func (g *Gauge) Set(n int64)     { g.v.Store(n) }
func (g *Gauge) Value() int64    { return g.v.Load() }
func (g *Gauge) Name() string    { return g.name }
func (g *Gauge) Mode() GaugeMode { return g.mode }

// Unit of a histogram's samples.
type Unit uint8

const (
	Milliseconds Unit = iota
	Microseconds
	Bytes
	Unspecified
)

// DefaultBuckets are Envoy's default histogram bucket bounds.
var DefaultBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Histogram counts samples into fixed buckets (upper bounds, inclusive) plus
// an overflow bucket; Record is lock-free.
type Histogram struct {
	name    string
	unit    Unit
	bounds  []float64
	buckets []atomic.Uint64 // len(bounds)+1; last is overflow
	count   atomic.Uint64
	sum     atomic.Uint64 // sum of samples, in the unit
}

// Record adds one sample.
func (h *Histogram) Record(v uint64) {
	f := float64(v)
	i := sort.SearchFloat64s(h.bounds, f) // first bound >= v
	h.buckets[i].Add(1)
	h.count.Add(1)
	h.sum.Add(v)
}

func (h *Histogram) Name() string      { return h.name }
func (h *Histogram) Unit() Unit        { return h.unit }
func (h *Histogram) Bounds() []float64 { return h.bounds }
func (h *Histogram) Count() uint64     { return h.count.Load() }
func (h *Histogram) Sum() uint64       { return h.sum.Load() }

// BucketCounts returns the per-bucket (not cumulative) counts; the last
// entry is the overflow bucket.
func (h *Histogram) BucketCounts() []uint64 {
	out := make([]uint64, len(h.buckets))
	for i := range h.buckets {
		out[i] = h.buckets[i].Load()
	}
	return out
}

// Store owns every stat of a server.
type Store struct {
	mu         sync.Mutex
	counters   map[string]*Counter
	gauges     map[string]*Gauge
	histograms map[string]*Histogram

	// accept is stats_config.stats_matcher (nil keeps everything). A
	// rejected stat still works for its caller but lives in rejected,
	// which nothing lists, so /stats and the sinks never see it.
	accept   *statsMatcher
	rejected map[string]any
	// buckets is stats_config.histogram_bucket_settings.
	buckets []bucketRule

	process bool // /stats/prometheus adds process_* and go_* families
}

// EnableProcessMetrics makes WritePrometheus append Prometheus' standard
// process_* and go_* families, read from /proc and the Go runtime.
func (s *Store) EnableProcessMetrics() {
	s.mu.Lock()
	s.process = true
	s.mu.Unlock()
}

// Accepts reports whether stats_matcher keeps the stat called name.
func (s *Store) Accepts(name string) bool { return s.accept.accepts(name) }

// rejectedStat returns the unlisted stat for a name stats_matcher rejects,
// creating it with mk; key is the name behind a kind prefix. Callers hold
// s.mu.
func rejectedStat[T any](s *Store, key string, mk func() T) T {
	if v, ok := s.rejected[key].(T); ok {
		return v
	}
	if s.rejected == nil {
		s.rejected = map[string]any{}
	}
	v := mk()
	s.rejected[key] = v
	return v
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		counters:   map[string]*Counter{},
		gauges:     map[string]*Gauge{},
		histograms: map[string]*Histogram{},
	}
}

// Counter returns the counter called name, creating it.
func (s *Store) Counter(name string) *Counter {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counters[name]
	if c == nil {
		if !s.accept.accepts(name) {
			return rejectedStat(s, "c:"+name, func() *Counter { return &Counter{name: name} })
		}
		c = &Counter{name: name}
		s.counters[name] = c
	}
	return c
}

// Gauge returns the gauge called name, creating it with mode.
func (s *Store) Gauge(name string, mode GaugeMode) *Gauge {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gauges[name]
	if g == nil {
		if !s.accept.accepts(name) {
			return rejectedStat(s, "g:"+name, func() *Gauge { return &Gauge{name: name, mode: mode} })
		}
		g = &Gauge{name: name, mode: mode}
		s.gauges[name] = g
	}
	return g
}

// Histogram returns the histogram called name, creating it on the buckets
// of stats_config.histogram_bucket_settings, or Envoy's default ones.
func (s *Store) Histogram(name string, unit Unit) *Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.histograms[name]
	if h == nil {
		mk := func() *Histogram {
			bounds := bucketsFor(s.buckets, name)
			return &Histogram{name: name, unit: unit, bounds: bounds, buckets: make([]atomic.Uint64, len(bounds)+1)}
		}
		if !s.accept.accepts(name) {
			return rejectedStat(s, "h:"+name, mk)
		}
		h = mk()
		s.histograms[name] = h
	}
	return h
}

// Counters returns every counter, sorted by name.
func (s *Store) Counters() []*Counter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedValues(s.counters)
}

// Gauges returns every gauge, sorted by name.
func (s *Store) Gauges() []*Gauge {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedValues(s.gauges)
}

// Histograms returns every histogram, sorted by name.
func (s *Store) Histograms() []*Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedValues(s.histograms)
}

func sortedValues[T interface{ Name() string }](m map[string]T) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// Scope prefixes names, as Envoy's stats scopes do ("cluster.foo.").
type Scope struct {
	store  *Store
	prefix string
}

// Scope returns a scope whose stats are named prefix + "." + name.
func (s *Store) Scope(prefix string) Scope {
	return Scope{store: s, prefix: joinName(prefix, "")}
}

// Scope nests a further prefix.
func (sc Scope) Scope(prefix string) Scope {
	return Scope{store: sc.store, prefix: sc.prefix + joinName(prefix, "")}
}

func (sc Scope) Counter(name string) *Counter { return sc.store.Counter(sc.prefix + name) }
func (sc Scope) Gauge(name string, mode GaugeMode) *Gauge {
	return sc.store.Gauge(sc.prefix+name, mode)
}
func (sc Scope) Histogram(name string, unit Unit) *Histogram {
	return sc.store.Histogram(sc.prefix+name, unit)
}

// Store returns the scope's store.
func (sc Scope) Store() *Store { return sc.store }

func joinName(prefix, name string) string {
	if prefix == "" {
		return name
	}
	if strings.HasSuffix(prefix, ".") {
		return prefix + name
	}
	return prefix + "." + name
}
