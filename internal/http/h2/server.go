package h2

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/legate-proxy/legate/internal/http/message"
)

// The downstream HTTP/2 server is Legate's own connection loop over x/net's
// Framer and HPACK: x/net's Server has no hooks for Envoy's flood limits,
// premature-reset accounting or codec stats, and it keeps a goroutine and
// buffers per idle connection.
//
// Concurrency: one goroutine (Serve's) reads and handles every inbound
// frame; each request runs its handler on its own goroutine; a writer
// goroutine exists only while frames are queued. Everything shared sits
// under ServerConn.mu.

// MaxConcurrentStreamsCap bounds SETTINGS_MAX_CONCURRENT_STREAMS on
// downstream connections. Envoy's default is 2^31-1, but every open stream
// is a goroutine and buffers here, so an unbounded limit would let one
// client pin unbounded memory; 1000 is far above what browsers and gRPC
// clients open (100-250) and is applied to the default and larger settings.
const MaxConcurrentStreamsCap = 1000

// Envoy's defaults for http2_protocol_options' flood limits.
const (
	DefaultMaxOutboundFrames                            = 10000
	DefaultMaxOutboundControlFrames                     = 1000
	DefaultMaxConsecutiveInboundFramesWithEmptyPayload  = 1
	DefaultMaxInboundPriorityFramesPerStream            = 100
	DefaultMaxInboundWindowUpdateFramesPerDataFrameSent = 10
	// Envoy's runtime defaults for overload.premature_reset_*.
	DefaultPrematureResetMinStreamLifetime = time.Second
	DefaultPrematureResetTotalStreamCount  = 500
)

const (
	defaultWindow = 1 << 20 // receive windows when unset (Envoy: 256 MiB)
	maxWindow     = 1<<31 - 1
	// maxFrameSize is the SETTINGS_MAX_FRAME_SIZE Legate reads (the
	// protocol's default); bigger frames would grow every read buffer.
	maxFrameSize = 16384
	// maxQueuedData bounds response bytes queued for the socket on one
	// connection; handlers block beyond it (backpressure).
	maxQueuedData = 256 << 10
	// hpackTableSize is the largest dynamic table either side keeps.
	hpackTableSize = 4096
	// handshakeTimeout bounds the client preface and first SETTINGS when
	// the caller sets no HandshakeTimeout.
	handshakeTimeout = 10 * time.Second
)

// ErrIdle is returned by ServerConn.Serve when the connection has had no
// open stream for ServerConfig.IdleGrace: every buffer has been released
// and the caller may park the socket (wait for it to become readable
// without a goroutine) and call Serve again, which resumes with the
// connection's state (HPACK tables, settings, windows) intact.
var ErrIdle = errors.New("h2: connection idle")

// ServerConfig are one HTTP connection manager's HTTP/2 settings
// (http2_protocol_options and common_http_protocol_options), resolved: zero
// values mean the defaults named on each field.
type ServerConfig struct {
	// MaxConcurrentStreams is advertised in SETTINGS; 0 or anything above
	// MaxConcurrentStreamsCap means MaxConcurrentStreamsCap.
	MaxConcurrentStreams uint32
	// InitialStreamWindow and InitialConnWindow are the receive windows;
	// 0 means 1 MiB.
	InitialStreamWindow, InitialConnWindow uint32
	// IdleTimeout sends GOAWAY after this long without open streams
	// (common_http_protocol_options.idle_timeout); 0 disables.
	IdleTimeout time.Duration
	// IdleGrace, when set, makes Serve return ErrIdle after this long
	// without open streams (see ErrIdle); 0 keeps Serve reading.
	IdleGrace time.Duration
	// HandshakeTimeout bounds the client preface and first SETTINGS; 0
	// means 10 s.
	HandshakeTimeout time.Duration
	// FrameTimeout bounds reading the rest of a frame once its first byte
	// has arrived (request_headers_timeout); 0 disables.
	FrameTimeout time.Duration
	// WriteTimeout bounds each write to the socket (a peer that stops
	// reading); 0 disables.
	WriteTimeout time.Duration
	// MaxHeaderBytes bounds the decoded header list
	// (max_request_headers_kb); it becomes SETTINGS_MAX_HEADER_LIST_SIZE.
	MaxHeaderBytes int
	// MaxHeaders is max_headers_count; a request with more header fields
	// is answered 431 without reaching the handler. 0 means no limit.
	MaxHeaders int

	// Flood limits (http2_protocol_options); 0 means Envoy's default.
	MaxOutboundFrames, MaxOutboundControlFrames uint32
	// MaxConsecutiveEmptyFrames is
	// max_consecutive_inbound_frames_with_empty_payload; unlike the
	// others it may be configured 0, so it is used as given when
	// MaxConsecutiveEmptyFramesSet.
	MaxConsecutiveEmptyFrames                    uint32
	MaxConsecutiveEmptyFramesSet                 bool
	MaxInboundPriorityFramesPerStream            uint32
	MaxInboundWindowUpdateFramesPerDataFrameSent uint32
	// StreamErrorOnInvalidMessaging resets only the offending stream for
	// a malformed request; false (Envoy's default) closes the connection.
	StreamErrorOnInvalidMessaging bool

	// Rapid-reset defence: once PrematureResetTotalStreamCount streams
	// have closed, a connection where more than half were reset by the
	// client within PrematureResetMinStreamLifetime of opening gets
	// GOAWAY and is closed. Zero means Envoy's defaults (1 s, 500).
	PrematureResetMinStreamLifetime time.Duration
	PrematureResetTotalStreamCount  uint64

	// Stats receive the codec's counters; nil counts nowhere.
	Stats *ServerStats
	// OnPrematureResets is called (on the read goroutine) when a
	// connection is closed for premature resets.
	OnPrematureResets func()
	// OnProtocolError is called when the connection ends with a
	// connection error other than NO_ERROR (the client broke the protocol
	// or a limit).
	OnProtocolError func()
}

func (c *ServerConfig) resolve() {
	if c.MaxConcurrentStreams == 0 || c.MaxConcurrentStreams > MaxConcurrentStreamsCap {
		c.MaxConcurrentStreams = MaxConcurrentStreamsCap
	}
	if c.InitialStreamWindow == 0 {
		c.InitialStreamWindow = defaultWindow
	}
	if c.InitialConnWindow == 0 {
		c.InitialConnWindow = defaultWindow
	}
	c.InitialStreamWindow = min(max(c.InitialStreamWindow, 65535), maxWindow)
	c.InitialConnWindow = min(max(c.InitialConnWindow, 65535), maxWindow)
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = handshakeTimeout
	}
	if c.MaxOutboundFrames == 0 {
		c.MaxOutboundFrames = DefaultMaxOutboundFrames
	}
	if c.MaxOutboundControlFrames == 0 {
		c.MaxOutboundControlFrames = DefaultMaxOutboundControlFrames
	}
	if !c.MaxConsecutiveEmptyFramesSet {
		c.MaxConsecutiveEmptyFrames = DefaultMaxConsecutiveInboundFramesWithEmptyPayload
	}
	if c.MaxInboundPriorityFramesPerStream == 0 {
		c.MaxInboundPriorityFramesPerStream = DefaultMaxInboundPriorityFramesPerStream
	}
	if c.MaxInboundWindowUpdateFramesPerDataFrameSent == 0 {
		c.MaxInboundWindowUpdateFramesPerDataFrameSent = DefaultMaxInboundWindowUpdateFramesPerDataFrameSent
	}
	if c.PrematureResetMinStreamLifetime == 0 {
		c.PrematureResetMinStreamLifetime = DefaultPrematureResetMinStreamLifetime
	}
	if c.PrematureResetTotalStreamCount == 0 {
		c.PrematureResetTotalStreamCount = DefaultPrematureResetTotalStreamCount
	}
	if c.Stats == nil {
		c.Stats = discardStats
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 60 << 10
	}
}

// Handler serves one stream on its own goroutine; the stream ends when it
// returns. ctx is cancelled when the client resets the stream or the
// connection ends.
type Handler func(ctx context.Context, req *message.Request, w message.ResponseWriter)

// Serve speaks HTTP/2 on nc until the connection ends, calling handle once
// per stream. nc may be a *tls.Conn that negotiated "h2", a cleartext
// connection whose client sent the prior-knowledge preface, or a wrapper
// whose Read first replays bytes the caller peeked (the preface included).
// Requests carry Scheme "https" when nc exposes ConnectionState.
//
// When ctx is cancelled Serve sends GOAWAY, lets open streams finish and
// then returns; closing nc forces it out at once.
//
// To reset a stream mid-response (upstream failure after headers), handle
// calls AbortStream.
func Serve(ctx context.Context, nc net.Conn, cfg ServerConfig, handle Handler) {
	cfg.IdleGrace = 0
	NewServerConn(nc, cfg, handle).Serve(ctx)
}

// ServerConn is one downstream HTTP/2 connection.
type ServerConn struct {
	nc     net.Conn
	cfg    ServerConfig
	handle Handler
	scheme string
	st     *ServerStats

	// Read-goroutine state.
	rd          connReader
	fr          *http2.Framer
	dec         *hpack.Decoder
	handshaken  atomic.Bool
	maxClientID uint32
	emptyRun    uint32
	priorityRx  uint64
	windowRx    uint64
	opened      uint64
	pending     []*stream // opened, handler not yet started
	base        context.Context
	// The read deadline is the idle one (graceDeadline: IdleGrace's).
	idleDeadline, graceDeadline atomic.Bool

	mu      sync.Mutex
	wcond   sync.Cond // writers waiting for window or queue space
	streams map[uint32]*stream
	live    int // handler goroutines running
	handled sync.WaitGroup
	// Premature-reset accounting.
	closedStreams, premature uint64
	dataSent                 uint64 // DATA frames queued, for the WINDOW_UPDATE limit
	// Outbound queue: encoded frames waiting for the writer goroutine.
	out      []byte
	outN     queueCount // frames in out
	flight   queueCount // frames the writer is writing
	writing  bool
	dead     bool // the connection failed or was closed: no more I/O
	closing  bool // close the socket once the queue is flushed
	goAway   bool // GOAWAY sent: no new streams
	peerGone bool // the client sent GOAWAY
	henc     *hpack.Encoder
	hbuf     sliceWriter
	// Peer settings and send windows.
	peerWindow   int32 // SETTINGS_INITIAL_WINDOW_SIZE
	peerMaxFrame uint32
	sendWindow   int32
	// Receive window of the connection and bytes consumed not yet
	// returned with WINDOW_UPDATE.
	recvWindow, recvUnacked int32
	closed                  chan struct{}
	closeOnce               sync.Once
}

// queueCount is what part of the outbound queue counts against the flood
// limits.
type queueCount struct{ frames, control, data int }

func (q *queueCount) add(o queueCount) {
	q.frames += o.frames
	q.control += o.control
	q.data += o.data
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// NewServerConn prepares nc for Serve.
func NewServerConn(nc net.Conn, cfg ServerConfig, handle Handler) *ServerConn {
	cfg.resolve()
	sc := &ServerConn{
		nc: nc, cfg: cfg, handle: handle, scheme: "http", st: cfg.Stats,
		streams:      make(map[uint32]*stream),
		peerWindow:   65535,
		peerMaxFrame: 16384,
		sendWindow:   65535,
		recvWindow:   65535,
		closed:       make(chan struct{}),
	}
	if _, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		sc.scheme = "https"
	}
	sc.wcond.L = &sc.mu
	sc.rd.nc = nc
	sc.rd.sc = sc
	sc.dec = hpack.NewDecoder(hpackTableSize, nil)
	sc.henc = hpack.NewEncoder(&sc.hbuf)
	sc.henc.SetMaxDynamicTableSizeLimit(hpackTableSize)
	return sc
}

func (sc *ServerConn) newFramer() {
	fr := http2.NewFramer(nil, &sc.rd)
	fr.ReadMetaHeaders = sc.dec
	fr.MaxHeaderListSize = uint32(sc.cfg.MaxHeaderBytes)
	fr.SetMaxReadFrameSize(maxFrameSize)
	sc.fr = fr
}

// errConnDone ends the read loop once the connection has been closed on
// purpose (flood, GOAWAY after drain).
var errConnDone = errors.New("h2: connection done")

// Serve runs the connection. It returns nil when the connection has ended
// (its socket closed, every handler returned), or ErrIdle (see there).
func (sc *ServerConn) Serve(ctx context.Context) error {
	sc.base = context.WithoutCancel(ctx)
	stopDrain := context.AfterFunc(ctx, sc.drain)
	defer stopDrain()
	if sc.fr == nil {
		sc.newFramer()
	}
	err := sc.readLoop()
	if err == ErrIdle {
		// Drop the framer's read buffer; a resumed Serve builds another
		// around the same HPACK decoder.
		sc.fr = nil
		sc.rd.release()
		sc.mu.Lock()
		sc.hbuf.b = nil
		sc.mu.Unlock()
		return ErrIdle
	}
	sc.mu.Lock()
	graceful := sc.closing
	if !graceful {
		sc.failLocked()
	} // else the writer ends the connection once the GOAWAY is out
	sc.mu.Unlock()
	<-sc.closed
	if graceful {
		// The write side is shut after a GOAWAY: read what the peer still
		// sends (bounded by closeGrace) so closing does not reset the
		// connection before it has read the GOAWAY.
		var b [512]byte
		for {
			if _, err := sc.nc.Read(b[:]); err != nil {
				break
			}
		}
		sc.nc.Close()
	}
	sc.handled.Wait()
	sc.rd.release()
	return nil
}

// drain starts a graceful shutdown: GOAWAY, then close once open streams
// have finished.
func (sc *ServerConn) drain() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.sendGoAwayLocked(http2.ErrCodeNo)
	sc.maybeFinishLocked()
}

// maybeFinishLocked closes a draining connection that has no work left.
// It also starts the idle clock when the last stream has ended.
func (sc *ServerConn) maybeFinishLocked() {
	if !sc.idleLocked() {
		return
	}
	if sc.goAway || sc.peerGone {
		sc.closeAfterFlushLocked()
		return
	}
	if !sc.dead && sc.handshaken.Load() {
		sc.armIdleDeadline()
	}
}

func (sc *ServerConn) readLoop() error {
	if !sc.handshaken.Load() {
		if err := sc.handshake(); err != nil {
			return err
		}
	}
	for {
		sc.rd.boundary = true
		if sc.rd.buffered() == 0 {
			// Everything that arrived together has been read: start the
			// handlers of streams it opened and did not reset. A HEADERS
			// and RST_STREAM sent back to back cost no request.
			sc.dispatch()
			if err := sc.setReadDeadline(); err != nil {
				return err
			}
		}
		f, err := sc.fr.ReadFrame()
		if err != nil {
			if err == ErrIdle {
				return ErrIdle
			}
			if err := sc.readError(err); err != nil {
				return err
			}
			continue
		}
		if err := sc.processFrame(f); err != nil {
			return sc.connError(err)
		}
	}
}

// idle reports whether no stream is open or starting.
func (sc *ServerConn) idle() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.idleLocked()
}

func (sc *ServerConn) idleLocked() bool {
	return len(sc.streams) == 0 && sc.live == 0 && len(sc.pending) == 0
}

// setReadDeadline applies the idle timeout (or idle grace) while no stream
// is open, and no deadline otherwise.
func (sc *ServerConn) setReadDeadline() error {
	sc.mu.Lock()
	idle := sc.idleLocked()
	dead := sc.dead
	sc.mu.Unlock()
	if dead {
		return errConnDone
	}
	if idle {
		sc.armIdleDeadline()
	} else if sc.idleDeadline.Load() {
		sc.idleDeadline.Store(false)
		sc.nc.SetReadDeadline(time.Time{})
	}
	return nil
}

// armIdleDeadline starts the idle clock: IdleGrace (then Serve returns
// ErrIdle) or IdleTimeout (then GOAWAY and close). It is called when the
// read loop finds no stream open and when the last stream ends, on
// whichever goroutine ends it.
func (sc *ServerConn) armIdleDeadline() {
	switch {
	case sc.cfg.IdleGrace > 0:
		sc.graceDeadline.Store(true)
		sc.idleDeadline.Store(true)
		sc.nc.SetReadDeadline(time.Now().Add(sc.cfg.IdleGrace))
	case sc.cfg.IdleTimeout > 0:
		sc.graceDeadline.Store(false)
		sc.idleDeadline.Store(true)
		sc.nc.SetReadDeadline(time.Now().Add(sc.cfg.IdleTimeout))
	}
}

func (sc *ServerConn) handshake() error {
	sc.nc.SetReadDeadline(time.Now().Add(sc.cfg.HandshakeTimeout))
	var pre [len(http2.ClientPreface)]byte
	if _, err := ioReadFull(&sc.rd, pre[:]); err != nil || string(pre[:]) != http2.ClientPreface {
		sc.nc.Close()
		return errConnDone
	}
	sc.mu.Lock()
	sc.queueSettingsLocked()
	sc.mu.Unlock()
	// The first frame must be SETTINGS (RFC 9113 3.4).
	f, err := sc.fr.ReadFrame()
	if err != nil {
		return sc.readError(err)
	}
	if s, ok := f.(*http2.SettingsFrame); !ok || s.IsAck() {
		return sc.connError(http2.ConnectionError(http2.ErrCodeProtocol))
	}
	sc.nc.SetReadDeadline(time.Time{})
	sc.handshaken.Store(true)
	if err := sc.processFrame(f); err != nil {
		return sc.connError(err)
	}
	return nil
}

// readError handles a failed ReadFrame: a stream error resets the stream
// and reading goes on; anything else ends the connection.
func (sc *ServerConn) readError(err error) error {
	var se http2.StreamError
	if errors.As(err, &se) {
		// A malformed header block (the framer's checks); its stream id
		// counts as used.
		sc.mu.Lock()
		if st := sc.streams[se.StreamID]; st == nil && se.StreamID > sc.maxClientID && se.StreamID%2 == 1 {
			sc.maxClientID = se.StreamID
		}
		sc.mu.Unlock()
		if se.Code == http2.ErrCodeProtocol {
			return sc.messagingError(se.StreamID)
		}
		sc.resetStream(se.StreamID, se.Code)
		return nil
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		return sc.connError(ce)
	}
	if errors.Is(err, http2.ErrFrameTooLarge) {
		return sc.connError(http2.ConnectionError(http2.ErrCodeFrameSize))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && sc.idleDeadline.Load() {
		// idle_timeout with no stream open: tell the client and go.
		sc.mu.Lock()
		sc.sendGoAwayLocked(http2.ErrCodeNo)
		sc.closeAfterFlushLocked()
		sc.mu.Unlock()
		return errConnDone
	}
	return errConnDone
}

// messagingError handles a malformed request on stream id:
// stream_error_on_invalid_http_messaging resets the stream, otherwise
// (Envoy's default) the connection is closed.
func (sc *ServerConn) messagingError(id uint32) error {
	sc.st.RxMessagingError.Inc()
	if sc.cfg.StreamErrorOnInvalidMessaging {
		sc.resetStream(id, http2.ErrCodeProtocol)
		return nil
	}
	sc.resetStream(id, http2.ErrCodeProtocol)
	return sc.connError(http2.ConnectionError(http2.ErrCodeProtocol))
}

// connError sends GOAWAY with the error's code (a ConnectionError; other
// errors are internal) and ends the connection.
func (sc *ServerConn) connError(err error) error {
	if err == errConnDone || err == ErrIdle {
		return err
	}
	code := http2.ErrCodeInternal
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		code = http2.ErrCode(ce)
	}
	if code != http2.ErrCodeNo && sc.cfg.OnProtocolError != nil {
		sc.cfg.OnProtocolError()
	}
	sc.mu.Lock()
	sc.sendGoAwayLocked(code)
	sc.closeAfterFlushLocked()
	sc.mu.Unlock()
	return errConnDone
}

// flood closes the connection for exceeding an inbound limit: GOAWAY
// (ENHANCE_YOUR_CALM) and close.
func (sc *ServerConn) flood() error {
	return sc.connError(http2.ConnectionError(http2.ErrCodeEnhanceYourCalm))
}

// ioReadFull is io.ReadFull without importing io for one call site.
func ioReadFull(r *connReader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
