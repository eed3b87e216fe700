// Package listener builds Envoy listeners and runs their accept loops. A
// listener owns its socket and its single filter chain (transport socket +
// terminal network filter); connections keep the chain they were accepted
// with.
package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/legate-proxy/legate/internal/accesslog"
	networkfilter "github.com/legate-proxy/legate/internal/filter/network"
	"github.com/legate-proxy/legate/internal/stats"
	legatetls "github.com/legate-proxy/legate/internal/tls"
)

// handshakeTimeout bounds a downstream TLS handshake. Envoy has no default
// here (transport_socket_connect_timeout is unset), but a peer that opens a
// connection and never finishes the handshake must not hold it forever.
const handshakeTimeout = 10 * time.Second

// Listener is one configured listener.
type Listener struct {
	Name      string
	Address   string // host:port to bind
	StatName  string // "0.0.0.0_8080" or stat_prefix
	tls       *tls.Config
	v6only    bool // an IPv6 address without ipv4_compat
	drainOnHC bool // drain_type DEFAULT
	filter    networkfilter.Filter
	connLimit uint64 // 0 = unlimited
	stats     listenerStats
	logger    *slog.Logger
	// accessLogs log every connection when it closes (access_log).
	accessLogs accesslog.Loggers

	ln     net.Listener
	active atomic.Int64
	wg     sync.WaitGroup
	nextID *atomic.Uint64
}

type listenerStats struct {
	cxTotal, cxDestroy, cxOverflow   *stats.Counter
	cxActive                         *stats.Gauge
	cxLengthMs                       *stats.Histogram
	sslHandshake, sslConnectionError *stats.Counter
}

// Build compiles a listener proto; it binds nothing.
func Build(pb *listenerv3.Listener, fc *networkfilter.FactoryContext, nextID *atomic.Uint64) (*Listener, error) {
	sa := pb.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, errors.New("address: a socket_address is required")
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return nil, fmt.Errorf("address.socket_address.protocol: %s is not supported", sa.GetProtocol())
	}
	host := sa.GetAddress()
	if _, err := netip.ParseAddr(host); err != nil {
		return nil, fmt.Errorf("address.socket_address.address: %q is not an IP address", host)
	}
	port := sa.GetPortValue()
	l := &Listener{
		Name:    pb.GetName(),
		Address: net.JoinHostPort(host, strconv.Itoa(int(port))),
		logger:  fc.Logger,
		nextID:  nextID,
	}
	l.StatName = pb.GetStatPrefix()
	if l.StatName == "" {
		l.StatName = statAddress(host, port)
	}
	if l.Name == "" {
		l.Name = l.Address
	}
	// Envoy binds an IPv6 address v6-only unless ipv4_compat is set; Go's
	// default is dual-stack, so say which explicitly.
	if a, _ := netip.ParseAddr(host); a.Is6() && !a.Is4In6() {
		l.v6only = !sa.GetIpv4Compat()
	}
	l.drainOnHC = pb.GetDrainType() == listenerv3.Listener_DEFAULT
	if fc.Runtime != nil {
		l.connLimit = fc.Runtime.Uint("envoy.resource_limits.listener."+l.Name+".connection_limit", 0)
	}

	chains := pb.GetFilterChains()
	if len(chains) != 1 {
		return nil, fmt.Errorf("filter_chains: exactly one filter chain is supported, got %d", len(chains))
	}
	fcPB := chains[0]
	if ts := fcPB.GetTransportSocket(); ts != nil {
		var dtc tlsv3.DownstreamTlsContext
		if err := ts.GetTypedConfig().UnmarshalTo(&dtc); err != nil {
			return nil, fmt.Errorf("filter_chains[0].transport_socket: %w", err)
		}
		cfg, err := legatetls.ServerConfig(&dtc, fc.XDS)
		if err != nil {
			return nil, fmt.Errorf("filter_chains[0].transport_socket: %w", err)
		}
		if len(cfg.NextProtos) == 0 && isHCM(fcPB.GetFilters()) {
			// The HTTP connection manager negotiates h2 or HTTP/1.1 when
			// the context names no protocols; other filters offer only
			// what is configured, as in Envoy.
			cfg.NextProtos = []string{"h2", "http/1.1"}
		}
		l.tls = cfg
	}
	filters := fcPB.GetFilters()
	if len(filters) != 1 {
		return nil, fmt.Errorf("filter_chains[0].filters: exactly one (terminal) network filter is supported, got %d", len(filters))
	}
	factory, msg, err := networkfilter.Registry.Lookup(filters[0].GetTypedConfig())
	if err != nil {
		return nil, fmt.Errorf("filter_chains[0].filters[0]: %w", err)
	}
	if l.filter, err = factory(msg, fc); err != nil {
		return nil, fmt.Errorf("filter_chains[0].filters[0]: %w", err)
	}
	if l.accessLogs, err = buildAccessLogs(pb, fc); err != nil {
		return nil, err
	}

	sc := fc.Stats.Scope("listener").Scope(l.StatName)
	l.stats = listenerStats{
		cxTotal:            sc.Counter("downstream_cx_total"),
		cxDestroy:          sc.Counter("downstream_cx_destroy"),
		cxOverflow:         sc.Counter("downstream_cx_overflow"),
		cxActive:           sc.Gauge("downstream_cx_active", stats.Accumulate),
		cxLengthMs:         sc.Histogram("downstream_cx_length_ms", stats.Milliseconds),
		sslHandshake:       sc.Counter("ssl.handshake"),
		sslConnectionError: sc.Counter("ssl.connection_error"),
	}
	return l, nil
}

// isHCM reports whether a filter chain ends in the HTTP connection manager.
func isHCM(filters []*listenerv3.Filter) bool {
	return len(filters) == 1 && filters[0].GetTypedConfig().MessageIs(&hcmv3.HttpConnectionManager{})
}

// statAddress is Envoy's listener stat name for an address: "0.0.0.0_8080",
// "[__]_8080" for "::".
func statAddress(host string, port uint32) string {
	if strings.Contains(host, ":") {
		host = "[" + strings.ReplaceAll(host, ":", "_") + "]"
	}
	return host + "_" + strconv.Itoa(int(port))
}

// Bind opens the listening socket.
func (l *Listener) Bind() error {
	lc := net.ListenConfig{}
	if strings.Contains(l.Address, "[") {
		v6only := 0
		if l.v6only {
			v6only = 1
		}
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, v6only)
			})
			return errors.Join(err, serr)
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", l.Address)
	if err != nil {
		return fmt.Errorf("listener %q: %w", l.Name, err)
	}
	l.ln = ln
	return nil
}

// Addr is the bound address (useful with port 0), nil before Bind.
func (l *Listener) Addr() net.Addr {
	if l.ln == nil {
		return nil
	}
	return l.ln.Addr()
}

// Serve accepts until the listener is closed. Connections get ctx; its
// cancellation asks them to drain.
func (l *Listener) Serve(ctx context.Context) {
	var tempDelay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as
			// net/http does, rather than spin.
			if tempDelay == 0 {
				tempDelay = 5 * time.Millisecond
			} else {
				tempDelay = min(2*tempDelay, time.Second)
			}
			l.logger.Warn("accept failed", "listener", l.Name, "err", err)
			time.Sleep(tempDelay)
			continue
		}
		tempDelay = 0
		if l.connLimit > 0 && uint64(l.active.Load()) >= l.connLimit {
			l.stats.cxOverflow.Inc()
			nc.Close()
			continue
		}
		l.active.Add(1)
		l.wg.Add(1)
		go l.serveConn(ctx, nc)
	}
}

func (l *Listener) serveConn(ctx context.Context, nc net.Conn) {
	start := time.Now()
	l.stats.cxTotal.Inc()
	l.stats.cxActive.Inc()
	defer func() {
		l.stats.cxActive.Dec()
		l.stats.cxDestroy.Inc()
		l.stats.cxLengthMs.Record(uint64(time.Since(start).Milliseconds()))
		l.active.Add(-1)
		l.wg.Done()
	}()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &networkfilter.Conn{Conn: nc, ID: l.nextID.Add(1), DrainOnHealthFail: l.drainOnHC}
	c.LocalAddr = addrPort(nc.LocalAddr())
	c.RemoteAddr = addrPort(nc.RemoteAddr())
	var cl *connLog
	if l.accessLogs != nil {
		cl = newConnLog(c, start)
		defer l.logConn(cl)
	}
	if l.tls != nil {
		tc := tls.Server(nc, l.tls)
		tc.SetDeadline(time.Now().Add(handshakeTimeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			l.stats.sslConnectionError.Inc()
			l.logger.Debug("TLS handshake failed", "listener", l.Name, "remote", c.RemoteAddr, "err", err)
			nc.Close()
			return
		}
		tc.SetDeadline(time.Time{})
		l.stats.sslHandshake.Inc()
		st := tc.ConnectionState()
		c.Conn, c.TLS = tc, &st
	}
	if cl != nil {
		cl.attach(c)
	}
	l.filter.ServeConn(ctx, c)
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Close stops accepting.
func (l *Listener) Close() error {
	if l.ln == nil {
		return nil
	}
	return l.ln.Close()
}

// Wait blocks until every connection has closed or ctx ends.
func (l *Listener) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ActiveConnections is the number of open downstream connections.
func (l *Listener) ActiveConnections() int64 { return l.active.Load() }
