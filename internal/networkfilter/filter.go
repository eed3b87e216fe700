// Package networkfilter is the contract between listeners and network
// filters. In this release every filter chain ends in a terminal filter that
// owns the connection (the HTTP connection manager).
package networkfilter

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/accesslog"
	"github.com/legate-proxy/legate/internal/registry"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/tracing"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/xds"
	"github.com/legate-proxy/legate/internal/xds/rds"
)

// Conn is an accepted downstream connection, after the TLS handshake.
type Conn struct {
	net.Conn
	ID         uint64
	TLS        *tls.ConnectionState // nil for plaintext
	LocalAddr  netip.AddrPort
	RemoteAddr netip.AddrPort
	// DrainOnHealthFail is the listener's drain_type DEFAULT: while the
	// server fails its health checks (POST /healthcheck/fail), connections
	// are drained (closed after their current request).
	DrainOnHealthFail bool
	// Info is the connection's stream info when the listener logs
	// connections (access_log); nil otherwise. A terminal filter that
	// knows more (tcp_proxy: upstream host, flags) fills it in, so the
	// listener's log line shows it too.
	Info *streaminfo.StreamInfo
	// Shutdown, when non-nil, is cancelled when the server shuts down: a
	// connection draining gently for ErrListenerDrain then drains as for
	// a server drain (idle HTTP/1 connections close at once).
	Shutdown context.Context
}

// ErrListenerDrain is the cancel cause of a ServeConn context whose
// listener config was replaced or removed by an LDS update, rather than the
// server shutting down. The connection drains as in Envoy's listener drain:
// HTTP/1 closes after its next response (Connection: close) and HTTP/2
// sends GOAWAY, but an idle HTTP/1 connection is not closed early, since
// its client may be sending a request on it at that moment. The listener
// closes whatever remains when the drain time ends.
var ErrListenerDrain = errors.New("listener drained by a configuration update")

// Filter owns a connection until it returns. ctx is cancelled when the
// listener drains: the filter finishes in-flight work, then returns (see
// ErrListenerDrain for the gentler drain of an updated listener).
type Filter interface {
	ServeConn(ctx context.Context, c *Conn)
}

// FactoryContext is what a filter factory may use at config time.
type FactoryContext struct {
	Clusters *cluster.Manager
	Stats    *stats.Store
	Runtime  *runtime.Snapshot
	Logger   *slog.Logger
	// NodeID and ClusterName identify this proxy (--service-node/-cluster).
	NodeID, ClusterName string
	// HealthFailed is set while the server fails health checks.
	HealthFailed *atomic.Bool
	// AccessLogFiles is the server's shared access-log writer; access_log
	// settings (listener, tcp_proxy, HCM) fail to build without it.
	AccessLogFiles *accesslog.FileManager
	// Spans keeps recent spans for the admin dashboard.
	Spans *tracing.Ring
	// AtShutdown registers work to run once listeners have drained (e.g.
	// flushing span exporters); nil in tests.
	AtShutdown func(func())
	// XDS lets the filter subscribe to what it refers to (RDS, SDS): the
	// listener warms until XDS.Init is done, and XDS.Release cancels the
	// watches when this listener config is discarded.
	XDS xds.Deps
	// Routes shares RDS route configurations between connection managers
	// and lists them for /config_dump; nil when there is no dynamic config.
	Routes *rds.Manager
}

// Factory builds a filter from its typed config.
type Factory func(cfg proto.Message, fc *FactoryContext) (Filter, error)

// Registry holds network filter factories by config type.
var Registry = registry.New[Factory]("network filter")
