// Package networkfilter is the contract between listeners and network
// filters, Envoy's L4 filter chain.
//
// A filter chain is a list of network filters (BuildChain compiles one
// from a listener's FilterChain.filters). Every filter but the last is
// non-terminal (NonTerminal): rbac, local_ratelimit, connection_limit,
// sni_cluster, later mongo_proxy and mysql_proxy. It acts when a
// connection starts (OnNewConnection: a gate decides before the terminal
// filter runs, and may close the connection) and, if it asks to, sees the
// bytes both ways (OnData from the downstream, OnWrite to it), where it may
// observe, change, hold back or end the stream — Envoy's onNewConnection,
// onData and onWrite. The last filter is terminal (Terminal): it owns the
// connection (http_connection_manager, tcp_proxy; later redis_proxy).
//
// Non-terminal filters have no goroutine of their own: their data
// callbacks run inside the terminal filter's Read and Write on the
// connection (the chain wraps Conn.Conn), so a connection costs what its
// terminal filter costs. A chain whose filters only gate connections does
// not wrap the connection at all and costs nothing per byte.
//
// # Adding a network filter
//
// A filter lives in internal/filter/network/<envoy_name>/ (the directory and
// package are Envoy's extension name: rbac, local_ratelimit, ...) with
// config.go (decode and validate the typed config into an immutable value),
// the filter itself, stats.go (stats created at config time with Envoy's
// names) and a package doc comment naming the type URL. In init it
// registers a Factory for its config message:
//
//	func init() { networkfilter.Registry.Register(&mypb.MyFilter{}, New) }
//
// The factory returns a Terminal or a NonTerminal. A NonTerminal embeds
// PassThrough for the callbacks it does not need, says which data
// callbacks it uses (Hooks) and returns itself from NewConn unless it keeps
// per-connection state. The server links the filter by importing its
// package (internal/server), and the bootstrap allowlist lists its config
// (internal/bootstrap/allowlist_<feature>.go). docs/extending.md walks
// through a real one.
package networkfilter

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

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
// Conn.Conn is what filters read and write: the transport (raw or TLS), or
// the chain wrapping it when non-terminal filters see the bytes.
type Conn struct {
	net.Conn
	ID         uint64
	TLS        *tls.ConnectionState // nil for plaintext
	LocalAddr  netip.AddrPort
	RemoteAddr netip.AddrPort
	// DirectRemoteAddr is the socket's peer when RemoteAddr was restored
	// from elsewhere (a PROXY protocol header); zero when RemoteAddr is
	// the socket's peer. See DirectRemote.
	DirectRemoteAddr netip.AddrPort
	// RequestedServerName is the SNI the client sent: set from the TLS
	// handshake, or by a listener filter (tls_inspector) for TLS the proxy
	// does not terminate. The chain fills it from TLS when it is empty.
	RequestedServerName string
	// Dynamic is the connection's dynamic metadata and filter state: what
	// network filters leave for later filters, the terminal filter (the
	// TCP proxy's cluster), the HCM's streams (which start from it) and
	// access logs.
	Dynamic streaminfo.Dynamic
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

	flags      streaminfo.ResponseFlags
	closeDelay time.Duration
	end        endState
}

// ErrListenerDrain is the cancel cause of a ServeConn context whose
// listener config was replaced or removed by an LDS update, rather than the
// server shutting down. The connection drains as in Envoy's listener drain:
// HTTP/1 closes after its next response (Connection: close) and HTTP/2
// sends GOAWAY, but an idle HTTP/1 connection is not closed early, since
// its client may be sending a request on it at that moment. The listener
// closes whatever remains when the drain time ends.
var ErrListenerDrain = errors.New("listener drained by a configuration update")

// Terminal is the last filter of a chain: it owns the connection until
// ServeConn returns. ctx is cancelled when the listener drains: the filter
// finishes in-flight work, then returns (see ErrListenerDrain for the
// gentler drain of an updated listener).
type Terminal interface {
	ServeConn(ctx context.Context, c *Conn)
}

// Filter is what a Factory builds from a filter's config: a Terminal or a
// NonTerminal. BuildChain checks which, and where it stands.
type Filter any

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

// DirectRemote is the socket's peer address (Envoy's direct remote
// address), which a PROXY protocol header does not change.
func (c *Conn) DirectRemote() netip.AddrPort {
	if c.DirectRemoteAddr.IsValid() {
		return c.DirectRemoteAddr
	}
	return c.RemoteAddr
}

// AddFlags records response flags for the connection (local_ratelimit's
// URX): in its stream info when the listener logs connections, and for the
// terminal filter's own (Flags).
func (c *Conn) AddFlags(f streaminfo.ResponseFlags) {
	c.flags |= f
	if c.Info != nil {
		c.Info.Flags |= f
	}
}

// Flags returns the flags filters recorded with AddFlags.
func (c *Conn) Flags() streaminfo.ResponseFlags { return c.flags }

// CloseAfter asks the chain to close the connection d from now instead of
// at once, reading nothing meanwhile: a rejected connection's delayed close
// (connection_limit's delay) slows down a client that reconnects in a
// loop. It applies to a filter returning StopIteration from
// OnNewConnection.
func (c *Conn) CloseAfter(d time.Duration) { c.closeDelay = d }

// Buffered reports whether network filters hold bytes of the connection
// that the socket no longer shows (held back, or not yet returned to the
// terminal filter). A connection parked while idle must not be parked
// then. Call it from the goroutine that reads the connection.
func (c *Conn) Buffered() bool {
	s, ok := c.Conn.(*session)
	return ok && s.buffered()
}
