package router_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	_ "github.com/legate-proxy/legate/internal/filter/http/router"
	"github.com/legate-proxy/legate/internal/httpfilter/filtertest"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/testutil"
)

func prefix(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func toCluster(name string, timeout time.Duration) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
		Timeout:          durationpb.New(timeout),
	}}
}

// harness serves a real upstream (echoing the path it got in x-path, and
// stalling on /slow) behind the router, with a dead cluster beside it.
func harness(t *testing.T, suppress bool) *filtertest.Harness {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-r.Context().Done()
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("x-path", r.URL.Path)
		w.Header().Set("x-host", r.Host)
		io.WriteString(w, "hello "+string(body))
	}))
	t.Cleanup(up.Close)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr()
	dead.Close() // nothing listens there now: connections are refused

	store := stats.NewStore()
	cm := filtertest.Clusters(t, store,
		testutil.StaticCluster("web", up.Listener.Addr()),
		testutil.StaticCluster("dead", deadAddr),
		&clusterv3.Cluster{Name: "empty", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}})
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"example.com"},
		Routes: []*routev3.Route{
			{Match: prefix("/direct"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 418, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}}},
			{Match: prefix("/redirect"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{HostRedirect: "other.example"}}},
			{Match: prefix("/dead"), Action: toCluster("dead", time.Second)},
			{Match: prefix("/empty"), Action: toCluster("empty", time.Second)},
			{Match: prefix("/byheader"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_ClusterHeader{ClusterHeader: "x-cluster"}}}},
			{Match: prefix("/slow"), Action: toCluster("web", 100*time.Millisecond)},
			{Match: prefix("/rewrite"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "web"}, PrefixRewrite: "/new"}}},
			{Match: prefix("/"), Action: toCluster("web", 5*time.Second)},
		},
	}}}
	return filtertest.New(t, filtertest.Options{
		Filters:  []*hcmv3.HttpFilter{filtertest.Filter("envoy.filters.http.router", &routerv3.Router{SuppressEnvoyHeaders: suppress})},
		Routes:   rc,
		Clusters: cm,
		Stats:    store,
	})
}

func TestRouterForwards(t *testing.T) {
	h := harness(t, false)
	res := h.Do(filtertest.Request("POST", "http://example.com/a/b", "world"))
	if res.Status != 200 || res.Body != "hello world" {
		t.Fatalf("got %d %q", res.Status, res.Body)
	}
	if res.Header.Value("x-path") != "/a/b" || res.Header.Value("x-envoy-upstream-service-time") == "" {
		t.Fatalf("response headers %v", res.Header)
	}
	if res.Info.UpstreamCluster != "web" || res.Info.ResponseCodeDetails != "via_upstream" || res.Info.Attempts != 1 {
		t.Fatalf("stream info: cluster %q details %q attempts %d", res.Info.UpstreamCluster, res.Info.ResponseCodeDetails, res.Info.Attempts)
	}
	if n := h.Stats.Counter("cluster.web.upstream_rq_200").Value(); n != 1 {
		t.Fatalf("cluster.web.upstream_rq_200 = %d", n)
	}
	if n := h.Counter("rq_total"); n != 1 {
		t.Fatalf("rq_total = %d", n)
	}

	res = h.Do(filtertest.Request("GET", "http://example.com/rewrite/x", ""))
	if res.Status != 200 || res.Header.Value("x-path") != "/new/x" {
		t.Fatalf("prefix_rewrite: %d, upstream saw %q", res.Status, res.Header.Value("x-path"))
	}
}

func TestRouterSuppressEnvoyHeaders(t *testing.T) {
	res := harness(t, true).Do(filtertest.Request("GET", "http://example.com/", ""))
	if res.Status != 200 || res.Header.Has("x-envoy-upstream-service-time") {
		t.Fatalf("got %d with headers %v", res.Status, res.Header)
	}
}

func TestRouterLocalReplies(t *testing.T) {
	h := harness(t, false)
	for _, tt := range []struct {
		target, header string
		status         int
		bodyPrefix     string
		details        string
		flag           streaminfo.ResponseFlags
		counter        string
	}{
		{"http://unknown.example/", "", 404, "", "route_not_found", streaminfo.NoRouteFound, "no_route"},
		{"http://example.com/byheader", "", 503, "", "cluster_not_found", streaminfo.NoClusterFound, "no_cluster"},
		{"http://example.com/byheader", "nope", 503, "", "cluster_not_found", streaminfo.NoClusterFound, "no_cluster"},
		{"http://example.com/empty", "", 503, "no healthy upstream", "no_healthy_upstream", streaminfo.NoHealthyUpstream, ""},
		{"http://example.com/dead", "", 503, "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure",
			"upstream_reset_before_response_started{remote_connection_failure}", streaminfo.UpstreamConnectionFailure, ""},
		{"http://example.com/slow", "", 504, "upstream request timeout", "upstream_response_timeout", streaminfo.UpstreamRequestTimeout, ""},
	} {
		t.Run(tt.target+tt.header, func(t *testing.T) {
			req := filtertest.Request("GET", tt.target, "")
			if tt.header != "" {
				req.Header.Add("x-cluster", tt.header)
			}
			before := uint64(0)
			if tt.counter != "" {
				before = h.Counter(tt.counter)
			}
			res := h.Do(req)
			if res.Status != tt.status || !strings.HasPrefix(res.Body, tt.bodyPrefix) || res.LocalReply == nil {
				t.Fatalf("got %d %q (local reply %v)", res.Status, res.Body, res.LocalReply != nil)
			}
			if res.Info.ResponseCodeDetails != tt.details || res.Info.Flags&tt.flag == 0 {
				t.Fatalf("details %q flags %v", res.Info.ResponseCodeDetails, res.Info.Flags)
			}
			if tt.counter != "" && h.Counter(tt.counter) != before+1 {
				t.Fatalf("%s not counted", tt.counter)
			}
		})
	}
}

func TestRouterDirectResponseAndRedirect(t *testing.T) {
	h := harness(t, false)
	res := h.Do(filtertest.Request("GET", "http://example.com/direct", ""))
	if res.Status != 418 || res.Body != "teapot" || res.Info.ResponseCodeDetails != "direct_response" || res.LocalReply != nil {
		t.Fatalf("direct response: %d %q %q", res.Status, res.Body, res.Info.ResponseCodeDetails)
	}
	res = h.Do(filtertest.Request("GET", "http://example.com/redirect/x?q=1", ""))
	if res.Status != 301 || res.Header.Value("location") != "http://other.example/redirect/x?q=1" {
		t.Fatalf("redirect: %d %v", res.Status, res.Header)
	}
	if h.Counter("rq_redirect") != 1 || h.Counter("rq_direct_response") != 1 {
		t.Fatal("redirect and direct response not counted")
	}
}

// The router sends a weighted route's request to the entry the connection
// manager picked when the route matched.
func TestRouterUsesPickedWeightedCluster(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") }))
	t.Cleanup(up.Close)
	store := stats.NewStore()
	cm := filtertest.Clusters(t, store, testutil.StaticCluster("b", up.Listener.Addr()))
	h := filtertest.New(t, filtertest.Options{
		Filters: []*hcmv3.HttpFilter{filtertest.Filter("router", &routerv3.Router{})},
		Routes: &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
			Name: "all", Domains: []string{"*"},
			Routes: []*routev3.Route{{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
					Clusters: []*routev3.WeightedCluster_ClusterWeight{
						{Name: "a", Weight: wrapperspb.UInt32(0)},
						{Name: "b", Weight: wrapperspb.UInt32(1)},
					}}}}}}},
		}}},
		Clusters: cm, Stats: store,
	})
	for range 5 {
		if res := h.Do(filtertest.Request("GET", "http://x/", "")); res.Status != 200 || res.Body != "b" || res.Info.UpstreamCluster != "b" {
			t.Fatalf("got %d %q via %q", res.Status, res.Body, res.Info.UpstreamCluster)
		}
	}
}
