//go:build !linux

package cluster

import (
	"errors"
	"net"
)

func freebindOption(*net.TCPAddr) (SocketOption, error) {
	return SocketOption{}, errors.New("freebind is only supported on Linux")
}
