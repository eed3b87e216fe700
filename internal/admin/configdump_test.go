package admin

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func inline(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
}

var updated = timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

// realisticDump is what a server with a static xds_cluster, two clusters
// and a listener from CDS/LDS (one warming), a route configuration from
// RDS and a certificate from SDS dumps, in Envoy's order. With redacted,
// the private keys read as Envoy shows them.
func realisticDump(t *testing.T, redacted bool) []proto.Message {
	bootstrapKey, sdsKey := "BOOTSTRAP-KEY", "/etc/key.pem"
	if redacted {
		bootstrapKey, sdsKey = "[redacted]", "[redacted]"
	}
	cluster := func(name string) *anypb.Any {
		return mustAny(t, &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})
	}
	listener := func(name string) *anypb.Any {
		return mustAny(t, &listenerv3.Listener{Name: name, StatPrefix: name})
	}
	cla := func(name string) *anypb.Any {
		return mustAny(t, &endpointv3.ClusterLoadAssignment{ClusterName: name})
	}
	return []proto.Message{
		&adminv3.BootstrapConfigDump{LastUpdated: updated, Bootstrap: &bootstrapv3.Bootstrap{
			Node: &corev3.Node{Id: "n1"},
			StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{{
				Name: "xds_cluster",
				TransportSocket: &corev3.TransportSocket{Name: "tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{
					CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: inline("CHAIN"), PrivateKey: inline(bootstrapKey)}}},
				})}},
			}}},
		}},
		&adminv3.ClustersConfigDump{
			VersionInfo:    "c7",
			StaticClusters: []*adminv3.ClustersConfigDump_StaticCluster{{Cluster: cluster("xds_cluster"), LastUpdated: updated}},
			DynamicActiveClusters: []*adminv3.ClustersConfigDump_DynamicCluster{
				{VersionInfo: "c7", Cluster: cluster("svc1"), LastUpdated: updated},
				{VersionInfo: "c6", Cluster: cluster("svc2"), LastUpdated: updated},
			},
			DynamicWarmingClusters: []*adminv3.ClustersConfigDump_DynamicCluster{{VersionInfo: "c7", Cluster: cluster("svc3"), LastUpdated: updated}},
		},
		&adminv3.EndpointsConfigDump{
			StaticEndpointConfigs:  []*adminv3.EndpointsConfigDump_StaticEndpointConfig{{EndpointConfig: cla("xds_cluster")}},
			DynamicEndpointConfigs: []*adminv3.EndpointsConfigDump_DynamicEndpointConfig{{VersionInfo: "e1", EndpointConfig: cla("svc1"), LastUpdated: updated}},
		},
		&adminv3.ListenersConfigDump{
			VersionInfo: "l3",
			DynamicListeners: []*adminv3.ListenersConfigDump_DynamicListener{
				{Name: "ingress", ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: "l3", Listener: listener("ingress"), LastUpdated: updated}},
				{Name: "egress", WarmingState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: "l3", Listener: listener("egress"), LastUpdated: updated}},
			},
		},
		&adminv3.RoutesConfigDump{
			DynamicRouteConfigs: []*adminv3.RoutesConfigDump_DynamicRouteConfig{{VersionInfo: "r1", LastUpdated: updated, RouteConfig: mustAny(t, &routev3.RouteConfiguration{
				Name: "local_route", VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}}},
			})}},
		},
		&adminv3.SecretsConfigDump{
			DynamicActiveSecrets: []*adminv3.SecretsConfigDump_DynamicSecret{{Name: "server_cert", VersionInfo: "s1", LastUpdated: updated,
				Secret: mustAny(t, &tlsv3.Secret{Name: "server_cert", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
					CertificateChain: inline("CHAIN"), PrivateKey: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: sdsKey}},
				}}}),
			}},
		},
	}
}

type dumpFixture struct {
	base    string
	lastEDS atomic.Bool
}

func startDump(t *testing.T, dumps []proto.Message) *dumpFixture {
	t.Helper()
	f := &dumpFixture{}
	cd := &adminv3.ConfigDump{}
	for _, d := range dumps {
		cd.Configs = append(cd.Configs, mustAny(t, d))
	}
	h := New(Deps{ConfigDump: func(includeEDS bool) (proto.Message, error) {
		f.lastEDS.Store(includeEDS)
		return cd, nil
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go Serve(ctx, ln, h)
	f.base = "http://" + ln.Addr().String()
	return f
}

func (f *dumpFixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(f.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestConfigDumpQueries(t *testing.T) {
	dumps := realisticDump(t, false)
	f := startDump(t, dumps)
	shown := realisticDump(t, true)
	all := func(idx ...int) []proto.Message {
		var out []proto.Message
		for _, i := range idx {
			out = append(out, shown[i])
		}
		return out
	}
	clusters := dumps[1].(*adminv3.ClustersConfigDump)
	tests := []struct {
		path string
		eds  bool
		want []proto.Message
	}{
		{"/config_dump", false, all(0, 1, 3, 4, 5)},
		{"/config_dump?include_eds", true, all(0, 1, 2, 3, 4, 5)},
		{"/config_dump?resource=dynamic_active_clusters", false, []proto.Message{clusters.DynamicActiveClusters[0], clusters.DynamicActiveClusters[1]}},
		{"/config_dump?resource=dynamic_warming_clusters", false, []proto.Message{clusters.DynamicWarmingClusters[0]}},
		{"/config_dump?resource=dynamic_active_clusters&mask=cluster.name,version_info", false, []proto.Message{
			&adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: "c7", Cluster: mustAny(t, &clusterv3.Cluster{Name: "svc1"})},
			&adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: "c6", Cluster: mustAny(t, &clusterv3.Cluster{Name: "svc2"})},
		}},
		{"/config_dump?resource=dynamic_route_configs&mask=route_config", false, []proto.Message{
			&adminv3.RoutesConfigDump_DynamicRouteConfig{RouteConfig: dumps[4].(*adminv3.RoutesConfigDump).DynamicRouteConfigs[0].RouteConfig},
		}},
		{"/config_dump?resource=dynamic_listeners&mask=name,warming_state.version_info", false, []proto.Message{
			&adminv3.ListenersConfigDump_DynamicListener{Name: "ingress"},
			&adminv3.ListenersConfigDump_DynamicListener{Name: "egress", WarmingState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: "l3"}},
		}},
		{"/config_dump?resource=static_endpoint_configs&include_eds", true, []proto.Message{
			dumps[2].(*adminv3.EndpointsConfigDump).StaticEndpointConfigs[0],
		}},
		// The mask fits only the clusters dump; the others are left out.
		{"/config_dump?mask=version_info,static_clusters", false, []proto.Message{
			&adminv3.ClustersConfigDump{VersionInfo: "c7", StaticClusters: clusters.StaticClusters},
		}},
		// version_info fits both the clusters and the listeners dumps.
		{"/config_dump?mask=version_info", false, []proto.Message{
			&adminv3.ClustersConfigDump{VersionInfo: "c7"}, &adminv3.ListenersConfigDump{VersionInfo: "l3"},
		}},
		{"/config_dump?mask=bootstrap.node.id", false, []proto.Message{
			&adminv3.BootstrapConfigDump{Bootstrap: &bootstrapv3.Bootstrap{Node: &corev3.Node{Id: "n1"}}},
		}},
		{"/config_dump?name_regex=svc1&resource=dynamic_active_clusters", false, []proto.Message{clusters.DynamicActiveClusters[0]}},
		{"/config_dump?name_regex=svc.*&mask=dynamic_active_clusters,dynamic_warming_clusters", false, []proto.Message{
			&adminv3.ClustersConfigDump{DynamicActiveClusters: clusters.DynamicActiveClusters, DynamicWarmingClusters: clusters.DynamicWarmingClusters},
		}},
		// Full match: "gress" alone names nothing; the listener's own name counts.
		{"/config_dump?name_regex=gress&resource=dynamic_listeners", false, nil},
		{"/config_dump?name_regex=e.*&resource=dynamic_listeners", false, []proto.Message{dumps[3].(*adminv3.ListenersConfigDump).DynamicListeners[1]}},
		{"/config_dump?name_regex=svc1&resource=dynamic_endpoint_configs&include_eds", true, []proto.Message{
			dumps[2].(*adminv3.EndpointsConfigDump).DynamicEndpointConfigs[0],
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := f.get(t, tt.path)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			if f.lastEDS.Load() != tt.eds {
				t.Errorf("ConfigDump(includeEDS=%v), want %v", f.lastEDS.Load(), tt.eds)
			}
			var got adminv3.ConfigDump
			if err := protojson.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("%v\n%s", err, body)
			}
			want := &adminv3.ConfigDump{}
			for _, m := range tt.want {
				want.Configs = append(want.Configs, mustAny(t, m))
			}
			if !sameDump(t, &got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", body, protojson.Format(want))
			}
		})
	}
}

// sameDump compares dumps by content: Any values are compared through
// their JSON form, since equal messages may marshal to different bytes.
func sameDump(t *testing.T, a, b *adminv3.ConfigDump) bool {
	t.Helper()
	generic := func(m proto.Message) any {
		j, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(j, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	return reflect.DeepEqual(generic(a), generic(b))
}

func TestConfigDumpErrors(t *testing.T) {
	f := startDump(t, realisticDump(t, false))
	tests := []struct {
		path string
		code int
		want string
	}{
		{"/config_dump?resource=version_info", 400, "version_info is not a repeated field. Use ?mask=version_info to get only this field\n"},
		{"/config_dump?resource=dynamic_nothing", 404, "dynamic_nothing not found in config dump\n"},
		// Endpoints are there only with include_eds.
		{"/config_dump?resource=static_endpoint_configs", 404, "static_endpoint_configs not found in config dump\n"},
		{"/config_dump?mask=nothing", 400, "FieldMask nothing could not be successfully applied to any configs.\n"},
		{"/config_dump?mask=dynamic_active_clusters.cluster", 400, "FieldMask dynamic_active_clusters.cluster could not be successfully applied to any configs.\n"},
		{"/config_dump?resource=dynamic_active_clusters&mask=cluster.nothing", 400, "FieldMask cluster.nothing could not be successfully used.\n"},
		{"/config_dump?resource=dynamic_active_clusters&mask=nothing", 400, "FieldMask nothing could not be successfully used.\n"},
		{"/config_dump?name_regex=(", 400, "Error while parsing name_regex from ("},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := f.get(t, tt.path)
			if code != tt.code || !strings.HasPrefix(body, tt.want) {
				t.Errorf("got %d %q, want %d %q", code, body, tt.code, tt.want)
			}
		})
	}
}

// TestConfigDumpRedacts: key material never leaves in a dump, whether it
// came from the bootstrap or from SDS, and the server's dump is not changed.
func TestConfigDumpRedacts(t *testing.T) {
	dumps := realisticDump(t, false)
	before := proto.Clone(dumps[5])
	f := startDump(t, dumps)
	for _, path := range []string{"/config_dump", "/config_dump?resource=dynamic_active_secrets", "/config_dump?mask=bootstrap"} {
		code, body := f.get(t, path)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		for _, secret := range []string{"BOOTSTRAP-KEY", "/etc/key.pem"} {
			if strings.Contains(body, secret) {
				t.Errorf("%s shows %q:\n%s", path, secret, body)
			}
		}
		if !strings.Contains(body, `"[redacted]"`) || !strings.Contains(body, `"CHAIN"`) {
			t.Errorf("%s: want the key redacted and the chain shown:\n%s", path, body)
		}
	}
	if !proto.Equal(before, dumps[5]) {
		t.Error("the server's dump was modified")
	}
}
