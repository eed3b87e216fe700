package original_dst

import (
	"net/netip"
	"syscall"

	"github.com/legate-proxy/legate/internal/listenerfilter"
)

// Filter is a compiled OriginalDst.
type Filter struct{}

// OnAccept restores the original destination.
func (Filter) OnAccept(c *listenerfilter.Conn) error {
	sc, ok := c.Conn.Conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var dst netip.AddrPort
	rc.Control(func(fd uintptr) {
		dst = originalDst(int(fd), c.Conn.LocalAddr.Addr().Is6() && !c.Conn.LocalAddr.Addr().Is4In6())
	})
	if dst.IsValid() && dst != c.Conn.LocalAddr {
		c.Conn.LocalAddr = dst
		c.Conn.LocalRestored = true
	}
	return nil
}
