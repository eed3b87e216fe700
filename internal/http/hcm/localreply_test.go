package hcm

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
)

// recordWriter keeps a response.
type recordWriter struct {
	status  int
	header  message.Headers
	body    strings.Builder
	written bool
}

func (w *recordWriter) WriteHeader(status int, h message.Headers, _ int64) error {
	w.status, w.header, w.written = status, h, true
	return nil
}
func (w *recordWriter) Write(p []byte) (int, error)         { return w.body.Write(p) }
func (w *recordWriter) Flush() error                        { return nil }
func (w *recordWriter) WriteTrailers(message.Headers) error { return nil }
func (w *recordWriter) HeaderWritten() bool                 { return w.written }

// serveOne runs one request through an HCM with no routes but "/exists"
// (so other paths get the router's 404) and lr as local_reply_config.
func serveOne(t *testing.T, lr *hcmv3.LocalReplyConfig, req *message.Request) *recordWriter {
	t.Helper()
	router, _ := anypb.New(&routerv3.Router{})
	cfg, err := New(&hcmv3.HttpConnectionManager{
		StatPrefix:       "lr",
		LocalReplyConfig: lr,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exists"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}},
			}}}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	}, Deps{Stats: stats.NewStore(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := &conn{cfg: cfg, drain: ctx, streamCtx: ctx, nc: &networkfilter.Conn{RemoteAddr: netip.MustParseAddrPort("10.0.0.1:1234")}}
	var w recordWriter
	cfg.serveStream(c.streamCtx, c, req, &w, nil)
	return &w
}

func get(path string, h ...message.Header) *message.Request {
	return &message.Request{Method: "POST", Authority: "x", Path: path, Protocol: message.HTTP2, ContentLength: -1, Header: h}
}

// A gRPC request gets a trailers-only reply: 200, grpc-status mapped from
// the HTTP status, grpc-message the body.
func TestGRPCLocalReply(t *testing.T) {
	w := serveOne(t, nil, get("/pkg.Svc/Method", message.Header{Name: "content-type", Value: "application/grpc+proto"}))
	if w.status != 200 || w.header.Value("grpc-status") != "12" || w.header.Value("content-type") != "application/grpc" || w.body.Len() != 0 {
		t.Fatalf("got %d %v %q", w.status, w.header, w.body.String())
	}
	w = serveOne(t, &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{{
		Filter:     &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_GE, Value: &corev3.RuntimeUInt32{DefaultValue: 400}}}}},
		StatusCode: wrapperspb.UInt32(503),
		Body:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "gone 100%\n"}},
	}}}, get("/pkg.Svc/Method", message.Header{Name: "content-type", Value: "application/grpc"}))
	if w.status != 200 || w.header.Value("grpc-status") != "14" || w.header.Value("grpc-message") != "gone 100%25%0A" {
		t.Fatalf("mapped gRPC reply: %d %v", w.status, w.header)
	}
	// Not gRPC: a look-alike content type.
	if w := serveOne(t, nil, get("/", message.Header{Name: "content-type", Value: "application/grpcfoo"})); w.status != 404 {
		t.Fatalf("application/grpcfoo got %d", w.status)
	}
}

func TestLocalReplyMappers(t *testing.T) {
	hdr := func(name string) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{
			Header: &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}}
	}
	jsonFormat, _ := structpb.NewStruct(map[string]any{"code": "%RESPONSE_CODE%", "message": "%LOCAL_REPLY_BODY%", "details": "%RESPONSE_CODE_DETAILS%"})
	lr := &hcmv3.LocalReplyConfig{
		Mappers: []*hcmv3.ResponseMapper{
			{Filter: hdr("x-teapot"), StatusCode: wrapperspb.UInt32(418), Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "short and stout"}}},
			{Filter: hdr("x-json"), BodyFormatOverride: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: jsonFormat}}},
		},
		BodyFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: "[%RESPONSE_CODE%] %LOCAL_REPLY_BODY%"}},
	}
	w := serveOne(t, lr, get("/", message.Header{Name: "x-teapot", Value: "1"}))
	if w.status != 418 || w.body.String() != "[418] short and stout" || w.header.Value("content-type") != "text/plain" {
		t.Fatalf("mapper: %d %q %v", w.status, w.body.String(), w.header)
	}
	w = serveOne(t, lr, get("/", message.Header{Name: "x-json", Value: "1"}))
	if w.status != 404 || w.header.Value("content-type") != "application/json" ||
		strings.TrimSpace(w.body.String()) != `{"code":404,"details":"route_not_found","message":""}` {
		t.Fatalf("json override: %d %q %v", w.status, w.body.String(), w.header)
	}
	w = serveOne(t, lr, get("/"))
	if w.status != 404 || w.body.String() != "[404] " {
		t.Fatalf("no mapper matched, body format applies: %d %q", w.status, w.body.String())
	}
	// A response from the upstream (here a direct response) is not a local reply.
	if w := serveOne(t, lr, get("/exists")); w.status != 200 || w.body.Len() != 0 {
		t.Fatalf("direct response rewritten: %d %q", w.status, w.body.String())
	}
}

func TestLocalReplyConfigErrors(t *testing.T) {
	_, err := compileLocalReply(&hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{{StatusCode: wrapperspb.UInt32(200)}}}, nil)
	if err == nil || err.Error() != ".mappers[0].filter: is required" {
		t.Fatalf("got %v", err)
	}
	_, err = compileLocalReply(&hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{{
		Filter:     &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_NotHealthCheckFilter{NotHealthCheckFilter: &accesslogv3.NotHealthCheckFilter{}}},
		StatusCode: wrapperspb.UInt32(99),
	}}}, nil)
	if err == nil || !strings.Contains(err.Error(), ".mappers[0].status_code: 99 is not in [200, 600)") {
		t.Fatalf("got %v", err)
	}
}
