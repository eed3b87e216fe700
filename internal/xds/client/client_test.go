package client

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"

	"github.com/legate-proxy/legate/internal/xds"
)

// TestSotwADS drives the shared SotW ADS stream: wildcard CDS/LDS, named
// RDS/EDS, SotW omission as removal, ACK versions, node identity, stats.
func TestSotwADS(t *testing.T) {
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	setSnap(t, cache, snapshot(t, "v1", map[resource.Type][]types.Resource{
		resource.ClusterType:  {clusterRes("c1")},
		resource.EndpointType: {endpoints("c1", 8080)},
		resource.ListenerType: {listener("l1"), listener("l2")},
		resource.RouteType:    {routeRes("r1", "c1")},
	}))
	s := startCP(t, cache)
	c, st := newClient(t, apiSource(corev3.ApiConfigSource_GRPC, s.addr))

	cds := subscribe(t, c, adsSource, xds.ClusterType, "", st, "cluster_manager.cds")
	lds := subscribe(t, c, adsSource, xds.ListenerType, "", st, "listener_manager.lds")
	rds := subscribe(t, c, adsSource, xds.RouteType, "r1", st, "http.ingress.rds.r1")
	eds := subscribe(t, c, adsSource, xds.EndpointType, "c1", st, "cluster.c1")
	c.Start(context.Background())

	if u := cds.waitFor(t, atVersion("v1")); names(u) != "c1" || !u.Full {
		t.Fatalf("cds update = %+v", u)
	}
	if u := lds.waitFor(t, atVersion("v1")); names(u) != "l1,l2" && names(u) != "l2,l1" {
		t.Fatalf("lds update names = %q", names(u))
	}
	if u := rds.waitFor(t, atVersion("v1")); names(u) != "r1" {
		t.Fatalf("rds update names = %q", names(u))
	}
	if u := eds.waitFor(t, atVersion("v1")); names(u) != "c1" {
		t.Fatalf("eds update names = %q", names(u))
	}
	// The ACK carries the version; the node carries Legate's identity.
	ack := s.waitReq(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xds.ListenerType && r.GetVersionInfo() == "v1"
	})
	if n := ack.GetNode(); n.GetId() != nodeID || n.GetUserAgentName() != "legate" || n.GetUserAgentBuildVersion() == nil ||
		!slices.Contains(n.GetClientFeatures(), "xds.config.resource-in-sotw") {
		t.Fatalf("node = %v", n)
	}
	s.waitReq(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xds.RouteType && slices.Equal(r.GetResourceNames(), []string{"r1"})
	})

	// v2 drops l1: SotW omission is removal for LDS.
	setSnap(t, cache, snapshot(t, "v2", map[resource.Type][]types.Resource{
		resource.ClusterType:  {clusterRes("c1")},
		resource.EndpointType: {endpoints("c1", 8081)},
		resource.ListenerType: {listener("l2")},
		resource.RouteType:    {routeRes("r1", "c1")},
	}))
	u := lds.waitFor(t, atVersion("v2"))
	if names(u) != "l2" || !slices.Equal(u.Removed, []string{"l1"}) {
		t.Fatalf("lds v2: resources %q removed %v", names(u), u.Removed)
	}
	eds.waitFor(t, atVersion("v2"))
	waitCounter(t, st, "listener_manager.lds.update_success", 2)
	if gauge(st, "listener_manager.lds.version") != versionHash("v2") || gauge(st, "listener_manager.lds.version") == 0 {
		t.Fatal("lds version gauge is not the hash of v2")
	}
	if gauge(st, "control_plane.connected_state") != 1 {
		t.Fatal("connected_state != 1 with the stream up")
	}
	if got := c.Resources(xds.ListenerType); len(got) != 1 || got[0].Name != "l2" || got[0].Version != "v2" || got[0].LastUpdated.IsZero() {
		t.Fatalf("Resources(LDS) = %+v", got)
	}

	// A watch opened later gets the cached resource without a round trip.
	late := subscribe(t, c, adsSource, xds.ClusterType, "", st, "")
	if u := late.waitFor(t, atVersion("v2")); names(u) != "c1" || !u.Full {
		t.Fatalf("late cds = %+v", u)
	}
}

// TestSotwNACK: a watcher's error is NACKed with error_detail naming the
// resource, the version stays at the last good one, update_rejected counts.
func TestSotwNACK(t *testing.T) {
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	setSnap(t, cache, snapshot(t, "v1", map[resource.Type][]types.Resource{resource.ListenerType: {listener("good")}}))
	s := startCP(t, cache)
	c, st := newClient(t, apiSource(corev3.ApiConfigSource_GRPC, s.addr))
	lds := subscribe(t, c, adsSource, xds.ListenerType, "", st, "listener_manager.lds")
	lds.setReject(func(u *xds.Update) error {
		for _, r := range u.Resources {
			if r.Name == "bad" {
				return errors.New(`listener "bad": filter_chains[0].filters[0]: envoy.filters.network.nope is not supported`)
			}
		}
		return nil
	})
	c.Start(context.Background())
	lds.waitFor(t, atVersion("v1"))

	setSnap(t, cache, snapshot(t, "v2", map[resource.Type][]types.Resource{resource.ListenerType: {listener("good"), listener("bad")}}))
	nack := s.waitReq(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xds.ListenerType && r.GetErrorDetail() != nil
	})
	if nack.GetVersionInfo() != "v1" {
		t.Fatalf("NACK version_info = %q, want the last good v1", nack.GetVersionInfo())
	}
	if nack.GetErrorDetail().GetCode() != int32(codes.Internal) || !strings.Contains(nack.GetErrorDetail().GetMessage(), `listener "bad": filter_chains[0]`) {
		t.Fatalf("error_detail = %v", nack.GetErrorDetail())
	}
	if got := counter(st, "listener_manager.lds.update_rejected"); got != 1 {
		t.Fatalf("update_rejected = %d", got)
	}
	if got := c.Resources(xds.ListenerType); len(got) != 1 || got[0].Version != "v1" {
		t.Fatalf("Resources after NACK = %+v", got)
	}

	// A fixed v3 is accepted again.
	setSnap(t, cache, snapshot(t, "v3", map[resource.Type][]types.Resource{resource.ListenerType: {listener("good"), listener("other")}}))
	if u := lds.waitFor(t, atVersion("v3")); !slices.Equal(u.Removed, nil) {
		t.Fatalf("v3 removed = %v (the NACKed v2 was never accepted)", u.Removed)
	}
	s.waitReq(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xds.ListenerType && r.GetVersionInfo() == "v3" && r.GetErrorDetail() == nil
	})
}

// TestDeltaADS: the incremental ADS stream, removed_resources and NACK.
func TestDeltaADS(t *testing.T) {
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	setSnap(t, cache, snapshot(t, "v1", map[resource.Type][]types.Resource{
		resource.ClusterType:  {clusterRes("a"), clusterRes("b")},
		resource.EndpointType: {endpoints("a", 1)},
	}))
	s := startCP(t, cache)
	c, st := newClient(t, apiSource(corev3.ApiConfigSource_DELTA_GRPC, s.addr))
	cds := subscribe(t, c, adsSource, xds.ClusterType, "", st, "cluster_manager.cds")
	eds := subscribe(t, c, adsSource, xds.EndpointType, "a", st, "cluster.a")
	c.Start(context.Background())

	u := cds.waitFor(t, func(u *xds.Update) bool { return len(u.Resources) == 2 })
	if u.Full {
		t.Fatal("a delta update claims to be full")
	}
	eds.waitFor(t, func(u *xds.Update) bool { return names(u) == "a" })
	s.waitDeltaReq(func(r *discoveryv3.DeltaDiscoveryRequest) bool {
		return r.GetTypeUrl() == xds.EndpointType && slices.Equal(r.GetResourceNamesSubscribe(), []string{"a"})
	})

	setSnap(t, cache, snapshot(t, "v2", map[resource.Type][]types.Resource{
		resource.ClusterType:  {clusterRes("a")},
		resource.EndpointType: {endpoints("a", 1)},
	}))
	u = cds.waitFor(t, func(u *xds.Update) bool { return len(u.Removed) > 0 })
	if !slices.Equal(u.Removed, []string{"b"}) {
		t.Fatalf("removed = %v", u.Removed)
	}

	cds.setReject(func(u *xds.Update) error {
		if len(u.Resources) > 0 {
			return errors.New(`cluster "c": lb_policy: MAGLEV is not supported`)
		}
		return nil
	})
	setSnap(t, cache, snapshot(t, "v3", map[resource.Type][]types.Resource{
		resource.ClusterType:  {clusterRes("a"), clusterRes("c")},
		resource.EndpointType: {endpoints("a", 1)},
	}))
	nack := s.waitDeltaReq(func(r *discoveryv3.DeltaDiscoveryRequest) bool {
		return r.GetTypeUrl() == xds.ClusterType && r.GetErrorDetail() != nil
	})
	if !strings.Contains(nack.GetErrorDetail().GetMessage(), `cluster "c": lb_policy`) {
		t.Fatalf("error_detail = %v", nack.GetErrorDetail())
	}
	if got := counter(st, "cluster_manager.cds.update_rejected"); got != 1 {
		t.Fatalf("update_rejected = %d", got)
	}
	if got := c.Resources(xds.ClusterType); len(got) != 1 || got[0].Name != "a" {
		t.Fatalf("Resources after NACK = %+v", got)
	}
}

// TestPerTypeDeltaLinear: a per-type DELTA_GRPC stream (EDS) against a
// LinearCache, with a named watch, an update, a deletion and unsubscribe.
func TestPerTypeDeltaLinear(t *testing.T) {
	lc := cachev3.NewLinearCache(xds.EndpointType)
	lc.SetResources(map[string]types.Resource{"svc": endpoints("svc", 1), "other": endpoints("other", 2)})
	s := startCP(t, lc)
	c, st := newClient(t, nil)
	src := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{
		ApiConfigSource: apiSource(corev3.ApiConfigSource_DELTA_GRPC, s.addr)}}
	w := subscribe(t, c, src, xds.EndpointType, "svc", st, "cluster.svc")
	c.Start(context.Background())
	if u := w.waitFor(t, func(u *xds.Update) bool { return len(u.Resources) == 1 }); names(u) != "svc" {
		t.Fatalf("first = %q", names(u))
	}
	if err := lc.UpdateResource("svc", endpoints("svc", 3)); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, func(u *xds.Update) bool {
		return len(u.Resources) == 1 && strings.Contains(u.Resources[0].Message.(interface{ String() string }).String(), "port_value:3")
	})
	if err := lc.DeleteResource("svc"); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, func(u *xds.Update) bool { return slices.Equal(u.Removed, []string{"svc"}) })
	waitCounter(t, st, "cluster.svc.update_success", 3)
	// A per-type gRPC source is a management server too.
	if gauge(st, "control_plane.connected_state") != 1 {
		t.Fatal("connected_state != 1 with the per-type stream up")
	}
}

// TestReconnect: the server goes away and comes back on the same port;
// the client keeps its config, reconnects, re-requests with the last
// accepted version and takes new updates.
func TestReconnect(t *testing.T) {
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	setSnap(t, cache, snapshot(t, "v1", map[resource.Type][]types.Resource{resource.ClusterType: {clusterRes("a")}}))
	s := startCP(t, cache)
	c, st := newClient(t, apiSource(corev3.ApiConfigSource_GRPC, s.addr))
	cds := subscribe(t, c, adsSource, xds.ClusterType, "", st, "cluster_manager.cds")
	c.Start(context.Background())
	cds.waitFor(t, atVersion("v1"))

	s.stop()
	// Wait for the client to notice (a failure is counted once per lost stream).
	deadline := time.Now().Add(wait)
	for counter(st, "cluster_manager.cds.update_failure") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stream failure was never counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if gauge(st, "control_plane.connected_state") != 0 {
		t.Fatal("connected_state still 1 with the server gone")
	}
	if got := c.Resources(xds.ClusterType); len(got) != 1 {
		t.Fatal("the last good config was dropped on disconnect")
	}
	s.mu.Lock()
	s.reqs = nil
	s.mu.Unlock()
	s.start(s.addr)
	s.waitReq(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xds.ClusterType && r.GetVersionInfo() == "v1" && r.GetResponseNonce() == ""
	})
	setSnap(t, cache, snapshot(t, "v2", map[resource.Type][]types.Resource{resource.ClusterType: {clusterRes("a"), clusterRes("b")}}))
	cds.waitFor(t, atVersion("v2"))
	if gauge(st, "control_plane.connected_state") != 1 {
		t.Fatal("connected_state != 1 after reconnecting")
	}
}

// TestInitialFetchTimeout: a named watch the server never answers gets one
// InitialFetchTimeout update and init_fetch_timeout counts.
func TestInitialFetchTimeout(t *testing.T) {
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	setSnap(t, cache, snapshot(t, "v1", map[resource.Type][]types.Resource{resource.RouteType: {routeRes("other", "c")}}))
	s := startCP(t, cache)
	c, st := newClient(t, apiSource(corev3.ApiConfigSource_GRPC, s.addr))
	w := subscribe(t, c, withTimeout(adsSource, 200*time.Millisecond), xds.RouteType, "missing", st, "http.x.rds.missing")
	noTimeout := subscribe(t, c, withTimeout(adsSource, 0), xds.RouteType, "missing2", st, "http.x.rds.missing2")
	c.Start(context.Background())
	u := w.waitFor(t, func(u *xds.Update) bool { return true })
	if !u.InitialFetchTimeout || len(u.Resources) != 0 {
		t.Fatalf("update = %+v, want only InitialFetchTimeout", u)
	}
	if got := counter(st, "http.x.rds.missing.init_fetch_timeout"); got != 1 {
		t.Fatalf("init_fetch_timeout = %d", got)
	}
	// initial_fetch_timeout: 0 waits forever.
	select {
	case u := <-noTimeout.ch:
		t.Fatalf("a watch with initial_fetch_timeout 0 got %+v", u)
	default:
	}
	if got := counter(st, "http.x.rds.missing2.init_fetch_timeout"); got != 0 {
		t.Fatalf("init_fetch_timeout with 0 = %d", got)
	}
}

// TestNodeOnFirstMessageOnly: with set_node_on_first_message_only only the
// first request of the stream carries the node.
func TestNodeOnFirstMessageOnly(t *testing.T) {
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	setSnap(t, cache, snapshot(t, "v1", map[resource.Type][]types.Resource{
		resource.ClusterType:  {clusterRes("a")},
		resource.ListenerType: {listener("l")},
	}))
	s := startCP(t, cache)
	ads := apiSource(corev3.ApiConfigSource_GRPC, s.addr)
	ads.SetNodeOnFirstMessageOnly = true
	c, st := newClient(t, ads)
	cds := subscribe(t, c, adsSource, xds.ClusterType, "", st, "")
	lds := subscribe(t, c, adsSource, xds.ListenerType, "", st, "")
	c.Start(context.Background())
	cds.waitFor(t, atVersion("v1"))
	lds.waitFor(t, atVersion("v1"))
	s.waitReq(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetVersionInfo() == "v1" && r.GetTypeUrl() == xds.ListenerType
	})
	s.waitReq(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetVersionInfo() == "v1" && r.GetTypeUrl() == xds.ClusterType
	})
	reqs := s.requests()
	if len(reqs) < 4 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, r := range reqs {
		if (r.GetNode() != nil) != (i == 0) {
			t.Fatalf("request %d node = %v", i, r.GetNode())
		}
	}
}

// TestUnsubscribeNamed: cancelling the last watch of a named type sends a
// request without that name, and the resource is forgotten.
func TestUnsubscribeNamed(t *testing.T) {
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	setSnap(t, cache, snapshot(t, "v1", map[resource.Type][]types.Resource{resource.RouteType: {routeRes("a", "c"), routeRes("b", "c")}}))
	s := startCP(t, cache)
	c, st := newClient(t, apiSource(corev3.ApiConfigSource_GRPC, s.addr))
	ra := subscribe(t, c, adsSource, xds.RouteType, "a", st, "")
	rb := newRec()
	cancelB, err := c.Subscribe(xds.Watch{Source: adsSource, TypeURL: xds.RouteType, Name: "b", Watcher: rb})
	if err != nil {
		t.Fatal(err)
	}
	c.Start(context.Background())
	ra.waitFor(t, atVersion("v1"))
	rb.waitFor(t, atVersion("v1"))
	cancelB()
	s.waitReq(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xds.RouteType && slices.Equal(r.GetResourceNames(), []string{"a"})
	})
	for _, r := range c.Resources(xds.RouteType) {
		if r.Name == "b" {
			t.Fatal("route b is still cached after its last watch was cancelled")
		}
	}
}

// TestValidation: bad sources are refused with the field named.
func TestValidation(t *testing.T) {
	grpcSvc := []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "127.0.0.1:1"}}}}
	badADS := []struct {
		ads  *corev3.ApiConfigSource
		want string
	}{
		{&corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_REST, GrpcServices: grpcSvc}, "dynamic_resources.ads_config.api_type"},
		//lint:ignore SA1019 testing that deprecated values are handled
		{&corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_GRPC, TransportApiVersion: corev3.ApiVersion_V2, GrpcServices: grpcSvc}, "dynamic_resources.ads_config.transport_api_version"},
		{&corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_GRPC}, "dynamic_resources.ads_config.grpc_services: exactly one"},
		{&corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_GRPC, GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "nope"}}}}},
			"dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name"},
		{&corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_GRPC, GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{}}}}},
			"dynamic_resources.ads_config.grpc_services[0].google_grpc.target_uri"},
	}
	for _, tc := range badADS {
		_, err := New(Options{ADS: tc.ads})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v) = %v, want %q", tc.ads, err, tc.want)
		}
	}

	c, _ := newClient(t, nil)
	badSrc := []struct {
		src  *corev3.ConfigSource
		want string
	}{
		{adsSource, "ads: the bootstrap has no dynamic_resources.ads_config"},
		{&corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_REST}}}, "api_config_source.api_type"},
		{&corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_AGGREGATED_GRPC, GrpcServices: grpcSvc}}}, "api_config_source.api_type"},
		//lint:ignore SA1019 testing that deprecated values are handled
		{&corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: "/nonexistent/lds.yaml"}}, "path: \"/nonexistent/lds.yaml\" must refer to an existing path"},
		//lint:ignore SA1019 testing that deprecated values are handled
		{&corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V2, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{}}, "resource_api_version"},
		{&corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Self{}}, "self"},
	}
	for _, tc := range badSrc {
		err := c.CheckSource(tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckSource(%v) = %v, want %q", tc.src, err, tc.want)
		}
		if _, err := c.Subscribe(xds.Watch{Source: tc.src, TypeURL: xds.ClusterType, Watcher: newRec()}); err == nil {
			t.Errorf("Subscribe(%v) succeeded", tc.src)
		}
	}
	ok := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_DELTA_GRPC, GrpcServices: grpcSvc}}}
	if err := c.CheckSource(ok); err != nil {
		t.Errorf("CheckSource(valid) = %v", err)
	}
}
