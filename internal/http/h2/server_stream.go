package h2

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/stats"
)

// ServerStats are Envoy's HTTP/2 codec stats ("http2.").
type ServerStats struct {
	RxReset, TxReset, GoawaySent                                                        *stats.Counter
	OutboundFlood, OutboundControlFlood                                                 *stats.Counter
	InboundEmptyFramesFlood, InboundPriorityFramesFlood, InboundWindowUpdateFramesFlood *stats.Counter
	RxMessagingError, HeaderOverflow, Trailers                                          *stats.Counter
	StreamsActive, PendingSendBytes                                                     *stats.Gauge
}

// NewServerStats creates the stats in sc (Envoy roots them at "http2.").
func NewServerStats(sc stats.Scope) *ServerStats {
	c := sc.Counter
	g := func(n string) *stats.Gauge { return sc.Gauge(n, stats.Accumulate) }
	return &ServerStats{
		RxReset: c("rx_reset"), TxReset: c("tx_reset"), GoawaySent: c("goaway_sent"),
		OutboundFlood: c("outbound_flood"), OutboundControlFlood: c("outbound_control_flood"),
		InboundEmptyFramesFlood:        c("inbound_empty_frames_flood"),
		InboundPriorityFramesFlood:     c("inbound_priority_frames_flood"),
		InboundWindowUpdateFramesFlood: c("inbound_window_update_frames_flood"),
		RxMessagingError:               c("rx_messaging_error"), HeaderOverflow: c("header_overflow"),
		Trailers:      c("trailers"),
		StreamsActive: g("streams_active"), PendingSendBytes: g("pending_send_bytes"),
	}
}

var discardStats = NewServerStats(stats.NewStore().Scope("http2"))

var (
	errStreamReset = errors.New("h2: stream reset")
	errConnClosed  = errors.New("h2: connection closed")
)

// stream is one request. Fields below mu are guarded by ServerConn.mu.
type stream struct {
	sc     *ServerConn
	id     uint32
	start  time.Time
	ctx    context.Context
	cancel context.CancelFunc
	cond   sync.Cond // the handler waiting for body bytes
	req    message.Request
	rbody  requestBody
	rw     responseWriter

	declared, received      int64 // content-length (-1: none) and DATA bytes
	recvWindow, recvUnacked int32
	sendWindow              int32
	body                    []byte
	bodyOff                 int
	bodyEOF                 bool
	trailers                message.Headers
	err                     error
	expectContinue          bool
	remoteClosed            bool // END_STREAM received
	localClosed             bool // END_STREAM queued
	reset                   bool
	removed                 bool
	handlerDone             bool
}

// closeLocked ends the stream for its handler: reads and writes fail and
// its context is cancelled.
func (st *stream) closeLocked(err error) {
	if st.err == nil {
		st.err = err
	}
	st.reset = true
	if st.cancel != nil {
		st.cancel()
	}
	st.cond.Broadcast()
	st.sc.wcond.Broadcast()
}

// creditLocked returns consumed body bytes to the stream's window.
func (st *stream) creditLocked(n int32) {
	if st.remoteClosed || st.reset || n <= 0 {
		return
	}
	st.recvUnacked += n
	if st.recvUnacked >= int32(st.sc.cfg.InitialStreamWindow/2) {
		st.recvWindow += st.recvUnacked
		st.sc.queueWindowUpdateLocked(st.id, uint32(st.recvUnacked))
		st.recvUnacked = 0
	}
}

func (sc *ServerConn) maybeRemoveLocked(st *stream) {
	if st.remoteClosed && st.localClosed {
		sc.removeLocked(st, false)
	}
}

// removeLocked forgets a closed stream.
func (sc *ServerConn) removeLocked(st *stream, _ bool) {
	if st.removed {
		return
	}
	st.removed = true
	delete(sc.streams, st.id)
	sc.closedStreams++
	sc.st.StreamsActive.Dec()
	sc.maybeFinishLocked()
}

// processHeaders opens a stream, or takes a stream's trailers.
func (sc *ServerConn) processHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if len(f.Fields) == 0 && !f.StreamEnded() {
		sc.emptyRun++
		if sc.emptyRun > sc.cfg.MaxConsecutiveEmptyFrames {
			sc.st.InboundEmptyFramesFlood.Inc()
			return sc.flood()
		}
	} else {
		sc.emptyRun = 0
	}
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	sc.mu.Lock()
	if st := sc.streams[id]; st != nil {
		defer sc.mu.Unlock()
		return sc.trailersLocked(st, f)
	}
	if id <= sc.maxClientID {
		sc.mu.Unlock()
		// A closed stream (RFC 9113 5.1).
		return http2.ConnectionError(http2.ErrCodeStreamClosed)
	}
	sc.maxClientID = id
	if sc.goAway || sc.peerGone || sc.dead {
		sc.mu.Unlock()
		return nil // past our GOAWAY: ignored
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		sc.queueRSTLocked(id, http2.ErrCodeProtocol)
		sc.mu.Unlock()
		return nil
	}
	max := int(sc.cfg.MaxConcurrentStreams)
	// Handlers of reset streams still running count too: resetting a
	// stream does not free its slot until its work has stopped.
	if len(sc.streams) >= max || sc.live+len(sc.pending) >= max {
		sc.queueRSTLocked(id, http2.ErrCodeRefusedStream)
		sc.mu.Unlock()
		return nil
	}
	sc.opened++
	sc.mu.Unlock()

	st := &stream{
		sc: sc, id: id, start: time.Now(), declared: -1,
		recvWindow: int32(sc.cfg.InitialStreamWindow),
	}
	st.cond.L = &sc.mu
	status, ok := sc.buildRequest(st, f)
	if !ok {
		return sc.messagingError(id)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.dead {
		return nil
	}
	st.sendWindow = sc.peerWindow
	sc.streams[id] = st
	sc.st.StreamsActive.Inc()
	if f.StreamEnded() {
		st.remoteClosed = true
		st.bodyEOF = true
	}
	if status != 0 {
		// Refused before any handler: answered here.
		st.handlerDone = true
		st.rw = responseWriter{st: st, status: status, wrote: true, contentLength: 0}
		st.rw.endLocked()
		if !st.remoteClosed && !st.reset {
			sc.resetLocked(st, http2.ErrCodeNo)
		}
		return nil
	}
	st.rw.st = st
	sc.pending = append(sc.pending, st)
	return nil
}

// trailersLocked takes a second header block on an open stream.
func (sc *ServerConn) trailersLocked(st *stream, f *http2.MetaHeadersFrame) error {
	if st.remoteClosed {
		sc.resetLocked(st, http2.ErrCodeStreamClosed)
		return nil
	}
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 ||
		(st.declared >= 0 && st.received != st.declared) {
		sc.st.RxMessagingError.Inc()
		sc.resetLocked(st, http2.ErrCodeProtocol)
		return sc.messagingConnErrorLocked()
	}
	sc.st.Trailers.Inc()
	tr := make(message.Headers, 0, len(f.Fields))
	for _, hf := range f.Fields {
		tr = append(tr, message.Header{Name: hf.Name, Value: hf.Value})
	}
	st.trailers = tr
	st.remoteClosed = true
	st.bodyEOF = true
	st.cond.Broadcast()
	sc.maybeRemoveLocked(st)
	return nil
}

// buildRequest turns a request header block into st.req. It reports false
// for a malformed request (RFC 9113 8.1.1, 8.2, 8.3) and a non-zero status
// for one answered without a handler (header limits).
func (sc *ServerConn) buildRequest(st *stream, f *http2.MetaHeadersFrame) (int, bool) {
	var method, scheme, authority, path, host string
	hdrs := make(message.Headers, 0, len(f.Fields))
	cookie := -1
	for _, hf := range f.Fields {
		if hf.IsPseudo() {
			switch hf.Name {
			case ":method":
				method = hf.Value
			case ":scheme":
				scheme = hf.Value
			case ":authority":
				authority = hf.Value
			case ":path":
				path = hf.Value
			default:
				// :protocol: extended CONNECT is not offered.
				return 0, false
			}
			continue
		}
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return 0, false
		case "te":
			if !strings.EqualFold(hf.Value, "trailers") {
				return 0, false
			}
		case "host":
			host = hf.Value
			continue
		case "content-length":
			n, err := strconv.ParseUint(hf.Value, 10, 63)
			if err != nil || (st.declared >= 0 && int64(n) != st.declared) {
				return 0, false
			}
			st.declared = int64(n)
		case "cookie":
			// Crumbs are joined for HTTP/1 upstreams (RFC 9113 8.2.3).
			if cookie >= 0 {
				hdrs[cookie].Value += "; " + hf.Value
				continue
			}
			cookie = len(hdrs)
		case "expect":
			st.expectContinue = strings.EqualFold(hf.Value, "100-continue")
		}
		hdrs = append(hdrs, message.Header{Name: hf.Name, Value: hf.Value})
	}
	if f.Truncated {
		sc.st.HeaderOverflow.Inc()
		return 431, true
	}
	if method == "" || !httpguts.ValidHeaderFieldName(method) {
		return 0, false
	}
	if method == "CONNECT" {
		if authority == "" || scheme != "" || path != "" {
			return 0, false
		}
	} else if scheme == "" || !validPath(method, path) {
		return 0, false
	}
	if authority == "" {
		authority = host
	}
	if authority != "" && (!httpguts.ValidHostHeader(authority) || strings.IndexByte(authority, '@') >= 0) {
		return 0, false
	}
	if sc.cfg.MaxHeaders > 0 && len(hdrs) > sc.cfg.MaxHeaders {
		return 431, true
	}
	st.req = message.Request{
		Method: method, Scheme: sc.scheme, Authority: authority, Path: path,
		Protocol: message.HTTP2, Header: hdrs, ContentLength: 0,
	}
	if !f.StreamEnded() && st.declared != 0 {
		st.rbody.st = st
		st.req.Body = &st.rbody
		st.req.ContentLength = st.declared
	}
	return 0, true
}

// validPath accepts origin-form paths (and "*" for OPTIONS) made of
// visible ASCII: a space or control byte would split or smuggle on an
// HTTP/1 upstream.
func validPath(method, p string) bool {
	if p == "" {
		return false
	}
	if p == "*" {
		return method == "OPTIONS"
	}
	if p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// dispatch starts the handlers of streams opened since the last call that
// are still open.
func (sc *ServerConn) dispatch() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for i, st := range sc.pending {
		sc.pending[i] = nil
		if st.reset || sc.dead {
			continue
		}
		st.ctx, st.cancel = context.WithCancel(sc.base)
		sc.live++
		sc.handled.Add(1)
		go sc.runHandler(st)
	}
	sc.pending = sc.pending[:0]
}

// abortStream is AbortStream's panic value.
type abortStream struct{}

// AbortStream resets the current stream (RST_STREAM) instead of ending it
// cleanly; call it only from the handler goroutine, typically when the
// upstream fails after the response headers went out. It does not return.
func AbortStream() {
	panic(abortStream{})
}

func (sc *ServerConn) runHandler(st *stream) {
	aborted := true
	defer func() {
		// A panicking handler resets its stream rather than the process.
		recover()
		sc.finish(st, aborted)
	}()
	sc.handle(st.ctx, &st.req, &st.rw)
	aborted = false
}

// finish ends a stream whose handler returned.
func (sc *ServerConn) finish(st *stream, aborted bool) {
	sc.mu.Lock()
	st.handlerDone = true
	if !st.reset && !st.localClosed {
		if aborted {
			sc.resetLocked(st, http2.ErrCodeInternal)
		} else {
			st.rw.endLocked()
		}
	}
	if !st.reset && st.localClosed && !st.remoteClosed {
		// The response is complete; the rest of the request is not
		// wanted (RFC 9113 8.1).
		sc.resetLocked(st, http2.ErrCodeNo)
	}
	if unread := len(st.body) - st.bodyOff; unread > 0 {
		sc.creditConnLocked(int32(unread))
	}
	st.body = nil
	st.bodyOff = 0
	st.cancel()
	sc.live--
	sc.maybeFinishLocked()
	sc.mu.Unlock()
	sc.handled.Done()
}

// requestBody is a stream's request body as the handler reads it.
type requestBody struct{ st *stream }

func (b *requestBody) Read(p []byte) (int, error) {
	st := b.st
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st.expectContinue && !st.rw.headersSent && !st.reset {
		st.expectContinue = false
		sc.encodeStatusLocked(100)
		sc.queueHeadersLocked(st.id, false)
	}
	for st.bodyOff == len(st.body) && !st.bodyEOF && st.err == nil {
		st.cond.Wait()
	}
	if st.bodyOff < len(st.body) {
		n := copy(p, st.body[st.bodyOff:])
		st.bodyOff += n
		if st.bodyOff == len(st.body) {
			st.body, st.bodyOff = st.body[:0], 0
		}
		st.creditLocked(int32(n))
		sc.creditConnLocked(int32(n))
		return n, nil
	}
	if st.err != nil {
		return 0, st.err
	}
	return 0, io.EOF
}

func (b *requestBody) Trailers() message.Headers {
	sc := b.st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return b.st.trailers
}

// responseWriter implements message.ResponseWriter. Headers wait for the
// first Write or Flush, or the handler's return, so a response without a
// body goes out as one HEADERS frame.
type responseWriter struct {
	st            *stream
	status        int
	header        message.Headers
	contentLength int64
	trailers      message.Headers
	wrote         bool
	headersSent   bool
}

var errHeaderWritten = errors.New("h2: response header already written")

func (rw *responseWriter) WriteHeader(status int, h message.Headers, contentLength int64) error {
	if rw.wrote {
		return errHeaderWritten
	}
	if status < 100 || status > 999 || status == 101 {
		return errors.New("h2: invalid status " + strconv.Itoa(status))
	}
	if status < 200 {
		// Informational: sent at once, the final response follows.
		sc := rw.st.sc
		sc.mu.Lock()
		defer sc.mu.Unlock()
		if rw.st.reset {
			return rw.st.err
		}
		sc.encodeStatusLocked(status)
		sc.encodeFieldsLocked(h)
		sc.queueHeadersLocked(rw.st.id, false)
		return nil
	}
	// A stream already reset (the client's malformed body, RST_STREAM)
	// gets no response, and the caller learns so.
	sc := rw.st.sc
	sc.mu.Lock()
	reset, err := rw.st.reset, rw.st.err
	sc.mu.Unlock()
	if reset {
		return err
	}
	rw.wrote = true
	rw.status, rw.header, rw.contentLength = status, h, contentLength
	return nil
}

func (sc *ServerConn) encodeStatusLocked(status int) {
	sc.hbuf.b = sc.hbuf.b[:0]
	sc.henc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(status)})
}

func (sc *ServerConn) encodeFieldsLocked(h message.Headers) {
	for i := range h {
		switch name := h[i].Name; name {
		case "content-length", "te":
			continue
		default:
			if connectionSpecific(name) {
				continue
			}
		}
		sc.henc.WriteField(hpack.HeaderField{Name: h[i].Name, Value: h[i].Value})
	}
}

// sendHeadersLocked queues the response headers.
func (rw *responseWriter) sendHeadersLocked(end bool) bool {
	sc := rw.st.sc
	rw.headersSent = true
	sc.encodeStatusLocked(rw.status)
	sc.encodeFieldsLocked(rw.header)
	if rw.contentLength >= 0 {
		sc.henc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.FormatInt(rw.contentLength, 10)})
	}
	if end {
		rw.st.localClosed = true
	}
	return sc.queueHeadersLocked(rw.st.id, end)
}

// endLocked ends the response when the handler returns.
func (rw *responseWriter) endLocked() {
	st := rw.st
	sc := st.sc
	switch {
	case !rw.wrote:
		sc.resetLocked(st, http2.ErrCodeInternal)
		return
	case !rw.headersSent:
		rw.sendHeadersLocked(len(rw.trailers) == 0)
		if len(rw.trailers) == 0 {
			break
		}
		fallthrough
	case len(rw.trailers) > 0:
		sc.hbuf.b = sc.hbuf.b[:0]
		sc.encodeFieldsLocked(rw.trailers)
		st.localClosed = true
		sc.queueHeadersLocked(st.id, true)
	default:
		st.localClosed = true
		sc.queueDataLocked(st.id, nil, true)
	}
	sc.maybeRemoveLocked(st)
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if !rw.wrote {
		return 0, errors.New("h2: Write before WriteHeader")
	}
	st := rw.st
	sc := st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st.reset || sc.dead {
		return 0, rw.errLocked()
	}
	if !rw.headersSent {
		rw.sendHeadersLocked(false)
	}
	n := 0
	for len(p) > 0 {
		for !st.reset && !sc.dead && (st.sendWindow <= 0 || sc.sendWindow <= 0 || sc.outN.data+sc.flight.data >= maxQueuedData) {
			sc.wcond.Wait()
		}
		if st.reset || sc.dead {
			return n, rw.errLocked()
		}
		k := min(len(p), int(st.sendWindow), int(sc.sendWindow), int(sc.peerMaxFrame))
		if !sc.queueDataLocked(st.id, p[:k], false) {
			return n, rw.errLocked()
		}
		st.sendWindow -= int32(k)
		sc.sendWindow -= int32(k)
		p = p[k:]
		n += k
	}
	return n, nil
}

func (rw *responseWriter) errLocked() error {
	if rw.st.err != nil {
		return rw.st.err
	}
	return errConnClosed
}

func (rw *responseWriter) Flush() error {
	if !rw.wrote {
		return nil
	}
	sc := rw.st.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if rw.st.reset || sc.dead {
		return rw.errLocked()
	}
	if !rw.headersSent {
		rw.sendHeadersLocked(false)
	}
	return nil
}

// WriteTrailers records trailers, sent in a HEADERS frame with END_STREAM
// when the handler returns.
func (rw *responseWriter) WriteTrailers(h message.Headers) error {
	if !rw.wrote {
		return errors.New("h2: WriteTrailers before WriteHeader")
	}
	rw.trailers = h
	return nil
}

func (rw *responseWriter) HeaderWritten() bool { return rw.wrote }
