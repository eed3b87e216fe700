//lint:file-ignore SA1019 net/http's own HTTP/2 cannot serve or dial over a caller-owned net.Conn; x/net/http2 still can (from go1.27 it wraps net/http behind the same API).

package h2

import (
	"errors"
	"io"
	"net"
	"strings"

	"golang.org/x/net/http2"
)

// ErrorKind classifies an upstream HTTP/2 failure the way Envoy's stream
// reset reasons do.
type ErrorKind uint8

const (
	// ConnectionTermination: the connection closed or failed, or a GOAWAY
	// ended the stream.
	ConnectionTermination ErrorKind = iota + 1
	// RefusedStream: the peer sent RST_STREAM(REFUSED_STREAM).
	RefusedStream
	// RemoteReset: the peer reset the stream with any other code.
	RemoteReset
	// ProtocolError: the peer broke the protocol (malformed response,
	// connection error) or the request could not be encoded.
	ProtocolError
)

// Error is an upstream HTTP/2 failure.
type Error struct {
	Kind ErrorKind
	// Unprocessed is true when the peer cannot have acted on the request
	// (refused, beyond a GOAWAY's last stream, or never sent) and no body
	// byte was consumed, so it may be sent again on another connection.
	Unprocessed bool
	Err         error
}

func (e *Error) Error() string { return "h2: " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// x/net keeps these sentinel errors unexported; their texts are stable.
const (
	msgConnUnusable   = "http2: client conn not usable"
	msgConnClosed     = "http2: client conn is closed"
	msgNotEstablished = "http2: client conn could not be established"
	msgGotGoAway      = "http2: Transport received Server's graceful shutdown GOAWAY"
	msgFromPeer       = "received from peer"
	msgGoAwayPrefix   = "http2: Transport received GOAWAY"
)

// classify maps an x/net client error to an *Error.
func classify(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	var se http2.StreamError
	if errors.As(err, &se) {
		fromPeer := se.Cause != nil && se.Cause.Error() == msgFromPeer
		switch {
		case fromPeer && se.Code == http2.ErrCodeRefusedStream:
			return &Error{Kind: RefusedStream, Unprocessed: true, Err: err}
		case fromPeer:
			return &Error{Kind: RemoteReset, Err: err}
		default:
			return &Error{Kind: ProtocolError, Err: err}
		}
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		return &Error{Kind: ProtocolError, Err: err}
	}
	var ge http2.GoAwayError
	if errors.As(err, &ge) {
		return &Error{Kind: ConnectionTermination, Err: err}
	}
	switch err.Error() {
	case msgConnUnusable, msgNotEstablished:
		return &Error{Kind: ConnectionTermination, Unprocessed: true, Err: err}
	case msgGotGoAway:
		return &Error{Kind: ConnectionTermination, Unprocessed: true, Err: err}
	case msgConnClosed:
		return &Error{Kind: ConnectionTermination, Err: err}
	}
	if strings.HasPrefix(err.Error(), msgGoAwayPrefix) {
		return &Error{Kind: ConnectionTermination, Err: err}
	}
	var ne net.Error
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &ne) || errors.Is(err, net.ErrClosed) {
		return &Error{Kind: ConnectionTermination, Err: err}
	}
	return &Error{Kind: ProtocolError, Err: err}
}
