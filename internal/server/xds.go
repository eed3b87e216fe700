package server

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	runtimev3 "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"

	"github.com/legate-proxy/legate/internal/bootstrap"
	"github.com/legate-proxy/legate/internal/logging"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
	"github.com/legate-proxy/legate/internal/xds/client"
)

// dynamicConfig is the server's side of dynamic_resources: the xDS client
// and the CDS and LDS watches that drive the cluster and listener managers.
type dynamicConfig struct {
	client *client.Client
	// subscriber is the client behind the allowlist check: every resource
	// that arrives over xDS is refused (NACKed) with its path when it uses
	// something Legate does not support, before any consumer sees it.
	subscriber xds.Subscriber
	cds, lds   *corev3.ConfigSource // nil when not configured
	cancels    []func()
}

// newDynamicConfig builds the xDS client for bs; nil when the bootstrap has
// no dynamic_resources. Nothing connects until start.
func (s *Server) newDynamicConfig(bs *bootstrapv3.Bootstrap) (*dynamicConfig, error) {
	dr := bs.GetDynamicResources()
	if dr == nil {
		return nil, nil
	}
	node := &corev3.Node{Id: s.nodeID, Cluster: s.nodeClstr}
	if n := bs.GetNode(); n != nil {
		node.Metadata = n.GetMetadata()
	}
	node.Locality = s.locality()
	c, err := client.New(client.Options{
		Node:     node,
		ADS:      dr.GetAdsConfig(),
		Clusters: s.clusters,
		Stats:    s.store,
		Logger:   s.logger.With(logging.ComponentKey, "config"),
	})
	if err != nil {
		return nil, err
	}
	d := &dynamicConfig{client: c, subscriber: checkingSubscriber{c}, cds: dr.GetCdsConfig(), lds: dr.GetLdsConfig()}
	var errs []error
	if d.cds != nil {
		if err := c.CheckSource(d.cds); err != nil {
			errs = append(errs, fmt.Errorf("dynamic_resources.cds_config: %w", err))
		}
	}
	if d.lds != nil {
		if err := c.CheckSource(d.lds); err != nil {
			errs = append(errs, fmt.Errorf("dynamic_resources.lds_config: %w", err))
		}
	}
	if len(errs) > 0 {
		c.Close()
		return nil, errors.Join(errs...)
	}
	return d, nil
}

// initializeDynamic runs Envoy's initialization order once the client is
// started and static clusters are initialized: CDS delivers its first
// update and the clusters it adds warm, then LDS does the same for
// listeners. Each phase is bounded by its source's initial_fetch_timeout
// (the watchers give up waiting themselves); wait bounds the whole in case
// a management server answers but a resource never warms.
func (s *Server) initializeDynamic(ctx context.Context, wait time.Duration) error {
	d := s.dynamic
	if d == nil {
		return nil
	}
	deadline := time.After(wait)
	// RTDS layers first, as Envoy initializes the runtime before CDS.
	// They are not waited for: runtime is read when config is built, so a
	// layer that arrives later applies from the next config on.
	for _, l := range s.runtime.RTDSLayers() {
		field := fmt.Sprintf("layered_runtime.layers[%d].rtds_layer", l.Index)
		if l.Source == nil {
			return fmt.Errorf("%s.rtds_config: is required", field)
		}
		cancel, err := d.subscriber.Subscribe(xds.Watch{Source: l.Source, TypeURL: xds.RuntimeType, Name: l.Name, Watcher: rtdsWatcher(s.runtime, l)})
		if err != nil {
			return fmt.Errorf("%s.rtds_config: %w", field, err)
		}
		d.cancels = append(d.cancels, cancel)
	}
	phases := []struct {
		field, name, typeURL string
		src                  *corev3.ConfigSource
		stats                stats.Scope
		watcher              xds.Watcher
		initialized          <-chan struct{}
	}{
		{"dynamic_resources.cds_config", "CDS", xds.ClusterType, d.cds, s.store.Scope("cluster_manager").Scope("cds"), s.clusters.CDS(), s.clusters.CDSInitialized()},
		{"dynamic_resources.lds_config", "LDS", xds.ListenerType, d.lds, s.store.Scope("listener_manager").Scope("lds"), s.listeners.LDS(), s.listeners.LDSInitialized()},
	}
	for _, p := range phases {
		if p.src == nil {
			continue
		}
		cancel, err := d.subscriber.Subscribe(xds.Watch{Source: p.src, TypeURL: p.typeURL, Stats: &p.stats, Watcher: p.watcher})
		if err != nil {
			return fmt.Errorf("%s: %w", p.field, err)
		}
		d.cancels = append(d.cancels, cancel)
		select {
		case <-p.initialized:
		case <-deadline:
			s.logger.Warn(p.name+" did not finish initializing; continuing", "timeout", wait)
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// rtdsWatcher applies one RTDS layer's Runtime resource.
func rtdsWatcher(rt *runtime.Snapshot, l runtime.RTDSLayer) xds.Watcher {
	return xds.WatcherFunc(func(u *xds.Update) error {
		for _, r := range u.Resources {
			if r.Name != l.Name {
				continue
			}
			res, ok := r.Message.(*runtimev3.Runtime)
			if !ok {
				return fmt.Errorf("runtime %q: resource is a %T", l.Name, r.Message)
			}
			return rt.SetRTDS(l.Index, res.GetLayer())
		}
		return nil
	})
}

func (d *dynamicConfig) close() {
	if d == nil {
		return
	}
	for _, c := range d.cancels {
		c()
	}
	d.client.Close()
}

// checkingSubscriber runs Legate's support check on every resource before
// the watcher sees it, so an xDS resource is held to the same allowlist as
// the bootstrap.
type checkingSubscriber struct{ next xds.Subscriber }

func (c checkingSubscriber) Subscribe(w xds.Watch) (func(), error) {
	inner := w.Watcher
	w.Watcher = xds.WatcherFunc(func(u *xds.Update) error {
		var errs []error
		for _, r := range u.Resources {
			if err := bootstrap.CheckXDSResource(r.Message); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		// What building finds reads like the support check's problems
		// (`listener "x": filter_chains[0].filters[0].typed_config.route_config...`).
		if err := inner.Update(u); err != nil {
			return bootstrap.Flatten(err)
		}
		return nil
	})
	return c.next.Subscribe(w)
}

// lateSubscriber forwards to the xDS client once the server has built it
// (after the cluster manager, which it dials through).
type lateSubscriber struct {
	p atomic.Pointer[xds.Subscriber]
}

func (l *lateSubscriber) set(s xds.Subscriber) { l.p.Store(&s) }

func (l *lateSubscriber) Subscribe(w xds.Watch) (func(), error) {
	s := l.p.Load()
	if s == nil {
		return nil, errors.New("dynamic_resources: the xDS client could not be built")
	}
	return (*s).Subscribe(w)
}
