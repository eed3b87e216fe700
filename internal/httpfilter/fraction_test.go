package httpfilter

import (
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/legate-proxy/legate/internal/runtime"
)

func TestCompileFraction(t *testing.T) {
	layer, _ := structpb.NewStruct(map[string]any{"f": map[string]any{"half": 5000, "bad": "x"}})
	rt, err := runtime.New([]*bootstrapv3.RuntimeLayer{{Name: "l", LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: layer}}})
	if err != nil {
		t.Fatal(err)
	}
	pct := func(n uint32, d typev3.FractionalPercent_DenominatorType, key string) *corev3.RuntimeFractionalPercent {
		return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: n, Denominator: d}, RuntimeKey: key}
	}
	for _, tt := range []struct {
		pb       *corev3.RuntimeFractionalPercent
		num, den uint64
	}{
		{nil, 1, 1},
		{pct(30, typev3.FractionalPercent_HUNDRED, ""), 30, 100},
		{pct(30, typev3.FractionalPercent_TEN_THOUSAND, "f.half"), 5000, 10_000}, // the runtime wins
		{pct(30, typev3.FractionalPercent_HUNDRED, "f.unset"), 30, 100},
		{pct(300, typev3.FractionalPercent_HUNDRED, ""), 100, 100}, // capped at all
	} {
		f, err := CompileFraction(tt.pb, rt, "filter_enabled")
		if err != nil || f.num != tt.num || f.den != tt.den {
			t.Errorf("%v: got %+v %v, want %d/%d", tt.pb, f, err, tt.num, tt.den)
		}
	}
	if _, err := CompileFraction(pct(1, typev3.FractionalPercent_HUNDRED, "f.bad"), rt, "filter_enabled"); err == nil {
		t.Error("a non-integer runtime value was accepted")
	}
	if _, err := CompileFraction(&corev3.RuntimeFractionalPercent{}, rt, "filter_enabled"); err == nil {
		t.Error("a missing default_value was accepted")
	}
	off, _ := CompileFraction(pct(0, typev3.FractionalPercent_HUNDRED, ""), nil, "x")
	half, _ := CompileFraction(pct(50, typev3.FractionalPercent_HUNDRED, ""), nil, "x")
	hits := 0
	for range 10_000 {
		if off.Sample() || !Always.Sample() {
			t.Fatal("0% sampled or 100% did not")
		}
		if half.Sample() {
			hits++
		}
	}
	if hits < 4000 || hits > 6000 {
		t.Errorf("50%% sampled %d of 10000", hits)
	}
}
