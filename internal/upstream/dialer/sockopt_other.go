//go:build !unix

package dialer

import (
	"errors"

	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

func setsockopt(uintptr, cluster.SocketOption) error {
	return errors.New("socket options are not supported on this platform")
}
