package stats

import (
	"math"
	"runtime/metrics"
	"strings"
	"sync"
	"time"
)

// ServerState is Envoy's server.state gauge value (and ServerInfo.State).
type ServerState int64

const (
	StateLive            ServerState = 0
	StateDraining        ServerState = 1
	StatePreInitializing ServerState = 2
	StateInitializing    ServerState = 3
)

func (s ServerState) String() string {
	switch s {
	case StateLive:
		return "LIVE"
	case StateDraining:
		return "DRAINING"
	case StatePreInitializing:
		return "PRE_INITIALIZING"
	case StateInitializing:
		return "INITIALIZING"
	}
	return "UNKNOWN"
}

// ServerStats holds Envoy's server.* gauges. The server sets Live, State,
// Concurrency and Version as they change; the admin calls Refresh before
// rendering so uptime, memory and connection totals are current without a
// background ticker.
type ServerStats struct {
	Live               *Gauge
	Uptime             *Gauge
	MemoryAllocated    *Gauge
	MemoryHeapSize     *Gauge
	MemoryPhysicalSize *Gauge
	Concurrency        *Gauge
	TotalConnections   *Gauge
	Version            *Gauge
	State              *Gauge

	// TotalConnectionsFunc, when set, supplies server.total_connections;
	// otherwise Refresh sums listener.<x>.downstream_cx_active over
	// every listener but the admin's.
	TotalConnectionsFunc func() int64
	// FirstCertExpiry, when set, reports the earliest NotAfter among the
	// certificates in use (ok false: none); Refresh turns it into
	// server.days_until_first_cert_expiring. It is asked on every refresh
	// because listeners, clusters and SDS secrets come and go.
	FirstCertExpiry func() (notAfter time.Time, ok bool)

	store *Store
	start time.Time

	mu       sync.Mutex
	certDays *Gauge // created on the first certificate seen
	samples  []metrics.Sample
}

// NewServerStats creates the server.* gauges in s; start is the process
// start used for server.uptime.
func NewServerStats(s *Store, start time.Time) *ServerStats {
	sc := s.Scope("server")
	ss := &ServerStats{
		Live:               sc.Gauge("live", NeverImport),
		Uptime:             sc.Gauge("uptime", Accumulate),
		MemoryAllocated:    sc.Gauge("memory_allocated", Accumulate),
		MemoryHeapSize:     sc.Gauge("memory_heap_size", Accumulate),
		MemoryPhysicalSize: sc.Gauge("memory_physical_size", Accumulate),
		Concurrency:        sc.Gauge("concurrency", NeverImport),
		TotalConnections:   sc.Gauge("total_connections", Accumulate),
		Version:            sc.Gauge("version", NeverImport),
		State:              sc.Gauge("state", NeverImport),
		store:              s,
		start:              start,
		samples: []metrics.Sample{
			{Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/memory/classes/heap/unused:bytes"},
			{Name: "/memory/classes/heap/free:bytes"},
			{Name: "/memory/classes/heap/released:bytes"},
			{Name: "/memory/classes/total:bytes"},
		},
	}
	ss.State.Set(int64(StatePreInitializing))
	return ss
}

// SetState records the server's state; server.live is separate (SetLive)
// because Envoy keeps it at 1 while health checks are failed.
func (ss *ServerStats) SetState(st ServerState) { ss.State.Set(int64(st)) }

// SetLive sets server.live.
func (ss *ServerStats) SetLive(live bool) {
	if live {
		ss.Live.Set(1)
	} else {
		ss.Live.Set(0)
	}
}

// Refresh updates the gauges that are computed rather than counted. Memory
// comes from runtime/metrics, which, unlike runtime.ReadMemStats, does not
// stop the world, so an aggressive scraper cannot stall the proxy.
func (ss *ServerStats) Refresh() {
	now := time.Now()
	ss.Uptime.Set(int64(now.Sub(ss.start) / time.Second))

	ss.mu.Lock()
	metrics.Read(ss.samples)
	var v [5]int64
	for i, s := range ss.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = int64(min(s.Value.Uint64(), math.MaxInt64))
		}
	}
	if ss.FirstCertExpiry != nil {
		if notAfter, ok := ss.FirstCertExpiry(); ok {
			if ss.certDays == nil {
				ss.certDays = ss.store.Gauge("server.days_until_first_cert_expiring", NeverImport)
			}
			ss.certDays.Set(max(int64(notAfter.Sub(now)/(24*time.Hour)), 0))
		}
	}
	ss.mu.Unlock()
	objects, unused, free, released, total := v[0], v[1], v[2], v[3], v[4]
	ss.MemoryAllocated.Set(objects)
	ss.MemoryHeapSize.Set(objects + unused + free + released)
	ss.MemoryPhysicalSize.Set(total - released)

	if ss.TotalConnectionsFunc != nil {
		ss.TotalConnections.Set(ss.TotalConnectionsFunc())
		return
	}
	var sum int64
	for _, g := range ss.store.Gauges() {
		n := g.Name()
		if strings.HasPrefix(n, "listener.") && !strings.HasPrefix(n, "listener.admin.") &&
			strings.HasSuffix(n, ".downstream_cx_active") {
			sum += g.Value()
		}
	}
	ss.TotalConnections.Set(sum)
}
