package connpool

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/legate-proxy/legate/internal/http/h2"
	"github.com/legate-proxy/legate/internal/http/http1"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

// ResetReason says why an upstream stream failed before or after headers,
// in Envoy's words (used in "reset reason: %s" local replies).
type ResetReason uint8

const (
	ConnectionFailure        ResetReason = iota + 1 // "remote connection failure"
	ConnectionTimeout                               // "connection timeout"
	ConnectionTermination                           // "connection termination"
	LocalReset                                      // "local reset"
	RemoteReset                                     // "remote reset"
	RemoteRefusedStreamReset                        // "remote refused stream reset"
	Overflow                                        // "overflow"
	ProtocolError                                   // "protocol error"
)

// String returns Envoy's name for the reason, as in its local replies and
// %UPSTREAM_TRANSPORT_FAILURE_REASON%-adjacent access-log details.
func (r ResetReason) String() string {
	switch r {
	case ConnectionFailure:
		return "remote connection failure"
	case ConnectionTimeout:
		return "connection timeout"
	case ConnectionTermination:
		return "connection termination"
	case LocalReset:
		return "local reset"
	case RemoteReset:
		return "remote reset"
	case RemoteRefusedStreamReset:
		return "remote refused stream reset"
	case Overflow:
		return "overflow"
	case ProtocolError:
		return "protocol error"
	}
	return "unknown"
}

// ResponseFlag is the access-log flag Envoy sets for a stream that failed
// for this reason.
func (r ResetReason) ResponseFlag() streaminfo.ResponseFlags {
	switch r {
	case ConnectionFailure, ConnectionTimeout:
		return streaminfo.UpstreamConnectionFailure
	case ConnectionTermination:
		return streaminfo.UpstreamConnectionTermination
	case LocalReset:
		return streaminfo.LocalReset
	case RemoteReset, RemoteRefusedStreamReset:
		return streaminfo.UpstreamRemoteReset
	case Overflow:
		return streaminfo.UpstreamOverflow
	case ProtocolError:
		return streaminfo.UpstreamProtocolError
	}
	return 0
}

// Error is a failed upstream exchange.
type Error struct {
	Reason ResetReason
	// TransportFailure is Envoy's "transport failure reason", e.g.
	// "delayed connect error: Connection refused"; may be empty.
	TransportFailure string
	Err              error
}

// Error is the body of Envoy's local reply for a stream that failed before
// response headers: "upstream connect error or disconnect/reset before
// headers. reset reason: connection timeout".
func (e *Error) Error() string {
	return "upstream connect error or disconnect/reset before headers. reset reason: " + e.ReasonText()
}

// ReasonText is the part after "reset reason: ", with the transport
// failure reason when there is one; the router uses it after "retried and
// the latest reset reason: ".
func (e *Error) ReasonText() string {
	if e.TransportFailure != "" {
		return e.Reason.String() + ", transport failure reason: " + e.TransportFailure
	}
	return e.Reason.String()
}

func (e *Error) Unwrap() error { return e.Err }

// connectError classifies a failed dial or TLS handshake.
func connectError(err error) *Error {
	if isTimeout(err) {
		return &Error{Reason: ConnectionTimeout, Err: err}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return &Error{Reason: ConnectionFailure, TransportFailure: "delayed connect error: " + strerror(errno), Err: err}
	}
	var (
		alert   tls.AlertError
		verify  *tls.CertificateVerificationError
		recHdr  tls.RecordHeaderError
		tlsFail bool
	)
	tlsFail = errors.As(err, &alert) || errors.As(err, &verify) || errors.As(err, &recHdr)
	if tlsFail {
		return &Error{Reason: ConnectionFailure, TransportFailure: "TLS_error: " + err.Error(), Err: err}
	}
	return &Error{Reason: ConnectionFailure, TransportFailure: err.Error(), Err: err}
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// strerror renders an errno as C's strerror does ("Connection refused"),
// which is what Envoy prints; Go's texts differ only in the capital.
func strerror(e syscall.Errno) string {
	s := e.Error()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// streamError classifies a failure on an established connection.
func streamError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	var he *h2.Error
	if errors.As(err, &he) {
		switch he.Kind {
		case h2.RefusedStream:
			return &Error{Reason: RemoteRefusedStreamReset, Err: err}
		case h2.RemoteReset:
			return &Error{Reason: RemoteReset, Err: err}
		case h2.ProtocolError:
			return &Error{Reason: ProtocolError, Err: err}
		default:
			return &Error{Reason: ConnectionTermination, Err: err}
		}
	}
	var p1 *http1.ProtocolError
	if errors.As(err, &p1) {
		return &Error{Reason: ProtocolError, Err: err}
	}
	return &Error{Reason: ConnectionTermination, Err: err}
}
