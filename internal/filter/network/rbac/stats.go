package rbac

import "github.com/legate-proxy/legate/internal/stats"

// Stats are Envoy's RBAC network filter stats: <stat_prefix>.rbac.allowed
// and .denied, and the shadow rules' under
// <stat_prefix>.rbac.<shadow_rules_stat_prefix>.
type Stats struct {
	Allowed, Denied             *stats.Counter
	ShadowAllowed, ShadowDenied *stats.Counter
}

func newStats(st *stats.Store, prefix, shadowPrefix string) *Stats {
	sc := st.Scope(prefix).Scope("rbac")
	shadow := sc.Scope(shadowPrefix)
	return &Stats{
		Allowed:       sc.Counter("allowed"),
		Denied:        sc.Counter("denied"),
		ShadowAllowed: shadow.Counter("shadow_allowed"),
		ShadowDenied:  shadow.Counter("shadow_denied"),
	}
}
