package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/lb"
)

// Cluster is one configured cluster. Name, Settings and Stats are fixed;
// hosts and the picker live in an atomically published snapshot.
type Cluster struct {
	Name     string
	Settings Settings
	Stats    *Stats
	// ObservabilityName is alt_stat_name when set, else Name; it names the
	// stats scope.
	ObservabilityName string
	Type              DiscoveryType
	LB                lb.Config

	cfg  *config
	snap atomic.Pointer[snapshot]
	mgr  *Manager

	mu      sync.Mutex // serialises host-set rebuilds (never taken by Pick)
	targets []*target
}

// snapshot is an immutable host set with its picker.
type snapshot struct {
	hosts  []*Host
	picker lb.Picker
}

// target is one lb_endpoint and the hosts it currently stands for: one
// fixed host for an IP literal, the resolved addresses for a STRICT_DNS
// name, the first resolved address for LOGICAL_DNS.
type target struct {
	ep    endpoint
	hosts []*Host
}

// PickContext carries what a load balancer may use to choose.
type PickContext struct {
	// Exclude, when non-nil, returns true for hosts to avoid if another is
	// available (retry_host_predicate previous_hosts).
	Exclude func(*Host) bool
	// MaxAttempts is the route's host_selection_retry_max_attempts: how
	// many times selection is retried when Exclude rejects a host. As in
	// Envoy, 0 means one selection only, and when every try is rejected
	// the last host picked is used.
	MaxAttempts int
}

// Pick chooses a host; nil means no healthy upstream.
func (c *Cluster) Pick(pc *PickContext) *Host {
	s := c.snap.Load()
	if s == nil || len(s.hosts) == 0 {
		return nil
	}
	h := s.hosts[s.picker.Pick()]
	if pc == nil || pc.Exclude == nil {
		return h
	}
	for range pc.MaxAttempts {
		if !pc.Exclude(h) {
			return h
		}
		h = s.hosts[s.picker.Pick()]
	}
	return h
}

// Hosts returns the current hosts. The slice is shared and must not be
// modified.
func (c *Cluster) Hosts() []*Host {
	if s := c.snap.Load(); s != nil {
		return s.hosts
	}
	return nil
}

// Options configure a Manager.
type Options struct {
	Stats *stats.Store
	// NewPool creates a host's connection pool when the host is created;
	// nil means hosts have no pool (tests).
	NewPool func(*Cluster, *Host) HostPool
	Logger  *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	// resolver overrides DNS for every cluster (tests).
	resolver resolver
}

// Manager owns every cluster.
type Manager struct {
	opts     Options
	clusters []*Cluster // sorted by name
	byName   map[string]*Cluster

	pending  atomic.Int64 // DNS targets still without a first answer
	initOnce sync.Once
	initCh   chan struct{}

	startOnce sync.Once
	closeOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// NewManager decodes and validates every cluster and builds the static
// host sets. DNS resolution waits for Start.
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
	m := &Manager{opts: opts, byName: make(map[string]*Cluster, len(protos)), initCh: make(chan struct{})}
	cfgs := make([]*config, 0, len(protos))
	for i, pc := range protos {
		if pc.GetName() == "" {
			return nil, fmt.Errorf("clusters[%d]: name: must not be empty", i)
		}
		if _, dup := m.byName[pc.GetName()]; dup {
			return nil, fmt.Errorf("cluster %q: duplicate cluster name", pc.GetName())
		}
		cfg, err := decode(pc)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", pc.GetName(), err)
		}
		m.byName[pc.GetName()] = nil
		cfgs = append(cfgs, cfg)
	}

	cm := opts.Stats.Scope("cluster_manager")
	added := cm.Counter("cluster_added")
	active := cm.Gauge("active_clusters", stats.NeverImport)
	cm.Gauge("warming_clusters", stats.NeverImport)
	cm.Counter("cluster_modified")
	cm.Counter("cluster_removed")

	for _, cfg := range cfgs {
		c := &Cluster{
			Name:              cfg.name,
			Settings:          cfg.settings,
			Stats:             newStats(opts.Stats.Scope("cluster").Scope(cfg.statName)),
			ObservabilityName: cfg.statName,
			Type:              cfg.typ,
			LB:                cfg.lb,
			cfg:               cfg,
			mgr:               m,
		}
		for _, ep := range cfg.endpoints {
			t := &target{ep: ep}
			if ep.ip.IsValid() {
				// IP literals never hit DNS, whatever the cluster type.
				t.hosts = []*Host{c.newHost(ep, ep.ip)}
			} else {
				m.pending.Add(1)
			}
			c.targets = append(c.targets, t)
		}
		c.rebuild()
		m.clusters = append(m.clusters, c)
		m.byName[c.Name] = c
		added.Inc()
		active.Inc()
	}
	sort.Slice(m.clusters, func(i, j int) bool { return m.clusters[i].Name < m.clusters[j].Name })
	if m.pending.Load() == 0 {
		m.markInitialized()
	}
	return m, nil
}

// Get returns the cluster called name, or nil. Config-time callers compile
// references to *Cluster; cluster_header routes call it per request.
func (m *Manager) Get(name string) *Cluster { return m.byName[name] }

// Clusters returns every cluster, sorted by name.
func (m *Manager) Clusters() []*Cluster { return m.clusters }

// Initialized is closed once every cluster has finished its first
// resolution, successful or not (Envoy's cluster manager initialization).
// Static-only configs are initialized at construction.
func (m *Manager) Initialized() <-chan struct{} { return m.initCh }

func (m *Manager) markInitialized() { m.initOnce.Do(func() { close(m.initCh) }) }

// Start begins DNS resolution; loops run until ctx ends or Close.
func (m *Manager) Start(ctx context.Context) {
	m.startOnce.Do(func() {
		ctx, m.cancel = context.WithCancel(ctx)
		for _, c := range m.clusters {
			res := m.resolverFor(c.cfg)
			for _, t := range c.targets {
				if t.ep.ip.IsValid() {
					continue
				}
				m.wg.Add(1)
				go func() {
					defer m.wg.Done()
					c.resolveLoop(ctx, t, res)
				}()
			}
		}
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

// Close stops resolution and closes every host's pool.
func (m *Manager) Close() {
	m.closeOnce.Do(func() {
		m.startOnce.Do(func() {}) // a later Start does nothing
		if m.cancel != nil {
			m.cancel()
		}
		m.wg.Wait()
		for _, c := range m.clusters {
			c.mu.Lock()
			for _, h := range c.Hosts() {
				closePool(h)
			}
			c.mu.Unlock()
		}
	})
}

func closePool(h *Host) {
	if h.pool != nil {
		_ = h.pool.Close()
	}
}

func (c *Cluster) newHost(ep endpoint, ip netip.Addr) *Host {
	ap := netip.AddrPortFrom(ip, ep.port)
	h := &Host{Address: ap.String(), AddrPort: ap, Hostname: ep.hostname, Weight: ep.weight}
	if h.Hostname == "" && !ep.ip.IsValid() {
		// Envoy names DNS-discovered hosts after the name they came from
		// unless the endpoint sets hostname.
		h.Hostname = ep.name
	}
	if nf := c.mgr.opts.NewPool; nf != nil {
		h.pool = nf(c, h)
	}
	return h
}

// rebuild publishes a new snapshot from the targets. Caller holds c.mu or
// owns c exclusively.
func (c *Cluster) rebuild() {
	var hosts []*Host
	for _, t := range c.targets {
		hosts = append(hosts, t.hosts...)
	}
	weights := make([]uint32, len(hosts))
	for i, h := range hosts {
		weights[i] = h.Weight
	}
	load := func(i int) int64 { return hosts[i].ActiveRequests.Load() }
	c.snap.Store(&snapshot{hosts: hosts, picker: lb.New(c.LB, weights, load)})
	c.Stats.MembershipTotal.Set(int64(len(hosts)))
	// No health checking yet: every host is healthy.
	c.Stats.MembershipHealthy.Set(int64(len(hosts)))
}

// update applies a successful resolution of t. It reports whether the
// host set changed; hosts whose address stays keep their identity (and
// pool), removed hosts get their pool closed.
func (c *Cluster) update(t *target, addrs []netip.Addr) bool {
	c.mu.Lock()
	var removed []*Host
	changed := false
	if c.Type == LogicalDNS {
		// One logical host on the first address. An empty answer keeps the
		// current address, as Envoy does. A new address gets a new Host so
		// that new connections dial it; connections already open to the
		// old address finish their requests and close.
		if len(addrs) > 0 {
			ap := netip.AddrPortFrom(addrs[0], t.ep.port)
			if len(t.hosts) == 0 || t.hosts[0].AddrPort != ap {
				removed = t.hosts
				t.hosts = []*Host{c.newHost(t.ep, addrs[0])}
				changed = true
			}
		}
	} else {
		old := t.hosts
		next := make([]*Host, 0, len(addrs))
		for _, a := range addrs {
			ap := netip.AddrPortFrom(a, t.ep.port)
			if slices.ContainsFunc(next, func(h *Host) bool { return h.AddrPort == ap }) {
				continue // duplicate record
			}
			i := slices.IndexFunc(old, func(h *Host) bool { return h.AddrPort == ap })
			if i >= 0 {
				next = append(next, old[i])
			} else {
				next = append(next, c.newHost(t.ep, a))
				changed = true
			}
		}
		for _, h := range old {
			if !slices.Contains(next, h) {
				removed = append(removed, h)
				changed = true
			}
		}
		if changed {
			t.hosts = next
		}
	}
	if changed {
		c.rebuild()
		c.Stats.MembershipChange.Inc()
	}
	c.mu.Unlock()
	// Requests that loaded the previous snapshot may still be using these
	// hosts; pools finish busy connections before closing them.
	for _, h := range removed {
		closePool(h)
	}
	return changed
}

// resolveLoop resolves t now and then every dns_refresh_rate (or the
// record TTL with respect_dns_ttl) until ctx ends.
func (c *Cluster) resolveLoop(ctx context.Context, t *target, res resolver) {
	m := c.mgr
	first := true
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if first {
				m.targetDone()
			}
			return
		case <-timer.C:
		}
		next := c.resolveOnce(ctx, t, res)
		if first {
			first = false
			m.targetDone()
		}
		timer.Reset(next)
	}
}

func (m *Manager) targetDone() {
	if m.pending.Add(-1) == 0 {
		m.markInitialized()
	}
}

func (c *Cluster) resolveOnce(ctx context.Context, t *target, res resolver) time.Duration {
	log := c.mgr.opts.Logger
	c.Stats.UpdateAttempt.Inc()
	start := c.mgr.opts.Now()
	addrs, ttl, err := res.resolve(ctx, t.ep.name, c.cfg.family)
	if err != nil {
		if ctx.Err() != nil {
			return c.cfg.dnsRefresh
		}
		// Keep serving the last good hosts.
		c.Stats.UpdateFailure.Inc()
		log.Warn("dns resolution failed", "cluster", c.Name, "name", t.ep.name, "error", err)
		return c.cfg.dnsRefresh
	}
	c.Stats.UpdateSuccess.Inc()
	if !c.update(t, addrs) {
		c.Stats.UpdateNoRebuild.Inc()
	} else {
		log.Debug("dns hosts updated", "cluster", c.Name, "name", t.ep.name, "addresses", addrs,
			"took", c.mgr.opts.Now().Sub(start))
	}
	if c.cfg.respectTTL && ttl > 0 {
		return max(ttl, minTTLRefresh)
	}
	return c.cfg.dnsRefresh
}
