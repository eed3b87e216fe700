package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/legate-proxy/legate/internal/testutil"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
)

// fakeSub is an xds.Subscriber the test drives by hand.
type fakeSub struct {
	mu      sync.Mutex
	watches []*fakeWatch
	err     error
}

type fakeWatch struct {
	xds.Watch
	mu        sync.Mutex
	cancelled bool
}

func (s *fakeSub) Subscribe(w xds.Watch) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	fw := &fakeWatch{Watch: w}
	s.watches = append(s.watches, fw)
	return func() {
		fw.mu.Lock()
		fw.cancelled = true
		fw.mu.Unlock()
	}, nil
}

// live returns the uncancelled watches for name.
func (s *fakeSub) live(name string) []*fakeWatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*fakeWatch
	for _, w := range s.watches {
		w.mu.Lock()
		if !w.cancelled && w.Name == name {
			out = append(out, w)
		}
		w.mu.Unlock()
	}
	return out
}

func (s *fakeSub) one(t *testing.T, name string) *fakeWatch {
	t.Helper()
	ws := s.live(name)
	if len(ws) != 1 {
		t.Fatalf("%d live watches for %q, want 1", len(ws), name)
	}
	return ws[0]
}

func parseCLA(t *testing.T, y string) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	cla := &endpointv3.ClusterLoadAssignment{}
	if err := protojson.Unmarshal(j, cla); err != nil {
		t.Fatal(err)
	}
	return cla
}

// sotw is a full CDS update of clusters.
func sotw(version string, cs []*clusterv3.Cluster) *xds.Update {
	u := &xds.Update{Version: version, Full: true}
	for _, c := range cs {
		u.Resources = append(u.Resources, xds.Resource{Name: c.GetName(), Version: version, Message: c})
	}
	return u
}

func eds(version string, cla *endpointv3.ClusterLoadAssignment) *xds.Update {
	return &xds.Update{Version: version, Full: true, Resources: []xds.Resource{{Name: cla.GetClusterName(), Version: version, Message: cla}}}
}

func gauge(st *stats.Store, name string) int64 { return st.Gauge(name, stats.NeverImport).Value() }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

const staticYAML = `
- name: static1
  type: STATIC
  load_assignment:
    endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9001}}}}]}]
`

func dynManager(t *testing.T, sub *fakeSub, rec *poolRecorder) (*Manager, *stats.Store) {
	t.Helper()
	st := stats.NewStore()
	opts := Options{Stats: st, NewPool: rec.newPool}
	if sub != nil {
		opts.XDS = sub
	}
	m := newManager(t, staticYAML, opts)
	m.Start(context.Background())
	return m, st
}

func TestCDSAddModifyRemove(t *testing.T) {
	var rec poolRecorder
	m, st := dynManager(t, nil, &rec)
	cds := m.CDS()
	ref := m.Ref("web")
	if ref != m.Ref("web") || ref.Load() != nil || m.Has("web") {
		t.Fatal("Ref before CDS: want one stable, empty handle")
	}

	v1 := parseClusters(t, `
- name: web
  type: STATIC
  load_assignment:
    endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8001}}}}]}]
`)
	if err := cds.Update(sotw("1", v1)); err != nil {
		t.Fatal(err)
	}
	web1 := m.Get("web")
	if web1 == nil || ref.Load() != web1 || !m.Has("web") {
		t.Fatal("added STATIC cluster is not active behind its Ref")
	}
	if names := clusterNames(m); !slices.Equal(names, []string{"static1", "web"}) {
		t.Fatalf("Clusters() = %v", names)
	}
	if !isClosed(m.CDSInitialized()) {
		t.Fatal("CDSInitialized open after the first update warmed everything")
	}
	if counter(st, "cluster_manager.cluster_added") != 2 || gauge(st, "cluster_manager.active_clusters") != 2 {
		t.Fatalf("added=%d active=%d", counter(st, "cluster_manager.cluster_added"), gauge(st, "cluster_manager.active_clusters"))
	}

	// The same resources again change nothing.
	if err := cds.Update(sotw("2", v1)); err != nil {
		t.Fatal(err)
	}
	if m.Get("web") != web1 || counter(st, "cluster_manager.cluster_modified") != 0 {
		t.Fatal("unchanged cluster was rebuilt")
	}

	// A changed cluster replaces the old one; the old one's pools close.
	v3 := parseClusters(t, `
- name: web
  type: STATIC
  load_assignment:
    endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8002}}}}]}]
`)
	if err := cds.Update(sotw("3", v3)); err != nil {
		t.Fatal(err)
	}
	web3 := ref.Load()
	if web3 == nil || web3 == web1 || hostAddrs(web3)[0] != "127.0.0.1:8002" {
		t.Fatalf("modified cluster not swapped in: %v", hostAddrs(web3))
	}
	if !web1.Hosts()[0].pool.(*fakePool).closed.Load() || web3.Hosts()[0].pool.(*fakePool).closed.Load() {
		t.Fatal("old cluster's pool must close, new one's stay open")
	}
	if counter(st, "cluster_manager.cluster_modified") != 1 || web3.version != "3" {
		t.Fatalf("modified=%d version=%q", counter(st, "cluster_manager.cluster_modified"), web3.version)
	}
	// Stats continue across the swap: same scope, same counters.
	if web3.Stats.UpstreamRqTotal != web1.Stats.UpstreamRqTotal {
		t.Fatal("a modified cluster must keep its stats")
	}

	// SotW omission removes.
	if err := cds.Update(sotw("4", nil)); err != nil {
		t.Fatal(err)
	}
	if ref.Load() != nil || m.Get("web") != nil || m.Has("web") {
		t.Fatal("removed cluster still reachable")
	}
	if !web3.Hosts()[0].pool.(*fakePool).closed.Load() {
		t.Fatal("removed cluster's pool not closed")
	}
	if m.Get("static1") == nil {
		t.Fatal("a full CDS update must not remove static clusters")
	}
	if counter(st, "cluster_manager.cluster_removed") != 1 || gauge(st, "cluster_manager.active_clusters") != 1 {
		t.Fatal("removal stats")
	}

	// Added again later: the same Ref comes back to life.
	if err := cds.Update(sotw("5", v1)); err != nil {
		t.Fatal(err)
	}
	if ref.Load() == nil || ref.Load() != m.Get("web") {
		t.Fatal("re-added cluster not behind the same Ref")
	}
}

func TestCDSDeltaAndStaticNames(t *testing.T) {
	var rec poolRecorder
	m, st := dynManager(t, nil, &rec)
	cds := m.CDS()
	cs := parseClusters(t, `
- {name: a, type: STATIC}
- {name: b, type: STATIC}
- name: static1
  type: STATIC
  load_assignment:
    endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.2, port_value: 1}}}}]}]
`)
	static1 := m.Get("static1")
	u := &xds.Update{Version: "d1"}
	for _, c := range cs {
		u.Resources = append(u.Resources, xds.Resource{Name: c.GetName(), Version: "r-" + c.GetName(), Message: c})
	}
	if err := cds.Update(u); err != nil {
		t.Fatal(err)
	}
	if m.Get("static1") != static1 || hostAddrs(static1)[0] != "127.0.0.1:9001" {
		t.Fatal("CDS must not override a static cluster")
	}
	if m.Get("a").version != "r-a" {
		t.Fatalf("delta resources keep their own version, got %q", m.Get("a").version)
	}
	// Delta: only what Removed names goes; static names are ignored.
	if err := cds.Update(&xds.Update{Version: "d2", Removed: []string{"a", "static1", "unknown"}}); err != nil {
		t.Fatal(err)
	}
	if m.Get("a") != nil || m.Get("b") == nil || m.Get("static1") == nil {
		t.Fatalf("after delta removal: %v", clusterNames(m))
	}
	if counter(st, "cluster_manager.cluster_removed") != 1 {
		t.Fatal("cluster_removed")
	}
	if v := m.ConfigDump().GetVersionInfo(); v != "d2" {
		t.Fatalf("config dump version_info = %q", v)
	}
}

func TestCDSNackLeavesStateUnchanged(t *testing.T) {
	var rec poolRecorder
	m, st := dynManager(t, nil, &rec)
	cds := m.CDS()
	good := parseClusters(t, `
- name: web
  type: STATIC
  load_assignment:
    endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8001}}}}]}]
`)
	if err := cds.Update(sotw("1", good)); err != nil {
		t.Fatal(err)
	}
	web := m.Get("web")
	before := m.ConfigDump()

	tests := []struct {
		name, yaml, want string
	}{
		{"one bad resource", `
- name: web
  type: STATIC
  load_assignment:
    endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8009}}}}]}]
- {name: other, lb_policy: CLUSTER_PROVIDED}`, `cluster "other": lb_policy: CLUSTER_PROVIDED is not supported`},
		{"duplicate", `[{name: x}, {name: x}]`, `cluster "x": duplicate cluster name in the update`},
		{"EDS without xDS", `[{name: e, type: EDS, eds_cluster_config: {eds_config: {ads: {}}}}]`,
			`cluster "e": eds_cluster_config.eds_config: EDS needs dynamic configuration`},
	}
	for _, tt := range tests {
		err := cds.Update(sotw("2", parseClusters(t, tt.yaml)))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
		if m.Get("web") != web || hostAddrs(web)[0] != "127.0.0.1:8001" || web.Hosts()[0].pool.(*fakePool).closed.Load() {
			t.Fatalf("%s: NACKed update changed the active cluster", tt.name)
		}
		if names := clusterNames(m); !slices.Equal(names, []string{"static1", "web"}) {
			t.Fatalf("%s: clusters = %v", tt.name, names)
		}
		if !protoEqualDump(before, m.ConfigDump()) {
			t.Fatalf("%s: config dump changed", tt.name)
		}
	}
	if counter(st, "cluster_manager.cluster_added") != 2 || counter(st, "cluster_manager.cluster_modified") != 0 {
		t.Fatal("NACKed updates counted")
	}
	// A resource of the wrong type is refused too.
	if err := cds.Update(&xds.Update{Full: true, Resources: []xds.Resource{{Name: "x", Message: &endpointv3.ClusterLoadAssignment{}}}}); err == nil {
		t.Fatal("a ClusterLoadAssignment in CDS must be refused")
	}
}

func protoEqualDump(a, b *adminv3.ClustersConfigDump) bool {
	x, _ := protojson.Marshal(a)
	y, _ := protojson.Marshal(b)
	return string(x) == string(y)
}

const edsClusterYAML = `
- name: svc
  type: EDS
  eds_cluster_config: {eds_config: {ads: {}}}
`

func TestEDSWarmingAndHostIdentity(t *testing.T) {
	var rec poolRecorder
	sub := &fakeSub{}
	m, st := dynManager(t, sub, &rec)
	if err := m.CDS().Update(sotw("1", parseClusters(t, edsClusterYAML))); err != nil {
		t.Fatal(err)
	}
	ref := m.Ref("svc")
	if !m.Has("svc") || m.Get("svc") != nil || ref.Load() != nil {
		t.Fatal("an EDS cluster must warm before it is active")
	}
	if gauge(st, "cluster_manager.warming_clusters") != 1 || len(m.ConfigDump().GetDynamicWarmingClusters()) != 1 {
		t.Fatal("warming cluster not reported")
	}
	if isClosed(m.CDSInitialized()) {
		t.Fatal("CDS initialized while its cluster is still warming")
	}
	w := sub.one(t, "svc")
	if w.TypeURL != xds.EndpointType || w.Stats == nil {
		t.Fatalf("EDS watch = %+v", w.Watch)
	}
	w.Stats.Counter("update_attempt").Inc()
	if counter(st, "cluster.svc.update_attempt") != 1 {
		t.Fatal("EDS watch stats scope is not cluster.svc.")
	}

	if err := w.Watcher.Update(eds("e1", parseCLA(t, `
cluster_name: svc
endpoints:
- load_balancing_weight: 7
  lb_endpoints:
  - endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}
  - endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 80}}, hostname: two}
    load_balancing_weight: 3
`))); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "activation", func() bool { return ref.Load() != nil })
	c := ref.Load()
	if !isClosed(m.CDSInitialized()) || gauge(st, "cluster_manager.warming_clusters") != 0 || gauge(st, "cluster_manager.active_clusters") != 2 {
		t.Fatal("activation bookkeeping")
	}
	if got := hostAddrs(c); !slices.Equal(got, []string{"10.0.0.1:80", "10.0.0.2:80"}) {
		t.Fatalf("hosts = %v", got)
	}
	h1, h2 := c.Hosts()[0], c.Hosts()[1]
	if h2.Weight != 3 || h2.Hostname != "two" {
		t.Fatalf("host 2 = %+v", h2)
	}

	// 10.0.0.1 stays (same host, same pool), 10.0.0.2 goes, 10.0.0.3 comes
	// in unhealthy, 10.0.0.4 healthy.
	if err := w.Watcher.Update(eds("e2", parseCLA(t, `
cluster_name: svc
endpoints:
- lb_endpoints:
  - endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}
  - endpoint: {address: {socket_address: {address: 10.0.0.3, port_value: 80}}}
    health_status: UNHEALTHY
  - endpoint: {address: {socket_address: {address: 10.0.0.4, port_value: 80}}}
    health_status: HEALTHY
`))); err != nil {
		t.Fatal(err)
	}
	hs := c.Hosts()
	if len(hs) != 3 || hs[0] != h1 || h1.pool.(*fakePool).closed.Load() {
		t.Fatal("a host whose address stays must keep its identity and pool")
	}
	if !h2.pool.(*fakePool).closed.Load() {
		t.Fatal("removed host's pool not closed")
	}
	for range 20 {
		if h := c.Pick(nil); h.AddrPort.Addr().String() == "10.0.0.3" {
			t.Fatal("picked an unhealthy host")
		}
	}
	if gauge(st, "cluster.svc.membership_total") != 3 || gauge(st, "cluster.svc.membership_healthy") != 2 ||
		counter(st, "cluster.svc.membership_change") != 2 {
		t.Fatalf("membership total=%d healthy=%d change=%d", gauge(st, "cluster.svc.membership_total"),
			gauge(st, "cluster.svc.membership_healthy"), counter(st, "cluster.svc.membership_change"))
	}

	// A health-only change keeps the host.
	h3 := hs[1]
	if err := w.Watcher.Update(eds("e3", parseCLA(t, `
cluster_name: svc
endpoints:
- lb_endpoints:
  - endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}
  - endpoint: {address: {socket_address: {address: 10.0.0.3, port_value: 80}}}
  - endpoint: {address: {socket_address: {address: 10.0.0.4, port_value: 80}}}
`))); err != nil {
		t.Fatal(err)
	}
	if c.Hosts()[1] != h3 || !h3.Healthy() || gauge(st, "cluster.svc.membership_healthy") != 3 {
		t.Fatal("health-only change must keep the host and make it healthy")
	}

	// Invalid assignments are refused and change nothing.
	before := c.Hosts()
	for _, bad := range []struct{ yaml, want string }{
		{`{cluster_name: svc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: db.local, port_value: 80}}}}]}]}`,
			`cluster_load_assignment "svc": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "db.local" is not an IP address`},
		{`{cluster_name: svc, endpoints: [{priority: 1, lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.9, port_value: 80}}}}]}]}`,
			`endpoints[0].priority: only priority 0 is supported`},
		{`{cluster_name: svc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.9, port_value: 80}}}}, {endpoint: {address: {socket_address: {address: 10.0.0.9, port_value: 80}}}}]}]}`,
			`endpoints[0].lb_endpoints[1].endpoint.address: 10.0.0.9:80 is also endpoints[0].lb_endpoints[0]`},
		{`{cluster_name: svc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.9, port_value: 0}}}}]}]}`,
			`port_value: 0 out of range`},
	} {
		err := w.Watcher.Update(eds("bad", parseCLA(t, bad.yaml)))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("error %v, want %q", err, bad.want)
		}
		if !slices.Equal(c.Hosts(), before) {
			t.Fatal("NACKed assignment changed the hosts")
		}
	}

	// An update without the resource (delta removal) keeps the hosts.
	if err := w.Watcher.Update(&xds.Update{Removed: []string{"svc"}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Hosts(), before) {
		t.Fatal("EDS removal must keep the last hosts")
	}
	d := m.EndpointsDump()
	if len(d.GetDynamicEndpointConfigs()) != 1 || d.GetDynamicEndpointConfigs()[0].GetVersionInfo() != "e3" ||
		len(d.GetStaticEndpointConfigs()) != 1 {
		t.Fatalf("endpoints dump = %v", d)
	}

	// Removing the cluster cancels its EDS watch and closes its pools.
	if err := m.CDS().Update(sotw("2", nil)); err != nil {
		t.Fatal(err)
	}
	if len(sub.live("svc")) != 0 {
		t.Fatal("EDS watch not cancelled on removal")
	}
	for _, h := range before {
		if !h.pool.(*fakePool).closed.Load() {
			t.Fatalf("pool of %s not closed on removal", h.Address)
		}
	}
}

func TestEDSReplaceKeepsOldUntilWarm(t *testing.T) {
	var rec poolRecorder
	sub := &fakeSub{}
	m, st := dynManager(t, sub, &rec)
	cds := m.CDS()
	if err := cds.Update(sotw("1", parseClusters(t, edsClusterYAML))); err != nil {
		t.Fatal(err)
	}
	cla := `{cluster_name: %s, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: 80}}}}]}]}`
	if err := sub.one(t, "svc").Watcher.Update(eds("e1", parseCLA(t, fmt.Sprintf(cla, "svc", "10.0.0.1")))); err != nil {
		t.Fatal(err)
	}
	ref := m.Ref("svc")
	testutil.WaitFor(t, "activation", func() bool { return ref.Load() != nil })
	old := ref.Load()

	// New version reads another service name: it warms while old serves.
	if err := cds.Update(sotw("2", parseClusters(t, `
- name: svc
  type: EDS
  connect_timeout: 2s
  eds_cluster_config: {service_name: svc-v2, eds_config: {ads: {}}}
`))); err != nil {
		t.Fatal(err)
	}
	if ref.Load() != old || gauge(st, "cluster_manager.warming_clusters") != 1 {
		t.Fatal("the active cluster must keep serving while its replacement warms")
	}
	dump := m.ConfigDump()
	if len(dump.GetDynamicActiveClusters()) != 1 || len(dump.GetDynamicWarmingClusters()) != 1 ||
		dump.GetDynamicWarmingClusters()[0].GetVersionInfo() != "2" {
		t.Fatalf("dump = %v", dump)
	}
	if err := sub.one(t, "svc-v2").Watcher.Update(eds("e2", parseCLA(t, fmt.Sprintf(cla, "svc-v2", "10.0.0.2")))); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "replacement", func() bool { return ref.Load() != old })
	if got := hostAddrs(ref.Load()); !slices.Equal(got, []string{"10.0.0.2:80"}) {
		t.Fatalf("hosts = %v", got)
	}
	testutil.WaitFor(t, "old cluster stopped", func() bool { return len(sub.live("svc")) == 0 })
	if !old.Hosts()[0].pool.(*fakePool).closed.Load() {
		t.Fatal("replaced cluster's pool not closed")
	}
	if gauge(st, "cluster_manager.warming_clusters") != 0 || gauge(st, "cluster_manager.active_clusters") != 2 {
		t.Fatal("gauges after replacement")
	}
}

func TestEDSInitialFetchTimeoutAndSubscribeError(t *testing.T) {
	var rec poolRecorder
	sub := &fakeSub{}
	m, _ := dynManager(t, sub, &rec)
	if err := m.CDS().Update(sotw("1", parseClusters(t, edsClusterYAML))); err != nil {
		t.Fatal(err)
	}
	if err := sub.one(t, "svc").Watcher.Update(&xds.Update{InitialFetchTimeout: true}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "activation without endpoints", func() bool { return m.Get("svc") != nil })
	if len(m.Get("svc").Hosts()) != 0 || m.Get("svc").Pick(nil) != nil {
		t.Fatal("a cluster that timed out has no hosts")
	}
	if !isClosed(m.CDSInitialized()) {
		t.Fatal("CDS initialization must finish when its clusters time out")
	}

	sub.mu.Lock()
	sub.err = errors.New("no ads_config")
	sub.mu.Unlock()
	err := m.CDS().Update(sotw("2", parseClusters(t, `
- {name: svc, type: EDS, eds_cluster_config: {eds_config: {ads: {}}}}
- {name: other, type: EDS, eds_cluster_config: {eds_config: {ads: {}}}}
`)))
	if err == nil || !strings.Contains(err.Error(), `cluster "other": eds_cluster_config.eds_config: no ads_config`) {
		t.Fatalf("error = %v", err)
	}
	if m.Has("other") {
		t.Fatal("a cluster whose watch failed must not exist")
	}
}

func TestCDSInitialFetchTimeoutAndNack(t *testing.T) {
	m, _ := dynManager(t, nil, &poolRecorder{})
	if err := m.CDS().Update(&xds.Update{InitialFetchTimeout: true}); err != nil {
		t.Fatal(err)
	}
	if !isClosed(m.CDSInitialized()) {
		t.Fatal("CDS initial_fetch_timeout must finish CDS initialization")
	}
	m2, _ := dynManager(t, nil, &poolRecorder{})
	if err := m2.CDS().Update(sotw("1", parseClusters(t, `[{name: x, type: ORIGINAL_DST}]`))); err == nil {
		t.Fatal("want NACK")
	}
	if !isClosed(m2.CDSInitialized()) {
		t.Fatal("a rejected first CDS update finishes CDS initialization, as in Envoy")
	}
}

func TestStaticEDSClusterInitializes(t *testing.T) {
	sub := &fakeSub{}
	m, err := NewManager(parseClusters(t, edsClusterYAML), Options{XDS: sub, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if isClosed(m.Initialized()) {
		t.Fatal("initialized before EDS answered")
	}
	if len(sub.live("svc")) != 0 {
		t.Fatal("static EDS clusters subscribe in Start, not NewManager")
	}
	m.Start(context.Background())
	if err := sub.one(t, "svc").Watcher.Update(eds("1", parseCLA(t,
		`{cluster_name: svc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]}`))); err != nil {
		t.Fatal(err)
	}
	waitInit(t, m)
	if m.Get("svc") == nil || len(m.Get("svc").Hosts()) != 1 {
		t.Fatal("static EDS cluster hosts")
	}
	if len(m.ConfigDump().GetStaticClusters()) != 1 {
		t.Fatal("static EDS cluster belongs to static_clusters")
	}
	m.Close()
	if len(sub.live("svc")) != 0 {
		t.Fatal("Close must cancel EDS watches")
	}
}

func TestCDSStrictDNSWarmsAfterResolution(t *testing.T) {
	dns := newTestDNS(t)
	dns.set("svc.test.", "127.0.0.5")
	var rec poolRecorder
	st := stats.NewStore()
	m := newManager(t, staticYAML, Options{Stats: st, NewPool: rec.newPool, resolver: newDNSResolver([]netip.AddrPort{dns.addr})})
	m.Start(context.Background())
	if err := m.CDS().Update(sotw("1", parseClusters(t, `
- name: dnsc
  type: STRICT_DNS
  load_assignment:
    endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: svc.test, port_value: 80}}}}]}]
`))); err != nil {
		t.Fatal(err)
	}
	ref := m.Ref("dnsc")
	testutil.WaitFor(t, "DNS cluster active", func() bool { return ref.Load() != nil })
	if got := hostAddrs(ref.Load()); !slices.Equal(got, []string{"127.0.0.5:80"}) {
		t.Fatalf("hosts = %v", got)
	}
	c := ref.Load()
	if err := m.CDS().Update(sotw("2", nil)); err != nil {
		t.Fatal(err)
	}
	// stop waited for the DNS loop; no later resolution may add hosts.
	if !c.Hosts()[0].pool.(*fakePool).closed.Load() {
		t.Fatal("pool not closed")
	}
}

func TestAdminListsDynamicClusters(t *testing.T) {
	m, _ := dynManager(t, nil, &poolRecorder{})
	if err := m.CDS().Update(sotw("1", parseClusters(t, `
- name: web
  type: STATIC
  load_assignment:
    endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8001}}}}]}]
`))); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	m.WriteText(&b)
	if !strings.Contains(b.String(), "web::added_via_api::true\n") || !strings.Contains(b.String(), "static1::added_via_api::false\n") {
		t.Fatalf("/clusters:\n%s", b.String())
	}
	p := m.ClustersProto()
	if len(p.GetClusterStatuses()) != 2 || !p.GetClusterStatuses()[1].GetAddedViaApi() {
		t.Fatal("JSON /clusters added_via_api")
	}
	d := m.ConfigDump()
	if len(d.GetStaticClusters()) != 1 || len(d.GetDynamicActiveClusters()) != 1 ||
		d.GetDynamicActiveClusters()[0].GetVersionInfo() != "1" || d.GetDynamicActiveClusters()[0].GetLastUpdated() == nil {
		t.Fatalf("config dump = %v", d)
	}
	var got clusterv3.Cluster
	if err := d.GetDynamicActiveClusters()[0].GetCluster().UnmarshalTo(&got); err != nil || got.GetName() != "web" {
		t.Fatalf("dumped cluster: %v %v", &got, err)
	}
}

func TestHealthFlags(t *testing.T) {
	for _, tt := range []struct {
		s     corev3.HealthStatus
		flags string
		ok    bool
	}{
		{corev3.HealthStatus_UNKNOWN, "healthy", true},
		{corev3.HealthStatus_HEALTHY, "healthy", true},
		{corev3.HealthStatus_UNHEALTHY, "/failed_eds_health", false},
		{corev3.HealthStatus_DRAINING, "/failed_eds_health", false},
		{corev3.HealthStatus_DEGRADED, "/degraded_eds_health", false},
	} {
		h := &Host{}
		h.setEDSHealth(tt.s)
		if h.HealthFlags() != tt.flags || h.Healthy() != tt.ok {
			t.Errorf("%v: flags %q healthy %v", tt.s, h.HealthFlags(), h.Healthy())
		}
	}
	h := &Host{}
	h.setEDSHealth(corev3.HealthStatus_DEGRADED)
	h.setFlags(FailedActiveHC|FailedOutlierCheck, FailedActiveHC|FailedOutlierCheck)
	if got := h.HealthFlags(); got != "/failed_active_hc/failed_outlier_check/degraded_eds_health" {
		t.Errorf("combined flags %q", got)
	}
}

// A health flag from another source (active HC, outlier detection) takes
// the host out of the picks and back, each change rebuilding the picker.
func TestSetHealthFlagRebuildsPicks(t *testing.T) {
	m := newManager(t, `
- name: c
  load_assignment: {endpoints: [{lb_endpoints: [
    {endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}},
    {endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 80}}}},
    {endpoint: {address: {socket_address: {address: 10.0.0.3, port_value: 80}}}}]}]}
`, Options{})
	c := m.Get("c")
	bad := c.Hosts()[1]
	picked := func() map[*Host]bool {
		seen := map[*Host]bool{}
		for range 30 {
			seen[c.Pick(nil)] = true
		}
		return seen
	}
	c.SetHealthFlag(bad, FailedOutlierCheck, true)
	if picked()[bad] || len(picked()) != 2 {
		t.Fatalf("ejected host still picked: %v", picked())
	}
	if c.Stats.MembershipHealthy.Value() != 2 {
		t.Errorf("membership_healthy = %d", c.Stats.MembershipHealthy.Value())
	}
	c.SetHealthFlag(bad, FailedActiveHC, true)
	c.SetHealthFlag(bad, FailedOutlierCheck, false)
	if picked()[bad] {
		t.Fatal("host with a failed active check picked")
	}
	c.SetHealthFlag(bad, FailedActiveHC, false)
	if !picked()[bad] {
		t.Fatal("host back in health not picked")
	}
}

func TestPanicModeUsesAllHosts(t *testing.T) {
	sub := &fakeSub{}
	m, st := dynManager(t, sub, &poolRecorder{})
	if err := m.CDS().Update(sotw("1", parseClusters(t, edsClusterYAML))); err != nil {
		t.Fatal(err)
	}
	if err := sub.one(t, "svc").Watcher.Update(eds("1", parseCLA(t, `
cluster_name: svc
endpoints:
- lb_endpoints:
  - {endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}, health_status: UNHEALTHY}
  - {endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 80}}}, health_status: UNHEALTHY}
  - {endpoint: {address: {socket_address: {address: 10.0.0.3, port_value: 80}}}}
`))); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "activation", func() bool { return m.Get("svc") != nil })
	seen := map[string]bool{}
	for range 30 {
		seen[m.Get("svc").Pick(nil).Address] = true
	}
	if len(seen) != 3 || counter(st, "cluster.svc.lb_healthy_panic") != 30 {
		t.Fatalf("below 50%% healthy Envoy balances over every host: %v, panic=%d", seen, counter(st, "cluster.svc.lb_healthy_panic"))
	}
}

func clusterNames(m *Manager) []string {
	var out []string
	for _, c := range m.Clusters() {
		out = append(out, c.Name)
	}
	return out
}

// A CDS cluster that warms after its commit but before Start (its EDS
// answer came in between) goes live at Start.
func TestCDSClusterWarmedBeforeStart(t *testing.T) {
	sub := &fakeSub{}
	m, err := NewManager(nil, Options{XDS: sub, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if err := m.CDS().Update(sotw("1", parseClusters(t, edsClusterYAML))); err != nil {
		t.Fatal(err)
	}
	if err := sub.one(t, "svc").Watcher.Update(eds("1", parseCLA(t,
		`{cluster_name: svc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]}`))); err != nil {
		t.Fatal(err)
	}
	m.Start(context.Background())
	testutil.WaitFor(t, "the warm cluster to go live", func() bool { return m.Ref("svc").Load() != nil })
	testutil.WaitFor(t, "CDS initialization", func() bool { return isClosed(m.CDSInitialized()) })
}

// A rejected first EDS update ends warming, as Envoy lets start-up go on
// with a bad config: the cluster goes live without hosts.
func TestEDSRejectedFirstUpdateEndsWarming(t *testing.T) {
	sub := &fakeSub{}
	m, _ := dynManager(t, sub, &poolRecorder{})
	if err := m.CDS().Update(sotw("1", parseClusters(t, edsClusterYAML))); err != nil {
		t.Fatal(err)
	}
	err := sub.one(t, "svc").Watcher.Update(eds("1", parseCLA(t,
		`{cluster_name: svc, endpoints: [{priority: 1, lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]}`)))
	if err == nil || !strings.Contains(err.Error(), "endpoints[0].priority") {
		t.Fatalf("error = %v", err)
	}
	testutil.WaitFor(t, "activation without endpoints", func() bool { return m.Get("svc") != nil })
	if len(m.Get("svc").Hosts()) != 0 {
		t.Fatal("a refused assignment must not add hosts")
	}
}

// Going back to the active config while a replacement warms builds that
// config anew, as Envoy does: the replacement is dropped, the active
// cluster serves until the new copy warms, then the copy takes over.
func TestCDSBackToActiveWhileWarming(t *testing.T) {
	sub := &fakeSub{}
	m, st := dynManager(t, sub, &poolRecorder{})
	cds := m.CDS()
	if err := cds.Update(sotw("1", parseClusters(t, edsClusterYAML))); err != nil {
		t.Fatal(err)
	}
	cla := `{cluster_name: %s, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]}`
	if err := sub.one(t, "svc").Watcher.Update(eds("e1", parseCLA(t, fmt.Sprintf(cla, "svc")))); err != nil {
		t.Fatal(err)
	}
	ref := m.Ref("svc")
	testutil.WaitFor(t, "activation", func() bool { return ref.Load() != nil })
	old := ref.Load()
	if err := cds.Update(sotw("2", parseClusters(t,
		`[{name: svc, type: EDS, eds_cluster_config: {service_name: svc-v2, eds_config: {ads: {}}}}]`))); err != nil {
		t.Fatal(err)
	}
	if err := cds.Update(sotw("3", parseClusters(t, edsClusterYAML))); err != nil {
		t.Fatal(err)
	}
	if len(sub.live("svc-v2")) != 0 {
		t.Fatal("the dropped replacement's EDS watch is still open")
	}
	if ref.Load() != old || gauge(st, "cluster_manager.warming_clusters") != 1 {
		t.Fatal("the active cluster must serve while the copy warms")
	}
	ws := sub.live("svc")
	if len(ws) != 2 {
		t.Fatalf("%d live svc watches, want the active's and the copy's", len(ws))
	}
	if err := ws[1].Watcher.Update(eds("e1", parseCLA(t, fmt.Sprintf(cla, "svc")))); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the copy to take over", func() bool { return ref.Load() != old && ref.Load() != nil })
	testutil.WaitFor(t, "the old cluster's watch to close", func() bool { return len(sub.live("svc")) == 1 })
	if gauge(st, "cluster_manager.warming_clusters") != 0 || ref.Load().version != "3" {
		t.Fatal("state after the copy went live")
	}
}
