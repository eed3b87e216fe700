package listener

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/legate-proxy/legate/internal/cidr"
)

// The filter chain match, as Envoy's FilterChainManagerImpl: the chains'
// FilterChainMatch criteria are compiled into a tree with one level per
// criterion, in Envoy's order. At each level the most specific entry that
// matches the connection is taken (an exact port over any port, the
// longest address prefix, an exact server name over the longest wildcard
// over none, ...), and the search never goes back up: when the chosen
// branch matches nothing further down, the connection gets the default
// filter chain, or none. Looking a connection up allocates nothing.

// Levels of the tree, in Envoy's order.
const (
	lvDestPort = iota
	lvDestIP
	lvServerName
	lvTransport
	lvALPN
	lvDirectSourceIP
	lvSourceType
	lvSourceIP
	lvSourcePort
	lvLeaf
)

// matchInput is what a connection presents to the match.
type matchInput struct {
	local, remote, direct netip.AddrPort
	serverName            string // lower case
	transport             string
	alpn                  []string
}

// node is one level's table.
type node struct {
	level int
	nums  []uint32       // ports, source types: sorted
	pfx   []netip.Prefix // address ranges: longest first
	strs  []string       // exact server names, transports, ALPN: sorted
	wild  []string       // server-name wildcards as ".example.com": longest first
	kids  []*node        // parallel to nums, pfx or strs
	wkids []*node        // parallel to wild
	any   *node          // the entry that does not constrain this level
	chain *filterChain   // at lvLeaf
}

// find returns the chain for in, nil when none matches.
func (n *node) find(in *matchInput) *filterChain {
	for n != nil {
		switch n.level {
		case lvLeaf:
			return n.chain
		case lvDestPort:
			n = n.byNum(uint32(in.local.Port()))
		case lvDestIP:
			n = n.byAddr(in.local.Addr())
		case lvServerName:
			n = n.byName(in.serverName)
		case lvTransport:
			n = n.byStr(in.transport)
		case lvALPN:
			next := n.any
			for _, p := range in.alpn {
				if i, ok := slices.BinarySearch(n.strs, p); ok {
					next = n.kids[i]
					break
				}
			}
			n = next
		case lvDirectSourceIP:
			n = n.byAddr(in.direct.Addr())
		case lvSourceType:
			n = n.bySourceType(in)
		case lvSourceIP:
			n = n.byAddr(in.remote.Addr())
		case lvSourcePort:
			n = n.byNum(uint32(in.remote.Port()))
		}
	}
	return nil
}

func (n *node) byNum(v uint32) *node {
	if i, ok := slices.BinarySearch(n.nums, v); ok {
		return n.kids[i]
	}
	return n.any
}

func (n *node) byStr(s string) *node {
	if i, ok := slices.BinarySearch(n.strs, s); ok {
		return n.kids[i]
	}
	return n.any
}

func (n *node) byAddr(a netip.Addr) *node {
	a = a.Unmap()
	for i, p := range n.pfx {
		if p.Contains(a) {
			return n.kids[i]
		}
	}
	return n.any
}

// byName: the exact name, else the longest matching wildcard
// ("*.b.example.com" before "*.example.com"), else the chains without
// server_names. A connection without SNI matches only those.
func (n *node) byName(sni string) *node {
	if sni == "" {
		return n.any
	}
	if i, ok := slices.BinarySearch(n.strs, sni); ok {
		return n.kids[i]
	}
	for i := strings.IndexByte(sni, '.'); i >= 0; {
		suffix := sni[i:]
		for j, w := range n.wild {
			if w == suffix {
				return n.wkids[j]
			}
		}
		k := strings.IndexByte(sni[i+1:], '.')
		if k < 0 {
			break
		}
		i += 1 + k
	}
	return n.any
}

// bySourceType: SAME_IP_OR_LOOPBACK for a peer on the loopback or on the
// listener's own address, else EXTERNAL; either before ANY.
func (n *node) bySourceType(in *matchInput) *node {
	r := in.remote.Addr().Unmap()
	local := r.IsLoopback() || r == in.local.Addr().Unmap()
	want := uint32(listenerv3.FilterChainMatch_EXTERNAL)
	if local {
		want = uint32(listenerv3.FilterChainMatch_SAME_IP_OR_LOOPBACK)
	}
	if i, ok := slices.BinarySearch(n.nums, want); ok {
		return n.kids[i]
	}
	return n.any
}

// criteria is one chain's FilterChainMatch, compiled: per level the keys it
// accepts; an empty list at a level is "any".
type criteria struct {
	chain *filterChain
	index int // in filter_chains
	nums  [lvLeaf][]uint32
	pfx   [lvLeaf][]netip.Prefix
	strs  [lvLeaf][]string
}

// compileMatch compiles one FilterChainMatch. path names it in errors.
func compileMatch(m *listenerv3.FilterChainMatch, path string) (*criteria, error) {
	c := &criteria{}
	if m == nil {
		return c, nil
	}
	if m.GetAddressSuffix() != "" || m.GetSuffixLen() != nil {
		return nil, fmt.Errorf("%s.address_suffix: not implemented in Envoy either", path)
	}
	if p := m.GetDestinationPort(); p != nil {
		if p.GetValue() < 1 || p.GetValue() > 65535 {
			return nil, fmt.Errorf("%s.destination_port: %d is not a port (1-65535)", path, p.GetValue())
		}
		c.nums[lvDestPort] = []uint32{p.GetValue()}
	}
	var err error
	for _, r := range []struct {
		lv  int
		rs  []*corev3.CidrRange
		fld string
	}{
		{lvDestIP, m.GetPrefixRanges(), "prefix_ranges"},
		{lvDirectSourceIP, m.GetDirectSourcePrefixRanges(), "direct_source_prefix_ranges"},
		{lvSourceIP, m.GetSourcePrefixRanges(), "source_prefix_ranges"},
	} {
		var s cidr.Set
		if s, err = cidr.ParseSet(r.rs, path+"."+r.fld); err != nil {
			return nil, err
		}
		c.pfx[r.lv] = s
	}
	for i, name := range m.GetServerNames() {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		if strings.Contains(name, "*") && (!strings.HasPrefix(name, "*.") || strings.Count(name, "*") > 1) {
			return nil, fmt.Errorf("%s.server_names[%d]: %q: partial wildcards are not supported (only a leading \"*.\")", path, i, name)
		}
		if name == "" {
			return nil, fmt.Errorf("%s.server_names[%d]: empty", path, i)
		}
		c.strs[lvServerName] = append(c.strs[lvServerName], name)
	}
	if t := m.GetTransportProtocol(); t != "" {
		c.strs[lvTransport] = []string{t}
	}
	for i, p := range m.GetApplicationProtocols() {
		if p == "" {
			return nil, fmt.Errorf("%s.application_protocols[%d]: empty", path, i)
		}
		c.strs[lvALPN] = append(c.strs[lvALPN], p)
	}
	if st := m.GetSourceType(); st != listenerv3.FilterChainMatch_ANY {
		c.nums[lvSourceType] = []uint32{uint32(st)}
	}
	for i, p := range m.GetSourcePorts() {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("%s.source_ports[%d]: %d is not a port (1-65535)", path, i, p)
		}
		c.nums[lvSourcePort] = append(c.nums[lvSourcePort], p)
	}
	return c, nil
}

// keyKind says which criteria list a level uses.
func keyKind(lv int) byte {
	switch lv {
	case lvDestPort, lvSourceType, lvSourcePort:
		return 'n'
	case lvDestIP, lvDirectSourceIP, lvSourceIP:
		return 'p'
	}
	return 's'
}

// buildTree compiles the chains' criteria; two chains whose criteria
// overlap completely are refused, as Envoy refuses them. path is the
// listener's filter_chains path.
func buildTree(cs []*criteria, lv int, path string) (*node, error) {
	n := &node{level: lv}
	if lv == lvLeaf {
		if len(cs) > 1 {
			return nil, fmt.Errorf("%s[%d].filter_chain_match: multiple filter chains with the same matching rules are defined (also %s[%d])",
				path, cs[1].index, path, cs[0].index)
		}
		n.chain = cs[0].chain
		return n, nil
	}
	var anyCS []*criteria
	switch keyKind(lv) {
	case 'n':
		groups := map[uint32][]*criteria{}
		for _, c := range cs {
			if len(c.nums[lv]) == 0 {
				anyCS = append(anyCS, c)
			}
			for _, v := range dedupeSorted(c.nums[lv]) {
				groups[v] = append(groups[v], c)
			}
		}
		for v := range groups {
			n.nums = append(n.nums, v)
		}
		slices.Sort(n.nums)
		for _, v := range n.nums {
			k, err := buildTree(groups[v], lv+1, path)
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, k)
		}
	case 'p':
		groups := map[netip.Prefix][]*criteria{}
		for _, c := range cs {
			if len(c.pfx[lv]) == 0 {
				anyCS = append(anyCS, c)
			}
			seen := map[netip.Prefix]bool{}
			for _, p := range c.pfx[lv] {
				if !seen[p] {
					seen[p] = true
					groups[p] = append(groups[p], c)
				}
			}
		}
		for p := range groups {
			n.pfx = append(n.pfx, p)
		}
		// Longest prefix first, so the first that contains an address is
		// the most specific; ties in a stable order.
		slices.SortFunc(n.pfx, func(a, b netip.Prefix) int {
			if c := cmp.Compare(b.Bits(), a.Bits()); c != 0 {
				return c
			}
			return a.Addr().Compare(b.Addr())
		})
		for _, p := range n.pfx {
			k, err := buildTree(groups[p], lv+1, path)
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, k)
		}
	default:
		groups := map[string][]*criteria{}
		wgroups := map[string][]*criteria{}
		for _, c := range cs {
			if len(c.strs[lv]) == 0 {
				anyCS = append(anyCS, c)
			}
			seen := map[string]bool{}
			for _, s := range c.strs[lv] {
				if seen[s] {
					continue
				}
				seen[s] = true
				if lv == lvServerName && strings.HasPrefix(s, "*.") {
					wgroups[s[1:]] = append(wgroups[s[1:]], c)
				} else {
					groups[s] = append(groups[s], c)
				}
			}
		}
		for s := range groups {
			n.strs = append(n.strs, s)
		}
		slices.Sort(n.strs)
		for _, s := range n.strs {
			k, err := buildTree(groups[s], lv+1, path)
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, k)
		}
		for s := range wgroups {
			n.wild = append(n.wild, s)
		}
		slices.SortFunc(n.wild, func(a, b string) int {
			if c := cmp.Compare(len(b), len(a)); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		for _, s := range n.wild {
			k, err := buildTree(wgroups[s], lv+1, path)
			if err != nil {
				return nil, err
			}
			n.wkids = append(n.wkids, k)
		}
	}
	if len(anyCS) > 0 {
		k, err := buildTree(anyCS, lv+1, path)
		if err != nil {
			return nil, err
		}
		n.any = k
	}
	return n, nil
}

func dedupeSorted(v []uint32) []uint32 {
	if len(v) < 2 {
		return v
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return slices.Compact(s)
}
