package tracing

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	zmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"

	"github.com/legate-proxy/legate/internal/stats"
)

// zipkinStats are Envoy's tracing.zipkin.* report counters.
type zipkinStats struct {
	reportsSent, reportsDropped, reportsFailed, skippedNoCluster *stats.Counter
}

type zipkinSender struct {
	target *httpTarget
	proto  bool
	st     zipkinStats
}

func newZipkinExporter(c *tracev3.ZipkinConfig, deps Deps) (*exporter, error) {
	var proto bool
	switch c.GetCollectorEndpointVersion() {
	case tracev3.ZipkinConfig_HTTP_JSON:
	case tracev3.ZipkinConfig_HTTP_PROTO:
		proto = true
	default:
		return nil, fmt.Errorf("collector_endpoint_version: %s is not supported (HTTP_JSON or HTTP_PROTO)", c.GetCollectorEndpointVersion())
	}
	var (
		target *httpTarget
		err    error
	)
	ctype := "application/json"
	if proto {
		ctype = "application/x-protobuf"
	}
	timeout := defaultSendTimeout
	if svc := c.GetCollectorService(); svc != nil {
		cl, host, path, to, headers, err := httpService(svc, deps.Clusters)
		if err != nil {
			return nil, fmt.Errorf("collector_service.%w", err)
		}
		if to > 0 {
			timeout = to
		}
		if target, err = newHTTPTarget(cl, host, path, ctype, headers); err != nil {
			return nil, fmt.Errorf("collector_service: %w", err)
		}
	} else {
		name := c.GetCollectorCluster()
		if name == "" {
			return nil, fmt.Errorf("collector_cluster: is required (or collector_service)")
		}
		cl := lookupCluster(deps.Clusters, name)
		if cl == nil {
			return nil, fmt.Errorf("collector_cluster: unknown cluster %q", name)
		}
		if c.GetCollectorEndpoint() == "" {
			return nil, fmt.Errorf("collector_endpoint: is required with collector_cluster")
		}
		host := c.GetCollectorHostname()
		if host == "" {
			host = name
		}
		if target, err = newHTTPTarget(cl, host, c.GetCollectorEndpoint(), ctype, nil); err != nil {
			return nil, err
		}
	}
	sc := deps.Stats.Scope("tracing").Scope("zipkin")
	s := &zipkinSender{target: target, proto: proto, st: zipkinStats{
		reportsSent:      sc.Counter("reports_sent"),
		reportsDropped:   sc.Counter("reports_dropped"),
		reportsFailed:    sc.Counter("reports_failed"),
		skippedNoCluster: sc.Counter("reports_skipped_no_cluster"),
	}}
	return newExporter(sc, s, deps.Logger, exporterOptions{timeout: timeout}), nil
}

func (z *zipkinSender) send(ctx context.Context, spans []*Span) {
	if c := z.target.cluster.Load(); c == nil || len(c.Hosts()) == 0 {
		z.st.skippedNoCluster.Inc()
		return
	}
	models := make([]*zmodel.SpanModel, len(spans))
	for i, s := range spans {
		models[i] = zipkinModel(s)
	}
	var (
		body []byte
		err  error
	)
	if z.proto {
		body, err = zipkin_proto3.SpanSerializer{}.Serialize(models)
	} else {
		body, err = json.Marshal(models)
	}
	if err != nil {
		z.st.reportsFailed.Inc()
		return
	}
	status, err := z.target.post(ctx, body)
	switch {
	case err != nil:
		z.st.reportsFailed.Inc()
	case status/100 == 2: // Zipkin answers 202 Accepted
		z.st.reportsSent.Inc()
	default:
		z.st.reportsDropped.Inc()
	}
}

func (z *zipkinSender) close() { z.target.close() }

// zipkinModel converts a finished span to Zipkin's v2 model: a SERVER span
// (CLIENT on an egress listener)
// from the service cluster's endpoint, shared when it joined the caller's
// span id (shared_span_context).
func zipkinModel(s *Span) *zmodel.SpanModel {
	m := &zmodel.SpanModel{
		SpanContext: zmodel.SpanContext{
			TraceID: zmodel.TraceID{High: s.ctx.traceHi, Low: s.ctx.traceLo},
			ID:      zmodel.ID(s.ctx.spanID),
		},
		Name:      s.name,
		Kind:      zmodel.Server,
		Timestamp: s.start,
		Duration:  s.duration,
		Shared:    s.shared,
		Tags:      make(map[string]string, len(s.tags)),
	}
	if s.t.outbound {
		m.Kind = zmodel.Client
	}
	if s.ctx.parentID != 0 {
		p := zmodel.ID(s.ctx.parentID)
		m.ParentID = &p
	}
	ep := &zmodel.Endpoint{ServiceName: s.t.service}
	if s.local.IsValid() {
		a := s.local.Unmap()
		if a.Is4() {
			ep.IPv4 = net.IP(a.AsSlice())
		} else {
			ep.IPv6 = net.IP(a.AsSlice())
		}
	}
	m.LocalEndpoint = ep
	for _, t := range s.tags {
		m.Tags[t.Key] = t.Value
	}
	return m
}
