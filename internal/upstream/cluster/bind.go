package cluster

import (
	"fmt"
	"net"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// DecodeBindConfig decodes an upstream BindConfig (a cluster's
// upstream_bind_config): the source address and the socket options set
// before connecting. field names it in errors.
func DecodeBindConfig(field string, bc *corev3.BindConfig) (*BindConfig, error) {
	b := &BindConfig{}
	if sa := bc.GetSourceAddress(); sa != nil {
		if sa.GetProtocol() != corev3.SocketAddress_TCP {
			return nil, fieldErr(field+".source_address.protocol", "only TCP is supported")
		}
		if sa.GetResolverName() != "" || sa.GetNamedPort() != "" || sa.GetIpv4Compat() {
			return nil, fieldErr(field+".source_address", "resolver_name, named_port and ipv4_compat are not supported")
		}
		ip, err := netip.ParseAddr(sa.GetAddress())
		if err != nil {
			return nil, fieldErr(field+".source_address.address", "must be an IP address, got %q", sa.GetAddress())
		}
		b.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(sa.GetPortValue())))
	}
	//lint:ignore SA1019 the deprecated form is refused like the current one
	if len(bc.GetExtraSourceAddresses()) > 0 || len(bc.GetAdditionalSourceAddresses()) > 0 {
		return nil, fieldErr(field+".extra_source_addresses", "is not supported")
	}
	if bc.GetLocalAddressSelector() != nil {
		return nil, fieldErr(field+".local_address_selector", "is not supported")
	}
	if fb := bc.GetFreebind(); fb != nil && fb.GetValue() {
		o, err := freebindOption(b.LocalAddr)
		if err != nil {
			return nil, fieldErr(field+".freebind", "%v", err)
		}
		b.SocketOptions = append(b.SocketOptions, o)
	}
	opts, err := DecodeSocketOptions(field+".socket_options", bc.GetSocketOptions(), false)
	if err != nil {
		return nil, err
	}
	b.SocketOptions = append(b.SocketOptions, opts...)
	return b, nil
}

// DecodeSocketOptions decodes SocketOption messages. Upstream sockets
// never listen, so STATE_LISTENING options are refused there rather than
// silently never applied; both other states are applied before connect.
func DecodeSocketOptions(field string, in []*corev3.SocketOption, listening bool) ([]SocketOption, error) {
	var out []SocketOption
	for i, so := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		if so.GetState() == corev3.SocketOption_STATE_LISTENING && !listening {
			return nil, fieldErr(f+".state", "STATE_LISTENING does not apply to upstream sockets")
		}
		if so.GetType() != nil {
			return nil, fieldErr(f+".type", "is not supported")
		}
		o := SocketOption{Level: int(so.GetLevel()), Name: int(so.GetName())}
		switch v := so.GetValue().(type) {
		case *corev3.SocketOption_IntValue:
			o.Int = v.IntValue
		case *corev3.SocketOption_BufValue:
			o.Buf = v.BufValue
			if o.Buf == nil {
				o.Buf = []byte{}
			}
		default:
			return nil, fieldErr(f, "one of int_value or buf_value is required")
		}
		out = append(out, o)
	}
	return out, nil
}
