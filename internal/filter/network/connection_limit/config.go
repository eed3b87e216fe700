// Package connection_limit is Envoy's connection limit network filter
// (type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit):
// at most max_connections connections of the filter's config are open at
// once; one more is counted in connection_limit.<stat_prefix>.limited_connections
// and closed, at once or after delay, before the terminal filter sees it.
// connection_limit.<stat_prefix>.active_connections counts the open ones,
// the refused included while they wait for their delayed close, as in
// Envoy.
package connection_limit

import (
	"errors"
	"fmt"

	clv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/connection_limit/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
)

func init() {
	networkfilter.Registry.Register(&clv3.ConnectionLimit{}, New)
}

// New is the network filter factory.
func New(cfg proto.Message, fc *networkfilter.FactoryContext) (networkfilter.Filter, error) {
	return Build(cfg.(*clv3.ConnectionLimit), fc)
}

// Build compiles a ConnectionLimit config. The count starts at zero for a
// new config (an LDS update), as in Envoy: connections of the previous
// version count against its own limit while they drain.
func Build(pb *clv3.ConnectionLimit, fc *networkfilter.FactoryContext) (*Filter, error) {
	if pb.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: must not be empty")
	}
	if pb.GetMaxConnections() == nil {
		return nil, errors.New("max_connections: is required")
	}
	if pb.GetMaxConnections().GetValue() < 1 {
		return nil, errors.New("max_connections: must be at least 1")
	}
	f := &Filter{
		max: pb.GetMaxConnections().GetValue(),
		// The runtime is static: runtime_enabled is read once, here.
		enabled: fc.Runtime.FeatureEnabled(pb.GetRuntimeEnabled()),
	}
	if d := pb.GetDelay(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, fmt.Errorf("delay: invalid duration %v", d)
		}
		f.delay = d.AsDuration()
	}
	st := fc.Stats
	if st == nil {
		st = stats.NewStore()
	}
	f.stats = newStats(st, pb.GetStatPrefix())
	return f, nil
}
