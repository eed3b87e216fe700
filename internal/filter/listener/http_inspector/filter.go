package http_inspector

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/legate-proxy/legate/internal/listenerfilter"
)

// Filter is a compiled HttpInspector.
type Filter struct {
	stats *Stats
}

var preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// maxRequestLine bounds what is read looking for the end of the request
// line; Envoy inspects at most 64 KiB too.
const maxRequestLine = listenerfilter.MaxPeek

// OnAccept detects the HTTP version. TLS connections are skipped: their
// protocol is the ALPN tls_inspector found.
func (f *Filter) OnAccept(c *listenerfilter.Conn) error {
	if c.Conn.TransportProtocol == "tls" {
		return nil
	}
	b := c.Peeked()
	var err error
	for {
		switch proto := detect(b); proto {
		case "":
			// Undecided: read more.
		case "-":
			f.stats.NotFound.Inc()
			return nil
		default:
			switch proto {
			case "h2c":
				f.stats.HTTP2.Inc()
			case "http/1.0":
				f.stats.HTTP10.Inc()
			default:
				f.stats.HTTP11.Inc()
			}
			c.Conn.ApplicationProtocols = []string{proto}
			return nil
		}
		if len(b) >= maxRequestLine {
			f.stats.NotFound.Inc()
			return nil
		}
		if b, err = c.PeekMore(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("http_inspector: %w", err)
			}
			if len(b) > 0 {
				// The peer half-closed after a partial request line:
				// not something the inspector can name.
				f.stats.NotFound.Inc()
				return nil
			}
			f.stats.ReadError.Inc()
			return fmt.Errorf("http_inspector: %w", err)
		}
	}
}

// detect names the protocol b starts with: "h2c", "http/1.1",
// "http/1.0"; "-" when it is not HTTP; "" when more bytes are needed.
func detect(b []byte) string {
	if n := min(len(b), len(preface)); bytes.Equal(b[:n], preface[:n]) {
		if len(b) >= len(preface) {
			return "h2c"
		}
		return ""
	}
	// method SP request-target SP HTTP/1.x CRLF
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		if !isToken(b) {
			return "-"
		}
		return ""
	}
	if sp == 0 || !isToken(b[:sp]) {
		return "-"
	}
	eol := bytes.IndexByte(b, '\n')
	if eol < 0 {
		return ""
	}
	line := bytes.TrimSuffix(b[:eol], []byte("\r"))
	last := bytes.LastIndexByte(line, ' ')
	if last <= sp {
		return "-"
	}
	switch string(line[last+1:]) {
	case "HTTP/1.1":
		return "http/1.1"
	case "HTTP/1.0":
		return "http/1.0"
	}
	return "-"
}

func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return true
}
