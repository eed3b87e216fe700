// Package xds is the contract between Legate's xDS client and what consumes
// dynamic resources: the cluster manager (CDS, EDS), the listener manager
// (LDS), route config providers (RDS) and the secret manager (SDS).
//
// A consumer opens a Watch through a Subscriber and receives decoded,
// typed resources as Updates. An Update the consumer returns an error for is
// NACKed with that error as error_detail, and the consumer must then be
// exactly as it was: validate everything first, then apply.
//
// The client implementation lives in internal/xds/client; this package is a
// leaf so that the cluster manager can subscribe to EDS while the client
// dials management servers through the cluster manager.
package xds

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/stats"
)

// Resource type URLs, as on the wire.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	SecretType   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
	RuntimeType  = "type.googleapis.com/envoy.service.runtime.v3.Runtime"
)

// DefaultInitialFetchTimeout is Envoy's initial_fetch_timeout default.
const DefaultInitialFetchTimeout = 15 * time.Second

// Resource is one decoded resource of an update.
type Resource struct {
	Name string
	// Version is the resource's own version (delta) or the response's
	// version_info (state of the world).
	Version string
	// Message is the concrete type, e.g. *listenerv3.Listener.
	Message proto.Message
}

// Update is what one DiscoveryResponse (or one read of a watched file)
// means for one watch.
type Update struct {
	// Version is version_info (SotW) or system_version_info (delta).
	Version string
	// Resources are the added or changed resources the watch covers; for a
	// SotW wildcard watch, every resource of the type.
	Resources []Resource
	// Removed names resources that are gone: delta removed_resources, or,
	// for SotW, watched resources missing from the response (LDS and CDS
	// treat omission as deletion; for named RDS/EDS/SDS watches Envoy
	// keeps the last value, so the client does not report those).
	Removed []string
	// Full is true when Resources is the complete set for the watch (SotW
	// and file sources).
	Full bool
	// InitialFetchTimeout is set, with nothing else, on the one call made
	// when initial_fetch_timeout passes before the first update; the
	// watcher stops waiting (a warming listener or cluster goes live
	// without it). The returned error is ignored.
	InitialFetchTimeout bool
}

// Watcher consumes one watch's updates. Calls for one watch never overlap.
// Returning an error refuses the update: it is NACKed with the error's text
// as error_detail, and the watcher must be left exactly as it was.
type Watcher interface {
	Update(u *Update) error
}

// WatcherFunc adapts a function to Watcher.
type WatcherFunc func(u *Update) error

// Update calls f.
func (f WatcherFunc) Update(u *Update) error { return f(u) }

// Watch is one subscription.
type Watch struct {
	// Source is where the resources come from: ads, api_config_source,
	// path_config_source or the legacy path.
	Source  *corev3.ConfigSource
	TypeURL string
	// Name is the resource watched; empty means every resource of the type
	// (the wildcard LDS and CDS subscriptions).
	Name string
	// Stats, when non-nil, is the scope that gets Envoy's subscription
	// stats: update_attempt, update_success, update_rejected,
	// update_failure, update_empty, init_fetch_timeout, update_time and
	// the version gauge (a hash of the last accepted version_info). E.g.
	// "cluster_manager.cds.", "http.ingress.rds.local_route.".
	Stats   *stats.Scope
	Watcher Watcher
}

// Subscriber opens watches. cancel stops delivery; when no watch covers a
// named resource any longer, the client drops it from what it asks for.
// An error means the watch cannot be served at all (no ads_config for an
// ads source, an envoy_grpc cluster that is not a static cluster, a
// non-v3 transport) and names the offending field.
type Subscriber interface {
	Subscribe(w Watch) (cancel func(), err error)
}

// Deps are what building a resource that refers to others (an HCM using
// RDS, an EDS cluster, a TLS context using SDS) needs.
type Deps struct {
	// Subscriber is nil when the bootstrap has no dynamic config; a
	// reference to an xDS source is then a config error.
	Subscriber Subscriber
	// Init collects what the resource waits for before it goes live
	// (warming); nil means nothing waits.
	Init *Init
	// Release registers cleanup (cancelling watches) to run when the
	// resource is discarded: replaced, removed, or never activated. Nil
	// means the resource lives as long as the process.
	Release func(func())
	// Stats is where subscription stats go (Watch.Stats scopes).
	Stats *stats.Store
}

// OnRelease registers f with d.Release, if any.
func (d Deps) OnRelease(f func()) {
	if d.Release != nil {
		d.Release(f)
	}
}

// InitialFetchTimeout is src's initial_fetch_timeout: 15 s when unset, 0
// (wait forever) when set to zero.
func InitialFetchTimeout(src *corev3.ConfigSource) time.Duration {
	if t := src.GetInitialFetchTimeout(); t != nil {
		return t.AsDuration()
	}
	return DefaultInitialFetchTimeout
}
