package xds_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

func TestHitlessUpdates(t *testing.T)      { t.Parallel(); testHitless(t, modes[0]) }
func TestHitlessUpdatesDelta(t *testing.T) { t.Parallel(); testHitless(t, modes[1]) }

// hitlessWorld is generation gen of a config that changes a different
// thing each step: the route (prefix and a response header), the cluster
// (connect_timeout), the endpoint set (one, two or three of the upstreams),
// the listener (its stat_prefix). Every generation routes /load/ to one of
// the upstreams.
func hitlessWorld(t testing.TB, m Mode, port int, ups []*Upstream, gen int) World {
	step := gen / 4 // how many times each kind has changed
	prefix := "/"
	if gen%8 >= 4 {
		prefix = "/load"
	}
	// Endpoint sets: one, two or all three upstreams, never none.
	sets := [][]int{{0, 1, 2}, {0, 1}, {1, 2}, {2, 0}, {1}, {0, 2}}
	var ports []int
	for _, i := range sets[(gen+2)/4%len(sets)] {
		ports = append(ports, ups[i].Port)
	}
	statPrefix := "ingress_even"
	if (gen+1)/4%2 == 1 {
		statPrefix = "ingress_odd"
	}
	timeout := time.Duration(1+(gen+3)/4%3) * time.Second
	return World{
		Clusters:  []types.Resource{edsCluster("svc", m.Source(), timeout)},
		Endpoints: []types.Resource{assignment("svc", ports...)},
		Listeners: []types.Resource{httpListener(t, "main", port, hcmOpts{StatPrefix: statPrefix, RDS: "rc_main", Source: m.Source()})},
		Routes:    []types.Resource{routeConfig("rc_main", prefix, "svc", fmt.Sprintf("gen-%d", step))},
	}
}

// hitlessGenerations is how many config changes testHitless makes.
const hitlessGenerations = 80

// testHitless keeps 32 keep-alive connections busy while the config
// changes 80 times, 100 ms apart, and requires that not one request fails.
// Each change also waits for requests to go through after it, so a slow
// machine runs the same test, only longer, and no request count is assumed.
func testHitless(t *testing.T, m Mode) {
	ups := []*Upstream{startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")}
	// Generation 0 balances over all three: "a" answers within a few tries.
	d := startDyn(t, m, "/load/x", "a", func(port int) World { return hitlessWorld(t, m, port, ups, 0) })
	cp, l, port, url := d.CP, d.Legate, d.Port, d.URL

	valid := func(a answer) bool { return a.Body == "a" || a.Body == "b" || a.Body == "c" }
	load := startLoad(t, url, 32, valid)
	load.waitProgress(t, 100)

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	gen := 0
	for gen < hitlessGenerations {
		<-tick.C
		gen++
		cp.Set(hitlessWorld(t, m, port, ups, gen).Resources())
		load.waitProgress(t, 25)
	}
	// Let the last change apply under load too.
	load.waitProgress(t, 100)
	ok, failed, fails := load.Stop()
	t.Logf("%d config generations; %d requests succeeded, %d failed", gen, ok, failed)
	if failed != 0 {
		t.Errorf("%d of %d requests failed during updates; first: %q", failed, ok+failed, fails)
	}
	// The changes were applied, not ignored.
	for _, s := range []struct {
		name string
		min  int64
	}{
		{"listener_manager.listener_modified", 10},
		{"cluster_manager.cds.update_success", 10},
		{"listener_manager.lds.update_success", 10},
		{"cluster.svc.update_success", 10},
	} {
		l.waitStat(t, s.name, fmt.Sprintf(">= %d", s.min), func(v int64) bool { return v >= s.min })
	}
	// And the endpoint set is what the control plane says: with only b
	// left, a and c get nothing more.
	last := hitlessWorld(t, m, port, ups, gen+1)
	last.Endpoints = []types.Resource{assignment("svc", ups[1].Port)}
	cp.Set(last.Resources())
	c := proxyClient()
	eventually(t, waitTimeout, func() bool {
		for i := 0; i < 10; i++ {
			if a, err := fetch(c, url); err != nil || a.Body != "b" {
				return false
			}
		}
		return true
	}, func() string { return "traffic did not settle on upstream b, the only endpoint left" })
	na, nc := ups[0].Requests.Load(), ups[2].Requests.Load()
	for i := 0; i < 20; i++ {
		if a, err := fetch(c, url); err != nil || a.Body != "b" {
			t.Fatalf("with only b as endpoint: %v %q", err, a.Body)
		}
	}
	if ups[0].Requests.Load() != na || ups[2].Requests.Load() != nc {
		t.Errorf("removed endpoints a and c still get requests")
	}
}
