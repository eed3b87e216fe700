// Package dashboard is the admin server's live page: per listener and per
// cluster request rates, latency quantiles, status classes, bytes and
// connections, host health, the process's own CPU and memory, and the most
// recent traces from the span ring.
//
// A sampler goroutine (Run) reads the stats store once per interval and turns
// cumulative counters and histograms into windowed rates and quantiles, kept
// for a few minutes; the page polls a JSON endpoint for the points it has not
// seen yet. Nothing here touches the request path: it only reads the atomics
// the proxy already writes. The page, its script and its style are embedded,
// so the dashboard works with no network beyond the admin address.
package dashboard

import (
	"context"
	"embed"
	"net/http"
	"sync"
	"time"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/tracing"
)

// ClusterView is one cluster and its hosts as the dashboard shows them.
type ClusterView struct {
	Name string
	// StatName names the cluster's stats scope (alt_stat_name or Name);
	// "" means Name.
	StatName string
	Hosts    []HostView
}

// HostView is one upstream host.
type HostView struct {
	Address  string
	Hostname string
	Weight   uint32
	// Healthy is the host's overall health; HealthFlags is Envoy's
	// /clusters health_flags text ("healthy", "/failed_active_hc", …).
	Healthy     bool
	HealthFlags string
	// Cumulative and current per-host figures, as /clusters reports them.
	RqTotal, RqError   uint64
	CxActive, RqActive int64
}

// ListenerView links a listener to the HTTP connection manager behind it,
// which the stat names alone cannot do.
type ListenerView struct {
	Name    string
	Address string
	// StatName is the listener's stats scope: stat_prefix, or the
	// "<ip>_<port>" form of its address.
	StatName string
	// HTTPStatPrefix is the HCM's stat_prefix ("" for a non-HTTP listener).
	HTTPStatPrefix string
}

// Deps is what the dashboard reads. Only Store is required.
type Deps struct {
	Store *stats.Store
	// Clusters lists clusters and hosts for the health table; optional
	// (FromClusterManager adapts the cluster manager).
	Clusters func() []ClusterView
	// Listeners joins listener and HCM stats; optional
	// (ListenerViews derives it from the listeners). Without it
	// listeners and HCM prefixes are shown separately.
	Listeners func() []ListenerView
	// Ring holds recent spans; nil hides the traces panel.
	Ring *tracing.Ring
	// Start is the server's start, for uptime.
	Start time.Time

	// Interval between samples (default 1 s), History kept for the charts
	// (default 5 min), RateWindow over which counters become rates (default
	// 5 s) and LatencyWindow over which histogram buckets become quantiles
	// (default 10 s). Zero means the default.
	Interval, History, RateWindow, LatencyWindow time.Duration
}

// Dashboard samples stats and serves the page.
type Dashboard struct {
	deps    Deps
	handler http.Handler

	mu sync.Mutex
	s  sampler
}

// New returns a dashboard; call Run to start sampling.
func New(deps Deps) *Dashboard {
	if deps.Interval <= 0 {
		deps.Interval = time.Second
	}
	if deps.History <= 0 {
		deps.History = 5 * time.Minute
	}
	if deps.RateWindow <= 0 {
		deps.RateWindow = 5 * time.Second
	}
	if deps.LatencyWindow <= 0 {
		deps.LatencyWindow = 10 * time.Second
	}
	if deps.Start.IsZero() {
		deps.Start = time.Now()
	}
	d := &Dashboard{deps: deps}
	d.s.init(deps)
	d.handler = d.routes()
	return d
}

// Run samples every Interval until ctx ends. The first sample is taken at
// once so the page has a baseline as soon as it opens.
func (d *Dashboard) Run(ctx context.Context) {
	t := time.NewTicker(d.deps.Interval)
	defer t.Stop()
	for {
		d.sample(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample takes one snapshot of everything the page charts.
func (d *Dashboard) sample(now time.Time) {
	var clusters []ClusterView
	if d.deps.Clusters != nil {
		clusters = d.deps.Clusters()
	}
	var listeners []ListenerView
	if d.deps.Listeners != nil {
		listeners = d.deps.Listeners()
	}
	proc := readProc()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.s.sample(now, proc, clusters, listeners)
}

// Handler serves the page at "/", its assets under "/dashboard/", the
// samples at "/dashboard/data?since=<unix ms>" and one trace's spans at
// "/dashboard/trace?id=<trace id>".
func (d *Dashboard) Handler() http.Handler { return d.handler }

//go:embed assets
var assets embed.FS
