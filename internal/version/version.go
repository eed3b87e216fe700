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
	// Tree is "Clean", or "Modified" when built with uncommitted changes.
	Tree = "Clean"
)

// String is the --version line, in the spirit of Envoy's
// "envoy  version: <sha>/<version>/Clean/RELEASE/BoringSSL".
func String() string {
	return fmt.Sprintf("legate  version: %s/%s/%s/RELEASE/%s built %s (%s/%s)",
		Commit, Version, Tree, runtime.Version(), BuildDate, runtime.GOOS, runtime.GOARCH)
}
