// Package version holds build facts stamped by the linker
// (-X github.com/legate-proxy/legate/internal/version.Version=...).
package version

import (
	"fmt"
	"runtime"
)

var (
	Version   = "0.1.0-dev"
	Commit    = "unknown"
	BuildDate = "unknown"
)

// String is the --version line, in the spirit of Envoy's
// "envoy  version: <sha>/<version>/Clean/RELEASE/BoringSSL".
func String() string {
	return fmt.Sprintf("legate  version: %s/%s/Clean/RELEASE/%s built %s (%s/%s)",
		Commit, Version, runtime.Version(), BuildDate, runtime.GOOS, runtime.GOARCH)
}
