package client

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/xds"
)

// xdsCluster is the static xds_cluster of Envoy's dynamic-config-cp
// example, pointing at addr; http2 says whether it speaks HTTP/2.
func xdsCluster(t *testing.T, addr string, http2 bool) *clusterv3.Cluster {
	t.Helper()
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	c := &clusterv3.Cluster{
		Name:                 "xds_cluster",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "xds_cluster", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}},
			}}}},
		}}},
	}
	if http2 {
		opts, err := anypb.New(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})
		if err != nil {
			t.Fatal(err)
		}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts}
	}
	return c
}

func envoyGRPCSource(apiType corev3.ApiConfigSource_ApiType) *corev3.ApiConfigSource {
	return &corev3.ApiConfigSource{ApiType: apiType, GrpcServices: []*corev3.GrpcService{{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "xds_cluster"}}}}}
}

// TestEnvoyGRPC reaches the control plane through a real cluster manager's
// static HTTP/2 cluster, on a per-type CDS stream and on ADS.
func TestEnvoyGRPC(t *testing.T) {
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	setSnap(t, cache, snapshot(t, "v1", map[resource.Type][]types.Resource{
		resource.ClusterType:  {clusterRes("a")},
		resource.ListenerType: {listener("l")},
	}))
	s := startCP(t, cache)
	cm, err := cluster.NewManager([]*clusterv3.Cluster{xdsCluster(t, s.addr, true)}, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cm.Start(ctx)
	t.Cleanup(cm.Close)

	c, st := newClient(t, envoyGRPCSource(corev3.ApiConfigSource_GRPC), func(o *Options) { o.Clusters = cm })
	perType := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: envoyGRPCSource(corev3.ApiConfigSource_GRPC)}}
	cds := subscribe(t, c, perType, xds.ClusterType, "", st, "cluster_manager.cds")
	lds := subscribe(t, c, adsSource, xds.ListenerType, "", st, "listener_manager.lds")
	c.Start(ctx)
	if u := cds.waitFor(t, atVersion("v1")); names(u) != "a" {
		t.Fatalf("cds = %q", names(u))
	}
	if u := lds.waitFor(t, atVersion("v1")); names(u) != "l" {
		t.Fatalf("lds = %q", names(u))
	}

	// An xds cluster without HTTP/2 is refused at config time.
	cm1, err := cluster.NewManager([]*clusterv3.Cluster{xdsCluster(t, s.addr, false)}, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cm1.Close)
	_, err = New(Options{ADS: envoyGRPCSource(corev3.ApiConfigSource_GRPC), Clusters: cm1})
	if err == nil || !strings.Contains(err.Error(), "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name") || !strings.Contains(err.Error(), "HTTP/2") {
		t.Fatalf("New with an HTTP/1 xds cluster = %v", err)
	}
}
