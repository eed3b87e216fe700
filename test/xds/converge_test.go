package xds_test

import (
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
)

func TestConvergeSotWADS(t *testing.T)      { t.Parallel(); testConverge(t, modes[0]) }
func TestConvergeDeltaADS(t *testing.T)     { t.Parallel(); testConverge(t, modes[1]) }
func TestConvergeSotWPerType(t *testing.T)  { t.Parallel(); testConverge(t, modes[2]) }
func TestConvergeDeltaPerType(t *testing.T) { t.Parallel(); testConverge(t, modes[3]) }

// baseWorld is two EDS clusters (svc_a → a, svc_b → b) and listener "main"
// on port whose HCM (stat prefix ingress_http) takes route configuration
// rc_main over RDS, routing everything to cluster.
func baseWorld(t testing.TB, m Mode, port int, a, b *Upstream, cluster string) World {
	return World{
		Clusters: []types.Resource{
			edsCluster("svc_a", m.Source(), time.Second),
			edsCluster("svc_b", m.Source(), time.Second),
		},
		Endpoints: []types.Resource{assignment("svc_a", a.Port), assignment("svc_b", b.Port)},
		Listeners: []types.Resource{httpListener(t, "main", port, hcmOpts{StatPrefix: "ingress_http", RDS: "rc_main", Source: m.Source()})},
		Routes:    []types.Resource{routeConfig("rc_main", "/", cluster, "")},
	}
}

func testConverge(t *testing.T, m Mode) {
	a, b, c := startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")
	var w World
	d := startDyn(t, m, "/hello", "a", func(port int) World {
		w = baseWorld(t, m, port, a, b, "svc_a")
		return w
	})
	cp, l, port, url, v1 := d.CP, d.Legate, d.Port, d.URL, d.Version
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	client := proxyClient()

	// Envoy's node identification on the first request of a stream.
	if !slices.ContainsFunc(cp.Requests(), func(r request) bool { return r.UserAgent == "legate" }) {
		t.Errorf("no request carried node.user_agent_name %q; requests: %s", "legate", cp.describe(0))
	}

	// Subscription and manager stats, under Envoy's names.
	l.waitStat(t, "control_plane.connected_state", "== 1", func(v int64) bool { return v == 1 })
	for _, name := range []string{
		"cluster_manager.cds.update_success",
		"listener_manager.lds.update_success",
		"http.ingress_http.rds.rc_main.update_success",
		"cluster.svc_a.update_success",
		"cluster.svc_b.update_success",
	} {
		l.waitStat(t, name, ">= 1", func(v int64) bool { return v >= 1 })
	}
	l.waitStat(t, "listener_manager.total_listeners_active", "== 1", func(v int64) bool { return v == 1 })
	l.waitStat(t, "cluster_manager.active_clusters", "== 3 (xds_cluster, svc_a, svc_b)", func(v int64) bool { return v == 3 })
	for _, name := range []string{"cluster_manager.cds.update_rejected", "listener_manager.lds.update_rejected"} {
		if v, _ := l.Stat(t, name); v != 0 {
			t.Errorf("%s = %d, want 0", name, v)
		}
	}

	checkConfigDump(t, l, m, v1, port)

	t.Run("route change moves traffic", func(t *testing.T) {
		w.Routes = []types.Resource{routeConfig("rc_main", "/", "svc_b", "")}
		cp.Set(w.Resources())
		waitUpstream(t, client, url, "b")
		l.waitStat(t, "http.ingress_http.rds.rc_main.update_success", ">= 2", func(v int64) bool { return v >= 2 })
	})

	t.Run("endpoint change moves traffic", func(t *testing.T) {
		w.Endpoints = []types.Resource{assignment("svc_a", a.Port), assignment("svc_b", c.Port)}
		cp.Set(w.Resources())
		waitUpstream(t, client, url, "c")
	})

	t.Run("removed cluster goes", func(t *testing.T) {
		w.Clusters = w.Clusters[1:] // drops svc_a, which nothing routes to now
		w.Endpoints = w.Endpoints[1:]
		cp.Set(w.Resources())
		l.waitStat(t, "cluster_manager.active_clusters", "== 2 after removing svc_a", func(v int64) bool { return v == 2 })
		waitUpstream(t, client, url, "c")
	})

	t.Run("removed listener stops accepting", func(t *testing.T) {
		w.Listeners, w.Routes = nil, nil
		cp.Set(w.Resources())
		waitRefused(t, addr)
		l.waitStat(t, "listener_manager.total_listeners_active", "== 0", func(v int64) bool { return v == 0 })
		l.waitStat(t, "listener_manager.listener_removed", ">= 1", func(v int64) bool { return v >= 1 })
	})
}

// dumpOf finds the config of type T in a full config dump.
func dumpOf[T proto.Message](t testing.TB, d *adminv3.ConfigDump, empty T) T {
	t.Helper()
	for _, c := range d.GetConfigs() {
		if c.MessageIs(empty) {
			if err := c.UnmarshalTo(empty); err != nil {
				t.Fatalf("config dump %s: %v", c.GetTypeUrl(), err)
			}
			return empty
		}
	}
	t.Fatalf("config dump has no %T", empty)
	return empty
}

func checkConfigDump(t *testing.T, l *Legate, m Mode, version string, port int) {
	t.Helper()
	d := l.ConfigDump(t, "")

	clusters := dumpOf(t, d, &adminv3.ClustersConfigDump{})
	var names []string
	for _, dc := range clusters.GetDynamicActiveClusters() {
		var c clusterv3.Cluster
		if err := dc.GetCluster().UnmarshalTo(&c); err != nil {
			t.Fatalf("dynamic_active_clusters: %v", err)
		}
		names = append(names, c.GetName())
		checkVersion(t, m, "dynamic_active_clusters["+c.GetName()+"]", dc.GetVersionInfo(), version)
		if dc.GetLastUpdated() == nil {
			t.Errorf("dynamic_active_clusters[%s]: no last_updated", c.GetName())
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"svc_a", "svc_b"}) {
		t.Errorf("dynamic_active_clusters = %v, want [svc_a svc_b]", names)
	}
	if !slices.ContainsFunc(clusters.GetStaticClusters(), func(s *adminv3.ClustersConfigDump_StaticCluster) bool {
		var c clusterv3.Cluster
		return s.GetCluster().UnmarshalTo(&c) == nil && c.GetName() == "xds_cluster"
	}) {
		t.Errorf("static_clusters lacks xds_cluster")
	}
	// Delta has no response-wide version to compare with.
	if !m.Delta && clusters.GetVersionInfo() != version {
		t.Errorf("clusters version_info = %q, want %q (the CDS version)", clusters.GetVersionInfo(), version)
	}

	listeners := dumpOf(t, d, &adminv3.ListenersConfigDump{})
	found := false
	for _, dl := range listeners.GetDynamicListeners() {
		if dl.GetName() != "main" {
			continue
		}
		found = true
		as := dl.GetActiveState()
		if as == nil {
			t.Fatalf("dynamic_listeners[main] has no active_state (warming: %v)", dl.GetWarmingState() != nil)
		}
		checkVersion(t, m, "dynamic_listeners[main].active_state", as.GetVersionInfo(), version)
		var lis listenerv3.Listener
		if err := as.GetListener().UnmarshalTo(&lis); err != nil {
			t.Fatalf("dynamic_listeners[main].active_state.listener: %v", err)
		}
		if got := lis.GetAddress().GetSocketAddress().GetPortValue(); got != uint32(port) {
			t.Errorf("dynamic_listeners[main] port = %d, want %d", got, port)
		}
	}
	if !found {
		t.Errorf("dynamic_listeners lacks main: %v", listeners.GetDynamicListeners())
	}

	routes := dumpOf(t, d, &adminv3.RoutesConfigDump{})
	found = false
	for _, dr := range routes.GetDynamicRouteConfigs() {
		var rc routev3.RouteConfiguration
		if err := dr.GetRouteConfig().UnmarshalTo(&rc); err != nil {
			t.Fatalf("dynamic_route_configs: %v", err)
		}
		if rc.GetName() == "rc_main" {
			found = true
			checkVersion(t, m, "dynamic_route_configs[rc_main]", dr.GetVersionInfo(), version)
		}
	}
	if !found {
		t.Errorf("dynamic_route_configs lacks rc_main")
	}

	// ?resource= lists the chosen repeated field's elements, each as an Any.
	sel := l.ConfigDump(t, "?resource=dynamic_active_clusters")
	names = names[:0]
	for _, c := range sel.GetConfigs() {
		var dc adminv3.ClustersConfigDump_DynamicCluster
		if err := c.UnmarshalTo(&dc); err != nil {
			t.Fatalf("?resource=dynamic_active_clusters: %v (%s)", err, c.GetTypeUrl())
		}
		var cl clusterv3.Cluster
		if err := dc.GetCluster().UnmarshalTo(&cl); err != nil {
			t.Fatal(err)
		}
		names = append(names, cl.GetName())
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"svc_a", "svc_b"}) {
		t.Errorf("?resource=dynamic_active_clusters = %v, want [svc_a svc_b]", names)
	}
}

// checkVersion: in the state of the world a resource's version_info is the
// response's; in delta it is the resource's own version, which the server
// chooses, so it need only be there.
func checkVersion(t testing.TB, m Mode, what, got, want string) {
	t.Helper()
	switch {
	case got == "":
		t.Errorf("%s: empty version_info", what)
	case !m.Delta && got != want:
		t.Errorf("%s: version_info = %q, want %q", what, got, want)
	}
}
