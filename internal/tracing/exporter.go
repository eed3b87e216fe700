package tracing

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// Export defaults. Envoy flushes every 5 s (tracing.zipkin.flush_interval_ms)
// or once 5 spans are pending (tracing.*.min_flush_spans); Legate follows
// and, when the queue has piled up behind a slow collector, sends up to
// maxReport spans in one report to catch up.
const (
	defaultFlushInterval = 5 * time.Second
	defaultMinFlushSpans = 5
	defaultQueueSize     = 1024
	defaultSendTimeout   = 5 * time.Second
	maxReport            = 1000
)

// sender delivers one report. It counts its own report stats.
type sender interface {
	send(ctx context.Context, spans []*Span)
	close()
}

// exporter batches finished spans off the request path: Finish does a
// non-blocking channel send; one goroutine per exporter builds reports and
// talks to the collector. A full queue drops the span (spans_dropped), so a
// slow or dead collector costs requests nothing.
type exporter struct {
	q        chan *Span
	stop     chan struct{}
	done     chan struct{}
	minFlush int
	interval time.Duration
	timeout  time.Duration
	snd      sender
	log      *slog.Logger

	spansSent, spansDropped, timerFlushed *stats.Counter

	refs int // guarded by registry.mu
	key  regKey
}

type exporterOptions struct {
	queue, minFlush   int
	interval, timeout time.Duration
}

func newExporter(sc stats.Scope, snd sender, log *slog.Logger, o exporterOptions) *exporter {
	if o.queue <= 0 {
		o.queue = defaultQueueSize
	}
	if o.minFlush <= 0 {
		o.minFlush = defaultMinFlushSpans
	}
	if o.interval <= 0 {
		o.interval = defaultFlushInterval
	}
	if o.timeout <= 0 {
		o.timeout = defaultSendTimeout
	}
	e := &exporter{
		q:            make(chan *Span, o.queue),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
		minFlush:     o.minFlush,
		interval:     o.interval,
		timeout:      o.timeout,
		snd:          snd,
		log:          log,
		spansSent:    sc.Counter("spans_sent"),
		spansDropped: sc.Counter("spans_dropped"),
		timerFlushed: sc.Counter("timer_flushed"),
	}
	go e.run()
	return e
}

// enqueue hands a finished span to the exporter; it never blocks.
func (e *exporter) enqueue(s *Span) {
	select {
	case e.q <- s:
	default:
		e.spansDropped.Inc()
	}
}

func (e *exporter) run() {
	defer close(e.done)
	tick := time.NewTicker(e.interval)
	defer tick.Stop()
	batch := make([]*Span, 0, e.minFlush)
	for {
		select {
		case s := <-e.q:
			batch = append(batch, s)
			if len(batch) >= e.minFlush {
				batch = e.flush(batch)
			}
		case <-tick.C:
			e.timerFlushed.Inc()
			if len(batch) > 0 {
				batch = e.flush(batch)
			}
		case <-e.stop:
			// Final flush on shutdown: whatever is queued, in reports of
			// at most maxReport spans.
			for {
				batch = e.flush(batch)
				if len(e.q) == 0 {
					return
				}
			}
		}
	}
}

// flush sends batch plus whatever else is queued (up to maxReport) as one
// report and returns the emptied batch.
func (e *exporter) flush(batch []*Span) []*Span {
drain:
	for len(batch) < maxReport {
		select {
		case s := <-e.q:
			batch = append(batch, s)
		default:
			break drain
		}
	}
	if len(batch) == 0 {
		return batch
	}
	e.spansSent.Add(uint64(len(batch)))
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	e.snd.send(ctx, batch)
	cancel()
	clear(batch)
	return batch[:0]
}

func (e *exporter) close() {
	close(e.stop)
	<-e.done
	e.snd.close()
}

// Exporters are shared: every connection manager (on every listener) whose
// provider config is the same, against the same cluster manager and stats
// store, feeds one exporter, so N listeners do not mean N goroutines,
// N connection pools and N times the reports. The registry refcounts them;
// the last Tracer.Close flushes and stops the exporter.
type regKey struct {
	clusters *cluster.Manager
	stats    *stats.Store
	typ, cfg string
}

var registry struct {
	mu sync.Mutex
	m  map[regKey]*exporter
}

func acquire(k regKey, build func() (*exporter, error)) (*exporter, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if e := registry.m[k]; e != nil {
		e.refs++
		return e, nil
	}
	e, err := build()
	if err != nil {
		return nil, err
	}
	e.refs, e.key = 1, k
	if registry.m == nil {
		registry.m = map[regKey]*exporter{}
	}
	registry.m[k] = e
	return e, nil
}

func release(e *exporter) {
	if e == nil {
		return
	}
	registry.mu.Lock()
	e.refs--
	last := e.refs == 0
	if last {
		delete(registry.m, e.key)
	}
	registry.mu.Unlock()
	if last {
		e.close()
	}
}
