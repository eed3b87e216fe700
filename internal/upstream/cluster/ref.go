package cluster

import "sync/atomic"

// Ref is a stable handle on a cluster name. Routes and TCP proxies hold
// Refs, not Clusters, so that CDS can add, replace and remove clusters
// without recompiling them: picking the cluster is one atomic load. Load
// returns nil while no active cluster has the name (unknown, still
// warming for the first time, or removed).
type Ref struct {
	name string
	p    atomic.Pointer[Cluster]
}

// Name is the cluster name the Ref stands for.
func (r *Ref) Name() string { return r.name }

// Load returns the active cluster, or nil.
func (r *Ref) Load() *Cluster {
	if r == nil {
		return nil
	}
	return r.p.Load()
}

// NewRef returns a handle on name holding no cluster. The manager makes
// its own; tests and callers without a manager use this.
func NewRef(name string) *Ref { return &Ref{name: name} }

// Store makes c the cluster behind r (nil: none). Only the manager does
// this for its own Refs.
func (r *Ref) Store(c *Cluster) { r.p.Store(c) }
