package cluster

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// HealthFlag is one reason a host is out of (or demoted in) rotation, as
// Envoy's host health flags: each source of health — EDS, active health
// checks, outlier detection — sets and clears its own, and a host is
// healthy only while none is set. Changing one rebuilds the cluster's
// pickers (SetHealthFlag).
type HealthFlag uint32

const (
	FailedEDSHealth    HealthFlag = 1 << iota // EDS UNHEALTHY, DRAINING or TIMEOUT
	DegradedEDSHealth                         // EDS DEGRADED
	FailedActiveHC                            // the active health checker
	DegradedActiveHC                          // the active health checker (x-envoy-degraded)
	FailedOutlierCheck                        // outlier detection ejected it
)

// flagNames are Envoy's /clusters spellings, in its order.
var flagNames = []struct {
	f    HealthFlag
	name string
}{
	{FailedActiveHC, "/failed_active_hc"},
	{FailedOutlierCheck, "/failed_outlier_check"},
	{FailedEDSHealth, "/failed_eds_health"},
	{DegradedActiveHC, "/degraded_active_hc"},
	{DegradedEDSHealth, "/degraded_eds_health"},
}

// edsFlags maps an EDS health_status to its flags.
func edsFlags(s corev3.HealthStatus) HealthFlag {
	switch s {
	case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
		return 0
	case corev3.HealthStatus_DEGRADED:
		return DegradedEDSHealth
	}
	return FailedEDSHealth
}

// Flags returns the host's health flags.
func (h *Host) Flags() HealthFlag { return HealthFlag(h.flags.Load()) }

// setFlags sets the bits of mask to the bits of to; it reports a change.
func (h *Host) setFlags(mask, to HealthFlag) bool {
	for {
		old := h.flags.Load()
		next := old&^uint32(mask) | uint32(to&mask)
		if next == old {
			return false
		}
		if h.flags.CompareAndSwap(old, next) {
			return true
		}
	}
}

// Healthy reports whether the load balancer uses the host: no health
// flag set. (Degraded hosts count as unhealthy: Legate has no degraded
// tier.)
func (h *Host) Healthy() bool { return h.flags.Load() == 0 }

// HealthFlags is the host's health as /clusters prints it: "healthy", or
// Envoy's flags for what takes it out of rotation.
func (h *Host) HealthFlags() string {
	f := h.Flags()
	if f == 0 {
		return "healthy"
	}
	var b strings.Builder
	for _, n := range flagNames {
		if f&n.f != 0 {
			b.WriteString(n.name)
		}
	}
	return b.String()
}

// SetHealthFlag sets or clears one flag of a host of this cluster, and
// rebuilds the pickers when that changes whether hosts are picked. The
// active health checker and outlier detection call it.
func (c *Cluster) SetHealthFlag(h *Host, f HealthFlag, on bool) {
	to := HealthFlag(0)
	if on {
		to = f
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || !h.setFlags(f, to) {
		return
	}
	c.rebuild()
}
