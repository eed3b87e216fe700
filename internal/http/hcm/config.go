// Package hcm is the HTTP connection manager: it picks the codec for a
// connection, turns each request into a stream, applies Envoy's request and
// response header processing, runs the HTTP filter chain, and writes local
// replies and stats. Config is compiled once into an immutable Config.
package hcm

import (
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/internal/accesslog"
	"github.com/legate-proxy/legate/internal/http/h2"
	"github.com/legate-proxy/legate/internal/http/http1"
	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/routetable"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/tracing"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/xds"
	"github.com/legate-proxy/legate/internal/xds/rds"
)

// Codec selects the downstream protocol.
type Codec uint8

const (
	CodecAuto Codec = iota
	CodecHTTP1
	CodecHTTP2
)

// ServerHeader is server_header_transformation.
type ServerHeader uint8

const (
	ServerHeaderOverwrite ServerHeader = iota
	ServerHeaderAppendIfAbsent
	ServerHeaderPassThrough
)

// Envoy's defaults.
const (
	defaultIdleTimeout       = time.Hour
	defaultStreamIdleTimeout = 5 * time.Minute
	defaultMaxHeadersKB      = 60
	defaultMaxHeaders        = 100
	defaultServerName        = "envoy"
)

// Config is a compiled HttpConnectionManager.
type Config struct {
	StatPrefix string
	Codec      Codec
	// Routes is loaded per request: fixed for an inline route_config,
	// replaced by RDS updates (nil until the first, answered 404 NR).
	Routes                *routetable.TableRef
	Chain                 httpfilter.Handler
	ServerName            string
	ServerHeader          ServerHeader
	UseRemoteAddress      bool
	XffNumTrustedHops     uint32
	SkipXffAppend         bool
	GenerateRequestID     bool
	PreserveExternalReqID bool
	IdleTimeout           time.Duration // connection with no streams; 0 = none
	StreamIdleTimeout     time.Duration // 0 = none
	RequestTimeout        time.Duration // whole request received; 0 = none
	RequestHeadersTimeout time.Duration // 0 = stream idle timeout
	// drain_timeout is accepted but has no setting: HTTP/2 drains with
	// x/net's single graceful GOAWAY and in-flight streams finish (see the
	// allowlist note).
	DelayedCloseTimeout time.Duration
	Limits              http1.Limits
	H2                  H2Settings
	// Upgrades lists upgrade types enabled at HCM level (lower-case).
	Upgrades []UpgradeConfig
	// AccessLogs run once per stream, when it ends; nil when none.
	AccessLogs accesslog.Loggers
	// Tracer is nil when the HCM has no tracing provider.
	Tracer *tracing.Tracer
	Stats  *Stats
	Logger *slog.Logger
	// healthFailed is the server's /healthcheck/fail state.
	healthFailed *atomic.Bool
	// localReply is local_reply_config; nil when unset.
	localReply *localReplyConfig
}

// H2Settings are the downstream HTTP/2 options: http2_protocol_options and
// the overload.premature_reset_* runtime keys, with the codec's stats.
// Serve fills in the timeouts and header limits per connection.
type H2Settings struct {
	Server h2.ServerConfig
}

// UpgradeConfig is one upgrade_configs entry.
type UpgradeConfig struct {
	Type    string // lower-case, e.g. "websocket"
	Enabled bool
}

// Deps are what compiling an HCM needs from the rest of the server.
type Deps struct {
	Clusters     *cluster.Manager
	Stats        *stats.Store
	Runtime      *runtime.Snapshot
	Logger       *slog.Logger
	HealthFailed *atomic.Bool
	// AccessLogFiles writes access_log files; nil refuses file loggers.
	AccessLogFiles *accesslog.FileManager
	// Spans, NodeID and ServiceCluster feed tracing.
	Spans                  *tracing.Ring
	NodeID, ServiceCluster string
	// AtShutdown registers cleanup to run after listeners drain.
	AtShutdown func(func())
	// RDS provides route configurations named by rds; nil (no dynamic
	// config) makes rds a config error.
	RDS *rds.Manager
	// XDS is the listener's warming and release hooks: an rds
	// subscription waits in XDS.Init and is dropped by XDS.Release.
	XDS xds.Deps
}

// New compiles an HttpConnectionManager.
func New(pb *hcmv3.HttpConnectionManager, deps Deps) (*Config, error) {
	c := &Config{
		StatPrefix:            pb.GetStatPrefix(),
		ServerName:            pb.GetServerName(),
		UseRemoteAddress:      pb.GetUseRemoteAddress().GetValue(),
		XffNumTrustedHops:     pb.GetXffNumTrustedHops(),
		SkipXffAppend:         pb.GetSkipXffAppend(),
		GenerateRequestID:     boolOr(pb.GetGenerateRequestId().GetValue(), pb.GetGenerateRequestId() == nil),
		PreserveExternalReqID: pb.GetPreserveExternalRequestId(),
		IdleTimeout:           durationOr(pb.GetCommonHttpProtocolOptions().GetIdleTimeout(), defaultIdleTimeout),
		StreamIdleTimeout:     durationOr(pb.GetStreamIdleTimeout(), defaultStreamIdleTimeout),
		RequestTimeout:        durationOr(pb.GetRequestTimeout(), 0),
		RequestHeadersTimeout: durationOr(pb.GetRequestHeadersTimeout(), 0),
		DelayedCloseTimeout:   durationOr(pb.GetDelayedCloseTimeout(), time.Second),
		Logger:                deps.Logger,
		healthFailed:          deps.HealthFailed,
	}
	if c.healthFailed == nil {
		c.healthFailed = new(atomic.Bool)
	}
	if c.ServerName == "" {
		c.ServerName = defaultServerName
	}
	switch pb.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO:
		c.Codec = CodecAuto
	case hcmv3.HttpConnectionManager_HTTP1:
		c.Codec = CodecHTTP1
	case hcmv3.HttpConnectionManager_HTTP2:
		c.Codec = CodecHTTP2
	default:
		return nil, fmt.Errorf("codec_type: %s is not supported", pb.GetCodecType())
	}
	switch pb.GetServerHeaderTransformation() {
	case hcmv3.HttpConnectionManager_OVERWRITE:
		c.ServerHeader = ServerHeaderOverwrite
	case hcmv3.HttpConnectionManager_APPEND_IF_ABSENT:
		c.ServerHeader = ServerHeaderAppendIfAbsent
	case hcmv3.HttpConnectionManager_PASS_THROUGH:
		c.ServerHeader = ServerHeaderPassThrough
	}

	kb := pb.GetMaxRequestHeadersKb().GetValue()
	if pb.GetMaxRequestHeadersKb() == nil {
		kb = defaultMaxHeadersKB
	}
	c.Limits = http1.Limits{MaxHeaderBytes: int(kb) << 10, MaxHeaders: defaultMaxHeaders}
	if n := pb.GetCommonHttpProtocolOptions().GetMaxHeadersCount(); n != nil {
		c.Limits.MaxHeaders = int(n.GetValue())
	}
	switch pb.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction() {
	case corev3.HttpProtocolOptions_ALLOW:
		c.Limits.Underscores = http1.AllowUnderscores
	case corev3.HttpProtocolOptions_REJECT_REQUEST:
		c.Limits.Underscores = http1.RejectUnderscores
	case corev3.HttpProtocolOptions_DROP_HEADER:
		c.Limits.Underscores = http1.DropUnderscores
	}
	c.H2 = h2Settings(pb.GetHttp2ProtocolOptions(), deps)
	for _, u := range pb.GetUpgradeConfigs() {
		c.Upgrades = append(c.Upgrades, UpgradeConfig{
			Type:    strings.ToLower(u.GetUpgradeType()),
			Enabled: boolOr(u.GetEnabled().GetValue(), u.GetEnabled() == nil),
		})
	}

	c.Stats = newStats(deps.Stats.Scope("http").Scope(c.StatPrefix))

	logs, err := accesslog.New(pb.GetAccessLog(), accesslog.Deps{
		Stats: deps.Stats, Runtime: deps.Runtime, Files: deps.AccessLogFiles, Logger: deps.Logger,
		Clusters: deps.Clusters, NodeID: deps.NodeID, ClusterName: deps.ServiceCluster,
	})
	if err != nil {
		return nil, err
	}
	c.AccessLogs = logs

	c.Tracer, err = tracing.New(pb.GetTracing(), tracing.Deps{
		Clusters: deps.Clusters, Stats: deps.Stats, Ring: deps.Spans, Logger: deps.Logger,
		NodeID: deps.NodeID, ServiceCluster: deps.ServiceCluster, StatPrefix: c.StatPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if c.Tracer != nil && deps.AtShutdown != nil {
		deps.AtShutdown(c.Tracer.Close)
	}

	suppress := suppressEnvoyHeaders(pb.GetHttpFilters())
	switch {
	case pb.GetRouteConfig() != nil && pb.GetRds() != nil:
		return nil, fmt.Errorf("route_config and rds: only one may be set")
	case pb.GetRds() != nil:
		ref, err := deps.RDS.Subscribe(pb.GetRds(), c.StatPrefix, suppress, deps.XDS)
		if err != nil {
			return nil, err
		}
		c.Routes = ref
	case pb.GetRouteConfig() != nil:
		rc := pb.GetRouteConfig()
		// Inline route configs validate clusters unless told otherwise
		// (routetable.New applies validate_clusters when set).
		table, err := routetable.New(rc, routetable.Options{
			Clusters:             clusterSource(deps.Clusters),
			ValidateClusters:     true,
			SuppressEnvoyHeaders: suppress,
		})
		if err != nil {
			return nil, fmt.Errorf("route_config: %w", err)
		}
		c.Routes = routetable.StaticTable(table)
		if deps.RDS != nil {
			deps.XDS.OnRelease(deps.RDS.AddStatic(rc))
		}
	default:
		return nil, fmt.Errorf("route_specifier: one of route_config or rds is required")
	}

	if err := c.buildFilters(pb, deps); err != nil {
		return nil, err
	}
	return c, nil
}

// suppressEnvoyHeaders reads the router filter's suppress_envoy_headers:
// the route table needs it for x-envoy-original-path.
func suppressEnvoyHeaders(filters []*hcmv3.HttpFilter) bool {
	for _, f := range filters {
		var r routerv3.Router
		if f.GetTypedConfig().MessageIs(&r) && f.GetTypedConfig().UnmarshalTo(&r) == nil {
			return r.GetSuppressEnvoyHeaders()
		}
	}
	return false
}

func boolOr(v, unset bool) bool { return v || unset }

func durationOr(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

// clusterSource avoids a typed-nil interface when a test builds an HCM
// without a cluster manager.
func clusterSource(m *cluster.Manager) routetable.ClusterSource {
	if m == nil {
		return nil
	}
	return m
}

// h2Settings resolves http2_protocol_options for the downstream codec.
// Unset limits keep Envoy's defaults (h2.ServerConfig's zero values).
func h2Settings(o *corev3.Http2ProtocolOptions, deps Deps) H2Settings {
	sc := h2.ServerConfig{
		MaxConcurrentStreams:                         o.GetMaxConcurrentStreams().GetValue(),
		InitialStreamWindow:                          o.GetInitialStreamWindowSize().GetValue(),
		InitialConnWindow:                            o.GetInitialConnectionWindowSize().GetValue(),
		MaxOutboundFrames:                            o.GetMaxOutboundFrames().GetValue(),
		MaxOutboundControlFrames:                     o.GetMaxOutboundControlFrames().GetValue(),
		MaxInboundPriorityFramesPerStream:            o.GetMaxInboundPriorityFramesPerStream().GetValue(),
		MaxInboundWindowUpdateFramesPerDataFrameSent: o.GetMaxInboundWindowUpdateFramesPerDataFrameSent().GetValue(),
		//lint:ignore SA1019 deprecated in favour of override_stream_error_on_invalid_http_message, which wins below; still accepted as Envoy does
		StreamErrorOnInvalidMessaging: o.GetStreamErrorOnInvalidHttpMessaging(),
	}
	if v := o.GetMaxConsecutiveInboundFramesWithEmptyPayload(); v != nil {
		sc.MaxConsecutiveEmptyFrames, sc.MaxConsecutiveEmptyFramesSet = v.GetValue(), true
	}
	// The newer field wins over the deprecated one, as in Envoy.
	if v := o.GetOverrideStreamErrorOnInvalidHttpMessage(); v != nil {
		sc.StreamErrorOnInvalidMessaging = v.GetValue()
	}
	if deps.Runtime != nil {
		if s := deps.Runtime.Uint("overload.premature_reset_min_stream_lifetime_seconds", 1); s > 0 {
			sc.PrematureResetMinStreamLifetime = time.Duration(s) * time.Second
		}
		sc.PrematureResetTotalStreamCount = deps.Runtime.Uint("overload.premature_reset_total_stream_count", h2.DefaultPrematureResetTotalStreamCount)
	}
	if deps.Stats != nil {
		// Envoy roots the downstream codec's stats at "http2.".
		sc.Stats = h2.NewServerStats(deps.Stats.Scope("http2"))
	}
	return H2Settings{Server: sc}
}
