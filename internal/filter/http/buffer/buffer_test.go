package buffer_test

import (
	"io"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	_ "github.com/legate-proxy/legate/internal/filter/http/buffer"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/httpfilter/filtertest"
)

func bufferOf(n uint32) *bufferv3.Buffer {
	return &bufferv3.Buffer{MaxRequestBytes: wrapperspb.UInt32(n)}
}

// streamingBody is a body of unknown length (chunked), so only reading it
// all tells its size.
type streamingBody struct{ r io.Reader }

func (b *streamingBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *streamingBody) Trailers() message.Headers {
	return message.Headers{{Name: "x-trailer", Value: "t"}}
}

func chunked(path, body string) *message.Request {
	req := filtertest.Request("POST", "http://example.com"+path, "")
	req.Body = &streamingBody{strings.NewReader(body)}
	return req
}

// routes has a route per per-filter setting: /plain (none), /off (route
// disables), /small (route's own limit), /split (weighted cluster
// disables), and the virtual host sets a limit of 8 for all of them.
func routes() *routev3.RouteConfiguration {
	route := func(prefix string, tpfc map[string]*anypb.Any) *routev3.Route {
		return &routev3.Route{
			Match:                &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
			Action:               &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "upstream"}}},
			TypedPerFilterConfig: tpfc,
		}
	}
	disabled := filtertest.Any(&bufferv3.BufferPerRoute{Override: &bufferv3.BufferPerRoute_Disabled{Disabled: true}})
	limit := func(n uint32) *anypb.Any {
		return filtertest.Any(&bufferv3.BufferPerRoute{Override: &bufferv3.BufferPerRoute_Buffer{Buffer: bufferOf(n)}})
	}
	split := route("/split", nil)
	split.Action = &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
		WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{{
			Name: "upstream", Weight: wrapperspb.UInt32(1),
			TypedPerFilterConfig: map[string]*anypb.Any{"buf": disabled},
		}}},
	}}}
	return &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		TypedPerFilterConfig: map[string]*anypb.Any{"buf": limit(8)},
		Routes: []*routev3.Route{
			route("/off", map[string]*anypb.Any{"buf": disabled}),
			route("/small", map[string]*anypb.Any{"buf": limit(3)}),
			split,
			route("/", nil),
		},
	}}}
}

func TestBufferSetsContentLength(t *testing.T) {
	h := filtertest.New(t, filtertest.Options{Filters: []*hcmv3.HttpFilter{filtertest.Filter("buf", bufferOf(1024))}})
	res := h.Do(chunked("/", "hello world"))
	if res.Status != 200 || res.Upstream == nil {
		t.Fatalf("status %d, upstream reached %v", res.Status, res.Upstream != nil)
	}
	if res.Upstream.ContentLength != 11 || res.UpstreamBody != "hello world" {
		t.Fatalf("upstream got content-length %d body %q", res.Upstream.ContentLength, res.UpstreamBody)
	}
	if tr := res.Upstream.Body.Trailers(); tr.Value("x-trailer") != "t" {
		t.Fatalf("trailers lost: %v", tr)
	}
	// A request without a body passes as it is.
	if res := h.Do(filtertest.Request("GET", "http://example.com/", "")); res.Status != 200 || res.Upstream.Body != nil {
		t.Fatalf("bodiless request: %d", res.Status)
	}
}

func TestBufferTooLarge(t *testing.T) {
	h := filtertest.New(t, filtertest.Options{Filters: []*hcmv3.HttpFilter{filtertest.Filter("buf", bufferOf(4))}})
	for _, req := range []*message.Request{
		chunked("/", "hello"), // found out while reading
		filtertest.Request("POST", "http://example.com/", "hello"), // refused by content-length
	} {
		res := h.Do(req)
		if res.Status != 413 || res.Body != "Payload Too Large" || res.Upstream != nil {
			t.Fatalf("got %d %q, upstream reached %v", res.Status, res.Body, res.Upstream != nil)
		}
		if res.Info.ResponseCodeDetails != "request_payload_too_large" {
			t.Fatalf("details %q", res.Info.ResponseCodeDetails)
		}
	}
	if n := h.Counter("downstream_rq_too_large"); n != 2 {
		t.Fatalf("downstream_rq_too_large = %d", n)
	}
	// Exactly the limit fits.
	if res := h.Do(chunked("/", "four")); res.Status != 200 || res.UpstreamBody != "four" {
		t.Fatalf("body at the limit: %d %q", res.Status, res.UpstreamBody)
	}
}

// The most specific typed_per_filter_config wins: weighted cluster over
// route over virtual host over the filter's own config.
func TestBufferPerRoute(t *testing.T) {
	h := filtertest.New(t, filtertest.Options{
		Filters: []*hcmv3.HttpFilter{filtertest.Filter("buf", bufferOf(1024))},
		Routes:  routes(),
	})
	body := "0123456789" // 10 bytes: over the virtual host's 8
	for _, tt := range []struct {
		path     string
		status   int
		buffered bool
	}{
		{"/plain", 413, false}, // virtual host's limit of 8
		{"/off", 200, false},   // route disables: streamed through
		{"/small", 413, false}, // route's limit of 3
		{"/split", 200, false}, // weighted cluster disables
	} {
		res := h.Do(chunked(tt.path, body))
		if res.Status != tt.status {
			t.Errorf("%s: status %d, want %d", tt.path, res.Status, tt.status)
			continue
		}
		if tt.status == 200 && (res.UpstreamBody != body || res.Upstream.ContentLength != -1) {
			t.Errorf("%s: upstream got %q with content-length %d; want it streamed", tt.path, res.UpstreamBody, res.Upstream.ContentLength)
		}
	}
	if res := h.Do(chunked("/small", "ab")); res.Status != 200 || res.Upstream.ContentLength != 2 {
		t.Errorf("/small under its limit: %d", res.Status)
	}
}

// HttpFilter.disabled turns a filter off unless a route enables it with a
// FilterConfig; FilterConfig.disabled turns an enabled filter off.
func TestDisabledFilters(t *testing.T) {
	off := filtertest.Filter("buf", bufferOf(4))
	off.Disabled = true
	enable := filtertest.Any(&routev3.FilterConfig{})
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{
			{
				Match:                &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/on"}},
				Action:               &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "upstream"}}},
				TypedPerFilterConfig: map[string]*anypb.Any{"buf": enable},
			},
			{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "upstream"}}},
			},
		},
	}}}
	h := filtertest.New(t, filtertest.Options{Filters: []*hcmv3.HttpFilter{off}, Routes: rc})
	if res := h.Do(chunked("/", "hello")); res.Status != 200 {
		t.Errorf("disabled filter ran: %d", res.Status)
	}
	if res := h.Do(chunked("/on", "hello")); res.Status != 413 {
		t.Errorf("filter enabled by the route did not run: %d", res.Status)
	}

	rc.VirtualHosts[0].Routes[0].TypedPerFilterConfig = map[string]*anypb.Any{"buf": filtertest.Any(&routev3.FilterConfig{Disabled: true})}
	h = filtertest.New(t, filtertest.Options{Filters: []*hcmv3.HttpFilter{filtertest.Filter("buf", bufferOf(4))}, Routes: rc})
	if res := h.Do(chunked("/on", "hello")); res.Status != 200 {
		t.Errorf("filter disabled by the route ran: %d", res.Status)
	}
	if res := h.Do(chunked("/", "hello")); res.Status != 413 {
		t.Errorf("enabled filter did not run: %d", res.Status)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, tt := range map[string]struct {
		cfg  *bufferv3.Buffer
		want string
	}{
		"no limit":   {&bufferv3.Buffer{}, "http_filters[0]: max_request_bytes: is required"},
		"zero limit": {bufferOf(0), "http_filters[0]: max_request_bytes: must be greater than 0"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := filtertest.Build(filtertest.Options{Filters: []*hcmv3.HttpFilter{filtertest.Filter("buf", tt.cfg)}})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	_, err := filtertest.Build(filtertest.Options{
		Filters: []*hcmv3.HttpFilter{filtertest.Filter("buf", bufferOf(1))},
		Routes: &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
			Name: "all", Domains: []string{"*"},
			TypedPerFilterConfig: map[string]*anypb.Any{"buf": filtertest.Any(&bufferv3.BufferPerRoute{})},
		}}},
	})
	if want := `virtual_hosts[0].typed_per_filter_config["buf"]: one of disabled or buffer is required`; err == nil || err.Error() != want {
		t.Fatalf("per-route config error: got %v, want %q", err, want)
	}
}
