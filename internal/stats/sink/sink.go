// Package sink flushes the stats store to Envoy's statsd sinks
// (envoy.stat_sinks.statsd over UDP or TCP, envoy.stat_sinks.dog_statsd)
// and to envoy.stat_sinks.metrics_service (gRPC StreamMetrics, Prometheus
// MetricFamily messages; see metricsservice.go) every stats_flush_interval.
//
// Counters are sent as the delta since the previous flush ("|c"), gauges as
// their value ("|g"); a stat is sent once it has been non-zero, Legate's
// stand-in for Envoy's "used" flag. Envoy sends every histogram sample as
// it is recorded; Legate keeps bucket counts, not samples, so each flush
// sends a summary of the interval per histogram, as timers ("|ms"): for
// each bucket that received n samples, one line with a value standing for
// them and a sample rate of 1/n ("|@0.25" for n = 4; none for n = 1), which
// statsd and DogStatsD count as n samples. The value is the interval's
// exact mean when all of its samples fell in one bucket (so a lone sample
// is sent exactly), otherwise the bucket's midpoint; samples above the
// highest bound are sent at that bound.
//
// Sending never touches the request path and never blocks the flusher:
// each sink has its own goroutine fed through a one-slot queue; a flush
// that finds the previous one still being sent is dropped. UDP and TCP
// writes carry deadlines; a TCP sink that cannot keep up drops the flush,
// closes its connection and counts statsd.cx_overflow, as Envoy does.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"

	"github.com/legate-proxy/legate/internal/stats"
)

// DefaultFlushInterval is stats_flush_interval's default.
const DefaultFlushInterval = 5 * time.Second

// Type URLs of the sinks' typed_config.
const (
	TypeStatsd    = "envoy.config.metrics.v3.StatsdSink"
	TypeDogStatsd = "envoy.config.metrics.v3.DogStatsdSink"
	// TypeMetricsService is in metricsservice.go.
)

// ClusterLookup is what a TCP statsd sink needs from the cluster manager.
// The server adapts *cluster.Manager to it; keeping it an interface keeps
// this package free of the upstream packages.
type ClusterLookup interface {
	// HasCluster reports whether a cluster of that name is configured;
	// Envoy refuses a tcp_cluster_name that is not.
	HasCluster(name string) bool
	// DialCluster connects to a host the cluster's load balancer picks,
	// within the cluster's connect timeout and ctx.
	DialCluster(ctx context.Context, name string) (net.Conn, error)
}

// Flusher snapshots the store every interval and hands the result to each
// sink.
type Flusher struct {
	interval time.Duration
	store    *stats.Store
	tags     *stats.TagExtractor
	sinks    []*sinkWorker

	// BeforeFlush, when set, runs at the start of every flush; the server
	// points it at ServerStats.Refresh so server.* gauges are current.
	BeforeFlush func()
	// Logger receives one line per sink when sending starts to fail and
	// when it recovers; nil discards.
	Logger *slog.Logger

	mu       sync.Mutex // serialises flushes and Close
	started  bool       // senders running
	closed   bool
	counters map[*stats.Counter]uint64
	used     map[any]bool
	hists    map[*stats.Histogram]histState
	wg       sync.WaitGroup
}

type histState struct {
	counts []uint64
	sum    uint64
}

// FromBootstrap builds the flusher of bs.stats_sinks and
// bs.stats_flush_interval; it returns nil, nil when there are no sinks.
func FromBootstrap(bs *bootstrapv3.Bootstrap, store *stats.Store, tags *stats.TagExtractor, clusters ClusterLookup) (*Flusher, error) {
	if len(bs.GetStatsSinks()) == 0 {
		return nil, nil
	}
	interval := DefaultFlushInterval
	if d := bs.GetStatsFlushInterval(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, fmt.Errorf("stats_flush_interval: %w", err)
		}
		interval = d.AsDuration()
		// Envoy's own bounds: at least 1 ms, under 300 s.
		if interval < time.Millisecond || interval >= 300*time.Second {
			return nil, fmt.Errorf("stats_flush_interval: %v is outside [1ms, 300s)", interval)
		}
	}
	return New(bs.GetStatsSinks(), interval, store, tags, clusters)
}

// New builds the sinks of pb. tags may be nil for Envoy's default tag
// extraction; clusters may be nil when no sink names a tcp_cluster_name.
func New(pb []*metricsv3.StatsSink, interval time.Duration, store *stats.Store, tags *stats.TagExtractor, clusters ClusterLookup) (*Flusher, error) {
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	if tags == nil {
		tags = stats.NewTagExtractor()
	}
	f := &Flusher{
		interval: interval, store: store, tags: tags,
		counters: map[*stats.Counter]uint64{},
		used:     map[any]bool{},
		hists:    map[*stats.Histogram]histState{},
	}
	var errs []error
	for i, s := range pb {
		w, err := f.build(s, clusters)
		if err != nil {
			errs = append(errs, fmt.Errorf("stats_sinks[%d]: %w", i, err))
			continue
		}
		f.sinks = append(f.sinks, w)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

func (f *Flusher) build(pb *metricsv3.StatsSink, clusters ClusterLookup) (*sinkWorker, error) {
	tc := pb.GetTypedConfig()
	if tc == nil {
		return nil, errors.New("typed_config is required")
	}
	msg, err := tc.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	var fm format
	var out output
	switch c := msg.(type) {
	case *metricsv3.StatsdSink:
		fm = format{prefix: prefixOr(c.GetPrefix()), scaleUs: c.GetScaleHistogramUnitsToMilliseconds()}
		switch spec := c.GetStatsdSpecifier().(type) {
		case *metricsv3.StatsdSink_Address:
			addr, err := udpAddr(spec.Address)
			if err != nil {
				return nil, fmt.Errorf("address: %w", err)
			}
			out, err = newUDP(addr, 0)
			if err != nil {
				return nil, fmt.Errorf("address: %w", err)
			}
		case *metricsv3.StatsdSink_TcpClusterName:
			if clusters == nil || !clusters.HasCluster(spec.TcpClusterName) {
				return nil, fmt.Errorf("tcp_cluster_name: unknown cluster %q", spec.TcpClusterName)
			}
			out = newTCP(spec.TcpClusterName, clusters, f.store.Counter("statsd.cx_overflow"))
		default:
			return nil, errors.New("one of address or tcp_cluster_name is required")
		}
	case *metricsv3.MetricsServiceConfig:
		ms, err := newMetricsService(c, clusters, f.store)
		if err != nil {
			return nil, err
		}
		return &sinkWorker{name: pb.GetName(), out: ms, ms: ms, queue: make(chan flushData, 1)}, nil
	case *metricsv3.DogStatsdSink:
		fm = format{prefix: prefixOr(c.GetPrefix()), tagged: true, scaleUs: c.GetScaleHistogramUnitsToMilliseconds()}
		addr, err := udpAddr(c.GetAddress())
		if err != nil {
			return nil, fmt.Errorf("address: %w", err)
		}
		out, err = newUDP(addr, int(c.GetMaxBytesPerDatagram().GetValue()))
		if err != nil {
			return nil, fmt.Errorf("address: %w", err)
		}
	default:
		return nil, fmt.Errorf("typed_config: %s is not a supported stats sink", tc.GetTypeUrl())
	}
	return &sinkWorker{name: pb.GetName(), fm: fm, out: out, queue: make(chan flushData, 1)}, nil
}

func prefixOr(p string) string {
	if p == "" {
		return "envoy"
	}
	return p
}

func udpAddr(a *corev3.Address) (string, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return "", errors.New("a socket_address is required")
	}
	if sa.GetAddress() == "" {
		return "", errors.New("socket_address.address is required")
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))), nil
}

// Interval is the flush interval.
func (f *Flusher) Interval() time.Duration { return f.interval }

// Run flushes every interval until ctx is done, then flushes once more
// and closes the sinks (waiting at most 2 s for that last send).
func (f *Flusher) Run(ctx context.Context) {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			f.Flush()
			f.Close()
			return
		case <-t.C:
			f.Flush()
		}
	}
}

// Close stops the sinks' senders and closes their sockets; later flushes
// do nothing. It is safe to call more than once and without Run.
func (f *Flusher) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	if f.started {
		for i := range f.sinks {
			close(f.sinks[i].queue)
		}
		done := make(chan struct{})
		go func() { f.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	for i := range f.sinks {
		f.sinks[i].out.close()
	}
}

// Flush takes one snapshot and queues it to every sink's sender.
func (f *Flusher) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	if !f.started {
		f.started = true
		log := f.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		for i := range f.sinks {
			w := f.sinks[i]
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				w.run(log)
			}()
		}
	}
	if f.BeforeFlush != nil {
		f.BeforeFlush()
	}
	snap := f.snapshot()
	for i := range f.sinks {
		w := f.sinks[i]
		var d flushData
		if w.ms != nil {
			d.families = w.ms.families(snap, f.tags)
		} else {
			d.lines = w.fm.render(snap, f.tags)
		}
		if len(d.lines) == 0 && len(d.families) == 0 {
			continue
		}
		select {
		case w.queue <- d:
		default:
			w.dropped.Add(1) // the previous flush is still being sent
		}
	}
}

// Dropped is how many sink flushes were dropped because the sink was still
// sending the previous one.
func (f *Flusher) Dropped() uint64 {
	var n uint64
	for _, w := range f.sinks {
		n += w.dropped.Load()
	}
	return n
}
