package http_inspector

import (
	hiv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/listenerfilter"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
)

func init() {
	listenerfilter.Registry.Register(&hiv3.HttpInspector{}, New)
}

// New is the listener filter factory. HttpInspector has no settings.
func New(_ proto.Message, fc *networkfilter.FactoryContext) (listenerfilter.Filter, error) {
	st := fc.Stats
	if st == nil {
		st = stats.NewStore()
	}
	return &Filter{stats: newStats(st)}, nil
}
