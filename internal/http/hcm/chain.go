package hcm

import (
	"fmt"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/upstream/asyncclient"
)

// buildFilters compiles what the HTTP filters need: the chain itself, the
// local reply config every local reply goes through, and the async
// clients filters may call clusters with.
func (c *Config) buildFilters(pb *hcmv3.HttpConnectionManager, deps Deps) error {
	rt := deps.Runtime
	lr, err := compileLocalReply(pb.GetLocalReplyConfig(), rt)
	if err != nil {
		return fmt.Errorf("local_reply_config%w", err)
	}
	c.localReply = lr
	fc := httpfilter.FactoryContext{
		Clusters:   deps.Clusters,
		Stats:      deps.Stats,
		StatPrefix: "http." + c.StatPrefix + ".",
		Logger:     deps.Logger,
		Runtime:    rt,
	}
	if deps.Clusters != nil {
		up := asyncclient.New(deps.Clusters)
		deps.XDS.OnRelease(up.Close)
		if deps.AtShutdown != nil {
			deps.AtShutdown(up.Close)
		}
		fc.Upstreams = up
	}
	chain, err := httpfilter.BuildChain(pb.GetHttpFilters(), fc, nil)
	if err != nil {
		return err
	}
	c.Chain = chain
	return nil
}
