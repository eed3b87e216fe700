// Package listenerfilter is the contract between listeners and listener
// filters, Envoy's listener_filters: they run on an accepted connection
// before a filter chain is chosen, and tell the chain match what they
// found (tls_inspector: SNI, ALPN and "tls"; http_inspector: the HTTP
// version; proxy_protocol and original_dst: the connection's real
// addresses).
//
// A filter inspects the connection through Conn: Peek reads as much of the
// stream as it needs without consuming it, and the chain later reads those
// bytes again (networkfilter.Replay); Discard consumes bytes that belong to
// the filter (a PROXY protocol header). Reads are bounded by the
// listener's listener_filters_timeout, as a read deadline on the socket.
//
// # Adding a listener filter
//
// A filter lives in internal/filter/listener/<envoy_name>/ with config.go
// (decode and validate), filter.go, stats.go and a doc comment naming the
// type URL, and registers a Factory for its config message in init:
//
//	func init() { listenerfilter.Registry.Register(&mypb.MyFilter{}, New) }
//
// The filter is immutable and shared by every connection of its listener.
// The server links it by importing its package (internal/server), and the
// bootstrap allowlist lists its config.
package listenerfilter

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/registry"
)

// Filter is a compiled listener filter.
type Filter interface {
	// OnAccept inspects the connection and records what it found in
	// c.Conn. An error closes the connection (the filter counts it); a
	// read that ran into the listener_filters_timeout returns an error
	// matching os.ErrDeadlineExceeded, and the listener decides.
	OnAccept(c *Conn) error
}

// Factory builds a filter from its typed config.
type Factory func(cfg proto.Message, fc *networkfilter.FactoryContext) (Filter, error)

// Registry holds listener filter factories by config type.
var Registry = registry.New[Factory]("listener filter")

// MaxPeek bounds what all the filters of a connection may read ahead
// together (Envoy's listener filters buffer at most 64 KiB: the largest
// ClientHello tls_inspector accepts).
const MaxPeek = 64 << 10

// ErrPeekLimit is Peek's error when more than MaxPeek bytes are asked for.
var ErrPeekLimit = errors.New("listener filters: more than 64 KiB read ahead")

// Conn is an accepted connection going through the listener filters.
type Conn struct {
	// Conn is the connection the filter chain will serve: filters set its
	// addresses, RequestedServerName, TransportProtocol,
	// ApplicationProtocols and dynamic metadata. Its Conn field is the
	// socket; filters read through Peek, never from it directly.
	Conn *networkfilter.Conn
	raw  net.Conn
	buf  []byte // read from the socket, not consumed; from bufPool
	bp   *[]byte
	eof  error // sticky read error
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// NewConn starts listener filtering on c, whose Conn is the socket.
func NewConn(c *networkfilter.Conn) *Conn {
	return &Conn{Conn: c, raw: c.Conn}
}

// Peek returns at least n bytes of the stream from the current position
// without consuming them, reading from the socket as needed; fewer, with
// the read error (io.EOF, a deadline), if the stream ends or stalls first.
func (c *Conn) Peek(n int) ([]byte, error) {
	if n > MaxPeek {
		return c.buf, ErrPeekLimit
	}
	for len(c.buf) < n {
		if c.eof != nil {
			return c.buf, c.eof
		}
		if err := c.read(n); err != nil {
			return c.buf, err
		}
	}
	return c.buf, nil
}

// PeekMore reads once more from the socket (at least one byte) and returns
// everything peeked so far: for a filter that cannot tell how much it needs
// until it has parsed what it has.
func (c *Conn) PeekMore() ([]byte, error) {
	if len(c.buf) >= MaxPeek {
		return c.buf, ErrPeekLimit
	}
	if c.eof != nil {
		return c.buf, c.eof
	}
	err := c.read(len(c.buf) + 1)
	return c.buf, err
}

// Peeked is what has been read ahead so far.
func (c *Conn) Peeked() []byte { return c.buf }

func (c *Conn) read(want int) error {
	if c.bp == nil {
		c.bp = bufPool.Get().(*[]byte)
		c.buf = (*c.bp)[:0]
	}
	if cap(c.buf)-len(c.buf) < 512 || cap(c.buf) < want {
		nb := make([]byte, len(c.buf), min(max(2*cap(c.buf), want), MaxPeek))
		copy(nb, c.buf)
		c.buf = nb
	}
	m, err := c.raw.Read(c.buf[len(c.buf):cap(c.buf)])
	c.buf = c.buf[:len(c.buf)+m]
	if err != nil {
		if err == io.EOF && m > 0 {
			err = nil
			c.eof = io.EOF
		} else if m == 0 {
			c.eof = err
			return err
		}
	}
	return nil
}

// Discard consumes the first n peeked bytes: the chain never sees them.
func (c *Conn) Discard(n int) {
	if n > len(c.buf) {
		panic(fmt.Sprintf("listenerfilter: Discard(%d) of %d peeked bytes", n, len(c.buf)))
	}
	c.buf = c.buf[n:]
}

// Finish ends listener filtering: c.Conn.Conn becomes the socket with the
// bytes peeked and not discarded in front of it.
func (c *Conn) Finish() {
	var rest []byte
	if len(c.buf) > 0 {
		rest = append([]byte(nil), c.buf...)
	}
	if c.bp != nil {
		if cap(c.buf) <= 64<<10 && cap(*c.bp) == 4096 {
			*c.bp = (*c.bp)[:0]
			bufPool.Put(c.bp)
		}
		c.bp, c.buf = nil, nil
	}
	c.Conn.Conn = networkfilter.Replay(c.raw, rest)
}
