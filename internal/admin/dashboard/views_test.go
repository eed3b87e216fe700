package dashboard

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

func sockAddr(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func TestListenerViews(t *testing.T) {
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{StatPrefix: "ingress_http"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := anypb.New(&clusterv3.Cluster{}) // not an HCM
	listeners := []*listenerv3.Listener{
		{Name: "web", Address: sockAddr("0.0.0.0", 8080), FilterChains: []*listenerv3.FilterChain{
			{Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}}},
		{Address: sockAddr("::1", 9090), StatPrefix: "", FilterChains: []*listenerv3.FilterChain{
			{Filters: []*listenerv3.Filter{{Name: "tcp", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: other}}}}}},
		{Name: "named", StatPrefix: "edge", Address: sockAddr("127.0.0.1", 1)},
	}
	got := ListenerViews(listeners)
	want := []ListenerView{
		{Name: "web", Address: "0.0.0.0:8080", StatName: "0.0.0.0_8080", HTTPStatPrefix: "ingress_http"},
		{Name: "[::1]:9090", Address: "[::1]:9090", StatName: "[__1]_9090"},
		{Name: "named", Address: "127.0.0.1:1", StatName: "edge"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestFromClusterManager(t *testing.T) {
	c := &clusterv3.Cluster{
		Name: "svc", AltStatName: "svc_stats",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "svc", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: sockAddr("127.0.0.1", 9000)}}}},
		}}},
	}
	m, err := cluster.NewManager([]*clusterv3.Cluster{c}, cluster.Options{Stats: stats.NewStore()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Get("svc").Hosts()[0].RqTotal.Add(7)
	views := FromClusterManager(m)()
	if len(views) != 1 || views[0].Name != "svc" || views[0].StatName != "svc_stats" || len(views[0].Hosts) != 1 {
		t.Fatalf("views: %+v", views)
	}
	h := views[0].Hosts[0]
	if h.Address != "127.0.0.1:9000" || !h.Healthy || h.HealthFlags != "healthy" || h.RqTotal != 7 || h.Weight != 1 {
		t.Errorf("host: %+v", h)
	}
}
