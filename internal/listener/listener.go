// Package listener builds Envoy listeners and runs them. A Listener is one
// built config version of a named listener; the Manager owns every version
// (static, LDS active, warming and draining) and the sockets they share. A
// socket's accept loop hands each connection to the version current at
// that moment, one atomic load; connections keep the version they were
// accepted with until they close or its drain ends.
package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
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
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/tlscontext"
	"github.com/legate-proxy/legate/internal/xds"
)

// handshakeTimeout bounds a downstream TLS handshake. Envoy has no default
// here (transport_socket_connect_timeout is unset), but a peer that opens a
// connection and never finishes the handshake must not hold it forever.
const handshakeTimeout = 10 * time.Second

// Listener is one built version of a listener's config.
type Listener struct {
	Name      string
	Address   string // host:port to bind
	StatName  string // "0.0.0.0_8080" or stat_prefix
	tls       *tls.Config
	v6only    bool // an IPv6 address without ipv4_compat
	drainOnHC bool // drain_type DEFAULT
	chain     *networkfilter.Chain
	connLimit uint64 // 0 = unlimited
	stats     listenerStats
	logger    *slog.Logger
	// accessLogs log every connection when it closes (access_log).
	accessLogs accesslog.Loggers
	nextID     *atomic.Uint64

	// What the Manager tracks per version.
	pb       *listenerv3.Listener
	version  string
	updated  time.Time
	init     *xds.Init
	releases []func()
	released atomic.Bool
	// settled is closed when a warming version goes live or is discarded.
	settled     chan struct{}
	settledOnce sync.Once

	sock *socket
	// shutdown is the Manager's: cancelled when the server shuts down.
	shutdown context.Context
	// drainCtx is every connection's ServeConn context: cancelled when
	// this version drains. hardCtx closes the connections that remain
	// when the drain time ends.
	drainCtx    context.Context
	drainCancel context.CancelCauseFunc
	hardCtx     context.Context
	hardCancel  context.CancelFunc
	active      atomic.Int64
	draining    atomic.Bool
	// idle is closed once the version drains and its last connection is
	// gone.
	idle     chan struct{}
	idleOnce sync.Once
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
		pb:      pb,
		updated: time.Now(),
		init:    fc.XDS.Init,
		settled: make(chan struct{}),
		idle:    make(chan struct{}),
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	l.drainCtx, l.drainCancel = context.WithCancelCause(context.Background())
	l.hardCtx, l.hardCancel = context.WithCancel(context.Background())
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
		cfg, err := tlscontext.ServerConfig(&dtc, fc.XDS)
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
	var err error
	if l.chain, err = networkfilter.BuildChain(fcPB.GetFilters(), fc, "filter_chains[0].filters"); err != nil {
		return nil, err
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
	return len(filters) > 0 && filters[len(filters)-1].GetTypedConfig().MessageIs(&hcmv3.HttpConnectionManager{})
}

// statAddress is Envoy's listener stat name for an address: "0.0.0.0_8080",
// "[__]_8080" for "::".
func statAddress(host string, port uint32) string {
	if strings.Contains(host, ":") {
		host = "[" + strings.ReplaceAll(host, ":", "_") + "]"
	}
	return host + "_" + strconv.Itoa(int(port))
}

// socket is a listener's bound socket. It outlives a listener version when
// an update keeps the address: the accept loop then hands connections to
// the new version (cur) without closing the socket.
//
// A socket is bound when its listener is built, so that a port in use
// refuses the config (an LDS NACK), but it listens only when its first
// version goes live: a warming listener refuses connections, as in Envoy,
// instead of queueing them in a backlog nobody accepts from.
type socket struct {
	mu      sync.Mutex
	fd      int          // bound, not yet listening; -1 once ln exists or closed
	ln      net.Listener // nil until listen
	addr    net.Addr
	cur     atomic.Pointer[Listener] // nil: not serving (closing)
	serving bool                     // accept loop started; guarded by Manager.mu
	logger  *slog.Logger
	closed  atomic.Bool
}

// bind creates the socket for l's address and binds it.
func bind(l *Listener) (*socket, error) {
	ap, err := netip.ParseAddrPort(l.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", l.Name, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	fd, err := bindTCP(ap, l.v6only)
	if err != nil {
		return nil, fmt.Errorf("listener %q: listen tcp %s: %w", l.Name, l.Address, err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("listener %q: %w", l.Name, err)
	}
	return &socket{fd: fd, addr: tcpAddr(sa), logger: l.logger}, nil
}

// bindTCP returns a bound, non-blocking, close-on-exec TCP socket with
// IPV6_V6ONLY as asked.
func bindTCP(ap netip.AddrPort, v6only bool) (int, error) {
	family := syscall.AF_INET
	if ap.Addr().Is6() {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM, syscall.IPPROTO_TCP)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	syscall.CloseOnExec(fd)
	fail := func(call string, err error) (int, error) {
		syscall.Close(fd)
		return -1, os.NewSyscallError(call, err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		return fail("setnonblock", err)
	}
	// SO_REUSEADDR lets a restarted proxy bind its port while connections
	// of the previous one linger in TIME_WAIT. Not for port 0: Linux lets
	// two bound, not yet listening SO_REUSEADDR sockets share a port, so
	// two port-0 listeners warming at once could be given the same one.
	if ap.Port() != 0 {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	var sa syscall.Sockaddr
	if family == syscall.AF_INET6 {
		only := 0
		if v6only {
			only = 1
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, only); err != nil {
			return fail("setsockopt", err)
		}
		sa = &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	} else {
		sa = &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	if err := syscall.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	return fd, nil
}

func tcpAddr(sa syscall.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return &net.TCPAddr{}
}

// listen starts accepting into the kernel's queue and wraps the socket in a
// net.Listener. Called once, when the socket's first version goes live.
func (s *socket) listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	if s.fd < 0 {
		return net.ErrClosed
	}
	if err := syscall.Listen(s.fd, listenBacklog()); err != nil {
		return os.NewSyscallError("listen", err)
	}
	f := os.NewFile(uintptr(s.fd), "listener")
	ln, err := net.FileListener(f) // duplicates the descriptor
	f.Close()
	s.fd = -1
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
}

// listenBacklog is net.core.somaxconn, as Envoy and Go use by default.
func listenBacklog() int {
	if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			return n
		}
	}
	return 4096
}

func (s *socket) close() {
	if s.closed.CompareAndSwap(false, true) {
		s.cur.Store(nil)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.ln != nil {
			s.ln.Close()
		} else if s.fd >= 0 {
			syscall.Close(s.fd)
			s.fd = -1
		}
	}
}

// Addr is the bound address, nil before the listener is bound.
func (l *Listener) Addr() net.Addr {
	if l.sock == nil {
		return nil
	}
	return l.sock.addr
}

// serve accepts until the socket is closed.
func (s *socket) serve() {
	var tempDelay time.Duration
	for {
		nc, err := s.ln.Accept()
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
			s.logger.Warn("accept failed", "address", s.addr.String(), "err", err)
			time.Sleep(tempDelay)
			continue
		}
		tempDelay = 0
		s.dispatch(nc)
	}
}

// dispatch hands nc to the current version. The count is taken before the
// version is confirmed still current, so a version whose drain has begun
// never gains a connection after its drain saw it empty.
func (s *socket) dispatch(nc net.Conn) {
	for {
		l := s.cur.Load()
		if l == nil {
			nc.Close()
			return
		}
		n := l.active.Add(1)
		if s.cur.Load() != l {
			l.connDone()
			continue
		}
		if l.connLimit > 0 && uint64(n) > l.connLimit {
			l.stats.cxOverflow.Inc()
			l.connDone()
			nc.Close()
			return
		}
		go l.serveConn(nc)
		return
	}
}

func (l *Listener) connDone() {
	if l.active.Add(-1) == 0 && l.draining.Load() {
		l.idleOnce.Do(func() { close(l.idle) })
	}
}

// startDrain asks this version's connections to finish: cause
// networkfilter.ErrListenerDrain for an LDS update, nil for shutdown. The
// version must no longer be any socket's current one.
func (l *Listener) startDrain(cause error) {
	l.draining.Store(true)
	l.drainCancel(cause)
	if l.active.Load() == 0 {
		l.idleOnce.Do(func() { close(l.idle) })
	}
}

// closeConns closes every remaining connection (the drain time is over).
func (l *Listener) closeConns() { l.hardCancel() }

// release runs the version's cleanup (RDS/SDS watch cancels) once.
func (l *Listener) release() {
	if l.released.CompareAndSwap(false, true) {
		for _, f := range l.releases {
			f()
		}
	}
}

func (l *Listener) serveConn(nc net.Conn) {
	start := time.Now()
	l.stats.cxTotal.Inc()
	l.stats.cxActive.Inc()
	c := &networkfilter.Conn{Conn: nc, ID: l.nextID.Add(1), DrainOnHealthFail: l.drainOnHC, Shutdown: l.shutdown}
	// The drain time is over: close the socket under whatever is running
	// (waking it first if it is parked).
	stop := context.AfterFunc(l.hardCtx, func() { c.Wake(); nc.Close() })
	// The connection may outlive this goroutine (parked while idle), so
	// its end runs through c.End, whoever calls it.
	c.AllowDetach()
	c.OnEnd(func() {
		stop()
		l.stats.cxActive.Dec()
		l.stats.cxDestroy.Inc()
		l.stats.cxLengthMs.Record(uint64(time.Since(start).Milliseconds()))
		l.connDone()
	})
	defer func() {
		if !c.Detached() {
			c.End()
		}
	}()
	ctx := l.drainCtx
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c.LocalAddr = addrPort(nc.LocalAddr())
	c.RemoteAddr = addrPort(nc.RemoteAddr())
	var cl *connLog
	if l.accessLogs != nil {
		cl = newConnLog(c, start)
		c.OnEnd(func() { l.logConn(cl) })
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
	l.chain.ServeConn(ctx, c)
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// ActiveConnections is the number of open downstream connections.
func (l *Listener) ActiveConnections() int64 { return l.active.Load() }
