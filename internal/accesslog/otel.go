package accesslog

import (
	"context"
	"fmt"
	"time"

	grpcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	otelv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/open_telemetry/v3"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/formatter"
)

// TypeOTel is the OpenTelemetry access logger's config type.
const TypeOTel = "envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig"

// otelExportTimeout bounds one Export when grpc_service sets no timeout.
const otelExportTimeout = 5 * time.Second

// anyFormat is a compiled OTLP AnyValue: string values are format
// strings, lists and maps are walked, other scalars are kept as they are.
type anyFormat struct {
	str   *formatter.Formatter // string_value
	fixed *commonpb.AnyValue   // a non-string scalar
	list  []anyFormat          // array_value
	keys  []string             // kvlist_value keys, with
	vals  []anyFormat          // their values
	isMap bool
}

func compileAny(v *commonpb.AnyValue, field string) (anyFormat, error) {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		f, err := formatter.Compile(x.StringValue)
		if err != nil {
			return anyFormat{}, fmt.Errorf("%s.string_value: %w", field, err)
		}
		return anyFormat{str: f}, nil
	case *commonpb.AnyValue_ArrayValue:
		out := anyFormat{list: make([]anyFormat, 0, len(x.ArrayValue.GetValues()))}
		for i, e := range x.ArrayValue.GetValues() {
			c, err := compileAny(e, fmt.Sprintf("%s.array_value.values[%d]", field, i))
			if err != nil {
				return anyFormat{}, err
			}
			out.list = append(out.list, c)
		}
		return out, nil
	case *commonpb.AnyValue_KvlistValue:
		return compileKVs(x.KvlistValue, field+".kvlist_value")
	default:
		return anyFormat{fixed: v}, nil
	}
}

func compileKVs(l *commonpb.KeyValueList, field string) (anyFormat, error) {
	out := anyFormat{isMap: true}
	for i, kv := range l.GetValues() {
		c, err := compileAny(kv.GetValue(), fmt.Sprintf("%s.values[%d].value", field, i))
		if err != nil {
			return anyFormat{}, err
		}
		out.keys = append(out.keys, kv.GetKey())
		out.vals = append(out.vals, c)
	}
	return out, nil
}

func (a *anyFormat) render(ctx *formatter.Context) *commonpb.AnyValue {
	switch {
	case a.str != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: a.str.Format(ctx)}}
	case a.fixed != nil:
		return a.fixed
	case a.isMap:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: a.renderKVs(ctx)}}}
	default:
		vs := make([]*commonpb.AnyValue, len(a.list))
		for i := range a.list {
			vs[i] = a.list[i].render(ctx)
		}
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
	}
}

func (a *anyFormat) renderKVs(ctx *formatter.Context) []*commonpb.KeyValue {
	kvs := make([]*commonpb.KeyValue, len(a.keys))
	for i := range a.keys {
		kvs[i] = &commonpb.KeyValue{Key: a.keys[i], Value: a.vals[i].render(ctx)}
	}
	return kvs
}

func compileOTel(c *otelv3.OpenTelemetryAccessLogConfig, deps Deps, field string) (entryLogger, error) {
	//lint:ignore SA1019 the deprecated form is still the common one
	common := c.GetCommonConfig()
	switch {
	case common != nil && c.GetGrpcService() != nil:
		return nil, fmt.Errorf("%s: only one of common_config and grpc_service may be set", field)
	case common == nil:
		// The newer form: the same settings at the top level.
		common = &grpcv3.CommonGrpcAccessLogConfig{
			LogName: c.GetLogName(), GrpcService: c.GetGrpcService(),
			BufferFlushInterval: c.GetBufferFlushInterval(), BufferSizeBytes: c.GetBufferSizeBytes(),
		}
		if c.GetGrpcService() == nil {
			return nil, fmt.Errorf("%s.grpc_service: is required (or the deprecated common_config)", field)
		}
	}
	g, err := compileGrpcCommon(common, deps, field+".common_config")
	if err != nil {
		return nil, err
	}
	var body *anyFormat
	if c.GetBody() != nil {
		b, err := compileAny(c.GetBody(), field+".body")
		if err != nil {
			return nil, err
		}
		body = &b
	}
	attrs, err := compileKVs(c.GetAttributes(), field+".attributes")
	if err != nil {
		return nil, err
	}
	res := &resourcepb.Resource{}
	if !c.GetDisableBuiltinLabels() {
		for _, kv := range [][2]string{{"log_name", g.logName}, {"zone_name", ""}, {"cluster_name", deps.ClusterName}, {"node_name", deps.NodeID}} {
			res.Attributes = append(res.Attributes, &commonpb.KeyValue{Key: kv[0], Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: kv[1]}}})
		}
	}
	res.Attributes = append(res.Attributes, c.GetResourceAttributes().GetValues()...)

	entry := func(ctx *formatter.Context) proto.Message {
		r := &logspb.LogRecord{Attributes: attrs.renderKVs(ctx)}
		if ctx.Info != nil && !ctx.Info.StartTime.IsZero() {
			r.TimeUnixNano = uint64(ctx.Info.StartTime.UnixNano())
		}
		if body != nil {
			r.Body = body.render(ctx)
		}
		return r
	}
	key := fmt.Sprintf("%p|%p|otel|%q|%q|%s", deps.Clusters, deps.Stats, deps.NodeID, deps.ClusterName, configKey(c))
	return shared(key, func() *remote {
		r := newRemote(deps, g)
		r.entry = entry
		var conn *grpc.ClientConn
		r.closeFn = func() {
			if conn != nil {
				conn.Close()
			}
		}
		r.send = func(batch []proto.Message) error {
			if conn == nil {
				var err error
				if conn, err = g.svc.Dial(); err != nil {
					return err
				}
			}
			recs := make([]*logspb.LogRecord, len(batch))
			for i, e := range batch {
				recs[i] = e.(*logspb.LogRecord)
			}
			req := &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
				Resource:  res,
				ScopeLogs: []*logspb.ScopeLogs{{Scope: &commonpb.InstrumentationScope{Name: g.logName}, LogRecords: recs}},
			}}}
			ctx, cancel := g.svc.CallContext(context.Background())
			defer cancel()
			if g.svc.Timeout == 0 {
				// A stuck collector must not stall the sender for good.
				ctx, cancel = context.WithTimeout(ctx, otelExportTimeout)
				defer cancel()
			}
			_, err := collogspb.NewLogsServiceClient(conn).Export(ctx, req)
			return err
		}
		return r.start()
	}), nil
}
