// Package filtertest runs HTTP filters without the connection manager or
// the binary: a Harness builds a chain from http_filters (with the same
// httpfilter.BuildChain the connection manager uses) and a route
// configuration (compiled by the real route table, per-filter configs
// included), serves requests through it and records what came out.
//
// A chain whose last filter is not terminal ends in a stub upstream that
// records the request that reached it and answers 200 "upstream". For the
// router, give it real clusters (Clusters) with real peers on loopback.
package filtertest

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/routetable"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/upstream/connpool"
)

// Options configure a Harness.
type Options struct {
	// Filters is the http_filters list (see Filter).
	Filters []*hcmv3.HttpFilter
	// Routes is the route configuration; nil is one virtual host "*"
	// with one route "/" to cluster "upstream".
	Routes *routev3.RouteConfiguration
	// Clusters resolves the routes' clusters; nil means none exist (fine
	// for a chain that ends in the stub upstream).
	Clusters *cluster.Manager
	// Stats is the store filters create stats in; nil makes one.
	Stats *stats.Store
	// Runtime is the filters' runtime snapshot; nil has no keys.
	Runtime *runtime.Snapshot
	// Upstreams is the filters' async clients; nil gives them none.
	Upstreams httpfilter.Upstreams
	// StatPrefix is the connection manager's stat_prefix ("test").
	StatPrefix string
}

// Harness serves requests through a filter chain.
type Harness struct {
	t      testing.TB
	chain  httpfilter.Handler
	routes *routetable.Table
	Stats  *stats.Store
	prefix string
}

// Filter is an http_filters entry for cfg.
func Filter(name string, cfg proto.Message) *hcmv3.HttpFilter {
	a, err := anypb.New(cfg)
	if err != nil {
		panic(err)
	}
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}}
}

// Any packs m for a typed_per_filter_config map.
func Any(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// New builds the chain; a config error fails the test.
func New(t testing.TB, o Options) *Harness {
	t.Helper()
	h, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	h.t = t
	return h
}

// Build is New returning the config error, for tests of config errors.
func Build(o Options) (*Harness, error) {
	if o.Stats == nil {
		o.Stats = stats.NewStore()
	}
	if o.StatPrefix == "" {
		o.StatPrefix = "test"
	}
	rc := o.Routes
	if rc == nil {
		rc = &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
			Name: "all", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "upstream"}}},
			}},
		}}}
	}
	var src routetable.ClusterSource
	if o.Clusters != nil {
		src = o.Clusters
	}
	table, err := routetable.New(rc, routetable.Options{Clusters: src})
	if err != nil {
		return nil, err
	}
	var end httpfilter.Handler
	if n := len(o.Filters); n == 0 || !isTerminal(o.Filters[n-1]) {
		end = stubUpstream{}
	}
	chain, err := httpfilter.BuildChain(o.Filters, httpfilter.FactoryContext{
		Clusters:   o.Clusters,
		Stats:      o.Stats,
		StatPrefix: "http." + o.StatPrefix + ".",
		Runtime:    o.Runtime,
		Upstreams:  o.Upstreams,
	}, end)
	if err != nil {
		return nil, err
	}
	return &Harness{chain: chain, routes: table, Stats: o.Stats, prefix: "http." + o.StatPrefix + "."}, nil
}

func isTerminal(f *hcmv3.HttpFilter) bool {
	name := f.GetTypedConfig().GetTypeUrl()
	return httpfilter.Terminal[name[strings.LastIndexByte(name, '/')+1:]]
}

// Clusters is a cluster manager over clusters with real connection pools
// (see testutil.StaticCluster).
func Clusters(t testing.TB, store *stats.Store, clusters ...*clusterv3.Cluster) *cluster.Manager {
	t.Helper()
	m, err := cluster.NewManager(clusters, cluster.Options{
		Stats:   store,
		NewPool: func(c *cluster.Cluster, h *cluster.Host) cluster.HostPool { return connpool.New(c, h) },
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Start(context.Background())
	t.Cleanup(m.Close)
	return m
}

// Request is a request for method and target ("http://host/path"; the
// scheme is the connection's) with body ("" is none).
func Request(method, target, body string) *message.Request {
	scheme, rest, _ := strings.Cut(target, "://")
	authority, path, _ := strings.Cut(rest, "/")
	req := &message.Request{
		Method: method, Scheme: scheme, Authority: authority, Path: "/" + path,
		Protocol: message.HTTP11, ContentLength: -1,
	}
	if body != "" {
		req.Body = &plainBody{Reader: strings.NewReader(body)}
		req.ContentLength = int64(len(body))
	}
	return req
}

// plainBody is a request body as a codec gives it.
type plainBody struct{ *strings.Reader }

func (plainBody) Trailers() message.Headers { return nil }

// Result is what came out of one request.
type Result struct {
	Status   int
	Header   message.Headers
	Body     string
	Trailers message.Headers
	// LocalReply is the last local reply a filter sent, nil when none.
	LocalReply *httpfilter.LocalReply
	// Upstream is the request as it reached the stub upstream, with its
	// whole body; nil when it did not get there.
	Upstream     *message.Request
	UpstreamBody string
	Info         *streaminfo.StreamInfo
	// Route is the route the stream ended on (after ClearRouteCache).
	Route *routetable.Route
}

// Do serves req through the chain.
func (h *Harness) Do(req *message.Request) *Result {
	return h.DoContext(context.Background(), req)
}

// DoContext serves req with a stream context (cancel it to abort).
func (h *Harness) DoContext(ctx context.Context, req *message.Request) *Result {
	res := &Result{Info: &streaminfo.StreamInfo{StartTime: time.Now(), Protocol: req.Protocol,
		DownstreamRemoteAddr: netip.MustParseAddrPort("127.0.0.1:40000"),
		DownstreamDirectAddr: netip.MustParseAddrPort("127.0.0.1:40000"),
		DownstreamLocalAddr:  netip.MustParseAddrPort("127.0.0.1:10000")}}
	res.Info.Dynamic = new(streaminfo.Dynamic)
	rec := &recorder{res: res}
	ctx = context.WithValue(ctx, resultKey{}, res)
	s := &httpfilter.Stream{Ctx: ctx, Request: req, Response: rec, Info: res.Info}
	cb := &callbacks{h: h, res: res}
	s.SetCallbacks(cb)
	cb.ClearRouteCache(s)
	s.ChainConfig = s.PerFilter()
	h.chain.ServeStream(s)
	res.Route = s.Route
	if !rec.written && h.t != nil {
		h.t.Errorf("the chain returned without a response")
	}
	return res
}

// Counter is the value of the counter http.<stat_prefix>.<name>.
func (h *Harness) Counter(name string) uint64 {
	return h.Stats.Counter(h.prefix + name).Value()
}

type callbacks struct {
	h   *Harness
	res *Result
}

// SendLocalReply records the reply and writes it as a plain response;
// the connection manager's own encoding (gRPC, local_reply_config) is
// tested with the connection manager.
func (c *callbacks) SendLocalReply(s *httpfilter.Stream, r httpfilter.LocalReply) {
	c.res.LocalReply = &r
	s.Info.ResponseCodeDetails = r.Details
	if s.Response.HeaderWritten() {
		return
	}
	h := r.Headers
	if r.Body != "" {
		h.Set("content-type", "text/plain")
	}
	if s.Response.WriteHeader(r.Status, h, int64(len(r.Body))) == nil && r.Body != "" {
		io.WriteString(s.Response, r.Body)
	}
}

func (c *callbacks) ClearRouteCache(s *httpfilter.Stream) {
	s.Route, s.VirtualHost = c.h.routes.Match(s.Request)
	s.WeightedCluster = nil
	if s.Route != nil {
		s.Info.RouteName = s.Route.Name
		s.WeightedCluster = s.Route.PickWeighted(uint64(time.Now().UnixNano()))
	}
}

// stubUpstream ends a chain without a terminal filter: it records the
// request and its body and answers 200 "upstream".
type stubUpstream struct{}

// resultKey finds the Result from the stub, whatever ResponseWriter the
// filters put in front of the recorder.
type resultKey struct{}

func (stubUpstream) ServeStream(s *httpfilter.Stream) {
	res := s.Ctx.Value(resultKey{}).(*Result)
	res.Upstream = s.Request
	if s.Request.Body != nil {
		b, err := io.ReadAll(s.Request.Body)
		if err != nil {
			s.SendLocalReply(400, "", "stub_upstream_body_error")
			return
		}
		res.UpstreamBody = string(b)
	}
	if s.Response.WriteHeader(200, message.Headers{{Name: "content-type", Value: "text/plain"}}, 8) == nil {
		io.WriteString(s.Response, "upstream")
	}
}

type recorder struct {
	res     *Result
	written bool
	body    bytes.Buffer
}

func (r *recorder) WriteHeader(status int, h message.Headers, _ int64) error {
	r.written = true
	r.res.Status, r.res.Header = status, h
	r.res.Info.ResponseCode = status
	return nil
}

func (r *recorder) Write(p []byte) (int, error) {
	r.body.Write(p)
	r.res.Body = r.body.String()
	return len(p), nil
}

func (r *recorder) Flush() error { return nil }

func (r *recorder) WriteTrailers(h message.Headers) error {
	r.res.Trailers = h
	return nil
}

func (r *recorder) HeaderWritten() bool { return r.written }
