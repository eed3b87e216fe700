// Package h2 adapts golang.org/x/net/http2 to Legate's protocol-neutral
// messages: a server side (one call per downstream connection) and a
// client side (one multiplexed upstream connection). x/net does the framing,
// HPACK, flow control and its flood protections (rapid reset, CONTINUATION
// and SETTINGS floods, control-frame queue limits); this package only
// converts between http.Request/Response and message.Request/Response.
package h2

import (
	"net/http"
	"strings"

	"github.com/legate-proxy/legate/internal/http/message"
)

// lowerName turns a canonical net/http header key back into the lower-case
// form HTTP/2 carried on the wire. x/net canonicalises every name it
// decodes; common names map to constants so they do not allocate.
func lowerName(k string) string {
	switch k {
	case "Accept":
		return "accept"
	case "Accept-Encoding":
		return "accept-encoding"
	case "Accept-Language":
		return "accept-language"
	case "Authorization":
		return "authorization"
	case "Cache-Control":
		return "cache-control"
	case "Content-Encoding":
		return "content-encoding"
	case "Content-Length":
		return "content-length"
	case "Content-Type":
		return "content-type"
	case "Cookie":
		return "cookie"
	case "Date":
		return "date"
	case "Etag":
		return "etag"
	case "Expect":
		return "expect"
	case "Grpc-Message":
		return "grpc-message"
	case "Grpc-Status":
		return "grpc-status"
	case "Grpc-Timeout":
		return "grpc-timeout"
	case "Last-Modified":
		return "last-modified"
	case "Location":
		return "location"
	case "Server":
		return "server"
	case "Set-Cookie":
		return "set-cookie"
	case "Te":
		return "te"
	case "Trailer":
		return "trailer"
	case "User-Agent":
		return "user-agent"
	case "Vary":
		return "vary"
	case "X-Envoy-Upstream-Service-Time":
		return "x-envoy-upstream-service-time"
	case "X-Forwarded-For":
		return "x-forwarded-for"
	case "X-Forwarded-Proto":
		return "x-forwarded-proto"
	case "X-Request-Id":
		return "x-request-id"
	}
	return strings.ToLower(k)
}

// fromHTTPHeader converts a net/http header map into an ordered list with
// lower-case names. Map order is random; HTTP/2 gives field order no
// meaning except among values of the same name, which is preserved.
func fromHTTPHeader(h http.Header, dst message.Headers) message.Headers {
	n := 0
	for _, vv := range h {
		n += len(vv)
	}
	if cap(dst)-len(dst) < n {
		nd := make(message.Headers, len(dst), len(dst)+n)
		copy(nd, dst)
		dst = nd
	}
	for k, vv := range h {
		if len(k) > 0 && k[0] == ':' {
			continue // x/net parks :protocol here; it is not a header
		}
		name := lowerName(k)
		for _, v := range vv {
			dst = append(dst, message.Header{Name: name, Value: v})
		}
	}
	return dst
}

// connectionSpecific reports header fields HTTP/2 forbids (RFC 9113
// 8.2.2). The connection manager strips hop-by-hop headers already; this
// keeps a stray one from making the peer reset the stream.
func connectionSpecific(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host":
		return true
	}
	return false
}
