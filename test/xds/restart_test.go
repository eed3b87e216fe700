package xds_test

import (
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

func TestControlPlaneRestart(t *testing.T)      { t.Parallel(); testRestart(t, modes[0]) }
func TestControlPlaneRestartDelta(t *testing.T) { t.Parallel(); testRestart(t, modes[1]) }

// testRestart stops the management server under load and starts a new one
// on the same port a second later: legate keeps serving the last good
// config, reports the lost connection, reconnects, and takes updates again.
func testRestart(t *testing.T, m Mode) {
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	var w World
	d := startDyn(t, m, "/r", "a", func(port int) World {
		w = baseWorld(t, m, port, a, b, "svc_a")
		return w
	})
	cp, l, url := d.CP, d.Legate, d.URL
	client := proxyClient()
	l.waitStat(t, "control_plane.connected_state", "== 1", func(v int64) bool { return v == 1 })

	load := startLoad(t, url, 16, func(ans answer) bool { return ans.Body == "a" || ans.Body == "b" })
	load.waitProgress(t, 200)

	cp.Stop()
	l.waitStat(t, "control_plane.connected_state", "== 0 with the server gone", func(v int64) bool { return v == 0 })
	time.Sleep(time.Second) // the outage the brief asks for; nothing is asserted on it
	load.waitProgress(t, 200)
	cp.Restart()
	l.waitStat(t, "control_plane.connected_state", "== 1 after the restart", func(v int64) bool { return v == 1 })
	load.waitProgress(t, 200)

	// The new server is in charge: a route change through it applies.
	w.Routes = []types.Resource{routeConfig("rc_main", "/", "svc_b", "")}
	cp.Set(w.Resources())
	waitUpstream(t, client, url, "b")
	load.waitProgress(t, 200)

	ok, failed, fails := load.Stop()
	if failed != 0 {
		t.Errorf("%d of %d requests failed across the control plane restart; first: %q", failed, ok+failed, fails)
	}
}
