// Package tooling holds the programs around the proxy, not the proxy:
// legate-cp's management server (controlplane) and the demo's process
// supervisor (child). Nothing under internal/tooling is linked into
// bin/legate; TestProxyDoesNotLinkTooling in cmd/legate keeps it so.
package tooling
