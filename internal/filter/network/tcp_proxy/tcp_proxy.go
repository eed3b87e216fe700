// Package tcp_proxy is Envoy's TCP proxy network filter
// (envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy): each downstream
// connection is paired with one upstream connection to a host of the
// configured cluster (or of one of the weighted clusters) and bytes are
// copied both ways until both sides are done.
//
// Each direction runs on its own goroutine with one pooled buffer, so a
// slow reader on one side stops reading from the other side (TCP
// back-pressure) instead of buffering: memory per connection is two
// buffers, whatever the traffic.
package tcp_proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/upstream/dialer"
)

func init() {
	networkfilter.Registry.Register(&tcpv3.TcpProxy{}, New)
}

const (
	// DefaultIdleTimeout is Envoy's idle_timeout when the field is unset.
	DefaultIdleTimeout = time.Hour
	// bufSize is the copy buffer per direction.
	bufSize = 32 << 10
)

// Stats are the filter's own stats, under "tcp.<stat_prefix>.".
type Stats struct {
	DownstreamCxTotal                        *stats.Counter
	DownstreamCxNoRoute                      *stats.Counter
	DownstreamCxTxBytesTotal                 *stats.Counter
	DownstreamCxRxBytesTotal                 *stats.Counter
	DownstreamCxTxBytesBuffered              *stats.Gauge
	DownstreamCxRxBytesBuffered              *stats.Gauge
	DownstreamFlowControlPausedReadingTotal  *stats.Counter
	DownstreamFlowControlResumedReadingTotal *stats.Counter
	IdleTimeout                              *stats.Counter
	MaxDownstreamConnectionDuration          *stats.Counter
	UpstreamFlushTotal                       *stats.Counter
	UpstreamFlushActive                      *stats.Gauge
}

func newStats(sc stats.Scope) *Stats {
	g := func(name string) *stats.Gauge { return sc.Gauge(name, stats.Accumulate) }
	return &Stats{
		DownstreamCxTotal:        sc.Counter("downstream_cx_total"),
		DownstreamCxNoRoute:      sc.Counter("downstream_cx_no_route"),
		DownstreamCxTxBytesTotal: sc.Counter("downstream_cx_tx_bytes_total"),
		DownstreamCxRxBytesTotal: sc.Counter("downstream_cx_rx_bytes_total"),
		// Legate never queues bytes (a direction stops reading while its
		// write blocks), so the buffered gauges and the flow-control and
		// flush counters exist for Envoy's dashboards but stay 0.
		DownstreamCxTxBytesBuffered:              g("downstream_cx_tx_bytes_buffered"),
		DownstreamCxRxBytesBuffered:              g("downstream_cx_rx_bytes_buffered"),
		DownstreamFlowControlPausedReadingTotal:  sc.Counter("downstream_flow_control_paused_reading_total"),
		DownstreamFlowControlResumedReadingTotal: sc.Counter("downstream_flow_control_resumed_reading_total"),
		IdleTimeout:                              sc.Counter("idle_timeout"),
		MaxDownstreamConnectionDuration:          sc.Counter("max_downstream_connection_duration"),
		UpstreamFlushTotal:                       sc.Counter("upstream_flush_total"),
		UpstreamFlushActive:                      g("upstream_flush_active"),
	}
}

// target is one cluster the proxy may send a connection to.
type target struct {
	name string
	// ref holds the cluster while one of that name is active. It is
	// loaded per connection: a cluster CDS adds, changes or removes
	// applies to the next connection. With none, Envoy refuses the
	// connection with downstream_cx_no_route.
	ref *cluster.Ref
	// cumWeight is the running total of weights up to and including
	// this target (weighted_clusters).
	cumWeight uint64
}

// Proxy is a compiled TcpProxy config; it is immutable and serves any
// number of connections concurrently.
type Proxy struct {
	statPrefix  string
	targets     []target
	totalWeight uint64
	idleTimeout time.Duration // 0: none
	maxAttempts int
	stats       *Stats
	logger      *slog.Logger
	log         func(si *streaminfo.StreamInfo) // access logs; nil when none
	// clusters resolves a cluster named by the connection's filter state
	// (PerConnectionClusterKey); nil in tests without a manager.
	clusters *cluster.Manager
}

// PerConnectionClusterKey is the filter state key of the cluster a
// connection goes to instead of the configured one, as in Envoy: set by
// sni_cluster (the SNI) or any earlier filter. Its plain form is the
// cluster's name.
const PerConnectionClusterKey = "envoy.tcp_proxy.cluster"

// New is the network filter factory.
func New(cfg proto.Message, fc *networkfilter.FactoryContext) (networkfilter.Filter, error) {
	return Build(cfg.(*tcpv3.TcpProxy), fc)
}

// Build compiles a TcpProxy config.
func Build(pb *tcpv3.TcpProxy, fc *networkfilter.FactoryContext) (*Proxy, error) {
	if pb.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: must not be empty")
	}
	p := &Proxy{statPrefix: pb.GetStatPrefix(), idleTimeout: DefaultIdleTimeout, maxAttempts: 1, logger: fc.Logger, clusters: fc.Clusters}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	st := fc.Stats
	if st == nil {
		st = stats.NewStore()
	}
	resolve := func(name string) target {
		t := target{name: name, ref: cluster.NewRef(name)}
		if fc.Clusters != nil {
			t.ref = fc.Clusters.Ref(name)
		}
		if fc.Clusters == nil || !fc.Clusters.Has(name) {
			p.logger.Warn("tcp_proxy: unknown cluster; its connections are refused until it exists", "stat_prefix", p.statPrefix, "cluster", name)
		}
		return t
	}
	switch spec := pb.GetClusterSpecifier().(type) {
	case *tcpv3.TcpProxy_Cluster:
		if spec.Cluster == "" {
			return nil, errors.New("cluster: must not be empty")
		}
		t := resolve(spec.Cluster)
		t.cumWeight = 1
		p.targets, p.totalWeight = []target{t}, 1
	case *tcpv3.TcpProxy_WeightedClusters:
		cws := spec.WeightedClusters.GetClusters()
		if len(cws) == 0 {
			return nil, errors.New("weighted_clusters.clusters: at least one cluster is required")
		}
		for i, cw := range cws {
			if cw.GetName() == "" {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d].name: must not be empty", i)
			}
			if cw.GetWeight() == 0 {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d].weight: must be at least 1", i)
			}
			t := resolve(cw.GetName())
			p.totalWeight += uint64(cw.GetWeight())
			t.cumWeight = p.totalWeight
			p.targets = append(p.targets, t)
		}
	default:
		return nil, errors.New("one of cluster or weighted_clusters is required")
	}
	if d := pb.GetIdleTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, fmt.Errorf("idle_timeout: invalid duration %v", d)
		}
		p.idleTimeout = d.AsDuration()
	}
	if m := pb.GetMaxConnectAttempts(); m != nil {
		if m.GetValue() < 1 {
			return nil, errors.New("max_connect_attempts: must be at least 1")
		}
		p.maxAttempts = int(m.GetValue())
	}
	p.stats = newStats(st.Scope("tcp").Scope(p.statPrefix))
	if err := p.buildAccessLogs(pb, fc); err != nil {
		return nil, err
	}
	return p, nil
}

// Stats returns the filter's stats.
func (p *Proxy) Stats() *Stats { return p.stats }

// pick chooses a target by weight; with one target there is no choice.
func (p *Proxy) pick() *target {
	if len(p.targets) == 1 {
		return &p.targets[0]
	}
	r := rand.Uint64N(p.totalWeight)
	for i := range p.targets {
		if r < p.targets[i].cumWeight {
			return &p.targets[i]
		}
	}
	return &p.targets[len(p.targets)-1]
}

var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

// session states, for the race between the idle timer and the end of
// the connection.
const (
	running int32 = iota
	timedOut
	finished
)

// session is one proxied connection.
type session struct {
	p     *Proxy
	down  *networkfilter.Conn
	up    net.Conn
	raw   *dialer.Conn // the TCP connection under up; settles its stats on close
	host  *cluster.Host
	c     *cluster.Cluster
	si    *streaminfo.StreamInfo
	start time.Time
	// last is the time of the latest read on either side, as an offset
	// from start (monotonic), for the idle timer.
	last  atomic.Int64
	state atomic.Int32
	timer *time.Timer
	// aborted is set once the session closes both sides itself;
	// upRemote when the upstream ended its side first (destroy_remote).
	aborted, upRemote atomic.Bool
	tried             []*cluster.Host // hosts that failed to connect, for retries
	own               streaminfo.StreamInfo
}

// ServeConn proxies one downstream connection and closes it.
func (p *Proxy) ServeConn(_ context.Context, dc *networkfilter.Conn) {
	// The drain context is deliberately ignored: as in Envoy, a draining
	// listener does not cut TCP proxy connections; the drain time bounds
	// them.
	s := p.newSession(dc)
	p.stats.DownstreamCxTotal.Inc()
	defer s.finish()

	c := p.route(dc)
	if c == nil {
		p.stats.DownstreamCxNoRoute.Inc()
		s.si.Flags |= streaminfo.NoClusterFound
		return
	}
	s.c = c
	s.si.UpstreamCluster = c.Name
	if !s.connect(c) {
		return
	}
	s.pump()
}

// route is the connection's cluster: the one its filter state names, else
// one of the configured ones. Nil when that cluster does not exist.
func (p *Proxy) route(dc *networkfilter.Conn) *cluster.Cluster {
	obj := dc.Dynamic.FilterState(PerConnectionClusterKey)
	if obj == nil {
		return p.pick().ref.Load()
	}
	name, ok := obj.PlainString()
	if !ok || p.clusters == nil {
		return nil
	}
	c := p.clusters.Get(name)
	if c == nil {
		p.logger.Debug("tcp_proxy: the cluster the connection's filter state names does not exist",
			"stat_prefix", p.statPrefix, "cluster", name)
	}
	return c
}

// newSession starts a session's stream info: the listener's when it logs
// connections, else the session's own.
func (p *Proxy) newSession(dc *networkfilter.Conn) *session {
	s := &session{p: p, down: dc, start: time.Now()}
	s.si = dc.Info
	if s.si == nil {
		s.si = &s.own
		s.si.StartTime = s.start
		s.si.ConnectionID = dc.ID
		s.si.DownstreamRemoteAddr = dc.RemoteAddr
		s.si.DownstreamDirectAddr = dc.DirectRemote()
		s.si.DownstreamLocalAddr = dc.LocalAddr
		s.si.RequestedServerName = dc.RequestedServerName
		s.si.Flags = dc.Flags()
		s.si.Dynamic = &dc.Dynamic
	}
	return s
}

// LogRejected writes the access log entry of a connection an earlier
// filter refused (rbac, local_ratelimit: flag URX), as Envoy's TCP proxy
// does; its stats do not count it.
func (p *Proxy) LogRejected(dc *networkfilter.Conn) {
	if p.log != nil {
		p.newSession(dc).finish()
	}
}

// finish closes the downstream, settles the stream info and logs.
func (s *session) finish() {
	s.down.Close()
	s.si.LastDownstreamTxByte = time.Since(s.start)
	if s.p.log != nil {
		s.p.log(s.si)
	}
}

// connect opens the upstream connection, trying up to max_connect_attempts
// hosts. It reports whether a connection was made.
func (s *session) connect(c *cluster.Cluster) bool {
	var pc *cluster.PickContext
	for attempt := 1; attempt <= s.p.maxAttempts; attempt++ {
		h := c.Pick(pc)
		if h == nil {
			c.Stats.UpstreamCxNone.Inc()
			s.si.Flags |= streaminfo.NoHealthyUpstream
			return false
		}
		s.si.UpstreamHost = h.Address
		s.si.Attempts = uint32(attempt)
		conn, raw, reason, err := dial(c, h)
		if err == nil {
			c.ReportOutcome(cluster.Outcome{Host: h, Kind: cluster.OutcomeConnected})
		} else {
			c.ReportOutcome(cluster.Outcome{Host: h, Kind: cluster.OutcomeConnectFailed})
		}
		if err == nil {
			s.up, s.raw, s.host = conn, raw, h
			s.si.UpstreamTransportFailureReason = ""
			if la := conn.LocalAddr(); la != nil {
				s.si.UpstreamLocalAddr = la.String()
			}
			return true
		}
		s.p.logger.Debug("tcp_proxy: upstream connect failed", "stat_prefix", s.p.statPrefix,
			"cluster", c.Name, "host", h.Address, "attempt", attempt, "err", err)
		s.si.Flags |= streaminfo.UpstreamConnectionFailure
		s.si.UpstreamTransportFailureReason = reason
		if pc == nil {
			// Further attempts prefer hosts not tried yet; only a retry
			// pays for the closure.
			pc = &cluster.PickContext{Exclude: s.triedHost, MaxAttempts: 2 * len(c.Hosts())}
		}
		s.tried = append(s.tried, h)
	}
	s.si.Flags |= streaminfo.UpstreamRetryLimitExceeded
	c.Stats.ConnectAttemptsExceeded().Inc()
	return false
}

func (s *session) triedHost(h *cluster.Host) bool {
	for _, t := range s.tried {
		if t == h {
			return true
		}
	}
	return false
}

// dial connects to h through the upstream dialer (connect_timeout, TLS,
// bind config, the cluster's and host's connection stats). On failure it
// returns Envoy's transport failure reason.
func dial(c *cluster.Cluster, h *cluster.Host) (net.Conn, *dialer.Conn, string, error) {
	conn, raw, err := dialer.Dial(context.Background(), dialer.ForCluster(c, h, dialer.Raw))
	if err != nil {
		var de *dialer.Error
		handshake := errors.As(err, &de) && de.Handshake
		return nil, nil, failureReason(err, handshake), err
	}
	return conn, raw, "", nil
}

// failureReason renders a connect error as Envoy's transport failure
// reason (%UPSTREAM_TRANSPORT_FAILURE_REASON%); handshake says the TCP
// connection was up and TLS failed.
func failureReason(err error, handshake bool) string {
	if isTimeout(err) {
		return "connection timeout"
	}
	if handshake {
		return "TLS_error: " + err.Error()
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		if msg != "" && msg[0] >= 'a' && msg[0] <= 'z' {
			msg = string(msg[0]-'a'+'A') + msg[1:]
		}
		return "delayed connect error: " + msg
	}
	return err.Error()
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// pump copies both ways until both directions end, then closes the
// upstream and settles the stats.
func (s *session) pump() {
	p := s.p
	if p.idleTimeout > 0 {
		// Created far in the future and then reset, so that s.timer is
		// set before checkIdle can run and read it.
		s.timer = time.AfterFunc(1<<62, s.checkIdle)
		s.timer.Reset(p.idleTimeout)
	}
	sent := make(chan uint64, 1)
	go func() { sent <- s.copy(s.down.Conn, s.up, false) }()
	received := s.copy(s.up, s.down.Conn, true)
	s.si.BytesReceived, s.si.BytesSent = received, <-sent
	if s.timer != nil {
		s.timer.Stop()
	}
	s.state.CompareAndSwap(running, finished)

	// Closing settles the upstream connection's stats (the dialer's Conn).
	s.up.Close()
}

// abort closes both sides, which unblocks both directions.
func (s *session) abort() {
	s.aborted.Store(true)
	s.down.Close()
	s.up.Close()
}

// copy moves bytes from src to dst until src ends and returns how many it
// read. toUpstream tells the direction. A clean EOF half-closes dst so the
// peer sees the end of the stream too and the other direction goes on;
// any error tears the whole connection down.
func (s *session) copy(dst, src net.Conn, toUpstream bool) uint64 {
	p := s.p
	buf := bufPool.Get().(*[bufSize]byte)
	defer bufPool.Put(buf)
	var total uint64
	// The upstream side's bytes are counted by the dialer's Conn.
	var rx, tx *stats.Counter
	if toUpstream {
		rx = p.stats.DownstreamCxRxBytesTotal
	} else {
		tx = p.stats.DownstreamCxTxBytesTotal
	}
	for first := true; ; {
		n, err := src.Read(buf[:])
		if n > 0 {
			if p.idleTimeout > 0 {
				s.last.Store(int64(time.Since(s.start)))
			}
			if first {
				first = false
				// Only this goroutine writes its timing field.
				if toUpstream {
					s.si.FirstUpstreamTxByte = time.Since(s.start)
				} else {
					s.si.FirstUpstreamRxByte = time.Since(s.start)
				}
			}
			if rx != nil {
				rx.Add(uint64(n))
			}
			w, werr := dst.Write(buf[:n])
			if tx != nil {
				tx.Add(uint64(w))
			}
			total += uint64(n)
			if werr != nil {
				s.abort()
				return total
			}
		}
		if err != nil {
			if !toUpstream && !s.aborted.Load() {
				// The upstream ended (FIN or reset) before we closed it.
				s.upRemote.Store(true)
				s.raw.MarkRemote()
			}
			if err != io.EOF {
				s.abort()
				return total
			}
			if toUpstream {
				s.si.LastDownstreamRxByte = time.Since(s.start)
			}
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			return total
		}
	}
}

// checkIdle runs when the idle timer fires: it closes the connection if
// nothing was read for idle_timeout, or re-arms for the remainder.
func (s *session) checkIdle() {
	if s.state.Load() != running {
		return
	}
	idle := s.p.idleTimeout
	since := time.Since(s.start) - time.Duration(s.last.Load())
	if since < idle {
		// Re-arm for the rest. Racing the session's Stop at worst fires
		// once more into a finished session, which returns above.
		s.timer.Reset(idle - since)
		return
	}
	if !s.state.CompareAndSwap(running, timedOut) {
		return
	}
	s.p.stats.IdleTimeout.Inc()
	s.abort()
}
