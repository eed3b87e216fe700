package client

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
)

// wait bounds every wait for something the test expects to happen; it is
// a failure guard, not a timing assertion.
const wait = 20 * time.Second

// cp is go-control-plane's real server on a loopback port, recording
// every request it receives.
type cp struct {
	t     *testing.T
	cache cachev3.Cache
	addr  string
	gs    *grpc.Server
	mu    sync.Mutex
	reqs  []*discoveryv3.DiscoveryRequest
	dreqs []*discoveryv3.DeltaDiscoveryRequest
	seen  chan struct{}
	// raw are requests as they came off the wire (the server fills in a
	// missing node before its callbacks see a request).
	raw []*discoveryv3.DiscoveryRequest
}

type rawStream struct {
	grpc.ServerStream
	s *cp
}

func (r *rawStream) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	if req, ok := m.(*discoveryv3.DiscoveryRequest); ok && err == nil {
		r.s.mu.Lock()
		r.s.raw = append(r.s.raw, proto.Clone(req).(*discoveryv3.DiscoveryRequest))
		r.s.mu.Unlock()
	}
	return err
}

func startCP(t *testing.T, cache cachev3.Cache) *cp {
	t.Helper()
	s := &cp{t: t, cache: cache, seen: make(chan struct{}, 1)}
	s.start("127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

func (s *cp) start(addr string) {
	s.t.Helper()
	var lis net.Listener
	var err error
	for range 50 { // the port of a stopped server may take a moment to free
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			s.mu.Lock()
			s.reqs = append(s.reqs, r)
			s.mu.Unlock()
			s.poke()
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			s.mu.Lock()
			s.dreqs = append(s.dreqs, r)
			s.mu.Unlock()
			s.poke()
			return nil
		},
	}
	srv := serverv3.NewServer(context.Background(), s.cache, cb)
	s.gs = grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, &rawStream{ServerStream: ss, s: s})
	}))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s.gs, srv)
	listenerservice.RegisterListenerDiscoveryServiceServer(s.gs, srv)
	clusterservice.RegisterClusterDiscoveryServiceServer(s.gs, srv)
	routeservice.RegisterRouteDiscoveryServiceServer(s.gs, srv)
	endpointservice.RegisterEndpointDiscoveryServiceServer(s.gs, srv)
	secretservice.RegisterSecretDiscoveryServiceServer(s.gs, srv)
	go s.gs.Serve(lis)
}

func (s *cp) stop() { s.gs.Stop() }

func (s *cp) poke() {
	select {
	case s.seen <- struct{}{}:
	default:
	}
}

// waitReq waits for a SotW request matching ok and returns it.
func (s *cp) waitReq(ok func(*discoveryv3.DiscoveryRequest) bool) *discoveryv3.DiscoveryRequest {
	s.t.Helper()
	return waitRecorded(s, &s.reqs, ok)
}

// waitDeltaReq waits for a delta request matching ok and returns it.
func (s *cp) waitDeltaReq(ok func(*discoveryv3.DeltaDiscoveryRequest) bool) *discoveryv3.DeltaDiscoveryRequest {
	s.t.Helper()
	return waitRecorded(s, &s.dreqs, ok)
}

// waitRecorded waits until one of the requests s records in *list (under
// s.mu) matches ok.
func waitRecorded[T any](s *cp, list *[]T, ok func(T) bool) T {
	s.t.Helper()
	deadline := time.After(wait)
	for {
		s.mu.Lock()
		for _, r := range *list {
			if ok(r) {
				s.mu.Unlock()
				return r
			}
		}
		s.mu.Unlock()
		select {
		case <-s.seen:
		case <-deadline:
			s.t.Fatal("the control plane never saw the expected request")
		}
	}
}

func (s *cp) requests() []*discoveryv3.DiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discoveryv3.DiscoveryRequest(nil), s.raw...)
}

// rec is a Watcher that records updates and refuses those reject names.
type rec struct {
	ch     chan *xds.Update
	mu     sync.Mutex
	reject func(*xds.Update) error
}

func (r *rec) setReject(f func(*xds.Update) error) {
	r.mu.Lock()
	r.reject = f
	r.mu.Unlock()
}

func newRec() *rec { return &rec{ch: make(chan *xds.Update, 100)} }

func (r *rec) Update(u *xds.Update) error {
	r.ch <- u
	r.mu.Lock()
	reject := r.reject
	r.mu.Unlock()
	if reject != nil {
		return reject(u)
	}
	return nil
}

// waitFor returns the first update satisfying ok, skipping others.
func (r *rec) waitFor(t *testing.T, ok func(*xds.Update) bool) *xds.Update {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case u := <-r.ch:
			if ok(u) {
				return u
			}
		case <-deadline:
			t.Fatal("the watcher never got the expected update")
			return nil
		}
	}
}

func names(u *xds.Update) string {
	var n []string
	for _, r := range u.Resources {
		n = append(n, r.Name)
	}
	return strings.Join(n, ",")
}

func atVersion(v string) func(*xds.Update) bool {
	return func(u *xds.Update) bool { return u.Version == v }
}

// Resources.

func listener(name string) *listenerv3.Listener {
	return &listenerv3.Listener{Name: name}
}

func clusterRes(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}
}

func routeRes(name, clusterName string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: clusterName}}},
		}},
	}}}
}

func endpoints(name string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
		}}}},
	}}}
}

func snapshot(t *testing.T, v string, res map[resource.Type][]types.Resource) *cachev3.Snapshot {
	t.Helper()
	s, err := cachev3.NewSnapshot(v, res)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const nodeID = "node-1"

func setSnap(t *testing.T, c cachev3.SnapshotCache, s *cachev3.Snapshot) {
	t.Helper()
	if err := c.SetSnapshot(context.Background(), nodeID, s); err != nil {
		t.Fatal(err)
	}
}

// apiSource is an api_config_source reaching addr with google_grpc.
func apiSource(apiType corev3.ApiConfigSource_ApiType, addr string) *corev3.ApiConfigSource {
	return &corev3.ApiConfigSource{
		ApiType:             apiType,
		TransportApiVersion: corev3.ApiVersion_V3,
		GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{
			GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: addr, StatPrefix: "xds"}}}},
	}
}

var adsSource = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}

func withTimeout(src *corev3.ConfigSource, d time.Duration) *corev3.ConfigSource {
	s := &corev3.ConfigSource{ConfigSourceSpecifier: src.ConfigSourceSpecifier, InitialFetchTimeout: durationpb.New(d)}
	return s
}

// newClient starts a client; st is its stats store.
func newClient(t *testing.T, ads *corev3.ApiConfigSource, opts ...func(*Options)) (*Client, *stats.Store) {
	t.Helper()
	st := stats.NewStore()
	o := Options{Node: &corev3.Node{Id: nodeID, Cluster: "test"}, ADS: ads, Stats: st}
	for _, f := range opts {
		f(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, st
}

func subscribe(t *testing.T, c *Client, src *corev3.ConfigSource, typeURL, name string, st *stats.Store, scope string) *rec {
	t.Helper()
	r := newRec()
	w := xds.Watch{Source: src, TypeURL: typeURL, Name: name, Watcher: r}
	if scope != "" {
		sc := st.Scope(scope)
		w.Stats = &sc
	}
	if _, err := c.Subscribe(w); err != nil {
		t.Fatal(err)
	}
	return r
}

func counter(st *stats.Store, name string) uint64 { return st.Counter(name).Value() }
func gauge(st *stats.Store, name string) int64 {
	return st.Gauge(name, stats.NeverImport).Value()
}

func waitCounter(t *testing.T, st *stats.Store, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for counter(st, name) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", name, counter(st, name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
