package cidr

import (
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func r(prefix string, n uint32, set bool) *corev3.CidrRange {
	c := &corev3.CidrRange{AddressPrefix: prefix}
	if set {
		c.PrefixLen = wrapperspb.UInt32(n)
	}
	return c
}

func TestSet(t *testing.T) {
	s, err := ParseSet([]*corev3.CidrRange{r("10.1.2.3", 16, true), r("2001:db8::", 32, true)}, "ranges")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.1.99.1": true, "10.2.0.1": false, "::ffff:10.1.0.1": true,
		"2001:db8:1::5": true, "2001:db9::1": false, "127.0.0.1": false,
	} {
		if got := s.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
	// Envoy's default prefix_len is 0: the whole family.
	all, _ := ParseSet([]*corev3.CidrRange{r("192.0.2.1", 0, false)}, "ranges")
	if !all.Contains(netip.MustParseAddr("8.8.8.8")) || all.Contains(netip.MustParseAddr("::1")) {
		t.Error("an unset prefix_len must match every IPv4 address and no IPv6 one")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		c    *corev3.CidrRange
		want string
	}{
		{r("nope", 8, true), "ranges[0].address_prefix"},
		{r("10.0.0.0", 33, true), "ranges[0].prefix_len: 33"},
		{r("fe80::1%eth0", 64, true), "zones"},
	} {
		if _, err := ParseSet([]*corev3.CidrRange{tt.c}, "ranges"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.c, err, tt.want)
		}
	}
}
