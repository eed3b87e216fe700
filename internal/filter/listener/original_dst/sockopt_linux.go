package original_dst

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h), and
// IP6T_SO_ORIGINAL_DST for IPv6: the same number.
const soOriginalDst = 80

// originalDst asks netfilter for the connection's destination before NAT;
// zero when there is none (not redirected, no conntrack).
func originalDst(fd int, v6 bool) netip.AddrPort {
	if v6 {
		var sa unix.RawSockaddrInet6
		l := uint32(unsafe.Sizeof(sa))
		if getsockopt(fd, unix.SOL_IPV6, soOriginalDst, unsafe.Pointer(&sa), &l) != nil {
			return netip.AddrPort{}
		}
		port := uint16(sa.Port>>8 | sa.Port<<8)
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	}
	var sa unix.RawSockaddrInet4
	l := uint32(unsafe.Sizeof(sa))
	if getsockopt(fd, unix.SOL_IP, soOriginalDst, unsafe.Pointer(&sa), &l) != nil {
		return netip.AddrPort{}
	}
	port := uint16(sa.Port>>8 | sa.Port<<8)
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
}

func getsockopt(fd, level, name int, v unsafe.Pointer, l *uint32) error {
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name), uintptr(v), uintptr(unsafe.Pointer(l)), 0)
	if e != 0 {
		return e
	}
	return nil
}
