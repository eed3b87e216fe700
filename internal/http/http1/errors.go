package http1

import (
	"errors"
	"strconv"
)

// ProtocolError is a malformed or over-limit message. Status is what a
// server answers with (400, 413, 431, or 505 for an unsupported version);
// Details is Envoy's response-code-details string for it.
type ProtocolError struct {
	Status  int
	Details string
	Err     error
}

func (e *ProtocolError) Error() string {
	s := "http1: " + strconv.Itoa(e.Status) + " " + e.Details
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// Envoy's per-codec response code details (docs: "Http1 details").
const (
	detailCodecError       = "http1.codec_error"
	detailHeadersTooLarge  = "http1.headers_too_large"
	detailTooManyHeaders   = "http1.too_many_headers"
	detailInvalidChars     = "http1.invalid_characters"
	detailInvalidURL       = "http1.invalid_url"
	detailInvalidTE        = "http1.invalid_transfer_encoding"
	detailCLAndChunked     = "http1.content_length_and_chunked_not_allowed"
	detailUnderscore       = "http1.unexpected_underscore"
	detailConnectionHeader = "http1.connection_header_rejected"
	detailMissingHost      = "missing_host_header"
	detailInvalidAuthority = "http.invalid_authority"
)

func protoErr(status int, details, msg string) error {
	return &ProtocolError{Status: status, Details: details, Err: errors.New(msg)}
}

func badRequest(details, msg string) error { return protoErr(400, details, msg) }

var (
	errTooLarge       = errors.New("header block too large")
	errBareLF         = errors.New("line not terminated by CRLF")
	errPrevRequest    = errors.New("http1: previous request not finished")
	errNoResponse     = errors.New("http1: no response header written")
	errReleased       = errors.New("http1: connection released")
	errBodyTooLong    = errors.New("http1: body longer than content-length")
	errTooManyHeaders = errors.New("too many header fields")
)
