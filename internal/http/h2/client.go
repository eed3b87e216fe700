//lint:file-ignore SA1019 net/http's own HTTP/2 cannot serve or dial over a caller-owned net.Conn; x/net/http2 still can (from go1.27 it wraps net/http behind the same API).

package h2

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/legate-proxy/legate/internal/http/message"
)

// ClientConfig are a cluster's upstream HTTP/2 settings.
type ClientConfig struct {
	// MaxConcurrentStreams caps the streams Legate opens on one
	// connection, below whatever the peer advertises; 0 means only the
	// peer's limit applies (Envoy's default is 2^31-1).
	MaxConcurrentStreams uint32
	// InitialStreamWindow and InitialConnWindow are the receive windows;
	// 0 keeps x/net's defaults (4 MiB per stream, 1 GiB per connection).
	InitialStreamWindow, InitialConnWindow uint32
	// MaxHeaderBytes bounds response header lists; 0 means x/net's
	// default (10 MiB).
	MaxHeaderBytes int
	// IdleTimeout closes a connection that has had no open stream for
	// this long; 0 never does.
	IdleTimeout time.Duration
	// PingInterval, when set, sends a PING after this long without frames
	// and closes the connection if no answer comes within PingTimeout
	// (default 15 s).
	PingInterval, PingTimeout time.Duration
}

// Transport builds ClientConns sharing one config; build it at config time.
type Transport struct {
	t   *http2.Transport
	max int64
}

// NewTransport returns a Transport for cfg.
func NewTransport(cfg ClientConfig) *Transport {
	// The window settings exist only on net/http's HTTP2Config, which x/net
	// reads through the linked http.Transport.
	t1 := &http.Transport{
		DisableCompression: true,
		IdleConnTimeout:    cfg.IdleTimeout,
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerStream:     int(cfg.InitialStreamWindow),
			MaxReceiveBufferPerConnection: int(cfg.InitialConnWindow),
		},
	}
	t2, err := http2.ConfigureTransports(t1)
	if err != nil {
		// Only fails when t1 already has HTTP/2 configured; it cannot.
		t2 = &http2.Transport{}
	}
	// Legate forwards bytes as they are: no transparent gzip.
	t2.DisableCompression = true
	t2.MaxHeaderListSize = uint32(max(cfg.MaxHeaderBytes, 0))
	t2.ReadIdleTimeout = cfg.PingInterval
	t2.PingTimeout = cfg.PingTimeout
	t2.IdleConnTimeout = cfg.IdleTimeout
	return &Transport{t: t2, max: int64(cfg.MaxConcurrentStreams)}
}

// ClientConn is one multiplexed upstream connection.
type ClientConn struct {
	cc     *http2.ClientConn
	nc     net.Conn
	max    int64
	active atomic.Int64
}

// NewClientConn starts HTTP/2 on nc (the preface and SETTINGS are sent
// now) with a Transport of its own; pools use Transport.NewClientConn.
func NewClientConn(nc net.Conn, cfg ClientConfig) (*ClientConn, error) {
	return NewTransport(cfg).NewClientConn(nc)
}

// NewClientConn starts HTTP/2 on nc.
func (t *Transport) NewClientConn(nc net.Conn) (*ClientConn, error) {
	cc, err := t.t.NewClientConn(nc)
	if err != nil {
		nc.Close()
		return nil, &Error{Kind: ConnectionTermination, Unprocessed: true, Err: err}
	}
	return &ClientConn{cc: cc, nc: nc, max: t.max}, nil
}

// CanTakeNewRequest reports whether a new stream may start now: the
// connection is open, has seen no GOAWAY, and is below both the peer's
// and the configured stream limits.
func (c *ClientConn) CanTakeNewRequest() bool {
	if c.max > 0 && c.active.Load() >= c.max {
		return false
	}
	return c.cc.CanTakeNewRequest()
}

// ActiveStreams is the number of streams started and not yet finished.
func (c *ClientConn) ActiveStreams() int { return int(c.active.Load()) }

// State is a snapshot of the connection for pools and admin output.
type State struct {
	Closed, Closing      bool // Closing: GOAWAY seen or sent, draining
	ActiveStreams        int
	MaxConcurrentStreams uint32 // the peer's, 0 before its SETTINGS
}

// State returns the connection's state.
func (c *ClientConn) State() State {
	s := c.cc.State()
	return State{
		Closed:               s.Closed,
		Closing:              s.Closing,
		ActiveStreams:        int(c.active.Load()),
		MaxConcurrentStreams: s.MaxConcurrentStreams,
	}
}

// Close closes the connection at once, failing open streams.
func (c *ClientConn) Close() error { return c.cc.Close() }

// Shutdown sends GOAWAY and waits for open streams to end (or ctx).
func (c *ClientConn) Shutdown(ctx context.Context) error { return c.cc.Shutdown(ctx) }

// RoundTrip sends req on a new stream, streaming its body and trailers,
// and returns once response headers arrive. The response body streams;
// reading it to io.EOF or closing it (it implements io.Closer) ends the
// stream. ctx governs the whole stream, body included: cancelling it
// resets the stream. Failures are *Error, except ctx's own error.
func (c *ClientConn) RoundTrip(ctx context.Context, req *message.Request) (*message.Response, error) {
	if n := c.active.Add(1); c.max > 0 && n > c.max {
		c.active.Add(-1)
		return nil, &Error{Kind: ConnectionTermination, Unprocessed: true, Err: errStreamLimit}
	}
	hr, body, err := toHTTPRequest(ctx, req)
	if err != nil {
		c.active.Add(-1)
		return nil, &Error{Kind: ProtocolError, Unprocessed: true, Err: err}
	}
	res, err := c.cc.RoundTrip(hr)
	if err != nil {
		c.active.Add(-1)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		e := classify(err)
		if e.Unprocessed && body != nil && body.touched {
			e.Unprocessed = false // part of the body is gone; not replayable
		}
		return nil, e
	}
	if !validStatus(res) {
		// x/net takes any integer (strconv.Atoi: "+200", "-1", "1000");
		// RFC 9113 8.3.2 wants a 3-digit code, and HTTP/2 has no 101.
		go res.Body.Close() // resets the stream if it is still open
		c.active.Add(-1)
		return nil, &Error{Kind: ProtocolError, Err: errBadStatus}
	}
	resp := &message.Response{
		Status:        res.StatusCode,
		Protocol:      message.HTTP2,
		Header:        fromHTTPHeader(res.Header, nil),
		ContentLength: res.ContentLength,
	}
	if res.StatusCode == 204 || res.StatusCode == 304 {
		// These have no content (RFC 9113 8.1.1: no DATA frame), whatever
		// the upstream sends after the headers: the response goes on
		// bodyless and the stream, if still open, is reset.
		if !isNoBody(res.Body) {
			go res.Body.Close()
		}
		c.active.Add(-1)
		return resp, nil
	}
	if isNoBody(res.Body) {
		// END_STREAM on the headers, or a HEAD response (whose
		// ContentLength stays what the upstream declared).
		c.active.Add(-1)
		return resp, nil
	}
	resp.Body = &responseBody{c: c, res: res, ctx: ctx}
	return resp, nil
}

// isNoBody reports x/net's body for a response that ended with its
// headers; x/net does not export the type, only its name is stable.
func isNoBody(b io.ReadCloser) bool {
	if b == nil || b == http.NoBody {
		return true
	}
	return reflect.TypeOf(b).Name() == "noBodyReader"
}

var (
	errStreamLimit = errors.New("h2: connection at its max_concurrent_streams")
	errBadStatus   = errors.New("h2: malformed :status in the upstream response")
)

// validStatus reports a final status of three digits, 200 to 599. x/net
// keeps the :status text as the start of Status.
func validStatus(res *http.Response) bool {
	code, _, _ := strings.Cut(res.Status, " ")
	if len(code) != 3 || code[0] < '2' || code[0] > '5' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return false
	}
	return res.StatusCode >= 200 && res.StatusCode <= 599
}

// toHTTPRequest builds the x/net request. Header keys stay lower-case:
// x/net writes names lower-cased anyway, and looks up only the few it
// treats specially, which are handled here.
func toHTTPRequest(ctx context.Context, req *message.Request) (*http.Request, *requestBodyReader, error) {
	scheme := req.Scheme
	if scheme == "" {
		scheme = "http"
	}
	u := &url.URL{Scheme: scheme, Host: req.Authority}
	path, query, hasQuery := strings.Cut(req.Path, "?")
	if strings.HasPrefix(path, "//") {
		// url.URL.RequestURI would turn a leading "//" into a
		// scheme-relative URL; x/net strips "scheme://host" back off.
		u.Opaque = "//" + req.Authority + path
	} else {
		u.Opaque = path
	}
	u.RawQuery = query
	u.ForceQuery = hasQuery && query == ""
	h := make(http.Header, len(req.Header)+1)
	for i := range req.Header {
		f := &req.Header[i]
		if connectionSpecific(f.Name) || f.Name == "content-length" || (f.Name == "te" && f.Value != "trailers") {
			continue
		}
		if f.Name == "user-agent" {
			h["User-Agent"] = append(h["User-Agent"], f.Value)
			continue
		}
		h[f.Name] = append(h[f.Name], f.Value)
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = nil // keep x/net from adding Go's
	}
	hr := &http.Request{
		Method:     req.Method,
		URL:        u,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     h,
		Host:       req.Authority,
		Body:       http.NoBody,
	}
	if req.Method == "" {
		hr.Method = http.MethodGet
	}
	var rb *requestBodyReader
	if req.Body != nil && req.ContentLength != 0 {
		// A non-nil Trailer makes x/net end the body with an empty DATA
		// frame or, when the body produced trailers by EOF, a HEADERS
		// frame; it reads the map only after the body's EOF.
		rb = &requestBodyReader{b: req.Body, tr: http.Header{}}
		hr.Body = rb
		hr.Trailer = rb.tr
		hr.ContentLength = req.ContentLength
	}
	return hr.WithContext(ctx), rb, nil
}

// requestBodyReader feeds a message body to x/net and copies its trailers
// into the request's Trailer map when it reaches EOF.
type requestBodyReader struct {
	b       message.Body
	tr      http.Header
	touched bool
}

func (r *requestBodyReader) Read(p []byte) (int, error) {
	r.touched = true
	n, err := r.b.Read(p)
	if err == io.EOF {
		for _, f := range r.b.Trailers() {
			if connectionSpecific(f.Name) {
				continue
			}
			r.tr[f.Name] = append(r.tr[f.Name], f.Value)
		}
	}
	return n, err
}

// Close is x/net telling us it is done with the body; the body belongs to
// the caller, who closes it.
func (r *requestBodyReader) Close() error { return nil }

// responseBody is a streaming upstream response body.
type responseBody struct {
	c        *ClientConn
	res      *http.Response
	ctx      context.Context
	trailers message.Headers
	done     bool
}

func (b *responseBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.res.Body.Read(p)
	if err == nil {
		return n, nil
	}
	if err == io.EOF {
		if len(b.res.Trailer) > 0 {
			b.trailers = fromHTTPHeader(b.res.Trailer, nil)
		}
		b.finish()
		return n, io.EOF
	}
	b.finish()
	if b.ctx.Err() != nil {
		return n, b.ctx.Err()
	}
	return n, classify(err)
}

func (b *responseBody) finish() {
	if !b.done {
		b.done = true
		b.c.active.Add(-1)
	}
}

// Trailers returns the response trailers once Read has returned io.EOF.
func (b *responseBody) Trailers() message.Headers { return b.trailers }

// Close ends the stream, resetting it (RST_STREAM CANCEL) if the body was
// not read to the end. x/net's Close waits for the request body writer,
// which may sit in a Read of a stalled downstream body, so it runs apart.
func (b *responseBody) Close() error {
	if !b.done {
		go b.res.Body.Close()
	}
	b.finish()
	return nil
}
