package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/internal/accesslog"
	"github.com/legate-proxy/legate/internal/admin"
	"github.com/legate-proxy/legate/internal/admin/dashboard"
	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/logging"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/tlscontext"
	"github.com/legate-proxy/legate/internal/version"
)

// adminServer is the admin listener and its handler.
type adminServer struct {
	address string // "" when the bootstrap has no admin
	handler http.Handler
	ln      net.Listener
	cancel  context.CancelFunc
	done    chan struct{}
	stats   *stats.ServerStats
	dash    *dashboard.Dashboard
}

func (s *Server) buildAdmin() error {
	ss := stats.NewServerStats(s.store, s.start)
	ss.Concurrency.Set(int64(s.opts.Concurrency))
	ss.FirstCertExpiry = s.firstCertExpiry
	s.admin = &adminServer{stats: ss}
	if s.flusher != nil {
		// Sinks get current server.* gauges even without an admin address.
		s.flusher.BeforeFlush = ss.Refresh
		s.flusher.Logger = s.logger
	}
	ab := s.opts.Bootstrap.GetAdmin()
	if sa := ab.GetAddress().GetSocketAddress(); sa != nil {
		s.admin.address = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
	} else if ab.GetAddress() != nil {
		return fmt.Errorf("admin.address: only socket_address is supported")
	}
	s.admin.dash = dashboard.New(dashboard.Deps{
		Store:     s.store,
		Clusters:  dashboard.FromClusterManager(s.clusters),
		Listeners: func() []dashboard.ListenerView { return dashboard.ListenerViews(s.activeListeners()) },
		Ring:      s.spans,
		Start:     s.start,
	})
	profilePath := ab.GetProfilePath()
	if profilePath == "" {
		profilePath = "/var/log/envoy/envoy.prof" // Envoy's default
	}
	handler := admin.New(admin.Deps{
		ProfilePath: profilePath,
		Dashboard:   s.admin.dash.Handler(),
		Store:       s.store,
		Tags:        s.tags,
		ReopenLogs:  s.reopenLogs,
		ServerStats: ss,
		State:       s.adminState,
		StartTime:   s.start,
		Clusters: func(w io.Writer, json bool) {
			if json {
				s.clusters.WriteJSON(w)
			} else {
				s.clusters.WriteText(w)
			}
		},
		Listeners:       s.writeListeners,
		ConfigDump:      func(includeEDS bool) (proto.Message, error) { return s.ConfigDump(includeEDS) },
		ServerInfo:      s.serverInfo,
		SetHealthFailed: s.healthFailed.Store,
		Quit:            s.Quit,
		SetLogLevel:     s.setLogLevel,
		Loggers: func() []admin.Logger {
			if lv := s.opts.LogLevels; lv != nil {
				var out []admin.Logger
				for _, n := range lv.Names() {
					out = append(out, admin.Logger{Name: n, Level: logging.LevelName(lv.Level(n))})
				}
				return out
			}
			return []admin.Logger{{Name: "legate", Level: logging.LevelName(s.opts.LogLevel.Level())}}
		},
	})
	//lint:ignore SA1019 admin.access_log_path is deprecated but real configs (Envoy's own examples) still use it.
	if p := ab.GetAccessLogPath(); p != "" && p != os.DevNull {
		// Through the access logs' files: buffered, reopened by
		// /reopen_logs and SIGUSR1, closed with them.
		w, err := s.files.Writer(p)
		if err != nil {
			return fmt.Errorf("admin.access_log_path: %w", err)
		}
		handler = accessLogged(handler, w)
	}
	if pbs := ab.GetAccessLog(); len(pbs) > 0 {
		logs, err := accesslog.New(pbs, accesslog.Deps{Stats: s.store, Files: s.files, Logger: s.logger})
		if err != nil {
			return fmt.Errorf("admin.%w", err)
		}
		handler = adminAccessLogged(handler, logs)
	}
	s.admin.handler = handler
	return nil
}

// adminAccessLogged logs each admin request to admin.access_log, with what
// an HCM access log knows of a request the proxy answered itself.
func adminAccessLogged(h http.Handler, logs accesslog.Loggers) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: rw, status: 200}
		h.ServeHTTP(rec, r)
		req := &message.Request{Method: r.Method, Scheme: "http", Authority: r.Host, Path: r.URL.RequestURI(), Protocol: message.HTTP11, ContentLength: r.ContentLength}
		if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
			req.Protocol = message.HTTP10
		}
		for name, vs := range r.Header {
			for _, v := range vs {
				req.Header.Add(strings.ToLower(name), v)
			}
		}
		var respHeaders message.Headers
		for name, vs := range rec.Header() {
			for _, v := range vs {
				respHeaders.Add(strings.ToLower(name), v)
			}
		}
		info := &streaminfo.StreamInfo{
			StartTime: start, LastDownstreamTxByte: time.Since(start),
			Protocol: req.Protocol, ResponseCode: rec.status, ResponseCodeDetails: "admin_filter_response",
			BytesSent: uint64(rec.bytes),
		}
		if r.ContentLength > 0 {
			info.BytesReceived = uint64(r.ContentLength)
		}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			info.DownstreamRemoteAddr, info.DownstreamDirectAddr = ap, ap
		}
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ap, err := netip.ParseAddrPort(la.String()); err == nil {
				info.DownstreamLocalAddr = ap
			}
		}
		logs.Log(&formatter.Context{Request: req, ResponseHeaders: respHeaders, Info: info})
	})
}

// accessLogged writes one line per admin request to the admin access log,
// in the shape of Envoy's default access log format.
func accessLogged(h http.Handler, w io.Writer) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: rw, status: 200}
		h.ServeHTTP(rec, r)
		fmt.Fprintf(w, "[%s] \"%s %s %s\" %d - 0 %d %d \"%s\" \"%s\"\n",
			start.UTC().Format("2006-01-02T15:04:05.000Z"), r.Method, r.URL.RequestURI(), r.Proto,
			rec.status, rec.bytes, time.Since(start).Milliseconds(), r.RemoteAddr, r.UserAgent())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }
func (r *statusRecorder) Write(p []byte) (int, error) {
	n, err := r.ResponseWriter.Write(p)
	r.bytes += n
	return n, err
}

// adminState is what /ready and server.state report: a server failing its
// health checks is DRAINING, as in Envoy.
func (s *Server) adminState() stats.ServerState {
	switch s.State() {
	case Live:
		if s.healthFailed.Load() {
			return stats.StateDraining
		}
		return stats.StateLive
	case Draining:
		return stats.StateDraining
	}
	return stats.StatePreInitializing
}

func (s *Server) setLogLevel(logger, level string) error {
	l, err := logging.ParseLevel(level)
	if err != nil {
		return err
	}
	if lv := s.opts.LogLevels; lv != nil {
		if logger == "" {
			lv.SetAll(l)
			return nil
		}
		return lv.Set(logger, l)
	}
	if s.opts.LogLevel != nil {
		s.opts.LogLevel.Set(l)
	}
	return nil
}

func (s *Server) bindAdmin() error {
	a := s.admin
	if a.address == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.address)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	a.ln = ln
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan struct{})
	go func() {
		defer close(a.done)
		admin.Serve(ctx, ln, a.handler)
	}()
	go s.refreshServerStats(ctx)
	go a.dash.Run(ctx)
	s.logger.Info("admin address", "address", ln.Addr().String())
	return nil
}

// refreshServerStats keeps server.* gauges current for sinks and scrapes.
func (s *Server) refreshServerStats(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		st := s.adminState()
		s.admin.stats.SetState(st)
		s.admin.stats.SetLive(s.State() == Live)
		s.admin.stats.Refresh()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) shutdownAdmin() {
	if s.admin == nil || s.admin.cancel == nil {
		return
	}
	s.admin.cancel()
	<-s.admin.done
}

// AdminAddr is the bound admin address, nil without an admin.
func (s *Server) AdminAddr() net.Addr {
	if s.admin == nil || s.admin.ln == nil {
		return nil
	}
	return s.admin.ln.Addr()
}

func (s *Server) serverInfo() *adminv3.ServerInfo {
	st := adminv3.ServerInfo_PRE_INITIALIZING
	switch s.adminState() {
	case stats.StateLive:
		st = adminv3.ServerInfo_LIVE
	case stats.StateDraining:
		st = adminv3.ServerInfo_DRAINING
	}
	up := durationpb.New(time.Since(s.start).Truncate(time.Second))
	return &adminv3.ServerInfo{
		Version:            version.String(),
		State:              st,
		HotRestartVersion:  "disabled",
		UptimeCurrentEpoch: up,
		UptimeAllEpochs:    up,
		CommandLineOptions: s.commandLine(),
		Node:               s.node(),
	}
}

// commandLine is the command line as /server_info shows it.
func (s *Server) commandLine() *adminv3.CommandLineOptions {
	cl := &adminv3.CommandLineOptions{}
	if s.opts.CommandLine != nil {
		cl = proto.Clone(s.opts.CommandLine).(*adminv3.CommandLineOptions)
	}
	cl.ServiceNode, cl.ServiceCluster, cl.ServiceZone = s.nodeID, s.nodeClstr, s.locality().GetZone()
	cl.Concurrency = uint32(s.opts.Concurrency)
	cl.DrainTime = durationpb.New(s.opts.DrainTime)
	if s.opts.LogLevel != nil {
		cl.LogLevel = logging.LevelName(s.opts.LogLevel.Level())
	}
	return cl
}

// node is the bootstrap's node with the command-line overrides and
// Legate's user agent, as Envoy reports it.
func (s *Server) node() *corev3.Node {
	n := &corev3.Node{}
	if bn := s.opts.Bootstrap.GetNode(); bn != nil {
		n = proto.Clone(bn).(*corev3.Node)
	}
	n.Id, n.Cluster = s.nodeID, s.nodeClstr
	n.Locality = s.locality()
	n.UserAgentName = "legate"
	n.UserAgentVersionType = &corev3.Node_UserAgentVersion{UserAgentVersion: version.Version}
	return n
}

// locality is node.locality with --service-zone applied.
func (s *Server) locality() *corev3.Locality {
	l := s.opts.Bootstrap.GetNode().GetLocality()
	if s.opts.ServiceZone == "" {
		return l
	}
	if l == nil {
		return &corev3.Locality{Zone: s.opts.ServiceZone}
	}
	l = proto.Clone(l).(*corev3.Locality)
	l.Zone = s.opts.ServiceZone
	return l
}

// writeListeners renders /listeners: "name::address" lines, or Envoy's
// envoy.admin.v3.Listeners JSON.
func (s *Server) writeListeners(w io.Writer, asJSON bool) {
	ls := s.listeners.Listeners()
	if !asJSON {
		for _, l := range ls {
			fmt.Fprintf(w, "%s::%s\n", l.Name, l.Address)
		}
		return
	}
	out := &adminv3.Listeners{}
	for _, l := range ls {
		host, port, _ := net.SplitHostPort(l.Address)
		p, _ := strconv.Atoi(port)
		out.ListenerStatuses = append(out.ListenerStatuses, &adminv3.ListenerStatus{
			Name: l.Name,
			LocalAddress: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
			}}},
		})
	}
	b, _ := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(out)
	w.Write(b)
}

// Close releases what New built: for validate mode and failed starts, and
// by Run once listeners have drained. The order matters: span exporters'
// last flush (atShutdown) runs while clusters still resolve, and files
// close after every access log line has been written.
func (s *Server) Close() {
	for _, f := range s.atShutdown {
		f()
	}
	// The xDS client goes first: no update may reach a manager that is
	// closing.
	s.dynamic.close()
	if s.clusters != nil {
		s.clusters.Close()
	}
	if s.flusher != nil {
		s.flusher.Close()
	}
	s.files.Close()
}

// activeListeners returns the configs now serving, static and LDS, for the
// dashboard.
func (s *Server) activeListeners() []*listenerv3.Listener {
	ls := s.listeners.Listeners()
	out := make([]*listenerv3.Listener, len(ls))
	for i, l := range ls {
		out[i] = l.Config
	}
	return out
}

// firstCertExpiry is the earliest expiry among the certificates Legate
// presents now: listeners' and clusters' TLS contexts, static or from SDS.
func (s *Server) firstCertExpiry() (first time.Time, ok bool) {
	cfgs := s.listeners.TLSConfigs()
	for _, c := range s.clusters.Clusters() {
		if c.Settings.TLS != nil {
			cfgs = append(cfgs, c.Settings.TLS)
		}
	}
	for _, cfg := range cfgs {
		if t, has := tlscontext.FirstExpiry(cfg); has && (!ok || t.Before(first)) {
			first, ok = t, true
		}
	}
	return first, ok
}
