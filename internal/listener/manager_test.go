package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/accesslog"
	_ "github.com/legate-proxy/legate/internal/filter/http/router"
	_ "github.com/legate-proxy/legate/internal/filter/network/http_connection_manager"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
	"github.com/legate-proxy/legate/internal/xds/rds"
)

// fakeSub is an xds.Subscriber the test drives by hand.
type fakeSub struct {
	mu      sync.Mutex
	watches []*fakeWatch
}

type fakeWatch struct {
	w         xds.Watch
	cancelled atomic.Bool
}

func (f *fakeSub) Subscribe(w xds.Watch) (func(), error) {
	fw := &fakeWatch{w: w}
	f.mu.Lock()
	f.watches = append(f.watches, fw)
	f.mu.Unlock()
	return func() { fw.cancelled.Store(true) }, nil
}

// watch returns the live watch for a resource name.
func (f *fakeSub) watch(t *testing.T, name string) *fakeWatch {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.watches {
		if w.w.Name == name && !w.cancelled.Load() {
			return w
		}
	}
	t.Fatalf("no live watch for %q", name)
	return nil
}

func (f *fakeSub) live(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, w := range f.watches {
		if w.w.Name == name && !w.cancelled.Load() {
			n++
		}
	}
	return n
}

func routeConfig(name, body string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name: "all", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
					Status: 200,
					Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}},
				}},
			}},
		}},
	}
}

type hcmOpt func(*hcmv3.HttpConnectionManager)

func withRDS(name string) hcmOpt {
	return func(h *hcmv3.HttpConnectionManager) {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: name,
			ConfigSource:    &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}}
	}
}

// httpListener is a listener whose HCM answers every request with body.
func httpListener(t *testing.T, name, host string, port uint32, body string, opts ...hcmOpt) *listenerv3.Listener {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix:     name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: routeConfig("local", body)},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})},
		}},
	}
	for _, o := range opts {
		o(h)
	}
	return &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)},
		}}}},
	}
}

type harness struct {
	m     *Manager
	store *stats.Store
	sub   *fakeSub
	files *accesslog.FileManager
}

func newHarness(t *testing.T, drain time.Duration) *harness {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	store := stats.NewStore()
	sub := &fakeSub{}
	files := accesslog.NewFileManager(store, quiet)
	t.Cleanup(files.Close)
	m := NewManager(ManagerOptions{
		Factory: networkfilter.FactoryContext{
			Stats: store, Logger: quiet, AccessLogFiles: files,
			Routes: rds.NewManager(sub, store, nil, quiet),
		},
		Subscriber: sub,
		DrainTime:  drain,
		Stats:      store,
		Logger:     quiet,
	})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.StopListening()
		// Shutdown closes idle connections, those of versions draining
		// gently for an update too: waiting must not take the drain time.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Wait(ctx); err != nil {
			t.Errorf("connections still open after shutdown: %v", err)
		}
	})
	return &harness{m: m, store: store, sub: sub, files: files}
}

func (h *harness) lds(t *testing.T, version string, ls ...*listenerv3.Listener) error {
	t.Helper()
	u := &xds.Update{Version: version, Full: true}
	for _, l := range ls {
		u.Resources = append(u.Resources, xds.Resource{Name: l.GetName(), Version: version, Message: l})
	}
	return h.m.LDS().Update(u)
}

func (h *harness) counter(name string) uint64 {
	return h.store.Counter("listener_manager." + name).Value()
}
func (h *harness) gauge(name string) int64 {
	return h.store.Gauge("listener_manager."+name, stats.NeverImport).Value()
}

func (h *harness) url(t *testing.T, name string) string {
	t.Helper()
	a := h.m.Addrs()[name]
	if a == nil {
		t.Fatalf("listener %q is not active", name)
	}
	return "http://" + a.String() + "/"
}

// get does one request on client and returns the body and whether the
// response asked for the connection to close.
func get(t *testing.T, c *http.Client, url string) (string, bool) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	return string(b), resp.Close
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 20 * time.Second}
}

// TestLDSModifyKeepsSocketAndDrainsOldConnections: a modified listener on
// the same address keeps its port; new connections get the new config,
// a keep-alive connection accepted before keeps the old config for its
// next request, which is answered with Connection: close.
func TestLDSModifyKeepsSocketAndDrainsOldConnections(t *testing.T) {
	h := newHarness(t, time.Hour)
	if err := h.lds(t, "1", httpListener(t, "l1", "127.0.0.1", 0, "v1")); err != nil {
		t.Fatal(err)
	}
	url := h.url(t, "l1")
	old := newClient()
	if body, closing := get(t, old, url); body != "v1" || closing {
		t.Fatalf("before update: %q close=%v", body, closing)
	}
	if got := h.counter("listener_added"); got != 1 {
		t.Errorf("listener_added = %d", got)
	}

	if err := h.lds(t, "2", httpListener(t, "l1", "127.0.0.1", 0, "v2")); err != nil {
		t.Fatal(err)
	}
	if got := h.url(t, "l1"); got != url {
		t.Fatalf("address changed on modify: %s → %s", url, got)
	}
	if body, _ := get(t, newClient(), url); body != "v2" {
		t.Fatalf("new connection got %q, want v2", body)
	}
	if got := h.gauge("total_listeners_draining"); got != 1 {
		t.Errorf("total_listeners_draining = %d while an old connection is open", got)
	}
	// The old keep-alive connection keeps the old config and is told to
	// close; the client's next request opens a connection to the new.
	if body, closing := get(t, old, url); body != "v1" || !closing {
		t.Fatalf("old connection: %q close=%v, want v1 with Connection: close", body, closing)
	}
	if body, _ := get(t, old, url); body != "v2" {
		t.Fatalf("after reconnect: %q, want v2", body)
	}
	testutil.WaitFor(t, "the old version to finish draining", func() bool { return h.gauge("total_listeners_draining") == 0 })
	for stat, want := range map[string]uint64{"listener_modified": 1, "listener_in_place_updated": 1, "listener_create_success": 2} {
		if got := h.counter(stat); got != want {
			t.Errorf("%s = %d, want %d", stat, got, want)
		}
	}
	if got := h.gauge("total_listeners_active"); got != 1 {
		t.Errorf("total_listeners_active = %d", got)
	}

	// The same config again changes nothing.
	if err := h.lds(t, "3", httpListener(t, "l1", "127.0.0.1", 0, "v2")); err != nil {
		t.Fatal(err)
	}
	if got := h.counter("listener_modified"); got != 1 {
		t.Errorf("an unchanged listener counted as modified: %d", got)
	}

	// Removal: the socket closes, the listener drains.
	if err := h.lds(t, "4"); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.m.Addrs()["l1"]; ok {
		t.Fatal("removed listener still active")
	}
	if c, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")); err == nil {
		c.Close()
		t.Fatal("removed listener still accepts")
	}
	if got := h.counter("listener_removed"); got != 1 {
		t.Errorf("listener_removed = %d", got)
	}
	if got := h.gauge("total_listeners_active"); got != 0 {
		t.Errorf("total_listeners_active = %d", got)
	}
}

// TestLDSAddressChangeMovesSocket: a listener modified to another address
// binds the new one and closes the old.
func TestLDSAddressChangeMovesSocket(t *testing.T) {
	h := newHarness(t, time.Hour)
	if err := h.lds(t, "1", httpListener(t, "l1", "127.0.0.1", 0, "v1")); err != nil {
		t.Fatal(err)
	}
	oldAddr := h.m.Addrs()["l1"].String()
	if err := h.lds(t, "2", httpListener(t, "l1", "127.0.0.2", 0, "v2")); err != nil {
		t.Fatal(err)
	}
	if body, _ := get(t, newClient(), h.url(t, "l1")); body != "v2" {
		t.Fatalf("got %q", body)
	}
	if !strings.HasPrefix(h.m.Addrs()["l1"].String(), "127.0.0.2:") {
		t.Fatalf("listener on %s", h.m.Addrs()["l1"])
	}
	if c, err := net.Dial("tcp", oldAddr); err == nil {
		c.Close()
		t.Fatal("old address still accepts")
	}
	if got := h.counter("listener_in_place_updated"); got != 0 {
		t.Errorf("listener_in_place_updated = %d for an address change", got)
	}
}

// TestLDSBackToActiveAddressWhileWarmingElsewhere: while a version on
// another address warms, a newer version back on the active one's address
// takes over the active socket instead of failing to bind it.
func TestLDSBackToActiveAddressWhileWarmingElsewhere(t *testing.T) {
	h := newHarness(t, time.Hour)
	port := freePort(t)
	if err := h.lds(t, "1", httpListener(t, "l1", "127.0.0.1", port, "v1")); err != nil {
		t.Fatal(err)
	}
	url := h.url(t, "l1")
	// Waits for RDS, which never answers: stays warming on 127.0.0.2.
	if err := h.lds(t, "2", httpListener(t, "l1", "127.0.0.2", 0, "v2", withRDS("never"))); err != nil {
		t.Fatal(err)
	}
	if err := h.lds(t, "3", httpListener(t, "l1", "127.0.0.1", port, "v3")); err != nil {
		t.Fatalf("back to the active address: %v", err)
	}
	if got := h.url(t, "l1"); got != url {
		t.Fatalf("listener moved: %s → %s", url, got)
	}
	if body, _ := get(t, newClient(), url); body != "v3" {
		t.Fatalf("got %q, want v3", body)
	}
	if h.sub.live("never") != 0 {
		t.Error("the discarded warming version's RDS watch is still open")
	}
	if got := h.gauge("total_listeners_warming"); got != 0 {
		t.Errorf("total_listeners_warming = %d", got)
	}
}

// TestLDSNackKeepsServing: an update with one bad listener is refused
// whole — the good change in it is not applied either — and the old
// config keeps serving.
func TestLDSNackKeepsServing(t *testing.T) {
	h := newHarness(t, time.Hour)
	if err := h.lds(t, "1", httpListener(t, "l1", "127.0.0.1", 0, "v1")); err != nil {
		t.Fatal(err)
	}
	url := h.url(t, "l1")

	// Occupied by someone else: binding fails during validation.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := uint32(busy.Addr().(*net.TCPAddr).Port)

	unknownCluster := httpListener(t, "bad", "127.0.0.1", 0, "x")
	{
		// An inline route_config validates clusters: an unknown one fails.
		var hcm hcmv3.HttpConnectionManager
		unknownCluster.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm)
		hcm.GetRouteConfig().VirtualHosts[0].Routes[0].Action = &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "nope"},
		}}
		unknownCluster.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &hcm)}
	}
	// A free port for two new listeners that conflict with each other.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := uint32(free.Addr().(*net.TCPAddr).Port)
	free.Close()

	for _, tt := range []struct {
		name string
		bad  *listenerv3.Listener
		want string
	}{
		{"bind failure", httpListener(t, "bad", "127.0.0.1", busyPort, "x"), `listener "bad": address:`},
		{"unknown cluster", unknownCluster, `listener "bad": filter_chains[0].filters[0].typed_config: route_config:`},
		{"address conflict", httpListener(t, "l3", "127.0.0.1", freePort, "x"), `is already used by listener "l3"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			failures := h.counter("listener_create_failure")
			err := h.lds(t, "2", httpListener(t, "l1", "127.0.0.1", 0, "v2"), tt.bad, httpListener(t, "l2", "127.0.0.1", freePort, "x"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if h.counter("listener_create_failure") <= failures {
				t.Error("listener_create_failure not counted")
			}
			if body, _ := get(t, newClient(), url); body != "v1" {
				t.Fatalf("after NACK: %q, want v1", body)
			}
			if len(h.m.Addrs()) != 1 {
				t.Fatalf("listeners after NACK: %v", h.m.Addrs())
			}
		})
	}
	if got := h.counter("listener_modified"); got != 0 {
		t.Errorf("listener_modified = %d after NACKs only", got)
	}
}

// TestDrainTimeClosesIdleConnections: a connection of a replaced version
// that stays idle is closed when the drain time ends, and the version's
// watches are released then.
func TestDrainTimeClosesIdleConnections(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond)
	if err := h.lds(t, "1", httpListener(t, "l1", "127.0.0.1", 0, "v1", withRDS("r1"))); err != nil {
		t.Fatal(err)
	}
	if err := h.sub.watch(t, "r1").w.Watcher.Update(&xds.Update{Version: "a", Resources: []xds.Resource{{Name: "r1", Message: routeConfig("r1", "v1")}}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "l1 to go live", func() bool { return h.m.Addrs()["l1"] != nil })
	c, err := net.Dial("tcp", h.m.Addrs()["l1"].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 4096)
	if n, err := c.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "v1") {
		t.Fatalf("first response: %q %v", buf[:n], err)
	}
	// Replace the listener (inline routes now): the old version drains.
	if err := h.lds(t, "2", httpListener(t, "l1", "127.0.0.1", 0, "v2")); err != nil {
		t.Fatal(err)
	}
	// Idle: nothing is said to the connection until the drain time ends.
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("read %q from an idle draining connection", buf[:n])
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("idle connection was not closed at the end of the drain time")
	}
	testutil.WaitFor(t, "the RDS watch of the old version to be released", func() bool { return h.sub.live("r1") == 0 })
	testutil.WaitFor(t, "draining to end", func() bool { return h.gauge("total_listeners_draining") == 0 })
}

// TestWarmingWaitsForRDS: a listener using RDS warms until its route
// configuration arrives; RDS updates reach existing connections; a
// listener that goes live on initial_fetch_timeout answers 404 NR.
func TestWarmingWaitsForRDS(t *testing.T) {
	h := newHarness(t, time.Hour)
	logPath := filepath.Join(t.TempDir(), "access.log")
	withLog := func(hc *hcmv3.HttpConnectionManager) {
		hc.AccessLog = []*accesslogv3.AccessLog{fileLog(t, logPath, "%RESPONSE_CODE% %RESPONSE_FLAGS%\n")}
	}
	if err := h.lds(t, "1", httpListener(t, "l1", "127.0.0.1", 0, "unused", withRDS("r1"))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.m.LDSInitialized():
		t.Fatal("LDS initialized while its listener warms")
	default:
	}
	if _, ok := h.m.Addrs()["l1"]; ok {
		t.Fatal("listener active before its routes arrived")
	}
	if got := h.gauge("total_listeners_warming"); got != 1 {
		t.Errorf("total_listeners_warming = %d", got)
	}
	if d := h.m.ConfigDump().GetDynamicListeners(); len(d) != 1 || d[0].GetWarmingState() == nil || d[0].GetActiveState() != nil {
		t.Errorf("config dump while warming: %v", d)
	}

	w := h.sub.watch(t, "r1")
	if w.w.TypeURL != xds.RouteType || w.w.Stats == nil {
		t.Fatalf("watch %+v", w.w)
	}
	if err := w.w.Watcher.Update(&xds.Update{Version: "a", Resources: []xds.Resource{{Name: "r1", Message: routeConfig("r1", "routes-a")}}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "LDS to initialize", func() bool {
		select {
		case <-h.m.LDSInitialized():
			return true
		default:
			return false
		}
	})
	if got := h.gauge("total_listeners_warming"); got != 0 {
		t.Errorf("total_listeners_warming = %d", got)
	}
	client := newClient()
	url := h.url(t, "l1")
	if body, _ := get(t, client, url); body != "routes-a" {
		t.Fatalf("got %q", body)
	}
	// A bad RDS update is refused; the table stays.
	bad := routeConfig("r1", "x")
	bad.ValidateClusters = wrapperspb.Bool(true)
	bad.VirtualHosts[0].Routes[0].Action = &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "nope"}}}
	if err := w.w.Watcher.Update(&xds.Update{Version: "b", Resources: []xds.Resource{{Name: "r1", Message: bad}}}); err == nil {
		t.Fatal("RDS update routing to an unknown cluster with validate_clusters was accepted")
	}
	if body, closing := get(t, client, url); body != "routes-a" || closing {
		t.Fatalf("after NACK: %q close=%v", body, closing)
	}
	// A good update reaches the existing keep-alive connection.
	if err := w.w.Watcher.Update(&xds.Update{Version: "c", Resources: []xds.Resource{{Name: "r1", Message: routeConfig("r1", "routes-c")}}}); err != nil {
		t.Fatal(err)
	}
	if body, closing := get(t, client, url); body != "routes-c" || closing {
		t.Fatalf("after RDS update: %q close=%v", body, closing)
	}

	// A second listener on a route config that never comes goes live on
	// initial_fetch_timeout and answers 404 NR.
	if err := h.lds(t, "2", httpListener(t, "l1", "127.0.0.1", 0, "unused", withRDS("r1")),
		httpListener(t, "l2", "127.0.0.1", 0, "unused", withRDS("r2"), withLog)); err != nil {
		t.Fatal(err)
	}
	if err := h.sub.watch(t, "r2").w.Watcher.Update(&xds.Update{InitialFetchTimeout: true}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "l2 to go live", func() bool { return h.m.Addrs()["l2"] != nil })
	resp, err := client.Get(h.url(t, "l2"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("status %d without a route table, want 404", resp.StatusCode)
	}
	h.files.Flush()
	testutil.WaitFor(t, "the access log line", func() bool {
		h.files.Flush()
		b, _ := os.ReadFile(logPath)
		return strings.TrimSpace(string(b)) == "404 NR"
	})

	// l1 was unchanged by the second update: still one watch for r1.
	if n := h.sub.live("r1"); n != 1 {
		t.Errorf("%d live watches for r1", n)
	}
	dump := h.m.opts.Factory.Routes.ConfigDump()
	if len(dump.GetDynamicRouteConfigs()) != 1 || dump.GetDynamicRouteConfigs()[0].GetVersionInfo() != "c" {
		t.Errorf("routes dump: %v", dump)
	}
}

// TestHitlessUnderLoad: keep-alive clients hammer a listener while it is
// modified every 100 ms; not one request may fail. Half the requests are
// POSTs, which Go's client does not retry on a closed connection, so
// this holds only if draining connections are told before they close.
func TestHitlessUnderLoad(t *testing.T) {
	h := newHarness(t, time.Hour)
	if err := h.lds(t, "0", httpListener(t, "l1", "127.0.0.1", 0, "v0")); err != nil {
		t.Fatal(err)
	}
	url := h.url(t, "l1")
	const clients = 32
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 20 * time.Second}
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var resp *http.Response
				var err error
				if (i+n)%2 == 0 {
					resp, err = client.Get(url)
				} else {
					resp, err = client.Post(url, "text/plain", strings.NewReader("payload"))
				}
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	updates := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		updates++
		v := fmt.Sprint(updates)
		if err := h.lds(t, v, httpListener(t, "l1", "127.0.0.1", 0, "v"+v)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests, %d updates", ok.Load(), updates)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	if ok.Load() < clients {
		t.Fatalf("only %d requests completed", ok.Load())
	}
	if got := h.counter("listener_modified"); got != uint64(updates) {
		t.Errorf("listener_modified = %d, want %d", got, updates)
	}
}

// TestReplacedWhileWarming: a new listener changed again before it warmed
// keeps the socket bound for it, and the latest version goes live.
func TestReplacedWhileWarming(t *testing.T) {
	h := newHarness(t, time.Hour)
	if err := h.lds(t, "1", httpListener(t, "l1", "127.0.0.1", 0, "unused", withRDS("r1"))); err != nil {
		t.Fatal(err)
	}
	if err := h.lds(t, "2", httpListener(t, "l1", "127.0.0.1", 0, "unused", withRDS("r2"))); err != nil {
		t.Fatal(err)
	}
	if got := h.gauge("total_listeners_warming"); got != 1 {
		t.Errorf("total_listeners_warming = %d", got)
	}
	if n := h.sub.live("r1"); n != 0 {
		t.Error("the replaced warming version's RDS watch was not released")
	}
	if err := h.sub.watch(t, "r2").w.Watcher.Update(&xds.Update{Version: "a", Resources: []xds.Resource{{Name: "r2", Message: routeConfig("r2", "second")}}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "l1 to go live", func() bool { return h.m.Addrs()["l1"] != nil })
	if body, _ := get(t, newClient(), h.url(t, "l1")); body != "second" {
		t.Fatalf("got %q", body)
	}
	if got := h.counter("listener_added"); got != 1 {
		t.Errorf("listener_added = %d", got)
	}
}

func TestStaticWarmedWaitsForRDS(t *testing.T) {
	h := newHarness(t, time.Hour)
	if err := h.m.AddStatic([]*listenerv3.Listener{httpListener(t, "s1", "127.0.0.1", 0, "unused", withRDS("rs"))}); err != nil {
		t.Fatal(err)
	}
	warmed := h.m.StaticWarmed()
	select {
	case <-warmed:
		t.Fatal("static listeners warmed before their route configuration arrived")
	default:
	}
	w := h.sub.watch(t, "rs")
	if err := w.w.Watcher.Update(&xds.Update{Version: "a", Resources: []xds.Resource{{Name: "rs", Message: routeConfig("rs", "static-rds")}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-warmed:
	case <-time.After(10 * time.Second):
		t.Fatal("static listeners did not warm after their route configuration arrived")
	}
}

// A warming listener is bound but does not listen: connections are
// refused until it goes live, as in Envoy.
func TestWarmingListenerRefusesConnections(t *testing.T) {
	h := newHarness(t, time.Hour)
	port := freePort(t)
	if err := h.lds(t, "1", httpListener(t, "w1", "127.0.0.1", port, "unused", withRDS("rw"))); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatal("a warming listener accepted a connection")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialing a warming listener: %v, want connection refused", err)
	}
	w := h.sub.watch(t, "rw")
	if err := w.w.Watcher.Update(&xds.Update{Version: "a", Resources: []xds.Resource{{Name: "rw", Message: routeConfig("rw", "live")}}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the listener to go live", func() bool { _, ok := h.m.Addrs()["w1"]; return ok })
	if body, _ := get(t, newClient(), "http://"+addr+"/"); body != "live" {
		t.Fatalf("got %q", body)
	}
}

// A listener renamed by the control plane (one removed, another added on
// its address in the same update) takes the address over instead of
// failing to bind, and the old listener's connections drain.
func TestLDSRenameTakesOverAddress(t *testing.T) {
	h := newHarness(t, time.Hour)
	port := freePort(t)
	if err := h.lds(t, "1", httpListener(t, "old", "127.0.0.1", port, "old")); err != nil {
		t.Fatal(err)
	}
	client := newClient()
	url := h.url(t, "old")
	if body, _ := get(t, client, url); body != "old" {
		t.Fatalf("got %q", body)
	}
	if err := h.lds(t, "2", httpListener(t, "new", "127.0.0.1", port, "new")); err != nil {
		t.Fatalf("rename refused: %v", err)
	}
	if _, ok := h.m.Addrs()["old"]; ok {
		t.Error("the removed listener is still active")
	}
	// The kept-alive connection belongs to the removed listener: it is
	// told to close, and the client's next connection reaches the new one.
	testutil.WaitFor(t, "the new listener to answer", func() bool { body, _ := get(t, client, url); return body == "new" })
	if got := h.counter("listener_removed"); got != 1 {
		t.Errorf("listener_removed = %d", got)
	}
	if got := h.counter("listener_create_failure"); got != 0 {
		t.Errorf("listener_create_failure = %d", got)
	}
}

// Listeners on port 0 are all bound before any of them listens; each must
// still get a port of its own and accept on it.
func TestPortZeroListenersGetDistinctPorts(t *testing.T) {
	m := staticManager(t)
	var pbs []*listenerv3.Listener
	for i := range 64 {
		pbs = append(pbs, httpListener(t, fmt.Sprintf("l%d", i), "127.0.0.1", 0, "ok"))
	}
	if err := m.AddStatic(pbs); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.StopListening()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Wait(ctx)
	})
	seen := map[string]string{}
	for name, a := range m.Addrs() {
		if other, dup := seen[a.String()]; dup {
			t.Fatalf("listeners %s and %s share %s", name, other, a)
		}
		seen[a.String()] = name
		c, err := net.DialTimeout("tcp", a.String(), 5*time.Second)
		if err != nil {
			t.Fatalf("listener %s on %s: %v", name, a, err)
		}
		c.Close()
	}
	if len(seen) != 64 {
		t.Fatalf("%d listeners active, want 64", len(seen))
	}
}

func TestStaticListenersSharingAnAddressAreRefused(t *testing.T) {
	err := staticManager(t).AddStatic([]*listenerv3.Listener{
		httpListener(t, "a", "127.0.0.1", 18555, "a"),
		httpListener(t, "b", "127.0.0.1", 18555, "b"),
	})
	const want = "static_resources.listeners[1]: address 127.0.0.1:18555: address already in use by listeners[0]"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) uint32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

// staticManager is a manager without dynamic configuration, not started.
func staticManager(t *testing.T) *Manager {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	store := stats.NewStore()
	files := accesslog.NewFileManager(store, quiet)
	t.Cleanup(files.Close)
	return NewManager(ManagerOptions{
		Factory: networkfilter.FactoryContext{Stats: store, Logger: quiet, AccessLogFiles: files},
		Stats:   store, Logger: quiet,
	})
}
