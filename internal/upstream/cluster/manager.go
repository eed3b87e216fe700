package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
)

// Options configure a Manager.
type Options struct {
	Stats *stats.Store
	// Pools creates a host's connection pool when the host is created,
	// by the cluster's protocol (HTTP/1, HTTP/2, auto; the wire protocols
	// later); a protocol without a factory gives its hosts no pool.
	Pools map[Protocol]PoolFactory
	// NewPool, when set, is used for every protocol instead (tests).
	NewPool PoolFactory
	Logger  *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// XDS opens EDS watches (and SDS watches of upstream TLS contexts).
	// Nil means the bootstrap has no dynamic configuration: EDS clusters
	// are then config errors. Static EDS clusters subscribe in Start, so
	// a subscriber that needs the Manager itself (the xDS client dials
	// its management server through an envoy_grpc cluster) may forward
	// to a client built after NewManager.
	XDS xds.Subscriber

	// resolver overrides DNS for every cluster (tests).
	resolver resolver
}

type managerStats struct {
	added, modified, removed, updated *stats.Counter
	active, warming                   *stats.Gauge
}

// Manager owns every cluster: the bootstrap's static clusters and those
// CDS adds. Routes hold Refs; Get, Clusters and Ref.Load are lock-free.
type Manager struct {
	opts   Options
	st     managerStats
	active atomic.Pointer[activeSet]

	mu        sync.Mutex // config time only: CDS, warming, Ref creation
	refs      map[string]*Ref
	entries   map[string]*entry
	ctx       context.Context // nil until Start
	unstarted []*Cluster      // built before Start
	closed    bool

	cdsVersion    string
	cdsSeen       bool // the first CDS update (or its timeout) was applied
	cdsWaiting    map[*Cluster]struct{}
	cdsInitCh     chan struct{}
	cdsInitClosed bool

	staticPending int // static clusters not yet warm
	initCh        chan struct{}
	initClosed    bool

	startOnce sync.Once
	closeOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup // warm waiters
}

// entry is one cluster name's state: the cluster serving it and the one
// warming to replace it (either may be nil, not both).
type entry struct {
	static          bool
	active, warming *Cluster
}

// activeSet is the immutable published view of the active clusters.
type activeSet struct {
	byName map[string]*Cluster
	sorted []*Cluster
}

// NewManager decodes and validates every static cluster and builds the
// host sets. DNS resolution and EDS subscriptions wait for Start. An error
// names every cluster that failed, by its index ("clusters[1].name: ...");
// the manager returned with it holds the others and must still be closed.
func NewManager(protos []*clusterv3.Cluster, opts Options) (*Manager, error) {
	if opts.Stats == nil {
		opts.Stats = stats.NewStore()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Manager{
		opts:      opts,
		refs:      map[string]*Ref{},
		entries:   make(map[string]*entry, len(protos)),
		initCh:    make(chan struct{}),
		cdsInitCh: make(chan struct{}),
	}
	cm := opts.Stats.Scope("cluster_manager")
	m.st = managerStats{
		added:    cm.Counter("cluster_added"),
		modified: cm.Counter("cluster_modified"),
		removed:  cm.Counter("cluster_removed"),
		updated:  cm.Counter("cluster_updated"),
		active:   cm.Gauge("active_clusters", stats.NeverImport),
		warming:  cm.Gauge("warming_clusters", stats.NeverImport),
	}
	// Legate applies every host update as it comes; nothing is merged.
	cm.Counter("cluster_updated_via_merge")

	// Every cluster is built, so that one run reports every problem.
	var errs []error
	index := make(map[string]int, len(protos))
	for i, pc := range protos {
		if pc.GetName() == "" {
			errs = append(errs, fmt.Errorf("clusters[%d].name: must not be empty", i))
			continue
		}
		if j, dup := index[pc.GetName()]; dup {
			errs = append(errs, fmt.Errorf("clusters[%d].name: duplicate cluster name %q (also clusters[%d])", i, pc.GetName(), j))
			continue
		}
		index[pc.GetName()] = i
		c, err := m.build(pc, true, "")
		if err != nil {
			errs = append(errs, fmt.Errorf("clusters[%d]: %w", i, err))
			continue
		}
		m.entries[c.Name] = &entry{static: true, active: c}
		m.unstarted = append(m.unstarted, c)
		m.st.added.Inc()
		m.st.active.Inc()
		select {
		case <-c.init.Done():
		default:
			c.initPending = true
			m.staticPending++
		}
	}
	m.publishLocked()
	if m.staticPending == 0 {
		m.initClosed = true
		close(m.initCh)
	}
	if len(errs) > 0 {
		// The clusters that built stay, so that the caller can go on
		// checking what refers to them; it must Close the manager.
		return m, errors.Join(errs...)
	}
	return m, nil
}

// build makes a Cluster from pc. Nothing is visible until the caller
// publishes it; on error everything build opened is released.
func (m *Manager) build(pc *clusterv3.Cluster, static bool, version string) (*Cluster, error) {
	c := &Cluster{
		Name:        pc.GetName(),
		mgr:         m,
		pb:          pc,
		static:      static,
		version:     version,
		lastUpdated: m.opts.Now(),
		init:        xds.NewInit(),
	}
	deps := xds.Deps{Subscriber: m.opts.XDS, Init: c.init, Release: c.addRelease, Stats: m.opts.Stats}
	cfg, err := decode(pc, deps)
	if err != nil {
		c.stop()
		return nil, err
	}
	if cfg.typ == EDS && m.opts.XDS == nil {
		c.stop()
		return nil, fieldErr("eds_cluster_config.eds_config", "EDS needs dynamic configuration, and the bootstrap has none")
	}
	c.Settings, c.ObservabilityName, c.Type, c.LB, c.cfg = cfg.settings, cfg.statName, cfg.typ, cfg.lb, cfg
	c.Stats = newStats(m.opts.Stats.Scope("cluster").Scope(cfg.statName))
	for _, ep := range cfg.endpoints {
		t := &target{ep: ep, ready: func() {}}
		if ep.ip.IsValid() {
			// IP literals never hit DNS, whatever the cluster type.
			t.hosts = []*Host{c.newHost(ep, ep.ip)}
		} else {
			t.ready = c.init.Add()
		}
		c.targets = append(c.targets, t)
	}
	if cfg.typ == EDS {
		c.targets = []*target{{ready: func() {}}}
		c.edsReady = c.init.Add()
	}
	c.init.Seal()
	c.rebuild()
	return c, nil
}

// addRelease registers a cleanup to run when c is discarded.
func (c *Cluster) addRelease(f func()) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		f()
		return
	}
	c.releases = append(c.releases, f)
	c.mu.Unlock()
}

// subscribeEDS opens c's EDS watch.
func (m *Manager) subscribeEDS(c *Cluster) error {
	if c.Type != EDS {
		return nil
	}
	sc := m.opts.Stats.Scope("cluster").Scope(c.ObservabilityName)
	cancel, err := m.opts.XDS.Subscribe(xds.Watch{
		Source:  c.cfg.edsSource,
		TypeURL: xds.EndpointType,
		Name:    c.cfg.edsService,
		Stats:   &sc,
		Watcher: edsWatcher{c},
	})
	if err != nil {
		return fieldErr("eds_cluster_config.eds_config", "%v", err)
	}
	c.addRelease(cancel)
	return nil
}

// startCluster starts c's DNS loops and its warm waiter. Caller holds
// m.mu and m.ctx is set.
func (m *Manager) startCluster(c *Cluster) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	c.cancel = cancel
	res := m.resolverFor(c.cfg)
	for _, t := range c.targets {
		if c.Type == EDS || t.ep.ip.IsValid() {
			continue
		}
		c.loops.Add(1)
		go func() {
			defer c.loops.Done()
			c.resolveLoop(ctx, t, res)
		}()
	}
	// Every cluster gets a waiter, even one already warm: a static one
	// needs warmed's Initialized accounting, and a dynamic one may have
	// warmed after its commit looked (EDS and SDS deliver concurrently,
	// and before Start nothing else would promote it). warmed ignores a
	// cluster that is no longer warming.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case <-c.init.Done():
			m.warmed(c)
		case <-ctx.Done():
		}
	}()
}

// warmed runs once c's init targets are all ready.
func (m *Manager) warmed(c *Cluster) {
	m.mu.Lock()
	var old *Cluster
	if c.static {
		if !c.initPending {
			m.mu.Unlock()
			return
		}
		c.initPending = false
		m.staticPending--
		if m.staticPending == 0 && !m.initClosed {
			m.initClosed = true
			close(m.initCh)
		}
	} else if e := m.entries[c.Name]; e != nil && e.warming == c {
		old = m.promoteLocked(e, true)
	}
	m.mu.Unlock()
	if old != nil {
		old.stop()
	}
}

// promoteLocked makes e's warming cluster the active one and returns the
// cluster it replaced (to be stopped once m.mu is released), if any.
// publish republishes the active set; a CDS update promoting many clusters
// at once publishes once at its end instead (each publish copies the whole
// set, so publishing per cluster made a large first push quadratic).
func (m *Manager) promoteLocked(e *entry, publish bool) *Cluster {
	c, old := e.warming, e.active
	e.active, e.warming = c, nil
	m.st.warming.Dec()
	if old == nil {
		m.st.active.Inc()
	}
	m.refLocked(c.Name).Store(c)
	if publish {
		m.publishLocked()
	}
	m.cdsDoneLocked(c)
	m.opts.Logger.Info("cluster warmed and active", "cluster", c.Name, "version", c.version)
	return old
}

// publishLocked republishes the active set from the entries.
func (m *Manager) publishLocked() {
	a := &activeSet{byName: make(map[string]*Cluster, len(m.entries))}
	for name, e := range m.entries {
		if e.active != nil {
			a.byName[name] = e.active
			a.sorted = append(a.sorted, e.active)
		}
	}
	sort.Slice(a.sorted, func(i, j int) bool { return a.sorted[i].Name < a.sorted[j].Name })
	m.active.Store(a)
}

// stop discards c: DNS loops end, watches are cancelled and every host's
// pool closes (idle connections now, busy ones when their request ends).
// Requests that already picked one of its hosts complete.
func (c *Cluster) stop() {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		cancel, rel := c.cancel, c.releases
		c.releases = nil
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		c.loops.Wait()
		for _, f := range rel {
			f()
		}
		for _, h := range c.Hosts() {
			closePool(h)
		}
	})
}

// Get returns the active cluster called name, or nil. It is lock-free:
// cluster_header routes call it per request.
func (m *Manager) Get(name string) *Cluster { return m.active.Load().byName[name] }

// Clusters returns the active clusters, sorted by name. The slice is
// shared and must not be modified.
func (m *Manager) Clusters() []*Cluster { return m.active.Load().sorted }

// Ref returns the handle for name, creating it if needed. The same name
// always yields the same *Ref; it holds the active cluster of that name,
// or nil while there is none.
func (m *Manager) Ref(name string) *Ref {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refLocked(name)
}

func (m *Manager) refLocked(name string) *Ref {
	r := m.refs[name]
	if r == nil {
		r = NewRef(name)
		if e := m.entries[name]; e != nil {
			r.Store(e.active)
		}
		m.refs[name] = r
	}
	return r
}

// Has reports whether a cluster called name exists, active or warming
// (what validate_clusters checks).
func (m *Manager) Has(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.entries[name] != nil
}

// Initialized is closed once every static cluster has warmed: its first
// DNS resolution (successful or not) or first EDS update (or its
// initial_fetch_timeout). Configs without DNS or EDS are initialized at
// construction.
func (m *Manager) Initialized() <-chan struct{} { return m.initCh }

// CDSInitialized is closed when the first CDS update (or its
// initial_fetch_timeout, or its rejection) has been applied and the
// clusters it added have warmed or been discarded.
func (m *Manager) CDSInitialized() <-chan struct{} { return m.cdsInitCh }

// Start begins DNS resolution and the static clusters' EDS watches;
// everything runs until ctx ends or Close.
func (m *Manager) Start(ctx context.Context) {
	m.startOnce.Do(func() {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return
		}
		ctx, m.cancel = context.WithCancel(ctx)
		m.ctx = ctx
		pending := m.unstarted
		m.unstarted = nil
		m.mu.Unlock()

		// Subscribe outside m.mu: a subscriber may deliver at once.
		for _, c := range pending {
			if !c.static {
				continue
			}
			if err := m.subscribeEDS(c); err != nil {
				// The bootstrap named a source the client cannot serve;
				// the cluster stays empty rather than block start-up.
				m.opts.Logger.Error("EDS subscription failed", "cluster", c.Name, "error", err)
				c.edsReady()
			}
		}
		m.mu.Lock()
		for _, c := range pending {
			m.startCluster(c)
		}
		m.mu.Unlock()
	})
}

func (m *Manager) resolverFor(cfg *config) resolver {
	if m.opts.resolver != nil {
		return m.opts.resolver
	}
	if len(cfg.resolvers) > 0 {
		return newDNSResolver(cfg.resolvers)
	}
	return systemResolver{}
}

// Close stops resolution and watches and closes every host's pool.
func (m *Manager) Close() {
	m.closeOnce.Do(func() {
		m.startOnce.Do(func() {}) // a later Start does nothing
		m.mu.Lock()
		m.closed = true
		if m.cancel != nil {
			m.cancel()
		}
		var all []*Cluster
		for _, e := range m.entries {
			for _, c := range []*Cluster{e.active, e.warming} {
				if c != nil {
					all = append(all, c)
				}
			}
		}
		m.mu.Unlock()
		for _, c := range all {
			c.stop()
		}
		m.wg.Wait()
	})
}

// CDS returns the watcher for the wildcard CDS subscription.
func (m *Manager) CDS() xds.Watcher { return xds.WatcherFunc(m.cdsUpdate) }

// Validate checks a Cluster the way CDS will build it, without opening
// anything (SDS references are accepted unchecked), so a bad resource can
// be refused before anything changes.
func Validate(pb *clusterv3.Cluster) error {
	if pb.GetName() == "" {
		return fieldErr("name", "must not be empty")
	}
	_, err := decode(pb, xds.Deps{Subscriber: nopSubscriber{}})
	return err
}

type nopSubscriber struct{}

func (nopSubscriber) Subscribe(xds.Watch) (func(), error) { return func() {}, nil }

func (m *Manager) cdsUpdate(u *xds.Update) error {
	if u.InitialFetchTimeout {
		m.mu.Lock()
		m.cdsFirstLocked()
		m.mu.Unlock()
		return nil
	}
	err := m.applyCDS(u)
	if err != nil {
		// Envoy finishes CDS initialization on a rejected first update
		// too: start-up goes on with what is there.
		m.mu.Lock()
		m.cdsFirstLocked()
		m.mu.Unlock()
	}
	return err
}

// cdsFirstLocked records that the first CDS update has been handled.
func (m *Manager) cdsFirstLocked() {
	m.cdsSeen = true
	if len(m.cdsWaiting) == 0 && !m.cdsInitClosed {
		m.cdsInitClosed = true
		close(m.cdsInitCh)
	}
}

// cdsDoneLocked drops c from what CDS initialization waits for.
func (m *Manager) cdsDoneLocked(c *Cluster) {
	if _, ok := m.cdsWaiting[c]; !ok {
		return
	}
	delete(m.cdsWaiting, c)
	if m.cdsSeen {
		m.cdsFirstLocked()
	}
}

type cdsBuild struct {
	pb      *clusterv3.Cluster
	version string
}

// applyCDS validates every resource of u, builds the new and changed
// clusters, and only then commits: an error leaves the manager as it was.
func (m *Manager) applyCDS(u *xds.Update) error {
	var errs []error
	seen := make(map[string]bool, len(u.Resources))
	pbs := make([]*clusterv3.Cluster, len(u.Resources))
	for i, r := range u.Resources {
		pc, ok := r.Message.(*clusterv3.Cluster)
		if !ok {
			errs = append(errs, fmt.Errorf("resources[%d]: %T is not a Cluster", i, r.Message))
			continue
		}
		name := pc.GetName()
		switch {
		case name == "":
			errs = append(errs, fmt.Errorf("resources[%d]: name: must not be empty", i))
			continue
		case r.Name != "" && r.Name != name:
			errs = append(errs, fmt.Errorf("cluster %q: name: does not match the resource name %q", name, r.Name))
			continue
		case seen[name]:
			errs = append(errs, fmt.Errorf("cluster %q: duplicate cluster name in the update", name))
			continue
		}
		seen[name] = true
		if err := Validate(pc); err != nil {
			errs = append(errs, fmt.Errorf("cluster %q: %w", name, err))
			continue
		}
		pbs[i] = pc
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	// Plan against the current state. CDS updates never overlap, and
	// warming completion only moves warming clusters to active, so the
	// plan stays valid while building outside the lock.
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	var builds []cdsBuild
	var removals []string
	for i, pc := range pbs {
		e := m.entries[pc.GetName()]
		switch {
		case e != nil && e.static:
			m.opts.Logger.Warn("CDS resource names a static cluster; ignored", "cluster", pc.GetName())
			continue
		case e != nil && e.warming != nil && proto.Equal(e.warming.pb, pc):
			continue
		case e != nil && e.warming == nil && proto.Equal(e.active.pb, pc):
			continue
		}
		// Back to what is serving while a replacement warms is built
		// anew, as Envoy does: the warming one may go live before this
		// commits, so merely dropping it could leave it serving.
		v := u.Resources[i].Version
		if v == "" {
			v = u.Version
		}
		builds = append(builds, cdsBuild{pb: pc, version: v})
	}
	if u.Full {
		for name, e := range m.entries {
			if !e.static && !seen[name] {
				removals = append(removals, name)
			}
		}
	}
	for _, name := range u.Removed {
		e := m.entries[name]
		switch {
		case e == nil || seen[name]:
		case e.static:
			m.opts.Logger.Warn("CDS removal names a static cluster; ignored", "cluster", name)
		default:
			removals = append(removals, name)
		}
	}
	m.mu.Unlock()

	// Build outside the lock: watches opened here may deliver at once.
	built := make([]*Cluster, 0, len(builds))
	for _, b := range builds {
		c, err := m.build(b.pb, false, b.version)
		if err == nil {
			if err = m.subscribeEDS(c); err != nil {
				c.stop()
			}
		}
		if err != nil {
			for _, o := range built {
				o.stop()
			}
			return fmt.Errorf("cluster %q: %w", b.pb.GetName(), err)
		}
		built = append(built, c)
	}

	m.mu.Lock()
	var stops []*Cluster
	if m.closed {
		m.mu.Unlock()
		for _, c := range built {
			c.stop()
		}
		return nil
	}
	if !m.cdsSeen && m.cdsWaiting == nil {
		m.cdsWaiting = map[*Cluster]struct{}{}
	}
	for _, c := range built {
		e := m.entries[c.Name]
		if e == nil {
			e = &entry{}
			m.entries[c.Name] = e
			m.st.added.Inc()
			m.opts.Logger.Info("cluster added", "cluster", c.Name, "version", c.version)
		} else {
			m.st.modified.Inc()
			m.opts.Logger.Info("cluster modified", "cluster", c.Name, "version", c.version)
		}
		if e.warming != nil {
			stops = append(stops, e.warming)
			m.cdsDoneLocked(e.warming)
			m.st.warming.Dec()
		}
		e.warming = c
		m.st.warming.Inc()
		if !m.cdsSeen {
			m.cdsWaiting[c] = struct{}{}
		}
		select {
		case <-c.init.Done():
			if old := m.promoteLocked(e, false); old != nil {
				stops = append(stops, old)
			}
		default:
		}
		if m.ctx != nil {
			m.startCluster(c)
		} else {
			m.unstarted = append(m.unstarted, c)
		}
	}
	for _, name := range removals {
		e := m.entries[name]
		if e == nil {
			continue
		}
		if e.warming != nil {
			stops = append(stops, e.warming)
			m.cdsDoneLocked(e.warming)
			m.st.warming.Dec()
		}
		if e.active != nil {
			stops = append(stops, e.active)
			m.st.active.Dec()
		}
		delete(m.entries, name)
		if r := m.refs[name]; r != nil {
			r.Store(nil)
		}
		m.st.removed.Inc()
		m.opts.Logger.Info("cluster removed", "cluster", name)
	}
	m.publishLocked()
	if u.Version != "" || len(u.Resources) > 0 || len(u.Removed) > 0 {
		m.cdsVersion = u.Version
	}
	m.cdsFirstLocked()
	m.mu.Unlock()
	for _, c := range stops {
		c.stop()
	}
	return nil
}
