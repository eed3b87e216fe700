//go:build !linux

package original_dst

import "net/netip"

func originalDst(int, bool) netip.AddrPort { return netip.AddrPort{} }
