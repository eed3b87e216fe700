package sni_cluster

import (
	"github.com/legate-proxy/legate/internal/filter/network/tcp_proxy"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

// Filter is the SNI cluster filter; it has no config and no state.
type Filter struct {
	networkfilter.PassThrough
}

// Hooks: the filter acts at connection start only.
func (*Filter) Hooks() networkfilter.Hooks { return 0 }

// NewConn returns the shared filter.
func (f *Filter) NewConn(*networkfilter.Conn) networkfilter.Instance { return f }

// OnNewConnection names the SNI as the connection's cluster.
func (*Filter) OnNewConnection(c *networkfilter.Conn) networkfilter.Status {
	if sni := c.RequestedServerName; sni != "" {
		c.Dynamic.SetFilterState(tcp_proxy.PerConnectionClusterKey, streaminfo.StringObject(sni))
	}
	return networkfilter.Continue
}
