package client

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/xds"
)

// feed is one source of resources: the ADS stream, one per-type gRPC
// stream, or one watched file.
type feed struct {
	c    *Client
	name string // for logs
	grpc *grpcTarget
	ads  bool   // the shared ADS stream
	path string // file feeds
	dir  string // path_config_source.watched_directory

	// wake is poked when the set of watches changes, so a gRPC feed sends
	// the new subscription.
	wake chan struct{}

	// mu guards types and everything in them except what deliverMu guards.
	mu    sync.Mutex
	types map[string]*typeState
	order []*typeState // in creation order

	// deliverMu serializes calls to watchers: a watch's calls never
	// overlap, and a response is delivered whole before the next.
	deliverMu sync.Mutex
}

// typeState is one resource type on one feed.
type typeState struct {
	typeURL string
	// wildcardType: LDS and CDS, where a SotW response is the whole set
	// and omission means deletion.
	wildcardType bool

	watches  []*watch
	wildcard int            // wildcard watches open
	names    map[string]int // named watches open, by resource name

	cache    map[string]*cached // accepted resources
	version  string             // last accepted version_info / system_version_info
	received bool               // a response has been accepted

	// gRPC protocol state, touched only by the feed's goroutine.
	nonce     string              // last nonce received
	sent      bool                // a request went out on the current stream
	sentWild  bool                // what it asked for
	sentNames map[string]struct{} //
}

type cached struct {
	version string
	msg     proto.Message
	updated time.Time
}

// watch is one Subscribe.
type watch struct {
	w       xds.Watch
	ts      *typeState
	stats   *scopeStats
	timeout time.Duration

	cancelled atomic.Bool
	timer     *time.Timer // guarded by feed.mu

	// Guarded by feed.deliverMu.
	needInit bool // owes the watcher the cached state
	got      bool // the watcher has been called (stops initial_fetch_timeout)
}

func (c *Client) newFeed(name string) *feed {
	return &feed{c: c, name: name, wake: make(chan struct{}, 1), types: make(map[string]*typeState)}
}

// newGRPCFeed makes a gRPC feed; typeURL is its one type, or "" for ADS.
// c.mu is held.
func (c *Client) newGRPCFeed(name string, t *grpcTarget, typeURL string) *feed {
	c.controlPlaneLocked()
	f := c.newFeed(name)
	f.grpc = t
	if typeURL == "" {
		f.ads = true
	} else {
		f.typeLocked(typeURL)
	}
	return f
}

func (c *Client) newFileFeed(path, dir, typeURL string) *feed {
	f := c.newFeed("file " + path)
	f.path, f.dir = path, dir
	f.typeLocked(typeURL)
	return f
}

func (f *feed) run(ctx context.Context) {
	if f.grpc != nil {
		f.runGRPC(ctx)
	} else {
		f.runFile(ctx)
	}
}

func isWildcardType(typeURL string) bool {
	return typeURL == xds.ListenerType || typeURL == xds.ClusterType
}

// typeLocked returns the state for typeURL, creating it; f.mu is held.
func (f *feed) typeLocked(typeURL string) *typeState {
	ts := f.types[typeURL]
	if ts == nil {
		ts = &typeState{
			typeURL:      typeURL,
			wildcardType: isWildcardType(typeURL),
			names:        make(map[string]int),
			cache:        make(map[string]*cached),
		}
		f.types[typeURL] = ts
		f.order = append(f.order, ts)
	}
	return ts
}

func (f *feed) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *feed) add(w *watch) {
	f.mu.Lock()
	ts := f.typeLocked(w.w.TypeURL)
	w.ts = ts
	ts.watches = append(ts.watches, w)
	if w.w.Name == "" {
		ts.wildcard++
	} else {
		ts.names[w.w.Name]++
	}
	owes := ts.received
	// Set before the watch is visible to a delivery (which snapshots
	// under f.mu); from then on deliverMu guards it.
	w.needInit = owes
	f.mu.Unlock()
	f.poke()
	if owes && f.c.enter() {
		// Deliver what is cached on another goroutine: Subscribe may be
		// called from inside a delivery, which holds deliverMu.
		go func() {
			defer f.c.wg.Done()
			f.deliverMu.Lock()
			defer f.deliverMu.Unlock()
			f.initDeliver(w, true)
		}()
	}
}

func (f *feed) remove(w *watch) {
	if w.cancelled.Swap(true) {
		return
	}
	f.mu.Lock()
	ts := w.ts
	if i := slices.Index(ts.watches, w); i >= 0 {
		ts.watches = slices.Delete(ts.watches, i, i+1)
	}
	if w.w.Name == "" {
		ts.wildcard--
		if ts.wildcard == 0 && !ts.wildcardType {
			for n := range ts.cache {
				if ts.names[n] == 0 {
					delete(ts.cache, n)
				}
			}
		}
	} else if ts.names[w.w.Name]--; ts.names[w.w.Name] <= 0 {
		delete(ts.names, w.w.Name)
		// Nothing watches it any more: forget it, as Envoy does, so a
		// later watch waits for the server rather than a stale copy.
		if ts.wildcard == 0 {
			delete(ts.cache, w.w.Name)
		}
	}
	if w.timer != nil {
		w.timer.Stop()
	}
	f.mu.Unlock()
	f.poke()
}

// armTimers starts initial_fetch_timeout for every watch (at Start).
func (f *feed) armTimers() {
	f.mu.Lock()
	var ws []*watch
	for _, ts := range f.order {
		ws = append(ws, ts.watches...)
	}
	f.mu.Unlock()
	for _, w := range ws {
		f.armTimer(w)
	}
}

func (f *feed) armTimer(w *watch) {
	if w.timeout <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if w.timer != nil || w.cancelled.Load() {
		return
	}
	w.timer = time.AfterFunc(w.timeout, func() {
		if !f.c.enter() {
			return
		}
		defer f.c.wg.Done()
		f.deliverMu.Lock()
		defer f.deliverMu.Unlock()
		if w.got || w.cancelled.Load() {
			return
		}
		w.got = true
		if w.stats != nil {
			w.stats.initTimeout.Inc()
		}
		f.c.log.Warn("xds initial fetch timed out", "source", f.name, "type", w.w.TypeURL, "name", w.w.Name, "timeout", w.timeout)
		_ = w.w.Watcher.Update(&xds.Update{InitialFetchTimeout: true})
	})
}

func (f *feed) stopTimers() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ts := range f.order {
		for _, w := range ts.watches {
			if w.timer != nil {
				w.timer.Stop()
			}
		}
	}
}

// call hands u to w's watcher; deliverMu is held.
func (f *feed) call(w *watch, u *xds.Update) error {
	if !w.got {
		w.got = true
		f.mu.Lock()
		if w.timer != nil {
			w.timer.Stop()
		}
		f.mu.Unlock()
	}
	return w.w.Watcher.Update(u)
}

// initDeliver gives a watch opened after resources arrived what is cached.
// deliverMu is held. onlyIfOwed skips watches already brought up to date.
func (f *feed) initDeliver(w *watch, onlyIfOwed bool) {
	if onlyIfOwed && !w.needInit {
		return
	}
	w.needInit = false
	if w.cancelled.Load() {
		return
	}
	f.mu.Lock()
	ts := w.ts
	if !ts.received {
		f.mu.Unlock()
		return
	}
	u := &xds.Update{Version: ts.version, Full: true}
	if w.w.Name == "" {
		for n, c := range ts.cache {
			u.Resources = append(u.Resources, xds.Resource{Name: n, Version: c.version, Message: c.msg})
		}
		slices.SortFunc(u.Resources, func(a, b xds.Resource) int { return strings.Compare(a.Name, b.Name) })
	} else if c := ts.cache[w.w.Name]; c != nil {
		u.Resources = []xds.Resource{{Name: w.w.Name, Version: c.version, Message: c.msg}}
	} else {
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	if err := f.call(w, u); err != nil {
		if w.stats != nil {
			w.stats.rejected.Inc()
		}
		f.c.log.Warn("xds cached resources rejected by a new watch", "source", f.name, "type", ts.typeURL, "name", w.w.Name, "error", err)
	}
}

// snapshot returns the live watches of ts.
func (f *feed) snapshot(ts *typeState) []*watch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(ts.watches)
}

// catchUp brings watches not covered by the last delivery (opened while it
// ran, or owed the cache) up to date; deliverMu is held.
func (f *feed) catchUp(ts *typeState, handled []*watch) {
	for _, w := range f.snapshot(ts) {
		if w.needInit || !slices.Contains(handled, w) {
			f.initDeliver(w, false)
		}
	}
}

// reject counts a response that could not be decoded against every scope
// of the type.
func (f *feed) reject(ts *typeState) {
	var ss scopeSet
	for _, w := range f.snapshot(ts) {
		ss.add(w.stats)
	}
	for _, s := range ss {
		s.attempt.Inc()
		s.rejected.Inc()
	}
}

// failure counts a stream failure against every scope on the feed.
func (f *feed) failure() {
	var ss scopeSet
	f.mu.Lock()
	for _, ts := range f.order {
		for _, w := range ts.watches {
			ss.add(w.stats)
		}
	}
	f.mu.Unlock()
	for _, s := range ss {
		s.failure.Inc()
	}
}

// applySotw decodes and delivers a state-of-the-world response (or a
// file's content); deliverMu is held. An error means it was refused.
func (f *feed) applySotw(ts *typeState, version string, list []*anypb.Any) error {
	res, err := decodeSotw(ts.typeURL, version, list)
	if err != nil {
		f.reject(ts)
		return err
	}
	return f.deliverSotw(ts, version, res)
}

// deliverSotw delivers a state-of-the-world response (or a file's
// content); deliverMu is held. A non-nil error means it was refused and
// nothing was recorded.
func (f *feed) deliverSotw(ts *typeState, version string, res []xds.Resource) error {
	ws := f.snapshot(ts)
	f.mu.Lock()
	prev := make(map[string]bool, len(ts.cache))
	for n := range ts.cache {
		prev[n] = true
	}
	f.mu.Unlock()
	byName := make(map[string]int, len(res))
	for i, r := range res {
		byName[r.Name] = i
	}
	var removed []string
	if ts.wildcardType {
		for n := range prev {
			if _, ok := byName[n]; !ok {
				removed = append(removed, n)
			}
		}
		slices.Sort(removed)
	}
	ss, err := f.deliver(ws, func(w *watch) *xds.Update {
		if w.w.Name == "" {
			return &xds.Update{Version: version, Resources: res, Removed: removed, Full: true}
		}
		if i, ok := byName[w.w.Name]; ok {
			return &xds.Update{Version: version, Resources: []xds.Resource{res[i]}, Full: true}
		}
		if slices.Contains(removed, w.w.Name) {
			return &xds.Update{Version: version, Removed: []string{w.w.Name}, Full: true}
		}
		return nil // Envoy keeps the last value of a named resource not sent
	})
	if err != nil {
		f.catchUp(ts, ws)
		return err
	}
	now := time.Now()
	f.mu.Lock()
	if ts.wildcardType {
		clear(ts.cache)
	}
	for _, r := range res {
		if ts.wildcardType || ts.wildcard > 0 || ts.names[r.Name] > 0 {
			ts.cache[r.Name] = &cached{version: r.Version, msg: r.Message, updated: now}
		}
	}
	ts.version, ts.received = version, true
	f.mu.Unlock()
	accept(ss, version, len(res) == 0 && len(removed) == 0, now)
	f.catchUp(ts, ws)
	return nil
}

// deliverDelta delivers an incremental response; deliverMu is held.
func (f *feed) deliverDelta(ts *typeState, version string, res []xds.Resource, removed []string) error {
	ws := f.snapshot(ts)
	byName := make(map[string]int, len(res))
	for i, r := range res {
		byName[r.Name] = i
	}
	ss, err := f.deliver(ws, func(w *watch) *xds.Update {
		if w.w.Name == "" {
			return &xds.Update{Version: version, Resources: res, Removed: removed}
		}
		if i, ok := byName[w.w.Name]; ok {
			return &xds.Update{Version: version, Resources: []xds.Resource{res[i]}}
		}
		if slices.Contains(removed, w.w.Name) {
			return &xds.Update{Version: version, Removed: []string{w.w.Name}}
		}
		return nil
	})
	if err != nil {
		f.catchUp(ts, ws)
		return err
	}
	now := time.Now()
	f.mu.Lock()
	for _, r := range res {
		if ts.wildcard > 0 || ts.names[r.Name] > 0 {
			ts.cache[r.Name] = &cached{version: r.Version, msg: r.Message, updated: now}
		}
	}
	for _, n := range removed {
		delete(ts.cache, n)
	}
	ts.version, ts.received = version, true
	f.mu.Unlock()
	accept(ss, version, len(res) == 0 && len(removed) == 0, now)
	f.catchUp(ts, ws)
	return nil
}

// deliver calls every watch build gives an update for; on refusal it counts
// update_rejected. The success stats are left to the caller (accept), after
// it has recorded the resources, so that stats never run ahead of Resources.
func (f *feed) deliver(ws []*watch, build func(*watch) *xds.Update) (scopeSet, error) {
	var errs []error
	var ss scopeSet
	for _, w := range ws {
		if w.needInit || w.cancelled.Load() {
			continue // brought up to date from the cache afterwards
		}
		u := build(w)
		if u == nil {
			continue
		}
		ss.add(w.stats)
		if err := f.call(w, u); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range ss {
		s.attempt.Inc()
	}
	if len(errs) > 0 {
		for _, s := range ss {
			s.rejected.Inc()
		}
		return nil, errors.Join(errs...)
	}
	return ss, nil
}

func accept(ss scopeSet, version string, empty bool, now time.Time) {
	for _, s := range ss {
		s.accepted(version, now)
		if empty {
			s.empty.Inc()
		}
	}
}

// accepted lists ts's cache for typeURL.
func (f *feed) accepted(typeURL string) []Accepted {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := f.types[typeURL]
	if ts == nil {
		return nil
	}
	out := make([]Accepted, 0, len(ts.cache))
	for n, c := range ts.cache {
		out = append(out, Accepted{Name: n, Version: c.version, LastUpdated: c.updated, Message: c.msg})
	}
	return out
}

// desired is what ts should ask for: wildcard, or the sorted names.
func (f *feed) desired(ts *typeState) (wild bool, names []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ts.wildcard > 0 {
		return true, nil
	}
	for n := range ts.names {
		names = append(names, n)
	}
	slices.Sort(names)
	return false, names
}
