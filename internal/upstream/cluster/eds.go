package cluster

import (
	"fmt"
	"net/netip"
	"reflect"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/legate-proxy/legate/internal/xds"
)

// edsWatcher applies one EDS cluster's ClusterLoadAssignments.
type edsWatcher struct{ c *Cluster }

// Update applies the assignment named by the cluster's service name. An
// update without it (a delta removal, an empty response) keeps the hosts,
// as Envoy does (it counts update_empty). Every update ends warming, a
// refused one too: Envoy lets start-up go on with a bad config.
func (w edsWatcher) Update(u *xds.Update) error {
	c := w.c
	defer c.edsReady()
	if u.InitialFetchTimeout {
		c.mgr.opts.Logger.Warn("EDS initial fetch timed out; cluster goes live without endpoints",
			"cluster", c.Name, "service", c.cfg.edsService)
		return nil
	}
	var cla *endpointv3.ClusterLoadAssignment
	version := u.Version
	for i, r := range u.Resources {
		m, ok := r.Message.(*endpointv3.ClusterLoadAssignment)
		if !ok {
			return fmt.Errorf("resources[%d]: %T is not a ClusterLoadAssignment", i, r.Message)
		}
		name := r.Name
		if name == "" {
			name = m.GetClusterName()
		}
		if name == c.cfg.edsService {
			cla = m
			if r.Version != "" {
				version = r.Version
			}
		}
	}
	if cla == nil {
		return nil
	}
	eps, err := decodeCLA(cla)
	if err != nil {
		return fmt.Errorf("cluster_load_assignment %q: %w", c.cfg.edsService, err)
	}
	c.applyEndpoints(eps, cla, version)
	return nil
}

// decodeCLA turns an assignment into endpoints. Only priority 0 is
// supported. Locality load_balancing_weight is ignored, as Envoy ignores
// it unless the cluster sets locality_weighted_lb_config (which Legate
// does not accept). Addresses must be IP literals and unique: a host is
// identified by its address.
func decodeCLA(cla *endpointv3.ClusterLoadAssignment) ([]endpoint, error) {
	if len(cla.GetPolicy().GetDropOverloads()) > 0 {
		return nil, fieldErr("policy.drop_overloads", "is not supported")
	}
	if len(cla.GetNamedEndpoints()) > 0 {
		return nil, fieldErr("named_endpoints", "is not supported")
	}
	var out []endpoint
	// The path is formatted only for an error: a large assignment is
	// mostly valid endpoints.
	type pos struct{ i, j int }
	path := func(p pos) string { return fmt.Sprintf("endpoints[%d].lb_endpoints[%d]", p.i, p.j) }
	seen := map[netip.AddrPort]pos{}
	for i, lle := range cla.GetEndpoints() {
		if lle.GetPriority() != 0 {
			return nil, fieldErr(fmt.Sprintf("endpoints[%d].priority", i), "only priority 0 is supported")
		}
		for j, le := range lle.GetLbEndpoints() {
			at := pos{i, j}
			ep := le.GetEndpoint()
			if ep == nil {
				return nil, fieldErr(path(at)+".endpoint", "is required (endpoint_name is not supported)")
			}
			sa := ep.GetAddress().GetSocketAddress()
			if sa == nil {
				return nil, fieldErr(path(at)+".endpoint.address", "only socket_address is supported")
			}
			if sa.GetNamedPort() != "" || sa.GetResolverName() != "" {
				return nil, fieldErr(path(at)+".endpoint.address.socket_address", "named_port and resolver_name are not supported")
			}
			if p := sa.GetPortValue(); p == 0 || p > 65535 {
				return nil, fieldErr(path(at)+".endpoint.address.socket_address.port_value", "%d out of range 1-65535", p)
			}
			ip, err := netip.ParseAddr(sa.GetAddress())
			if err != nil {
				return nil, fieldErr(path(at)+".endpoint.address.socket_address.address",
					"%q is not an IP address (EDS endpoints must be IP literals)", sa.GetAddress())
			}
			e := endpoint{
				name: sa.GetAddress(), ip: ip.Unmap(), port: uint16(sa.GetPortValue()),
				weight: 1, hostname: ep.GetHostname(), health: le.GetHealthStatus(),
			}
			if w := le.GetLoadBalancingWeight(); w != nil {
				if w.GetValue() == 0 {
					return nil, fieldErr(path(at)+".load_balancing_weight", "must be at least 1")
				}
				e.weight = w.GetValue()
			}
			if e.hc, err = decodeHealthCheckConfig(path(at)+".endpoint.health_check_config", ep.GetHealthCheckConfig()); err != nil {
				return nil, err
			}
			ap := netip.AddrPortFrom(e.ip, e.port)
			if prev, dup := seen[ap]; dup {
				return nil, fieldErr(path(at)+".endpoint.address", "%s is also %s", ap, path(prev))
			}
			seen[ap] = at
			out = append(out, e)
		}
	}
	return out, nil
}

// applyEndpoints replaces the host set. A host whose address, weight and
// hostname stay is kept, with its pool and stats; a health-only change
// updates it in place. Hosts that leave get their pools closed once the
// new set is published.
func (c *Cluster) applyEndpoints(eps []endpoint, cla *endpointv3.ClusterLoadAssignment, version string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	t := c.targets[0]
	old := make(map[netip.AddrPort]*Host, len(t.hosts))
	for _, h := range t.hosts {
		old[h.AddrPort] = h
	}
	next := make([]*Host, 0, len(eps))
	membership, rebuild := len(eps) != len(t.hosts), false
	for _, e := range eps {
		ap := netip.AddrPortFrom(e.ip, e.port)
		h := old[ap]
		if h != nil && h.Weight == e.weight && h.Hostname == e.hostname && reflect.DeepEqual(h.HealthCheck, e.hc) {
			delete(old, ap)
			if h.HealthStatus() != e.health {
				// Only a flag change alters the picks (HEALTHY ↔ UNKNOWN
				// does not), but the status shows in admin either way.
				rebuild = h.setEDSHealth(e.health) || rebuild
			}
		} else {
			h = c.newHost(e, e.ip)
			membership = true
		}
		next = append(next, h)
	}
	removed := make([]*Host, 0, len(old))
	for _, h := range t.hosts {
		if old[h.AddrPort] == h {
			removed = append(removed, h)
			membership = true
		}
	}
	if membership || rebuild {
		t.hosts = next
		c.rebuild()
		c.mgr.st.updated.Inc()
	} else {
		c.Stats.UpdateNoRebuild.Inc()
	}
	if membership {
		c.Stats.MembershipChange.Inc()
	}
	c.cla, c.claVer, c.claAt = cla, version, c.mgr.opts.Now()
	c.mu.Unlock()
	for _, h := range removed {
		closePool(h)
	}
}

// healthStatus is what the admin endpoints report: Envoy shows a host
// with no EDS status as HEALTHY.
func healthStatus(h *Host) corev3.HealthStatus {
	if s := h.HealthStatus(); s != corev3.HealthStatus_UNKNOWN {
		return s
	}
	return corev3.HealthStatus_HEALTHY
}
