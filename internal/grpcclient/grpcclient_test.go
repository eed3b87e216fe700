package grpcclient

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/internal/testutil"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// mdHealth is a health server that records the metadata of each call.
type mdHealth struct {
	*health.Server
	md chan metadata.MD
}

func (h mdHealth) Check(ctx context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h.md <- md
	return h.Server.Check(ctx, r)
}

func serve(t *testing.T) (net.Addr, chan metadata.MD) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	h := mdHealth{health.NewServer(), make(chan metadata.MD, 4)}
	healthpb.RegisterHealthServer(srv, h)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr(), h.md
}

func manager(t *testing.T, h2 bool, addrs ...net.Addr) *cluster.Manager {
	c := testutil.StaticCluster("collector", addrs...)
	if h2 {
		//lint:ignore SA1019 the deprecated field is the shortest way to say HTTP/2
		c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
	}
	m, err := cluster.NewManager([]*clusterv3.Cluster{c}, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func envoyGrpc(name string) *corev3.GrpcService {
	return &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: name}},
		Timeout:         durationpb.New(3 * time.Second),
		InitialMetadata: []*corev3.HeaderValue{{Key: "X-Tenant", Value: "blue"}},
	}
}

// TestEnvoyGRPC: a call goes to the cluster's host with initial_metadata
// and the service's timeout.
func TestEnvoyGRPC(t *testing.T) {
	addr, mds := serve(t)
	svc, err := New(envoyGrpc("collector"), manager(t, true, addr), "grpc_service")
	if err != nil {
		t.Fatal(err)
	}
	if svc.Name != "envoy_grpc collector" || svc.Timeout != 3*time.Second {
		t.Errorf("service = %q %v", svc.Name, svc.Timeout)
	}
	conn, err := svc.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := svc.CallContext(context.Background())
	defer cancel()
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > 3*time.Second {
		t.Errorf("deadline %v %v", dl, ok)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	md := <-mds
	if got := md.Get("x-tenant"); len(got) != 1 || got[0] != "blue" {
		t.Errorf("x-tenant = %v", got)
	}
	if got := md.Get(":authority"); len(got) != 1 || got[0] != "collector" {
		t.Errorf(":authority = %v", got)
	}
}

// TestErrors: config errors name the field.
func TestErrors(t *testing.T) {
	addr, _ := serve(t)
	h1 := manager(t, false, addr)
	for _, tc := range []struct {
		gs   *corev3.GrpcService
		m    *cluster.Manager
		want string
	}{
		{envoyGrpc("nope"), h1, `f.envoy_grpc.cluster_name: unknown cluster "nope"`},
		{envoyGrpc("collector"), h1, "must speak HTTP/2"},
		{envoyGrpc("collector"), nil, "unknown cluster"},
		{&corev3.GrpcService{}, h1, "f: one of envoy_grpc or google_grpc must be set"},
		{&corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{}}}, h1, "f.google_grpc.target_uri"},
	} {
		_, err := New(tc.gs, tc.m, "f")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v) = %v, want %q", tc.gs, err, tc.want)
		}
	}
}
