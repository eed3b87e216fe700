package asyncclient_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/httpfilter/filtertest"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/testutil"
	"github.com/legate-proxy/legate/internal/upstream/asyncclient"
)

var _ httpfilter.Upstreams = (*asyncclient.Clients)(nil)

func TestRoundTripAndGRPC(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "auth "+r.URL.Path)
	}))
	t.Cleanup(web.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)

	h2 := testutil.StaticCluster("grpc", ln.Addr())
	opts, _ := anypb.New(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})
	h2.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts}
	store := stats.NewStore()
	cm := filtertest.Clusters(t, store, testutil.StaticCluster("web", web.Listener.Addr()), h2)
	c := asyncclient.New(cm)
	t.Cleanup(c.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.RoundTrip(ctx, "web", &message.Request{Method: "GET", Scheme: "http", Authority: "auth", Path: "/check", Protocol: message.HTTP11})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.Status != 200 || string(body) != "auth /check" {
		t.Fatalf("got %d %q", resp.Status, body)
	}
	if n := store.Counter("cluster.web.upstream_rq_200").Value(); n != 1 {
		t.Fatalf("cluster.web.upstream_rq_200 = %d", n)
	}
	if _, err := c.RoundTrip(ctx, "nope", &message.Request{Method: "GET", Path: "/"}); err == nil {
		t.Fatal("a call to an unknown cluster succeeded")
	}

	cc, err := c.GRPC("grpc", "")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.GRPC("grpc", "grpc"); again != cc {
		t.Fatal("the connection is not shared")
	}
	hr, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check over the async client: %v %v", hr, err)
	}
	if _, err := c.GRPC("web", ""); err == nil {
		t.Fatal("gRPC to an HTTP/1 cluster accepted")
	}
}
