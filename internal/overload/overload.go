// Package overload is Envoy's overload manager
// (bootstrap overload_manager): resource monitors measure pressure in
// [0, 1] every refresh_interval, and actions whose triggers fire change
// how the proxy behaves until the pressure falls again.
//
// Monitors: envoy.resource_monitors.fixed_heap (the Go heap the process
// holds from the OS, against max_heap_size_bytes) and
// envoy.resource_monitors.global_downstream_max_connections (open
// downstream connections against max_active_downstream_connections; the
// listeners enforce it on accept). Actions:
// envoy.overload_actions.shrink_heap (returns freed memory to the OS),
// envoy.overload_actions.stop_accepting_requests (the HTTP connection
// manager answers new requests 503 "envoy overloaded"),
// envoy.overload_actions.disable_http_keepalive (responses close their
// connection), envoy.overload_actions.stop_accepting_connections and
// envoy.overload_actions.reject_incoming_connections (listeners stop
// accepting, or close what they accept). Listeners with
// bypass_overload_manager are not affected.
//
// Stats are Envoy's: overload.<monitor>.pressure (percent),
// overload.<monitor>.failed_updates, overload.<action>.active (0 or 1),
// overload.<action>.scale_percent.
package overload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"

	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	dcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	fhv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"

	"github.com/legate-proxy/legate/internal/stats"
)

// Names of the monitors and actions Legate implements.
const (
	MonitorFixedHeap        = "envoy.resource_monitors.fixed_heap"
	MonitorDownstreamConns  = "envoy.resource_monitors.global_downstream_max_connections"
	ActionShrinkHeap        = "envoy.overload_actions.shrink_heap"
	ActionStopRequests      = "envoy.overload_actions.stop_accepting_requests"
	ActionDisableKeepalive  = "envoy.overload_actions.disable_http_keepalive"
	ActionStopConnections   = "envoy.overload_actions.stop_accepting_connections"
	ActionRejectConnections = "envoy.overload_actions.reject_incoming_connections"
)

// shrinkInterval is how often shrink_heap returns memory while active,
// as Envoy's timer does.
const shrinkInterval = 10 * time.Second

// State is what the data path reads: one atomic load per check.
type State struct {
	StopRequests, DisableKeepalive     atomic.Bool
	StopConnections, RejectConnections atomic.Bool
	// MaxConnections is the global downstream connection limit from the
	// downstream connections monitor; 0 is none.
	MaxConnections uint64
}

// Manager runs the monitors and actions.
type Manager struct {
	State    *State
	interval time.Duration
	monitors []*monitor
	actions  []*action
	logger   *slog.Logger
	// OpenConnections reports the open downstream connections (the
	// listeners' global count), for the connections monitor's pressure.
	OpenConnections func() int64
}

type monitor struct {
	name     string
	max      float64 // heap bytes or connections
	conns    bool    // the downstream connections monitor
	pressure float64
	gauge    *stats.Gauge
	failed   *stats.Counter
}

type trigger struct {
	m         *monitor
	threshold float64
}

type action struct {
	name     string
	triggers []trigger
	flag     *atomic.Bool // nil: shrink_heap
	active   bool
	gauge    *stats.Gauge
	scale    *stats.Gauge
	lastGC   time.Time
}

// New compiles an OverloadManager; nil pb is a manager that does nothing.
func New(pb *overloadv3.OverloadManager, st *stats.Store, logger *slog.Logger) (*Manager, error) {
	m := &Manager{State: &State{}, interval: time.Second, logger: logger}
	if pb == nil {
		return m, nil
	}
	if d := pb.GetRefreshInterval(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			return nil, fmt.Errorf("overload_manager.refresh_interval: %v is not a positive duration", d)
		}
		m.interval = d.AsDuration()
	}
	if pb.GetBufferFactoryConfig() != nil {
		return nil, errors.New("overload_manager.buffer_factory_config: not supported")
	}
	if len(pb.GetLoadshedPoints()) > 0 {
		return nil, errors.New("overload_manager.loadshed_points: not supported")
	}
	sc := st.Scope("overload")
	byName := map[string]*monitor{}
	for i, rm := range pb.GetResourceMonitors() {
		path := fmt.Sprintf("overload_manager.resource_monitors[%d]", i)
		mon := &monitor{name: rm.GetName()}
		if _, dup := byName[mon.name]; dup {
			return nil, fmt.Errorf("%s.name: %q is listed twice", path, mon.name)
		}
		cfg, err := rm.GetTypedConfig().UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("%s.typed_config: %w", path, err)
		}
		switch c := cfg.(type) {
		case *fhv3.FixedHeapConfig:
			if c.GetMaxHeapSizeBytes() == 0 {
				return nil, fmt.Errorf("%s.typed_config.max_heap_size_bytes: must be positive", path)
			}
			mon.max = float64(c.GetMaxHeapSizeBytes())
		case *dcv3.DownstreamConnectionsConfig:
			if c.GetMaxActiveDownstreamConnections() <= 0 {
				return nil, fmt.Errorf("%s.typed_config.max_active_downstream_connections: must be positive", path)
			}
			mon.max, mon.conns = float64(c.GetMaxActiveDownstreamConnections()), true
			m.State.MaxConnections = uint64(c.GetMaxActiveDownstreamConnections())
		default:
			return nil, fmt.Errorf("%s.typed_config: %T is not a supported resource monitor", path, cfg)
		}
		ms := sc.Scope(mon.name)
		mon.gauge = ms.Gauge("pressure", stats.NeverImport)
		mon.failed = ms.Counter("failed_updates")
		ms.Counter("skipped_updates")
		byName[mon.name] = mon
		m.monitors = append(m.monitors, mon)
	}
	for i, a := range pb.GetActions() {
		path := fmt.Sprintf("overload_manager.actions[%d]", i)
		act := &action{name: a.GetName()}
		switch act.name {
		case ActionShrinkHeap:
		case ActionStopRequests:
			act.flag = &m.State.StopRequests
		case ActionDisableKeepalive:
			act.flag = &m.State.DisableKeepalive
		case ActionStopConnections:
			act.flag = &m.State.StopConnections
		case ActionRejectConnections:
			act.flag = &m.State.RejectConnections
		default:
			return nil, fmt.Errorf("%s.name: %q is not a supported overload action", path, act.name)
		}
		if a.GetTypedConfig() != nil {
			return nil, fmt.Errorf("%s.typed_config: not supported", path)
		}
		if len(a.GetTriggers()) == 0 {
			return nil, fmt.Errorf("%s.triggers: at least one is required", path)
		}
		for j, t := range a.GetTriggers() {
			tp := fmt.Sprintf("%s.triggers[%d]", path, j)
			mon := byName[t.GetName()]
			if mon == nil {
				return nil, fmt.Errorf("%s.name: %q is not a configured resource monitor", tp, t.GetName())
			}
			th := t.GetThreshold()
			if th == nil {
				return nil, fmt.Errorf("%s: only a threshold trigger is supported", tp)
			}
			if th.GetValue() < 0 || th.GetValue() > 1 {
				return nil, fmt.Errorf("%s.threshold.value: %v is outside [0, 1]", tp, th.GetValue())
			}
			act.triggers = append(act.triggers, trigger{m: mon, threshold: th.GetValue()})
		}
		as := sc.Scope(act.name)
		act.gauge = as.Gauge("active", stats.NeverImport)
		act.scale = as.Gauge("scale_percent", stats.NeverImport)
		m.actions = append(m.actions, act)
	}
	return m, nil
}

// Run measures and acts every refresh interval until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	if len(m.monitors) == 0 {
		return
	}
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.Refresh()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var heapSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/unused:bytes"},
	{Name: "/memory/classes/heap/free:bytes"},
	{Name: "/memory/classes/heap/stacks:bytes"},
}

// heapBytes is the heap memory the process holds from the OS (released
// pages excluded), Envoy's "reserved minus unmapped" for tcmalloc.
func heapBytes() float64 {
	metrics.Read(heapSamples)
	var sum uint64
	for _, s := range heapSamples {
		if s.Value.Kind() == metrics.KindUint64 {
			sum += s.Value.Uint64()
		}
	}
	return float64(sum)
}

// Refresh measures once and updates the actions.
func (m *Manager) Refresh() {
	for _, mon := range m.monitors {
		var used float64
		switch {
		case mon.conns:
			if m.OpenConnections == nil {
				mon.failed.Inc()
				continue
			}
			used = float64(m.OpenConnections())
		default:
			used = heapBytes()
		}
		mon.pressure = math.Min(used/mon.max, 1)
		mon.gauge.Set(int64(math.Round(mon.pressure * 100)))
	}
	for _, a := range m.actions {
		fire := false
		for _, t := range a.triggers {
			if t.m.pressure >= t.threshold {
				fire = true
				break
			}
		}
		if fire != a.active {
			a.active = fire
			m.logger.Warn("overload action changed", "action", a.name, "active", fire)
		}
		if fire {
			a.gauge.Set(1)
			a.scale.Set(100)
		} else {
			a.gauge.Set(0)
			a.scale.Set(0)
		}
		if a.flag != nil {
			a.flag.Store(fire)
		} else if fire && time.Since(a.lastGC) >= shrinkInterval {
			a.lastGC = time.Now()
			debug.FreeOSMemory()
		}
	}
}
