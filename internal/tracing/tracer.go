// Package tracing is Legate's Envoy-compatible HTTP tracing: the request
// tracing decision carried in x-request-id, B3 and W3C trace-context
// propagation, Envoy's span tags, and batched asynchronous export to Zipkin
// (v2 JSON or proto over HTTP) and OpenTelemetry (OTLP over gRPC or HTTP).
//
// The connection manager calls Tracer.Start once per request after its own
// header processing and Span.Finish when the stream ends. Neither blocks:
// finished spans go to a bounded queue drained by one exporter goroutine,
// and a full queue drops (and counts) spans rather than waiting.
package tracing

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	tracingtypev3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// Provider type URLs' message names.
const (
	TypeZipkin        = "envoy.config.trace.v3.ZipkinConfig"
	TypeOpenTelemetry = "envoy.config.trace.v3.OpenTelemetryConfig"
)

// DecoratorOperationHeader lets an internal caller name the span (request)
// and tells the caller the route's operation (response).
const DecoratorOperationHeader = "x-envoy-decorator-operation"

// Deps are what a Tracer needs from the server.
type Deps struct {
	Clusters *cluster.Manager
	Stats    *stats.Store
	Ring     *Ring // every sampled span is recorded here; may be nil
	// NodeID is the node_id tag; ServiceCluster names the Zipkin local
	// endpoint (Envoy's --service-cluster / node.cluster).
	NodeID, ServiceCluster string
	Logger                 *slog.Logger
	// StatPrefix is the connection manager's stat_prefix; when set, the
	// decision counters http.<stat_prefix>.tracing.* are kept.
	StatPrefix string
	// Outbound is the listener's traffic_direction OUTBOUND: spans are
	// CLIENT spans and the default OpenTelemetry operation is "egress",
	// as in Envoy (INBOUND and unspecified: SERVER, "ingress").
	Outbound bool
}

type providerKind uint8

const (
	providerZipkin providerKind = iota + 1
	providerOTel
)

// Tracer is one connection manager's tracing config, immutable once built.
// Tracers with the same provider config share an exporter.
type Tracer struct {
	kind      providerKind
	sampling  sampling
	decisions *decisionStats
	custom    []customTag
	maxPath   int
	nodeID    string
	service   string // Zipkin: the service cluster; OpenTelemetry: service_name
	ring      *Ring
	outbound  bool // traffic_direction OUTBOUND

	// Zipkin.
	trace128, timestampIDs, shared, w3c bool

	exp       *exporter
	closeOnce sync.Once
}

// customTag is one custom_tags entry compiled: a fixed value (literal,
// environment, metadata without a source) or a request header.
type customTag struct {
	tag, header, value string
	fixed              bool // value is the tag's value; no header lookup
}

// New builds a Tracer from the connection manager's tracing config. A nil
// config, or one without a provider, means no tracing: (nil, nil). Start on
// a nil *Tracer returns nil, so callers need no extra check.
func New(pb *hcmv3.HttpConnectionManager_Tracing, deps Deps) (*Tracer, error) {
	if pb == nil || pb.GetProvider() == nil {
		return nil, nil
	}
	if deps.Stats == nil {
		deps.Stats = stats.NewStore()
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	t := &Tracer{
		outbound: deps.Outbound,
		sampling: newSampling(pb.GetClientSampling(), pb.GetRandomSampling(), pb.GetOverallSampling()),
		maxPath:  256,
		nodeID:   deps.NodeID,
		ring:     deps.Ring,
	}
	if pb.GetMaxPathTagLength() != nil {
		t.maxPath = int(pb.GetMaxPathTagLength().GetValue())
	}
	if deps.StatPrefix != "" {
		t.decisions = newDecisionStats(deps.Stats, deps.StatPrefix)
	}
	for i, ct := range pb.GetCustomTags() {
		c, err := compileCustomTag(ct)
		if err != nil {
			return nil, fmt.Errorf("tracing.custom_tags[%d]: %w", i, err)
		}
		t.custom = append(t.custom, c)
	}

	tc := pb.GetProvider().GetTypedConfig()
	if tc == nil {
		return nil, fmt.Errorf("tracing.provider: typed_config is required")
	}
	msg, err := tc.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("tracing.provider.typed_config: %w", err)
	}
	key, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("tracing.provider.typed_config: %w", err)
	}
	rk := regKey{clusters: deps.Clusters, stats: deps.Stats, typ: string(msg.ProtoReflect().Descriptor().FullName()), cfg: string(key)}
	switch c := msg.(type) {
	case *tracev3.ZipkinConfig:
		t.kind = providerZipkin
		t.service = deps.ServiceCluster
		t.trace128 = c.GetTraceId_128Bit()
		t.timestampIDs = c.GetTimestampTraceIds()
		t.shared = c.GetSharedSpanContext() == nil || c.GetSharedSpanContext().GetValue()
		t.w3c = c.GetTraceContextOption() == tracev3.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION
		t.exp, err = acquire(rk, func() (*exporter, error) { return newZipkinExporter(c, deps) })
		if err != nil {
			return nil, fmt.Errorf("tracing.provider (zipkin): %w", err)
		}
	case *tracev3.OpenTelemetryConfig:
		t.kind = providerOTel
		t.service = c.GetServiceName()
		if t.service == "" {
			t.service = "unknown_service:envoy"
		}
		t.exp, err = acquire(rk, func() (*exporter, error) { return newOTelExporter(c, deps) })
		if err != nil {
			return nil, fmt.Errorf("tracing.provider (opentelemetry): %w", err)
		}
	default:
		return nil, fmt.Errorf("tracing.provider.typed_config: %s is not supported", rk.typ)
	}
	return t, nil
}

func compileCustomTag(ct *tracingtypev3.CustomTag) (customTag, error) {
	c := customTag{tag: ct.GetTag()}
	if c.tag == "" {
		return c, fmt.Errorf("tag: must not be empty")
	}
	switch v := ct.GetType().(type) {
	case *tracingtypev3.CustomTag_Literal_:
		c.fixed, c.value = true, v.Literal.GetValue()
	case *tracingtypev3.CustomTag_Environment_:
		// Read once, at config time, as Envoy does.
		c.fixed = true
		c.value = os.Getenv(v.Environment.GetName())
		if c.value == "" {
			c.value = v.Environment.GetDefaultValue()
		}
	case *tracingtypev3.CustomTag_RequestHeader:
		c.header = strings.ToLower(v.RequestHeader.GetName())
		c.value = v.RequestHeader.GetDefaultValue()
	case *tracingtypev3.CustomTag_Metadata_:
		// Legate has no metadata sources yet: route, cluster and host
		// metadata are not accepted by the loader and no filter writes
		// dynamic metadata, so the lookup always misses and, as in Envoy,
		// the default value (if any) is used.
		switch v.Metadata.GetKind().GetKind().(type) {
		case *metadatav3.MetadataKind_Request_, *metadatav3.MetadataKind_Route_,
			*metadatav3.MetadataKind_Cluster_, *metadatav3.MetadataKind_Host_:
		default:
			return c, fmt.Errorf("metadata.kind: one of request, route, cluster or host is required")
		}
		c.fixed, c.value = true, v.Metadata.GetDefaultValue()
	default:
		return c, fmt.Errorf("type: literal, environment, request_header or metadata is required")
	}
	return c, nil
}

// Close releases the tracer's exporter; the last tracer using an exporter
// flushes what it holds (bounded by the collector timeout) and stops it.
// Safe to call more than once and on nil.
func (t *Tracer) Close() {
	if t == nil {
		return
	}
	t.closeOnce.Do(func() { release(t.exp) })
}

// Span is one request's server span, from Start to Finish. Only sampled
// requests have one.
type Span struct {
	t        *Tracer
	ctx      spanContext
	shared   bool
	name     string
	start    time.Time
	duration time.Duration
	local    netip.Addr
	tags     []Tag
}

// Start applies Envoy's tracing decision to req, joins an incoming trace
// context (Zipkin: B3 single or multi-header, optionally W3C; OpenTelemetry:
// W3C traceparent/tracestate) and writes the outgoing context into
// req.Header, so the upstream sees Legate's span as its parent. Unsampled
// requests still carry the context upstream (sampled=0) but get no Span.
// A malformed incoming context means no tracing at all, as in Envoy.
//
// operation is the route decorator's operation ("" for the default name:
// the request's host for Zipkin, "ingress" for OpenTelemetry). A non-empty
// x-envoy-decorator-operation request header overrides it; the header is
// always removed.
func (t *Tracer) Start(req *message.Request, info *streaminfo.StreamInfo, operation string) *Span {
	if t == nil {
		return nil
	}
	h := &req.Header
	reason := t.sampling.decide(h)
	if t.decisions != nil {
		t.decisions.byReason[reason].Inc()
	}
	traced := reason != NotTraceable
	if op, ok := h.Get(DecoratorOperationHeader); ok {
		if op != "" {
			operation = op
		}
		h.Del(DecoratorOperationHeader)
	}

	var sc spanContext
	shared := false
	switch t.kind {
	case providerZipkin:
		sampled := b3Sampled(*h, traced)
		in, found, err := extractB3(*h, sampled)
		if err != nil {
			return nil
		}
		if !found && t.w3c {
			if w, ok, err := extractW3C(*h); ok && err == nil {
				in, found = w, true
			}
		}
		if found {
			sc.traceHi, sc.traceLo, sc.sampled = in.traceHi, in.traceLo, in.sampled
			if t.shared {
				sc.spanID, sc.parentID, shared = in.spanID, in.parentID, true
			} else {
				sc.spanID, sc.parentID = newID(), in.spanID
			}
		} else {
			switch {
			case t.trace128:
				sc.traceHi, sc.traceLo = newTraceHi(t.timestampIDs), newID()
			case t.timestampIDs:
				sc.traceLo = newTraceHi(true)
			default:
				sc.traceLo = newID()
			}
			sc.spanID, sc.sampled = newID(), sampled
		}
		injectB3(h, &sc)
		if t.w3c {
			injectW3C(h, &sc)
		}
		if operation == "" {
			operation = req.Authority
		}
	case providerOTel:
		in, found, err := extractW3C(*h)
		if err != nil {
			return nil
		}
		if found {
			sc = spanContext{traceHi: in.traceHi, traceLo: in.traceLo, parentID: in.spanID,
				spanID: newID(), sampled: in.sampled, tracestate: in.tracestate}
		} else {
			sc = spanContext{traceHi: newID(), traceLo: newID(), spanID: newID(), sampled: traced}
		}
		injectW3C(h, &sc)
		if operation == "" {
			operation = "ingress"
			if t.outbound {
				operation = "egress"
			}
		}
	}
	if !sc.sampled {
		return nil
	}
	start := info.StartTime
	if start.IsZero() {
		start = time.Now()
	}
	return &Span{t: t, ctx: sc, shared: shared, name: operation, start: start, local: info.DownstreamLocalAddr.Addr()}
}

// Envoy's tag names.
const (
	TagComponent         = "component"
	TagDownstreamCluster = "downstream_cluster"
	TagError             = "error"
	TagGUIDRequestID     = "guid:x-request-id"
	TagGUIDClientTraceID = "guid:x-client-trace-id"
	TagHTTPMethod        = "http.method"
	TagHTTPProtocol      = "http.protocol"
	TagHTTPStatusCode    = "http.status_code"
	TagHTTPURL           = "http.url"
	TagNodeID            = "node_id"
	TagPeerAddress       = "peer.address"
	TagRequestSize       = "request_size"
	TagResponseFlags     = "response_flags"
	TagResponseSize      = "response_size"
	TagUpstreamAddress   = "upstream_address"
	TagUpstreamCluster   = "upstream_cluster"
	TagUserAgent         = "user_agent"
)

// Finish sets Envoy's tags from the request as it went upstream and the
// stream's outcome, records the span in the ring and queues it for export
// without blocking. respHeaders may be nil. Call once, when the stream ends.
func (s *Span) Finish(req *message.Request, respHeaders message.Headers, info *streaminfo.StreamInfo) {
	if s == nil {
		return
	}
	t := s.t
	if info.LastDownstreamTxByte > 0 {
		s.duration = info.LastDownstreamTxByte
	} else {
		s.duration = time.Since(s.start)
	}
	h := req.Header
	tags := make([]Tag, 0, 18+len(t.custom))
	if id, ok := h.Get(hdrRequestID); ok {
		tags = append(tags, Tag{TagGUIDRequestID, id})
	}
	tags = append(tags,
		Tag{TagHTTPURL, t.url(req)},
		Tag{TagHTTPMethod, req.Method},
		Tag{TagDownstreamCluster, valueOr(h, "x-envoy-downstream-service-cluster")},
		Tag{TagUserAgent, valueOr(h, "user-agent")},
		Tag{TagHTTPProtocol, info.Protocol.String()},
	)
	if a := info.DownstreamDirectAddr.Addr(); a.IsValid() {
		tags = append(tags, Tag{TagPeerAddress, a.Unmap().String()})
	}
	if id, ok := h.Get(hdrClientTraceID); ok {
		tags = append(tags, Tag{TagGUIDClientTraceID, id})
	}
	tags = append(tags, Tag{TagNodeID, t.nodeID})
	for _, c := range t.custom {
		v := c.value
		if !c.fixed {
			if hv, ok := h.Get(c.header); ok {
				v = hv
			}
		}
		if v != "" {
			tags = setTag(tags, c.tag, v)
		}
	}
	tags = setTag(tags, TagRequestSize, strconv.FormatUint(info.BytesReceived, 10))
	tags = setTag(tags, TagComponent, "proxy")
	if info.UpstreamCluster != "" {
		tags = setTag(tags, TagUpstreamCluster, info.UpstreamCluster)
	}
	if info.UpstreamHost != "" {
		tags = setTag(tags, TagUpstreamAddress, info.UpstreamHost)
	}
	tags = setTag(tags, TagHTTPStatusCode, strconv.Itoa(info.ResponseCode))
	tags = setTag(tags, TagResponseFlags, info.Flags.String())
	tags = setTag(tags, TagResponseSize, strconv.FormatUint(info.BytesSent, 10))
	if info.ResponseCode == 0 || info.ResponseCode >= 500 && info.ResponseCode < 600 {
		tags = setTag(tags, TagError, "true")
	}
	s.tags = tags

	if t.ring != nil {
		parent := ""
		if s.ctx.parentID != 0 {
			parent = hex64(s.ctx.parentID)
		}
		t.ring.Add(SpanRecord{
			TraceID:  traceIDHex(s.ctx.traceHi, s.ctx.traceLo),
			SpanID:   hex64(s.ctx.spanID),
			ParentID: parent,
			Name:     s.name,
			Service:  t.service,
			Kind:     t.kindName(),
			Start:    s.start,
			Duration: s.duration,
			Tags:     tags,
			Sampled:  true,
		})
	}
	t.exp.enqueue(s)
}

// url builds http.url as Envoy does: x-forwarded-proto "://" host, then the
// original path (before any rewrite) cut to max_path_tag_length.
func (t *Tracer) url(req *message.Request) string {
	path := req.Path
	if p, ok := req.Header.Get("x-envoy-original-path"); ok {
		path = p
	}
	if len(path) > t.maxPath {
		path = path[:t.maxPath]
	}
	proto := req.Header.Value("x-forwarded-proto")
	return proto + "://" + req.Authority + path
}

func valueOr(h message.Headers, name string) string {
	if v, ok := h.Get(name); ok {
		return v
	}
	return "-"
}

// setTag sets key, replacing an earlier value as Envoy's setTag does.
func setTag(tags []Tag, k, v string) []Tag {
	for i := range tags {
		if tags[i].Key == k {
			tags[i].Value = v
			return tags
		}
	}
	return append(tags, Tag{k, v})
}

// TraceID returns the span's trace id in hex (for tests and logs).
func (s *Span) TraceID() string { return traceIDHex(s.ctx.traceHi, s.ctx.traceLo) }

// SpanID returns the span's id in hex.
func (s *Span) SpanID() string { return hex64(s.ctx.spanID) }

// kindName is the span kind as the admin dashboard shows it.
func (t *Tracer) kindName() string {
	if t.outbound {
		return "CLIENT"
	}
	return "SERVER"
}
