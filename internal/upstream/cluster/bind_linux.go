package cluster

import (
	"net"
	"syscall"
)

// freebindOption is IP_FREEBIND (IPV6_FREEBIND for an IPv6 source).
func freebindOption(src *net.TCPAddr) (SocketOption, error) {
	if src != nil && src.IP.To4() == nil {
		return SocketOption{Level: syscall.IPPROTO_IPV6, Name: 78 /* IPV6_FREEBIND */, Int: 1}, nil
	}
	return SocketOption{Level: syscall.IPPROTO_IP, Name: syscall.IP_FREEBIND, Int: 1}, nil
}
