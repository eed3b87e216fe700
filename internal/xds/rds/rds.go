// Package rds provides route configurations discovered over RDS to HTTP
// connection managers: one provider per (route_config_name, config source),
// shared by every connection manager that names it, publishing compiled
// route tables through a routetable.TableRef.
package rds

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/legate-proxy/legate/internal/routetable"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
)

// Manager owns the RDS providers and the list of inline route
// configurations, for /config_dump.
type Manager struct {
	sub      xds.Subscriber
	stats    *stats.Store
	clusters routetable.ClusterSource
	logger   *slog.Logger
	// Runtime is passed to the route tables (match.runtime_fraction);
	// set before the first subscription.
	Runtime *runtime.Snapshot

	mu        sync.Mutex
	providers map[providerKey]*provider
	static    map[*staticEntry]struct{}
}

// providerKey identifies a shared provider. suppress is part of it because
// the router filter's suppress_envoy_headers is compiled into the table.
type providerKey struct {
	name     string
	source   string // deterministic encoding of the ConfigSource
	suppress bool
}

type staticEntry struct {
	rc      *routev3.RouteConfiguration
	updated time.Time
}

// NewManager returns a Manager subscribing through sub. clusters resolves
// cluster names in the tables it compiles.
func NewManager(sub xds.Subscriber, st *stats.Store, clusters routetable.ClusterSource, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		sub: sub, stats: st, clusters: clusters, logger: logger,
		providers: map[providerKey]*provider{},
		static:    map[*staticEntry]struct{}{},
	}
}

// AddStatic lists an inline route_config in the config dump until remove
// is called (when its listener config is discarded).
func (m *Manager) AddStatic(rc *routev3.RouteConfiguration) (remove func()) {
	if m == nil {
		return func() {}
	}
	e := &staticEntry{rc: rc, updated: time.Now()}
	m.mu.Lock()
	m.static[e] = struct{}{}
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.static, e)
			m.mu.Unlock()
		})
	}
}

// Subscribe returns the table reference for an HCM's rds settings. The
// provider is shared with every other HCM naming the same route
// configuration and source; d.Release drops this reference (the watch is
// cancelled with the last one), and d.Init waits for the provider's first
// update (or its initial_fetch_timeout) unless it has already had one.
// statPrefix is the HCM's stat_prefix; the subscription's stats go to
// "http.<statPrefix>.rds.<route_config_name>." of whichever HCM created it,
// as in Envoy.
func (m *Manager) Subscribe(r *hcmv3.Rds, statPrefix string, suppressEnvoyHeaders bool, d xds.Deps) (*routetable.TableRef, error) {
	name := r.GetRouteConfigName()
	if name == "" {
		return nil, errors.New("rds.route_config_name: must not be empty")
	}
	if r.GetConfigSource() == nil {
		return nil, errors.New("rds.config_source: is required")
	}
	if m == nil || m.sub == nil {
		return nil, errors.New("rds: dynamic route configuration needs dynamic_resources in the bootstrap")
	}
	src, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.GetConfigSource())
	if err != nil {
		return nil, fmt.Errorf("rds.config_source: %w", err)
	}
	key := providerKey{name: name, source: string(src), suppress: suppressEnvoyHeaders}

	m.mu.Lock()
	p := m.providers[key]
	if p == nil {
		p = &provider{m: m, key: key, ref: &routetable.TableRef{}, suppress: suppressEnvoyHeaders}
		sc := m.stats.Scope("http").Scope(statPrefix).Scope("rds").Scope(name)
		// Subscribe may deliver a cached resource at once; the provider
		// takes only its own lock then, never m.mu.
		cancel, err := m.sub.Subscribe(xds.Watch{
			Source: r.GetConfigSource(), TypeURL: xds.RouteType, Name: name, Stats: &sc,
			Watcher: xds.WatcherFunc(p.update),
		})
		if err != nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("rds.config_source: %w", err)
		}
		p.cancel = cancel
		m.providers[key] = p
	}
	p.refs++
	m.mu.Unlock()

	p.mu.Lock()
	if !p.initialized {
		p.waiting = append(p.waiting, d.Init.Add())
	}
	p.mu.Unlock()

	var once sync.Once
	d.OnRelease(func() { once.Do(p.release) })
	return p.ref, nil
}

// ConfigDump lists inline route configurations as static and those
// received over RDS as dynamic, sorted by name.
func (m *Manager) ConfigDump() *adminv3.RoutesConfigDump {
	out := &adminv3.RoutesConfigDump{}
	if m == nil {
		return out
	}
	m.mu.Lock()
	statics := make([]*staticEntry, 0, len(m.static))
	for e := range m.static {
		statics = append(statics, e)
	}
	provs := make([]*provider, 0, len(m.providers))
	for _, p := range m.providers {
		provs = append(provs, p)
	}
	m.mu.Unlock()

	sort.Slice(statics, func(i, j int) bool { return statics[i].rc.GetName() < statics[j].rc.GetName() })
	for _, e := range statics {
		a, err := anypb.New(e.rc)
		if err != nil {
			continue
		}
		out.StaticRouteConfigs = append(out.StaticRouteConfigs, &adminv3.RoutesConfigDump_StaticRouteConfig{
			RouteConfig: a, LastUpdated: timestamppb.New(e.updated),
		})
	}
	sort.Slice(provs, func(i, j int) bool { return provs[i].key.name < provs[j].key.name })
	seen := map[string]bool{}
	for _, p := range provs {
		p.mu.Lock()
		rc, version, updated := p.rc, p.version, p.updated
		p.mu.Unlock()
		// The same configuration shared under two suppress settings is
		// one resource on the wire: list it once.
		if rc == nil || seen[p.key.name+"\x00"+p.key.source] {
			continue
		}
		seen[p.key.name+"\x00"+p.key.source] = true
		a, err := anypb.New(rc)
		if err != nil {
			continue
		}
		out.DynamicRouteConfigs = append(out.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
			VersionInfo: version, RouteConfig: a, LastUpdated: timestamppb.New(updated),
		})
	}
	return out
}

// provider is one RDS subscription and the table it publishes.
type provider struct {
	m        *Manager
	key      providerKey
	ref      *routetable.TableRef
	suppress bool
	cancel   func()
	refs     int // guarded by m.mu

	mu          sync.Mutex
	initialized bool
	waiting     []func() // Init targets of listeners warming on this provider
	rc          *routev3.RouteConfiguration
	version     string
	updated     time.Time
}

// update compiles the route configuration and publishes it. Connections
// load the TableRef per request, so existing connections see it too. Every
// update ends the listeners' warming, a refused or empty one too: Envoy
// lets start-up go on with a bad config.
func (p *provider) update(u *xds.Update) error {
	defer p.markInitialized()
	if u.InitialFetchTimeout {
		p.m.logger.Warn("RDS initial fetch timed out; serving without routes until the first update", "route_config", p.key.name)
		return nil
	}
	var rc *routev3.RouteConfiguration
	version := u.Version
	for _, r := range u.Resources {
		if r.Name != p.key.name {
			continue
		}
		c, ok := r.Message.(*routev3.RouteConfiguration)
		if !ok {
			return fmt.Errorf("route_configuration %q: unexpected type %T", r.Name, r.Message)
		}
		rc = c
		if r.Version != "" {
			version = r.Version // delta: the resource's own version
		}
	}
	if rc == nil {
		// Removal or an update for other names: Envoy keeps the last
		// route configuration of a named subscription.
		return nil
	}
	// validate_clusters defaults to false for RDS, as in Envoy: the
	// clusters may arrive later over CDS.
	t, err := routetable.New(rc, routetable.Options{
		Clusters:             p.m.clusters,
		ValidateClusters:     false,
		SuppressEnvoyHeaders: p.suppress,
		Runtime:              p.m.Runtime,
	})
	if err != nil {
		return fmt.Errorf("route_configuration %q: %w", p.key.name, err)
	}
	p.ref.Store(t)
	p.mu.Lock()
	p.rc, p.version, p.updated = rc, version, time.Now()
	p.mu.Unlock()
	return nil
}

func (p *provider) markInitialized() {
	p.mu.Lock()
	if p.initialized {
		p.mu.Unlock()
		return
	}
	p.initialized = true
	waiting := p.waiting
	p.waiting = nil
	p.mu.Unlock()
	for _, ready := range waiting {
		ready()
	}
}

// release drops one reference; the last cancels the watch.
func (p *provider) release() {
	m := p.m
	m.mu.Lock()
	p.refs--
	last := p.refs == 0
	if last {
		delete(m.providers, p.key)
	}
	m.mu.Unlock()
	if last && p.cancel != nil {
		p.cancel()
	}
}
