package tracing

import (
	"os"
	"path/filepath"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// Every tracing block in Envoy's example configs builds a tracer.
func TestEnvoyExampleTracingConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../../shared/envoy-examples/*/*.yaml")
	if len(files) == 0 {
		t.Skip("envoy examples not present")
	}
	built := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		j, err := yaml.YAMLToJSON(data)
		if err != nil {
			continue
		}
		bs := &bootstrapv3.Bootstrap{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(j, bs); err != nil {
			continue // uses extensions this package does not link
		}
		var hcms []*hcmv3.HttpConnectionManager
		for _, l := range bs.GetStaticResources().GetListeners() {
			for _, fc := range l.GetFilterChains() {
				for _, nf := range fc.GetFilters() {
					h := &hcmv3.HttpConnectionManager{}
					if nf.GetTypedConfig().UnmarshalTo(h) == nil && h.GetTracing() != nil {
						hcms = append(hcms, h)
					}
				}
			}
		}
		if len(hcms) == 0 {
			continue
		}
		st := stats.NewStore()
		cm, err := cluster.NewManager(bs.GetStaticResources().GetClusters(), cluster.Options{Stats: st})
		if err != nil {
			t.Errorf("%s: clusters: %v", f, err)
			continue
		}
		var trs []*Tracer
		for _, h := range hcms {
			tr, err := New(h.GetTracing(), Deps{Clusters: cm, Stats: st, StatPrefix: h.GetStatPrefix()})
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			trs = append(trs, tr)
			built++
		}
		for _, tr := range trs {
			tr.Close()
		}
		cm.Close()
	}
	if built == 0 {
		t.Fatal("no example tracing config was built")
	}
	t.Logf("%d tracers built from the examples", built)
}
