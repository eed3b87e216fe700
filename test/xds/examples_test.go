package xds_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/test/legatetest"
)

// examplesDir is the repository's sibling shared/envoy-examples; the tests
// that load Envoy's examples skip without it.
func examplesDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "envoy-examples")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("SKIP: %s is absent: %v", dir, err)
	}
	return dir
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// replaceAll applies old → new pairs, failing when an old string is not
// there: a changed example must not silently stop being rewritten.
func replaceAll(t testing.TB, what, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s: %q not found; has the example changed?", what, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

// writeAtomic replaces path by writing a sibling file and renaming it over
// path, as the example's `sed -i` does; Envoy watches for the move.
func writeAtomic(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestEnvoyExampleDynamicConfigFS runs Envoy's dynamic-config-fs example:
// LDS and CDS from files, then the cluster file replaced to point at the
// second service, which traffic follows.
func TestEnvoyExampleDynamicConfigFS(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(examplesDir(t), "dynamic-config-fs")
	s1, s2 := startUpstream(t, "service1"), startUpstream(t, "service2")
	state := t.TempDir()
	port := legatetest.FreePort(t)

	lds := replaceAll(t, "lds.yaml", readFile(t, filepath.Join(dir, "configs", "lds.yaml")),
		"0.0.0.0", "127.0.0.1", "port_value: 10000", "port_value: "+strconv.Itoa(port))
	cdsSrc := readFile(t, filepath.Join(dir, "configs", "cds.yaml"))
	cdsFor := func(u *Upstream) string {
		return replaceAll(t, "cds.yaml", cdsSrc, "address: service1", "address: 127.0.0.1",
			"port_value: 8080", "port_value: "+strconv.Itoa(u.Port))
	}
	writeAtomic(t, filepath.Join(state, "lds.yaml"), lds)
	writeAtomic(t, filepath.Join(state, "cds.yaml"), cdsFor(s1))
	bootstrap := readFile(t, filepath.Join(dir, "envoy.yaml"))

	l := startLegate(t, func(admin int) string {
		return replaceAll(t, "envoy.yaml", bootstrap, "/var/lib/envoy", state,
			"0.0.0.0", "127.0.0.1", "port_value: 19000", "port_value: "+strconv.Itoa(admin))
	})
	client := proxyClient()
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	waitUpstream(t, client, url, "service1")
	l.waitStat(t, "cluster_manager.cds.update_success", ">= 1", func(v int64) bool { return v >= 1 })
	l.waitStat(t, "listener_manager.lds.update_success", ">= 1", func(v int64) bool { return v >= 1 })

	writeAtomic(t, filepath.Join(state, "cds.yaml"), cdsFor(s2))
	waitUpstream(t, client, url, "service2")
	l.waitStat(t, "cluster_manager.cds.update_success", ">= 2", func(v int64) bool { return v >= 2 })
}

// TestEnvoyExampleDynamicConfigCP runs Envoy's dynamic-config-cp bootstrap
// against the in-process management server, which serves what the
// example's go-control-plane serves: listener_0 with RDS local_route over
// its own gRPC stream, and example_proxy_cluster; then the cluster is
// pointed at the second service.
func TestEnvoyExampleDynamicConfigCP(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(examplesDir(t), "dynamic-config-cp")
	s1, s2 := startUpstream(t, "service1"), startUpstream(t, "service2")
	cp := startControlPlane(t)
	port := legatetest.FreePort(t)
	cp.Set(exampleCPResources(t, port, s1))
	bootstrap := readFile(t, filepath.Join(dir, "envoy.yaml"))
	l := startLegate(t, func(admin int) string {
		return replaceAll(t, "envoy.yaml", bootstrap,
			"address: go-control-plane", "address: 127.0.0.1",
			"port_value: 18000", "port_value: "+strconv.Itoa(cp.Port),
			"0.0.0.0", "127.0.0.1",
			"port_value: 19000", "port_value: "+strconv.Itoa(admin))
	})
	client := proxyClient()
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	waitUpstream(t, client, url, "service1")
	l.waitStat(t, "control_plane.connected_state", "== 1", func(v int64) bool { return v == 1 })
	l.waitStat(t, "http.http.rds.local_route.update_success", ">= 1", func(v int64) bool { return v >= 1 })

	cp.Set(exampleCPResources(t, port, s2))
	waitUpstream(t, client, url, "service2")
}

// exampleCPResources mirrors the resources of go-control-plane's example
// server that the dynamic-config-cp example runs, with the upstream and the
// listener moved to loopback ports.
func exampleCPResources(t testing.TB, port int, up *Upstream) map[resource.Type][]types.Resource {
	const clusterName, routeName = "example_proxy_cluster", "local_route"
	rdsSource := &corev3.ConfigSource{
		ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType:                   corev3.ApiConfigSource_GRPC,
			TransportApiVersion:       corev3.ApiVersion_V3,
			SetNodeOnFirstMessageOnly: true,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "xds_cluster"}}}},
		}},
	}
	cluster := &clusterv3.Cluster{
		Name:                 clusterName,
		ConnectTimeout:       durationpb.New(5 * time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		DnsLookupFamily:      clusterv3.Cluster_V4_ONLY,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: clusterName,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(up.Port)}},
			}}}}},
	}
	route := &routev3.RouteConfiguration{
		Name: routeName,
		VirtualHosts: []*routev3.VirtualHost{{
			Name: "local_service", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier:     &routev3.RouteAction_Cluster{Cluster: clusterName},
					HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: up.Name},
				}},
			}},
		}},
	}
	manager := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: "http",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: rdsSource, RouteConfigName: routeName}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "http-router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}},
	}
	lis := &listenerv3.Listener{
		Name:    "listener_0",
		Address: sockAddr(port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "http-connection-manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, manager)},
		}}}},
	}
	return map[resource.Type][]types.Resource{
		resource.ClusterType:  {cluster},
		resource.RouteType:    {route},
		resource.ListenerType: {lis},
	}
}
