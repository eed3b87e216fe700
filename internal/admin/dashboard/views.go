package dashboard

import (
	"net"
	"strconv"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// FromClusterManager adapts the cluster manager for Deps.Clusters: the
// active clusters, static and CDS-added. Health is the EDS health_status
// (Legate has no active health checking or outlier detection yet), as
// /clusters reports it.
func FromClusterManager(m *cluster.Manager) func() []ClusterView {
	return func() []ClusterView {
		cs := m.Clusters()
		out := make([]ClusterView, 0, len(cs))
		for _, c := range cs {
			hosts := c.Hosts()
			cv := ClusterView{Name: c.Name, StatName: c.ObservabilityName, Hosts: make([]HostView, 0, len(hosts))}
			for _, h := range hosts {
				cv.Hosts = append(cv.Hosts, HostView{
					Address: h.Address, Hostname: h.Hostname, Weight: h.Weight,
					Healthy: h.Healthy(), HealthFlags: h.HealthFlags(),
					RqTotal: h.RqTotal.Load(), RqError: h.RqError.Load(),
					CxActive: h.CxActive.Load(), RqActive: h.RqActive.Load(),
				})
			}
			out = append(out, cv)
		}
		return out
	}
}

// ListenerViews links each listener to the stat_prefix of its HTTP
// connection manager, for Deps.Listeners. The listener stat name
// follows internal/listener: stat_prefix, else "<ip>_<port>" with an IPv6
// address bracketed and its colons replaced by underscores.
func ListenerViews(listeners []*listenerv3.Listener) []ListenerView {
	var out []ListenerView
	for _, l := range listeners {
		sa := l.GetAddress().GetSocketAddress()
		host, port := sa.GetAddress(), sa.GetPortValue()
		lv := ListenerView{Name: l.GetName(), Address: net.JoinHostPort(host, strconv.Itoa(int(port))), StatName: l.GetStatPrefix()}
		if lv.StatName == "" {
			h := host
			if strings.Contains(h, ":") {
				h = "[" + strings.ReplaceAll(h, ":", "_") + "]"
			}
			lv.StatName = h + "_" + strconv.Itoa(int(port))
		}
		if lv.Name == "" {
			lv.Name = lv.Address
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if tc := f.GetTypedConfig(); tc != nil && tc.MessageIs(&hcm) && tc.UnmarshalTo(&hcm) == nil && lv.HTTPStatPrefix == "" {
					lv.HTTPStatPrefix = hcm.GetStatPrefix()
				}
			}
		}
		out = append(out, lv)
	}
	return out
}
