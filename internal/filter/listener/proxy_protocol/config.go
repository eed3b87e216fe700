package proxy_protocol

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ppv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/proxy_protocol/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/listenerfilter"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
)

func init() {
	listenerfilter.Registry.Register(&ppv3.ProxyProtocol{}, New)
}

// defaultNamespace is where TLV metadata goes when a rule names none.
const defaultNamespace = "envoy.filters.listener.proxy_protocol"

// New is the listener filter factory.
func New(cfg proto.Message, fc *networkfilter.FactoryContext) (listenerfilter.Filter, error) {
	return Build(cfg.(*ppv3.ProxyProtocol), fc.Stats)
}

// rule is one TLV type to copy into dynamic metadata.
type rule struct {
	namespace, key string
	base64         bool // value_string_encoding BASE64; else SANITIZED_UTF8
}

// Build compiles a ProxyProtocol config.
func Build(pb *ppv3.ProxyProtocol, st *stats.Store) (*Filter, error) {
	f := &Filter{allowWithout: pb.GetAllowRequestsWithoutProxyProtocol()}
	if pb.GetPassThroughTlvs() != nil {
		return nil, fmt.Errorf("pass_through_tlvs: not supported (it feeds the upstream proxy_protocol transport socket)")
	}
	if pb.GetTlvLocation() != ppv3.ProxyProtocol_DYNAMIC_METADATA {
		return nil, fmt.Errorf("tlv_location: only DYNAMIC_METADATA is supported")
	}
	for _, v := range pb.GetDisallowedVersions() {
		switch v {
		case corev3.ProxyProtocolConfig_V1:
			f.disallowed[0] = true
		case corev3.ProxyProtocolConfig_V2:
			f.disallowed[1] = true
		}
	}
	for i, r := range pb.GetRules() {
		kv := r.GetOnTlvPresent()
		if r.GetTlvType() > 255 {
			return nil, fmt.Errorf("rules[%d].tlv_type: %d is not a TLV type (0-255)", i, r.GetTlvType())
		}
		if kv.GetKey() == "" {
			return nil, fmt.Errorf("rules[%d].on_tlv_present.key: required", i)
		}
		ns := kv.GetMetadataNamespace()
		if ns == "" {
			ns = defaultNamespace
		}
		if f.rules[r.GetTlvType()] != nil {
			return nil, fmt.Errorf("rules[%d].tlv_type: %d has a rule already", i, r.GetTlvType())
		}
		f.rules[r.GetTlvType()] = &rule{namespace: ns, key: kv.GetKey(),
			base64: kv.GetValueStringEncoding() == ppv3.ProxyProtocol_KeyValuePair_BASE64}
		f.hasRules = true
	}
	if st == nil {
		st = stats.NewStore()
	}
	f.stats = newStats(st, pb.GetStatPrefix())
	return f, nil
}
