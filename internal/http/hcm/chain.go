package hcm

import (
	"fmt"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/httpfilter/perroute"
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
	chain, err := buildChain(pb.GetHttpFilters(), fc)
	if err != nil {
		return err
	}
	c.Chain = chain
	return nil
}

// buildChain builds the filters back to front so each wraps the next. A
// filter that a route may switch off (every non-terminal one) is wrapped
// in a gate that reads the first-matched route's typed_per_filter_config.
func buildChain(filters []*hcmv3.HttpFilter, base httpfilter.FactoryContext) (httpfilter.Handler, error) {
	if len(filters) == 0 {
		return nil, fmt.Errorf("http_filters: a terminal filter (router) is required")
	}
	var next httpfilter.Handler
	for i := len(filters) - 1; i >= 0; i-- {
		f := filters[i]
		last := i == len(filters)-1
		if f.GetIsOptional() && !httpfilter.Registry.Has(f.GetTypedConfig()) {
			// Envoy skips an optional filter it does not know.
			if last {
				return nil, fmt.Errorf("http_filters[%d]: the last filter must be terminal (e.g. the router), not the unknown optional filter %q", i, f.GetName())
			}
			continue
		}
		factory, msg, err := httpfilter.Registry.Lookup(f.GetTypedConfig())
		if err != nil {
			return nil, fmt.Errorf("http_filters[%d]: %w", i, err)
		}
		terminal := httpfilter.Terminal[string(msg.ProtoReflect().Descriptor().FullName())]
		if terminal != last {
			if terminal {
				return nil, fmt.Errorf("http_filters[%d]: terminal filter %q must be the last filter", i, f.GetName())
			}
			return nil, fmt.Errorf("http_filters[%d]: the last filter must be terminal (e.g. the router), not %q", i, f.GetName())
		}
		if terminal && f.GetDisabled() {
			return nil, fmt.Errorf("http_filters[%d].disabled: the terminal filter %q cannot be disabled", i, f.GetName())
		}
		fc := base
		fc.FilterName = f.GetName()
		fc.FilterID = perroute.Intern(f.GetName())
		h, err := factory(msg, &fc, next)
		if err != nil {
			return nil, fmt.Errorf("http_filters[%d]: %w", i, err)
		}
		if !terminal {
			h = &gate{id: fc.FilterID, filter: h, next: next, off: f.GetDisabled()}
		}
		next = h
	}
	return next, nil
}

// gate runs its filter or skips to the next one, as the route decides:
// HttpFilter.disabled switches a filter off unless the route has an entry
// for it (one that is not disabled), FilterConfig.disabled switches it off
// on that route.
type gate struct {
	id           perroute.ID
	filter, next httpfilter.Handler
	off          bool // HttpFilter.disabled
}

func (g *gate) ServeStream(s *httpfilter.Stream) {
	on := !g.off
	if e, ok := s.ChainConfig.Lookup(g.id); ok {
		on = !e.Disabled
	}
	if on {
		g.filter.ServeStream(s)
	} else {
		g.next.ServeStream(s)
	}
}
