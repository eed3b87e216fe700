package accesslog

import (
	"context"
	"net"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/grpc"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/testutil"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

type otlpLogs struct {
	collogspb.UnimplementedLogsServiceServer
	mu   sync.Mutex
	reqs []*collogspb.ExportLogsServiceRequest
}

func (o *otlpLogs) Export(_ context.Context, r *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	o.mu.Lock()
	o.reqs = append(o.reqs, r)
	o.mu.Unlock()
	return &collogspb.ExportLogsServiceResponse{}, nil
}

func (o *otlpLogs) got() []*collogspb.ExportLogsServiceRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*collogspb.ExportLogsServiceRequest(nil), o.reqs...)
}

// TestOTelAccessLog: a record reaches a real OTLP logs service with the
// body and attributes formatted, the built-in resource labels and the
// configured resource attributes.
func TestOTelAccessLog(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	col := &otlpLogs{}
	collogspb.RegisterLogsServiceServer(srv, col)
	go srv.Serve(ln)
	defer srv.Stop()
	c := testutil.StaticCluster("otel", ln.Addr())
	//lint:ignore SA1019 the deprecated field is the shortest way to say HTTP/2
	c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
	cm, err := cluster.NewManager([]*clusterv3.Cluster{c}, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Close()
	st := stats.NewStore()
	ls, err := New(parseLogs(t, `
- typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig
    common_config:
      log_name: otel_log
      buffer_size_bytes: 0
      grpc_service: {envoy_grpc: {cluster_name: otel}}
    body: {string_value: "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE%"}
    attributes:
      values:
      - {key: ua, value: {string_value: "%REQ(USER-AGENT)%"}}
      - {key: nested, value: {kvlist_value: {values: [{key: cluster, value: {string_value: "%UPSTREAM_CLUSTER%"}}]}}}
      - {key: fixed, value: {int_value: 7}}
    resource_attributes:
      values: [{key: region, value: {string_value: eu-1}}]
`), Deps{Stats: st, Files: NewFileManager(st, nil), Clusters: cm, NodeID: "n1", ClusterName: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	ls.Log(httpContext())
	testutil.WaitFor(t, "an export", func() bool { return len(col.got()) == 1 })
	rl := col.got()[0].GetResourceLogs()[0]
	res := map[string]string{}
	for _, kv := range rl.GetResource().GetAttributes() {
		res[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	if res["log_name"] != "otel_log" || res["node_name"] != "n1" || res["cluster_name"] != "c1" || res["region"] != "eu-1" {
		t.Errorf("resource = %v", res)
	}
	rec := rl.GetScopeLogs()[0].GetLogRecords()[0]
	if got := rec.GetBody().GetStringValue(); got != "POST /v1/items?id=7 201" {
		t.Errorf("body = %q", got)
	}
	attrs := rec.GetAttributes()
	if len(attrs) != 3 || attrs[0].GetValue().GetStringValue() != "curl/8.5.0" ||
		attrs[1].GetValue().GetKvlistValue().GetValues()[0].GetValue().GetStringValue() != "backend" || attrs[2].GetValue().GetIntValue() != 7 {
		t.Errorf("attributes = %v", attrs)
	}
	if rec.GetTimeUnixNano() != uint64(testStart.UnixNano()) {
		t.Errorf("time = %d", rec.GetTimeUnixNano())
	}
}
