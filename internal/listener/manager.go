package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/xds"
)

// defaultDrainTime is Envoy's --drain-time-s default.
const defaultDrainTime = 600 * time.Second

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	// Factory is the base filter factory context; each listener version
	// is built with a copy whose XDS carries its own Init and Release.
	Factory networkfilter.FactoryContext
	// Subscriber is nil without dynamic config.
	Subscriber xds.Subscriber
	// DrainTime bounds how long a replaced, removed or shut-down
	// listener's connections may take to finish (--drain-time-s).
	DrainTime time.Duration
	Stats     *stats.Store
	Logger    *slog.Logger
	// Limits are shared by every listener (the global connection limit);
	// nil: none.
	Limits *Limits
}

// Manager owns the listeners, static and from LDS, as Envoy's listener
// manager does: an LDS update is validated whole (built and bound) before
// anything changes; new and changed listeners warm until what they refer
// to has arrived; a changed listener's old version serves until the new one
// is warm, then drains.
type Manager struct {
	opts   ManagerOptions
	logger *slog.Logger
	nextID atomic.Uint64
	st     managerStats
	// shutdown is cancelled by StopListening; connections of versions
	// already draining gently then close when idle.
	shutdown     context.Context
	shutdownDone context.CancelFunc

	mu       sync.Mutex
	static   []*Listener
	dyn      map[string]*entry
	started  bool
	stopped  bool
	ldsFirst bool // the first LDS update has been handled
	ldsInit  chan struct{}
}

// entry is what the Manager holds for one LDS listener name.
type entry struct {
	active, warming *Listener
	draining        []*Listener
}

type managerStats struct {
	added, modified, removed, stopped     *stats.Counter
	createSuccess, createFailure, inPlace *stats.Counter
	active, warming, draining             *stats.Gauge
}

// NewManager returns a Manager with no listeners.
func NewManager(opts ManagerOptions) *Manager {
	if opts.DrainTime <= 0 {
		opts.DrainTime = defaultDrainTime
	}
	if opts.Logger == nil {
		opts.Logger = opts.Factory.Logger
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Stats == nil {
		opts.Stats = opts.Factory.Stats
	}
	sc := opts.Stats.Scope("listener_manager")
	shutdown, shutdownDone := context.WithCancel(context.Background())
	return &Manager{
		shutdown: shutdown, shutdownDone: shutdownDone,
		opts:    opts,
		logger:  opts.Logger,
		dyn:     map[string]*entry{},
		ldsInit: make(chan struct{}),
		st: managerStats{
			added:         sc.Counter("listener_added"),
			modified:      sc.Counter("listener_modified"),
			removed:       sc.Counter("listener_removed"),
			stopped:       sc.Counter("listener_stopped"),
			createSuccess: sc.Counter("listener_create_success"),
			createFailure: sc.Counter("listener_create_failure"),
			inPlace:       sc.Counter("listener_in_place_updated"),
			active:        sc.Gauge("total_listeners_active", stats.NeverImport),
			warming:       sc.Gauge("total_listeners_warming", stats.NeverImport),
			draining:      sc.Gauge("total_listeners_draining", stats.NeverImport),
		},
	}
}

// build compiles one listener version with its own Init and Release; base
// is the active version it may update in place.
func (m *Manager) build(pb *listenerv3.Listener, base *Listener) (*Listener, error) {
	fc := m.opts.Factory
	var releases []func()
	fc.XDS = xds.Deps{
		Subscriber: m.opts.Subscriber,
		Init:       xds.NewInit(),
		Release:    func(f func()) { releases = append(releases, f) },
		Stats:      m.opts.Stats,
	}
	if fc.Stats == nil {
		fc.Stats = m.opts.Stats
	}
	if fc.Logger == nil {
		fc.Logger = m.logger
	}
	l, err := build(pb, &fc, &m.nextID, base, m.opts.Limits)
	if err != nil {
		for _, f := range releases {
			f()
		}
		m.st.createFailure.Inc()
		return nil, err
	}
	l.releases = releases
	l.shutdown = m.shutdown
	l.init.Seal()
	m.st.createSuccess.Inc()
	return l, nil
}

// AddStatic builds the bootstrap's static listeners; nothing is bound
// until Start. Every error is reported, each naming its listener's index.
func (m *Manager) AddStatic(pbs []*listenerv3.Listener) error {
	var errs []error
	seen := map[string]int{}
	addrs := map[string]int{} // host:port → index, for ports other than 0
	var built []*Listener
	for i, pb := range pbs {
		l, err := m.build(pb, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("static_resources.listeners[%d]: %w", i, err))
			continue
		}
		if j, dup := seen[l.Name]; dup {
			l.release()
			errs = append(errs, fmt.Errorf("static_resources.listeners[%d]: duplicate listener name %q (also listeners[%d])", i, l.Name, j))
			continue
		}
		seen[l.Name] = i
		if _, port, _ := net.SplitHostPort(l.Address); port != "0" {
			if j, dup := addrs[l.Address]; dup {
				l.release()
				errs = append(errs, fmt.Errorf("static_resources.listeners[%d]: address %s: address already in use by listeners[%d]", i, l.Address, j))
				continue
			}
			addrs[l.Address] = i
		}
		built = append(built, l)
	}
	if len(errs) > 0 {
		for _, l := range built {
			l.release()
		}
		return errors.Join(errs...)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range built {
		for _, o := range m.static {
			if o.Name == l.Name {
				return fmt.Errorf("static_resources.listeners: duplicate listener name %q", l.Name)
			}
		}
	}
	m.static = append(m.static, built...)
	m.st.added.Add(uint64(len(built)))
	return nil
}

// StaticWarmed is closed once every static listener has warmed (its RDS
// route configurations and SDS secrets arrived, or their
// initial_fetch_timeout passed): the server is not LIVE before that, as in
// Envoy, where static listeners are part of server initialization.
func (m *Manager) StaticWarmed() <-chan struct{} {
	m.mu.Lock()
	static := append([]*Listener(nil), m.static...)
	m.mu.Unlock()
	all := xds.NewInit()
	for _, l := range static {
		ready := all.Add()
		go func() { <-l.init.Done(); ready() }()
	}
	all.Seal()
	return all.Done()
}

// Start binds the static listeners and serves each once it is warm, and
// starts serving LDS listeners that went live before it. A bind error is
// returned with every socket closed.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return errors.New("listener manager is stopped")
	}
	for i, l := range m.static {
		s, err := bind(l)
		if err != nil {
			for _, o := range m.static[:i] {
				o.sock.close()
				o.sock = nil
			}
			return err
		}
		l.sock = s
	}
	// Static listeners that need nothing more listen now, so that a port
	// taken since it was bound fails the start (SO_REUSEADDR lets a
	// second, not yet listening socket bind it).
	for _, l := range m.static {
		select {
		case <-l.init.Done():
			if err := l.sock.listen(); err != nil {
				for _, o := range m.static {
					o.sock.close()
					o.sock = nil
				}
				return fmt.Errorf("listener %q: %s: %w", l.Name, l.Address, err)
			}
		default:
		}
	}
	m.started = true
	for _, l := range m.static {
		select {
		case <-l.init.Done():
			m.goLiveStatic(l)
		default:
			m.st.warming.Inc()
			go func() {
				select {
				case <-l.init.Done():
				case <-ctx.Done():
				}
				m.mu.Lock()
				defer m.mu.Unlock()
				m.st.warming.Dec()
				if !m.stopped {
					m.goLiveStatic(l)
				}
			}()
		}
	}
	for _, e := range m.dyn {
		if e.active != nil && !e.active.sock.serving {
			m.serveSocket(e.active)
		}
	}
	return nil
}

func (m *Manager) goLiveStatic(l *Listener) {
	m.st.active.Inc()
	m.serveSocket(l)
}

// serveSocket makes l its socket's current version and starts the accept
// loop if it is not running. Called with m.mu held.
func (m *Manager) serveSocket(l *Listener) {
	l.sock.cur.Store(l)
	if !l.sock.serving {
		if err := l.sock.listen(); err != nil {
			// The port was bound when the config was accepted; listen
			// failing after that is a kernel resource problem.
			m.logger.Error("listener could not start", "name", l.Name, "address", l.Addr().String(), "err", err)
			return
		}
		l.sock.serving = true
		m.logger.Info("listener started", "name", l.Name, "address", l.Addr().String())
		go l.sock.serve()
	}
}

// LDSInitialized is closed once the first LDS update (or its
// initial_fetch_timeout) has been handled and the listeners it added have
// warmed.
func (m *Manager) LDSInitialized() <-chan struct{} { return m.ldsInit }

// LDS returns the wildcard LDS watcher.
func (m *Manager) LDS() xds.Watcher { return xds.WatcherFunc(m.update) }

// pending is one listener an LDS update adds or changes.
type pending struct {
	l     *Listener
	bound bool // l.sock was bound for this update
	// bindOnApply: a listener this update removes holds the address (a
	// rename). Its socket closes when the update applies and l binds then,
	// as Envoy does when it hands an address from one listener to another.
	bindOnApply bool
}

func (m *Manager) update(u *xds.Update) (err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.markLDSInitialized()
	if m.stopped {
		// Shutting down: nothing goes live any more, and there is nothing
		// wrong with the update.
		return nil
	}
	if u.InitialFetchTimeout {
		m.logger.Warn("LDS initial fetch timed out; continuing without dynamic listeners")
		return nil
	}

	var (
		errs    []error
		changes []*pending
		reverts []string // drop the warming version, keep the active one
		names   = map[string]bool{}
	)
	fail := func(name string, err error) { errs = append(errs, fmt.Errorf("listener %q: %w", name, err)) }
	for _, r := range u.Resources {
		pb, ok := r.Message.(*listenerv3.Listener)
		if !ok {
			fail(r.Name, fmt.Errorf("unexpected resource type %T", r.Message))
			continue
		}
		name := pb.GetName()
		if name == "" {
			name = r.Name
		}
		if names[name] {
			fail(name, errors.New("duplicate listener name in the update"))
			continue
		}
		names[name] = true
		if m.staticNamed(name) != nil {
			fail(name, errors.New("name: a static listener has this name and cannot be updated"))
			continue
		}
		e := m.dyn[name]
		var prev *Listener
		if e != nil {
			prev = e.warming
			if prev == nil {
				prev = e.active
			}
		}
		if prev != nil && proto.Equal(prev.pb, pb) {
			continue
		}
		if e != nil && e.warming != nil && e.active != nil && proto.Equal(e.active.pb, pb) {
			reverts = append(reverts, name)
			continue
		}
		if pb.GetName() == "" {
			pb = proto.CloneOf(pb)
			pb.Name = name
		}
		var base *Listener
		if e != nil {
			base = e.active
		}
		l, err := m.build(pb, base)
		if err != nil {
			fail(name, err)
			continue
		}
		l.version = r.Version
		changes = append(changes, &pending{l: l})
	}

	var removed []string
	for _, name := range u.Removed {
		if e := m.dyn[name]; e != nil && (e.active != nil || e.warming != nil) && !names[name] {
			removed = append(removed, name)
		}
	}
	if u.Full {
		for name, e := range m.dyn {
			if !names[name] && (e.active != nil || e.warming != nil) {
				removed = append(removed, name)
			}
		}
		sort.Strings(removed)
		removed = dedupe(removed)
	}

	if len(errs) == 0 {
		errs = m.checkAddresses(changes, removed)
	}
	if len(errs) == 0 {
		// Bind during validation: an address in use is refused now, not
		// after the update was accepted.
		for _, p := range changes {
			if s := m.socketAt(p.l.Name, p.l.Address); s != nil {
				p.l.sock = s
				continue
			}
			if m.heldByRemoved(removed, p.l.Address) {
				p.bindOnApply = true
				continue
			}
			s, err := bind(p.l)
			if err != nil {
				m.st.createFailure.Inc()
				errs = append(errs, fmt.Errorf("listener %q: address: %w", p.l.Name, errors.Unwrap(err)))
				continue
			}
			p.l.sock, p.bound = s, true
		}
	}
	if len(errs) > 0 {
		for _, p := range changes {
			if p.bound {
				p.l.sock.close()
			}
			p.l.release()
		}
		return errors.Join(errs...)
	}

	// Everything is valid: apply. Removals go first, so that an address a
	// removed listener held is free for the listener taking it over.
	for _, name := range reverts {
		e := m.dyn[name]
		m.discardWarming(e, nil)
	}
	for _, name := range removed {
		e := m.dyn[name]
		m.st.removed.Inc()
		if e.warming != nil {
			m.discardWarming(e, nil)
		}
		if old := e.active; old != nil {
			e.active = nil
			m.st.active.Dec()
			old.sock.close()
			m.drain(e, old)
		}
		m.logger.Info("listener removed", "name", name)
		m.forgetIfEmpty(name)
	}
	for _, p := range changes {
		if !p.bindOnApply {
			continue
		}
		s, err := bind(p.l)
		if err != nil {
			// Accepted but unable to take the address after all (someone
			// else bound it in between): Envoy reports this the same way.
			m.st.createFailure.Inc()
			m.logger.Error("listener could not take over its address", "name", p.l.Name, "address", p.l.Address, "err", err)
			p.l.release()
			p.l = nil
			continue
		}
		p.l.sock = s
	}
	for _, p := range changes {
		if p.l == nil {
			continue
		}
		e := m.dyn[p.l.Name]
		if e == nil {
			e = &entry{}
			m.dyn[p.l.Name] = e
		}
		if e.active == nil && e.warming == nil {
			m.st.added.Inc()
		} else {
			m.st.modified.Inc()
		}
		if e.warming != nil {
			m.discardWarming(e, p.l.sock)
		}
		e.warming = p.l
		m.st.warming.Inc()
		m.logger.Info("listener warming", "name", p.l.Name, "address", p.l.Address, "version", p.l.version)
		select {
		case <-p.l.init.Done():
			m.goLive(p.l)
		default:
			go m.warm(p.l)
		}
	}
	return nil
}

// socketAt is the socket of name's warming or active version if it is
// bound to addr: a version that keeps the address, or returns to the
// active one's while another warms elsewhere, takes the socket over
// rather than fail to bind it. Called with m.mu held.
// heldByRemoved reports whether one of the listeners being removed has a
// socket on addr.
func (m *Manager) heldByRemoved(removed []string, addr string) bool {
	for _, name := range removed {
		if m.socketAt(name, addr) != nil {
			return true
		}
	}
	return false
}

func (m *Manager) socketAt(name, addr string) *socket {
	e := m.dyn[name]
	if e == nil {
		return nil
	}
	for _, o := range []*Listener{e.warming, e.active} {
		if o != nil && o.sock != nil && o.Address == addr {
			return o.sock
		}
	}
	return nil
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func (m *Manager) staticNamed(name string) *Listener {
	for _, l := range m.static {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// checkAddresses refuses two listeners on one address after the update.
// Port 0 asks for any free port, so it never conflicts.
func (m *Manager) checkAddresses(changes []*pending, removed []string) []error {
	final := map[string]string{} // name → address
	for _, l := range m.static {
		final[l.Name] = l.Address
	}
	for name, e := range m.dyn {
		if l := e.warming; l != nil {
			final[name] = l.Address
		} else if e.active != nil {
			final[name] = e.active.Address
		}
	}
	for _, name := range removed {
		delete(final, name)
	}
	for _, p := range changes {
		final[p.l.Name] = p.l.Address
	}
	byAddr := map[string]string{}
	var errs []error
	for _, p := range changes {
		byAddr[p.l.Address] = p.l.Name
	}
	names := make([]string, 0, len(final))
	for n := range final {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		addr := final[name]
		if _, port, _ := net.SplitHostPort(addr); port == "0" {
			continue
		}
		if other, ok := byAddr[addr]; ok && other != name {
			m.st.createFailure.Inc()
			errs = append(errs, fmt.Errorf("listener %q: address: %s is already used by listener %q", other, addr, name))
		}
	}
	return errs
}

// warm waits for l's Init, then makes it live unless it was superseded.
func (m *Manager) warm(l *Listener) {
	select {
	case <-l.init.Done():
	case <-l.settled:
		return // discarded while warming
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.goLive(l)
}

// goLive replaces the active version of l's name with l. Called with m.mu
// held.
func (m *Manager) goLive(l *Listener) {
	e := m.dyn[l.Name]
	if m.stopped || e == nil || e.warming != l {
		return
	}
	e.warming = nil
	m.st.warming.Dec()
	l.settledOnce.Do(func() { close(l.settled) })
	old := e.active
	e.active = l
	if old == nil {
		m.st.active.Inc()
	}
	l.updated = time.Now()
	switch {
	case old != nil && old.sock == l.sock:
		// Same socket: new connections get the new version at once. A
		// filter-chain-only update hands the unchanged chains, with their
		// connections, to the new version; the old one drains the rest.
		if l.base == old {
			m.st.inPlace.Inc()
			l.owned = uniqueChains(l)
			old.owned = dropped(old, l)
		}
		l.base = nil
		l.sock.cur.Store(l)
		m.drain(e, old)
	case m.started:
		m.serveSocket(l)
		if old != nil {
			old.sock.close()
			m.drain(e, old)
		}
	default:
		// Before Start: Start begins serving the active versions.
		l.sock.cur.Store(l)
		if old != nil {
			old.sock.close()
			m.drain(e, old)
		}
	}
	m.logger.Info("listener active", "name", l.Name, "address", l.Addr().String(), "version", l.version)
}

// uniqueChains lists l's chains, the default one included, once each.
func uniqueChains(l *Listener) []*filterChain {
	var out []*filterChain
	for _, ch := range append(append([]*filterChain(nil), l.chains...), l.defaultChain) {
		if ch != nil && !slices.Contains(out, ch) {
			out = append(out, ch)
		}
	}
	return out
}

// dropped lists old's chains that next does not keep.
func dropped(old, next *Listener) []*filterChain {
	keep := uniqueChains(next)
	var out []*filterChain
	for _, ch := range uniqueChains(old) {
		if !slices.Contains(keep, ch) {
			out = append(out, ch)
		}
	}
	return out
}

// discardWarming drops e's warming version, which never served, closing
// its socket unless the active version or its successor (keep) uses it.
// Called with m.mu held.
func (m *Manager) discardWarming(e *entry, keep *socket) {
	w := e.warming
	e.warming = nil
	m.st.warming.Dec()
	if w.sock != keep && (e.active == nil || e.active.sock != w.sock) {
		w.sock.close()
	}
	w.settledOnce.Do(func() { close(w.settled) })
	w.release()
}

// drain starts draining old, a version no socket hands connections to any
// more; after the drain time its remaining connections are closed, and
// once they are gone its watches are released. Called with m.mu held.
func (m *Manager) drain(e *entry, old *Listener) {
	e.draining = append(e.draining, old)
	m.st.draining.Inc()
	old.startDrain(networkfilter.ErrListenerDrain)
	go func() {
		t := time.NewTimer(m.opts.DrainTime)
		select {
		case <-old.idle:
			t.Stop()
		case <-t.C:
			old.closeConns()
			<-old.idle
		}
		old.release()
		m.mu.Lock()
		defer m.mu.Unlock()
		m.st.draining.Dec()
		for i, d := range e.draining {
			if d == old {
				e.draining = append(e.draining[:i], e.draining[i+1:]...)
				break
			}
		}
		m.forgetIfEmpty(old.Name)
	}()
}

func (m *Manager) forgetIfEmpty(name string) {
	if e := m.dyn[name]; e != nil && e.active == nil && e.warming == nil && len(e.draining) == 0 {
		delete(m.dyn, name)
	}
}

// markLDSInitialized closes LDSInitialized, on the first update, once the
// listeners then warming have gone live or been discarded. Called with
// m.mu held.
func (m *Manager) markLDSInitialized() {
	if m.ldsFirst {
		return
	}
	m.ldsFirst = true
	var waits []chan struct{}
	for _, e := range m.dyn {
		if e.warming != nil {
			waits = append(waits, e.warming.settled)
		}
	}
	go func() {
		for _, w := range waits {
			<-w
		}
		close(m.ldsInit)
	}()
}

// StopListening closes every listening socket and asks every connection
// to drain (server shutdown). Warming listeners are discarded.
func (m *Manager) StopListening() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	m.stopped = true
	m.shutdownDone()
	stop := func(l *Listener) {
		if l.sock != nil {
			l.sock.close()
		}
		m.st.stopped.Inc()
		l.startDrain(nil)
	}
	for _, l := range m.static {
		stop(l)
	}
	for _, e := range m.dyn {
		if e.warming != nil {
			m.discardWarming(e, nil)
		}
		if e.active != nil {
			stop(e.active)
		}
	}
}

// Wait blocks until every connection of every listener version has closed,
// or ctx ends.
func (m *Manager) Wait(ctx context.Context) error {
	m.mu.Lock()
	var all []*Listener
	all = append(all, m.static...)
	for _, e := range m.dyn {
		if e.active != nil {
			all = append(all, e.active)
		}
		all = append(all, e.draining...)
	}
	m.mu.Unlock()
	for _, l := range all {
		if !l.draining.Load() {
			continue // not stopped: nothing to wait for
		}
		select {
		case <-l.idle:
		case <-ctx.Done():
			var open int64
			for _, l := range all {
				open += l.ActiveConnections()
			}
			m.logger.Warn("drain time elapsed with connections still open", "open", open)
			return ctx.Err()
		}
	}
	return nil
}

// Addrs returns the bound address of each active listener by name.
func (m *Manager) Addrs() map[string]net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]net.Addr{}
	for _, l := range m.static {
		if a := l.Addr(); a != nil {
			out[l.Name] = a
		}
	}
	for name, e := range m.dyn {
		if e.active != nil {
			out[name] = e.active.Addr()
		}
	}
	return out
}

// Status is one listener as /listeners shows it.
type Status struct {
	Name string
	// Address is the bound address, or the configured one before Start.
	Address string
	// Config is the listener's config as given; it must not be modified.
	Config *listenerv3.Listener
}

// TLSConfigs returns the TLS configurations of the listeners serving now
// (for server.days_until_first_cert_expiring).
func (m *Manager) TLSConfigs() []*tls.Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*tls.Config
	add := func(l *Listener) {
		for _, ch := range append(l.chains, l.defaultChain) {
			if ch != nil && ch.tls != nil {
				out = append(out, ch.tls)
			}
		}
	}
	for _, l := range m.static {
		add(l)
	}
	for _, e := range m.dyn {
		if e.active != nil {
			add(e.active)
		}
	}
	return out
}

// Listeners lists the static listeners in config order, then the active
// LDS listeners by name.
func (m *Manager) Listeners() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Status
	add := func(l *Listener) {
		addr := l.Address
		if a := l.Addr(); a != nil {
			addr = a.String()
		}
		out = append(out, Status{Name: l.Name, Address: addr, Config: l.pb})
	}
	for _, l := range m.static {
		add(l)
	}
	for _, name := range m.dynNames() {
		if l := m.dyn[name].active; l != nil {
			add(l)
		}
	}
	return out
}

func (m *Manager) dynNames() []string {
	names := make([]string, 0, len(m.dyn))
	for n := range m.dyn {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ConfigDump renders the listeners as Envoy's ListenersConfigDump: static
// ones, then each LDS listener's active, warming and (latest) draining
// version.
func (m *Manager) ConfigDump() *adminv3.ListenersConfigDump {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &adminv3.ListenersConfigDump{}
	for _, l := range m.static {
		a, err := anypb.New(l.pb)
		if err != nil {
			continue
		}
		out.StaticListeners = append(out.StaticListeners, &adminv3.ListenersConfigDump_StaticListener{
			Listener: a, LastUpdated: timestamppb.New(l.updated),
		})
	}
	state := func(l *Listener) *adminv3.ListenersConfigDump_DynamicListenerState {
		if l == nil {
			return nil
		}
		a, err := anypb.New(l.pb)
		if err != nil {
			return nil
		}
		return &adminv3.ListenersConfigDump_DynamicListenerState{
			VersionInfo: l.version, Listener: a, LastUpdated: timestamppb.New(l.updated),
		}
	}
	for _, name := range m.dynNames() {
		e := m.dyn[name]
		dl := &adminv3.ListenersConfigDump_DynamicListener{
			Name:         name,
			ActiveState:  state(e.active),
			WarmingState: state(e.warming),
		}
		if n := len(e.draining); n > 0 {
			dl.DrainingState = state(e.draining[n-1])
		}
		out.DynamicListeners = append(out.DynamicListeners, dl)
	}
	return out
}
