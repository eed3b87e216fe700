package cluster

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/legate-proxy/legate/internal/upstream/lb"
	"github.com/legate-proxy/legate/internal/xds"
)

// Cluster is one configured cluster. Name, Settings and Stats are fixed;
// hosts and the picker live in an atomically published snapshot. A CDS
// update that changes a cluster builds a new Cluster under the same name
// (and the same Stats) and swaps it in behind the name's Ref.
type Cluster struct {
	Name     string
	Settings Settings
	Stats    *Stats
	// ObservabilityName is alt_stat_name when set, else Name; it names the
	// stats scope.
	ObservabilityName string
	Type              DiscoveryType
	LB                lb.Config

	cfg      *config
	snap     atomic.Pointer[snapshot]
	mgr      *Manager
	outcomes outcomes

	// Config-time state; never touched by Pick.
	pb          *clusterv3.Cluster
	static      bool // from the bootstrap, not CDS
	version     string
	lastUpdated time.Time
	// init is what the cluster waits for before it goes live: the first
	// answer of each DNS target, the first EDS update, SDS secrets.
	init     *xds.Init
	edsReady func()
	// initPending: a static cluster Initialized waits for (under m.mu).
	initPending bool
	cancel      context.CancelFunc // stops DNS loops and the warm waiter
	loops       sync.WaitGroup
	stopOnce    sync.Once

	mu       sync.Mutex // serialises host-set rebuilds (never taken by Pick)
	targets  []*target
	releases []func() // watches (EDS, SDS) to cancel when discarded
	closed   bool     // discarded: no more host changes
	cla      *endpointv3.ClusterLoadAssignment
	claVer   string
	claAt    time.Time
}

// snapshot is an immutable host set with its picker.
type snapshot struct {
	hosts []*Host // every host, for admin and membership
	// picks are the hosts the picker indexes: the healthy ones, or every
	// host in panic mode (fewer than half healthy, Envoy's default
	// healthy_panic_threshold).
	picks  []*Host
	panic  bool
	picker lb.Picker
}

// target is one lb_endpoint and the hosts it currently stands for: one
// fixed host for an IP literal, the resolved addresses for a STRICT_DNS
// name, the first resolved address for LOGICAL_DNS.
type target struct {
	ep    endpoint
	hosts []*Host
	// ready marks the first resolution done (cluster warming).
	ready func()
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
	// Hash is the request's hash from the route's hash_policy, when
	// HasHash; RING_HASH and MAGLEV place the request by it.
	Hash    uint64
	HasHash bool
}

// Pick chooses a host; nil means no healthy upstream.
func (c *Cluster) Pick(pc *PickContext) *Host {
	s := c.snap.Load()
	if s == nil || len(s.picks) == 0 {
		return nil
	}
	if s.panic {
		c.Stats.LbHealthyPanic.Inc()
	}
	var lc lb.Context
	if pc != nil {
		lc.Hash, lc.HasHash = pc.Hash, pc.HasHash
	}
	h := s.picks[s.picker.Pick(lc)]
	if pc == nil || pc.Exclude == nil {
		return h
	}
	for range pc.MaxAttempts {
		if !pc.Exclude(h) {
			return h
		}
		lc.Attempt++
		h = s.picks[s.picker.Pick(lc)]
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

func closePool(h *Host) {
	if h.pool != nil {
		_ = h.pool.Close()
	}
}

func (c *Cluster) newHost(ep endpoint, ip netip.Addr) *Host {
	ap := netip.AddrPortFrom(ip, ep.port)
	h := &Host{Address: ap.String(), AddrPort: ap, Hostname: ep.hostname, Weight: ep.weight, HealthCheck: ep.hc}
	h.setEDSHealth(ep.health)
	if h.Hostname == "" && !ep.ip.IsValid() {
		// Envoy names DNS-discovered hosts after the name they came from
		// unless the endpoint sets hostname.
		h.Hostname = ep.name
	}
	if nf := c.mgr.opts.NewPool; nf != nil {
		h.pool = nf(c, h)
	} else if nf := c.mgr.opts.Pools[c.Settings.Protocol]; nf != nil {
		h.pool = nf(c, h)
	}
	return h
}

// rebuild publishes a new snapshot from the targets. Caller holds c.mu or
// owns c exclusively.
func (c *Cluster) rebuild() {
	var hosts, healthy []*Host
	for _, t := range c.targets {
		hosts = append(hosts, t.hosts...)
	}
	for _, h := range hosts {
		if h.Healthy() {
			healthy = append(healthy, h)
		}
	}
	picks, panicMode := healthy, false
	if len(healthy)*2 < len(hosts) {
		// Envoy's healthy_panic_threshold (50%): below it, balance over
		// every host rather than overload the few healthy ones.
		picks, panicMode = hosts, true
	}
	weights := make([]uint32, len(picks))
	var keys []string
	hashed := c.LB.Policy == lb.RingHash || c.LB.Policy == lb.Maglev
	if hashed {
		keys = make([]string, len(picks))
	}
	for i, h := range picks {
		weights[i] = h.Weight
		if hashed {
			keys[i] = h.Address
		}
	}
	load := func(i int) int64 { return picks[i].ActiveRequests.Load() }
	c.snap.Store(&snapshot{hosts: hosts, picks: picks, panic: panicMode, picker: lb.New(c.LB, weights, keys, load)})
	c.Stats.MembershipTotal.Set(int64(len(hosts)))
	c.Stats.MembershipHealthy.Set(int64(len(healthy)))
}

// update applies a successful resolution of t. It reports whether the
// host set changed; hosts whose address stays keep their identity (and
// pool), removed hosts get their pool closed.
func (c *Cluster) update(t *target, addrs []netip.Addr) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
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
		c.mgr.st.updated.Inc()
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
// record TTL with respect_dns_ttl) until ctx ends. The first answer,
// successful or not, counts as the target's warm-up.
func (c *Cluster) resolveLoop(ctx context.Context, t *target, res resolver) {
	defer t.ready()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		next := c.resolveOnce(ctx, t, res)
		t.ready()
		timer.Reset(next)
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
