package xds_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/test/legatetest"
)

func TestNACKSotWADS(t *testing.T)      { t.Parallel(); testNACK(t, modes[0]) }
func TestNACKDeltaADS(t *testing.T)     { t.Parallel(); testNACK(t, modes[1]) }
func TestNACKSotWPerType(t *testing.T)  { t.Parallel(); testNACK(t, modes[2]) }
func TestNACKDeltaPerType(t *testing.T) { t.Parallel(); testNACK(t, modes[3]) }

// testNACK pushes bad resources one kind at a time. Each must be refused
// with an error_detail naming the resource and the field, counted in
// update_rejected, while traffic keeps flowing on the last good config;
// then the good config is pushed back and accepted.
func testNACK(t *testing.T, m Mode) {
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	var good World
	d := startDyn(t, m, "/x", "a", func(port int) World {
		good = baseWorld(t, m, port, a, b, "svc_a")
		return good
	})
	cp, l, port, url := d.CP, d.Legate, d.Port, d.URL

	inlinePort := legatetest.FreePort(t)
	type tc struct {
		name    string
		bad     func(w *World)
		typeURL string
		detail  []string // every one must appear in error_detail
		stat    string   // the update_rejected counter
		delta   bool     // whether the case applies to delta too
	}
	cases := []tc{
		{
			name: "unsupported HTTP filter",
			bad: func(w *World) {
				w.Listeners = []types.Resource{httpListener(t, "main", port, hcmOpts{StatPrefix: "ingress_http", RDS: "rc_main", Source: m.Source(), Lua: true})}
			},
			typeURL: resource.ListenerType, detail: []string{"main", "http_filters"},
			stat: "listener_manager.lds.update_rejected", delta: true,
		},
		{
			name: "RDS route to unknown cluster with validate_clusters",
			bad: func(w *World) {
				rc := routeConfig("rc_main", "/", "no_such_cluster", "")
				rc.ValidateClusters = wrapperspb.Bool(true)
				w.Routes = []types.Resource{rc}
			},
			typeURL: resource.RouteType, detail: []string{"rc_main", "no_such_cluster"},
			stat: "http.ingress_http.rds.rc_main.update_rejected", delta: true,
		},
		{
			name: "inline route_config to unknown cluster",
			bad: func(w *World) {
				w.Listeners = append(w.Listeners, httpListener(t, "listener_inline_rc", inlinePort, hcmOpts{
					StatPrefix: "inline", Inline: routeConfig("inline_routes", "/", "no_such_cluster", "")}))
			},
			typeURL: resource.ListenerType, detail: []string{"listener_inline_rc", "no_such_cluster"},
			stat: "listener_manager.lds.update_rejected", delta: true,
		},
		{
			name: "cluster with negative connect_timeout",
			bad: func(w *World) {
				c := edsCluster("svc_b", m.Source(), time.Second)
				c.ConnectTimeout.Seconds = -1
				w.Clusters = []types.Resource{w.Clusters[0], c}
			},
			typeURL: resource.ClusterType, detail: []string{"svc_b", "connect_timeout"},
			stat: "cluster_manager.cds.update_rejected", delta: true,
		},
		{
			// Undecodable bytes have no name to report; the snapshot cache
			// only serves such a resource in the state of the world.
			name:    "cluster whose bytes do not decode",
			bad:     func(w *World) { w.Clusters = append(w.Clusters, undecodableCluster()) },
			typeURL: resource.ClusterType, stat: "cluster_manager.cds.update_rejected",
		},
	}
	load := startLoad(t, url, 4, func(a answer) bool { return a.Body == "a" })
	for _, c := range cases {
		if m.Delta && !c.delta {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			before, _ := l.Stat(t, c.stat)
			bad := good.Clone()
			c.bad(&bad)
			mark := cp.Mark()
			cp.Set(bad.Resources())
			nack := cp.WaitNACK(t, mark, c.typeURL)
			if nack.ADS != m.ADS || nack.Delta != m.Delta {
				t.Errorf("the NACK came on a stream with ads=%v delta=%v; want ads=%v delta=%v", nack.ADS, nack.Delta, m.ADS, m.Delta)
			}
			for _, want := range c.detail {
				if !strings.Contains(nack.Error, want) {
					t.Errorf("error_detail %q does not mention %q", nack.Error, want)
				}
			}
			t.Logf("error_detail: %s", nack.Error)
			l.waitStat(t, c.stat, "> "+strconv.FormatInt(before, 10), func(v int64) bool { return v > before })
			load.waitProgress(t, 50)
			if c.name == "inline route_config to unknown cluster" {
				if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(inlinePort)), time.Second); err == nil {
					conn.Close()
					t.Errorf("the refused listener listener_inline_rc accepts connections")
				}
			}

			// The good config again: accepted, and still serving.
			mark = cp.Mark()
			v := cp.Set(good.Resources())
			cp.WaitACK(t, mark, c.typeURL, m, v)
			load.waitProgress(t, 50)
		})
	}
	ok, failed, fails := load.Stop()
	if failed != 0 {
		t.Errorf("%d of %d requests failed while bad configs were pushed; first: %q", failed, ok+failed, fails)
	}
}
