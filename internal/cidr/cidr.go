// Package cidr compiles envoy.config.core.v3.CidrRange lists into
// prefixes matched without allocation (RBAC principals and permissions;
// filter-chain source and destination ranges can use it too).
package cidr

import (
	"fmt"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Parse compiles one CidrRange. As in Envoy, an unset prefix_len is 0 (the
// range then holds every address of its family) and the host bits of
// address_prefix are ignored. path names the range in errors.
func Parse(r *corev3.CidrRange, path string) (netip.Prefix, error) {
	a, err := netip.ParseAddr(r.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s.address_prefix: %q is not an IP address", path, r.GetAddressPrefix())
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%s.address_prefix: %q: zones are not allowed", path, r.GetAddressPrefix())
	}
	a = a.Unmap()
	bits := int(r.GetPrefixLen().GetValue())
	if bits > a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("%s.prefix_len: %d is longer than a %d-bit address", path, bits, a.BitLen())
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// Set is a list of ranges.
type Set []netip.Prefix

// ParseSet compiles ranges; path names the list in errors.
func ParseSet(rs []*corev3.CidrRange, path string) (Set, error) {
	s := make(Set, 0, len(rs))
	for i, r := range rs {
		p, err := Parse(r, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		s = append(s, p)
	}
	return s, nil
}

// Contains reports whether a is in one of the ranges. An IPv4-mapped IPv6
// address (a dual-stack socket's IPv4 peer) matches as the IPv4 address.
func (s Set) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
