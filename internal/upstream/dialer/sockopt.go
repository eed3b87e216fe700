package dialer

import (
	"syscall"

	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// applySocketOptions sets the cluster's socket options on a socket before
// it connects.
func applySocketOptions(rc syscall.RawConn, opts []cluster.SocketOption) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		for _, o := range opts {
			if serr = setsockopt(fd, o); serr != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}
