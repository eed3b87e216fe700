package hcm

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
)

// discardWriter is a downstream that takes a response and drops it.
type discardWriter struct{ written bool }

func (w *discardWriter) WriteHeader(int, message.Headers, int64) error { w.written = true; return nil }
func (w *discardWriter) Write(p []byte) (int, error)                   { return len(p), nil }
func (w *discardWriter) Flush() error                                  { return nil }
func (w *discardWriter) WriteTrailers(message.Headers) error           { return nil }
func (w *discardWriter) HeaderWritten() bool                           { return w.written }

// BenchmarkServeStream is one request through the connection manager's
// stream path (header processing, route match, filter chain, response
// headers) to a direct_response route, without a codec.
func BenchmarkServeStream(b *testing.B) {
	router, _ := anypb.New(&routerv3.Router{})
	cfg, err := New(&hcmv3.HttpConnectionManager{
		StatPrefix: "bench",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			VirtualHosts: []*routev3.VirtualHost{{
				Name: "all", Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
						Status: 200,
						Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "ok"}},
					}},
				}},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	}, Deps{Stats: stats.NewStore(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c := &conn{
		cfg: cfg, drain: ctx, streamCtx: ctx,
		nc: &networkfilter.Conn{RemoteAddr: netip.MustParseAddrPort("10.0.0.1:1234"), LocalAddr: netip.MustParseAddrPort("10.0.0.2:80")},
	}
	hdr := message.Headers{{Name: "user-agent", Value: "bench"}, {Name: "x-request-id", Value: "a2b4c6d8-0000-4000-8000-000000000000"}}
	req := &message.Request{Method: "GET", Authority: "example.com", Path: "/", Protocol: message.HTTP11, ContentLength: -1}
	var w discardWriter
	b.ReportAllocs()
	for b.Loop() {
		req.Header = append(req.Header[:0], hdr...)
		req.Scheme = ""
		w.written = false
		cfg.serveStream(c.streamCtx, c, req, &w, nil)
	}
}
