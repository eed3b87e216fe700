package formatter

import (
	"net/netip"
	"strconv"
)

// Addresses render as Envoy does: "1.2.3.4:80", "[::1]:80"; without the
// port, the bare IP ("::1").

func appendAddrPort(dst []byte, ap netip.AddrPort) ([]byte, bool) {
	if !ap.IsValid() {
		return dst, false
	}
	out, err := ap.AppendText(dst)
	if err != nil {
		return dst, false
	}
	return out, true
}

func appendAddr(dst []byte, ap netip.AddrPort) ([]byte, bool) {
	if !ap.Addr().IsValid() {
		return dst, false
	}
	out, err := ap.Addr().AppendText(dst)
	if err != nil {
		return dst, false
	}
	return out, true
}

func appendPort(dst []byte, ap netip.AddrPort) ([]byte, bool) {
	if !ap.IsValid() {
		return dst, false
	}
	return strconv.AppendUint(dst, uint64(ap.Port()), 10), true
}
