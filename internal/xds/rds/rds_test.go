package rds

import (
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
)

type fakeSub struct {
	mu      sync.Mutex
	watches []xds.Watch
	live    int
}

func (f *fakeSub) Subscribe(w xds.Watch) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watches = append(f.watches, w)
	f.live++
	return func() { f.mu.Lock(); f.live--; f.mu.Unlock() }, nil
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

// deps returns Deps with a fresh Init and a Release collecting cleanups.
func deps(releases *[]func()) xds.Deps {
	return xds.Deps{Init: xds.NewInit(), Release: func(f func()) { *releases = append(*releases, f) }}
}

func TestProviderIsSharedAndRefcounted(t *testing.T) {
	sub := &fakeSub{}
	store := stats.NewStore()
	m := NewManager(sub, store, nil, nil)
	var rel1, rel2 []func()
	d1, d2 := deps(&rel1), deps(&rel2)
	r := &hcmv3.Rds{RouteConfigName: "r1", ConfigSource: ads()}
	ref1, err := m.Subscribe(r, "ingress", false, d1)
	if err != nil {
		t.Fatal(err)
	}
	ref2, err := m.Subscribe(r, "other", false, d2)
	if err != nil {
		t.Fatal(err)
	}
	if ref1 != ref2 || len(sub.watches) != 1 {
		t.Fatalf("not shared: %d watches", len(sub.watches))
	}
	w := sub.watches[0]
	if w.TypeURL != xds.RouteType || w.Name != "r1" {
		t.Fatalf("watch %+v", w)
	}
	// Stats go to the first HCM's scope.
	w.Stats.Counter("update_success").Inc()
	if store.Counter("http.ingress.rds.r1.update_success").Value() != 1 {
		t.Error("watch stats scope is not http.ingress.rds.r1.")
	}
	d1.Init.Seal()
	d2.Init.Seal()
	if d1.Init.Pending() != 1 || d2.Init.Pending() != 1 {
		t.Fatal("listeners do not wait for the first RDS update")
	}

	// validate_clusters defaults to false over RDS: an unknown cluster is
	// fine; set to true it is refused and nothing changes.
	rc := &routev3.RouteConfiguration{Name: "r1", VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "later"}}},
		}},
	}}}
	if err := w.Watcher.Update(&xds.Update{Version: "1", Resources: []xds.Resource{{Name: "r1", Message: rc}}}); err != nil {
		t.Fatal(err)
	}
	if ref1.Load() == nil {
		t.Fatal("no table after the first update")
	}
	select {
	case <-d1.Init.Done():
	default:
		t.Fatal("first update did not end warming")
	}
	first := ref1.Load()
	bad := &routev3.RouteConfiguration{Name: "r1", VirtualHosts: rc.VirtualHosts}
	bad.ValidateClusters = wrapperspb.Bool(true)
	if err := w.Watcher.Update(&xds.Update{Version: "2", Resources: []xds.Resource{{Name: "r1", Message: bad}}}); err == nil ||
		!strings.Contains(err.Error(), `route_configuration "r1"`) {
		t.Fatalf("err = %v", err)
	}
	if ref1.Load() != first {
		t.Fatal("a refused update changed the table")
	}
	dump := m.ConfigDump()
	if len(dump.DynamicRouteConfigs) != 1 || dump.DynamicRouteConfigs[0].VersionInfo != "1" {
		t.Fatalf("dump %v", dump)
	}

	// A later HCM on a provider that has its config does not wait.
	var rel3 []func()
	d3 := deps(&rel3)
	if _, err := m.Subscribe(r, "third", false, d3); err != nil {
		t.Fatal(err)
	}
	d3.Init.Seal()
	if d3.Init.Pending() != 0 {
		t.Error("a listener waits for a route config already received")
	}

	for _, rel := range [][]func(){rel1, rel2} {
		for _, f := range rel {
			f()
		}
	}
	if sub.live != 1 {
		t.Fatalf("watch cancelled while still referenced (live %d)", sub.live)
	}
	for _, f := range rel3 {
		f()
	}
	if sub.live != 0 {
		t.Fatal("watch not cancelled with its last reference")
	}
}

// Whatever the first update is, warming ends, as in Envoy, which lets
// start-up go on with a bad or missing route configuration; the listener
// then serves without a table (404, NR) until a good one comes.
func TestFirstUpdateEndsWarmingWithoutTable(t *testing.T) {
	bad := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "vh"}}}
	for _, tt := range []struct {
		name    string
		u       *xds.Update
		wantErr string
	}{
		{"initial_fetch_timeout", &xds.Update{InitialFetchTimeout: true}, ""},
		{"rejected", &xds.Update{Version: "1", Resources: []xds.Resource{{Name: "r", Message: bad}}}, `route_configuration "r": `},
		{"empty", &xds.Update{Version: "1"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sub := &fakeSub{}
			m := NewManager(sub, stats.NewStore(), nil, nil)
			var rel []func()
			d := deps(&rel)
			ref, err := m.Subscribe(&hcmv3.Rds{RouteConfigName: "r", ConfigSource: ads()}, "p", false, d)
			if err != nil {
				t.Fatal(err)
			}
			d.Init.Seal()
			err = sub.watches[0].Watcher.Update(tt.u)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			select {
			case <-d.Init.Done():
			default:
				t.Fatal("still warming")
			}
			if ref.Load() != nil {
				t.Fatal("a table without any good update")
			}
		})
	}
}

func TestSubscribeErrors(t *testing.T) {
	var nilManager *Manager
	for _, tt := range []struct {
		m    *Manager
		rds  *hcmv3.Rds
		want string
	}{
		{nilManager, &hcmv3.Rds{RouteConfigName: "r", ConfigSource: ads()}, "rds: dynamic route configuration needs dynamic_resources"},
		{NewManager(&fakeSub{}, stats.NewStore(), nil, nil), &hcmv3.Rds{ConfigSource: ads()}, "rds.route_config_name"},
		{NewManager(&fakeSub{}, stats.NewStore(), nil, nil), &hcmv3.Rds{RouteConfigName: "r"}, "rds.config_source"},
	} {
		_, err := tt.m.Subscribe(tt.rds, "p", false, xds.Deps{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
}
