package http1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/legate-proxy/legate/internal/http/message"
)

// maxDrain is how much unread request body KeepAlive discards to keep a
// connection; beyond it closing is cheaper.
const maxDrain = 256 << 10

// 100-continue states. The request body may be read on another goroutine
// than the one writing the response, so the hand-over is atomic.
const (
	contNone    uint32 = iota // nothing to send
	contPending               // client waits for 100 Continue
	contSending               // body reader is writing it
	contSent                  // written
	contSkipped               // the final response went first
)

var continueLine = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// ServerConn is a downstream HTTP/1.x connection: it reads requests and
// writes their responses, one at a time. It is not safe for concurrent use,
// except that the current request's Body may be read on one goroutine while
// the response is written on another.
type ServerConn struct {
	nc   net.Conn
	bufs *connBufs
	lim  Limits
	body body
	rw   respWriter
	cont atomic.Uint32

	active     bool // a request has been read
	isHead     bool
	proto      message.Protocol
	wantClose  bool // the request asked to close
	closeAfter bool // we decided to close
	broken     bool // an error mid-stream: the framing is lost
	switched   bool // 101 sent
	hijacked   bool
}

// NewServerConn wraps nc, reading with limits lim (zero fields take defaults).
func NewServerConn(nc net.Conn, lim Limits) *ServerConn {
	c := &ServerConn{nc: nc, bufs: getBufs(nc), lim: lim.withDefaults()}
	c.body.br = c.bufs.br
	c.body.lim = &c.lim
	c.body.bufs = c.bufs
	c.body.sc = c
	c.rw.c = c
	return c
}

// Release returns the pooled buffers. The connection itself is the
// caller's to close. The ServerConn must not be used afterwards.
func (c *ServerConn) Release() {
	putBufs(c.bufs)
	c.bufs = nil
	c.body = body{err: errReleased}
}

// ReadRequest reads the next request into req, reusing req.Header's
// backing array. It returns io.EOF when the peer closed cleanly between
// requests and a *ProtocolError for a malformed or over-limit request, after
// which only an error response may be written (and the connection closed).
// Strings in req stay valid after the connection moves on; nothing aliases
// the read buffer.
func (c *ServerConn) ReadRequest(req *message.Request) error {
	if c.active && !c.KeepAlive() {
		return errPrevRequest
	}
	c.active = true
	c.isHead, c.wantClose, c.switched = false, false, false
	c.proto = message.HTTP11 // what an error reply is framed for
	c.rw = respWriter{c: c}
	c.cont.Store(contNone)
	c.body.reset(bodyNone, 0)
	// Until proven otherwise the framing is lost if we fail.
	c.broken = true

	block, err := readBlock(c.bufs.br, c.bufs.block, c.lim.MaxHeaderBytes, true)
	c.bufs.block = block
	if err != nil {
		return blockErr(err)
	}
	nl := bytes.IndexByte(block, '\n')
	line := block[:nl-1]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return badRequest(detailCodecError, "malformed request line")
	}
	for _, ch := range line[:sp1] {
		if !tcharTab[ch] {
			return badRequest(detailCodecError, "invalid method")
		}
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return badRequest(detailCodecError, "malformed request line")
	}
	sp2 += sp1 + 1
	if err := checkTarget(line[sp1+1 : sp2]); err != nil {
		return err
	}
	proto, err := parseVersion(line[sp2+1:])
	if err != nil {
		return err
	}
	fields, err := parseFields(block, nl+1, &c.lim, c.bufs.fields[:0])
	c.bufs.fields = fields
	if err != nil {
		return err
	}

	// The one allocation: every string of the request slices this.
	s := string(block)
	method, target := s[:sp1], s[sp1+1:sp2]

	h, in, err := classify(s, fields, req.Header, true, &c.bufs.named)
	req.Header = h
	if err != nil {
		return err
	}
	*req = message.Request{Method: method, Protocol: proto, Header: h}

	switch {
	case target[0] == '/':
		req.Path = target
	case target == "*":
		if method != "OPTIONS" {
			return badRequest(detailInvalidURL, "'*' target on a method other than OPTIONS")
		}
		req.Path = target
	case method == "CONNECT":
		return badRequest(detailInvalidURL, "CONNECT is not supported")
	default:
		if err := parseAbsolute(target, req); err != nil {
			return err
		}
	}
	if i := strings.IndexByte(req.Path, '#'); i >= 0 {
		// Envoy's default: the fragment is not part of the resource.
		req.Path = req.Path[:i]
	}

	if in.hostCount > 1 {
		return badRequest(detailCodecError, "multiple host headers")
	}
	if in.hostCount == 0 && proto == message.HTTP11 {
		return badRequest(detailMissingHost, "missing host header")
	}
	if in.hostCount == 1 {
		for i := 0; i < len(in.host); i++ {
			if !hostTab[in.host[i]] {
				return badRequest(detailInvalidChars, "invalid host header")
			}
			if in.host[i] == '@' {
				// Userinfo in Host is never legitimate towards a proxy and
				// confuses host-based routing (HTTP/2 refuses it too).
				return badRequest(detailInvalidAuthority, "userinfo in host header")
			}
		}
		if req.Authority == "" {
			req.Authority = in.host
		}
	}

	switch {
	case in.hasTE:
		if proto == message.HTTP10 {
			return badRequest(detailInvalidTE, "transfer-encoding on HTTP/1.0")
		}
		c.body.reset(bodyChunked, 0)
		req.ContentLength = -1
		req.Body = &c.body
	case in.cl > 0:
		c.body.reset(bodyFixed, in.cl)
		req.ContentLength = in.cl
		req.Body = &c.body
	}
	c.isHead = method == "HEAD"
	c.proto = proto
	c.wantClose = in.connClose || (proto == message.HTTP10 && !in.connKeepAlive)
	if in.expectContinue && proto == message.HTTP11 && req.Body != nil {
		c.cont.Store(contPending)
	}
	c.broken = false
	return nil
}

// checkTarget allows visible ASCII only, and well-formed percent-encoding
// in the path (a malformed one could be decoded differently upstream).
func checkTarget(t []byte) error {
	inPath := true
	for i := 0; i < len(t); i++ {
		ch := t[i]
		if !urlTab[ch] {
			return badRequest(detailInvalidURL, "invalid request-target")
		}
		switch {
		case ch == '?' || ch == '#':
			inPath = false
		case ch == '%' && inPath:
			if i+2 >= len(t) || hexVal[t[i+1]] < 0 || hexVal[t[i+2]] < 0 {
				return badRequest(detailInvalidURL, "malformed percent-encoding in path")
			}
		}
	}
	return nil
}

// parseVersion accepts HTTP/1.0 and HTTP/1.1; any other well-formed version
// is 505, anything else 400.
func parseVersion(v []byte) (message.Protocol, error) {
	if len(v) == 8 && string(v[:5]) == "HTTP/" && v[6] == '.' &&
		v[5] >= '0' && v[5] <= '9' && v[7] >= '0' && v[7] <= '9' {
		if v[5] == '1' && v[7] == '1' {
			return message.HTTP11, nil
		}
		if v[5] == '1' && v[7] == '0' {
			return message.HTTP10, nil
		}
		return 0, protoErr(505, detailCodecError, "unsupported HTTP version")
	}
	return 0, badRequest(detailCodecError, "malformed HTTP version")
}

// parseAbsolute splits an absolute-form target into Scheme, Authority and
// Path.
func parseAbsolute(t string, req *message.Request) error {
	var rest string
	switch {
	case len(t) > 7 && asciiEqualFold(t[:7], "http://"):
		req.Scheme, rest = "http", t[7:]
	case len(t) > 8 && asciiEqualFold(t[:8], "https://"):
		req.Scheme, rest = "https", t[8:]
	default:
		return badRequest(detailInvalidURL, "invalid request-target")
	}
	i := 0
	for i < len(rest) && rest[i] != '/' && rest[i] != '?' && rest[i] != '#' {
		// No userinfo: credentials in a request-target are never legitimate
		// towards a proxy and confuse host-based routing.
		if !hostTab[rest[i]] || rest[i] == '@' {
			return badRequest(detailInvalidURL, "invalid authority in request-target")
		}
		i++
	}
	if i == 0 {
		return badRequest(detailInvalidURL, "empty authority in request-target")
	}
	req.Authority = rest[:i]
	if !validHostPort(req.Authority) {
		return badRequest(detailInvalidURL, "invalid authority in request-target")
	}
	switch p := rest[i:]; {
	case p == "":
		req.Path = "/"
	case p[0] == '#':
		return badRequest(detailInvalidURL, "fragment without a path in request-target")
	case p[0] == '?':
		req.Path = "/" + p
	default:
		req.Path = p
	}
	return nil
}

// validHostPort checks the shape of an absolute-form authority: a
// bracketed IPv6 literal or a name without brackets or '%', then an
// optional all-digit port.
func validHostPort(a string) bool {
	host, port := a, ""
	if a[0] == '[' {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return false
		}
		host, port = a[:end+1], a[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i:]
	}
	if a[0] != '[' && strings.ContainsAny(host, "[]%:") {
		return false
	}
	for i := 1; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}

// sendContinue writes the interim response straight to the socket unless
// the final response started first. The response writer's buffer is empty
// here: the previous response was flushed and this one has not begun.
func (c *ServerConn) sendContinue() error {
	if !c.cont.CompareAndSwap(contPending, contSending) {
		return nil
	}
	_, err := c.nc.Write(continueLine)
	c.cont.Store(contSent)
	return err
}

// claimWrite makes sure no 100 Continue can follow or interleave with the
// response about to be written.
func (c *ServerConn) claimWrite() {
	for {
		switch c.cont.Load() {
		case contPending:
			if c.cont.CompareAndSwap(contPending, contSkipped) {
				return
			}
		case contSending:
			runtime.Gosched()
		default:
			return
		}
	}
}

// ResponseWriter returns the writer for the current request's response.
func (c *ServerConn) ResponseWriter() message.ResponseWriter { return &c.rw }

// CloseAfterResponse makes this the connection's last response.
func (c *ServerConn) CloseAfterResponse() { c.closeAfter = true }

// FinishResponse ends the response body and flushes.
func (c *ServerConn) FinishResponse() error {
	w := &c.rw
	if !w.headerWritten {
		c.broken = true
		return errNoResponse
	}
	if w.chunked && !w.finished {
		writeLastChunk(c.bufs.bw, nil)
	}
	w.finished = true
	if w.cl >= 0 && w.written < w.cl {
		// A truncated response: only closing tells the client.
		c.broken = true
	}
	if err := c.bufs.bw.Flush(); err != nil {
		c.broken = true
		return err
	}
	return nil
}

// KeepAlive reports whether another request may be read: the response is
// finished, both sides want to keep the connection, and the request body has
// been read or could be drained (up to 256 KiB).
func (c *ServerConn) KeepAlive() bool {
	if c.broken || c.closeAfter || c.wantClose || c.switched || c.hijacked || !c.rw.finished {
		return false
	}
	b := &c.body
	if b.done {
		return true
	}
	if b.err != nil {
		return false
	}
	if st := c.cont.Load(); st != contNone && st != contSent {
		// The client may or may not send the body it was not asked for.
		c.broken = true
		return false
	}
	if b.kind == bodyFixed && b.remain > maxDrain {
		c.broken = true
		return false
	}
	buf := drainPool.Get().(*[8 << 10]byte)
	defer drainPool.Put(buf)
	for total := 0; total <= maxDrain; {
		n, err := b.Read(buf[:])
		total += n
		if err == io.EOF {
			return true
		}
		if err != nil {
			break
		}
	}
	c.broken = true
	return false
}

// Hijack hands over the connection after a 101 response (or for any other
// reason the caller takes the bytes over). The reader yields the bytes
// already buffered, then reads nc. The ServerConn is done afterwards, apart
// from Release.
func (c *ServerConn) Hijack() (net.Conn, io.Reader) {
	c.bufs.bw.Flush()
	c.hijacked = true
	return c.nc, hijackReader(c.bufs.br, c.nc)
}

var errHeaderWritten = errors.New("http1: response header already written")

// respWriter implements message.ResponseWriter for ServerConn.
type respWriter struct {
	c             *ServerConn
	headerWritten bool
	noBody        bool
	chunked       bool
	finished      bool
	cl            int64 // -1 unless framed by content-length
	written       int64
}

func (w *respWriter) HeaderWritten() bool { return w.headerWritten }

// WriteHeader writes the status line, h and the framing. 1xx other than
// 101 are interim: they are flushed and another WriteHeader follows.
func (w *respWriter) WriteHeader(status int, h message.Headers, contentLength int64) error {
	if w.headerWritten {
		return errHeaderWritten
	}
	if status < 100 || status > 999 {
		return errors.New("http1: invalid status code")
	}
	c := w.c
	c.claimWrite()
	bw := c.bufs.bw
	writeStatusLine(bw, status)
	writeFields(bw, h, false)
	if status < 200 && status != 101 {
		bw.WriteString("\r\n")
		return bw.Flush()
	}
	w.headerWritten = true
	w.cl = -1
	if status == 101 {
		c.switched = true
		bw.WriteString("connection: upgrade\r\n\r\n")
		return bw.Flush()
	}
	w.noBody = c.isHead || status == 204 || status == 304
	switch {
	case status == 204:
	case contentLength >= 0:
		writeContentLength(bw, contentLength)
		if !w.noBody {
			w.cl = contentLength
		}
	case w.noBody:
	case c.proto == message.HTTP11:
		bw.WriteString("transfer-encoding: chunked\r\n")
		w.chunked = true
	default:
		// HTTP/1.0 without a length: the body ends with the connection.
		c.closeAfter = true
	}
	if c.closeAfter || c.wantClose || c.broken {
		bw.WriteString("connection: close\r\n\r\n")
	} else if c.proto == message.HTTP10 {
		bw.WriteString("connection: keep-alive\r\n\r\n")
	} else {
		bw.WriteString("\r\n")
	}
	return nil
}

func (w *respWriter) Write(p []byte) (int, error) {
	if !w.headerWritten {
		return 0, errNoResponse
	}
	if w.noBody || w.finished {
		return len(p), nil
	}
	bw := w.c.bufs.bw
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		w.c.broken = true
		return 0, errBodyTooLong
	}
	if w.chunked {
		if len(p) == 0 {
			return 0, nil
		}
		writeChunkHeader(bw, len(p))
	}
	n, err := bw.Write(p)
	w.written += int64(n)
	if err == nil && w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.c.broken = true
	}
	return n, err
}

func (w *respWriter) Flush() error {
	if err := w.c.bufs.bw.Flush(); err != nil {
		w.c.broken = true
		return err
	}
	return nil
}

// WriteTrailers ends a chunked body with h; without chunked framing
// trailers cannot be sent and are dropped.
func (w *respWriter) WriteTrailers(h message.Headers) error {
	if !w.headerWritten {
		return errNoResponse
	}
	if w.chunked && !w.finished {
		writeLastChunk(w.c.bufs.bw, h)
		w.finished = true
	}
	return nil
}
