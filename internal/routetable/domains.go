package routetable

import (
	"sort"
	"strings"
)

// domainIndex finds a virtual host by :authority in Envoy's order: exact
// names, then suffix wildcards ("*.foo.com", longest first), then prefix
// wildcards ("foo.*", longest first), then "*". A wildcard never matches
// the empty string.
//
// Exact names sit in a sorted slice searched by binary search with a
// case-folding compare, so a lookup neither hashes nor lower-cases (and so
// never allocates) — a map would need a lower-cased copy of the host.
type domainIndex struct {
	exact    []domainEntry // sorted by name
	suffixes []domainEntry // by len desc; name is the part after '*'
	prefixes []domainEntry // by len desc; name is the part before '*'
	any      *VirtualHost
}

type domainEntry struct {
	name string // lower-case
	vh   *VirtualHost
}

func (d *domainIndex) sort() {
	sort.Slice(d.exact, func(i, j int) bool { return d.exact[i].name < d.exact[j].name })
	sort.SliceStable(d.suffixes, func(i, j int) bool { return len(d.suffixes[i].name) > len(d.suffixes[j].name) })
	sort.SliceStable(d.prefixes, func(i, j int) bool { return len(d.prefixes[i].name) > len(d.prefixes[j].name) })
}

// compareFold compares host (any case) with lower (lower-case) as if host
// were lower-cased.
func compareFold(host, lower string) int {
	n := min(len(host), len(lower))
	for i := 0; i < n; i++ {
		a, b := lowerASCII(host[i]), lower[i]
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(host) < len(lower):
		return -1
	case len(host) > len(lower):
		return 1
	}
	return 0
}

func (d *domainIndex) find(host string) *VirtualHost {
	lo, hi := 0, len(d.exact)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch c := compareFold(host, d.exact[m].name); {
		case c == 0:
			return d.exact[m].vh
		case c > 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	for i := range d.suffixes {
		s := d.suffixes[i].name
		if len(host) > len(s) && equalFoldASCII(host[len(host)-len(s):], s) {
			return d.suffixes[i].vh
		}
	}
	for i := range d.prefixes {
		p := d.prefixes[i].name
		if len(host) > len(p) && equalFoldASCII(host[:len(p)], p) {
			return d.prefixes[i].vh
		}
	}
	return d.any
}

// portStart returns the index of the ':' before a port in host, or -1; an
// IPv6 literal's colons are inside brackets.
func portStart(host string) int {
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return -1
	}
	if j := strings.LastIndexByte(host, ']'); j > i {
		return -1
	}
	return i
}
