package connpool

import (
	"errors"
	"net"
	"sync/atomic"
)

// errUnsolicited fails an upstream HTTP/2 connection whose peer sent a
// response on a stream Legate had not opened, or on one it had reset.
var errUnsolicited = errors.New("http2: upstream sent HEADERS or DATA on a stream the client never opened or the upstream had reset")

// HTTP/2 frame types the guard looks at (RFC 9113 §6).
const (
	frameData      = 0x0
	frameHeaders   = 0x1
	frameRSTStream = 0x3
)

// h2guard sits between the HTTP/2 client and the connection (above TLS)
// and reads the frame headers going both ways. A response frame (HEADERS
// or DATA) on a client stream above the highest one the client has
// written HEADERS for is an answer to no request: x/net ignores such
// HEADERS and would take them as the response of the stream it opens
// next if they were still unread then — a response served to the wrong
// client. Seeing the bytes as they leave the socket closes that window:
// the frame is refused before the stream it names exists. RFC 9113 §5.1
// makes it a connection error (PROTOCOL_ERROR); the connection stops
// taking requests at once and closes.
//
// Likewise a response frame on a stream the upstream itself reset (RFC
// 9113 §5.1: STREAM_CLOSED): x/net would deliver HEADERS sent after the
// RST_STREAM as the stream's response, which the client then sees cut
// off instead of Envoy's 503. The last few reset streams are remembered.
//
// The write side runs under x/net's write lock, the read side on its read
// loop; they share only opened.
type h2guard struct {
	net.Conn
	p *Pool
	// opened is the highest stream ID the client sent HEADERS on.
	opened atomic.Uint32
	// unsolicited is set once such a frame was read.
	unsolicited atomic.Bool

	r, w frameScan
	// prefaceLeft counts the client connection preface bytes not yet
	// written; they precede the first frame.
	prefaceLeft int
	// failed is set once Read returned errUnsolicited.
	failed bool
	// reset holds the latest streams the upstream reset (read side only).
	reset  [8]uint32
	resetN int
}

// frameScan follows frame boundaries across reads or writes.
type frameScan struct {
	hdr  [9]byte
	n    int    // bytes of hdr filled
	skip uint32 // payload bytes still to pass
}

// next feeds b; for each complete frame header it calls f with the
// frame's type, stream ID and the offset in b where the header began (a
// negative offset when it began in an earlier buffer). f returning false
// stops the scan; next then returns that header's offset.
func (s *frameScan) next(b []byte, f func(typ byte, stream uint32, at int) bool) (stopAt int, stopped bool) {
	for i := 0; i < len(b); {
		if s.skip > 0 {
			k := min(uint32(len(b)-i), s.skip)
			s.skip -= k
			i += int(k)
			continue
		}
		start := i - s.n
		k := copy(s.hdr[s.n:], b[i:])
		s.n += k
		i += k
		if s.n < len(s.hdr) {
			break
		}
		s.n = 0
		h := &s.hdr
		s.skip = uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
		stream := (uint32(h[5])<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8])) & 0x7fffffff
		if !f(h[3], stream, start) {
			return start, true
		}
	}
	return 0, false
}

func newH2Guard(p *Pool, nc net.Conn) *h2guard {
	return &h2guard{Conn: nc, p: p, prefaceLeft: len(clientPreface)}
}

const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func (g *h2guard) Write(b []byte) (int, error) {
	frames := b
	if g.prefaceLeft > 0 {
		k := min(g.prefaceLeft, len(frames))
		g.prefaceLeft -= k
		frames = frames[k:]
	}
	// Counted before the bytes leave, so the answer can never be read
	// before its stream is known.
	g.w.next(frames, g.sawWrite)
	return g.Conn.Write(b)
}

func (g *h2guard) sawWrite(typ byte, stream uint32, _ int) bool {
	if typ == frameHeaders && stream > g.opened.Load() {
		g.opened.Store(stream)
	}
	return true
}

func (g *h2guard) Read(b []byte) (int, error) {
	if g.failed {
		return 0, errUnsolicited
	}
	n, err := g.Conn.Read(b)
	if at, stop := g.r.next(b[:n], g.sawRead); stop {
		// Hand over the frames before the bad one (they may end
		// legitimate streams); the next Read fails the connection.
		g.failed = true
		g.unsolicited.Store(true)
		g.p.stats.UpstreamCxProtocolError.Inc()
		if at <= 0 {
			return 0, errUnsolicited
		}
		return at, nil
	}
	return n, err
}

func (g *h2guard) sawRead(typ byte, stream uint32, _ int) bool {
	// Even IDs would be server pushes, which Legate disables (x/net
	// refuses them); only client streams are checked here.
	if stream == 0 || stream%2 == 0 {
		return true
	}
	switch typ {
	case frameRSTStream:
		g.reset[g.resetN%len(g.reset)] = stream
		g.resetN++
		return true
	case frameHeaders, frameData:
		if stream > g.opened.Load() {
			return false
		}
		for _, id := range g.reset {
			if id == stream {
				return false
			}
		}
	}
	return true
}
