//go:build unix

package dialer

import (
	"fmt"
	"syscall"

	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

func setsockopt(fd uintptr, o cluster.SocketOption) error {
	var err error
	if o.Buf != nil {
		err = syscall.SetsockoptString(int(fd), o.Level, o.Name, string(o.Buf))
	} else {
		err = syscall.SetsockoptInt(int(fd), o.Level, o.Name, int(o.Int))
	}
	if err != nil {
		return fmt.Errorf("socket option level %d name %d: %w", o.Level, o.Name, err)
	}
	return nil
}
