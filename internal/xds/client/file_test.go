package client

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/legate-proxy/legate/internal/xds"
)

// replace writes data next to path and renames it over path, as Envoy's
// dynamic-config-fs example does with mv.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestFileSource loads Envoy's dynamic-config-fs lds.yaml and cds.yaml,
// follows an atomic replacement, and refuses a bad file keeping the last
// good one.
func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	lds := filepath.Join(dir, "lds.yaml")
	cds := filepath.Join(dir, "cds.yaml")
	for _, p := range []string{lds, cds} {
		data, err := os.ReadFile(filepath.Join("testdata/dynamic-config-fs", filepath.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		replace(t, p, data)
	}
	c, st := newClient(t, nil)
	ldsSrc := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{
		PathConfigSource: &corev3.PathConfigSource{Path: lds, WatchedDirectory: &corev3.WatchedDirectory{Path: dir}}}}
	//lint:ignore SA1019 the legacy path source is tested
	cdsSrc := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: cds}}
	lw := subscribe(t, c, ldsSrc, xds.ListenerType, "", st, "listener_manager.lds")
	cw := subscribe(t, c, cdsSrc, xds.ClusterType, "", st, "cluster_manager.cds")
	c.Start(context.Background())

	u := lw.waitFor(t, func(*xds.Update) bool { return true })
	if names(u) != "listener_0" || !u.Full {
		t.Fatalf("lds = %+v", u)
	}
	// filters was a single object in the example; it must be a list of one.
	l := u.Resources[0].Message.(*listenerv3.Listener)
	f := l.GetFilterChains()[0].GetFilters()
	if len(f) != 1 || f[0].GetName() != "envoy.filters.network.http_connection_manager" {
		t.Fatalf("filters = %v", f)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := f[0].GetTypedConfig().UnmarshalTo(hcm); err != nil || hcm.GetStatPrefix() != "ingress_http" {
		t.Fatalf("hcm = %v, %v", hcm, err)
	}
	if u := cw.waitFor(t, func(*xds.Update) bool { return true }); names(u) != "example_proxy_cluster" {
		t.Fatalf("cds = %+v", u)
	}
	// No management server: no control_plane stats, rather than a
	// connected_state that reads as disconnected.
	if got := statNames(st, "^control_plane\\."); got != "" {
		t.Fatalf("file-only client has control-plane stats:\n%s", got)
	}

	replace(t, lds, []byte(`version_info: "2"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: listener_1
`))
	u = lw.waitFor(t, atVersion("2"))
	if names(u) != "listener_1" || len(u.Removed) != 1 || u.Removed[0] != "listener_0" {
		t.Fatalf("lds v2 = %q removed %v", names(u), u.Removed)
	}

	// A malformed file is refused; the last good one stays.
	replace(t, lds, []byte(`resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: listener_2
  no_such_field: 1
`))
	waitCounter(t, st, "listener_manager.lds.update_rejected", 1)
	if got := c.Resources(xds.ListenerType); len(got) != 1 || got[0].Name != "listener_1" {
		t.Fatalf("after a bad file: %+v", got)
	}
	// So is a file with a resource of the wrong type.
	replace(t, lds, []byte(`{"resources": [{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "x"}]}`))
	waitCounter(t, st, "listener_manager.lds.update_rejected", 2)

	// And a good one is taken again.
	replace(t, lds, []byte(`version_info: "3"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: listener_3
`))
	lw.waitFor(t, atVersion("3"))
	waitCounter(t, st, "listener_manager.lds.update_success", 3)
	if got := counter(st, "listener_manager.lds.update_success"); got != 3 {
		t.Fatalf("update_success = %d", got)
	}
}
