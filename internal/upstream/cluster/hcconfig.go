package cluster

import (
	"net/netip"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
)

// HealthCheckTarget is an endpoint's health_check_config: where and as
// whom the active health checker probes the host instead of its own
// address. Accepted and kept on the Host for the health checker.
type HealthCheckTarget struct {
	// Port overrides the host's port (0: the host's).
	Port uint16
	// Addr overrides the whole address when valid.
	Addr netip.AddrPort
	// Hostname is the host header/SNI for probes, when set.
	Hostname string
	// Disabled is disable_active_health_check.
	Disabled bool
}

// decodeHealthCheckConfig validates an endpoint's health_check_config.
func decodeHealthCheckConfig(field string, hc *endpointv3.Endpoint_HealthCheckConfig) (*HealthCheckTarget, error) {
	if hc == nil {
		return nil, nil
	}
	t := &HealthCheckTarget{Hostname: hc.GetHostname(), Disabled: hc.GetDisableActiveHealthCheck()}
	if p := hc.GetPortValue(); p > 65535 {
		return nil, fieldErr(field+".port_value", "%d out of range", p)
	} else {
		t.Port = uint16(p)
	}
	if a := hc.GetAddress(); a != nil {
		sa := a.GetSocketAddress()
		if sa == nil {
			return nil, fieldErr(field+".address", "only socket_address is supported")
		}
		ip, err := netip.ParseAddr(sa.GetAddress())
		if err != nil {
			return nil, fieldErr(field+".address.socket_address.address", "%q is not an IP address", sa.GetAddress())
		}
		if sa.GetPortValue() > 65535 {
			return nil, fieldErr(field+".address.socket_address.port_value", "%d out of range", sa.GetPortValue())
		}
		t.Addr = netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue()))
	}
	return t, nil
}

// HealthCheckAddress is where the active health checker probes h.
func (h *Host) HealthCheckAddress() netip.AddrPort {
	t := h.HealthCheck
	switch {
	case t == nil:
		return h.AddrPort
	case t.Addr.IsValid():
		if t.Port != 0 {
			return netip.AddrPortFrom(t.Addr.Addr(), t.Port)
		}
		return t.Addr
	case t.Port != 0:
		return netip.AddrPortFrom(h.AddrPort.Addr(), t.Port)
	}
	return h.AddrPort
}
