// Package cluster builds Envoy clusters (STATIC, STRICT_DNS, LOGICAL_DNS,
// EDS) into runtime values: a Cluster publishes an immutable snapshot of its hosts
// and load-balancer picker through an atomic.Pointer, so picking a host is a
// load and an atomic increment.
package cluster

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/legate-proxy/legate/internal/stats"
)

// Protocol an upstream speaks.
type Protocol uint8

const (
	HTTP1 Protocol = iota
	HTTP2
	// AutoHTTP is auto_config: ALPN chooses HTTP/2 or HTTP/1.1 per
	// connection; without TLS it is HTTP/1.1, as in Envoy.
	AutoHTTP
)

// Stats are a cluster's Envoy-named stats ("cluster.<name>.<stat>").
type Stats struct {
	UpstreamCxTotal          *stats.Counter
	UpstreamCxActive         *stats.Gauge
	UpstreamCxHTTP1Total     *stats.Counter
	UpstreamCxHTTP2Total     *stats.Counter
	UpstreamCxConnectFail    *stats.Counter
	UpstreamCxConnectTimeout *stats.Counter
	UpstreamCxDestroy        *stats.Counter
	UpstreamCxDestroyLocal   *stats.Counter
	UpstreamCxDestroyRemote  *stats.Counter
	UpstreamCxRxBytesTotal   *stats.Counter
	UpstreamCxTxBytesTotal   *stats.Counter
	UpstreamCxConnectMs      *stats.Histogram
	UpstreamCxLengthMs       *stats.Histogram
	UpstreamCxProtocolError  *stats.Counter

	UpstreamRqTotal              *stats.Counter
	UpstreamRqActive             *stats.Gauge
	UpstreamRqPendingTotal       *stats.Counter
	UpstreamRqPendingActive      *stats.Gauge
	UpstreamRqCompleted          *stats.Counter
	UpstreamRqTimeout            *stats.Counter
	UpstreamRqPerTryTimeout      *stats.Counter
	UpstreamRqRetry              *stats.Counter
	UpstreamRqRetrySuccess       *stats.Counter
	UpstreamRqRetryLimitExceeded *stats.Counter
	UpstreamRqRxReset            *stats.Counter
	UpstreamRqTxReset            *stats.Counter
	UpstreamRqTime               *stats.Histogram
	// UpstreamRqClass[1..5] are upstream_rq_1xx..5xx.
	UpstreamRqClass [6]*stats.Counter
	// UpstreamRqCode is upstream_rq_<code> for codes 100..599, created
	// lazily on first use of a code (index code-100).
	UpstreamRqCode [500]atomic.Pointer[stats.Counter]

	MembershipHealthy *stats.Gauge
	MembershipTotal   *stats.Gauge
	MembershipChange  *stats.Counter
	UpdateAttempt     *stats.Counter
	UpdateSuccess     *stats.Counter
	UpdateFailure     *stats.Counter
	UpdateNoRebuild   *stats.Counter
	LbHealthyPanic    *stats.Counter
	UpstreamCxNone    *stats.Counter // "upstream_cx_none_healthy"
	scope             stats.Scope

	connectAttemptsExceeded atomic.Pointer[stats.Counter]
}

// ConnectAttemptsExceeded is upstream_cx_connect_attempts_exceeded
// (tcp_proxy's max_connect_attempts), created on first use.
func (s *Stats) ConnectAttemptsExceeded() *stats.Counter {
	c := s.connectAttemptsExceeded.Load()
	if c == nil {
		c = s.scope.Counter("upstream_cx_connect_attempts_exceeded")
		s.connectAttemptsExceeded.Store(c)
	}
	return c
}

// PoolFactory makes the connection pool of host h of cluster c.
type PoolFactory func(c *Cluster, h *Host) HostPool

// HostPool is what a connection pool looks like to the cluster: the cluster
// creates one per host through Options.NewPool and closes it when the host
// leaves the cluster (the pool then closes its connections once idle).
type HostPool interface {
	io.Closer
}

// Host is one upstream endpoint. A Host keeps its identity across DNS
// re-resolution and config updates while its address stays, so its
// connection pool survives them.
type Host struct {
	Address  string         // "ip:port" ("[v6]:port"), what is dialled
	AddrPort netip.AddrPort // Address, parsed
	Hostname string         // the DNS name it came from, if any (auto_host_rewrite)
	Weight   uint32         // load_balancing_weight, 1 when unset
	// HealthCheck is the endpoint's health_check_config, nil when unset.
	HealthCheck *HealthCheckTarget

	// ActiveRequests is read by LEAST_REQUEST and written by the router.
	ActiveRequests atomic.Int64
	// Per-host counters shown by /clusters.
	CxTotal, RqTotal, RqError, RqSuccess, RqTimeout atomic.Uint64
	CxActive, RqActive                              atomic.Int64
	CxConnectFail                                   atomic.Uint64

	pool HostPool
	// health is the EDS health_status (a corev3.HealthStatus); an update
	// that changes only it keeps the host and its pool.
	health atomic.Int32
	// flags are the HealthFlags set (EDS, active HC, outlier detection).
	flags atomic.Uint32
}

// setEDSHealth records the EDS health_status and its flags; it reports
// whether the flags changed.
func (h *Host) setEDSHealth(s corev3.HealthStatus) bool {
	h.health.Store(int32(s))
	return h.setFlags(FailedEDSHealth|DegradedEDSHealth, edsFlags(s))
}

// Pool returns the host's connection pool.
func (h *Host) Pool() HostPool { return h.pool }

// HealthStatus is the host's EDS health_status (UNKNOWN unless EDS said).
func (h *Host) HealthStatus() corev3.HealthStatus { return corev3.HealthStatus(h.health.Load()) }

// Settings are a cluster's connection settings, fixed at config time.
type Settings struct {
	ConnectTimeout time.Duration // default 5 s
	Protocol       Protocol
	// TLS is nil for plaintext upstreams. ServerName is set from sni.
	TLS *tls.Config
	// IdleTimeout closes unused upstream connections (HttpProtocolOptions
	// common_http_protocol_options.idle_timeout, default 1 h; 0 = never).
	IdleTimeout time.Duration
	// PerConnectionBufferLimit is per_connection_buffer_limit_bytes (1 MiB default).
	PerConnectionBufferLimit uint32
	// HTTP2 settings when Protocol is HTTP2.
	H2MaxConcurrentStreams uint32
	H2InitialStreamWindow  uint32
	H2InitialConnWindow    uint32
	// Bind is upstream_bind_config; nil lets the kernel choose.
	Bind *BindConfig
}

// BindConfig is how upstream sockets are set up before they connect.
type BindConfig struct {
	// LocalAddr is source_address (port 0: any); nil binds no address.
	LocalAddr *net.TCPAddr
	// SocketOptions are set before connect (freebind included).
	SocketOptions []SocketOption
}

// SocketOption is one setsockopt: an integer value, or Buf when set.
type SocketOption struct {
	Level, Name int
	Int         int64
	Buf         []byte
}
