package hcm

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmrouter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
)

// rerouteFilter is a test filter (config: a Struct) that moves the request
// to another route and marks the response on its way out, exercising the
// connection manager's side of the contract.
type rerouteFilter struct{ next httpfilter.Handler }

type markedResponse struct{ httpfilter.ResponseWrapper }

func (w *markedResponse) WriteHeader(status int, h message.Headers, n int64) error {
	h.Add("x-seen-by", "reroute")
	return w.ResponseWrapper.WriteHeader(status, h, n)
}

func (f rerouteFilter) ServeStream(s *httpfilter.Stream) {
	if s.Request.Header.Has("x-reroute") {
		s.Request.Path = "/b"
		s.ClearRouteCache()
	}
	if s.Request.Header.Has("x-deny") {
		s.Reply(httpfilter.LocalReply{Status: 403, Body: "denied", Details: "test_denied",
			Headers: message.Headers{{Name: "x-why", Value: "test"}}, GrpcStatus: 16, HasGrpcStatus: true})
		return
	}
	orig := s.Response
	s.Response = &markedResponse{httpfilter.ResponseWrapper{ResponseWriter: orig}}
	f.next.ServeStream(s)
	s.Response = orig
}

func init() {
	httpfilter.Registry.Register(&structpb.Struct{}, func(_ proto.Message, _ *httpfilter.FactoryContext, next httpfilter.Handler) (httpfilter.Handler, error) {
		return rerouteFilter{next}, nil
	})
}

func direct(path, body string) *routev3.Route {
	return &routev3.Route{
		Name:  path,
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: path}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 200, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}}}},
	}
}

func TestFilterContract(t *testing.T) {
	test, _ := anypb.New(&structpb.Struct{})
	router, _ := anypb.New(&hcmrouter.Router{})
	cfg, err := New(&hcmv3.HttpConnectionManager{
		StatPrefix: "contract",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
				Routes: []*routev3.Route{direct("/b", "route b"), direct("/", "route a")}}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: "test", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: test}},
			{Name: "router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}},
		},
	}, Deps{Stats: stats.NewStore(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := &conn{cfg: cfg, drain: ctx, streamCtx: ctx, nc: &networkfilter.Conn{RemoteAddr: netip.MustParseAddrPort("10.0.0.1:1234")}}
	serve := func(h ...message.Header) *recordWriter {
		var w recordWriter
		cfg.serveStream(c.streamCtx, c, &message.Request{Method: "GET", Authority: "x", Path: "/a", Protocol: message.HTTP11, ContentLength: -1, Header: h}, &w, nil)
		return &w
	}
	if w := serve(); w.body.String() != "route a" || w.header.Value("x-seen-by") != "reroute" {
		t.Fatalf("plain: %q %v", w.body.String(), w.header)
	}
	if w := serve(message.Header{Name: "x-reroute", Value: "1"}); w.body.String() != "route b" {
		t.Fatalf("after ClearRouteCache the router followed %q", w.body.String())
	}
	w := serve(message.Header{Name: "x-deny", Value: "1"})
	if w.status != 403 || w.body.String() != "denied" || w.header.Value("x-why") != "test" || w.header.Value("content-type") != "text/plain" {
		t.Fatalf("local reply: %d %q %v", w.status, w.body.String(), w.header)
	}
	w = serve(message.Header{Name: "x-deny", Value: "1"}, message.Header{Name: "content-type", Value: "application/grpc"})
	if w.status != 200 || w.header.Value("grpc-status") != "16" || w.header.Value("grpc-message") != "denied" || w.header.Value("x-why") != "test" {
		t.Fatalf("gRPC local reply with an explicit status: %d %v", w.status, w.header)
	}
}
