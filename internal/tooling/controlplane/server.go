// Package controlplane is legate-cp: a small xDS management server on
// go-control-plane's server and snapshot cache. It serves listeners, routes,
// clusters, load assignments and secrets from a directory of Envoy-format
// resource files (or an embedded default), plus a service registry whose
// services become EDS load assignments, and shows over HTTP what it serves
// and to whom.
package controlplane

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	cplog "github.com/envoyproxy/go-control-plane/pkg/log"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Options configure a Server. Zero values take the defaults noted.
type Options struct {
	XDSAddress  string // gRPC xDS; default 127.0.0.1:18000
	HTTPAddress string // registry and read-only API; default 127.0.0.1:18001
	// ResourcesDir, when set, replaces the embedded default with the
	// resource files in that directory, re-read when they change.
	ResourcesDir string
	// ListenPort is the embedded default listener's port; default 10000.
	ListenPort int
	// PollInterval is how often ResourcesDir is checked; default 1s.
	PollInterval time.Duration
	// ExpiryInterval is how often instance leases are checked; default 250ms.
	ExpiryInterval time.Duration
	Logger         *slog.Logger // default: discard
}

// Source names for the snapshot API.
const embeddedSource = "embedded default"

//go:embed default.yaml
var defaultTemplate string

// DefaultServices are the EDS clusters of the embedded default.
var DefaultServices = []string{"service1", "service2"}

// DefaultResources renders the embedded default resource file.
func DefaultResources(listenPort int) ([]byte, error) {
	t, err := template.New("default").Parse(defaultTemplate)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = t.Execute(&b, struct {
		ListenPort int
		Services   []string
	}{listenPort, DefaultServices})
	return b.Bytes(), err
}

// snapshotKey is the one cache key: every node gets the same snapshot.
const snapshotKey = "legate-cp"

// anyNode maps every node to snapshotKey.
type anyNode struct{}

func (anyNode) ID(*core.Node) string { return snapshotKey }

// served is what the server currently serves.
type served struct {
	Version  string
	Updated  time.Time
	Contents *Contents
	Snapshot *cache.Snapshot
}

// loadError is the last rejected change.
type loadError struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
}

// Server is a running legate-cp.
type Server struct {
	opts    Options
	log     *slog.Logger
	cache   cache.SnapshotCache
	reg     *Registry
	tracker *tracker
	grpc    *grpc.Server
	http    *http.Server
	xdsLn   net.Listener
	httpLn  net.Listener

	buildMu sync.Mutex // serializes rebuilds; guards set, ver, dirSum
	set     *ResourceSet
	ver     versioner
	dirSum  [32]byte

	current atomic.Pointer[served]
	lastErr atomic.Pointer[loadError]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errc   chan error
}

// Start loads the resources, binds both addresses and serves until Close or
// ctx ends. An invalid resource directory at start is an error; later, an
// invalid change is logged and the last good snapshot stays.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.XDSAddress == "" {
		o.XDSAddress = "127.0.0.1:18000"
	}
	if o.HTTPAddress == "" {
		o.HTTPAddress = "127.0.0.1:18001"
	}
	if o.ListenPort == 0 {
		o.ListenPort = 10000
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.ExpiryInterval <= 0 {
		o.ExpiryInterval = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{opts: o, log: o.Logger, tracker: newTracker(o.Logger), errc: make(chan error, 2)}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.cache = cache.NewSnapshotCache(false, anyNode{}, cpLogger{s.log})
	// The registry's changes publish synchronously, so a PUT that returns
	// is already in the snapshot.
	s.reg = NewRegistry(nil, func(reason string) { s.publish(reason) })

	set, sum, err := s.loadSource()
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.buildMu.Lock()
	s.set, s.dirSum = set, sum
	err = s.publishLocked("start")
	s.buildMu.Unlock()
	if err != nil {
		s.cancel()
		return nil, err
	}

	if s.xdsLn, err = net.Listen("tcp", o.XDSAddress); err != nil {
		s.cancel()
		return nil, fmt.Errorf("--xds-address: %w", err)
	}
	if s.httpLn, err = net.Listen("tcp", o.HTTPAddress); err != nil {
		s.xdsLn.Close()
		s.cancel()
		return nil, fmt.Errorf("--http-address: %w", err)
	}

	xds := serverv3.NewServer(s.ctx, HoldNACKs(s.cache, anyNode{}), s.tracker.callbacks())
	s.grpc = grpc.NewServer(
		// Close returns only once every stream handler (and so every
		// callback into the tracker) has finished.
		grpc.WaitForHandlers(true),
		// Proxies keep their streams open for days; let them ping, and
		// find dead peers ourselves.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
	)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(s.grpc, xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(s.grpc, xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(s.grpc, xds)
	routeservice.RegisterRouteDiscoveryServiceServer(s.grpc, xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(s.grpc, xds)
	secretservice.RegisterSecretDiscoveryServiceServer(s.grpc, xds)

	s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}

	s.goServe("xds", func() error { return s.grpc.Serve(s.xdsLn) })
	s.goServe("http", func() error {
		if err := s.http.Serve(s.httpLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	s.goLoop(o.ExpiryInterval, func() { s.reg.Expire() })
	if o.ResourcesDir != "" {
		s.goLoop(o.PollInterval, s.reloadIfChanged)
	}
	s.log.Info("legate-cp serving", "xds", s.xdsLn.Addr().String(), "http", s.httpLn.Addr().String(), "resources", s.source())
	return s, nil
}

func (s *Server) goServe(name string, f func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// After Close, Serve's error (e.g. grpc.ErrServerStopped when Close
		// won the race with Serve starting) is not a failure.
		if err := f(); err != nil && s.ctx.Err() == nil {
			s.errc <- fmt.Errorf("%s server: %w", name, err)
			s.cancel()
		}
	}()
}

func (s *Server) goLoop(every time.Duration, f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	}()
}

// XDSAddr and HTTPAddr are the bound addresses.
func (s *Server) XDSAddr() net.Addr  { return s.xdsLn.Addr() }
func (s *Server) HTTPAddr() net.Addr { return s.httpLn.Addr() }

// Registry is the server's service registry.
func (s *Server) Registry() *Registry { return s.reg }

// Version is the version of the snapshot being served.
func (s *Server) Version() string { return s.current.Load().Version }

// Done is closed when the server stops (Close, ctx, or a listener failing).
func (s *Server) Done() <-chan struct{} { return s.ctx.Done() }

// Close stops serving. Open xDS streams are cut: proxies keep their last
// good config and reconnect.
func (s *Server) Close() error {
	s.cancel()
	s.grpc.Stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(shutdownCtx)
	s.wg.Wait()
	select {
	case err := <-s.errc:
		return err
	default:
		return nil
	}
}

func (s *Server) source() string {
	if s.opts.ResourcesDir == "" {
		return embeddedSource
	}
	return s.opts.ResourcesDir
}

// loadSource reads the resource directory, or renders the default.
func (s *Server) loadSource() (*ResourceSet, [32]byte, error) {
	if s.opts.ResourcesDir == "" {
		data, err := DefaultResources(s.opts.ListenPort)
		if err != nil {
			return nil, [32]byte{}, err
		}
		rs, err := DecodeFile("default.yaml", data)
		if err != nil {
			return nil, [32]byte{}, fmt.Errorf("embedded default: %w", err)
		}
		set := &ResourceSet{Files: []string{"(embedded) default.yaml"}}
		for _, r := range rs {
			set.add(r)
		}
		return set, sha256.Sum256(data), nil
	}
	sum, err := dirSum(s.opts.ResourcesDir)
	if err != nil {
		return nil, sum, err
	}
	set, err := LoadDir(s.opts.ResourcesDir)
	return set, sum, err
}

// dirSum digests the names and contents of a directory's resource files:
// polling contents rather than mtimes also catches an edit within the
// file system's timestamp granularity.
func dirSum(dir string) ([32]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return [32]byte{}, fmt.Errorf("resource directory: %w", err)
	}
	h := sha256.New()
	for _, e := range entries {
		if e.IsDir() || !isResourceFile(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return [32]byte{}, err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", e.Name(), len(data))
		h.Write(data)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// reloadIfChanged re-reads the directory when its files changed and
// publishes it if it is valid.
func (s *Server) reloadIfChanged() {
	sum, err := dirSum(s.opts.ResourcesDir)
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	if err == nil && sum == s.dirSum {
		return
	}
	if err != nil {
		s.reject(err)
		return
	}
	s.dirSum = sum
	set, err := LoadDir(s.opts.ResourcesDir)
	if err != nil {
		s.reject(err)
		return
	}
	prev, prevErr := s.set, s.lastErr.Load()
	s.set = set
	// The directory is good again: cleared before the snapshot is sent, so
	// that a proxy holding the new version never sees the old error.
	s.lastErr.Store(nil)
	if err := s.publishLocked("resource files changed"); err != nil {
		s.set = prev
		s.lastErr.Store(prevErr)
		s.reject(err)
	}
}

// reject logs a refused change; the last good snapshot keeps serving.
func (s *Server) reject(err error) {
	if prev := s.lastErr.Load(); prev != nil && prev.Error == err.Error() {
		return // e.g. a missing directory, seen again at every poll
	}
	s.lastErr.Store(&loadError{At: time.Now(), Error: err.Error()})
	s.log.Error("resources rejected; still serving the last good snapshot",
		"version", s.Version(), "error", strings.ReplaceAll(err.Error(), "\n", "; "))
}

// publish rebuilds the snapshot after a registry change.
func (s *Server) publish(reason string) {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	if s.set == nil {
		return // still starting; the first publish includes the change
	}
	if err := s.publishLocked(reason); err != nil {
		s.reject(err)
	}
}

func (s *Server) publishLocked(reason string) error {
	contents, err := Build(s.set, s.reg)
	if err != nil {
		return err
	}
	snap, version, err := s.ver.next(contents)
	if err != nil {
		return err
	}
	if snap == nil {
		s.log.Debug("no change to push", "reason", reason)
		return nil
	}
	// Recorded before it is sent, so that the API never shows an older
	// version than a proxy already has.
	s.current.Store(&served{Version: version, Updated: time.Now(), Contents: contents, Snapshot: snap})
	// The cache holds the snapshot even when it fails to answer a watch
	// (only when stopping): nothing to undo.
	if err := s.cache.SetSnapshot(s.ctx, snapshotKey, snap); err != nil {
		s.log.Warn("pushing the snapshot", "version", version, "error", err)
	}
	args := []any{"reason", reason}
	for _, t := range []resource.Type{resource.ListenerType, resource.ClusterType, resource.RouteType, resource.EndpointType, resource.SecretType} {
		args = append(args, shortNames[t], len(contents.Resources[t]))
	}
	s.log.Info(fmt.Sprintf("pushed version %s to %d nodes", version, s.tracker.connected()), args...)
	return nil
}

// cpLogger sends go-control-plane's logging to slog; its info messages are
// per-request chatter, so they go to debug.
type cpLogger struct{ l *slog.Logger }

func (c cpLogger) Debugf(f string, a ...any) { c.l.Debug(fmt.Sprintf(f, a...)) }
func (c cpLogger) Infof(f string, a ...any)  { c.l.Debug(fmt.Sprintf(f, a...)) }
func (c cpLogger) Warnf(f string, a ...any)  { c.l.Warn(fmt.Sprintf(f, a...)) }
func (c cpLogger) Errorf(f string, a ...any) { c.l.Error(fmt.Sprintf(f, a...)) }

var _ cplog.Logger = cpLogger{}
