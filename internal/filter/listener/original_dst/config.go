package original_dst

import (
	odv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/listenerfilter"
	"github.com/legate-proxy/legate/internal/networkfilter"
)

func init() {
	listenerfilter.Registry.Register(&odv3.OriginalDst{}, New)
}

// New is the listener filter factory.
func New(cfg proto.Message, _ *networkfilter.FactoryContext) (listenerfilter.Filter, error) {
	_ = cfg.(*odv3.OriginalDst) // no settings on Linux
	return Filter{}, nil
}
