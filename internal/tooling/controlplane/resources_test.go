package controlplane

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// exampleDirs are resource directories that must load: ours, and Envoy's
// dynamic-config-fs example when the shared examples are checked out beside
// the repository.
func exampleDirs(t *testing.T) []string {
	dirs := []string{"testdata/fs"}
	shared := filepath.Join("..", "..", "..", "shared", "envoy-examples", "dynamic-config-fs", "configs")
	if _, err := os.Stat(shared); err == nil {
		dirs = append(dirs, shared)
	} else {
		t.Logf("%s absent; checking testdata/fs only", shared)
	}
	return dirs
}

func TestLoadDirExamples(t *testing.T) {
	for _, dir := range exampleDirs(t) {
		set, err := LoadDir(dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		c, err := Build(set, NewRegistry(nil, nil))
		if err != nil {
			t.Fatalf("%s: build: %v", dir, err)
		}
		ls := c.Resources[resource.ListenerType]
		if len(ls) != 1 || len(c.Resources[resource.ClusterType]) != 1 {
			t.Fatalf("%s: got %d listeners, %d clusters; want 1 and 1", dir, len(ls), len(c.Resources[resource.ClusterType]))
		}
		// The single-object `filters` became a one-element list.
		if n := len(ls[0].(*listener.Listener).GetFilterChains()[0].GetFilters()); n != 1 {
			t.Errorf("%s: listener has %d filters, want 1", dir, n)
		}
	}
}

func TestDefaultResources(t *testing.T) {
	data, err := DefaultResources(12345)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := DecodeFile("default.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	set := &ResourceSet{}
	for _, r := range rs {
		set.add(r)
	}
	c, err := Build(set, NewRegistry(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Names(resource.EndpointType); !slices.Equal(got, DefaultServices) {
		t.Errorf("endpoints %v, want %v", got, DefaultServices)
	}
	if !slices.Equal(c.Registry, DefaultServices) {
		t.Errorf("registry-backed %v, want %v", c.Registry, DefaultServices)
	}
	l := c.Resources[resource.ListenerType][0].(*listener.Listener)
	if p := l.GetAddress().GetSocketAddress().GetPortValue(); p != 12345 {
		t.Errorf("listener port %d, want 12345", p)
	}
}

const (
	clusterA = `
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: a
  type: EDS
  eds_cluster_config: {eds_config: {ads: {}}}
`
	routeToB = `
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: r
  virtual_hosts:
  - name: vh
    domains: ["*"]
    routes:
    - match: {prefix: "/"}
      route: {cluster: b}
`
)

func TestDecodeFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, src string
		want            []string // substrings of the error
	}{
		{"not yaml", "x.yaml", "resources: [", []string{"x.yaml"}},
		{"unknown top-level field", "x.yaml", "resource: []", []string{"x.yaml", `unknown field "resource"`}},
		{"missing @type", "x.yaml", "resources:\n- name: a", []string{"x.yaml: resources[0]", `"@type" is missing`}},
		{"unserved type", "x.yaml", "resources:\n- \"@type\": type.googleapis.com/envoy.config.core.v3.Node\n  id: a",
			[]string{"resources[0]", "not a served type"}},
		{"unknown field", "x.yaml", "resources:" + clusterA + "  colour: red",
			[]string{`resources[0] (cluster "a")`, "colour"}},
		{"pgv rule in typed_config", "x.json", `{"resources":[{"@type":"type.googleapis.com/envoy.config.listener.v3.Listener","name":"l",
			"address":{"socket_address":{"address":"0.0.0.0","port_value":1}},
			"filter_chains":[{"filters":[{"name":"hcm","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager","stat_prefix":""}}]}]}]}`,
			[]string{`x.json: resources[0] (listener "l")`, "filter_chains[0].filters[0].typed_config", "StatPrefix"}},
		{"field path inside typed_config", "x.yaml", `resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: l
  filter_chains:
  - filters:
    - name: hcm
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: s
        route_config:
          virtual_hosts:
          - name: vh
            domains: ["*"]
            routes:
            - match: {prefix: "/"}
              route: {cluster: c, timeout: soon}
`, []string{`resources[0] (listener "l"): filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.timeout: `, "Duration"}},
		{"pgv rule", "x.yaml", "resources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: \"\"",
			[]string{"resources[0]", "ClusterName"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeFile(tc.file, []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      string
	}{
		{"route to unknown cluster", "resources:" + clusterA + routeToB, `virtual_hosts[0].routes[0].route.cluster: unknown cluster "b"`},
		{"duplicate name", "resources:" + clusterA + clusterA, `duplicate name "a"`},
		{"unused load assignment", "resources:\n- \"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n  cluster_name: z",
			`no EDS cluster uses load assignment "z"`},
		{"unknown rds name", `resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: l
  address: {socket_address: {address: 0.0.0.0, port_value: 1}}
  filter_chains:
  - filters:
    - name: hcm
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: s
        rds: {route_config_name: nope, config_source: {ads: {}}}
`, `rds.route_config_name: unknown route configuration "nope"`},
		{"unreferenced route configuration", "resources:" + clusterA + strings.ReplaceAll(routeToB, "cluster: b", "cluster: a"),
			"not consistent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := DecodeFile("f.yaml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			set := &ResourceSet{}
			for _, r := range rs {
				set.add(r)
			}
			_, err = Build(set, NewRegistry(nil, nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "f.yaml") && tc.want != "not consistent" {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestVersionerKeepsUnchangedTypes(t *testing.T) {
	reg := NewRegistry(nil, nil)
	data, _ := DefaultResources(10000)
	rs, err := DecodeFile("d.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	set := &ResourceSet{}
	for _, r := range rs {
		set.add(r)
	}
	var v versioner
	build := func() (string, map[resource.Type]string) {
		t.Helper()
		c, err := Build(set, reg)
		if err != nil {
			t.Fatal(err)
		}
		snap, version, err := v.next(c)
		if err != nil {
			t.Fatal(err)
		}
		if snap == nil {
			return "", nil
		}
		per := map[resource.Type]string{}
		for _, typ := range servedTypes {
			per[typ] = snap.GetVersion(typ)
		}
		return version, per
	}
	v1, per1 := build()
	if !strings.HasPrefix(v1, "1-") {
		t.Fatalf("first version %q", v1)
	}
	if v, _ := build(); v != "" {
		t.Fatalf("unchanged contents gave a new version %q", v)
	}
	if _, _, err := reg.Put("service1", "a", InstanceSpec{Address: "127.0.0.11", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	v2, per2 := build()
	if !strings.HasPrefix(v2, "2-") {
		t.Fatalf("second version %q", v2)
	}
	if per2[resource.EndpointType] != v2 || per2[resource.ClusterType] != per1[resource.ClusterType] || per2[resource.ListenerType] != v1 {
		t.Errorf("per-type versions %v after only endpoints changed (first %v)", per2, per1)
	}
}

func TestRegistryValidation(t *testing.T) {
	reg := NewRegistry(nil, nil)
	for _, tc := range []struct {
		name, svc, id string
		spec          InstanceSpec
		want          string
	}{
		{"hostname", "s", "a", InstanceSpec{Address: "localhost", Port: 1}, "IP literal"},
		{"port 0", "s", "a", InstanceSpec{Address: "127.0.0.1"}, "port 0"},
		{"port too big", "s", "a", InstanceSpec{Address: "127.0.0.1", Port: 65536}, "port 65536"},
		{"id chars", "s", "a/b", InstanceSpec{Address: "127.0.0.1", Port: 1}, "instance id"},
		{"service chars", "s p", "a", InstanceSpec{Address: "127.0.0.1", Port: 1}, "service"},
		{"ttl too short", "s", "a", InstanceSpec{Address: "127.0.0.1", Port: 1, TTL: "500ms"}, "at least 1s"},
		{"ttl not a duration", "s", "a", InstanceSpec{Address: "127.0.0.1", Port: 1, TTL: "10"}, "ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := reg.Put(tc.svc, tc.id, tc.spec)
			if _, ok := err.(*ValidationError); !ok || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a ValidationError containing %q", err, tc.want)
			}
		})
	}
	if len(reg.Services()) != 0 {
		t.Errorf("invalid registrations were stored: %v", reg.Services())
	}
}

func TestRegistryLeases(t *testing.T) {
	now := time.Unix(1000, 0)
	var changes []string
	reg := NewRegistry(func() time.Time { return now }, func(r string) { changes = append(changes, r) })
	spec := InstanceSpec{Address: "127.0.0.11", Port: 8080, TTL: "10s", Metadata: map[string]any{"zone": "a"}}
	if _, created, err := reg.Put("svc", "i1", spec); err != nil || !created {
		t.Fatalf("put: created=%v err=%v", created, err)
	}
	// The same registration again is a heartbeat: no change to push.
	now = now.Add(8 * time.Second)
	if _, created, err := reg.Put("svc", "i1", spec); err != nil || created {
		t.Fatalf("re-put: created=%v err=%v", created, err)
	}
	if len(changes) != 1 {
		t.Fatalf("changes %q, want only the registration", changes)
	}
	now = now.Add(8 * time.Second) // 16s after registering, 8s after the re-PUT
	if n := reg.Expire(); n != 0 {
		t.Fatalf("expired %d instances within the lease", n)
	}
	if _, err := reg.Heartbeat("svc", "i1"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(9 * time.Second)
	if n := reg.Expire(); n != 0 {
		t.Fatal("expired despite the heartbeat")
	}
	cla := reg.LoadAssignment("svc")
	lbes := cla.GetEndpoints()[0].GetLbEndpoints()
	if len(lbes) != 1 || lbes[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue() != 8080 ||
		lbes[0].GetMetadata().GetFilterMetadata()[MetadataNamespace].GetFields()["zone"].GetStringValue() != "a" {
		t.Fatalf("load assignment %v", cla)
	}
	now = now.Add(time.Second)
	if n := reg.Expire(); n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
	if len(reg.LoadAssignment("svc").GetEndpoints()) != 0 {
		t.Error("expired instance still served")
	}
	if _, err := reg.Heartbeat("svc", "i1"); err == nil {
		t.Error("heartbeat for an expired instance succeeded")
	}
	if len(changes) != 2 || !strings.Contains(changes[1], "expired svc/i1") {
		t.Errorf("changes %q", changes)
	}
	// A changed port is a change.
	if _, _, err := reg.Put("svc", "i1", spec); err != nil {
		t.Fatal(err)
	}
	spec.Port = 8081
	if _, _, err := reg.Put("svc", "i1", spec); err != nil {
		t.Fatal(err)
	}
	if err := reg.Delete("svc", "i1"); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 5 {
		t.Errorf("changes %q, want register, update and deregister after the expiry", changes)
	}
	if err := reg.Delete("svc", "i1"); err == nil {
		t.Error("second delete succeeded")
	}
}
