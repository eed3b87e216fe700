package sink

import (
	"context"
	"fmt"
	"net"

	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/upstream/dialer"
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
	h := c.Pick(nil)
	if h == nil {
		return nil, fmt.Errorf("cluster %q: no healthy upstream", name)
	}
	// The cluster's dialer: its connect timeout, TLS, bind config, and the
	// connection counted in the cluster's stats, as Envoy counts a sink's.
	conn, _, err := dialer.Dial(ctx, dialer.ForCluster(c, h, dialer.Raw))
	return conn, err
}
