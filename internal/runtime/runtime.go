// Package runtime is Envoy's runtime: a key-value store built from the
// bootstrap's layered_runtime, read when configuration is built (never per
// request). Layers are static layers and RTDS layers (rtds.go), whose values
// apply to configuration built after they arrive; the keys Legate honours
// are listed in docs/compatibility.md.
package runtime

import (
	"fmt"
	"maps"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Snapshot is the runtime: the merged values of its layers, read with one
// atomic load. Static layers never change; an RTDS update (SetRTDS)
// publishes a new merged map.
type Snapshot struct {
	values atomic.Pointer[map[string]string]

	mu     sync.Mutex // serialises SetRTDS
	layers []layer
}

// layer is one RuntimeLayer, flattened.
type layer struct {
	name   string
	rtds   *bootstrapv3.RuntimeLayer_RtdsLayer // nil for a static layer
	values map[string]string
}

// New flattens the layers' static_layer Structs into dotted keys
// ({envoy: {resource_limits: ...}} and "envoy.resource_limits..." are the same
// key). Later layers override earlier ones, as in Envoy. RTDS layers start
// empty (see RTDSLayers).
func New(layers []*bootstrapv3.RuntimeLayer) (*Snapshot, error) {
	s := &Snapshot{}
	for i, l := range layers {
		name := l.GetName()
		if name == "" {
			name = strconv.Itoa(i)
		}
		ly := layer{name: name, values: map[string]string{}}
		switch {
		case l.GetRtdsLayer() != nil:
			ly.rtds = l.GetRtdsLayer()
		case l.GetLayerSpecifier() != nil && l.GetStaticLayer() == nil:
			return nil, fmt.Errorf("runtime layer %q: only static_layer and rtds_layer are supported", name)
		}
		if err := flatten(ly.values, "", l.GetStaticLayer()); err != nil {
			return nil, fmt.Errorf("runtime layer %q: %w", name, err)
		}
		s.layers = append(s.layers, ly)
	}
	s.publish()
	return s, nil
}

// publish merges the layers in order; callers hold mu (or own s).
func (s *Snapshot) publish() {
	m := map[string]string{}
	for _, l := range s.layers {
		maps.Copy(m, l.values)
	}
	s.values.Store(&m)
}

func (s *Snapshot) get() map[string]string {
	if p := s.values.Load(); p != nil {
		return *p
	}
	return nil
}

func flatten(values map[string]string, prefix string, st *structpb.Struct) error {
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
			if err := flatten(values, key, kind.StructValue); err != nil {
				return err
			}
		case *structpb.Value_StringValue:
			values[key] = kind.StringValue
		case *structpb.Value_BoolValue:
			values[key] = strconv.FormatBool(kind.BoolValue)
		case *structpb.Value_NumberValue:
			values[key] = formatNumber(kind.NumberValue)
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
	v, ok := s.get()[key]
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
	return len(s.get())
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
