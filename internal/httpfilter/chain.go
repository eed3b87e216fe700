package httpfilter

import (
	"fmt"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/legate-proxy/legate/internal/httpfilter/perroute"
)

// BuildChain compiles an http_filters list back to front so each filter
// wraps the next. With end nil the last filter must be terminal (the
// router); a test harness passes its own end instead, and the list then
// has no terminal filter. Each filter's factory gets base with its
// FilterName and FilterID set.
//
// A filter that a route may switch off (every non-terminal one) is wrapped
// in a gate that reads the first-matched route's typed_per_filter_config:
// HttpFilter.disabled switches it off unless the route has an entry for it
// that is not disabled; FilterConfig.disabled switches it off on a route.
// An unknown filter with is_optional is skipped, as in Envoy.
func BuildChain(filters []*hcmv3.HttpFilter, base FactoryContext, end Handler) (Handler, error) {
	if len(filters) == 0 && end == nil {
		return nil, fmt.Errorf("http_filters: a terminal filter (router) is required")
	}
	next := end
	for i := len(filters) - 1; i >= 0; i-- {
		f := filters[i]
		last := i == len(filters)-1 && end == nil
		if f.GetIsOptional() && !Registry.Has(f.GetTypedConfig()) {
			if last {
				return nil, fmt.Errorf("http_filters[%d]: the last filter must be terminal (e.g. the router), not the unknown optional filter %q", i, f.GetName())
			}
			continue
		}
		factory, msg, err := Registry.Lookup(f.GetTypedConfig())
		if err != nil {
			return nil, fmt.Errorf("http_filters[%d]: %w", i, err)
		}
		terminal := Terminal[string(msg.ProtoReflect().Descriptor().FullName())]
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

// gate runs its filter or skips to the next one, as the route decides.
type gate struct {
	id           perroute.ID
	filter, next Handler
	off          bool // HttpFilter.disabled
}

func (g *gate) ServeStream(s *Stream) {
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
