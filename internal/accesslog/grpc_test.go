package accesslog

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/testutil"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// alsServer records every StreamAccessLogs message it receives.
type alsServer struct {
	alsv3.UnimplementedAccessLogServiceServer
	mu      sync.Mutex
	msgs    []*alsv3.StreamAccessLogsMessage
	md      metadata.MD
	streams int
}

func (s *alsServer) StreamAccessLogs(st alsv3.AccessLogService_StreamAccessLogsServer) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	s.mu.Lock()
	s.md = md
	s.streams++
	s.mu.Unlock()
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return st.SendAndClose(&alsv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
	}
}

func (s *alsServer) messages() []*alsv3.StreamAccessLogsMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*alsv3.StreamAccessLogsMessage(nil), s.msgs...)
}

func startALS(t *testing.T) (*alsServer, *cluster.Manager) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	als := &alsServer{}
	alsv3.RegisterAccessLogServiceServer(srv, als)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	c := testutil.StaticCluster("als", ln.Addr())
	//lint:ignore SA1019 the deprecated field is the shortest way to say HTTP/2
	c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
	m, err := cluster.NewManager([]*clusterv3.Cluster{c}, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return als, m
}

// TestHTTPGrpcAccessLog: entries reach a real AccessLogService with the
// identifier on the stream's first message, the request and response
// properties and the additional headers.
func TestHTTPGrpcAccessLog(t *testing.T) {
	als, cm := startALS(t)
	st := stats.NewStore()
	ls, err := New(parseLogs(t, `
- name: als
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig
    common_config:
      log_name: edge
      transport_api_version: V3
      buffer_flush_interval: 0.05s
      grpc_service:
        envoy_grpc: {cluster_name: als}
        initial_metadata: [{key: x-tenant, value: blue}]
    additional_request_headers_to_log: [X-Quote, x-missing]
    additional_response_headers_to_log: [content-type]
    additional_response_trailers_to_log: [grpc-status]
`), Deps{Stats: st, Files: NewFileManager(st, nil), Clusters: cm, NodeID: "node-1", ClusterName: "edge-cluster"})
	if err != nil {
		t.Fatal(err)
	}
	ls.Log(httpContext())
	ls.Log(httpContext())
	var entries int
	testutil.WaitFor(t, "two entries at the service", func() bool {
		entries = 0
		for _, m := range als.messages() {
			entries += len(m.GetHttpLogs().GetLogEntry())
		}
		return entries == 2
	})
	msgs := als.messages()
	id := msgs[0].GetIdentifier()
	if id.GetLogName() != "edge" || id.GetNode().GetId() != "node-1" || id.GetNode().GetCluster() != "edge-cluster" {
		t.Errorf("identifier = %v", id)
	}
	for _, m := range msgs[1:] {
		if m.GetIdentifier() != nil {
			t.Errorf("identifier repeated: %v", m)
		}
	}
	e := msgs[0].GetHttpLogs().GetLogEntry()[0]
	req, resp, c := e.GetRequest(), e.GetResponse(), e.GetCommonProperties()
	if req.GetRequestMethod() != corev3.RequestMethod_POST || req.GetAuthority() != "api.example.com" || req.GetPath() != "/v1/items?id=7" ||
		req.GetRequestId() != "0000002a-9c4f-4e0b-a4f2-1d8b5f0c7e11" || req.GetUserAgent() != "curl/8.5.0" || req.GetOriginalPath() != "/orig/items?id=7" {
		t.Errorf("request = %v", req)
	}
	if len(req.GetRequestHeaders()) != 1 || !strings.HasPrefix(req.GetRequestHeaders()["x-quote"], "say") {
		t.Errorf("request headers = %v", req.GetRequestHeaders())
	}
	if resp.GetResponseCode().GetValue() != 201 || resp.GetResponseHeaders()["content-type"] != "application/json" ||
		resp.GetResponseTrailers()["grpc-status"] != "0" || resp.GetResponseCodeDetails() != "via_upstream" || resp.GetResponseBodyBytes() != 1234 {
		t.Errorf("response = %v", resp)
	}
	if c.GetUpstreamCluster() != "backend" || c.GetRouteName() != "items" || c.GetTimeToLastDownstreamTxByte().AsDuration() != 21*time.Millisecond ||
		c.GetUpstreamRemoteAddress().GetSocketAddress().GetPortValue() != 8080 || c.GetTlsProperties().GetTlsSniHostname() != "api.example.com" ||
		c.GetDownstreamDirectRemoteAddress().GetSocketAddress().GetAddress() != "127.0.0.1" {
		t.Errorf("common = %v", c)
	}
	als.mu.Lock()
	if got := als.md.Get("x-tenant"); len(got) != 1 || got[0] != "blue" {
		t.Errorf("initial_metadata at the service = %v", als.md)
	}
	als.mu.Unlock()
	if v := st.Scope("access_logs").Scope("grpc_access_log").Counter("logs_written").Value(); v != 2 {
		t.Errorf("logs_written = %d", v)
	}
}

// TestTCPGrpcAccessLog: a connection's entry, batched by size (a zero
// buffer sends each entry at once).
func TestTCPGrpcAccessLog(t *testing.T) {
	als, cm := startALS(t)
	st := stats.NewStore()
	ls, err := New(parseLogs(t, `
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig
    common_config:
      log_name: tcp
      buffer_size_bytes: 0
      buffer_flush_interval: 60s
      grpc_service: {envoy_grpc: {cluster_name: als}}
`), Deps{Stats: st, Files: NewFileManager(st, nil), Clusters: cm})
	if err != nil {
		t.Fatal(err)
	}
	ls.Log(tcpContext())
	testutil.WaitFor(t, "the entry at the service", func() bool { return len(als.messages()) == 1 })
	e := als.messages()[0].GetTcpLogs().GetLogEntry()
	if len(e) != 1 || e[0].GetCommonProperties().GetUpstreamCluster() != "db" || e[0].GetConnectionProperties() == nil {
		t.Errorf("entries = %v", e)
	}
}

// TestGrpcAccessLogErrors: config errors name the path.
func TestGrpcAccessLogErrors(t *testing.T) {
	_, cm := startALS(t)
	for _, tc := range []struct{ cfg, want string }{
		{`common_config: {log_name: x}`, "access_log[0].typed_config.common_config.grpc_service: is required"},
		{`common_config: {log_name: x, grpc_service: {envoy_grpc: {cluster_name: nope}}}`, `access_log[0].typed_config.common_config.grpc_service.envoy_grpc.cluster_name: unknown cluster "nope"`},
		{`common_config: {log_name: x, transport_api_version: V2, grpc_service: {envoy_grpc: {cluster_name: als}}}`, "transport_api_version"},
		{`additional_request_headers_to_log: [a]`, "access_log[0].typed_config.common_config: is required"},
	} {
		_, err := New(parseLogs(t, `
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig
    `+tc.cfg), Deps{Files: NewFileManager(nil, nil), Clusters: cm})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
