package httpfilter

import (
	"errors"
	"io"

	"github.com/legate-proxy/legate/internal/http/message"
)

// ErrBodyTooLarge is BufferRequestBody's error for a body past its limit:
// Envoy then answers 413 (PayloadTooLarge).
var ErrBodyTooLarge = errors.New("request body is larger than the buffer limit")

// BufferRequestBody reads the whole request body, up to limit bytes, and
// puts it back as a buffered body with a known length, so later filters
// and the upstream see the same bytes (the upstream request then carries
// content-length, as after Envoy's buffer filter). It returns the bytes;
// nil for a request without a body.
//
// Past limit it returns ErrBodyTooLarge; the caller replies with
// ReplyPayloadTooLarge. Any other error is the downstream's (a reset, a
// malformed body): replying to it lets the connection manager answer as
// the error demands.
func (s *Stream) BufferRequestBody(limit int) ([]byte, error) {
	req := s.Request
	if req.Body == nil {
		return nil, nil
	}
	if b, ok := req.Body.(*BufferedBody); ok && b.off == 0 {
		// An earlier filter buffered it.
		if len(b.data) > limit {
			return nil, ErrBodyTooLarge
		}
		return b.data, nil
	}
	if req.ContentLength > int64(limit) {
		return nil, ErrBodyTooLarge
	}
	size := 4 << 10
	if req.ContentLength >= 0 {
		size = int(req.ContentLength) + 1 // +1 sees io.EOF without growing
	}
	buf := make([]byte, 0, min(size, limit+1))
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := req.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, ErrBodyTooLarge
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	req.Body = &BufferedBody{data: buf, trailers: req.Body.Trailers()}
	req.ContentLength = int64(len(buf))
	return buf, nil
}

// ReplyPayloadTooLarge is Envoy's answer to a request body past a buffer
// limit.
func (s *Stream) ReplyPayloadTooLarge() {
	s.SendLocalReply(413, "Payload Too Large", "request_payload_too_large")
}

// BufferedBody is a request body held in memory.
type BufferedBody struct {
	data     []byte
	off      int
	trailers message.Headers
}

// NewBufferedBody returns a body of data with the given trailers.
func NewBufferedBody(data []byte, trailers message.Headers) *BufferedBody {
	return &BufferedBody{data: data, trailers: trailers}
}

func (b *BufferedBody) Read(p []byte) (int, error) {
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

// Trailers are the original body's trailers.
func (b *BufferedBody) Trailers() message.Headers { return b.trailers }

// Bytes is the whole body, whatever has been read of it.
func (b *BufferedBody) Bytes() []byte { return b.data }
