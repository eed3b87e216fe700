package hcm

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/http/http1"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/routetable"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/tracing"
)

// stream is one request's state, pooled so a request allocates little.
type stream struct {
	fs   httpfilter.Stream
	info streaminfo.StreamInfo
	// dyn is the stream's dynamic metadata and filter state, starting
	// from its connection's.
	dyn streaminfo.Dynamic
	rw  respWriter
	cfg *Config
	sc  *http1.ServerConn // nil on HTTP/2
	end streamEnd

	// Timers, armed only when they can matter (see armTimers).
	cancel       context.CancelCauseFunc
	idle         time.Duration
	idleTimer    *time.Timer
	reqTimer     *time.Timer
	lastProgress atomic.Int64 // unix nanoseconds; the body's reader goroutine writes it too
	body         timedBody
	guard        bodyGuard
	counted      countedBody
	count        bodyCount
	c            *conn
	trace        traceState
	// logCtx is what access logs read, kept here so logging allocates
	// nothing.
	logCtx formatter.Context
}

// Tracing: the span, and what the response must carry for it.
type traceState struct {
	span *tracing.Span
	// decoratorOp goes out as x-envoy-decorator-operation.
	decoratorOp string
	// echoRequestID copies x-request-id to the response, as Envoy does
	// for forced traces.
	echoRequestID bool
}

// streamEnd tells the codec loop how a stream finished.
type streamEnd uint8

const (
	endNormal   streamEnd = iota
	endHijacked           // an upgrade took the connection over
	endReset              // the response was cut short: don't end it cleanly
)

var streamPool = sync.Pool{New: func() any { return new(stream) }}

// serveStream runs one request through header processing, routing and the
// filter chain. It reports whether the connection was taken over by an
// upgrade or reset (the HTTP/1 loop must then stop using it). ctx is the
// stream's: HTTP/2 cancels it when the client resets the stream.
func (cfg *Config) serveStream(ctx context.Context, c *conn, req *message.Request, w message.ResponseWriter, sc *http1.ServerConn) streamEnd {
	st := cfg.Stats
	s := streamPool.Get().(*stream)
	*s = stream{cfg: cfg, sc: sc}
	s.info.StartTime = time.Now()
	s.info.ConnectionID = c.nc.ID
	s.info.DownstreamDirectAddr = c.nc.RemoteAddr
	s.info.DownstreamLocalAddr = c.nc.LocalAddr
	s.info.Protocol = req.Protocol
	s.dyn.Reset(&c.nc.Dynamic)
	s.info.Dynamic = &s.dyn
	if c.nc.TLS != nil {
		s.info.RequestedServerName = c.nc.TLS.ServerName
	}
	st.RqTotal.Inc()
	st.RqActive.Inc()
	if req.Protocol == message.HTTP2 {
		st.RqHTTP2Total.Inc()
	} else {
		st.RqHTTP1Total.Inc()
	}
	s.c = c
	switch {
	case req.Body == nil:
		s.info.LastDownstreamRxByte = 1 // the headers were the whole request
	case sc != nil:
		s.count.start = s.info.StartTime
		s.guard = bodyGuard{body: req.Body, count: &s.count}
		req.Body = &s.guard
	default:
		s.count.start = s.info.StartTime
		s.counted = countedBody{Body: req.Body, count: &s.count}
		req.Body = &s.counted
	}
	s.rw = respWriter{inner: w, s: s}
	s.fs = httpfilter.Stream{Ctx: ctx, Request: req, Response: &s.rw, Info: &s.info}
	s.fs.SetCallbacks(s)

	if cfg.Paths != (PathOptions{}) && !cfg.applyPaths(s, req) {
		s.info.DownstreamRemoteAddr = s.info.DownstreamDirectAddr
		return cfg.endStream(s)
	}
	if !cfg.prepareRequest(s, req, c.nc.TLS != nil) {
		return cfg.endStream(s)
	}
	if cfg.overload.StopRequests.Load() {
		// The overload manager's stop_accepting_requests.
		st.RqOverloadClose.Inc()
		s.info.Flags |= streaminfo.Overload
		cfg.SendLocalReply(&s.fs, http.StatusServiceUnavailable, "envoy overloaded", "overload")
		return cfg.endStream(s)
	}
	if sc != nil && cfg.overload.DisableKeepalive.Load() {
		sc.CloseAfterResponse()
	}
	s.firstMatch()
	route := s.fs.Route
	s.armTimers(route, req)
	if cfg.Tracer != nil {
		s.startSpan(route, req)
	}
	if up, ok := req.Header.Get("upgrade"); ok && route != nil {
		up = strings.ToLower(up)
		if !cfg.upgradeAllowed(route, up) {
			st.RqWsOnNonWsRoute.Inc()
			cfg.SendLocalReply(&s.fs, http.StatusForbidden, "", "upgrade_failed")
			return cfg.endStream(s)
		}
		s.fs.Upgrade = up
		if sc != nil {
			s.fs.HijackDownstream = s.hijack
		}
	}
	cfg.Chain.ServeStream(&s.fs)
	if !s.rw.HeaderWritten() {
		cfg.SendLocalReply(&s.fs, http.StatusInternalServerError, "", "filter_chain_not_complete")
	}
	return cfg.endStream(s)
}

func (cfg *Config) endStream(s *stream) streamEnd {
	st := cfg.Stats
	s.stopTimers()
	if s.guard.body != nil {
		switch reusable, complete := s.guard.finish(s.c); {
		case !reusable && s.end == endNormal:
			// A read of the body was cut short: the codec is mid-body
			// and the connection cannot carry another request.
			s.sc.CloseAfterResponse()
		case reusable && !complete:
			s.c.boundDiscard()
		}
	}
	if s.count.start != (time.Time{}) {
		s.info.BytesReceived = s.count.bytes.Load()
		s.info.LastDownstreamRxByte = time.Duration(s.count.done.Load())
	}
	s.info.LastDownstreamTxByte = time.Since(s.info.StartTime)
	if s.trace.span != nil {
		s.trace.span.Finish(s.fs.Request, s.rw.header, &s.info)
	}
	if cfg.AccessLogs != nil {
		s.logCtx = formatter.Context{Request: s.fs.Request, ResponseHeaders: s.rw.header, ResponseTrailers: s.rw.trailers, Info: &s.info}
		cfg.AccessLogs.Log(&s.logCtx)
	}
	st.RqActive.Dec()
	st.RqCompleted.Inc()
	st.RqTime.Record(uint64(s.info.LastDownstreamTxByte.Milliseconds()))
	end := s.end
	// A request body's wrappers live in s, and the upstream pool's writer
	// goroutine may still call Read on them after the stream has ended
	// (an upstream that answered before taking the whole body). Such a
	// stream is left to the garbage collector instead of being reused, so
	// a late Read finds its own, fenced body rather than another request's.
	if s.count.start.IsZero() {
		*s = stream{}
		streamPool.Put(s)
	}
	return end
}

// startSpan joins or starts the request's trace; the tracer writes the
// outgoing context into req's headers, so the upstream's span is a child
// of Legate's.
func (s *stream) startSpan(route *routetable.Route, req *message.Request) {
	op := ""
	propagate := false
	if route != nil && route.Decorator != nil {
		op, propagate = route.Decorator.Operation, route.Decorator.Propagate
	}
	// A decorator set by a proxy downstream wins; Start consumes the header.
	overridden := req.Header.Has(tracing.DecoratorOperationHeader)
	s.trace.echoRequestID = req.Header.Has("x-envoy-force-trace")
	s.trace.span = s.cfg.Tracer.Start(req, &s.info, op)
	if propagate && !overridden && op != "" {
		s.trace.decoratorOp = op
	}
}

// hijack hands the raw downstream connection to an upgraded stream.
func (s *stream) hijack() (message.RawStream, bool) {
	nc, r := s.sc.Hijack()
	s.end = endHijacked
	return rawStream{Reader: r, Conn: nc}, true
}

type rawStream struct {
	io.Reader
	net.Conn
}

func (r rawStream) Read(p []byte) (int, error) { return r.Reader.Read(p) }

// upgradeAllowed applies upgrade_configs: the route's setting wins, else the
// connection manager's. upgrade is lower-case, as are the configured types.
func (cfg *Config) upgradeAllowed(r *routetable.Route, upgrade string) bool {
	hcmDefault := false
	for _, u := range cfg.Upgrades {
		if u.Type == upgrade {
			hcmDefault = u.Enabled
			break
		}
	}
	return r.UpgradeEnabled(upgrade, hcmDefault)
}

// prepareRequest applies Envoy's request header processing: scheme,
// x-forwarded-for / x-forwarded-proto, the trusted client address, internal
// and external request handling, and x-request-id. It returns false when it
// answered the request itself (an original IP detection extension
// rejected it).
func (cfg *Config) prepareRequest(s *stream, req *message.Request, tls bool) bool {
	connScheme := "http"
	if tls {
		connScheme = "https"
	}
	if req.Scheme == "" {
		req.Scheme = connScheme
	}
	peer := s.info.DownstreamDirectAddr
	xff := req.Header.Value("x-forwarded-for")
	remote := peer
	// trustChecks: the client address found may make the request
	// internal. Only a single x-forwarded-for address can (Envoy's rule).
	trustChecks := false
	if cfg.UseRemoteAddress {
		trustChecks = !req.Header.Has("x-forwarded-for")
		if cfg.XffNumTrustedHops > 0 {
			if a, ok := xffAddr(xff, int(cfg.XffNumTrustedHops)); ok {
				remote = netip.AddrPortFrom(a, 0)
			}
		}
		if !cfg.SkipXffAppend {
			appendXff(req, xff, s.c.peerIP)
		}
		req.Header.Set("x-forwarded-proto", connScheme)
	} else {
		if d, ok := cfg.detectClient(req, peer.Addr()); ok {
			if d.reject != 0 {
				s.info.DownstreamRemoteAddr = peer
				cfg.Stats.RqRejectedViaIPDetection.Inc()
				cfg.SendLocalReply(&s.fs, d.reject, "", "rejecting because detection failed")
				return false
			}
			remote, trustChecks = netip.AddrPortFrom(d.addr, 0), d.trustChecks
			if !d.skipAppend {
				appendXff(req, xff, peer.Addr().String())
			}
		}
		if !req.Header.Has("x-forwarded-proto") {
			req.Header.Add("x-forwarded-proto", connScheme)
		}
	}
	s.info.DownstreamRemoteAddr = remote

	// x-envoy-* request headers steer the proxy: only internal requests
	// keep them. An edge request comes straight from an untrusted client:
	// none of its x-envoy-* headers are kept.
	internal := trustChecks && cfg.Internal.Contains(remote.Addr())
	edge := !internal && cfg.UseRemoteAddress
	switch {
	case internal:
		req.Header.Set("x-envoy-internal", "true")
	case edge:
		stripEnvoyHeaders(&req.Header)
		ext := s.c.peerIP
		if remote != peer {
			ext = remote.Addr().String()
		}
		req.Header.Set("x-envoy-external-address", ext)
	default:
		req.Header.Del("x-envoy-internal")
		stripControlHeaders(&req.Header)
	}

	if cfg.GenerateRequestID {
		if !req.Header.Has("x-request-id") {
			req.Header.Add("x-request-id", newRequestID())
		} else if edge && !cfg.PreserveExternalReqID {
			req.Header.Set("x-request-id", newRequestID())
		}
	}
	return true
}

func appendXff(req *message.Request, xff, addr string) {
	if xff == "" {
		req.Header.Set("x-forwarded-for", addr)
	} else {
		req.Header.Set("x-forwarded-for", xff+","+addr)
	}
}

// xffAddr returns the n-th address from the right of an x-forwarded-for
// value (n starts at 1).
func xffAddr(xff string, n int) (netip.Addr, bool) {
	if xff == "" || n <= 0 {
		return netip.Addr{}, false
	}
	for range n - 1 {
		i := strings.LastIndexByte(xff, ',')
		if i < 0 {
			return netip.Addr{}, false
		}
		xff = xff[:i]
	}
	if i := strings.LastIndexByte(xff, ','); i >= 0 {
		xff = xff[i+1:]
	}
	a, err := netip.ParseAddr(strings.TrimSpace(xff))
	return a, err == nil
}

// isInternal reports whether a is an RFC 1918, loopback or unique-local
// address, Envoy's definition of an internal request.
func isInternal(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate()
}

// stripEnvoyHeaders drops x-envoy-* request headers an external client sent.
func stripEnvoyHeaders(h *message.Headers) {
	s := *h
	j := 0
	for _, f := range s {
		if !strings.HasPrefix(f.Name, "x-envoy-") {
			s[j] = f
			j++
		}
	}
	clear(s[j:])
	*h = s[:j]
}

// addResponseHeaders adds what the connection manager puts on every
// response: date and server.
func (cfg *Config) addResponseHeaders(h *message.Headers, now time.Time) {
	h.Set("date", httpDate.get(now))
	switch cfg.ServerHeader {
	case ServerHeaderOverwrite:
		h.Set("server", cfg.ServerName)
	case ServerHeaderAppendIfAbsent:
		if !h.Has("server") {
			h.Add("server", cfg.ServerName)
		}
	}
}

// SendLocalReply answers a stream from the proxy. A failure the stream
// itself caused overrides what the filter asked for: its own timers (408),
// or a malformed request body (400, and the connection closes).
func (s *stream) SendLocalReply(fs *httpfilter.Stream, r httpfilter.LocalReply) {
	cfg := s.cfg
	r.Status, r.Body, r.Details = cfg.timeoutReply(fs.Ctx, fs.Info, r.Status, r.Body, r.Details)
	if s.guard.body != nil {
		if pe := s.guard.protocolError(); pe != nil {
			cfg.Stats.CxProtocolError.Inc()
			fs.Info.Flags |= streaminfo.DownstreamProtocolError
			r = httpfilter.LocalReply{Status: pe.Status, Body: statusText(pe.Status), Details: pe.Details}
			s.sc.CloseAfterResponse()
		}
	}
	cfg.writeLocalReply(fs, r)
}

// SendLocalReply writes a response generated by the proxy (see
// writeLocalReply).
func (cfg *Config) SendLocalReply(fs *httpfilter.Stream, status int, body, details string) {
	cfg.writeLocalReply(fs, httpfilter.LocalReply{Status: status, Body: body, Details: details})
}

// respWriter is the stream's view of the downstream response: it adds the
// connection manager's headers and records status and bytes.
type respWriter struct {
	inner message.ResponseWriter
	s     *stream
	// What went downstream, for access logs.
	header, trailers message.Headers
}

func (w *respWriter) WriteHeader(status int, h message.Headers, contentLength int64) error {
	cfg := w.s.cfg
	cfg.addResponseHeaders(&h, time.Now())
	if t := &w.s.trace; t.decoratorOp != "" || t.echoRequestID {
		if t.decoratorOp != "" {
			h.Set(tracing.DecoratorOperationHeader, t.decoratorOp)
		}
		if id, ok := w.s.fs.Request.Header.Get("x-request-id"); ok && t.echoRequestID {
			h.Set("x-request-id", id)
		}
	}
	w.s.info.ResponseCode = status
	w.header = h
	if w.s.sc != nil && w.s.c.draining() {
		w.s.sc.CloseAfterResponse()
	}
	err := w.inner.WriteHeader(status, h, contentLength)
	// A response the codec could not start (the client reset the stream:
	// a malformed body, a RST_STREAM) is no response code of ours.
	if err == nil && (status >= 200 || status == 101) {
		cfg.Stats.recordStatus(status)
	}
	return err
}

func (w *respWriter) Write(p []byte) (int, error) {
	w.s.progress()
	n, err := w.inner.Write(p)
	w.s.info.BytesSent += uint64(n)
	return n, err
}

// Reset aborts a response already under way.
func (w *respWriter) Reset() {
	w.s.end = endReset
	w.s.cfg.Stats.RqTxReset.Inc()
}

func (w *respWriter) Flush() error { return w.inner.Flush() }
func (w *respWriter) WriteTrailers(h message.Headers) error {
	w.trailers = h
	return w.inner.WriteTrailers(h)
}
func (w *respWriter) HeaderWritten() bool { return w.inner.HeaderWritten() }

// statusText is the body of codec-level error replies.
func statusText(code int) string {
	return http.StatusText(code)
}
