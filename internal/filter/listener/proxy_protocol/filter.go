package proxy_protocol

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/legate-proxy/legate/internal/listenerfilter"
)

// Filter is a compiled ProxyProtocol.
type Filter struct {
	allowWithout bool
	disallowed   [2]bool // per version
	rules        [256]*rule
	hasRules     bool
	stats        *Stats
}

var (
	v1Prefix    = []byte("PROXY ")
	v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

const (
	v1MaxLen     = 107 // the longest v1 header, CRLF included (spec 2.1)
	v2HeaderLen  = 16
	errNotFound  = "no PROXY protocol header"
	v2MaxPayload = listenerfilter.MaxPeek - v2HeaderLen
)

// OnAccept reads and consumes the header.
func (f *Filter) OnAccept(c *listenerfilter.Conn) error {
	version, err := f.detect(c)
	if err != nil {
		return err
	}
	if version == 0 {
		if f.allowWithout {
			f.stats.NotFoundAllowed.Inc()
			return nil
		}
		f.stats.NotFoundDisallowed.Inc()
		return errors.New("proxy_protocol: " + errNotFound)
	}
	if f.disallowed[version-1] {
		f.stats.Disallowed[version-1].Inc()
		return fmt.Errorf("proxy_protocol: version %d is disallowed", version)
	}
	if version == 1 {
		err = f.v1(c)
	} else {
		err = f.v2(c)
	}
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			f.stats.Error[version-1].Inc()
		}
		return fmt.Errorf("proxy_protocol: v%d: %w", version, err)
	}
	f.stats.Found[version-1].Inc()
	return nil
}

// detect reads until the bytes are a v1 or v2 header start (1, 2) or
// cannot be one (0).
func (f *Filter) detect(c *listenerfilter.Conn) (int, error) {
	for n := 1; ; n++ {
		b, err := c.Peek(n)
		if err != nil {
			if len(b) > 0 && !errors.Is(err, os.ErrDeadlineExceeded) {
				return 0, nil // the peer ended mid-signature: not a header
			}
			return 0, fmt.Errorf("proxy_protocol: %w", err)
		}
		is1 := bytes.HasPrefix(v1Prefix, b[:min(len(b), len(v1Prefix))])
		is2 := bytes.HasPrefix(v2Signature, b[:min(len(b), len(v2Signature))])
		switch {
		case is1 && len(b) >= len(v1Prefix):
			return 1, nil
		case is2 && len(b) >= len(v2Signature):
			return 2, nil
		case !is1 && !is2:
			return 0, nil
		}
	}
}

// v1 parses "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" or
// "PROXY UNKNOWN ...\r\n".
func (f *Filter) v1(c *listenerfilter.Conn) error {
	var line []byte
	for {
		b := c.Peeked()
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			if i+1 > v1MaxLen {
				return errors.New("header longer than 107 bytes")
			}
			line = b[:i+1]
			break
		}
		if len(b) >= v1MaxLen {
			return errors.New("no CRLF in the first 107 bytes")
		}
		if _, err := c.PeekMore(); err != nil {
			return err
		}
	}
	n := len(line)
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return errors.New("header does not end in CRLF")
	}
	fields := strings.Split(string(line[len(v1Prefix):n-2]), " ")
	switch fields[0] {
	case "UNKNOWN":
		// The sender does not know the addresses: keep the socket's.
		c.Discard(n)
		return nil
	case "TCP4", "TCP6":
	default:
		return fmt.Errorf("unknown protocol %q", fields[0])
	}
	if len(fields) != 5 {
		return errors.New("malformed header")
	}
	src, err1 := netip.ParseAddr(fields[1])
	dst, err2 := netip.ParseAddr(fields[2])
	sp, err3 := parsePort(fields[3])
	dp, err4 := parsePort(fields[4])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return fmt.Errorf("malformed header: %w", err)
	}
	if want4 := fields[0] == "TCP4"; src.Is4() != want4 || dst.Is4() != want4 || src.Zone() != "" || dst.Zone() != "" {
		return fmt.Errorf("addresses are not %s", fields[0])
	}
	c.Discard(n)
	restore(c, netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp))
	return nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("bad port %q", s)
	}
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(p), nil
}

// restore makes the header's addresses the connection's.
func restore(c *listenerfilter.Conn, src, dst netip.AddrPort) {
	nc := c.Conn
	if !nc.DirectRemoteAddr.IsValid() {
		nc.DirectRemoteAddr = nc.RemoteAddr
	}
	nc.RemoteAddr = src
	nc.LocalAddr = dst
	nc.LocalRestored = true
}

// v2 parses the binary header (spec 2.2).
func (f *Filter) v2(c *listenerfilter.Conn) error {
	b, err := c.Peek(v2HeaderLen)
	if err != nil {
		return err
	}
	verCmd, fam := b[12], b[13]
	if verCmd>>4 != 2 {
		return fmt.Errorf("version %d in a v2 header", verCmd>>4)
	}
	cmd := verCmd & 0xf
	if cmd > 1 {
		return fmt.Errorf("unknown command %d", cmd)
	}
	n := int(b[14])<<8 | int(b[15])
	if n > v2MaxPayload {
		return fmt.Errorf("header of %d bytes is too long", n)
	}
	if b, err = c.Peek(v2HeaderLen + n); err != nil {
		return err
	}
	payload := b[v2HeaderLen : v2HeaderLen+n]
	var (
		src, dst netip.AddrPort
		addrLen  int
	)
	switch fam >> 4 {
	case 0: // AF_UNSPEC: no addresses
	case 1: // AF_INET
		addrLen = 12
		if len(payload) < addrLen {
			return errors.New("truncated IPv4 addresses")
		}
		src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(payload[0:4])), be16(payload[8:]))
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(payload[4:8])), be16(payload[10:]))
	case 2: // AF_INET6
		addrLen = 36
		if len(payload) < addrLen {
			return errors.New("truncated IPv6 addresses")
		}
		src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(payload[0:16])), be16(payload[32:]))
		dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(payload[16:32])), be16(payload[34:]))
	default:
		if cmd == 1 {
			return fmt.Errorf("unsupported address family %d", fam>>4)
		}
	}
	if cmd == 1 && fam>>4 != 0 && fam&0xf != 1 {
		return fmt.Errorf("unsupported transport %d (only STREAM)", fam&0xf)
	}
	if cmd == 1 && addrLen > 0 {
		if err := f.tlvs(c, payload[addrLen:]); err != nil {
			return err
		}
	}
	c.Discard(v2HeaderLen + n)
	// LOCAL (health checks of the sending proxy) and AF_UNSPEC keep the
	// socket's addresses.
	if cmd == 1 && addrLen > 0 {
		restore(c, src, dst)
	}
	return nil
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// tlvs walks the TLVs, copying those with a rule into dynamic metadata.
func (f *Filter) tlvs(c *listenerfilter.Conn, b []byte) error {
	md := map[string]map[string]any{}
	for len(b) > 0 {
		if len(b) < 3 {
			return errors.New("truncated TLV")
		}
		typ, l := b[0], int(b[1])<<8|int(b[2])
		if len(b) < 3+l {
			return errors.New("truncated TLV")
		}
		val := b[3 : 3+l]
		b = b[3+l:]
		if r := f.rules[typ]; r != nil {
			s := strings.ToValidUTF8(string(val), "!")
			if r.base64 {
				s = base64.StdEncoding.EncodeToString(val)
			}
			if md[r.namespace] == nil {
				md[r.namespace] = map[string]any{}
			}
			md[r.namespace][r.key] = s
		}
	}
	for ns, fields := range md {
		st, err := structpb.NewStruct(fields)
		if err != nil {
			return err
		}
		c.Conn.Dynamic.SetMetadata(ns, st)
	}
	return nil
}
