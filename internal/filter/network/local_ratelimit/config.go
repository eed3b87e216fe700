// Package local_ratelimit is Envoy's local rate limit network filter
// (type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit):
// every new connection takes a token from one bucket shared by all the
// connections of the filter's config; without one the connection is
// closed at once, before the terminal filter sees it, counted in
// local_rate_limit.<stat_prefix>.rate_limited and flagged URX, as in
// Envoy.
package local_ratelimit

import (
	"errors"

	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/tokenbucket"
)

func init() {
	networkfilter.Registry.Register(&lrlv3.LocalRateLimit{}, New)
}

// New is the network filter factory.
func New(cfg proto.Message, fc *networkfilter.FactoryContext) (networkfilter.Filter, error) {
	return Build(cfg.(*lrlv3.LocalRateLimit), fc)
}

// Build compiles a LocalRateLimit config. The bucket starts full; a new
// config (an LDS update) starts a new one, as in Envoy.
func Build(pb *lrlv3.LocalRateLimit, fc *networkfilter.FactoryContext) (*Filter, error) {
	if pb.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: must not be empty")
	}
	if pb.GetShareKey() != "" {
		return nil, errors.New("share_key: is not supported")
	}
	bucket, err := tokenbucket.FromProto(pb.GetTokenBucket(), "token_bucket")
	if err != nil {
		return nil, err
	}
	st := fc.Stats
	if st == nil {
		st = stats.NewStore()
	}
	return &Filter{
		// The runtime is static: runtime_enabled is read once, here.
		enabled: fc.Runtime.FeatureEnabled(pb.GetRuntimeEnabled()),
		bucket:  bucket,
		stats:   newStats(st, pb.GetStatPrefix()),
	}, nil
}
