package rds

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/routetable"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/xds"
)

// Benchmarks of applying RDS updates, and of the per-request lookup while
// RDS and EDS updates are applied concurrently (see docs/performance.md,
// "Applying xDS updates").

// benchSub records watches; the benchmark delivers updates by hand.
type benchSub struct {
	mu      sync.Mutex
	watches []xds.Watch
}

func (s *benchSub) Subscribe(w xds.Watch) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watches = append(s.watches, w)
	return func() {}, nil
}

func (s *benchSub) watcher(tb testing.TB, typeURL, name string) xds.Watcher {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.watches {
		if w.TypeURL == typeURL && w.Name == name {
			return w.Watcher
		}
	}
	tb.Fatalf("no %s watch for %q", typeURL, name)
	return nil
}

func benchADS() *corev3.ConfigSource {
	return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

func benchToCluster(name string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}}}
}

func benchPrefix(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

// benchRouteConfig is vhosts virtual hosts of 10 routes each, mixing the
// matchers control planes generate: exact paths, a regex, header and
// query matchers, weighted clusters and a catch-all. Every route but the
// canary ones leads to "backend". variant changes one route of the first
// virtual host, so that two variants differ in exactly one route.
func benchRouteConfig(vhosts int, variant string) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: "routes"}
	for v := range vhosts {
		health := "/healthz"
		if v == 0 {
			health = "/healthz-" + variant
		}
		vh := &routev3.VirtualHost{
			Name:    fmt.Sprintf("vh%d", v),
			Domains: []string{fmt.Sprintf("svc%d.example.com", v), fmt.Sprintf("svc%d.example.com:8080", v)},
			Routes: []*routev3.Route{
				{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: health}}, Action: benchToCluster("backend")},
				{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/api/v1/users/[0-9]+"}}}, Action: benchToCluster("backend")},
				{Match: &routev3.RouteMatch{
					PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api/v1/"},
					Headers: []*routev3.HeaderMatcher{{Name: "x-canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
						StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "true"}},
					}}},
				}, Action: benchToCluster("canary")},
				{Match: benchPrefix("/api/v1/"), Action: benchToCluster("backend")},
				{Match: &routev3.RouteMatch{
					PathSpecifier:   &routev3.RouteMatch_Prefix{Prefix: "/api/v2/"},
					QueryParameters: []*routev3.QueryParameterMatcher{{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}},
				}, Action: benchToCluster("canary")},
				{Match: benchPrefix("/api/v2/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
						{Name: "backend", Weight: wrapperspb.UInt32(90)}, {Name: "canary", Weight: wrapperspb.UInt32(10)},
					}}},
				}}},
				{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/static"}}, Action: benchToCluster("backend")},
				{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/Legacy"}, CaseSensitive: wrapperspb.Bool(false)}, Action: benchToCluster("backend")},
				{Match: benchPrefix("/ws"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "backend"},
					Timeout:          durationpb.New(0),
				}}},
				{Match: benchPrefix("/"), Action: benchToCluster("backend")},
			},
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	return rc
}

func benchRDSUpdate(version string, rc *routev3.RouteConfiguration) *xds.Update {
	return &xds.Update{Version: version, Full: true, Resources: []xds.Resource{{Name: rc.GetName(), Version: version, Message: rc}}}
}

// benchEDSBackend is a cluster manager whose one cluster, "backend", is an
// EDS cluster with n endpoints, and that cluster's EDS watcher.
func benchEDSBackend(tb testing.TB, sub *benchSub, n int) (*cluster.Manager, xds.Watcher) {
	tb.Helper()
	cm, err := cluster.NewManager(nil, cluster.Options{Stats: stats.NewStore(), Logger: slog.New(slog.DiscardHandler), XDS: sub})
	if err != nil {
		tb.Fatal(err)
	}
	cm.Start(context.Background())
	pc := &clusterv3.Cluster{
		Name:                 "backend",
		ConnectTimeout:       durationpb.New(250 * time.Millisecond),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: benchADS()},
	}
	if err := cm.CDS().Update(&xds.Update{Version: "1", Full: true, Resources: []xds.Resource{{Name: "backend", Message: pc}}}); err != nil {
		tb.Fatal(err)
	}
	w := sub.watcher(tb, xds.EndpointType, "backend")
	if err := w.Update(benchEndpointsUpdate("0", n, 1)); err != nil {
		tb.Fatal(err)
	}
	<-cm.CDSInitialized() // warming ends on the manager's own goroutine
	if cm.Get("backend") == nil {
		tb.Fatal("backend cluster not active")
	}
	return cm, w
}

// benchEndpointsUpdate is an assignment for "backend" of n endpoints on
// 10.0.0.0/16, the first of them on port firstPort.
func benchEndpointsUpdate(version string, n int, firstPort uint32) *xds.Update {
	eps := make([]*endpointv3.LbEndpoint, n)
	for i := range eps {
		port := uint32(8080)
		if i == 0 {
			port = 9000 + firstPort
		}
		ip := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		eps[i] = &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: ip.String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
			}}},
		}}}
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "backend", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}}
	return &xds.Update{Version: version, Full: true, Resources: []xds.Resource{{Name: "backend", Version: version, Message: cla}}}
}

// benchRDSProvider subscribes to route configuration "routes" and returns its
// table reference and watcher.
func benchRDSProvider(tb testing.TB, sub *benchSub, clusters routetable.ClusterSource) (*routetable.TableRef, xds.Watcher) {
	tb.Helper()
	m := NewManager(sub, stats.NewStore(), clusters, nil)
	ref, err := m.Subscribe(&hcmv3.Rds{RouteConfigName: "routes", ConfigSource: benchADS()}, "ingress", false, xds.Deps{Init: xds.NewInit()})
	if err != nil {
		tb.Fatal(err)
	}
	return ref, sub.watcher(tb, xds.RouteType, "routes")
}

// BenchmarkRDSApply: a RouteConfiguration of 100 virtual hosts × 10
// routes, compiled and swapped in, each time differing from the previous
// one in one route (RDS has no per-route diff: every update recompiles).
func BenchmarkRDSApply(b *testing.B) {
	sub := &benchSub{}
	cm, _ := benchEDSBackend(b, sub, 3)
	defer cm.Close()
	ref, w := benchRDSProvider(b, sub, cm)
	us := [2]*xds.Update{benchRDSUpdate("a", benchRouteConfig(100, "a")), benchRDSUpdate("b", benchRouteConfig(100, "b"))}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := w.Update(us[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if t := ref.Load(); t == nil || len(t.VirtualHosts) != 100 {
		b.Fatal("route table not published")
	}
}

// benchHotRequests are matched by different routes of a 100-virtual-host
// table, all leading to "backend".
var benchHotRequests = []*message.Request{
	{Method: "GET", Scheme: "http", Authority: "svc57.example.com", Path: "/api/v1/users/12345", Protocol: message.HTTP11},
	{Method: "GET", Scheme: "http", Authority: "svc3.example.com:8080", Path: "/static/app.js", Protocol: message.HTTP11},
	{Method: "GET", Scheme: "http", Authority: "svc99.example.com", Path: "/index.html", Protocol: message.HTTP11},
	{Method: "GET", Scheme: "http", Authority: "svc12.example.com", Path: "/legacy/x", Protocol: message.HTTP11},
}

// benchLookup is the per-request path: load the route table, match, load the
// cluster behind the route's Ref, pick a host.
func benchLookup(ref *routetable.TableRef, req *message.Request) *cluster.Host {
	r, _ := ref.Load().Match(req)
	if r == nil {
		return nil
	}
	c, _, _ := r.Cluster(req, 0)
	if c == nil {
		return nil
	}
	return c.Pick(nil)
}

// BenchmarkHotPathLookup is route match + cluster Ref.Load + Pick on
// every core, on a 100 × 10 route table and a 100-endpoint EDS cluster.
// "idle" has no updates: its allocs/op is the lookup's own and must be 0.
// "swapping" has a goroutine applying an RDS update (the whole table
// recompiled) and an EDS update (one endpoint changed) every millisecond.
// The process-wide allocation count then includes the swaps' own
// allocations; lookup-allocs/op subtracts them (measured per swap before
// the run), and must stay 0.
func BenchmarkHotPathLookup(b *testing.B) {
	sub := &benchSub{}
	cm, eds := benchEDSBackend(b, sub, 100)
	defer cm.Close()
	ref, rds := benchRDSProvider(b, sub, cm)
	rdsUs := [2]*xds.Update{benchRDSUpdate("a", benchRouteConfig(100, "a")), benchRDSUpdate("b", benchRouteConfig(100, "b"))}
	edsUs := [2]*xds.Update{benchEndpointsUpdate("a", 100, 1), benchEndpointsUpdate("b", 100, 2)}
	if err := rds.Update(rdsUs[0]); err != nil {
		b.Fatal(err)
	}
	for _, req := range benchHotRequests {
		if benchLookup(ref, req) == nil {
			b.Fatalf("%s%s: no host", req.Authority, req.Path)
		}
	}
	var si, ei int
	swapRDS := func() {
		si++
		if err := rds.Update(rdsUs[si%2]); err != nil {
			panic(err)
		}
	}
	swapEDS := func() {
		ei++
		if err := eds.Update(edsUs[ei%2]); err != nil {
			panic(err)
		}
	}

	run := func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Uint32
		var misses atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			req := benchHotRequests[int(next.Add(1))%len(benchHotRequests)]
			var miss int64
			for pb.Next() {
				if benchLookup(ref, req) == nil {
					miss++
				}
			}
			misses.Add(miss)
		})
		if n := misses.Load(); n > 0 {
			b.Fatalf("%d lookups found no host", n)
		}
	}

	b.Run("idle", run)

	b.Run("swapping", func(b *testing.B) {
		perRDS := testing.AllocsPerRun(20, swapRDS)
		perEDS := testing.AllocsPerRun(20, swapEDS)
		stop := make(chan struct{})
		done := make(chan struct{})
		var nRDS, nEDS int
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		go func() {
			defer close(done)
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				swapRDS()
				swapEDS()
				nRDS++
				nEDS++
			}
		}()
		start := time.Now()
		run(b)
		elapsed := time.Since(start)
		close(stop)
		<-done
		runtime.ReadMemStats(&after)
		swaps := float64(nRDS)*perRDS + float64(nEDS)*perEDS
		b.ReportMetric((float64(after.Mallocs-before.Mallocs)-swaps)/float64(b.N), "lookup-allocs/op")
		b.ReportMetric(float64(nRDS)/elapsed.Seconds(), "rds-swaps/s")
		b.ReportMetric(float64(nEDS)/elapsed.Seconds(), "eds-swaps/s")
	})
}
