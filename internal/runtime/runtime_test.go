package runtime

import (
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/legate-proxy/legate/internal/bootstrap"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func staticLayer(t *testing.T, name string, m map[string]any) *bootstrapv3.RuntimeLayer {
	t.Helper()
	st, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return &bootstrapv3.RuntimeLayer{Name: name, LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: st}}
}

func TestFlattenAndOverride(t *testing.T) {
	layers := []*bootstrapv3.RuntimeLayer{
		staticLayer(t, "base", map[string]any{
			"envoy": map[string]any{
				"resource_limits": map[string]any{
					"listener": map[string]any{
						"example_listener_name": map[string]any{"connection_limit": 10000},
					},
				},
			},
			"a.b":     "x",
			"flag":    true,
			"ratio":   0.5,
			"negativ": -3,
		}),
		staticLayer(t, "override", map[string]any{
			"a":    map[string]any{"b": "y"},
			"flag": false,
		}),
	}
	s, err := New(layers)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want string
		ok   bool
	}{
		{"envoy.resource_limits.listener.example_listener_name.connection_limit", "10000", true},
		{"a.b", "y", true},
		{"flag", "false", true},
		{"ratio", "0.5", true},
		{"negativ", "-3", true},
		{"envoy.resource_limits", "", false},
		{"missing", "", false},
	}
	for _, tc := range tests {
		got, ok := s.Get(tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Get(%q) = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
	if s.Len() != 5 {
		t.Errorf("Len = %d, want 5", s.Len())
	}
}

func TestUint(t *testing.T) {
	s, err := New([]*bootstrapv3.RuntimeLayer{staticLayer(t, "l", map[string]any{
		"int": 10000, "str": "42", "sci": "1e4", "frac": 1.5, "neg": -1, "word": "many", "big": "18446744073709551615",
	})})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]uint64{
		"int": 10000, "str": 42, "sci": 10000, "frac": 7, "neg": 7, "word": 7, "missing": 7, "big": 18446744073709551615,
	} {
		if got := s.Uint(key, 7); got != want {
			t.Errorf("Uint(%q, 7) = %d, want %d", key, got, want)
		}
	}
	var nilSnap *Snapshot
	if nilSnap.Uint("x", 3) != 3 {
		t.Error("a nil snapshot must return defaults")
	}
}

func TestRejects(t *testing.T) {
	tests := []struct {
		name   string
		layers []*bootstrapv3.RuntimeLayer
		want   string
	}{
		{"disk layer", []*bootstrapv3.RuntimeLayer{{Name: "disk", LayerSpecifier: &bootstrapv3.RuntimeLayer_DiskLayer_{DiskLayer: &bootstrapv3.RuntimeLayer_DiskLayer{}}}},
			`runtime layer "disk": only static_layer and rtds_layer are supported`},
		{"list value", []*bootstrapv3.RuntimeLayer{staticLayer(t, "l", map[string]any{"a": map[string]any{"b": []any{1}}})},
			`runtime layer "l": key "a.b": invalid runtime value`},
		{"null value", []*bootstrapv3.RuntimeLayer{staticLayer(t, "", map[string]any{"a": nil})},
			`runtime layer "0": key "a"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.layers)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	s, err := New(nil)
	if err != nil || s.Len() != 0 {
		t.Fatalf("New(nil) = %v, %v", s, err)
	}
	if _, ok := s.Get("x"); ok {
		t.Error("empty runtime has no keys")
	}
}

// TestFromBootstrap reads the runtime of real bootstraps, nested and dotted.
func TestFromBootstrap(t *testing.T) {
	for _, file := range []string{"../bootstrap/testdata/everything.yaml", "../bootstrap/testdata/deprecated_fields.yaml"} {
		bs, err := bootstrap.Load(bootstrap.Options{ConfigPath: file})
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(bs.GetLayeredRuntime().GetLayers())
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Uint("envoy.resource_limits.listener.main.connection_limit", 0); got == 0 {
			t.Errorf("%s: connection_limit not found", file)
		}
	}
}

func TestFeatureEnabled(t *testing.T) {
	s, err := New([]*bootstrapv3.RuntimeLayer{staticLayer(t, "l", map[string]any{
		"off": false, "on": "TRUE", "junk": "maybe", "num": 1,
	})})
	if err != nil {
		t.Fatal(err)
	}
	flag := func(key string, def bool) *corev3.RuntimeFeatureFlag {
		return &corev3.RuntimeFeatureFlag{RuntimeKey: key, DefaultValue: wrapperspb.Bool(def)}
	}
	for _, tt := range []struct {
		f    *corev3.RuntimeFeatureFlag
		want bool
	}{
		{nil, true},
		{flag("off", true), false},
		{flag("on", false), true},
		{flag("junk", true), true},
		{flag("num", false), false},
		{flag("unset", true), true},
		{flag("", false), false},
	} {
		if got := s.FeatureEnabled(tt.f); got != tt.want {
			t.Errorf("%v: %v, want %v", tt.f, got, tt.want)
		}
	}
	var none *Snapshot
	if !none.FeatureEnabled(flag("off", true)) {
		t.Error("a nil snapshot must use the default")
	}
}
