//lint:file-ignore SA1019 net/http's own HTTP/2 cannot serve or dial over a caller-owned net.Conn; x/net/http2 still can (from go1.27 it wraps net/http behind the same API).

package h2

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/legate-proxy/legate/internal/http/message"
)

// MaxConcurrentStreamsCap bounds SETTINGS_MAX_CONCURRENT_STREAMS on
// downstream connections. Envoy's default is 2^31-1, but x/net runs one
// goroutine per open stream, so an unbounded limit would let one client
// pin unbounded memory; 1000 is far above what browsers and gRPC clients
// open (100-250) and is applied to the default and to larger settings.
const MaxConcurrentStreamsCap = 1000

// ServerConfig are one HTTP connection manager's HTTP/2 settings
// (http2_protocol_options and common_http_protocol_options).
type ServerConfig struct {
	// MaxConcurrentStreams is advertised in SETTINGS; 0 or anything above
	// MaxConcurrentStreamsCap means MaxConcurrentStreamsCap.
	MaxConcurrentStreams uint32
	// InitialStreamWindow and InitialConnWindow are the receive windows;
	// 0 keeps x/net's 1 MiB. Envoy's defaults are 256 MiB; the caller
	// passes them when configured.
	InitialStreamWindow, InitialConnWindow uint32
	// IdleTimeout sends GOAWAY after this long without open streams
	// (common_http_protocol_options.idle_timeout); 0 disables.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the decoded header list
	// (max_request_headers_kb); it becomes SETTINGS_MAX_HEADER_LIST_SIZE.
	MaxHeaderBytes int
	// MaxHeaders is max_headers_count; a request with more header fields
	// is answered 431 without reaching the handler. 0 means no limit.
	MaxHeaders int
}

// discardLog swallows x/net's per-connection logging (preface errors from
// scanners and the like); Legate reports through stats instead.
var discardLog = log.New(io.Discard, "", 0)

// Serve speaks HTTP/2 on nc until the connection ends, calling handle once
// per stream on that stream's goroutine; the stream ends when handle
// returns. nc may be a *tls.Conn that negotiated "h2", a cleartext
// connection whose client sent the prior-knowledge preface, or a wrapper
// whose Read first replays bytes the caller peeked (the preface included).
// Requests carry Scheme "https" when nc exposes ConnectionState.
//
// When ctx is cancelled Serve sends GOAWAY, lets open streams finish and
// then returns; closing nc forces it out at once.
//
// To reset a stream mid-response (upstream failure after headers), handle
// calls AbortStream.
func Serve(ctx context.Context, nc net.Conn, cfg ServerConfig, handle func(req *message.Request, w message.ResponseWriter)) {
	streams := cfg.MaxConcurrentStreams
	if streams == 0 || streams > MaxConcurrentStreamsCap {
		streams = MaxConcurrentStreamsCap
	}
	h2s := &http2.Server{
		MaxConcurrentStreams:         streams,
		IdleTimeout:                  cfg.IdleTimeout,
		MaxUploadBufferPerStream:     clampWindow(cfg.InitialStreamWindow),
		MaxUploadBufferPerConnection: clampWindow(cfg.InitialConnWindow),
	}
	// started fires once x/net has registered the connection for graceful
	// shutdown (it reports StateActive after reading the preface); a
	// shutdown requested earlier would otherwise find nothing to drain.
	started := make(chan struct{})
	var startOnce sync.Once
	hs := &http.Server{
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		ErrorLog:       discardLog,
		ConnState: func(net.Conn, http.ConnState) {
			startOnce.Do(func() { close(started) })
		},
	}
	if err := http2.ConfigureServer(hs, h2s); err != nil {
		// Only a TLSConfig with bad cipher suites fails, and hs has none.
		nc.Close()
		return
	}
	s := &server{handle: handle, scheme: "http", maxHeaders: cfg.MaxHeaders}
	if _, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		s.scheme = "https"
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		select {
		case <-done:
		case <-started:
			// Shutdown with no listeners only runs the registered
			// hooks, which send GOAWAY(NO_ERROR) and let streams end.
			hs.Shutdown(context.Background())
		}
	}()
	h2s.ServeConn(nc, &http2.ServeConnOpts{
		// Streams must outlive a cancelled ctx to drain gracefully.
		Context:    context.WithoutCancel(ctx),
		BaseConfig: hs,
		Handler:    s,
	})
	close(done)
}

// clampWindow keeps a configured window inside what x/net accepts (an
// int32); 0 means x/net's default.
func clampWindow(v uint32) int32 {
	if v > 1<<31-1 {
		return 1<<31 - 1
	}
	return int32(v)
}

type server struct {
	handle     func(*message.Request, message.ResponseWriter)
	scheme     string
	maxHeaders int
}

// serverStream holds every per-stream value in one allocation.
type serverStream struct {
	req  message.Request
	rw   responseWriter
	body requestBody
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.maxHeaders > 0 && headerCount(r.Header) > s.maxHeaders {
		w.Header()["Content-Type"] = nil
		w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
		return
	}
	st := &serverStream{}
	st.req = message.Request{
		Method:        r.Method,
		Scheme:        s.scheme,
		Authority:     r.Host,
		Path:          r.RequestURI,
		Protocol:      message.HTTP2,
		Header:        fromHTTPHeader(r.Header, nil),
		ContentLength: r.ContentLength,
	}
	// x/net moves the client's "trailer" declaration into r.Trailer's
	// keys; upstreams (Go's servers among them) keep only declared
	// trailers, so the declaration must travel on.
	if len(r.Trailer) > 0 {
		names := make([]string, 0, len(r.Trailer))
		for k := range r.Trailer {
			names = append(names, lowerName(k))
		}
		sort.Strings(names)
		st.req.Header = append(st.req.Header, message.Header{Name: "trailer", Value: strings.Join(names, ", ")})
	}
	// x/net leaves ContentLength 0 when the headers ended the stream (and
	// for an explicit content-length: 0); either way there is no body.
	if r.ContentLength != 0 {
		st.body.r = r
		st.req.Body = &st.body
	} else {
		st.req.ContentLength = 0
	}
	st.rw.w = w
	s.handle(&st.req, &st.rw)
}

// AbortStream resets the current stream (RST_STREAM) instead of ending it
// cleanly; call it only from the handle goroutine, typically when the
// upstream fails after the response headers went out. It does not return.
func AbortStream() {
	panic(http.ErrAbortHandler)
}

// requestBody exposes a downstream request body. x/net only surfaces
// request trailers the client pre-declared in a "trailer" header.
type requestBody struct {
	r        *http.Request
	trailers message.Headers
	eof      bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.r.Body.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		if len(b.r.Trailer) > 0 {
			b.trailers = fromHTTPHeader(b.r.Trailer, nil)
		}
	}
	return n, err
}

func (b *requestBody) Trailers() message.Headers { return b.trailers }

// responseWriter implements message.ResponseWriter over x/net's. Headers
// are buffered by x/net until the first Write or Flush, or until the
// handler returns, so a response without a body goes out in one frame.
type responseWriter struct {
	w     http.ResponseWriter
	wrote bool
}

var errHeaderWritten = errors.New("h2: response header already written")

func (rw *responseWriter) WriteHeader(status int, h message.Headers, contentLength int64) error {
	if rw.wrote {
		return errHeaderWritten
	}
	if status < 100 || status > 999 {
		return errors.New("h2: invalid status " + strconv.Itoa(status))
	}
	rw.wrote = true
	hdr := rw.w.Header()
	for i := range h {
		name := h[i].Name
		// x/net looks these up by canonical key to decide whether to add
		// its own (a sniffed content-type, a date); Legate forwards what
		// the upstream sent and nothing else.
		switch name {
		case "content-length":
			continue
		case "content-type":
			name = "Content-Type"
		case "date":
			name = "Date"
		case "content-encoding":
			name = "Content-Encoding"
		case "te":
			continue
		default:
			if connectionSpecific(name) {
				continue
			}
		}
		hdr[name] = append(hdr[name], h[i].Value)
	}
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = nil
	}
	if _, ok := hdr["Date"]; !ok {
		hdr["Date"] = nil
	}
	if contentLength >= 0 {
		hdr["Content-Length"] = []string{strconv.FormatInt(contentLength, 10)}
	}
	rw.w.WriteHeader(status)
	return nil
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if !rw.wrote {
		return 0, errors.New("h2: Write before WriteHeader")
	}
	return rw.w.Write(p)
}

func (rw *responseWriter) Flush() error {
	if f, ok := rw.w.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	rw.w.(http.Flusher).Flush()
	return nil
}

// WriteTrailers records trailers; x/net sends them in a HEADERS frame with
// END_STREAM when the handler returns.
func (rw *responseWriter) WriteTrailers(h message.Headers) error {
	if !rw.wrote {
		return errors.New("h2: WriteTrailers before WriteHeader")
	}
	hdr := rw.w.Header()
	for i := range h {
		k := http.TrailerPrefix + h[i].Name
		hdr[k] = append(hdr[k], h[i].Value)
	}
	return nil
}

func (rw *responseWriter) HeaderWritten() bool { return rw.wrote }
