package lb

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Envoy's defaults.
const (
	DefaultMinRingSize = 1024
	DefaultMaxRingSize = 8 << 20
	DefaultTableSize   = 65537
)

// HashString is xxHash64 with seed 0, the hash Envoy's hash policies and
// ring use.
func HashString(s string) uint64 { return xxhash.Sum64String(s) }

// HashSeeded is xxHash64 of s with a seed.
func HashSeeded(s string, seed uint64) uint64 {
	var d xxhash.Digest
	d.ResetWithSeed(seed)
	d.WriteString(s)
	return d.Sum64()
}

// normalized returns weights scaled to sum 1, and the smallest and
// largest of them.
func normalized(weights []uint32) (w []float64, lo, hi float64) {
	var sum float64
	for _, x := range weights {
		sum += float64(max(x, 1))
	}
	w = make([]float64, len(weights))
	lo, hi = 1, 0
	for i, x := range weights {
		w[i] = float64(max(x, 1)) / sum
		lo, hi = min(lo, w[i]), max(hi, w[i])
	}
	return w, lo, hi
}

// ring is Envoy's RING_HASH (Ketama): each host owns points on a 64-bit
// ring, in proportion to its weight, at the hashes of "<address>_<i>"; a
// request goes to the first point at or after its hash. Adding or removing
// a host moves only the keys of the arcs it gains or loses.
type ring struct {
	hashes []uint64 // sorted
	hosts  []int32  // hosts[i] owns hashes[i]
}

func newRing(cfg Config, weights []uint32, keys []string) *ring {
	minSize, maxSize := cfg.MinRingSize, cfg.MaxRingSize
	if minSize == 0 {
		minSize = DefaultMinRingSize
	}
	if maxSize == 0 {
		maxSize = DefaultMaxRingSize
	}
	w, lo, _ := normalized(weights)
	// Envoy gives the lightest host ceil(lo·min_ring_size) points and the
	// others in proportion. That count moves with the number of hosts, so
	// every surviving host gains or loses points when one comes or goes
	// and keys move between hosts that stayed (15% of keys for 10 → 9
	// hosts, measured). Rounding it up to a power of two keeps it fixed
	// across host-count changes within a band (9 to 16 hosts all get 128
	// points at the default size): then only the keys of the host that
	// came or went move. The ring stays between min_ring_size and twice
	// that, and never above max_ring_size.
	base := float64(nextPow2(uint64(math.Ceil(lo * float64(minSize)))))
	var total float64
	for i := range w {
		total += math.Ceil(w[i] / lo * base)
	}
	if total > float64(maxSize) {
		base = max(1, math.Floor(base*float64(maxSize)/total))
	}
	type point struct {
		h    uint64
		host int32
	}
	var pts []point
	for i, k := range keys {
		n := int(math.Ceil(w[i] / lo * base))
		for j := range n {
			pts = append(pts, point{HashString(k + "_" + strconv.Itoa(j)), int32(i)})
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return int(a.host - b.host)
	})
	r := &ring{hashes: make([]uint64, len(pts)), hosts: make([]int32, len(pts))}
	for i, p := range pts {
		r.hashes[i], r.hosts[i] = p.h, p.host
	}
	return r
}

func (r *ring) Pick(c Context) int {
	h := c.Hash
	if !c.HasHash {
		// No hash policy or no value for it: Envoy picks at random.
		h = rand.Uint64()
	}
	i, _ := slices.BinarySearch(r.hashes, h)
	if i == len(r.hashes) {
		i = 0
	}
	if c.Attempt > 0 {
		// A retry predicate rejected the host: behave as if it were not
		// on the ring (the next point on, as Envoy).
		i = (i + c.Attempt) % len(r.hashes)
	}
	return int(r.hosts[i])
}

// maglev is Envoy's MAGLEV: a lookup table of a prime size filled from
// each host's permutation (offset and skip from its address), in
// proportion to weight. A request goes to table[hash % size]; a host set
// change moves about the removed or added share of entries.
type maglev struct {
	table []int32
}

func newMaglev(cfg Config, weights []uint32, keys []string) *maglev {
	m := cfg.TableSize
	if m == 0 {
		m = DefaultTableSize
	}
	w, _, hi := normalized(weights)
	type entry struct {
		offset, skip, next uint64
		weight, target     float64
	}
	es := make([]entry, len(keys))
	for i, k := range keys {
		es[i] = entry{offset: HashSeeded(k, 0) % m, skip: HashSeeded(k, 1)%(m-1) + 1, weight: w[i]}
	}
	table := make([]int32, m)
	for i := range table {
		table[i] = -1
	}
	filled := uint64(0)
	for iter := 0.0; filled < m; iter++ {
		for i := range es {
			if filled == m {
				break
			}
			e := &es[i]
			// A host of the largest weight takes a slot every round, one
			// of a third of it every third round.
			if iter*e.weight < e.target {
				continue
			}
			e.target += hi
			c := (e.offset + e.skip*e.next) % m
			for table[c] >= 0 {
				e.next++
				c = (e.offset + e.skip*e.next) % m
			}
			table[c] = int32(i)
			e.next++
			filled++
		}
	}
	return &maglev{table: table}
}

func (g *maglev) Pick(c Context) int {
	h := c.Hash
	if !c.HasHash {
		h = rand.Uint64()
	}
	if c.Attempt > 0 {
		// Another host for a rejected choice: a derived hash.
		h = mix(h + uint64(c.Attempt)*0x9e3779b97f4a7c15)
	}
	return int(g.table[h%uint64(len(g.table))])
}

// mix is splitmix64's finalizer: a cheap bijective scramble.
func mix(x uint64) uint64 {
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// nextPow2 is the least power of two ≥ x (1 for 0).
func nextPow2(x uint64) uint64 {
	p := uint64(1)
	for p < x {
		p <<= 1
	}
	return p
}
