package accesslog

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"
	"weak"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	grpcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/grpcclient"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

// More extension types, by proto full name.
const (
	TypeHTTPGrpc = "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig"
	TypeTCPGrpc  = "envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig"
)

// Envoy's CommonGrpcAccessLogConfig defaults.
const (
	defaultGrpcBufferSize  = 16384
	defaultGrpcFlushPeriod = time.Second
	// grpcQueueLen bounds the entries waiting for the sender goroutine; a
	// service that cannot keep up makes Log drop entries (logs_dropped).
	grpcQueueLen = 4096
)

// entryLogger turns one log context into an entry of a remote logger.
type entryLogger interface {
	log(ctx *formatter.Context)
}

// grpcCommon is a validated CommonGrpcAccessLogConfig.
type grpcCommon struct {
	svc      *grpcclient.Service
	logName  string
	bufSize  int
	interval time.Duration
}

func compileGrpcCommon(c *grpcv3.CommonGrpcAccessLogConfig, deps Deps, field string) (*grpcCommon, error) {
	if c == nil {
		return nil, fmt.Errorf("%s: is required", field)
	}
	switch v := c.GetTransportApiVersion(); v {
	case corev3.ApiVersion_V3, corev3.ApiVersion_AUTO:
	default:
		return nil, fmt.Errorf("%s.transport_api_version: %v is not supported, only V3", field, v)
	}
	if c.GetGrpcService() == nil {
		return nil, fmt.Errorf("%s.grpc_service: is required", field)
	}
	svc, err := grpcclient.New(c.GetGrpcService(), deps.Clusters, field+".grpc_service")
	if err != nil {
		return nil, err
	}
	g := &grpcCommon{svc: svc, logName: c.GetLogName(), bufSize: defaultGrpcBufferSize, interval: defaultGrpcFlushPeriod}
	if v := c.GetBufferSizeBytes(); v != nil {
		g.bufSize = int(v.GetValue())
	}
	if d := c.GetBufferFlushInterval(); d != nil {
		if d.AsDuration() <= 0 {
			return nil, fmt.Errorf("%s.buffer_flush_interval: must be positive", field)
		}
		g.interval = d.AsDuration()
	}
	return g, nil
}

// grpcLoggers are shared, as Envoy's gRPC access logger cache shares
// them: every access_log entry (on any listener, of any config version)
// with the same config and kind feeds one stream. The map holds weak
// pointers; when the last Logger using a stream is collected, a cleanup
// stops its sender, so a replaced configuration does not leak streams.
var grpcLoggers struct {
	mu sync.Mutex
	m  map[string]weak.Pointer[remoteHandle]
}

// remoteHandle is what Loggers hold; the sender goroutine holds only the
// remote behind it, so the handle can be collected.
type remoteHandle struct{ r *remote }

func (h *remoteHandle) log(ctx *formatter.Context) { h.r.log(ctx) }

// shared returns the remote logger for key, building it when there is
// none alive.
func shared(key string, build func() *remote) *remoteHandle {
	grpcLoggers.mu.Lock()
	defer grpcLoggers.mu.Unlock()
	if h := grpcLoggers.m[key].Value(); h != nil {
		return h
	}
	r := build()
	h := &remoteHandle{r}
	wp := weak.Make(h)
	if grpcLoggers.m == nil {
		grpcLoggers.m = map[string]weak.Pointer[remoteHandle]{}
	}
	grpcLoggers.m[key] = wp
	runtime.AddCleanup(h, func(r *remote) {
		grpcLoggers.mu.Lock()
		if grpcLoggers.m[key] == wp {
			delete(grpcLoggers.m, key)
		}
		grpcLoggers.mu.Unlock()
		r.close()
	}, r)
	return h
}

// remote batches entries off the request path and hands each batch to
// send from one goroutine. Log builds the entry (copying what it keeps)
// and does a non-blocking channel send.
type remote struct {
	entry   func(ctx *formatter.Context) proto.Message
	send    func(batch []proto.Message) error
	closeFn func()
	bufSize int
	every   time.Duration
	q       chan proto.Message
	stop    chan struct{}
	done    chan struct{}
	logger  *slog.Logger

	written, dropped *stats.Counter
}

func newRemote(deps Deps, c *grpcCommon) *remote {
	st := deps.Stats
	if st == nil {
		st = stats.NewStore()
	}
	sc := st.Scope("access_logs").Scope("grpc_access_log")
	lg := deps.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &remote{
		bufSize: c.bufSize, every: c.interval,
		q: make(chan proto.Message, grpcQueueLen), stop: make(chan struct{}), done: make(chan struct{}),
		logger:  lg,
		written: sc.Counter("logs_written"), dropped: sc.Counter("logs_dropped"),
	}
}

func (r *remote) start() *remote { go r.run(); return r }

func (r *remote) log(ctx *formatter.Context) {
	select {
	case r.q <- r.entry(ctx):
		r.written.Inc()
	default:
		r.dropped.Inc()
	}
}

func (r *remote) run() {
	defer close(r.done)
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	var batch []proto.Message
	size := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := r.send(batch); err != nil {
			r.dropped.Add(uint64(len(batch)))
			r.logger.Debug("access log service: send failed", "error", err)
		}
		clear(batch)
		batch, size = batch[:0], 0
	}
	for {
		select {
		case e := <-r.q:
			batch = append(batch, e)
			size += proto.Size(e)
			if size >= r.bufSize {
				flush()
			}
		case <-tick.C:
			flush()
		case <-r.stop:
			for len(r.q) > 0 {
				batch = append(batch, <-r.q)
			}
			flush()
			r.closeFn()
			return
		}
	}
}

func (r *remote) close() {
	close(r.stop)
	<-r.done
}

// alsStream is one StreamAccessLogs client stream, opened on the first
// batch and again after a failure. Only the sender goroutine uses it.
type alsStream struct {
	c      *grpcCommon
	node   *corev3.Node
	conn   *grpc.ClientConn
	stream grpc.ClientStreamingClient[alsv3.StreamAccessLogsMessage, alsv3.StreamAccessLogsResponse]
	cancel context.CancelFunc
}

func (s *alsStream) send(msg *alsv3.StreamAccessLogsMessage) error {
	if s.stream == nil {
		if s.conn == nil {
			conn, err := s.c.svc.Dial()
			if err != nil {
				return err
			}
			s.conn = conn
		}
		ctx, cancel := context.WithCancel(s.c.svc.Outgoing(context.Background()))
		st, err := alsv3.NewAccessLogServiceClient(s.conn).StreamAccessLogs(ctx)
		if err != nil {
			cancel()
			return err
		}
		s.stream, s.cancel = st, cancel
		// The identifier goes on a stream's first message only.
		msg.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: s.node, LogName: s.c.logName}
	}
	if err := s.stream.Send(msg); err != nil {
		s.reset()
		return err
	}
	return nil
}

func (s *alsStream) reset() {
	if s.cancel != nil {
		s.cancel()
	}
	s.stream, s.cancel = nil, nil
}

func (s *alsStream) close() {
	if s.stream != nil {
		s.stream.CloseAndRecv() //nolint:errcheck // best effort at shutdown
	}
	s.reset()
	if s.conn != nil {
		s.conn.Close()
	}
}

// newALS returns the shared StreamAccessLogs logger for c; extraKey is
// the logger's whole config.
func newALS(deps Deps, c *grpcCommon, extraKey string, http bool, entry func(*formatter.Context) proto.Message) entryLogger {
	kind := "tcp"
	if http {
		kind = "http"
	}
	keyMsg := fmt.Sprintf("%p|%p|%s|%q|%q|%s", deps.Clusters, deps.Stats, kind, deps.NodeID, deps.ClusterName, extraKey)
	node := &corev3.Node{Id: deps.NodeID, Cluster: deps.ClusterName}
	return shared(keyMsg, func() *remote {
		r := newRemote(deps, c)
		s := &alsStream{c: c, node: node}
		r.entry = entry
		r.closeFn = s.close
		r.send = func(batch []proto.Message) error {
			msg := &alsv3.StreamAccessLogsMessage{}
			if http {
				es := make([]*datav3.HTTPAccessLogEntry, len(batch))
				for i, e := range batch {
					es[i] = e.(*datav3.HTTPAccessLogEntry)
				}
				msg.LogEntries = &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: es}}
			} else {
				es := make([]*datav3.TCPAccessLogEntry, len(batch))
				for i, e := range batch {
					es[i] = e.(*datav3.TCPAccessLogEntry)
				}
				msg.LogEntries = &alsv3.StreamAccessLogsMessage_TcpLogs{TcpLogs: &alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{LogEntry: es}}
			}
			return s.send(msg)
		}
		return r.start()
	})
}

// configKey is the logger's whole config, for sharing.
func configKey(m proto.Message) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	return string(b)
}

func compileHTTPGrpc(c *grpcv3.HttpGrpcAccessLogConfig, deps Deps, field string) (entryLogger, error) {
	common, err := compileGrpcCommon(c.GetCommonConfig(), deps, field+".common_config")
	if err != nil {
		return nil, err
	}
	reqH := lowerAll(c.GetAdditionalRequestHeadersToLog())
	respH := lowerAll(c.GetAdditionalResponseHeadersToLog())
	trailers := lowerAll(c.GetAdditionalResponseTrailersToLog())
	entry := func(ctx *formatter.Context) proto.Message {
		return httpEntry(ctx, reqH, respH, trailers)
	}
	return newALS(deps, common, configKey(c), true, entry), nil
}

func compileTCPGrpc(c *grpcv3.TcpGrpcAccessLogConfig, deps Deps, field string) (entryLogger, error) {
	common, err := compileGrpcCommon(c.GetCommonConfig(), deps, field+".common_config")
	if err != nil {
		return nil, err
	}
	return newALS(deps, common, configKey(c), false, func(ctx *formatter.Context) proto.Message { return tcpEntry(ctx) }), nil
}

func lowerAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(s)
	}
	return out
}

func sockAddr(ap netip.AddrPort) *corev3.Address {
	if !ap.IsValid() {
		return nil
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ap.Addr().Unmap().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())},
	}}}
}

func sockAddrString(s string) *corev3.Address {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil
	}
	return sockAddr(ap)
}

func dur(d time.Duration) *durationpb.Duration {
	if d <= 0 {
		return nil
	}
	return durationpb.New(d)
}

// commonProperties fills AccessLogCommon from the stream info; strings
// are cloned, since a codec may reuse their memory once Log returns.
func commonProperties(si *streaminfo.StreamInfo, typ datav3.AccessLogType) *datav3.AccessLogCommon {
	c := &datav3.AccessLogCommon{SampleRate: 1, AccessLogType: typ}
	if si == nil {
		return c
	}
	c.DownstreamRemoteAddress = sockAddr(si.DownstreamRemoteAddr)
	c.DownstreamDirectRemoteAddress = sockAddr(si.DownstreamDirectAddr)
	c.DownstreamLocalAddress = sockAddr(si.DownstreamLocalAddr)
	if !si.StartTime.IsZero() {
		c.StartTime = timestamppb.New(si.StartTime)
	}
	c.TimeToLastRxByte = dur(si.LastDownstreamRxByte)
	c.TimeToFirstUpstreamTxByte = dur(si.FirstUpstreamTxByte)
	c.TimeToFirstUpstreamRxByte = dur(si.FirstUpstreamRxByte)
	c.TimeToLastUpstreamRxByte = dur(si.LastUpstreamRxByte)
	c.TimeToLastDownstreamTxByte = dur(si.LastDownstreamTxByte)
	c.Duration = dur(si.LastDownstreamTxByte)
	c.UpstreamRemoteAddress = sockAddrString(si.UpstreamHost)
	c.UpstreamLocalAddress = sockAddrString(si.UpstreamLocalAddr)
	c.UpstreamCluster = strings.Clone(si.UpstreamCluster)
	c.UpstreamTransportFailureReason = strings.Clone(si.UpstreamTransportFailureReason)
	c.RouteName = strings.Clone(si.RouteName)
	c.UpstreamRequestAttemptCount = si.Attempts
	if si.RequestedServerName != "" {
		c.TlsProperties = &datav3.TLSProperties{TlsSniHostname: strings.Clone(si.RequestedServerName)}
	}
	if f := si.Flags; f != 0 {
		c.ResponseFlags = &datav3.ResponseFlags{
			FailedLocalHealthcheck:           f&streaminfo.FailedLocalHealthCheck != 0,
			NoHealthyUpstream:                f&streaminfo.NoHealthyUpstream != 0,
			UpstreamRequestTimeout:           f&streaminfo.UpstreamRequestTimeout != 0,
			LocalReset:                       f&streaminfo.LocalReset != 0,
			UpstreamRemoteReset:              f&streaminfo.UpstreamRemoteReset != 0,
			UpstreamConnectionFailure:        f&streaminfo.UpstreamConnectionFailure != 0,
			UpstreamConnectionTermination:    f&streaminfo.UpstreamConnectionTermination != 0,
			UpstreamOverflow:                 f&streaminfo.UpstreamOverflow != 0,
			NoRouteFound:                     f&streaminfo.NoRouteFound != 0,
			DelayInjected:                    f&streaminfo.DelayInjected != 0,
			FaultInjected:                    f&streaminfo.FaultInjected != 0,
			RateLimited:                      f&streaminfo.RateLimited != 0,
			UpstreamRetryLimitExceeded:       f&streaminfo.UpstreamRetryLimitExceeded != 0,
			StreamIdleTimeout:                f&streaminfo.StreamIdleTimeout != 0,
			DownstreamProtocolError:          f&streaminfo.DownstreamProtocolError != 0,
			UpstreamProtocolError:            f&streaminfo.UpstreamProtocolError != 0,
			NoClusterFound:                   f&streaminfo.NoClusterFound != 0,
			DurationTimeout:                  f&streaminfo.DurationTimeout != 0,
			DownstreamConnectionTermination:  f&streaminfo.DownstreamConnectionTermination != 0,
			UpstreamMaxStreamDurationReached: f&streaminfo.UpstreamMaxStreamDurationReached != 0,
		}
	}
	return c
}

func tcpEntry(ctx *formatter.Context) *datav3.TCPAccessLogEntry {
	e := &datav3.TCPAccessLogEntry{CommonProperties: commonProperties(ctx.Info, datav3.AccessLogType_TcpConnectionEnd)}
	if si := ctx.Info; si != nil {
		e.ConnectionProperties = &datav3.ConnectionProperties{ReceivedBytes: si.BytesReceived, SentBytes: si.BytesSent}
	}
	return e
}

func pickHeaders(h message.Headers, names []string) map[string]string {
	var m map[string]string
	for _, n := range names {
		if v, ok := h.Get(n); ok {
			if m == nil {
				m = make(map[string]string, len(names))
			}
			m[n] = strings.Clone(v)
		}
	}
	return m
}

func httpEntry(ctx *formatter.Context, reqH, respH, trailers []string) *datav3.HTTPAccessLogEntry {
	e := &datav3.HTTPAccessLogEntry{CommonProperties: commonProperties(ctx.Info, datav3.AccessLogType_DownstreamEnd)}
	resp := &datav3.HTTPResponseProperties{
		ResponseHeaders:  pickHeaders(ctx.ResponseHeaders, respH),
		ResponseTrailers: pickHeaders(ctx.ResponseTrailers, trailers),
	}
	e.Response = resp
	if si := ctx.Info; si != nil {
		if si.ResponseCode != 0 {
			resp.ResponseCode = wrapperspb.UInt32(uint32(si.ResponseCode))
		}
		resp.ResponseBodyBytes = si.BytesSent
		resp.ResponseCodeDetails = strings.Clone(si.ResponseCodeDetails)
	}
	r := ctx.Request
	if r == nil {
		return e
	}
	switch r.Protocol {
	case message.HTTP10:
		e.ProtocolVersion = datav3.HTTPAccessLogEntry_HTTP10
	case message.HTTP11:
		e.ProtocolVersion = datav3.HTTPAccessLogEntry_HTTP11
	case message.HTTP2:
		e.ProtocolVersion = datav3.HTTPAccessLogEntry_HTTP2
	}
	req := &datav3.HTTPRequestProperties{
		RequestMethod:  corev3.RequestMethod(corev3.RequestMethod_value[r.Method]),
		Scheme:         strings.Clone(r.Scheme),
		Authority:      strings.Clone(r.Authority),
		Path:           strings.Clone(r.Path),
		UserAgent:      strings.Clone(r.Header.Value("user-agent")),
		Referer:        strings.Clone(r.Header.Value("referer")),
		ForwardedFor:   strings.Clone(r.Header.Value("x-forwarded-for")),
		RequestId:      strings.Clone(r.Header.Value("x-request-id")),
		OriginalPath:   strings.Clone(r.Header.Value("x-envoy-original-path")),
		RequestHeaders: pickHeaders(r.Header, reqH),
	}
	if ctx.Info != nil {
		req.RequestBodyBytes = ctx.Info.BytesReceived
	}
	e.Request = req
	return e
}
