// Package lb builds immutable load-balancer pickers over a host list.
//
// A picker is built once per host-set change (config time) from the hosts'
// weights; Pick is then lock-free and allocation-free: an atomic increment
// or a few calls into math/rand/v2, whose global functions draw from
// per-thread state without locking. Pickers work on indices so that this
// package does not depend on the cluster package's Host type.
package lb

import (
	"math/rand/v2"
	"sync/atomic"
)

// Policy is a cluster's lb_policy.
type Policy uint8

const (
	RoundRobin Policy = iota
	LeastRequest
	Random
	RingHash
	Maglev
)

func (p Policy) String() string {
	switch p {
	case RoundRobin:
		return "ROUND_ROBIN"
	case LeastRequest:
		return "LEAST_REQUEST"
	case Random:
		return "RANDOM"
	case RingHash:
		return "RING_HASH"
	case Maglev:
		return "MAGLEV"
	}
	return "UNKNOWN"
}

// Config selects and tunes a policy.
type Config struct {
	Policy Policy
	// ChoiceCount is least_request_lb_config.choice_count (default 2).
	ChoiceCount uint32
	// MinRingSize and MaxRingSize are ring_hash_lb_config's (defaults
	// 1024 and 8M).
	MinRingSize, MaxRingSize uint64
	// TableSize is maglev_lb_config.table_size (default 65537, a prime).
	TableSize uint64
}

// Context is what one pick may use: the request's hash (route
// hash_policy) for RING_HASH and MAGLEV, and which attempt this is when
// a retry predicate rejected the previous choice. Passed by value so a
// pick allocates nothing.
type Context struct {
	Hash    uint64
	HasHash bool
	// Attempt counts host-selection retries (0 for the first choice);
	// hash policies move to another host for each.
	Attempt int
}

// DefaultChoiceCount is Envoy's least_request choice_count default.
const DefaultChoiceCount = 2

// Picker chooses an index into the host list it was built from; -1 when
// that list is empty. Pickers are safe for concurrent use.
type Picker interface {
	Pick(c Context) int
}

// Load reports host i's outstanding requests, for LEAST_REQUEST.
type Load func(i int) int64

// maxSchedule bounds the precomputed weighted round-robin schedule; larger
// weight sums are scaled down proportionally (each weight stays ≥ 1).
const maxSchedule = 1 << 16

// New builds a picker for hosts with the given weights (0 counts as 1).
// load is only used by LEAST_REQUEST and may be nil otherwise; keys (the
// hosts' addresses) only by RING_HASH and MAGLEV, which place hosts by
// them so that a host set change moves few keys.
func New(cfg Config, weights []uint32, keys []string, load Load) Picker {
	n := len(weights)
	if n == 0 {
		return empty{}
	}
	if n == 1 {
		return single{}
	}
	switch cfg.Policy {
	case RingHash:
		return newRing(cfg, weights, keys)
	case Maglev:
		return newMaglev(cfg, weights, keys)
	}
	w := make([]uint64, n)
	equal := true
	for i, x := range weights {
		if x == 0 {
			x = 1
		}
		w[i] = uint64(x)
		if w[i] != w[0] {
			equal = false
		}
	}
	switch cfg.Policy {
	case Random:
		if equal {
			return &uniformRandom{n: n}
		}
		return newWeightedRandom(w)
	case LeastRequest:
		k := int(cfg.ChoiceCount)
		if k < 2 {
			k = DefaultChoiceCount
		}
		lr := &leastRequest{n: n, k: k, load: load}
		if !equal {
			lr.weights = w
			lr.wr = newWeightedRandom(w)
		}
		return lr
	default:
		rr := &roundRobin{}
		if equal {
			rr.n = uint64(n)
		} else {
			rr.schedule = wrrSchedule(w)
			rr.n = uint64(len(rr.schedule))
		}
		// A random start keeps many proxies (or clusters rebuilt on every
		// DNS change) from marching over the hosts in lockstep.
		rr.next.Store(rand.Uint64N(rr.n))
		return rr
	}
}

type empty struct{}

func (empty) Pick(Context) int { return -1 }

type single struct{}

func (single) Pick(Context) int { return 0 }

// roundRobin walks the hosts (equal weights) or a precomputed weighted
// schedule with one shared atomic counter.
type roundRobin struct {
	next     atomic.Uint64
	n        uint64
	schedule []int32 // nil for equal weights
}

func (r *roundRobin) Pick(Context) int {
	i := (r.next.Add(1) - 1) % r.n
	if r.schedule == nil {
		return int(i)
	}
	return int(r.schedule[i])
}

// wrrSchedule lays out one full cycle of smooth weighted round robin (the
// scheme nginx uses): host i appears w[i] times after gcd reduction and
// capping, interleaved so that weights 1:1:4 give C,A,C,C,B,C rather than
// runs of one host. Envoy uses EDF here; both honour the weights exactly
// over a cycle, this one spreads picks more evenly.
func wrrSchedule(w []uint64) []int32 {
	g := w[0]
	for _, x := range w {
		g = gcd(g, x)
	}
	red := make([]int64, len(w))
	var sum uint64
	for i, x := range w {
		red[i] = int64(x / g)
		sum += x / g
	}
	if sum > maxSchedule {
		// Proportional scale-down; rounding error is at most one slot per
		// host, negligible at this size.
		total := sum
		sum = 0
		for i, x := range red {
			red[i] = max(1, int64(uint64(x)*maxSchedule/total))
			sum += uint64(red[i])
		}
	}
	cur := make([]int64, len(red))
	out := make([]int32, sum)
	for k := range out {
		best := 0
		for i, x := range red {
			cur[i] += x
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(sum)
		out[k] = int32(best)
	}
	return out
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

type uniformRandom struct{ n int }

func (r *uniformRandom) Pick(Context) int { return rand.IntN(r.n) }

// weightedRandom draws from cumulative weights by binary search.
type weightedRandom struct {
	cum   []uint64 // cum[i] = w[0]+…+w[i]
	total uint64
}

func newWeightedRandom(w []uint64) *weightedRandom {
	cum := make([]uint64, len(w))
	var s uint64
	for i, x := range w {
		s += x
		cum[i] = s
	}
	return &weightedRandom{cum: cum, total: s}
}

func (r *weightedRandom) Pick(Context) int { return r.pick() }

func (r *weightedRandom) pick() int {
	x := rand.Uint64N(r.total)
	lo, hi := 0, len(r.cum)-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.cum[m] > x {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// leastRequest is Envoy's power-of-k-choices: draw k hosts at random (with
// replacement) and take the one with the fewest active requests.
//
// With unequal weights Envoy runs an EDF scheduler whose weights are
// re-derived from active requests as hosts are picked; that needs mutable
// shared state. Legate instead draws the k candidates weighted by
// load_balancing_weight and compares (active+1)/weight, which keeps Pick
// lock-free and approximates Envoy's active_request_bias = 1.0 behaviour.
type leastRequest struct {
	n       int
	k       int
	load    Load
	weights []uint64        // nil when all weights are equal
	wr      *weightedRandom // weighted candidate draw
}

func (l *leastRequest) Pick(Context) int {
	if l.weights == nil {
		best := rand.IntN(l.n)
		if l.load == nil {
			return best
		}
		bestLoad := l.load(best)
		for c := 1; c < l.k; c++ {
			i := rand.IntN(l.n)
			if ld := l.load(i); ld < bestLoad {
				best, bestLoad = i, ld
			}
		}
		return best
	}
	best := l.wr.pick()
	if l.load == nil {
		return best
	}
	bestLoad := uint64(max(l.load(best), 0)) + 1
	for c := 1; c < l.k; c++ {
		i := l.wr.pick()
		ld := uint64(max(l.load(i), 0)) + 1
		// ld/w[i] < bestLoad/w[best], without division.
		if ld*l.weights[best] < bestLoad*l.weights[i] {
			best, bestLoad = i, ld
		}
	}
	return best
}
