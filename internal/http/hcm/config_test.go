package hcm

import (
	"log/slog"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/internal/stats"
)

// request_headers_timeout defaults to Envoy's edge recommendation; an
// explicit 0 falls back to the stream idle timeout.
func TestRequestHeadersTimeoutDefault(t *testing.T) {
	router, _ := anypb.New(&routerv3.Router{})
	build := func(d *durationpb.Duration) time.Duration {
		cfg, err := New(&hcmv3.HttpConnectionManager{
			StatPrefix:            "d",
			RequestHeadersTimeout: d,
			RouteSpecifier:        &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{}},
			HttpFilters:           []*hcmv3.HttpFilter{{Name: "router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
		}, Deps{Stats: stats.NewStore(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return (&conn{cfg: cfg}).headersTimeout()
	}
	if got := build(nil); got != 10*time.Second {
		t.Errorf("unset: %v, want 10s", got)
	}
	if got := build(durationpb.New(0)); got != defaultStreamIdleTimeout {
		t.Errorf("0: %v, want the stream idle timeout", got)
	}
	if got := build(durationpb.New(3 * time.Second)); got != 3*time.Second {
		t.Errorf("3s: %v", got)
	}
}
