package lb

import (
	"testing"
)

func counts(p Picker, n, picks int) []int {
	c := make([]int, n)
	for range picks {
		c[p.Pick(Context{})]++
	}
	return c
}

func TestEmptyAndSingle(t *testing.T) {
	for _, pol := range []Policy{RoundRobin, LeastRequest, Random} {
		if got := New(Config{Policy: pol}, nil, nil, nil).Pick(Context{}); got != -1 {
			t.Errorf("%v empty: Pick = %d, want -1", pol, got)
		}
		if got := New(Config{Policy: pol}, []uint32{7}, nil, nil).Pick(Context{}); got != 0 {
			t.Errorf("%v single: Pick = %d, want 0", pol, got)
		}
	}
}

func TestRoundRobinExact(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		picks   int
		want    []int
	}{
		{"equal", []uint32{1, 1, 1}, 3000, []int{1000, 1000, 1000}},
		{"unset weights count as 1", []uint32{0, 1}, 100, []int{50, 50}},
		{"1:3", []uint32{1, 3}, 4000, []int{1000, 3000}},
		{"2:6 reduces to 1:3", []uint32{2, 6}, 4000, []int{1000, 3000}},
		{"1:2:5", []uint32{1, 2, 5}, 800, []int{100, 200, 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := counts(New(Config{Policy: RoundRobin}, tt.weights, nil, nil), len(tt.weights), tt.picks)
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("counts = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// Weighted round robin interleaves rather than sending runs to one host
// (a naive or EDF layout of 1:1:4 has runs of 4).
func TestRoundRobinSpread(t *testing.T) {
	p := New(Config{Policy: RoundRobin}, []uint32{1, 1, 4}, nil, nil)
	run, maxRun, prev := 0, 0, -1
	for range 600 {
		i := p.Pick(Context{})
		if i == prev {
			run++
		} else {
			run = 1
		}
		prev = i
		maxRun = max(maxRun, run)
	}
	if maxRun > 3 {
		t.Fatalf("longest run to one host = %d, want ≤ 3 for weights 1:1:4", maxRun)
	}
}

func TestRoundRobinHugeWeightsCapped(t *testing.T) {
	p := New(Config{Policy: RoundRobin}, []uint32{1 << 30, 3 << 30, 1}, nil, nil).(*roundRobin)
	if len(p.schedule) > maxSchedule+3 {
		t.Fatalf("schedule length %d exceeds cap", len(p.schedule))
	}
	c := make([]int, 3)
	for _, i := range p.schedule {
		c[i]++
	}
	if c[2] != 1 || c[1] < 3*c[0]-3 || c[1] > 3*c[0]+3 {
		t.Fatalf("schedule counts %v, want ≈ x:3x:1", c)
	}
}

// Tolerances are ≥ 7 standard deviations: these cannot flake in practice.
func TestRandomDistribution(t *testing.T) {
	got := counts(New(Config{Policy: Random}, []uint32{1, 3}, nil, nil), 2, 4000)
	// Expected 1000; σ = sqrt(4000·¼·¾) ≈ 27.
	if got[0] < 800 || got[0] > 1200 {
		t.Fatalf("weights 1:3 over 4000 picks: %v, want host 0 ≈ 1000", got)
	}
	got = counts(New(Config{Policy: Random}, []uint32{5, 5, 5, 5}, nil, nil), 4, 4000)
	for i, c := range got {
		// Expected 1000; σ ≈ 27.
		if c < 800 || c > 1200 {
			t.Fatalf("equal weights: host %d got %d of 4000 (%v)", i, c, got)
		}
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	active := []int64{100, 0, 0, 0}
	load := func(i int) int64 { return active[i] }
	got := counts(New(Config{Policy: LeastRequest}, []uint32{1, 1, 1, 1}, nil, load), 4, 4000)
	// The busy host wins only when both choices land on it: p = 1/16,
	// expected 250, σ ≈ 15. Idle hosts expect 1250 each.
	if got[0] > 450 {
		t.Fatalf("busy host picked %d of 4000 times (%v)", got[0], got)
	}
	for i := 1; i < 4; i++ {
		if got[i] < 1000 {
			t.Fatalf("idle host %d picked %d times (%v)", i, got[i], got)
		}
	}
	// With choice_count 5 the busy host wins with p = 1/1024.
	got = counts(New(Config{Policy: LeastRequest, ChoiceCount: 5}, []uint32{1, 1, 1, 1}, nil, load), 4, 4000)
	if got[0] > 40 {
		t.Fatalf("choice_count 5: busy host picked %d times (%v)", got[0], got)
	}
}

func TestLeastRequestWeighted(t *testing.T) {
	// Equal load: the draw follows the weights (P2C of weighted draws still
	// favours the heavy host).
	load := func(int) int64 { return 0 }
	got := counts(New(Config{Policy: LeastRequest}, []uint32{1, 3}, nil, load), 2, 4000)
	if got[1] < 2*got[0] {
		t.Fatalf("weights 1:3 with no load: %v, want host 1 clearly preferred", got)
	}
	// A heavily loaded heavy host loses to an idle light one.
	active := []int64{0, 50}
	got = counts(New(Config{Policy: LeastRequest}, []uint32{1, 3}, nil, func(i int) int64 { return active[i] }), 2, 4000)
	// Host 1 wins only when both draws pick it: p = 9/16 → expected 2250.
	if got[1] > 2600 || got[0] < 1400 {
		t.Fatalf("loaded heavy host: %v", got)
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	load := func(int) int64 { return 0 }
	for _, tc := range []struct {
		name    string
		cfg     Config
		weights []uint32
	}{
		{"rr", Config{Policy: RoundRobin}, []uint32{1, 1, 1}},
		{"wrr", Config{Policy: RoundRobin}, []uint32{1, 2, 3}},
		{"random", Config{Policy: Random}, []uint32{1, 1}},
		{"wrandom", Config{Policy: Random}, []uint32{1, 2}},
		{"lr", Config{Policy: LeastRequest}, []uint32{1, 1, 1}},
		{"wlr", Config{Policy: LeastRequest}, []uint32{1, 2, 3}},
	} {
		p := New(tc.cfg, tc.weights, nil, load)
		if a := testing.AllocsPerRun(100, func() { p.Pick(Context{}) }); a != 0 {
			t.Errorf("%s: %v allocs per Pick", tc.name, a)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	load := func(int) int64 { return 0 }
	for _, tc := range []struct {
		name    string
		cfg     Config
		weights []uint32
	}{
		{"rr", Config{Policy: RoundRobin}, []uint32{1, 1, 1}},
		{"wrr", Config{Policy: RoundRobin}, []uint32{1, 2, 3}},
		{"random", Config{Policy: Random}, []uint32{1, 1, 1}},
		{"lr", Config{Policy: LeastRequest}, []uint32{1, 1, 1}},
	} {
		p := New(tc.cfg, tc.weights, nil, load)
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				p.Pick(Context{})
			}
		})
	}
}
