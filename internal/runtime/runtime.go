// Package runtime is Envoy's runtime: a key-value store built from the
// bootstrap's layered_runtime, read when configuration is built (never per
// request). Legate supports static layers only; the keys it honours are listed
// in docs/compatibility.md.
package runtime

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Snapshot is an immutable view of the runtime.
type Snapshot struct {
	values map[string]string
}

// New flattens the layers' static_layer Structs into dotted keys
// ({envoy: {resource_limits: ...}} and "envoy.resource_limits..." are the same
// key). Later layers override earlier ones, as in Envoy.
func New(layers []*bootstrapv3.RuntimeLayer) (*Snapshot, error) {
	s := &Snapshot{values: make(map[string]string)}
	for i, l := range layers {
		name := l.GetName()
		if name == "" {
			name = strconv.Itoa(i)
		}
		if l.GetLayerSpecifier() != nil && l.GetStaticLayer() == nil {
			return nil, fmt.Errorf("runtime layer %q: only static_layer is supported", name)
		}
		if err := s.flatten("", l.GetStaticLayer()); err != nil {
			return nil, fmt.Errorf("runtime layer %q: %w", name, err)
		}
	}
	return s, nil
}

func (s *Snapshot) flatten(prefix string, st *structpb.Struct) error {
	keys := make([]string, 0, len(st.GetFields()))
	for k := range st.GetFields() {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic when two spellings name the same key
	for _, k := range keys {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		v := st.GetFields()[k]
		switch kind := v.GetKind().(type) {
		case *structpb.Value_StructValue:
			if err := s.flatten(key, kind.StructValue); err != nil {
				return err
			}
		case *structpb.Value_StringValue:
			s.values[key] = kind.StringValue
		case *structpb.Value_BoolValue:
			s.values[key] = strconv.FormatBool(kind.BoolValue)
		case *structpb.Value_NumberValue:
			s.values[key] = formatNumber(kind.NumberValue)
		default:
			// Envoy rejects lists and nulls as runtime values too.
			return fmt.Errorf("key %q: invalid runtime value (lists and null are not allowed)", key)
		}
	}
	return nil
}

// formatNumber writes whole numbers without a fraction ("10000", not "1e+04"),
// so that string and integer reads agree.
func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// Get returns the value of key as a string.
func (s *Snapshot) Get(key string) (string, bool) {
	if s == nil {
		return "", false
	}
	v, ok := s.values[key]
	return v, ok
}

// Uint returns key as a non-negative integer, or def if it is unset or not
// one (a whole-valued number such as "10000" or "1e4" counts).
func (s *Snapshot) Uint(key string, def uint64) uint64 {
	v, ok := s.Get(key)
	if !ok {
		return def
	}
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		return n
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f != math.Trunc(f) || f >= math.MaxUint64 {
		return def
	}
	return uint64(f)
}

// Len is the number of keys.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.values)
}

// Bool returns key as a boolean ("true" or "false" in any case, as Envoy
// reads runtime booleans), or def if it is unset or not one.
func (s *Snapshot) Bool(key string, def bool) bool {
	v, ok := s.Get(key)
	if !ok {
		return def
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true
	case "false":
		return false
	}
	return def
}

// FeatureEnabled evaluates a RuntimeFeatureFlag (the runtime_enabled of
// network filters): its runtime_key if the runtime has a boolean there,
// else default_value. An unset flag is enabled, as in Envoy.
func (s *Snapshot) FeatureEnabled(f *corev3.RuntimeFeatureFlag) bool {
	if f == nil {
		return true
	}
	def := f.GetDefaultValue().GetValue()
	if f.GetRuntimeKey() == "" {
		return def
	}
	return s.Bool(f.GetRuntimeKey(), def)
}
