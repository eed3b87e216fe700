// Package server builds a running proxy from a bootstrap and owns its
// lifecycle: clusters first, then listeners, then serving; on shutdown it
// stops accepting, drains in-flight requests within the drain time, and
// closes upstream pools.
package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/legate-proxy/legate/internal/memory"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"github.com/legate-proxy/legate/internal/accesslog"
	"github.com/legate-proxy/legate/internal/bootstrap"
	"github.com/legate-proxy/legate/internal/listener"
	"github.com/legate-proxy/legate/internal/logging"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/overload"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/stats/sink"
	"github.com/legate-proxy/legate/internal/tlscontext"
	"github.com/legate-proxy/legate/internal/tracing"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/upstream/connpool"
	"github.com/legate-proxy/legate/internal/xds"
	"github.com/legate-proxy/legate/internal/xds/rds"

	// Extensions register themselves by config type.
	_ "github.com/legate-proxy/legate/internal/filter/http/router"
	_ "github.com/legate-proxy/legate/internal/filter/network/http_connection_manager"
	_ "github.com/legate-proxy/legate/internal/filter/network/tcp_proxy"
)

// State is the server's life stage, as /server_info reports it.
type State int32

const (
	PreInitializing State = iota
	Live
	Draining
)

func (s State) String() string {
	switch s {
	case Live:
		return "LIVE"
	case Draining:
		return "DRAINING"
	}
	return "PRE_INITIALIZING"
}

// spanRingSize is how many recent spans the dashboard can show.
const spanRingSize = 2000

// Options configure a server.
type Options struct {
	Bootstrap      *bootstrapv3.Bootstrap
	ServiceNode    string // overrides node.id
	ServiceCluster string // overrides node.cluster
	DrainTime      time.Duration
	Concurrency    int
	Logger         *slog.Logger
	LogLevel       *slog.LevelVar
	// LogLevels, if set, are the component loggers' levels that /logging
	// lists and changes (LogLevel is then "main"'s).
	LogLevels *logging.Levels
	// ReopenLog, if set, reopens the --log-path file on SIGUSR1 and POST
	// /reopen_logs, with the access logs.
	ReopenLog func() error
	// CommandLine is what /server_info reports of the command line beyond
	// the fields above (mode, restart epoch, log path, ...).
	CommandLine *adminv3.CommandLineOptions
	// ServiceZone overrides node.locality.zone (--service-zone).
	ServiceZone string
	// InitTimeout bounds the wait for clusters' first DNS resolution.
	InitTimeout time.Duration
}

// Server is a built proxy.
type Server struct {
	opts         Options
	logger       *slog.Logger
	store        *stats.Store
	tags         *stats.TagExtractor
	files        *accesslog.FileManager // shared by every access log
	flusher      *sink.Flusher          // nil without stats_sinks
	spans        *tracing.Ring          // recent spans, for the dashboard
	runtime      *runtime.Snapshot      // layered_runtime (RTDS layers update it)
	atShutdown   []func()               // run after listeners drain
	clusters     *cluster.Manager
	routes       *rds.Manager
	dynamic      *dynamicConfig // nil without dynamic_resources
	listeners    *listener.Manager
	overload     *overload.Manager
	admin        *adminServer
	start        time.Time
	state        atomic.Int32
	healthFailed atomic.Bool // set by POST /healthcheck/fail
	quit         chan struct{}
	quitOnce     atomic.Bool
	nodeID       string
	nodeClstr    string
}

// New builds everything from the bootstrap; it binds nothing, so it is also
// what --mode validate runs.
func New(opts Options) (*Server, error) {
	bs := opts.Bootstrap
	s := &Server{opts: opts, logger: opts.Logger, start: time.Now(), quit: make(chan struct{})}
	if s.logger == nil {
		s.logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	var errs []error
	var err error
	s.store, s.tags, err = stats.NewStoreFromConfig(bs.GetStatsConfig())
	if err != nil {
		// Keep building with defaults so every other problem is reported too.
		errs = append(errs, fmt.Errorf("stats_config: %w", err))
		s.store, s.tags = stats.NewStore(), stats.NewTagExtractor()
	}
	s.files = accesslog.NewFileManager(s.store, s.logger)
	s.spans = tracing.NewRing(spanRingSize)
	s.nodeID, s.nodeClstr = bs.GetNode().GetId(), bs.GetNode().GetCluster()
	if opts.ServiceNode != "" {
		s.nodeID = opts.ServiceNode
	}
	if opts.ServiceCluster != "" {
		s.nodeClstr = opts.ServiceCluster
	}

	rt, err := runtime.New(bs.GetLayeredRuntime().GetLayers())
	if err != nil {
		errs = append(errs, fmt.Errorf("layered_runtime: %w", err))
	}
	s.runtime = rt

	// The xDS client dials through the cluster manager, and the cluster
	// manager subscribes to EDS through the client: the manager gets a
	// subscriber that forwards to the client once it exists. Without
	// dynamic_resources there is no subscriber at all, so an EDS, RDS or
	// SDS reference is a config error.
	var sub xds.Subscriber
	late := &lateSubscriber{}
	if bs.GetDynamicResources() != nil {
		sub = late
	}
	if secrets := bs.GetStaticResources().GetSecrets(); len(secrets) > 0 {
		// Name-only SDS references resolve against static secrets.
		if withStatic, err := tlscontext.StaticSecrets(secrets, sub); err != nil {
			errs = append(errs, err)
		} else {
			sub = withStatic
		}
	}
	s.clusters, err = cluster.NewManager(bs.GetStaticResources().GetClusters(), cluster.Options{
		Stats:  s.store,
		Logger: s.logger.With(logging.ComponentKey, "upstream"),
		XDS:    sub,
		Pools:  connpool.Factories(),
	})
	if err != nil {
		// The manager keeps the clusters that built, so the listeners are
		// still checked and one run reports every problem.
		for _, e := range bootstrap.Flatten(err) {
			errs = append(errs, fmt.Errorf("static_resources.%w", e))
		}
	}
	errs = append(errs, s.checkClusterManager(bs)...)
	if s.dynamic, err = s.newDynamicConfig(bs); err != nil {
		errs = append(errs, err)
	} else if s.dynamic != nil {
		late.set(s.dynamic.subscriber)
	} else if rt != nil && len(rt.RTDSLayers()) > 0 {
		errs = append(errs, errors.New("layered_runtime: an rtds_layer needs dynamic_resources, and the bootstrap has none"))
	}
	s.routes = rds.NewManager(sub, s.store, s.clusters, s.logger)
	s.routes.Runtime = rt
	if s.flusher, err = sink.FromBootstrap(bs, s.store, s.tags, sink.ClustersFor(s.clusters, s.nodeID, s.nodeClstr)); err != nil {
		errs = append(errs, err)
	}

	ov, err := overload.New(bs.GetOverloadManager(), s.store, s.logger)
	if err != nil {
		errs = append(errs, err)
		ov, _ = overload.New(nil, s.store, s.logger)
	}
	s.overload = ov
	limits := &listener.Limits{Overload: ov.State}
	// The downstream connections monitor, else Envoy's deprecated runtime
	// key, bounds all listeners' connections together.
	if ov.State.MaxConnections > 0 {
		limits.Max.Store(ov.State.MaxConnections)
	} else if rt != nil {
		limits.Max.Store(rt.Uint("overload.global_downstream_max_connections", 0))
	}
	ov.OpenConnections = limits.Open.Load

	fc := &networkfilter.FactoryContext{
		Clusters: s.clusters, Stats: s.store, Runtime: rt, Logger: s.logger.With(logging.ComponentKey, "filter"),
		NodeID: s.nodeID, ClusterName: s.nodeClstr, HealthFailed: &s.healthFailed,
		AccessLogFiles: s.files,
		Spans:          s.spans,
		AtShutdown:     func(f func()) { s.atShutdown = append(s.atShutdown, f) },
		Routes:         s.routes,
		Overload:       ov.State,
	}
	s.listeners = listener.NewManager(listener.ManagerOptions{
		Limits:     limits,
		Factory:    *fc,
		Subscriber: sub,
		DrainTime:  opts.DrainTime,
		Stats:      s.store,
		Logger:     s.logger.With(logging.ComponentKey, "config"),
	})
	if err := s.listeners.AddStatic(bs.GetStaticResources().GetListeners()); err != nil {
		errs = append(errs, err)
	}
	if err := s.buildAdmin(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		s.Close()
		return nil, bootstrap.Flatten(errors.Join(errs...))
	}
	s.store.Gauge("listener_manager.workers_started", stats.NeverImport)
	return s, nil
}

// checkClusterManager applies bootstrap.cluster_manager: the local
// cluster must be a static cluster, as in Envoy; the outlier event log is
// created (Legate has no outlier detection yet, so it stays empty).
func (s *Server) checkClusterManager(bs *bootstrapv3.Bootstrap) []error {
	cm := bs.GetClusterManager()
	var errs []error
	if name := cm.GetLocalClusterName(); name != "" {
		found := false
		for _, c := range bs.GetStaticResources().GetClusters() {
			found = found || c.GetName() == name
		}
		if !found {
			errs = append(errs, fmt.Errorf("cluster_manager.local_cluster_name: local cluster %q must be defined in static_resources.clusters", name))
		}
	}
	if p := cm.GetOutlierDetection().GetEventLogPath(); p != "" {
		if _, err := s.files.Writer(p); err != nil {
			errs = append(errs, fmt.Errorf("cluster_manager.outlier_detection.event_log_path: %w", err))
		}
	}
	return errs
}

// Run binds the admin and the listeners, serves until ctx is cancelled or
// /quitquitquit is posted, then drains and returns.
func (s *Server) Run(ctx context.Context) error {
	if err := s.bindAdmin(); err != nil {
		return err
	}
	s.clusters.Start(ctx)
	go s.overload.Run(ctx)
	if s.dynamic != nil {
		// Static EDS clusters and the first CDS response need the client
		// running before anything waits on them.
		s.dynamic.client.Start(ctx)
	}
	initTimeout := s.opts.InitTimeout
	if initTimeout == 0 {
		initTimeout = 30 * time.Second
	}
	select {
	case <-s.clusters.Initialized():
	case <-time.After(initTimeout):
		s.logger.Warn("clusters did not finish initializing; starting listeners anyway", "timeout", initTimeout)
	case <-ctx.Done():
		s.shutdownAdmin()
		s.Close()
		return nil
	}
	if err := s.initializeDynamic(ctx, initTimeout); err != nil {
		s.shutdownAdmin()
		s.Close()
		return err
	}
	if err := s.listeners.Start(ctx); err != nil {
		s.shutdownAdmin()
		s.Close()
		return err
	}
	// Envoy's gauge for "listeners are running on the workers" (0 until now).
	s.store.Gauge("listener_manager.workers_started", stats.NeverImport).Set(1)
	flushDone := make(chan struct{})
	flushCtx, stopFlush := context.WithCancel(context.Background())
	if s.flusher != nil {
		go func() { defer close(flushDone); s.flusher.Run(flushCtx) }()
	} else {
		close(flushDone)
	}
	reopen := make(chan os.Signal, 1)
	signal.Notify(reopen, syscall.SIGUSR1)
	defer signal.Stop(reopen)
	go s.reopenOnSignal(reopen, flushCtx)
	go memory.Releaser(flushCtx)
	select {
	case <-s.listeners.StaticWarmed():
	case <-time.After(initTimeout):
		s.logger.Warn("static listeners did not finish warming; going live anyway", "timeout", initTimeout)
	case <-ctx.Done():
	case <-s.quit:
	}
	s.state.Store(int32(Live))
	s.logger.Info("all listeners started; server is live")

	select {
	case <-ctx.Done():
	case <-s.quit:
	}
	s.drain()
	// The last stats flush and the end of SIGUSR1 handling come before
	// clusters and files close: a tcp_cluster_name sink still dials, and
	// no reopen races the files' Close.
	stopFlush() // the flusher sends a last flush before it returns
	<-flushDone
	s.shutdownAdmin()
	s.Close()
	s.logger.Info("shutdown complete")
	return nil
}

// reopenOnSignal reopens access log files on SIGUSR1, as Envoy does, for
// log rotation without the admin endpoint.
func (s *Server) reopenOnSignal(sig <-chan os.Signal, ctx context.Context) {
	for {
		select {
		case <-sig:
			if err := s.reopenLogs(); err != nil {
				s.logger.Warn("reopening access logs", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// reopenLogs reopens the access logs and the --log-path file.
func (s *Server) reopenLogs() error {
	err := s.files.Reopen()
	if s.opts.ReopenLog != nil {
		err = errors.Join(err, s.opts.ReopenLog())
	}
	return err
}

// drain stops accepting, asks connections to finish their in-flight
// requests, and waits for them up to the drain time.
func (s *Server) drain() {
	s.state.Store(int32(Draining))
	s.logger.Info("draining", "drain_time", s.opts.DrainTime)
	s.listeners.StopListening()
	dt := s.opts.DrainTime
	if dt <= 0 {
		dt = 600 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), dt)
	defer cancel()
	s.listeners.Wait(ctx)
}

// Quit asks Run to drain and return (POST /quitquitquit).
func (s *Server) Quit() {
	if s.quitOnce.CompareAndSwap(false, true) {
		close(s.quit)
	}
}

// State reports the life stage.
func (s *Server) State() State { return State(s.state.Load()) }

// ListenerAddrs returns the bound address of each active listener by name.
func (s *Server) ListenerAddrs() map[string]net.Addr { return s.listeners.Addrs() }

// Stats returns the stats store.
func (s *Server) Stats() *stats.Store { return s.store }
