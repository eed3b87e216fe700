package runtime

import (
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestRTDSLayer: an RTDS layer starts empty, and what arrives merges in
// layer order (a later static layer still wins).
func TestRTDSLayer(t *testing.T) {
	static := func(k string, v any) *bootstrapv3.RuntimeLayer_StaticLayer {
		st, _ := structpb.NewStruct(map[string]any{k: v})
		return &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: st}
	}
	s, err := New([]*bootstrapv3.RuntimeLayer{
		{Name: "base", LayerSpecifier: static("a", "base")},
		{Name: "rtds", LayerSpecifier: &bootstrapv3.RuntimeLayer_RtdsLayer_{RtdsLayer: &bootstrapv3.RuntimeLayer_RtdsLayer{Name: "runtime-0"}}},
		{Name: "override", LayerSpecifier: static("c", "static")},
	})
	if err != nil {
		t.Fatal(err)
	}
	l := s.RTDSLayers()
	if len(l) != 1 || l[0].Index != 1 || l[0].Name != "runtime-0" {
		t.Fatalf("RTDS layers = %+v", l)
	}
	if v, _ := s.Get("a"); v != "base" {
		t.Errorf("a = %q", v)
	}
	st, _ := structpb.NewStruct(map[string]any{"a": "rtds", "b": 100, "c": "rtds"})
	if err := s.SetRTDS(1, st); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"a": "rtds", "b": "100", "c": "static"} {
		if v, _ := s.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	bad, _ := structpb.NewStruct(map[string]any{"x": []any{1}})
	if err := s.SetRTDS(1, bad); err == nil {
		t.Error("a list value was accepted")
	}
	if v, _ := s.Get("b"); v != "100" {
		t.Errorf("a refused layer changed b to %q", v)
	}
}
