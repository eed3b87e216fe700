package tls_inspector

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/legate-proxy/legate/internal/listenerfilter"
)

// Filter is a compiled TlsInspector.
type Filter struct {
	maxHello     int // bytes of ClientHello records read at most
	closeOnError bool
	stats        *Stats
}

const (
	recordHeader  = 5
	typeHandshake = 0x16
	clientHello   = 1
	extSNI        = 0
	extALPN       = 16
)

// errMalformed is a ClientHello that does not parse.
var errMalformed = errors.New("malformed TLS ClientHello")

// OnAccept reads the ClientHello, if the connection starts with one.
func (f *Filter) OnAccept(c *listenerfilter.Conn) error {
	b, err := c.Peek(1)
	if err != nil {
		return f.readError(err)
	}
	if b[0] != typeHandshake {
		f.stats.TLSNotFound.Inc()
		return nil
	}
	// The handshake message may span records: gather its bytes.
	var (
		msg []byte
		off int
	)
	for {
		b, err = c.Peek(off + recordHeader)
		if err != nil {
			return f.readError(err)
		}
		h := b[off:]
		if h[0] != typeHandshake || h[1] != 3 {
			return f.notTLS(c, off > 0)
		}
		n := int(h[3])<<8 | int(h[4])
		if n == 0 || n > 1<<14+2048 {
			return f.notTLS(c, true)
		}
		if off+recordHeader+n > f.maxHello {
			f.stats.TooLarge.Inc()
			return fmt.Errorf("tls_inspector: ClientHello larger than %d bytes", f.maxHello)
		}
		if b, err = c.Peek(off + recordHeader + n); err != nil {
			return f.readError(err)
		}
		msg = append(msg, b[off+recordHeader:off+recordHeader+n]...)
		off += recordHeader + n
		if len(msg) >= 4 {
			if msg[0] != clientHello {
				return f.notTLS(c, true)
			}
			if need := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])); len(msg) >= need {
				msg = msg[4:need]
				break
			}
		}
	}
	sni, alpn, err := parseClientHello(msg)
	if err != nil {
		return f.notTLS(c, true)
	}
	f.stats.TLSFound.Inc()
	c.Conn.TransportProtocol = "tls"
	if sni != "" {
		f.stats.SNIFound.Inc()
		c.Conn.RequestedServerName = sni
	} else {
		f.stats.SNINotFound.Inc()
	}
	if len(alpn) > 0 {
		f.stats.ALPNFound.Inc()
		c.Conn.ApplicationProtocols = alpn
	} else {
		f.stats.ALPNNotFound.Inc()
	}
	return nil
}

// notTLS: the bytes are not a ClientHello after all. malformed: they began
// as one; that closes the connection only with
// close_connection_on_client_hello_parsing_errors.
func (f *Filter) notTLS(c *listenerfilter.Conn, malformed bool) error {
	f.stats.TLSNotFound.Inc()
	if malformed && f.closeOnError {
		return errMalformed
	}
	return nil
}

func (f *Filter) readError(err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		f.stats.ReadError.Inc()
	}
	return fmt.Errorf("tls_inspector: %w", err)
}

// parseClientHello returns the SNI host name (lower case) and the ALPN
// protocols of a ClientHello body (RFC 8446 4.1.2, RFC 6066 3, RFC 7301).
func parseClientHello(b []byte) (sni string, alpn []string, err error) {
	r := reader{b: b}
	r.skip(2 + 32)          // legacy_version, random
	r.skip(r.u8())          // legacy_session_id
	r.skip(r.u16())         // cipher_suites
	r.skip(r.u8())          // legacy_compression_methods
	if r.bad || r.empty() { // no extensions: a TLS 1.2 hello may omit them
		if r.bad {
			return "", nil, errMalformed
		}
		return "", nil, nil
	}
	exts := reader{b: r.bytes(r.u16())}
	for !exts.bad && !exts.empty() {
		typ := exts.u16()
		data := reader{b: exts.bytes(exts.u16())}
		switch typ {
		case extSNI:
			list := reader{b: data.bytes(data.u16())}
			for !list.bad && !list.empty() {
				nameType := list.u8()
				name := list.bytes(list.u16())
				if nameType == 0 && sni == "" && len(name) > 0 {
					sni = strings.ToLower(strings.TrimSuffix(string(name), "."))
				}
			}
			if list.bad {
				return "", nil, errMalformed
			}
		case extALPN:
			list := reader{b: data.bytes(data.u16())}
			for !list.bad && !list.empty() {
				if p := list.bytes(list.u8()); len(p) > 0 {
					alpn = append(alpn, string(p))
				}
			}
			if list.bad {
				return "", nil, errMalformed
			}
		}
		if data.bad {
			return "", nil, errMalformed
		}
	}
	if exts.bad || r.bad {
		return "", nil, errMalformed
	}
	return sni, alpn, nil
}

// reader reads big-endian fields, remembering whether it ran short.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) empty() bool { return len(r.b) == 0 }

func (r *reader) bytes(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) skip(n int) { r.bytes(n) }

func (r *reader) u8() int {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (r *reader) u16() int {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return int(b[0])<<8 | int(b[1])
}
