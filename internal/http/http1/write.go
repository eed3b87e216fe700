package http1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/legate-proxy/legate/internal/http/message"
)

const (
	readBufSize  = 4 << 10
	writeBufSize = 4 << 10
)

// connBufs is the pooled per-connection memory.
type connBufs struct {
	br     *bufio.Reader
	bw     *bufio.Writer
	block  []byte   // raw header block being parsed
	fields []field  // offsets into block
	named  []string // tokens of Connection
}

var bufsPool = sync.Pool{New: func() any {
	return &connBufs{
		br:     bufio.NewReaderSize(nil, readBufSize),
		bw:     bufio.NewWriterSize(nil, writeBufSize),
		block:  make([]byte, 0, 1024),
		fields: make([]field, 0, 32),
	}
}}

func getBufs(nc net.Conn) *connBufs {
	b := bufsPool.Get().(*connBufs)
	b.br.Reset(nc)
	b.bw.Reset(nc)
	return b
}

func putBufs(b *connBufs) {
	if b == nil {
		return
	}
	b.br.Reset(nil)
	b.bw.Reset(nil)
	if cap(b.block) > 16<<10 {
		b.block = make([]byte, 0, 1024)
	}
	clear(b.named[:cap(b.named)])
	b.named = b.named[:0]
	bufsPool.Put(b)
}

// drainBuf is scratch for discarding unread request bodies.
var drainPool = sync.Pool{New: func() any { return new([8 << 10]byte) }}

// reasons holds the reason phrases Legate writes; others get an empty one,
// which the status-line grammar allows.
var reasons = map[int]string{
	100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
	200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information",
	204: "No Content", 205: "Reset Content", 206: "Partial Content", 207: "Multi-Status",
	300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other",
	304: "Not Modified", 305: "Use Proxy", 307: "Temporary Redirect", 308: "Permanent Redirect",
	400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
	404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
	407: "Proxy Authentication Required", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
	411: "Length Required", 412: "Precondition Failed", 413: "Payload Too Large",
	414: "URI Too Long", 415: "Unsupported Media Type", 416: "Range Not Satisfiable",
	417: "Expectation Failed", 421: "Misdirected Request", 422: "Unprocessable Entity",
	425: "Too Early", 426: "Upgrade Required", 428: "Precondition Required",
	429: "Too Many Requests", 431: "Request Header Fields Too Large",
	451: "Unavailable For Legal Reasons",
	500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
	503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
	507: "Insufficient Storage", 511: "Network Authentication Required",
}

// statusLines is every status line from 100 to 599, built once so that
// writing one is a single copy.
var statusLines = func() (t [500]string) {
	for code := 100; code < 600; code++ {
		t[code-100] = "HTTP/1.1 " + strconv.Itoa(code) + " " + reasons[code] + "\r\n"
	}
	return t
}()

func writeStatusLine(bw *bufio.Writer, status int) {
	if status >= 100 && status < 600 {
		bw.WriteString(statusLines[status-100])
		return
	}
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(status), 10))
	bw.WriteString(" \r\n")
}

// writeFields writes h, skipping the fields whose framing and connection
// management belong to the codec, and any field that is not a valid token
// name or whose value could split the message (CR, LF, NUL, other CTLs).
func writeFields(bw *bufio.Writer, h message.Headers, isReq bool) {
	for i := range h {
		name := h[i].Name
		if isHopByHop(name) || (isReq && name == "host") {
			continue
		}
		writeField(bw, name, h[i].Value)
	}
}

// isHopByHop reports framing and connection-scoped fields, which the
// writers derive themselves and never copy from a message.
func isHopByHop(name string) bool {
	switch name {
	case "connection", "content-length", "transfer-encoding", "keep-alive", "proxy-connection":
		return true
	}
	return false
}

// writeField writes one field, dropping any a peer could use to inject
// framing (invalid names, CR/LF or other controls in values).
func writeField(bw *bufio.Writer, name, value string) {
	if !isToken(name) || !validValue(value) {
		return
	}
	bw.WriteString(name)
	bw.WriteString(": ")
	bw.WriteString(value)
	bw.WriteString("\r\n")
}

func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if !valueTab[v[i]] {
			return false
		}
	}
	return true
}

func writeContentLength(bw *bufio.Writer, n int64) {
	bw.WriteString("content-length: ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), n, 10))
	bw.WriteString("\r\n")
}

func writeChunkHeader(bw *bufio.Writer, n int) {
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
	bw.WriteString("\r\n")
}

// writeLastChunk ends a chunked body with optional trailers.
func writeLastChunk(bw *bufio.Writer, trailers message.Headers) {
	bw.WriteString("0\r\n")
	for i := range trailers {
		name := trailers[i].Name
		switch name {
		case "host", "te", "upgrade", "trailer", "expect":
			continue
		}
		if !isHopByHop(name) {
			writeField(bw, name, trailers[i].Value)
		}
	}
	bw.WriteString("\r\n")
}

// hijackReader returns what was buffered beyond the message, then nc.
func hijackReader(br *bufio.Reader, nc net.Conn) io.Reader {
	n := br.Buffered()
	if n == 0 {
		return nc
	}
	b, _ := br.Peek(n)
	return &prefixReader{buf: bytes.Clone(b), nc: nc}
}

type prefixReader struct {
	buf []byte
	nc  net.Conn
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.nc.Read(b)
}
