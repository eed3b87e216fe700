package http1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/legate-proxy/legate/internal/http/message"
)

// maxInterim bounds the 1xx responses skipped before a final one.
const maxInterim = 16

var (
	errBadRequestLine = errors.New("http1: request method, path or authority has invalid characters")
	errShortBody      = errors.New("http1: request body shorter than content-length")
	errBodyNoReader   = errors.New("http1: content-length set without a body")
	errUnfinished     = errors.New("http1: previous response body not fully read")
)

var copyPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// ClientConn is an upstream HTTP/1.1 connection. WriteRequest and
// ReadResponse may run on different goroutines (full duplex); each of them
// is sequential.
type ClientConn struct {
	nc   net.Conn
	bufs *connBufs
	lim  Limits
	body body

	wrote atomic.Bool // the current request was written completely

	active   bool
	close    bool // the response asked to close, or is close-delimited
	broken   bool
	upgraded bool
	hijacked bool
}

// NewClientConn wraps nc. Responses are parsed with the default limits.
func NewClientConn(nc net.Conn) *ClientConn {
	c := &ClientConn{nc: nc, bufs: getBufs(nc), lim: Limits{}.withDefaults()}
	c.body.br = c.bufs.br
	c.body.lim = &c.lim
	c.body.bufs = c.bufs
	c.body.upstream = true
	return c
}

// Release returns the pooled buffers; the caller closes the connection.
func (c *ClientConn) Release() {
	putBufs(c.bufs)
	c.bufs = nil
	c.body = body{err: errReleased}
}

// WriteRequest writes req and streams its body to EOF. Framing comes from
// ContentLength and Body: content-length when ≥ 0, chunked (with the body's
// trailers) when -1 and Body is set.
func (c *ClientConn) WriteRequest(req *message.Request) error {
	c.wrote.Store(false)
	path := req.Path
	if path == "" {
		path = "/"
	}
	if !isToken(req.Method) || !validTarget(path) || !validAuthority(req.Authority) {
		return errBadRequestLine
	}
	if req.ContentLength > 0 && req.Body == nil {
		return errBodyNoReader
	}
	bw := c.bufs.bw
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(path)
	bw.WriteString(" HTTP/1.1\r\nhost: ")
	bw.WriteString(req.Authority)
	bw.WriteString("\r\n")
	writeFields(bw, req.Header, true)
	if req.Header.Has("upgrade") {
		bw.WriteString("connection: upgrade\r\n")
	}
	chunked := false
	switch {
	case req.ContentLength < 0 && req.Body != nil:
		bw.WriteString("transfer-encoding: chunked\r\n")
		chunked = true
	case req.ContentLength > 0:
		writeContentLength(bw, req.ContentLength)
	case req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH":
		// RFC 9110: a user agent should send a length for these methods.
		writeContentLength(bw, 0)
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return err
	}
	if chunked || req.ContentLength > 0 {
		if err := c.copyBody(req, chunked); err != nil {
			return err
		}
	}
	c.wrote.Store(true)
	return nil
}

func (c *ClientConn) copyBody(req *message.Request, chunked bool) error {
	bw := c.bufs.bw
	buf := copyPool.Get().(*[32 << 10]byte)
	defer copyPool.Put(buf)
	var n int64
	for {
		m, rerr := req.Body.Read(buf[:])
		if m > 0 {
			if !chunked && n+int64(m) > req.ContentLength {
				return errBodyTooLong
			}
			if chunked {
				writeChunkHeader(bw, m)
			}
			bw.Write(buf[:m])
			if chunked {
				bw.WriteString("\r\n")
			}
			n += int64(m)
			if rerr == nil {
				// The next Read may block: what we have must reach the peer.
				if err := bw.Flush(); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if chunked {
		writeLastChunk(bw, req.Body.Trailers())
	} else if n != req.ContentLength {
		return errShortBody
	}
	return bw.Flush()
}

func validTarget(p string) bool {
	for i := 0; i < len(p); i++ {
		if !urlTab[p[i]] {
			return false
		}
	}
	return true
}

func validAuthority(a string) bool {
	for i := 0; i < len(a); i++ {
		if !hostTab[a[i]] {
			return false
		}
	}
	return true
}

// ReadResponse reads the response to a request made with reqMethod,
// skipping interim 1xx responses other than 101. It returns io.EOF when the
// peer closed before sending a byte (a stale keep-alive connection) and a
// *ProtocolError for a malformed response.
func (c *ClientConn) ReadResponse(resp *message.Response, reqMethod string) error {
	err := c.readResponse(resp, reqMethod)
	if pe, ok := err.(*ProtocolError); ok {
		// A malformed upstream response is the proxy's 502, whatever the
		// shared parser would answer a client.
		pe.Status = 502
	}
	return err
}

func (c *ClientConn) readResponse(resp *message.Response, reqMethod string) error {
	if c.active && !c.body.done {
		return errUnfinished
	}
	c.active = true
	c.body.reset(bodyNone, 0)
	c.broken = true
	for interim := 0; ; interim++ {
		block, err := readBlock(c.bufs.br, c.bufs.block, c.lim.MaxHeaderBytes, interim == 0)
		c.bufs.block = block
		if err != nil {
			return blockErr(err)
		}
		nl := bytes.IndexByte(block, '\n')
		status, proto, err := parseStatusLine(block[:nl-1])
		if err != nil {
			return err
		}
		fields, err := parseFields(block, nl+1, &c.lim, c.bufs.fields[:0])
		c.bufs.fields = fields
		if err != nil {
			return err
		}
		s := string(block)
		h, in, err := classify(s, fields, resp.Header, false, &c.bufs.named)
		resp.Header = h
		if err != nil {
			// Interim responses too: their framing fields mean nothing,
			// but malformed ones are as malformed as anywhere.
			return err
		}
		if status < 200 && status != 101 {
			if interim >= maxInterim {
				return &ProtocolError{Status: 502, Details: detailCodecError, Err: errors.New("too many interim responses")}
			}
			continue
		}
		*resp = message.Response{Status: status, Protocol: proto, Header: h}
		if in.hasTE && proto == message.HTTP10 {
			// RFC 9112 §6.1: such framing is faulty.
			return badRequest(detailInvalidTE, "transfer-encoding on HTTP/1.0")
		}
		if status != 101 && in.upgradeAt >= 0 {
			// Listed in Connection, Upgrade is hop-by-hop; only a 101
			// acts on it. Passed on, it would offer a protocol switch the
			// proxy never made (and is malformed towards HTTP/2 clients).
			resp.Header = removeAt(resp.Header, in.upgradeAt)
		}
		switch {
		case status == 101:
			c.upgraded = true
		case reqMethod == "HEAD" || status == 304:
			resp.ContentLength = in.cl
		case status == 204:
		case in.chunked:
			c.body.reset(bodyChunked, 0)
			resp.ContentLength = -1
			resp.Body = &c.body
		case in.cl > 0:
			c.body.reset(bodyFixed, in.cl)
			resp.ContentLength = in.cl
			resp.Body = &c.body
		case in.cl == 0:
		default:
			c.body.reset(bodyClose, 0)
			c.close = true
			resp.ContentLength = -1
			resp.Body = &c.body
		}
		if in.connClose || (proto == message.HTTP10 && !in.connKeepAlive) {
			c.close = true
		}
		c.broken = false
		return nil
	}
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT [SP reason]".
func parseStatusLine(l []byte) (int, message.Protocol, error) {
	if len(l) < 12 || l[8] != ' ' {
		return 0, 0, badResponse("malformed status line")
	}
	var proto message.Protocol
	switch string(l[:8]) {
	case "HTTP/1.1":
		proto = message.HTTP11
	case "HTTP/1.0":
		proto = message.HTTP10
	default:
		return 0, 0, badResponse("unsupported HTTP version")
	}
	status := 0
	for _, ch := range l[9:12] {
		if ch < '0' || ch > '9' {
			return 0, 0, badResponse("malformed status code")
		}
		status = status*10 + int(ch-'0')
	}
	if status < 100 || status > 599 {
		return 0, 0, badResponse("status code out of range")
	}
	if len(l) > 12 {
		if l[12] != ' ' {
			return 0, 0, badResponse("malformed status line")
		}
		for _, ch := range l[13:] {
			if !valueTab[ch] {
				return 0, 0, badResponse("invalid reason phrase")
			}
		}
	}
	return status, proto, nil
}

// badResponse is a malformed upstream response: a proxy answers 502.
func badResponse(msg string) error { return protoErr(502, detailCodecError, msg) }

// Reusable reports whether another request may be sent: the request was
// written whole, the response body was read to its end, nothing the peer
// sent after it is buffered (see Stray), and neither side asked to close.
func (c *ClientConn) Reusable() bool {
	return c.active && !c.broken && !c.close && !c.upgraded && !c.hijacked &&
		c.body.done && c.body.err == nil && c.wrote.Load() && c.bufs.br.Buffered() == 0
}

// Stray reports bytes the peer sent after a complete response (its body
// read to the end): a body on a HEAD, 204 or 304 response, more body than
// the framing announced, or an unsolicited second response. Read on this
// connection, they would be taken for the next request's response — the
// next client would get someone else's answer — so the connection must
// close.
func (c *ClientConn) Stray() bool {
	return c.active && !c.broken && !c.upgraded && !c.hijacked && c.body.done &&
		c.bufs.br.Buffered() > 0
}

// Hijack hands over the connection after a 101 response. The reader yields
// the bytes already buffered, then reads nc.
func (c *ClientConn) Hijack() (net.Conn, io.Reader) {
	c.bufs.bw.Flush()
	c.hijacked = true
	return c.nc, hijackReader(c.bufs.br, c.nc)
}
