package httpfilter

import (
	"fmt"
	"math/rand/v2"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/legate-proxy/legate/internal/runtime"
)

// Fraction is a compiled RuntimeFractionalPercent, e.g. a filter's
// filter_enabled or filter_enforced: the share of requests it applies to.
// Legate's runtime is a static snapshot, so the runtime key is read once
// at config time and a request only draws a number.
type Fraction struct {
	num, den uint64
}

// Always is a fraction that applies to every request (an unset field).
var Always = Fraction{num: 1, den: 1}

// CompileFraction reads pb against the runtime: the runtime key's value,
// an integer numerator over default_value's denominator, overrides
// default_value, as in Envoy. A nil pb is Always.
func CompileFraction(pb *corev3.RuntimeFractionalPercent, rt *runtime.Snapshot, path string) (Fraction, error) {
	if pb == nil {
		return Always, nil
	}
	d := pb.GetDefaultValue()
	if d == nil {
		return Fraction{}, fmt.Errorf("%s.default_value: is required", path)
	}
	f := Fraction{num: uint64(d.GetNumerator())}
	switch d.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		f.den = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		f.den = 10_000
	case typev3.FractionalPercent_MILLION:
		f.den = 1_000_000
	default:
		return Fraction{}, fmt.Errorf("%s.default_value.denominator: unknown value %d", path, d.GetDenominator())
	}
	if k := pb.GetRuntimeKey(); k != "" && rt != nil {
		if v, ok := rt.Get(k); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return Fraction{}, fmt.Errorf("%s.runtime_key: runtime value %q of %q is not an integer", path, v, k)
			}
			f.num = n
		}
	}
	f.num = min(f.num, f.den)
	return f, nil
}

// Sample draws whether this request is in the fraction.
func (f Fraction) Sample() bool {
	switch {
	case f.num >= f.den:
		return true
	case f.num == 0:
		return false
	}
	return rand.Uint64N(f.den) < f.num
}
