package xds_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/test/legatetest"
)

// googleGRPCBootstrap takes everything over ADS from a google_grpc target
// URI: there is no envoy_grpc cluster, and no static resource at all.
func googleGRPCBootstrap(m Mode, cpPort, adminPort int) string {
	api := "GRPC"
	if m.Delta {
		api = "DELTA_GRPC"
	}
	return fmt.Sprintf(`node: {id: %q, cluster: legate-test-cluster}
admin:
  address:
    socket_address: {address: 127.0.0.1, port_value: %d}
dynamic_resources:
  ads_config:
    api_type: %s
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services:
    - google_grpc: {target_uri: "127.0.0.1:%d", stat_prefix: ads}
  cds_config: {ads: {}, resource_api_version: V3}
  lds_config: {ads: {}, resource_api_version: V3}
`, nodeID, adminPort, api, cpPort)
}

// TestGoogleGRPCADS: an ads_config whose grpc_services entry is google_grpc
// (a target URI, no cluster) converges, and keeps taking updates.
func TestGoogleGRPCADS(t *testing.T) {
	t.Parallel()
	for _, m := range modes[:2] {
		t.Run(m.Name, func(t *testing.T) {
			t.Parallel()
			a, b := startUpstream(t, "a"), startUpstream(t, "b")
			cp := startControlPlane(t)
			port := legatetest.FreePort(t)
			w := baseWorld(t, m, port, a, b, "svc_a")
			cp.Set(w.Resources())
			l := startLegate(t, func(admin int) string { return googleGRPCBootstrap(m, cp.Port, admin) })
			url := "http://127.0.0.1:" + strconv.Itoa(port) + "/g"
			c := proxyClient()
			waitUpstream(t, c, url, "a")
			l.waitStat(t, "control_plane.connected_state", "== 1", func(v int64) bool { return v == 1 })
			l.waitStat(t, "cluster_manager.active_clusters", "== 2 (svc_a, svc_b; no xds cluster)", func(v int64) bool { return v == 2 })
			if !slices.ContainsFunc(cp.Requests(), func(r request) bool { return r.ADS && r.Delta == m.Delta }) {
				t.Errorf("no request on an ADS stream (delta=%v): %s", m.Delta, cp.describe(0))
			}

			w.Routes = []types.Resource{routeConfig("rc_main", "/", "svc_b", "")}
			cp.Set(w.Resources())
			waitUpstream(t, c, url, "b")
		})
	}
}

// configsOf is every config in a dump that is a T, unpacked.
func configsOf[T proto.Message](t testing.TB, d *adminv3.ConfigDump, newT func() T) []T {
	t.Helper()
	var out []T
	for _, c := range d.GetConfigs() {
		m := newT()
		if c.MessageIs(m) {
			if err := c.UnmarshalTo(m); err != nil {
				t.Fatalf("config dump %s: %v", c.GetTypeUrl(), err)
			}
			out = append(out, m)
		}
	}
	return out
}

// TestConfigDumpMaskAndEDS reads a dynamic config dump as tools do:
// ?mask= on the whole dump, ?resource= with a mask reaching into the
// resource inside its Any, and ?include_eds for the EDS assignments with
// their versions.
func TestConfigDumpMaskAndEDS(t *testing.T) {
	t.Parallel()
	m := modes[0]
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	var w World
	d := startDyn(t, m, "/dump", "a", func(port int) World {
		w = baseWorld(t, m, port, a, b, "svc_a")
		return w
	})
	l := d.Legate

	t.Run("mask on the whole dump", func(t *testing.T) {
		dump := l.ConfigDump(t, "?mask=dynamic_active_clusters")
		if len(dump.GetConfigs()) != 1 {
			t.Errorf("?mask=dynamic_active_clusters: %d configs, want only the clusters dump", len(dump.GetConfigs()))
		}
		cds := dumpOf(t, dump, &adminv3.ClustersConfigDump{})
		if cds.GetVersionInfo() != "" || len(cds.GetStaticClusters()) != 0 {
			t.Errorf("masked clusters dump kept version_info %q and %d static_clusters", cds.GetVersionInfo(), len(cds.GetStaticClusters()))
		}
		var names []string
		for _, dc := range cds.GetDynamicActiveClusters() {
			var c clusterv3.Cluster
			if err := dc.GetCluster().UnmarshalTo(&c); err != nil {
				t.Fatal(err)
			}
			names = append(names, c.GetName())
			if dc.GetVersionInfo() != d.Version {
				t.Errorf("dynamic_active_clusters[%s].version_info = %q, want %q", c.GetName(), dc.GetVersionInfo(), d.Version)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"svc_a", "svc_b"}) {
			t.Errorf("dynamic_active_clusters = %v, want [svc_a svc_b]", names)
		}
	})

	t.Run("resource and mask into the Any", func(t *testing.T) {
		dump := l.ConfigDump(t, "?resource=dynamic_route_configs&mask=route_config.name")
		var names []string
		for _, c := range dump.GetConfigs() {
			var dr adminv3.RoutesConfigDump_DynamicRouteConfig
			if err := c.UnmarshalTo(&dr); err != nil {
				t.Fatalf("?resource=dynamic_route_configs: %v (%s)", err, c.GetTypeUrl())
			}
			if dr.GetVersionInfo() != "" || dr.GetLastUpdated() != nil {
				t.Errorf("masked dynamic_route_configs element kept version_info %q / last_updated %v", dr.GetVersionInfo(), dr.GetLastUpdated())
			}
			var rc routev3.RouteConfiguration
			if err := dr.GetRouteConfig().UnmarshalTo(&rc); err != nil {
				t.Fatalf("route_config: %v", err)
			}
			if len(rc.GetVirtualHosts()) != 0 {
				t.Errorf("route_config %q kept %d virtual_hosts under mask route_config.name", rc.GetName(), len(rc.GetVirtualHosts()))
			}
			names = append(names, rc.GetName())
		}
		if !slices.Equal(names, []string{"rc_main"}) {
			t.Errorf("?resource=dynamic_route_configs&mask=route_config.name gave route configs %v, want [rc_main]", names)
		}
	})

	// endpoints is what ?include_eds says about the dynamic assignments:
	// cluster → (version, ports).
	type eds struct {
		version string
		ports   []int
	}
	endpoints := func(t *testing.T, des []*adminv3.EndpointsConfigDump_DynamicEndpointConfig) map[string]eds {
		t.Helper()
		got := map[string]eds{}
		for _, de := range des {
			var cla endpointv3.ClusterLoadAssignment
			if err := de.GetEndpointConfig().UnmarshalTo(&cla); err != nil {
				t.Fatalf("dynamic_endpoint_configs: %v", err)
			}
			e := eds{version: de.GetVersionInfo()}
			for _, le := range cla.GetEndpoints() {
				for _, lb := range le.GetLbEndpoints() {
					e.ports = append(e.ports, int(lb.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()))
				}
			}
			got[cla.GetClusterName()] = e
		}
		return got
	}

	t.Run("include_eds", func(t *testing.T) {
		if n := len(configsOf(t, l.ConfigDump(t, ""), func() *adminv3.EndpointsConfigDump { return &adminv3.EndpointsConfigDump{} })); n != 0 {
			t.Errorf("/config_dump without include_eds has %d EndpointsConfigDumps, want none", n)
		}
		dumps := configsOf(t, l.ConfigDump(t, "?include_eds"), func() *adminv3.EndpointsConfigDump { return &adminv3.EndpointsConfigDump{} })
		if len(dumps) != 1 {
			t.Fatalf("/config_dump?include_eds: %d EndpointsConfigDumps, want 1", len(dumps))
		}
		got := endpoints(t, dumps[0].GetDynamicEndpointConfigs())
		want := map[string]eds{"svc_a": {d.Version, []int{a.Port}}, "svc_b": {d.Version, []int{b.Port}}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("?include_eds dynamic_endpoint_configs = %v, want %v", got, want)
		}

		// A new EDS version shows, with its endpoints.
		w.Endpoints = []types.Resource{assignment("svc_a", a.Port, b.Port), assignment("svc_b", b.Port)}
		v2 := d.CP.Set(w.Resources())
		want = map[string]eds{"svc_a": {v2, []int{a.Port, b.Port}}, "svc_b": {v2, []int{b.Port}}}
		eventually(t, waitTimeout, func() bool {
			// ?resource= gives the elements themselves.
			got = endpoints(t, configsOf(t, l.ConfigDump(t, "?resource=dynamic_endpoint_configs&include_eds"),
				func() *adminv3.EndpointsConfigDump_DynamicEndpointConfig {
					return &adminv3.EndpointsConfigDump_DynamicEndpointConfig{}
				}))
			return fmt.Sprint(got) == fmt.Sprint(want)
		}, func() string { return fmt.Sprintf("dynamic_endpoint_configs = %v, want %v", got, want) })
	})
}

// healthAssignment is cluster name's endpoints with an EDS health status
// each.
func healthAssignment(name string, ups []*Upstream, health []corev3.HealthStatus) *endpointv3.ClusterLoadAssignment {
	cla := assignment(name)
	lbs := make([]*endpointv3.LbEndpoint, len(ups))
	for i, u := range ups {
		lbs[i] = &endpointv3.LbEndpoint{HealthStatus: health[i], HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: sockAddr(u.Port)}}}
	}
	cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}
	return cla
}

// TestEDSHealthStatus: an endpoint EDS marks UNHEALTHY leaves the rotation
// (not one request reaches it; two of three stay healthy, above the panic
// threshold), and comes back when EDS marks it HEALTHY again.
func TestEDSHealthStatus(t *testing.T) {
	t.Parallel()
	m := modes[1]
	ups := []*Upstream{startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")}
	healthy, unhealthy := corev3.HealthStatus_HEALTHY, corev3.HealthStatus_UNHEALTHY
	var w World
	d := startDyn(t, m, "/eds", "a", func(port int) World {
		w = baseWorld(t, m, port, ups[0], ups[1], "svc_a")
		w.Endpoints[0] = healthAssignment("svc_a", ups, []corev3.HealthStatus{healthy, healthy, healthy})
		return w
	})
	c := proxyClient()
	// All three in rotation.
	waitUpstream(t, c, d.URL, "b")
	waitUpstream(t, c, d.URL, "c")

	w.Endpoints[0] = healthAssignment("svc_a", ups, []corev3.HealthStatus{healthy, unhealthy, healthy})
	d.CP.Set(w.Resources())
	// /clusters marks b out of rotation, as Envoy does.
	bHost := "svc_a::127.0.0.1:" + strconv.Itoa(ups[1].Port) + "::health_flags::"
	var flags string
	eventually(t, waitTimeout, func() bool {
		body, err := get(d.Legate.AdminURL("/clusters"))
		flags = ""
		for _, line := range strings.Split(body, "\n") {
			if rest, ok := strings.CutPrefix(line, bHost); ok {
				flags = rest
			}
		}
		return err == nil && flags == "/failed_eds_health"
	}, func() string { return fmt.Sprintf("/clusters %s%q, want /failed_eds_health", bHost, flags) })

	before := ups[1].Requests.Load()
	seen := map[string]int{}
	for i := 0; i < 60; i++ {
		ans, err := fetch(c, d.URL)
		if err != nil || ans.Status != http.StatusOK {
			t.Fatalf("with b unhealthy: %v %d %q", err, ans.Status, ans.Body)
		}
		seen[ans.Body]++
	}
	if n := ups[1].Requests.Load() - before; n != 0 || seen["b"] != 0 {
		t.Errorf("the UNHEALTHY endpoint b got %d requests (answers %v)", n, seen)
	}
	if seen["a"] == 0 || seen["c"] == 0 {
		t.Errorf("the healthy endpoints a and c did not share the load: %v", seen)
	}

	w.Endpoints[0] = healthAssignment("svc_a", ups, []corev3.HealthStatus{healthy, healthy, healthy})
	d.CP.Set(w.Resources())
	waitUpstream(t, c, d.URL, "b")
}

// accessLogged is httpListener with a file access log at path recording
// the response code, flags and details of each request.
func accessLogged(t testing.TB, l *listenerv3.Listener, path string) *listenerv3.Listener {
	t.Helper()
	f := l.FilterChains[0].Filters[0]
	var hcm hcmv3.HttpConnectionManager
	if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	hcm.AccessLog = []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(t, &filev3.FileAccessLog{
			Path: path,
			AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
					Specifier: &corev3.DataSource_InlineString{InlineString: "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n"}}}}},
		})}}}
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &hcm)}
	return l
}

// TestRemovedClusterStillRouted: CDS removes a cluster a route still names
// (RDS does not validate clusters by default, so the route stays). As in
// Envoy, requests get the route's cluster_not_found_response_code (503 by
// default) as a local reply with an empty body, response flag NC and
// details cluster_not_found, counted in http.<prefix>.no_cluster; adding
// the cluster back restores traffic.
func TestRemovedClusterStillRouted(t *testing.T) {
	t.Parallel()
	m := modes[2]
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	logPath := filepath.Join(t.TempDir(), "access.log")
	var w World
	d := startDyn(t, m, "/nc", "b", func(port int) World {
		w = baseWorld(t, m, port, a, b, "svc_b")
		w.Listeners = []types.Resource{accessLogged(t, w.Listeners[0].(*listenerv3.Listener), logPath)}
		return w
	})
	l, c := d.Legate, proxyClient()

	full := w.Clone()
	w.Clusters, w.Endpoints = w.Clusters[:1], w.Endpoints[:1] // svc_a only
	d.CP.Set(w.Resources())
	l.waitStat(t, "cluster_manager.active_clusters", "== 2 (xds_cluster, svc_a)", func(v int64) bool { return v == 2 })

	var ans answer
	var err error
	eventually(t, waitTimeout, func() bool {
		ans, err = fetch(c, d.URL)
		return err == nil && ans.Status != http.StatusOK
	}, func() string {
		return fmt.Sprintf("the removed cluster still answers: %v %d %q", err, ans.Status, ans.Body)
	})
	if ans.Status != http.StatusServiceUnavailable || ans.Body != "" {
		t.Errorf("request to a removed cluster: %d %q, want 503 with an empty body", ans.Status, ans.Body)
	}
	if v := ans.Header.Get("X-Upstream"); v != "" {
		t.Errorf("the 503 came from upstream %q, want a local reply", v)
	}
	l.waitStat(t, "http.ingress_http.no_cluster", ">= 1", func(v int64) bool { return v >= 1 })
	// The route and the listener are still there, and were not rejected.
	if v, _ := l.Stat(t, "http.ingress_http.rds.rc_main.update_rejected"); v != 0 {
		t.Errorf("http.ingress_http.rds.rc_main.update_rejected = %d, want 0", v)
	}

	var logged string
	eventually(t, waitTimeout, func() bool {
		b, _ := os.ReadFile(logPath)
		logged = string(b)
		return strings.Contains(logged, "/nc 503 NC cluster_not_found\n")
	}, func() string {
		return fmt.Sprintf("access log has no line %q:\n%s", "/nc 503 NC cluster_not_found", logged)
	})

	d.CP.Set(full.Resources())
	waitUpstream(t, c, d.URL, "b")
}
