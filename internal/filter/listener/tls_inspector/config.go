package tls_inspector

import (
	"fmt"

	tiv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/listenerfilter"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
)

func init() {
	listenerfilter.Registry.Register(&tiv3.TlsInspector{}, New)
}

// New is the listener filter factory.
func New(cfg proto.Message, fc *networkfilter.FactoryContext) (listenerfilter.Filter, error) {
	return Build(cfg.(*tiv3.TlsInspector), fc.Stats)
}

// Build compiles a TlsInspector config.
func Build(pb *tiv3.TlsInspector, st *stats.Store) (*Filter, error) {
	f := &Filter{maxHello: listenerfilter.MaxPeek, closeOnError: pb.GetCloseConnectionOnClientHelloParsingErrors()}
	if pb.GetEnableJa3Fingerprinting().GetValue() || pb.GetEnableJa4Fingerprinting().GetValue() {
		return nil, fmt.Errorf("enable_ja3_fingerprinting, enable_ja4_fingerprinting: not supported")
	}
	if m := pb.GetMaxClientHelloSize(); m != nil {
		if m.GetValue() < 255 || m.GetValue() > listenerfilter.MaxPeek {
			return nil, fmt.Errorf("max_client_hello_size: %d is outside 255..65536", m.GetValue())
		}
		f.maxHello = int(m.GetValue())
	}
	if st == nil {
		st = stats.NewStore()
	}
	f.stats = newStats(st)
	return f, nil
}
