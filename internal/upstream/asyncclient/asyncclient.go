// Package asyncclient is Envoy's async clients for HTTP filters: requests
// and gRPC calls a filter makes to a cluster of its own (an authorization
// or rate limit service), outside any stream's route. It implements
// httpfilter.Upstreams on the cluster manager: every call goes through the
// cluster's load balancer, and HTTP requests through its connection pools
// and stats.
package asyncclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/upstream/connpool"
	"github.com/legate-proxy/legate/internal/upstream/dialer"
)

// Clients calls the clusters of one cluster manager. The gRPC connections
// it opens are shared per cluster and authority and closed by Close.
type Clients struct {
	cm *cluster.Manager

	mu     sync.Mutex
	conns  map[grpcKey]*grpc.ClientConn
	closed bool
}

type grpcKey struct{ cluster, authority string }

// New returns clients over cm; nothing is dialled until a call needs it.
func New(cm *cluster.Manager) *Clients {
	return &Clients{cm: cm, conns: map[grpcKey]*grpc.ClientConn{}}
}

// ErrNoHost is a call to a cluster without a healthy host.
var ErrNoHost = errors.New("no healthy upstream")

// RoundTrip sends req to a host of the named cluster.
func (c *Clients) RoundTrip(ctx context.Context, name string, req *message.Request) (*message.Response, error) {
	cl := c.cm.Get(name)
	if cl == nil {
		return nil, fmt.Errorf("cluster %q: no such cluster", name)
	}
	h := cl.Pick(nil)
	if h == nil {
		cl.Stats.UpstreamCxNone.Inc()
		return nil, fmt.Errorf("cluster %q: %w", name, ErrNoHost)
	}
	pool, _ := h.Pool().(*connpool.Pool)
	if pool == nil {
		return nil, fmt.Errorf("cluster %q: host %s has no connection pool", name, h.Address)
	}
	cl.Stats.UpstreamRqTotal.Inc()
	h.RqTotal.Add(1)
	resp, err := pool.RoundTrip(ctx, req)
	if err != nil {
		h.RqError.Add(1)
		return nil, err
	}
	cl.Stats.RecordStatus(resp.Status)
	return resp, nil
}

// GRPC returns the shared connection to cluster name with the given
// :authority ("" is the cluster's name). The cluster must exist and speak
// HTTP/2 when the connection is first asked for; each new transport
// connection picks a host afresh, as an Envoy cluster does.
func (c *Clients) GRPC(name, authority string) (grpc.ClientConnInterface, error) {
	if authority == "" {
		authority = name
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("async clients are closed")
	}
	k := grpcKey{name, authority}
	if cc := c.conns[k]; cc != nil {
		return cc, nil
	}
	cl := c.cm.Get(name)
	if cl == nil {
		return nil, fmt.Errorf("cluster %q: no such cluster", name)
	}
	if cl.Settings.Protocol != cluster.HTTP2 {
		return nil, fmt.Errorf("cluster %q must speak HTTP/2 for gRPC (typed_extension_protocol_options envoy.extensions.upstreams.http.v3.HttpProtocolOptions explicit_http_config.http2_protocol_options)", name)
	}
	creds := insecure.NewCredentials()
	if cl.Settings.TLS != nil {
		tc := cl.Settings.TLS.Clone()
		if len(tc.NextProtos) == 0 {
			tc.NextProtos = []string{"h2"}
		}
		creds = credentials.NewTLS(tc)
	}
	cm := c.cm
	cc, err := grpc.NewClient("passthrough:///"+name,
		grpc.WithTransportCredentials(creds),
		grpc.WithAuthority(authority),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			cl := cm.Get(name)
			if cl == nil {
				return nil, fmt.Errorf("cluster %q is gone", name)
			}
			h := cl.Pick(nil)
			if h == nil {
				cl.Stats.UpstreamCxNone.Inc()
				return nil, fmt.Errorf("cluster %q: %w", name, ErrNoHost)
			}
			// The one upstream dialer; gRPC's credentials do TLS.
			t := dialer.ForCluster(cl, h, dialer.HTTP2)
			t.TLS = nil
			conn, _, err := dialer.Dial(ctx, t)
			return conn, err
		}))
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	c.conns[k] = cc
	return cc, nil
}

// Close closes the gRPC connections; later GRPC calls fail.
func (c *Clients) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for k, cc := range c.conns {
		cc.Close()
		delete(c.conns, k)
	}
}
