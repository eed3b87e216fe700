package routetable

import (
	"fmt"
	"math/rand/v2"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/legate-proxy/legate/internal/runtime"
)

// runtimeFraction is a compiled match.runtime_fraction: a route matches
// numerator out of denominator requests, each sampled independently (Envoy
// uses the stream's random value).
type runtimeFraction struct {
	numerator, denominator uint64
}

func (f *runtimeFraction) sample() bool {
	if f.numerator >= f.denominator {
		return true
	}
	return f.numerator > 0 && rand.Uint64()%f.denominator < f.numerator
}

func denominator(d typev3.FractionalPercent_DenominatorType) (uint64, bool) {
	switch d {
	case typev3.FractionalPercent_HUNDRED:
		return 100, true
	case typev3.FractionalPercent_TEN_THOUSAND:
		return 10_000, true
	case typev3.FractionalPercent_MILLION:
		return 1_000_000, true
	}
	return 0, false
}

// compileRuntimeFraction reads default_value, overridden by the runtime
// key when the runtime has it: an integer is a percentage, a
// {numerator, denominator} value a FractionalPercent. The runtime is a
// static snapshot, so this is read once.
func compileRuntimeFraction(rf *corev3.RuntimeFractionalPercent, rt *runtime.Snapshot, path string) (*runtimeFraction, error) {
	if rf == nil {
		return nil, nil
	}
	dv := rf.GetDefaultValue()
	if dv == nil {
		return nil, fmt.Errorf("%s.default_value: is required", path)
	}
	den, ok := denominator(dv.GetDenominator())
	if !ok {
		return nil, fmt.Errorf("%s.default_value.denominator: unknown denominator %d", path, dv.GetDenominator())
	}
	f := &runtimeFraction{numerator: uint64(dv.GetNumerator()), denominator: den}
	if key := rf.GetRuntimeKey(); key != "" {
		if _, ok := rt.Get(key + ".numerator"); ok {
			f.numerator, f.denominator = rt.Uint(key+".numerator", 0), 100
			if ds, ok := rt.Get(key + ".denominator"); ok {
				v, found := typev3.FractionalPercent_DenominatorType_value[ds]
				if !found {
					return nil, fmt.Errorf("%s.runtime_key: runtime %s.denominator: unknown denominator %q", path, key, ds)
				}
				f.denominator, _ = denominator(typev3.FractionalPercent_DenominatorType(v))
			}
		} else if _, ok := rt.Get(key); ok {
			f.numerator, f.denominator = rt.Uint(key, f.numerator), 100
		}
	}
	return f, nil
}
