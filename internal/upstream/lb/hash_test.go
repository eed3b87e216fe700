package lb

import (
	"fmt"
	"strconv"
	"testing"
)

func addrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d:80", i/250, i%250+1)
	}
	return out
}

func ones(n int) []uint32 {
	w := make([]uint32, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// assign maps keys to host addresses through a picker built over hosts.
func assign(pol Policy, hosts []string, weights []uint32, keys int) []string {
	return assignCfg(Config{Policy: pol}, hosts, weights, keys)
}

func assignCfg(cfg Config, hosts []string, weights []uint32, keys int) []string {
	p := New(cfg, weights, hosts, nil)
	out := make([]string, keys)
	for k := range out {
		out[k] = hosts[p.Pick(Context{Hash: HashString("key-" + strconv.Itoa(k)), HasHash: true})]
	}
	return out
}

func moved(a, b []string) float64 {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return float64(n) / float64(len(a))
}

// Same key, same host; a host added or removed moves about its share of
// the keys and no more (the point of consistent hashing), measured.
func TestHashPoliciesAreConsistent(t *testing.T) {
	const keys = 20000
	for _, pol := range []Policy{RingHash, Maglev} {
		t.Run(pol.String(), func(t *testing.T) {
			hosts := addrs(10)
			base := assign(pol, hosts, ones(10), keys)
			if again := assign(pol, hosts, ones(10), keys); moved(base, again) != 0 {
				t.Fatal("rebuilding over the same hosts moved keys")
			}
			// Spread: every host gets roughly a tenth.
			per := map[string]int{}
			for _, h := range base {
				per[h]++
			}
			for _, h := range hosts {
				if f := float64(per[h]) / keys; f < 0.06 || f > 0.14 {
					t.Errorf("host %s got %.3f of the keys, want about 0.1", h, f)
				}
			}
			added := assign(pol, append(hosts[:10:10], "10.9.9.9:80"), ones(11), keys)
			removed := assign(pol, hosts[1:], ones(9), keys)
			fa, fr := moved(base, added), moved(base, removed)
			t.Logf("%s (default size): adding an 11th host moved %.1f%% of keys (ideal 9.1%%); removing one of 10 moved %.1f%% (ideal 10%%)", pol, 100*fa, 100*fr)
			if fa > 0.12 || fr > 0.13 {
				t.Errorf("too much reshuffle: add %.3f, remove %.3f", fa, fr)
			}
			// On the ring only keys of the host that went move.
			for i := range base {
				if pol == RingHash && base[i] != hosts[0] && removed[i] != base[i] {
					t.Fatalf("key %d moved from %s though its host stayed", i, base[i])
				}
			}
		})
	}
}

func TestHashPoliciesHonourWeights(t *testing.T) {
	for _, pol := range []Policy{RingHash, Maglev} {
		got := assign(pol, addrs(2), []uint32{1, 3}, 20000)
		n := 0
		for _, h := range got {
			if h == addrs(2)[1] {
				n++
			}
		}
		if f := float64(n) / 20000; f < 0.70 || f > 0.80 {
			t.Errorf("%s: weight-3 host got %.3f of the keys, want about 0.75", pol, f)
		}
	}
}

// A host-selection retry moves to another host; without a hash the
// choice is random; a pick allocates nothing.
func TestHashPickAttemptsAndAllocs(t *testing.T) {
	for _, pol := range []Policy{RingHash, Maglev} {
		p := New(Config{Policy: pol}, ones(5), addrs(5), nil)
		c := Context{Hash: HashString("k"), HasHash: true}
		first := p.Pick(c)
		other := false
		for a := 1; a < 20 && !other; a++ {
			c.Attempt = a
			other = p.Pick(c) != first
		}
		if !other {
			t.Errorf("%s: retries never chose another host", pol)
		}
		seen := map[int]bool{}
		for range 200 {
			seen[p.Pick(Context{})] = true
		}
		if len(seen) < 4 {
			t.Errorf("%s: without a hash only %d of 5 hosts were chosen", pol, len(seen))
		}
		if a := testing.AllocsPerRun(100, func() { p.Pick(Context{Hash: 42, HasHash: true}) }); a != 0 {
			t.Errorf("%s: Pick allocates %.0f", pol, a)
		}
	}
}
