// Package httpfilter is the contract between the HTTP connection manager and
// HTTP filters. A filter chain is built once per HCM config: each filter
// wraps the next, the router is last and terminal. A filter may answer
// locally (Stream.SendLocalReply) or pass the stream on.
package httpfilter

import (
	"context"
	"log/slog"

	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/registry"
	"github.com/legate-proxy/legate/internal/routetable"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// Handler serves one stream.
type Handler interface {
	ServeStream(s *Stream)
}

// Replier sends a local reply for a stream; the connection manager
// implements it so local replies look the same whoever sends them.
type Replier interface {
	SendLocalReply(s *Stream, status int, body, details string)
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
	// Upgrade is the lower-cased Upgrade header value when the request is
	// an allowed upgrade (e.g. "websocket"), else "".
	Upgrade string
	// HijackDownstream returns the raw downstream byte stream after a 101
	// has been written; nil when the codec cannot (HTTP/2).
	HijackDownstream func() (message.RawStream, bool)
	// ResponseHeadersHook runs on the proxied response headers before they
	// go downstream (the HCM adds its own headers through it).
	replier Replier
}

// SetReplier is called by the connection manager when it sets up a stream.
func (s *Stream) SetReplier(r Replier) { s.replier = r }

// SendLocalReply answers the stream from the proxy itself, e.g. a 503 "no
// healthy upstream". details is Envoy's response code details string.
func (s *Stream) SendLocalReply(status int, body, details string) {
	s.replier.SendLocalReply(s, status, body, details)
}

// FactoryContext is what a filter factory may use at config time.
type FactoryContext struct {
	Clusters   *cluster.Manager
	Stats      *stats.Store
	StatPrefix string // "http.<stat_prefix>."
	Logger     *slog.Logger
}

// Factory builds a filter from its typed config; next is nil for the
// terminal filter.
type Factory func(cfg proto.Message, fc *FactoryContext, next Handler) (Handler, error)

// Registry holds HTTP filter factories by config type.
var Registry = registry.New[Factory]("HTTP filter")

// Terminal lists config types that must come last in a chain.
var Terminal = map[string]bool{}
