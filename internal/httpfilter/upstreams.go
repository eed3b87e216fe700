package httpfilter

import (
	"context"

	"google.golang.org/grpc"

	"github.com/legate-proxy/legate/internal/http/message"
)

// Upstreams is how a filter calls a cluster of its own (Envoy's async
// clients): an authorization or rate limit service, a collector. The
// connection manager provides one built on the cluster manager
// (internal/upstream/asyncclient); calls go through the cluster's load
// balancer and are counted in its stats.
type Upstreams interface {
	// RoundTrip sends req to a host of the named cluster through the
	// cluster's connection pools and returns the response headers; the
	// caller reads and closes the body.
	RoundTrip(ctx context.Context, cluster string, req *message.Request) (*message.Response, error)
	// GRPC returns a gRPC connection to the named cluster, which must
	// speak HTTP/2; callers asking for the same cluster and authority
	// ("" is the cluster's name) share one.
	GRPC(cluster, authority string) (grpc.ClientConnInterface, error)
}
