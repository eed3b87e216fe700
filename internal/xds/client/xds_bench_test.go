package client

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
)

// BenchmarkDecodeDeliverCDS: a SotW DiscoveryResponse of N STATIC
// clusters (3 endpoints each) as it comes off the wire: unmarshalled (what
// the gRPC codec does), each Any decoded, names checked, the update handed
// to a wildcard CDS watch (which accepts it at once) and cached for
// config_dump. The network and the cluster manager's own work (measured in
// internal/upstream/cluster) are left out. See docs/performance.md,
// "Applying xDS updates".
func BenchmarkDecodeDeliverCDS(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			wire := benchCDSResponse(b, n)
			store := stats.NewStore()
			c, err := New(Options{Stats: store})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			path := filepath.Join(b.TempDir(), "cds.yaml")
			if err := os.WriteFile(path, []byte("resources: []\n"), 0o644); err != nil {
				b.Fatal(err)
			}
			got := 0
			sc := store.Scope("cluster_manager").Scope("cds")
			_, err = c.Subscribe(xds.Watch{
				Source: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{
					PathConfigSource: &corev3.PathConfigSource{Path: path},
				}},
				TypeURL: xds.ClusterType,
				Stats:   &sc,
				Watcher: xds.WatcherFunc(func(u *xds.Update) error { got = len(u.Resources); return nil }),
			})
			if err != nil {
				b.Fatal(err)
			}
			// Not started: the benchmark is the feed's goroutine.
			f := c.feeds["file:"+xds.ClusterType+":"+path]
			if f == nil {
				b.Fatal("no file feed")
			}
			ts := f.types[xds.ClusterType]
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				resp := &discoveryv3.DiscoveryResponse{}
				if err := proto.Unmarshal(wire, resp); err != nil {
					b.Fatal(err)
				}
				f.deliverMu.Lock()
				err := f.applySotw(ts, resp.GetVersionInfo(), resp.GetResources())
				f.deliverMu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
			}
			if got != n || store.Counter("cluster_manager.cds.update_success").Value() == 0 {
				b.Fatalf("watch got %d clusters, want %d", got, n)
			}
		})
	}
}

// benchCDSResponse is the wire form of a DiscoveryResponse of n STATIC
// clusters of 3 endpoints each.
func benchCDSResponse(tb testing.TB, n int) []byte {
	tb.Helper()
	resp := &discoveryv3.DiscoveryResponse{VersionInfo: "1", TypeUrl: xds.ClusterType, Nonce: "1"}
	for i := range n {
		name := fmt.Sprintf("svc-%04d", i)
		var eps []*endpointv3.LbEndpoint
		for j := range 3 {
			ip := netip.AddrFrom4([4]byte{10, byte(1 + i/256), byte(i % 256), byte(j)})
			eps = append(eps, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: ip.String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080},
				}}},
			}}})
		}
		a, err := anypb.New(&clusterv3.Cluster{
			Name:                 name,
			ConnectTimeout:       durationpb.New(250 * time.Millisecond),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			LoadAssignment: &endpointv3.ClusterLoadAssignment{
				ClusterName: name,
				Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}},
			},
		})
		if err != nil {
			tb.Fatal(err)
		}
		resp.Resources = append(resp.Resources, a)
	}
	wire, err := proto.Marshal(resp)
	if err != nil {
		tb.Fatal(err)
	}
	return wire
}
