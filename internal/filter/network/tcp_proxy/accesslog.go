package tcp_proxy

import (
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/legate-proxy/legate/internal/accesslog"
	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

// buildAccessLogs compiles access_log; the loggers run once per
// connection, when it closes (Envoy's TcpConnectionEnd entry).
func (p *Proxy) buildAccessLogs(pb *tcpv3.TcpProxy, fc *networkfilter.FactoryContext) error {
	ls, err := accesslog.New(pb.GetAccessLog(), accesslog.Deps{
		Stats: fc.Stats, Runtime: fc.Runtime, Files: fc.AccessLogFiles, Logger: fc.Logger,
		Clusters: fc.Clusters, NodeID: fc.NodeID, ClusterName: fc.ClusterName,
	})
	if err != nil {
		return err
	}
	if len(ls) > 0 {
		p.log = func(si *streaminfo.StreamInfo) {
			ls.Log(&formatter.Context{Info: si})
		}
	}
	return nil
}
