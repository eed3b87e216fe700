// Package httpfilter is the contract between the HTTP connection manager and
// HTTP filters. A filter chain is built once per HCM config: each filter
// wraps the next, the router is last and terminal. A filter may answer
// locally (Stream.SendLocalReply, Stream.Reply) or pass the stream on,
// after changing the request (and then, if it changed what routing reads,
// Stream.ClearRouteCache). It sees the response by putting its own
// ResponseWriter in Stream.Response before calling the next filter (see
// ResponseWrapper), and the whole request body with BufferRequestBody.
//
// Per-route configuration (typed_per_filter_config) is decoded when the
// route table is compiled, by the parser the filter registers in
// internal/httpfilter/perroute; a filter reads it per request with
// Stream.PerRouteConfig(fc.FilterID).
//
// See docs/extending.md for how to add a filter.
package httpfilter

import (
	"context"
	"log/slog"

	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/httpfilter/perroute"
	"github.com/legate-proxy/legate/internal/registry"
	"github.com/legate-proxy/legate/internal/routetable"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// Handler serves one stream.
type Handler interface {
	ServeStream(s *Stream)
}

// Callbacks are what the connection manager does for a stream's filters;
// it implements them so that local replies look the same whoever sends
// them (local_reply_config, gRPC, stats), and routing stays its own.
type Callbacks interface {
	SendLocalReply(s *Stream, r LocalReply)
	// ClearRouteCache matches the request again and sets s.Route,
	// s.VirtualHost and s.WeightedCluster.
	ClearRouteCache(s *Stream)
}

// LocalReply is a response the proxy generates, Envoy's sendLocalReply.
type LocalReply struct {
	Status int
	Body   string
	// Details is Envoy's response code details (%RESPONSE_CODE_DETAILS%),
	// e.g. "request_payload_too_large".
	Details string
	// Headers are added to the reply (they must not be pseudo-headers or
	// framing headers).
	Headers message.Headers
	// GrpcStatus, when HasGrpcStatus, is the grpc-status a gRPC request
	// gets; otherwise it is derived from Status as Envoy does.
	GrpcStatus    uint32
	HasGrpcStatus bool
}

// Stream is one request/response exchange as filters see it. The
// connection manager owns and reuses it; filters must not keep it after
// ServeStream returns.
type Stream struct {
	Ctx         context.Context
	Request     *message.Request
	Response    message.ResponseWriter
	Info        *streaminfo.StreamInfo
	Route       *routetable.Route // nil when no route matched
	VirtualHost *routetable.VirtualHost
	// WeightedCluster is the weighted_clusters entry chosen when the route
	// matched (nil for other routes); the router sends the request to its
	// cluster.
	WeightedCluster *routetable.WeightedCluster
	// Upgrade is the lower-cased Upgrade header value when the request is
	// an allowed upgrade (e.g. "websocket"), else "".
	Upgrade string
	// HijackDownstream returns the raw downstream byte stream after a 101
	// has been written; nil when the codec cannot (HTTP/2).
	HijackDownstream func() (message.RawStream, bool)
	// ChainConfig is the per-filter config of the route first matched,
	// which decides which filters run (HttpFilter.disabled,
	// FilterConfig.disabled); as in Envoy, a later re-match does not change
	// the chain.
	ChainConfig perroute.Set
	callbacks   Callbacks
}

// SetCallbacks is called by the connection manager when it sets up a
// stream.
func (s *Stream) SetCallbacks(c Callbacks) { s.callbacks = c }

// SendLocalReply answers the stream from the proxy itself, e.g. a 503 "no
// healthy upstream". details is Envoy's response code details string.
func (s *Stream) SendLocalReply(status int, body, details string) {
	s.callbacks.SendLocalReply(s, LocalReply{Status: status, Body: body, Details: details})
}

// Reply is SendLocalReply with extra headers or an explicit grpc-status.
func (s *Stream) Reply(r LocalReply) { s.callbacks.SendLocalReply(s, r) }

// ClearRouteCache matches the route again, after a filter changed what
// routing reads (headers, path, authority); the router then follows the
// new route.
func (s *Stream) ClearRouteCache() { s.callbacks.ClearRouteCache(s) }

// PerFilter is the effective typed_per_filter_config for the stream's
// route now: the weighted cluster's, the route's or the virtual host's.
func (s *Stream) PerFilter() perroute.Set {
	switch {
	case s.WeightedCluster != nil:
		return s.WeightedCluster.PerFilter
	case s.Route != nil:
		return s.Route.PerFilter
	case s.VirtualHost != nil:
		return s.VirtualHost.PerFilter
	}
	return nil
}

// PerRouteConfig returns the decoded per-route config of the filter id
// (FactoryContext.FilterID), most specific level first; nil when there is
// none. The value is what the filter's perroute.Parser returned.
func (s *Stream) PerRouteConfig(id perroute.ID) any {
	e, _ := s.PerFilter().Lookup(id)
	return e.Config
}

// FactoryContext is what a filter factory may use at config time.
type FactoryContext struct {
	Clusters   *cluster.Manager
	Stats      *stats.Store
	StatPrefix string // "http.<stat_prefix>."
	Logger     *slog.Logger
	// Runtime is the runtime snapshot (filter_enabled, filter_enforced and
	// other runtime fractions; see Fraction). A nil one has no keys.
	Runtime *runtime.Snapshot
	// Upstreams calls clusters outside any stream's route (ext_authz,
	// rate limit services); nil in tests that give none.
	Upstreams Upstreams
	// FilterName is HttpFilter.name, the key of the filter's
	// typed_per_filter_config entries; FilterID is its interned form.
	FilterName string
	FilterID   perroute.ID
}

// Factory builds a filter from its typed config; next is nil for the
// terminal filter.
type Factory func(cfg proto.Message, fc *FactoryContext, next Handler) (Handler, error)

// Registry holds HTTP filter factories by config type.
var Registry = registry.New[Factory]("HTTP filter")

// Terminal lists config types that must come last in a chain.
var Terminal = map[string]bool{}
