package xds_test

import (
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/tooling/controlplane"
)

// Mode is one way of talking xDS: aggregated or one stream per type, state
// of the world or delta.
type Mode struct {
	Name  string
	ADS   bool
	Delta bool
}

var modes = []Mode{
	{Name: "SotWADS", ADS: true},
	{Name: "DeltaADS", ADS: true, Delta: true},
	{Name: "SotWPerType"},
	{Name: "DeltaPerType", Delta: true},
}

// Source is the ConfigSource resources use to refer to others (RDS from an
// HCM, EDS from a cluster).
func (m Mode) Source() *corev3.ConfigSource {
	if m.ADS {
		return &corev3.ConfigSource{
			ResourceApiVersion:    corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		}
	}
	t := corev3.ApiConfigSource_GRPC
	if m.Delta {
		t = corev3.ApiConfigSource_DELTA_GRPC
	}
	return &corev3.ConfigSource{
		ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType:             t,
			TransportApiVersion: corev3.ApiVersion_V3,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "xds_cluster"}}}},
		}},
	}
}

// Bootstrap is a legate bootstrap whose CDS and LDS come from the control
// plane at cpPort in mode m, through the static cluster xds_cluster.
func (m Mode) Bootstrap(cpPort, adminPort int) string {
	return controlplane.Bootstrap(controlplane.BootstrapOptions{NodeID: nodeID, NodeCluster: "legate-test-cluster",
		AdminPort: adminPort, XDSPort: cpPort, Delta: m.Delta, PerType: !m.ADS})
}

func sockAddr(port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}}
}

// edsCluster is an EDS cluster whose endpoints come from src.
func edsCluster(name string, src *corev3.ConfigSource, connectTimeout time.Duration) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(connectTimeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: src},
	}
}

// assignment is cluster name's endpoints: the ports of loopback upstreams.
func assignment(name string, ports ...int) *endpointv3.ClusterLoadAssignment {
	lbs := make([]*endpointv3.LbEndpoint, len(ports))
	for i, p := range ports {
		lbs[i] = &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: sockAddr(p)}}}
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}}
}

// routeConfig routes prefix to cluster in one catch-all virtual host;
// header, when set, is added to responses as x-route-gen.
func routeConfig(name, prefix, cluster, header string) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "all",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
			}},
		}},
	}
	if header != "" {
		rc.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "x-route-gen", Value: header},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}}
	}
	return rc
}

// hcmOpts shape the HTTP connection manager of httpListener.
type hcmOpts struct {
	StatPrefix string
	// RDS names the route configuration fetched from Source; Inline, when
	// set, is used instead.
	RDS    string
	Source *corev3.ConfigSource
	Inline *routev3.RouteConfiguration
	// Lua puts an (unsupported) Lua filter before the router.
	Lua bool
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// httpListener is a listener on 127.0.0.1:port with one HTTP connection
// manager.
func httpListener(t testing.TB, name string, port int, o hcmOpts) *listenerv3.Listener {
	t.Helper()
	m := &hcmv3.HttpConnectionManager{StatPrefix: o.StatPrefix, CodecType: hcmv3.HttpConnectionManager_AUTO}
	if o.Inline != nil {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: o.Inline}
	} else {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: o.Source, RouteConfigName: o.RDS}}
	}
	if o.Lua {
		m.HttpFilters = append(m.HttpFilters, &hcmv3.HttpFilter{Name: "envoy.filters.http.lua",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &luav3.Lua{
				DefaultSourceCode: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{
					InlineString: "function envoy_on_request(h) end"}}})}})
	}
	m.HttpFilters = append(m.HttpFilters, &hcmv3.HttpFilter{Name: "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}})
	return &listenerv3.Listener{
		Name:    name,
		Address: sockAddr(port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, m)},
		}}}},
	}
}

// World is the configuration a test serves, rendered into snapshots.
type World struct {
	Clusters  []types.Resource
	Endpoints []types.Resource
	Listeners []types.Resource
	Routes    []types.Resource
}

// Clone copies the lists (not the resources), so a test can change one
// list of the copy.
func (w World) Clone() World {
	return World{slices.Clone(w.Clusters), slices.Clone(w.Endpoints), slices.Clone(w.Listeners), slices.Clone(w.Routes)}
}

func (w World) Resources() map[resource.Type][]types.Resource {
	return map[resource.Type][]types.Resource{
		resource.ClusterType:  w.Clusters,
		resource.EndpointType: w.Endpoints,
		resource.ListenerType: w.Listeners,
		resource.RouteType:    w.Routes,
	}
}

// undecodableCluster marshals to bytes that do not decode as a Cluster:
// field 1 (Cluster.name, a string) holding invalid UTF-8.
func undecodableCluster() types.Resource {
	return wrapperspb.Bytes([]byte{0xff, 0xfe, 0xfd})
}
