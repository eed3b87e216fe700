package hcm

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/legate-proxy/legate/internal/http/http1"
	"github.com/legate-proxy/legate/internal/http/message"
)

// errStreamEnded is what a request body returns once its stream is over.
var errStreamEnded = errors.New("request body read after its stream ended")

// bodyGuard fences an HTTP/1 request body at the end of its stream. The
// upstream connection pool may still be copying the body on its own
// goroutine when the response completes (an upstream that answers before
// reading the whole upload); that reader must be stopped before the
// codec reads the next request from the same connection.
type bodyGuard struct {
	mu       sync.Mutex
	body     message.Body
	count    *bodyCount
	eof      bool
	failed   bool // a read returned an error other than io.EOF
	closed   bool
	trailers message.Headers // copied at EOF
	// protoErr is a framing error in the body itself (a bad chunk):
	// the client is at fault, not the upstream.
	protoErr *http1.ProtocolError
}

func (g *bodyGuard) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, errStreamEnded
	}
	n, err := g.body.Read(p)
	g.count.add(n, err)
	if err != nil {
		g.eof = true
		g.failed = err != io.EOF
		errors.As(err, &g.protoErr)
		if err == io.EOF {
			// The codec reuses its trailer memory for the next request;
			// the reader may ask for them after this stream has ended.
			g.trailers = g.body.Trailers().Clone()
		}
	}
	return n, err
}

// protocolError returns the body's framing error, if one was seen. A read
// still in progress holds the lock; it has seen no error yet.
func (g *bodyGuard) protocolError() *http1.ProtocolError {
	if !g.mu.TryLock() {
		return nil
	}
	defer g.mu.Unlock()
	return g.protoErr
}

// Trailers are the body's trailers, valid once Read returned io.EOF.
func (g *bodyGuard) Trailers() message.Headers {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.trailers
}

// finish stops further reads. reusable reports whether the connection may
// carry another request as far as the body is concerned: no read was
// parked on the socket (one is woken by pulling in the read deadline,
// which leaves the codec mid-body) and no read failed. complete reports
// whether the body was read to its end; a body nobody finished (a direct
// response or local reply to an upload) is left to the codec, which
// discards a small rest (http1's 256 KiB) within bodyDiscardTime and
// otherwise closes the connection.
func (g *bodyGuard) finish(c *conn) (reusable, complete bool) {
	if !g.mu.TryLock() {
		c.Conn.SetReadDeadline(time.Now())
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
		return false, false
	}
	defer g.mu.Unlock()
	g.closed = true
	return !g.failed, g.eof
}

// bodyCount measures a request body for stream info (%BYTES_RECEIVED%,
// %REQUEST_DURATION%). Its reader may be the upstream pool's writer
// goroutine, so it keeps atomics the stream copies out when it ends.
type bodyCount struct {
	start time.Time
	bytes atomic.Uint64
	done  atomic.Int64 // offset from start of the body's end; 0 = not yet
}

func (c *bodyCount) add(n int, err error) {
	c.bytes.Add(uint64(n))
	if err == io.EOF && c.done.Load() == 0 {
		c.done.Store(int64(max(time.Since(c.start), 1)))
	}
}

// countedBody counts an HTTP/2 request body (HTTP/1 bodies are counted by
// their bodyGuard).
type countedBody struct {
	message.Body
	count *bodyCount
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.Body.Read(p)
	b.count.add(n, err)
	return n, err
}
