package cluster

import "github.com/legate-proxy/legate/internal/stats"

// NewStats creates a cluster's stats under scope (normally
// "cluster.<name>."), for code that builds a Cluster outside the Manager:
// connection-pool tests and tools.
func NewStats(scope stats.Scope) *Stats { return newStats(scope) }
