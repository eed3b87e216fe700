package sink

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/legate-proxy/legate/internal/grpcclient"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// Clusters adapts the cluster manager for TCP statsd sinks: a host is
// picked by the cluster's load balancer and dialled with its connect
// timeout and, when the cluster has an UpstreamTlsContext, TLS.
func Clusters(m *cluster.Manager) ClusterLookup { return managerLookup{m} }

type managerLookup struct{ m *cluster.Manager }

func (l managerLookup) HasCluster(name string) bool { return l.m != nil && l.m.Get(name) != nil }

func (l managerLookup) DialCluster(ctx context.Context, name string) (net.Conn, error) {
	c := l.m.Get(name)
	if c == nil {
		return nil, fmt.Errorf("unknown cluster %q", name)
	}
	conn, err := grpcclient.DialCluster(l.m.Ref(name))(ctx, "tcp", "")
	if err != nil {
		return nil, err
	}
	if c.Settings.TLS == nil {
		return conn, nil
	}
	tc := tls.Client(conn, c.Settings.TLS.Clone())
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}
