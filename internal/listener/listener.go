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

	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/accesslog"
	"github.com/legate-proxy/legate/internal/listenerfilter"
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
	v6only    bool   // an IPv6 address without ipv4_compat
	unix      bool   // address.pipe: Address is the socket's path
	pipeMode  os.FileMode
	reusePort bool // enable_reuse_port
	sockopts  []sockopt
	drainOnHC bool   // drain_type DEFAULT
	connLimit uint64 // 0 = unlimited
	stats     listenerStats
	logger    *slog.Logger
	// accessLogs log every connection when it closes (access_log).
	accessLogs accesslog.Loggers
	nextID     *atomic.Uint64
	limits     *Limits
	// ignoreGlobal: ignore_global_conn_limit; bypassOverload:
	// bypass_overload_manager (the overload actions do not apply).
	ignoreGlobal, bypassOverload bool

	// chains are filter_chains in order; match picks one of them or
	// defaultChain for a connection.
	chains       []*filterChain
	defaultChain *filterChain
	match        *node
	// Listener filters, and how long they may take.
	lfilters   []listenerfilter.Filter
	lfTimeout  time.Duration
	lfContinue bool

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
	// base is the active version this one was built against, reusing its
	// unchanged filter chains (a filter-chain-only update); nil for a
	// full build.
	base *Listener
	// owned are the chains this version drains and releases: the ones it
	// built, until it goes live; then all of its chains, and a version an
	// in-place update replaced keeps only those its successor dropped.
	owned []*filterChain

	sock *socket
	// shutdown is the Manager's: cancelled when the server shuts down.
	shutdown context.Context
	// hardCtx closes the connections still in their listener filters when
	// the drain time ends.
	hardCtx    context.Context
	hardCancel context.CancelFunc
	// pre counts the connections accepted by this version that have not
	// been handed to a filter chain yet.
	pre      atomic.Int64
	draining atomic.Bool
	preIdle  chan struct{}
	preOnce  sync.Once
	// idle is closed once the version drains and its last connection
	// (before a chain, or on a chain it owns) is gone.
	idle      chan struct{}
	drainOnce sync.Once
}

// filterChain is one compiled filter chain and its connections. An in-place
// update hands an unchanged chain, with its connections, to the new
// listener version.
type filterChain struct {
	name     string
	path     string // "filter_chains[1]", "default_filter_chain"
	pb       *listenerv3.FilterChain
	tls      *tls.Config
	chain    *networkfilter.Chain
	releases []func()
	released atomic.Bool

	active      atomic.Int64
	drainCtx    context.Context
	drainCancel context.CancelCauseFunc
	hardCtx     context.Context
	hardCancel  context.CancelFunc
	sealed      atomic.Bool // draining and no version can hand it connections
	idle        chan struct{}
	idleOnce    sync.Once
}

type listenerStats struct {
	cxTotal, cxDestroy, cxOverflow, globalOverflow *stats.Counter
	cxActive                                       *stats.Gauge
	cxLengthMs                                     *stats.Histogram
	sslHandshake, sslConnectionError               *stats.Counter
	noChainMatch, preCxTimeout, overloadReject     *stats.Counter
	preCxActive                                    *stats.Gauge
}

// defaultListenerFiltersTimeout is Envoy's listener_filters_timeout default.
const defaultListenerFiltersTimeout = 15 * time.Second

// Build compiles a listener proto; it binds nothing.
func Build(pb *listenerv3.Listener, fc *networkfilter.FactoryContext, nextID *atomic.Uint64) (*Listener, error) {
	return build(pb, fc, nextID, nil, nil)
}

// build compiles a listener; with base (the active version of the same
// name) and a filter-chain-only change, base's unchanged chains are reused.
func build(pb *listenerv3.Listener, fcIn *networkfilter.FactoryContext, nextID *atomic.Uint64, base *Listener, limits *Limits) (*Listener, error) {
	fcCopy := *fcIn
	fc := &fcCopy
	fc.TrafficDirection = pb.GetTrafficDirection()
	if pipe := pb.GetAddress().GetPipe(); pipe != nil {
		return buildPipe(pb, pipe, fc, nextID, base, limits)
	}
	sa := pb.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, errors.New("address: a socket_address or pipe is required")
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return nil, fmt.Errorf("address.socket_address.protocol: %s is not supported", sa.GetProtocol())
	}
	host := sa.GetAddress()
	if _, err := netip.ParseAddr(host); err != nil {
		return nil, fmt.Errorf("address.socket_address.address: %q is not an IP address", host)
	}
	port := sa.GetPortValue()
	return finishBuild(pb, fc, nextID, base, limits, net.JoinHostPort(host, strconv.Itoa(int(port))), statAddress(host, port), func(l *Listener) {
		// Envoy binds an IPv6 address v6-only unless ipv4_compat is set;
		// Go's default is dual-stack, so say which explicitly.
		if a, _ := netip.ParseAddr(host); a.Is6() && !a.Is4In6() {
			l.v6only = !sa.GetIpv4Compat()
		}
	})
}

// buildPipe builds a listener on a unix domain socket (address.pipe).
func buildPipe(pb *listenerv3.Listener, pipe *corev3.Pipe, fc *networkfilter.FactoryContext, nextID *atomic.Uint64, base *Listener, limits *Limits) (*Listener, error) {
	path := pipe.GetPath()
	if path == "" {
		return nil, errors.New("address.pipe.path: required")
	}
	if pipe.GetMode() > 0o777 {
		return nil, fmt.Errorf("address.pipe.mode: %o is not a file mode", pipe.GetMode())
	}
	if strings.HasPrefix(path, "@") && pipe.GetMode() != 0 {
		return nil, errors.New("address.pipe.mode: an abstract socket has no file mode")
	}
	return finishBuild(pb, fc, nextID, base, limits, path, path, func(l *Listener) {
		l.unix, l.pipeMode = true, os.FileMode(pipe.GetMode())
	})
}

func finishBuild(pb *listenerv3.Listener, fc *networkfilter.FactoryContext, nextID *atomic.Uint64, base *Listener, limits *Limits,
	address, statName string, setAddr func(*Listener)) (*Listener, error) {
	l := &Listener{
		Name:    pb.GetName(),
		Address: address,
		logger:  fc.Logger,
		nextID:  nextID,
		limits:  limits,
		pb:      pb,
		updated: time.Now(),
		init:    fc.XDS.Init,
		settled: make(chan struct{}),
		idle:    make(chan struct{}),
		preIdle: make(chan struct{}),
	}
	if l.limits == nil {
		l.limits = &Limits{}
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	l.hardCtx, l.hardCancel = context.WithCancel(context.Background())
	l.StatName = pb.GetStatPrefix()
	if l.StatName == "" {
		l.StatName = statName
	}
	if l.Name == "" {
		l.Name = l.Address
	}
	setAddr(l)
	l.reusePort = pb.GetEnableReusePort().GetValue()
	if err := l.compileSocketOptions(pb.GetSocketOptions()); err != nil {
		return nil, err
	}
	if cb := pb.GetConnectionBalanceConfig(); cb != nil && cb.GetExactBalance() == nil {
		return nil, errors.New("connection_balance_config: only exact_balance is supported")
	}
	l.drainOnHC = pb.GetDrainType() == listenerv3.Listener_DEFAULT
	l.ignoreGlobal = pb.GetIgnoreGlobalConnLimit()
	l.bypassOverload = pb.GetBypassOverloadManager()
	if fc.Runtime != nil {
		l.connLimit = fc.Runtime.Uint("envoy.resource_limits.listener."+l.Name+".connection_limit", 0)
	}
	if base != nil && !filterChainOnlyChange(base.pb, pb) {
		base = nil
	}
	l.base = base

	if err := l.buildChains(pb, fc); err != nil {
		l.release()
		return nil, err
	}
	if err := l.buildListenerFilters(pb, fc); err != nil {
		l.release()
		return nil, err
	}
	var err error
	if l.accessLogs, err = buildAccessLogs(pb, fc); err != nil {
		l.release()
		return nil, err
	}

	sc := fc.Stats.Scope("listener").Scope(l.StatName)
	l.stats = listenerStats{
		cxTotal:            sc.Counter("downstream_cx_total"),
		cxDestroy:          sc.Counter("downstream_cx_destroy"),
		cxOverflow:         sc.Counter("downstream_cx_overflow"),
		globalOverflow:     sc.Counter("downstream_global_cx_overflow"),
		cxActive:           sc.Gauge("downstream_cx_active", stats.Accumulate),
		cxLengthMs:         sc.Histogram("downstream_cx_length_ms", stats.Milliseconds),
		sslHandshake:       sc.Counter("ssl.handshake"),
		sslConnectionError: sc.Counter("ssl.connection_error"),
		noChainMatch:       sc.Counter("no_filter_chain_match"),
		overloadReject:     sc.Counter("downstream_cx_overload_reject"),
		preCxTimeout:       sc.Counter("downstream_pre_cx_timeout"),
		preCxActive:        sc.Gauge("downstream_pre_cx_active", stats.Accumulate),
	}
	return l, nil
}

// filterChainOnlyChange reports whether two versions of a listener differ
// at most in their filter chains: Envoy then updates the listener in
// place, draining only the connections of the chains that changed.
func filterChainOnlyChange(a, b *listenerv3.Listener) bool {
	strip := func(pb *listenerv3.Listener) *listenerv3.Listener {
		c := proto.CloneOf(pb)
		c.FilterChains, c.DefaultFilterChain, c.FilterChainMatcher = nil, nil, nil
		return c
	}
	return proto.Equal(strip(a), strip(b))
}

// buildChains compiles filter_chains and default_filter_chain and the
// match over them.
func (l *Listener) buildChains(pb *listenerv3.Listener, fc *networkfilter.FactoryContext) error {
	if pb.GetFilterChainMatcher() != nil {
		return errors.New("filter_chain_matcher: not supported; use filter_chains[].filter_chain_match")
	}
	pbs := pb.GetFilterChains()
	if len(pbs) == 0 && pb.GetDefaultFilterChain() == nil {
		return errors.New("filter_chains: at least one filter chain (or a default_filter_chain) is required")
	}
	names := map[string]string{}
	var cs []*criteria
	for i, fcPB := range pbs {
		path := fmt.Sprintf("filter_chains[%d]", i)
		if n := fcPB.GetName(); n != "" {
			if other, dup := names[n]; dup {
				return fmt.Errorf("%s.name: %q is also the name of %s; filter chain names must be unique", path, n, other)
			}
			names[n] = path
		}
		crit, err := compileMatch(fcPB.GetFilterChainMatch(), path+".filter_chain_match")
		if err != nil {
			return err
		}
		ch, err := l.chainFor(fcPB, path, fc)
		if err != nil {
			return err
		}
		crit.chain, crit.index = ch, i
		l.chains = append(l.chains, ch)
		cs = append(cs, crit)
	}
	if d := pb.GetDefaultFilterChain(); d != nil {
		if d.GetFilterChainMatch() != nil {
			return errors.New("default_filter_chain.filter_chain_match: the default chain matches what no other chain does; it takes no match")
		}
		ch, err := l.chainFor(d, "default_filter_chain", fc)
		if err != nil {
			return err
		}
		l.defaultChain = ch
	}
	if len(cs) > 0 {
		tree, err := buildTree(cs, 0, "filter_chains")
		if err != nil {
			return err
		}
		l.match = tree
	}
	return nil
}

// chainFor returns the base version's chain when it is the same, else
// compiles pb.
func (l *Listener) chainFor(pb *listenerv3.FilterChain, path string, fc *networkfilter.FactoryContext) (*filterChain, error) {
	if l.base != nil {
		for _, old := range append(l.base.chains, l.base.defaultChain) {
			if old != nil && proto.Equal(old.pb, pb) {
				return old, nil
			}
		}
	}
	ch, err := buildFilterChain(pb, path, fc)
	if err != nil {
		return nil, err
	}
	l.owned = append(l.owned, ch)
	return ch, nil
}

func buildFilterChain(pb *listenerv3.FilterChain, path string, base *networkfilter.FactoryContext) (*filterChain, error) {
	ch := &filterChain{name: pb.GetName(), path: path, pb: pb, idle: make(chan struct{})}
	ch.drainCtx, ch.drainCancel = context.WithCancelCause(context.Background())
	ch.hardCtx, ch.hardCancel = context.WithCancel(context.Background())
	// The chain's watches (RDS, SDS) are its own: an in-place update keeps
	// them with the chain.
	fc := *base
	fc.XDS.Release = func(f func()) { ch.releases = append(ch.releases, f) }
	fail := func(err error) (*filterChain, error) {
		ch.release()
		return nil, err
	}
	if ts := pb.GetTransportSocket(); ts != nil {
		var dtc tlsv3.DownstreamTlsContext
		if err := ts.GetTypedConfig().UnmarshalTo(&dtc); err != nil {
			return fail(fmt.Errorf("%s.transport_socket: %w", path, err))
		}
		cfg, err := tlscontext.ServerConfig(&dtc, fc.XDS)
		if err != nil {
			return fail(fmt.Errorf("%s.transport_socket: %w", path, err))
		}
		if len(cfg.NextProtos) == 0 && isHCM(pb.GetFilters()) {
			// The HTTP connection manager negotiates h2 or HTTP/1.1 when
			// the context names no protocols; other filters offer only
			// what is configured, as in Envoy.
			cfg.NextProtos = []string{"h2", "http/1.1"}
		}
		ch.tls = cfg
	}
	var err error
	if ch.chain, err = networkfilter.BuildChain(pb.GetFilters(), &fc, path+".filters"); err != nil {
		return fail(err)
	}
	return ch, nil
}

func (ch *filterChain) release() {
	if ch.released.CompareAndSwap(false, true) {
		for _, f := range ch.releases {
			f()
		}
	}
}

// connDone ends a connection of the chain.
func (ch *filterChain) connDone() {
	if ch.active.Add(-1) == 0 && ch.sealed.Load() {
		ch.idleOnce.Do(func() { close(ch.idle) })
	}
}

// seal marks a draining chain that no version hands connections to any
// more: it is idle once its last connection ends.
func (ch *filterChain) seal() {
	ch.sealed.Store(true)
	if ch.active.Load() == 0 {
		ch.idleOnce.Do(func() { close(ch.idle) })
	}
}

// buildListenerFilters compiles listener_filters. As Envoy does, a listener
// whose chains match on what only the TLS inspector finds (server names,
// "tls", ALPN) gets one when it has none.
func (l *Listener) buildListenerFilters(pb *listenerv3.Listener, fc *networkfilter.FactoryContext) error {
	l.lfTimeout = defaultListenerFiltersTimeout
	if d := pb.GetListenerFiltersTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return fmt.Errorf("listener_filters_timeout: %v is not a valid duration", d)
		}
		l.lfTimeout = d.AsDuration()
	}
	l.lfContinue = pb.GetContinueOnListenerFiltersTimeout()
	hasInspector := false
	for i, f := range pb.GetListenerFilters() {
		path := fmt.Sprintf("listener_filters[%d]", i)
		if f.GetFilterDisabled() != nil {
			return fmt.Errorf("%s.filter_disabled: not supported", path)
		}
		if f.GetTypedConfig() == nil {
			return fmt.Errorf("%s.typed_config: required", path)
		}
		if f.GetTypedConfig().MessageIs(&tlsinspectorv3.TlsInspector{}) {
			hasInspector = true
		}
		lf, err := newListenerFilter(f.GetTypedConfig(), fc)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		l.lfilters = append(l.lfilters, lf)
	}
	if !hasInspector && needsTLSInspector(pb) {
		a, _ := anypb.New(&tlsinspectorv3.TlsInspector{})
		lf, err := newListenerFilter(a, fc)
		if err != nil {
			return fmt.Errorf("filter_chains: the chains match on TLS (server_names, transport_protocol, application_protocols) and need envoy.filters.listener.tls_inspector: %w", err)
		}
		l.logger.Warn("filter chain match rules require the TLS inspector listener filter; adding it", "listener", l.Name)
		l.lfilters = append([]listenerfilter.Filter{lf}, l.lfilters...)
	}
	return nil
}

func newListenerFilter(a *anypb.Any, fc *networkfilter.FactoryContext) (listenerfilter.Filter, error) {
	factory, msg, err := listenerfilter.Registry.Lookup(a)
	if err != nil {
		return nil, err
	}
	return factory(msg, fc)
}

// needsTLSInspector is Envoy's rule for adding the TLS inspector.
func needsTLSInspector(pb *listenerv3.Listener) bool {
	for _, ch := range pb.GetFilterChains() {
		m := ch.GetFilterChainMatch()
		t := m.GetTransportProtocol()
		if t == "tls" || (t == "" && (len(m.GetServerNames()) > 0 || len(m.GetApplicationProtocols()) > 0)) {
			return true
		}
	}
	return false
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
	// conns counts the socket's open connections, all versions.
	conns    atomic.Int64
	sockopts []sockopt
}

// bind creates the socket for l's address and binds it.
func bind(l *Listener) (*socket, error) {
	if l.unix {
		fd, addr, err := bindUnix(l)
		if err != nil {
			return nil, fmt.Errorf("listener %q: listen unix %s: %w", l.Name, l.Address, err)
		}
		return &socket{fd: fd, addr: addr, logger: l.logger, sockopts: l.sockopts}, nil
	}
	ap, err := netip.ParseAddrPort(l.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", l.Name, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	fd, err := bindTCP(ap, l.v6only, l.reusePort, l.sockopts)
	if err != nil {
		return nil, fmt.Errorf("listener %q: listen tcp %s: %w", l.Name, l.Address, err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("listener %q: %w", l.Name, err)
	}
	return &socket{fd: fd, addr: tcpAddr(sa), logger: l.logger, sockopts: l.sockopts}, nil
}

// bindTCP returns a bound, non-blocking, close-on-exec TCP socket with
// IPV6_V6ONLY as asked, SO_REUSEPORT with enable_reuse_port, and the
// socket_options for before and after bind applied.
func bindTCP(ap netip.AddrPort, v6only, reusePort bool, opts []sockopt) (int, error) {
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
	if reusePort {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, soReusePort, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := applySockopts(fd, opts, corev3.SocketOption_STATE_PREBIND); err != nil {
		return fail("setsockopt", err)
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
	if err := applySockopts(fd, opts, corev3.SocketOption_STATE_BOUND); err != nil {
		return fail("setsockopt", err)
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
	if err := applySockopts(s.fd, s.sockopts, corev3.SocketOption_STATE_LISTENING); err != nil {
		return os.NewSyscallError("setsockopt", err)
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
		// stop_accepting_connections: leave new connections in the
		// kernel's queue while the overload lasts, as Envoy disables its
		// listeners.
		for l := s.cur.Load(); l != nil && l.limits.Overload != nil && !l.bypassOverload &&
			l.limits.Overload.StopConnections.Load() && !s.closed.Load(); l = s.cur.Load() {
			time.Sleep(50 * time.Millisecond)
		}
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
		l.pre.Add(1)
		if s.cur.Load() != l {
			l.preDone()
			continue
		}
		// The listener's connection limit counts every version's
		// connections on the socket; the global one every listener's.
		n := s.conns.Add(1)
		if l.connLimit > 0 && uint64(n) > l.connLimit {
			l.stats.cxOverflow.Inc()
			s.conns.Add(-1)
			l.preDone()
			nc.Close()
			return
		}
		if ov := l.limits.Overload; ov != nil && !l.bypassOverload && ov.RejectConnections.Load() {
			l.stats.overloadReject.Inc()
			s.conns.Add(-1)
			l.preDone()
			nc.Close()
			return
		}
		if !l.ignoreGlobal && !l.limits.acquire() {
			l.stats.globalOverflow.Inc()
			s.conns.Add(-1)
			l.preDone()
			nc.Close()
			return
		}
		go l.serveConn(nc)
		return
	}
}

// preDone ends a connection's time before its filter chain.
func (l *Listener) preDone() {
	if l.pre.Add(-1) == 0 && l.draining.Load() {
		l.preOnce.Do(func() { close(l.preIdle) })
	}
}

// startDrain asks this version's connections to finish: cause
// networkfilter.ErrListenerDrain for an LDS update, nil for shutdown. The
// version must no longer be any socket's current one. Chains an in-place
// update handed on are not its to drain.
func (l *Listener) startDrain(cause error) {
	l.drainOnce.Do(func() {
		l.draining.Store(true)
		owned := l.owned
		for _, ch := range owned {
			ch.drainCancel(cause)
		}
		if l.pre.Load() == 0 {
			l.preOnce.Do(func() { close(l.preIdle) })
		}
		go func() {
			// Once no connection is before its chain, none can reach an
			// owned chain any more.
			<-l.preIdle
			for _, ch := range owned {
				ch.seal()
				<-ch.idle
			}
			close(l.idle)
		}()
	})
}

// closeConns closes every remaining connection (the drain time is over).
func (l *Listener) closeConns() {
	l.hardCancel()
	for _, ch := range l.owned {
		ch.hardCancel()
	}
}

// release runs the version's cleanup (RDS/SDS watch cancels) once, for
// itself and the chains it owns.
func (l *Listener) release() {
	if l.released.CompareAndSwap(false, true) {
		for _, f := range l.releases {
			f()
		}
		for _, ch := range l.owned {
			ch.release()
		}
	}
}

func (l *Listener) serveConn(nc net.Conn) {
	start := time.Now()
	l.stats.cxTotal.Inc()
	l.stats.cxActive.Inc()
	c := &networkfilter.Conn{Conn: nc, ID: l.nextID.Add(1), DrainOnHealthFail: l.drainOnHC, Shutdown: l.shutdown}
	// The drain time is over: close the socket under whatever is running
	// (waking it first if it is parked). Until a chain has the connection
	// that is this version's drain, then the chain's.
	var (
		stopMu sync.Mutex
		ch     *filterChain
	)
	stop := context.AfterFunc(l.hardCtx, func() { c.Wake(); nc.Close() })
	// The connection may outlive this goroutine (parked while idle), so
	// its end runs through c.End, whoever calls it.
	c.AllowDetach()
	c.OnEnd(func() {
		stopMu.Lock()
		stop()
		stopMu.Unlock()
		l.stats.cxActive.Dec()
		l.stats.cxDestroy.Inc()
		l.stats.cxLengthMs.Record(uint64(time.Since(start).Milliseconds()))
		l.sock.conns.Add(-1)
		if !l.ignoreGlobal {
			l.limits.release()
		}
		if ch != nil {
			ch.connDone()
		} else {
			l.preDone()
		}
	})
	defer func() {
		if !c.Detached() {
			c.End()
		}
	}()
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
	if len(l.lfilters) > 0 && !l.runListenerFilters(c) {
		nc.Close()
		return
	}
	if c.TransportProtocol == "" {
		c.TransportProtocol = "raw_buffer"
	}
	picked := l.pick(c)
	if picked == nil {
		l.stats.noChainMatch.Inc()
		l.logger.Debug("no filter chain matches the connection", "listener", l.Name, "remote", c.RemoteAddr, "sni", c.RequestedServerName)
		nc.Close()
		return
	}
	// Hand the connection from the version to the chain: counted by the
	// chain first, so that whoever drains it sees one of the two.
	picked.active.Add(1)
	ch = picked
	l.preDone()
	stopMu.Lock()
	stop()
	stop = context.AfterFunc(ch.hardCtx, func() { c.Wake(); nc.Close() })
	stopMu.Unlock()
	c.ChainName = ch.name
	ctx := ch.drainCtx
	if ch.tls != nil {
		tc := tls.Server(c.Conn, ch.tls)
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
	ch.chain.ServeConn(ctx, c)
}

// runListenerFilters runs the listener filters under
// listener_filters_timeout; false: close the connection.
func (l *Listener) runListenerFilters(c *networkfilter.Conn) bool {
	l.stats.preCxActive.Inc()
	defer l.stats.preCxActive.Dec()
	raw := c.Conn
	if l.lfTimeout > 0 {
		raw.SetReadDeadline(time.Now().Add(l.lfTimeout))
	}
	lc := listenerfilter.NewConn(c)
	ok := true
	for _, f := range l.lfilters {
		err := f.OnAccept(lc)
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			l.stats.preCxTimeout.Inc()
			if l.lfContinue {
				break
			}
		}
		l.logger.Debug("listener filter closed the connection", "listener", l.Name, "remote", c.RemoteAddr, "err", err)
		ok = false
		break
	}
	if l.lfTimeout > 0 {
		raw.SetReadDeadline(time.Time{})
	}
	lc.Finish()
	return ok
}

// pick chooses the connection's filter chain.
func (l *Listener) pick(c *networkfilter.Conn) *filterChain {
	if l.match != nil {
		in := matchInput{
			local:      c.LocalAddr,
			remote:     c.RemoteAddr,
			direct:     c.DirectRemote(),
			serverName: c.RequestedServerName,
			transport:  c.TransportProtocol,
			alpn:       c.ApplicationProtocols,
		}
		if ch := l.match.find(&in); ch != nil {
			return ch
		}
	}
	return l.defaultChain
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// ActiveConnections is the number of open downstream connections on the
// listener's socket, all versions.
func (l *Listener) ActiveConnections() int64 {
	if l.sock == nil {
		return 0
	}
	return l.sock.conns.Load()
}
