package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/legate-proxy/legate/internal/grpcclient"
	"github.com/legate-proxy/legate/internal/xds"
)

// grpcTarget is a validated api_config_source (or ads_config).
type grpcTarget struct {
	*grpcclient.Service
	delta         bool
	nodeFirstOnly bool
}

// Envoy's xDS reconnect back-off.
const (
	backoffBase = 500 * time.Millisecond
	backoffMax  = 30 * time.Second
)

func (c *Client) parseAPIConfigSource(a *corev3.ApiConfigSource, field string, ads bool) (*grpcTarget, error) {
	t := &grpcTarget{nodeFirstOnly: a.GetSetNodeOnFirstMessageOnly()}
	switch at := a.GetApiType(); at {
	case corev3.ApiConfigSource_GRPC:
	case corev3.ApiConfigSource_DELTA_GRPC:
		t.delta = true
	case corev3.ApiConfigSource_AGGREGATED_GRPC, corev3.ApiConfigSource_AGGREGATED_DELTA_GRPC:
		if !ads {
			return nil, fmt.Errorf("%s.api_type: %v is only for dynamic_resources.ads_config; use ads: {} to share the ADS stream", field, at)
		}
		t.delta = at == corev3.ApiConfigSource_AGGREGATED_DELTA_GRPC
	default:
		return nil, fmt.Errorf("%s.api_type: %v is not supported (GRPC and DELTA_GRPC are)", field, at)
	}
	switch v := a.GetTransportApiVersion(); v {
	case corev3.ApiVersion_AUTO, corev3.ApiVersion_V3:
	default:
		return nil, fmt.Errorf("%s.transport_api_version: %v is not supported, only V3", field, v)
	}
	if len(a.GetClusterNames()) > 0 {
		return nil, fmt.Errorf("%s.cluster_names: is for REST sources; gRPC sources use grpc_services", field)
	}
	if len(a.GetConfigValidators()) > 0 {
		return nil, fmt.Errorf("%s.config_validators: is not supported", field)
	}
	if n := len(a.GetGrpcServices()); n != 1 {
		return nil, fmt.Errorf("%s.grpc_services: exactly one gRPC service is required, got %d", field, n)
	}
	svc, err := grpcclient.New(a.GetGrpcServices()[0], c.cm, field+".grpc_services[0]")
	if err != nil {
		return nil, err
	}
	t.Service = svc
	return t, nil
}

// backoff is Envoy's jittered exponential back-off: a random delay below
// base·2^n, capped.
type backoff struct{ n int }

func (b *backoff) next() time.Duration {
	ceil := backoffMax
	if b.n < 16 {
		ceil = min(backoffBase<<b.n, backoffMax)
	}
	b.n++
	return time.Duration(rand.Int64N(int64(ceil))) + time.Millisecond
}

func (b *backoff) reset() { b.n = 0 }

// typeOrder puts types in the order Envoy's ADS requests them on connect.
func typeOrder(typeURL string) int {
	switch typeURL {
	case xds.ClusterType:
		return 0
	case xds.EndpointType:
		return 1
	case xds.ListenerType:
		return 2
	case xds.RouteType:
		return 3
	case xds.SecretType:
		return 4
	}
	return 5
}

func (f *feed) typesInOrder() []*typeState {
	f.mu.Lock()
	ts := slices.Clone(f.order)
	f.mu.Unlock()
	slices.SortStableFunc(ts, func(a, b *typeState) int { return typeOrder(a.typeURL) - typeOrder(b.typeURL) })
	return ts
}

func (f *feed) runGRPC(ctx context.Context) {
	var bo backoff
	for {
		var err error
		if f.grpc.delta {
			err = f.deltaSession(ctx, &bo)
		} else {
			err = f.sotwSession(ctx, &bo)
		}
		if ctx.Err() != nil {
			return
		}
		f.failure()
		delay := bo.next()
		f.c.log.Warn("xds stream closed; keeping the last good config", "source", f.name, "error", err, "retry_in", delay.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// open dials and returns a stream context; done releases both.
func (f *feed) open(ctx context.Context) (*grpc.ClientConn, context.Context, func(), error) {
	conn, err := f.grpc.Dial()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("dial %s: %w", f.grpc.Name, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	sctx = f.grpc.Outgoing(sctx)
	return conn, sctx, func() { cancel(); conn.Close() }, nil
}

// recvLoop turns a blocking Recv into channels. Its goroutine counts in
// wg; it ends once Recv fails, which the stream's cancel guarantees.
func recvLoop[T any](ctx context.Context, wg *sync.WaitGroup, recv func() (*T, error)) (<-chan *T, <-chan error) {
	msgs, errc := make(chan *T), make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return msgs, errc
}

// serve runs one stream, SotW or delta alike: open starts it on a fresh
// connection; then serve sends the subscription, follows changes to it and
// answers each response until the stream or ctx ends.
func serve[R any](ctx context.Context, f *feed, bo *backoff, open func(context.Context, *grpc.ClientConn) (recv func() (*R, error), err error),
	subscribe func() error, handle func(*R) error) error {
	conn, sctx, done, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	recv, err := open(sctx, conn)
	if err != nil {
		return err
	}
	f.connected()
	defer f.c.setConnected(-1)
	if err := subscribe(); err != nil {
		return err
	}
	// The feed goroutine holds a count in c.wg, so adding to it here is
	// safe even while Close waits.
	msgs, errc := recvLoop(sctx, &f.c.wg, recv)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case <-f.wake:
			if err := subscribe(); err != nil {
				return err
			}
		case r := <-msgs:
			bo.reset()
			if err := handle(r); err != nil {
				return err
			}
		}
	}
}

// respond delivers one response for typeURL: deliver decodes and hands it
// to the watchers (deliverMu held). It returns nil for a type the feed
// does not know, and the error_detail to NACK with when it was refused.
func (f *feed) respond(typeURL, version, nonce string, deliver func(*typeState) error) (*typeState, *statuspb.Status) {
	ts := f.typeFor(typeURL)
	if ts == nil {
		f.c.log.Warn("xds response for a type not subscribed; ignored", "source", f.name, "type", typeURL)
		return nil, nil
	}
	ts.nonce = nonce
	f.deliverMu.Lock()
	err := deliver(ts)
	f.deliverMu.Unlock()
	if err != nil {
		f.c.log.Warn("xds update rejected (NACK)", "source", f.name, "type", typeURL, "version", version, "error", err)
		// Envoy's NACK: the watcher's (or decoder's) text as error_detail.
		return ts, &statuspb.Status{Code: int32(codes.Internal), Message: err.Error()}
	}
	return ts, nil
}

// connected resets the per-stream protocol state: the new stream is asked
// for everything afresh.
func (f *feed) connected() {
	f.c.setConnected(1)
	f.c.log.Info("xds stream connected", "source", f.name, "delta", f.grpc.delta)
	for _, t := range f.typesInOrder() {
		t.sent, t.nonce, t.sentWild, t.sentNames = false, "", false, nil
	}
}

func (f *feed) sotwSession(ctx context.Context, bo *backoff) error {
	var stream grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	open := func(sctx context.Context, conn *grpc.ClientConn) (recv func() (*discoveryv3.DiscoveryResponse, error), err error) {
		if f.ads {
			stream, err = discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
		} else {
			stream, err = openSotw(sctx, conn, f.typesInOrder()[0].typeURL)
		}
		if err != nil {
			return nil, err
		}
		return stream.Recv, nil
	}
	nodeSent := false
	send := func(ts *typeState, req *discoveryv3.DiscoveryRequest) error {
		wild, names := f.desired(ts)
		req.TypeUrl, req.ResourceNames = ts.typeURL, names
		if !nodeSent || !f.grpc.nodeFirstOnly {
			req.Node = f.c.node
		}
		if err := stream.Send(req); err != nil {
			return err
		}
		nodeSent = true
		ts.sent, ts.sentWild, ts.sentNames = true, wild, toSet(names)
		return nil
	}
	subscribe := func() error {
		for _, ts := range f.typesInOrder() {
			wild, names := f.desired(ts)
			if ts.sent && wild == ts.sentWild && sameSet(ts.sentNames, names) {
				continue
			}
			if !ts.sent && !wild && len(names) == 0 {
				continue // nothing wanted yet
			}
			// After the first request an empty list unsubscribes from
			// every resource of a named type (xDS protocol).
			if err := send(ts, &discoveryv3.DiscoveryRequest{VersionInfo: ts.version, ResponseNonce: ts.nonce}); err != nil {
				return err
			}
		}
		return nil
	}
	return serve(ctx, f, bo, open, subscribe, func(r *discoveryv3.DiscoveryResponse) error {
		f.c.log.Debug("xds response", "source", f.name, "type", r.GetTypeUrl(), "version", r.GetVersionInfo(), "resources", len(r.GetResources()), "nonce", r.GetNonce())
		ts, nack := f.respond(r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce(), func(ts *typeState) error {
			return f.applySotw(ts, r.GetVersionInfo(), r.GetResources())
		})
		if ts == nil {
			return nil
		}
		// version_info stays at the last accepted version on a NACK.
		return send(ts, &discoveryv3.DiscoveryRequest{VersionInfo: ts.version, ResponseNonce: r.GetNonce(), ErrorDetail: nack})
	})
}

func (f *feed) deltaSession(ctx context.Context, bo *backoff) error {
	var stream grpc.BidiStreamingClient[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]
	open := func(sctx context.Context, conn *grpc.ClientConn) (recv func() (*discoveryv3.DeltaDiscoveryResponse, error), err error) {
		if f.ads {
			stream, err = discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(sctx)
		} else {
			stream, err = openDelta(sctx, conn, f.typesInOrder()[0].typeURL)
		}
		if err != nil {
			return nil, err
		}
		return stream.Recv, nil
	}
	nodeSent := false
	send := func(req *discoveryv3.DeltaDiscoveryRequest) error {
		if !nodeSent || !f.grpc.nodeFirstOnly {
			req.Node = f.c.node
		}
		if err := stream.Send(req); err != nil {
			return err
		}
		nodeSent = true
		return nil
	}
	subscribe := func() error {
		for _, ts := range f.typesInOrder() {
			wild, names := f.desired(ts)
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: ts.typeURL}
			if !ts.sent {
				if !wild && len(names) == 0 {
					continue
				}
				// An empty first subscribe list is the (legacy) wildcard.
				req.ResourceNamesSubscribe = names
				f.mu.Lock()
				if len(ts.cache) > 0 {
					req.InitialResourceVersions = make(map[string]string, len(ts.cache))
					for n, c := range ts.cache {
						req.InitialResourceVersions[n] = c.version
					}
				}
				f.mu.Unlock()
			} else {
				for _, n := range names {
					if _, ok := ts.sentNames[n]; !ok {
						req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
					}
				}
				for n := range ts.sentNames {
					if !slices.Contains(names, n) {
						req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
					}
				}
				slices.Sort(req.ResourceNamesUnsubscribe)
				if wild && !ts.sentWild {
					req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, "*")
				} else if !wild && ts.sentWild {
					req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, "*")
				}
				if len(req.ResourceNamesSubscribe) == 0 && len(req.ResourceNamesUnsubscribe) == 0 {
					continue
				}
			}
			if err := send(req); err != nil {
				return err
			}
			ts.sent, ts.sentWild, ts.sentNames = true, wild, toSet(names)
		}
		return nil
	}
	return serve(ctx, f, bo, open, subscribe, func(r *discoveryv3.DeltaDiscoveryResponse) error {
		f.c.log.Debug("xds delta response", "source", f.name, "type", r.GetTypeUrl(), "version", r.GetSystemVersionInfo(),
			"resources", len(r.GetResources()), "removed", len(r.GetRemovedResources()), "nonce", r.GetNonce())
		ts, nack := f.respond(r.GetTypeUrl(), r.GetSystemVersionInfo(), r.GetNonce(), func(ts *typeState) error {
			res, err := decodeDelta(ts.typeURL, r.GetResources())
			if err != nil {
				f.reject(ts)
				return err
			}
			return f.deliverDelta(ts, r.GetSystemVersionInfo(), res, r.GetRemovedResources())
		})
		if ts == nil {
			return nil
		}
		return send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ts.typeURL, ResponseNonce: r.GetNonce(), ErrorDetail: nack})
	})
}

func (f *feed) typeFor(typeURL string) *typeState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.types[typeURL]
}

func toSet(names []string) map[string]struct{} {
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[n] = struct{}{}
	}
	return m
}

func sameSet(m map[string]struct{}, names []string) bool {
	if len(m) != len(names) {
		return false
	}
	for _, n := range names {
		if _, ok := m[n]; !ok {
			return false
		}
	}
	return true
}

var errNoService = errors.New("no per-type discovery service for this type")

func openSotw(ctx context.Context, cc *grpc.ClientConn, typeURL string) (grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse], error) {
	switch typeURL {
	case xds.ListenerType:
		return listenerservice.NewListenerDiscoveryServiceClient(cc).StreamListeners(ctx)
	case xds.ClusterType:
		return clusterservice.NewClusterDiscoveryServiceClient(cc).StreamClusters(ctx)
	case xds.RouteType:
		return routeservice.NewRouteDiscoveryServiceClient(cc).StreamRoutes(ctx)
	case xds.EndpointType:
		return endpointservice.NewEndpointDiscoveryServiceClient(cc).StreamEndpoints(ctx)
	case xds.SecretType:
		return secretservice.NewSecretDiscoveryServiceClient(cc).StreamSecrets(ctx)
	}
	return nil, fmt.Errorf("%s: %w", typeURL, errNoService)
}

func openDelta(ctx context.Context, cc *grpc.ClientConn, typeURL string) (grpc.BidiStreamingClient[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse], error) {
	switch typeURL {
	case xds.ListenerType:
		return listenerservice.NewListenerDiscoveryServiceClient(cc).DeltaListeners(ctx)
	case xds.ClusterType:
		return clusterservice.NewClusterDiscoveryServiceClient(cc).DeltaClusters(ctx)
	case xds.RouteType:
		return routeservice.NewRouteDiscoveryServiceClient(cc).DeltaRoutes(ctx)
	case xds.EndpointType:
		return endpointservice.NewEndpointDiscoveryServiceClient(cc).DeltaEndpoints(ctx)
	case xds.SecretType:
		return secretservice.NewSecretDiscoveryServiceClient(cc).DeltaSecrets(ctx)
	}
	return nil, fmt.Errorf("%s: %w", typeURL, errNoService)
}
