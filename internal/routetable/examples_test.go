package routetable

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

const examplesDir = "../../../shared/envoy-examples"

// findRouteConfigs walks a decoded YAML document for every route_config
// object (inline in an HttpConnectionManager).
func findRouteConfigs(v any, out *[]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if k == "route_config" {
				*out = append(*out, c)
				continue
			}
			findRouteConfigs(c, out)
		}
	case []any:
		for _, c := range x {
			findRouteConfigs(c, out)
		}
	}
}

func clusterNames(doc map[string]any) map[string]bool {
	names := map[string]bool{}
	sr, _ := doc["static_resources"].(map[string]any)
	cl, _ := sr["clusters"].([]any)
	for _, c := range cl {
		if m, ok := c.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				names[n] = true
			}
		}
	}
	return names
}

// TestEnvoyExamples compiles the inline route configs of Envoy's example
// configs. Those of front-proxy must compile; the others must compile or
// fail with an error that names a path (features outside this issue).
func TestEnvoyExamples(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(examplesDir, "*", "*.yaml"))
	if len(files) == 0 {
		t.Skip("no Envoy examples at " + examplesDir)
	}
	compiled := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			continue // not a single-document bootstrap
		}
		names := clusterNames(doc)
		var rcs []any
		findRouteConfigs(doc, &rcs)
		for i, raw := range rcs {
			j, _ := json.Marshal(raw)
			rc := &routev3.RouteConfiguration{}
			if err := protojson.Unmarshal(j, rc); err != nil {
				t.Logf("%s route_config %d: not decodable here: %v", f, i, err)
				continue
			}
			_, err := New(rc, Options{
				Clusters:         sourceOfNames(names),
				ValidateClusters: true,
			})
			switch {
			case err == nil:
				compiled++
			case strings.Contains(f, "front-proxy"):
				t.Errorf("%s route_config %d: %v", f, i, err)
			case !strings.Contains(err.Error(), "virtual_hosts["):
				t.Errorf("%s route_config %d: error without a path: %v", f, i, err)
			default:
				t.Logf("%s route_config %d: %v", f, i, err)
			}
		}
	}
	if compiled == 0 {
		t.Fatal("no example route config compiled")
	}
	t.Logf("%d example route configs compiled", compiled)
}

// sourceOfNames is a ClusterSource where every name in names exists.
func sourceOfNames(names map[string]bool) mapSource {
	s := mapSource{}
	for n := range names {
		r := cluster.NewRef(n)
		r.Store(&cluster.Cluster{Name: n})
		s[n] = r
	}
	return s
}
