package cluster

import "github.com/legate-proxy/legate/internal/stats"

// Cluster is one configured cluster. Name, Settings and Stats are fixed;
// hosts and the picker live in an atomically published snapshot.
type Cluster struct {
	Name     string
	Settings Settings
	Stats    *Stats
}

// PickContext carries what a load balancer may use to choose.
type PickContext struct {
	// Exclude, when non-nil, returns true for hosts to avoid if another is
	// available (retry_host_predicate previous_hosts).
	Exclude func(*Host) bool
}

// Pick chooses a host; nil means no healthy upstream.
func (c *Cluster) Pick(pc *PickContext) *Host { return nil }

// Manager owns every cluster.
type Manager struct{}

// Get returns the cluster called name, or nil. Config-time callers compile
// references to *Cluster; cluster_header routes call it per request.
func (m *Manager) Get(name string) *Cluster { return nil }

var _ = stats.NewStore
