package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
)

// Benchmarks of applying CDS and EDS updates the way a large control plane
// sends them (see docs/performance.md, "Applying xDS updates"). Hosts get
// no connection pool (NewPool is nil): the pool is connpool's cost, paid
// once per new host.

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

func (s *benchSub) last(tb testing.TB, name string) xds.Watch {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.watches) - 1; i >= 0; i-- {
		if s.watches[i].Name == name {
			return s.watches[i]
		}
	}
	tb.Fatalf("no watch for %q", name)
	return xds.Watch{}
}

func benchEndpoint(ip netip.Addr, port uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip.String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
	}}}
}

// benchIP is the i-th address of 10.<block>.0.0/16.
func benchIP(block, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(block), byte(i >> 8), byte(i)})
}

// benchStaticClusters is n STATIC clusters of 3 IP endpoints each, as a
// service registry would publish them; port is cluster 0's port, so that
// two calls differing in it differ in exactly one cluster.
func benchStaticClusters(n int, port uint32) []*clusterv3.Cluster {
	out := make([]*clusterv3.Cluster, n)
	for i := range out {
		p := uint32(8080)
		if i == 0 {
			p = port
		}
		var eps []*endpointv3.LbEndpoint
		for j := range 3 {
			eps = append(eps, benchEndpoint(benchIP(1+i/256, (i%256)*3+j), p))
		}
		name := fmt.Sprintf("svc-%04d", i)
		out[i] = &clusterv3.Cluster{
			Name:                 name,
			ConnectTimeout:       durationpb.New(250e6),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
			LoadAssignment: &endpointv3.ClusterLoadAssignment{
				ClusterName: name,
				Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}},
			},
		}
	}
	return out
}

func benchCDSUpdate(version string, cs []*clusterv3.Cluster) *xds.Update {
	u := &xds.Update{Version: version, Full: true, Resources: make([]xds.Resource, len(cs))}
	for i, c := range cs {
		u.Resources[i] = xds.Resource{Name: c.GetName(), Version: version, Message: c}
	}
	return u
}

func benchManager(tb testing.TB, sub xds.Subscriber) *Manager {
	tb.Helper()
	opts := Options{Stats: stats.NewStore(), Logger: slog.New(slog.DiscardHandler)}
	if sub != nil {
		opts.XDS = sub
	}
	m, err := NewManager(nil, opts)
	if err != nil {
		tb.Fatal(err)
	}
	m.Start(context.Background())
	return m
}

// BenchmarkCDSFirstApply: a SotW CDS update of N new STATIC clusters on a
// fresh manager (start-up, or a new proxy joining).
func BenchmarkCDSFirstApply(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			u := benchCDSUpdate("1", benchStaticClusters(n, 8080))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				m := benchManager(b, nil)
				b.StartTimer()
				if err := m.CDS().Update(u); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if len(m.Clusters()) != n {
					b.Fatalf("%d clusters active, want %d", len(m.Clusters()), n)
				}
				m.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkCDSOneChanged: the same N clusters pushed again with one of
// them changed; the N-1 others must be skipped (proto.Equal).
func BenchmarkCDSOneChanged(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m := benchManager(b, nil)
			defer m.Close()
			us := [2]*xds.Update{benchCDSUpdate("a", benchStaticClusters(n, 8080)), benchCDSUpdate("b", benchStaticClusters(n, 8081))}
			if err := m.CDS().Update(us[0]); err != nil {
				b.Fatal(err)
			}
			other := m.Get("svc-0001")
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := m.CDS().Update(us[i%2]); err != nil {
					b.Fatal(err)
				}
			}
			if m.Get("svc-0001") != other {
				b.Fatal("an unchanged cluster was rebuilt")
			}
		})
	}
}

// benchCLA is an assignment of n endpoints in 10.<block>.0.0/16.
func benchCLA(name string, n, block int) *endpointv3.ClusterLoadAssignment {
	eps := make([]*endpointv3.LbEndpoint, n)
	for i := range eps {
		eps[i] = benchEndpoint(benchIP(block, i), 8080)
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}},
	}
}

func benchEDSUpdate(version string, cla *endpointv3.ClusterLoadAssignment) *xds.Update {
	return &xds.Update{Version: version, Full: true, Resources: []xds.Resource{{Name: cla.GetClusterName(), Version: version, Message: cla}}}
}

// benchEDSCluster is a manager with one active EDS cluster "svc" and its watch.
func benchEDSCluster(tb testing.TB, first *endpointv3.ClusterLoadAssignment) (*Manager, xds.Watcher) {
	tb.Helper()
	sub := &benchSub{}
	m := benchManager(tb, sub)
	pc := &clusterv3.Cluster{
		Name:                 "svc",
		ConnectTimeout:       durationpb.New(250e6),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		}},
	}
	if err := m.CDS().Update(benchCDSUpdate("1", []*clusterv3.Cluster{pc})); err != nil {
		tb.Fatal(err)
	}
	w := sub.last(tb, "svc").Watcher
	if err := w.Update(benchEDSUpdate("0", first)); err != nil {
		tb.Fatal(err)
	}
	// Warming ends on the manager's waiter goroutine.
	<-m.CDSInitialized()
	return m, w
}

// BenchmarkEDSReplaceAll: an assignment of N endpoints replacing N
// different ones (every host new): the cost of a first assignment.
func BenchmarkEDSReplaceAll(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			us := [2]*xds.Update{benchEDSUpdate("a", benchCLA("svc", n, 1)), benchEDSUpdate("b", benchCLA("svc", n, 2))}
			m, w := benchEDSCluster(b, benchCLA("svc", n, 2))
			defer m.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := w.Update(us[i%2]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if got := len(m.Get("svc").Hosts()); got != n {
				b.Fatalf("%d hosts, want %d", got, n)
			}
		})
	}
}

// BenchmarkEDSOneChanged: the same N endpoints with one address changed;
// the N-1 others keep their Host (and pool).
func BenchmarkEDSOneChanged(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			base := benchCLA("svc", n, 1)
			changed := benchCLA("svc", n, 1)
			changed.Endpoints[0].LbEndpoints[0] = benchEndpoint(benchIP(3, 0), 8080)
			us := [2]*xds.Update{benchEDSUpdate("a", base), benchEDSUpdate("b", changed)}
			m, w := benchEDSCluster(b, base)
			defer m.Close()
			kept := m.Get("svc").Hosts()[n-1]
			b.ReportAllocs()
			i := 1
			for b.Loop() {
				if err := w.Update(us[i%2]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if m.Get("svc").Hosts()[n-1] != kept {
				b.Fatal("an unchanged endpoint got a new Host")
			}
		})
	}
}
