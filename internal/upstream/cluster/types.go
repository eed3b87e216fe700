// Package cluster builds Envoy clusters (STATIC, STRICT_DNS, LOGICAL_DNS)
// into runtime values: a Cluster publishes an immutable snapshot of its hosts
// and load-balancer picker through an atomic.Pointer, so picking a host is a
// load and an atomic increment.
package cluster

import (
	"crypto/tls"
	"io"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/legate-proxy/legate/internal/stats"
)

// Protocol an upstream speaks.
type Protocol uint8

const (
	HTTP1 Protocol = iota
	HTTP2
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
}

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

	// ActiveRequests is read by LEAST_REQUEST and written by the router.
	ActiveRequests atomic.Int64
	// Per-host counters shown by /clusters.
	CxTotal, RqTotal, RqError, RqSuccess, RqTimeout atomic.Uint64
	CxActive, RqActive                              atomic.Int64
	CxConnectFail                                   atomic.Uint64

	pool HostPool
}

// Pool returns the host's connection pool.
func (h *Host) Pool() HostPool { return h.pool }

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
}
