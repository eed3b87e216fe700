// Package message holds the protocol-neutral HTTP request and response that
// Legate's codecs produce and consume. HTTP/1.1 and HTTP/2 both decode into
// these, so the connection manager, filters and router never see a codec.
//
// Header names are always lower-case (as in HTTP/2 and as Envoy emits them on
// HTTP/1.1). Pseudo-headers are not in Header; they are the typed fields.
package message

import "io"

// Protocol is the HTTP version a message arrived on or leaves with.
type Protocol uint8

const (
	HTTP10 Protocol = iota + 1
	HTTP11
	HTTP2
)

// String returns the form Envoy uses in access logs and span tags.
func (p Protocol) String() string {
	switch p {
	case HTTP10:
		return "HTTP/1.0"
	case HTTP11:
		return "HTTP/1.1"
	case HTTP2:
		return "HTTP/2"
	}
	return "-"
}

// Body is a streaming message body. Trailers is valid once Read has
// returned io.EOF; it is nil when the peer sent none.
type Body interface {
	io.Reader
	Trailers() Headers
}

// Request is a decoded request. A codec owns the memory behind its strings
// until the stream ends; anything kept longer must be copied.
type Request struct {
	Method    string
	Scheme    string // "http" or "https"
	Authority string // :authority, or Host on HTTP/1.x
	Path      string // origin-form: path and query
	Protocol  Protocol
	Header    Headers
	// Body is nil when the request has none.
	Body Body
	// ContentLength is -1 when unknown (chunked, or HTTP/2 without the header).
	ContentLength int64
}

// Response is a decoded response.
type Response struct {
	Status        int
	Protocol      Protocol
	Header        Headers
	Body          Body // nil when the response has none
	ContentLength int64
}

// ResponseWriter sends a response downstream. Calls happen in order:
// WriteHeader once, then any Write/Flush, then optionally WriteTrailers.
// Framing (content-length, chunked, close) is the codec's business: it uses
// contentLength (-1 when unknown) and the request's protocol.
type ResponseWriter interface {
	WriteHeader(status int, h Headers, contentLength int64) error
	Write(p []byte) (int, error)
	Flush() error
	WriteTrailers(h Headers) error
	// HeaderWritten reports whether WriteHeader has been called, so a
	// failing stream knows whether a local reply is still possible.
	HeaderWritten() bool
}

// RawStream is a connection after an HTTP/1.1 upgrade: plain bytes both
// ways. CloseWrite half-closes when the transport supports it.
type RawStream interface {
	io.ReadWriteCloser
}

// Resetter is implemented by response writers that can abort a response
// already under way (HTTP/1: close without ending the body; HTTP/2:
// RST_STREAM), so a truncated upstream response never looks complete.
type Resetter interface {
	Reset()
}
