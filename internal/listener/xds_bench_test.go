package listener

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/accesslog"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
	"github.com/legate-proxy/legate/internal/xds/rds"
)

// Benchmarks of applying LDS updates (see docs/performance.md, "Applying
// xDS updates"): HTTP connection manager listeners on 127.0.0.1:0, so
// every new listener binds a socket, as a real one does.

func benchAny(tb testing.TB, m proto.Message) *anypb.Any {
	tb.Helper()
	a, err := anypb.New(m)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// benchListeners is n HCM listeners with an inline route configuration;
// body is listener 0's direct response, so that two calls differing in
// it differ in exactly one listener.
func benchListeners(tb testing.TB, n int, body string) []*listenerv3.Listener {
	router := benchAny(tb, &routerv3.Router{})
	out := make([]*listenerv3.Listener, n)
	for i := range out {
		b := "ok"
		if i == 0 {
			b = body
		}
		name := fmt.Sprintf("l%d", i)
		hcm := &hcmv3.HttpConnectionManager{
			StatPrefix:     name,
			RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: routeConfig("local", b)},
			HttpFilters: []*hcmv3.HttpFilter{{
				Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
			}},
		}
		out[i] = &listenerv3.Listener{
			Name: name,
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
			}}},
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
				Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: benchAny(tb, hcm)},
			}}}},
		}
	}
	return out
}

func benchLDSUpdate(version string, ls []*listenerv3.Listener) *xds.Update {
	u := &xds.Update{Version: version, Full: true, Resources: make([]xds.Resource, len(ls))}
	for i, l := range ls {
		u.Resources[i] = xds.Resource{Name: l.GetName(), Version: version, Message: l}
	}
	return u
}

// benchListenerManager is a started Manager and a function that shuts it
// down and waits for its connections (there are none).
func benchListenerManager(tb testing.TB) (*Manager, func()) {
	tb.Helper()
	quiet := slog.New(slog.DiscardHandler)
	store := stats.NewStore()
	sub := &fakeSub{}
	files := accesslog.NewFileManager(store, quiet)
	m := NewManager(ManagerOptions{
		Factory: networkfilter.FactoryContext{
			Stats: store, Logger: quiet, AccessLogFiles: files,
			Routes: rds.NewManager(sub, store, nil, quiet),
		},
		Subscriber: sub,
		DrainTime:  time.Minute,
		Stats:      store,
		Logger:     quiet,
	})
	if err := m.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return m, func() {
		m.StopListening()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Wait(ctx); err != nil {
			tb.Error(err)
		}
		files.Close()
	}
}

// BenchmarkLDSFirstApply: 10 new listeners on a fresh manager: each
// decoded, built, bound and made live.
func BenchmarkLDSFirstApply(b *testing.B) {
	u := benchLDSUpdate("1", benchListeners(b, 10, "v1"))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		m, stop := benchListenerManager(b)
		b.StartTimer()
		if err := m.LDS().Update(u); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n := len(m.Addrs()); n != 10 {
			b.Fatalf("%d listeners active, want 10", n)
		}
		stop()
		b.StartTimer()
	}
}

// BenchmarkLDSOneChanged: the same 10 listeners with one changed: it is
// rebuilt and takes over the old version's socket, which drains; the
// other nine are skipped (proto.Equal).
func BenchmarkLDSOneChanged(b *testing.B) {
	m, stop := benchListenerManager(b)
	defer stop()
	us := [2]*xds.Update{benchLDSUpdate("a", benchListeners(b, 10, "a")), benchLDSUpdate("b", benchListeners(b, 10, "b"))}
	if err := m.LDS().Update(us[0]); err != nil {
		b.Fatal(err)
	}
	addr := m.Addrs()["l0"].String()
	b.ReportAllocs()
	i := 1
	for b.Loop() {
		if err := m.LDS().Update(us[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if got := m.Addrs()["l0"].String(); got != addr {
		b.Fatalf("changed listener moved from %s to %s", addr, got)
	}
}
