package integration

import (
	"strings"
	"testing"
)

// TestUpstreamBindConfig: upstream_bind_config's source address is what
// the upstream sees, and the connection counts in the cluster's stats.
func TestUpstreamBindConfig(t *testing.T) {
	up := startUpstream(t, "bound", nil)
	l := startLegate(t, bootstrapYAML(
		[]string{listenerYAML("http", routeAll("bound"), "")},
		[]string{staticCluster("bound", `upstream_bind_config:
  source_address: {address: 127.0.0.2, port_value: 0}
  socket_options: [{level: 1, name: 7, int_value: 65536}]`, up.Addr)}), nil)
	_, body := httpGet(t, l.URL("http", "/"))
	if e := decodeEcho(t, body); !strings.HasPrefix(e.Remote, "127.0.0.2:") {
		t.Errorf("upstream saw the connection from %s, want 127.0.0.2", e.Remote)
	}
	if v := l.Counter(t, "cluster.bound.upstream_cx_total"); v != 1 {
		t.Errorf("upstream_cx_total = %d", v)
	}
}
