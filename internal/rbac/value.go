package rbac

import (
	"fmt"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/legate-proxy/legate/internal/cidr"
	"github.com/legate-proxy/legate/internal/routetable"
)

// metadataMatcher is envoy.type.matcher.v3.MetadataMatcher against the
// dynamic metadata: the value at filter (namespace) and path, missing when
// absent, must satisfy the value matcher (or not, with invert).
type metadataMatcher struct {
	namespace string
	path      []string
	value     valueMatcher
	invert    bool
}

func compileMetadata(m *matcherv3.MetadataMatcher, path string) (Matcher, error) {
	if m.GetFilter() == "" {
		return nil, fmt.Errorf("%s.filter: must not be empty", path)
	}
	if len(m.GetPath()) == 0 {
		return nil, fmt.Errorf("%s.path: at least one key is required", path)
	}
	mm := &metadataMatcher{namespace: m.GetFilter(), invert: m.GetInvert()}
	for i, seg := range m.GetPath() {
		if seg.GetKey() == "" {
			return nil, fmt.Errorf("%s.path[%d].key: must not be empty", path, i)
		}
		mm.path = append(mm.path, seg.GetKey())
	}
	if m.GetValue() == nil {
		return nil, fmt.Errorf("%s.value: is required", path)
	}
	v, err := compileValue(m.GetValue(), path+".value")
	if err != nil {
		return nil, err
	}
	mm.value = v
	return mm, nil
}

func (m *metadataMatcher) Match(in *Input) bool {
	v, _ := in.Dynamic.MetadataValue(m.namespace, m.path)
	return m.value.match(v) != m.invert
}

// valueMatcher is a compiled envoy.type.matcher.v3.ValueMatcher; a nil
// Value is a missing one (Envoy's unset kind).
type valueMatcher interface {
	match(v *structpb.Value) bool
}

func compileValue(m *matcherv3.ValueMatcher, path string) (valueMatcher, error) {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		return nullValue{}, nil
	case *matcherv3.ValueMatcher_DoubleMatch:
		switch d := p.DoubleMatch.GetMatchPattern().(type) {
		case *matcherv3.DoubleMatcher_Exact:
			return doubleValue{exact: true, start: d.Exact}, nil
		case *matcherv3.DoubleMatcher_Range:
			if d.Range.GetStart() > d.Range.GetEnd() {
				return nil, fmt.Errorf("%s.double_match.range: start is after end", path)
			}
			return doubleValue{start: d.Range.GetStart(), end: d.Range.GetEnd()}, nil
		}
		return nil, fmt.Errorf("%s.double_match: range or exact is required", path)
	case *matcherv3.ValueMatcher_StringMatch:
		sm, err := routetable.CompileStringMatcher(p.StringMatch, path+".string_match")
		if err != nil {
			return nil, err
		}
		return stringValue{sm}, nil
	case *matcherv3.ValueMatcher_BoolMatch:
		return boolValue(p.BoolMatch), nil
	case *matcherv3.ValueMatcher_PresentMatch:
		return presentValue(p.PresentMatch), nil
	case *matcherv3.ValueMatcher_ListMatch:
		if p.ListMatch.GetOneOf() == nil {
			return nil, fmt.Errorf("%s.list_match.one_of: is required", path)
		}
		one, err := compileValue(p.ListMatch.GetOneOf(), path+".list_match.one_of")
		if err != nil {
			return nil, err
		}
		return listValue{one}, nil
	case *matcherv3.ValueMatcher_OrMatch:
		var any orValue
		for i, vm := range p.OrMatch.GetValueMatchers() {
			c, err := compileValue(vm, fmt.Sprintf("%s.or_match.value_matchers[%d]", path, i))
			if err != nil {
				return nil, err
			}
			any = append(any, c)
		}
		if len(any) < 2 {
			return nil, fmt.Errorf("%s.or_match.value_matchers: at least two are required", path)
		}
		return any, nil
	}
	return nil, fmt.Errorf("%s: a match pattern is required", path)
}

type nullValue struct{}

func (nullValue) match(v *structpb.Value) bool {
	_, ok := v.GetKind().(*structpb.Value_NullValue)
	return ok
}

// doubleValue matches a number exactly, or in [start, end).
type doubleValue struct {
	exact      bool
	start, end float64
}

func (m doubleValue) match(v *structpb.Value) bool {
	n, ok := v.GetKind().(*structpb.Value_NumberValue)
	if !ok {
		return false
	}
	if m.exact {
		return n.NumberValue == m.start
	}
	return m.start <= n.NumberValue && n.NumberValue < m.end
}

type stringValue struct{ m *routetable.StringMatcher }

func (m stringValue) match(v *structpb.Value) bool {
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	return ok && m.m.Match(s.StringValue)
}

type boolValue bool

func (m boolValue) match(v *structpb.Value) bool {
	b, ok := v.GetKind().(*structpb.Value_BoolValue)
	return ok && b.BoolValue == bool(m)
}

// presentValue: present_match true matches any value that is there.
type presentValue bool

func (m presentValue) match(v *structpb.Value) bool { return bool(m) && v.GetKind() != nil }

type listValue struct{ one valueMatcher }

func (m listValue) match(v *structpb.Value) bool {
	for _, item := range v.GetListValue().GetValues() {
		if m.one.match(item) {
			return true
		}
	}
	return false
}

type orValue []valueMatcher

func (m orValue) match(v *structpb.Value) bool {
	for _, vm := range m {
		if vm.match(v) {
			return true
		}
	}
	return false
}

// filterStateMatcher is envoy.type.matcher.v3.FilterStateMatcher: the
// object under key, as text, must match the string matcher, or be an IP
// address within the address matcher's ranges.
type filterStateMatcher struct {
	key    string
	str    *routetable.StringMatcher
	ranges cidr.Set
	invert bool // address_match.invert_match
}

func compileFilterState(m *matcherv3.FilterStateMatcher, path string) (Matcher, error) {
	if m.GetKey() == "" {
		return nil, fmt.Errorf("%s.key: must not be empty", path)
	}
	fm := &filterStateMatcher{key: m.GetKey()}
	switch p := m.GetMatcher().(type) {
	case *matcherv3.FilterStateMatcher_StringMatch:
		sm, err := routetable.CompileStringMatcher(p.StringMatch, path+".string_match")
		if err != nil {
			return nil, err
		}
		fm.str = sm
	case *matcherv3.FilterStateMatcher_AddressMatch:
		// The xDS core CidrRange: the same fields as Envoy's.
		rs := make([]*corev3.CidrRange, len(p.AddressMatch.GetRanges()))
		for i, r := range p.AddressMatch.GetRanges() {
			rs[i] = &corev3.CidrRange{AddressPrefix: r.GetAddressPrefix(), PrefixLen: r.GetPrefixLen()}
		}
		set, err := cidr.ParseSet(rs, path+".address_match.ranges")
		if err != nil {
			return nil, err
		}
		fm.ranges, fm.invert = set, p.AddressMatch.GetInvertMatch()
	default:
		return nil, fmt.Errorf("%s: string_match or address_match is required", path)
	}
	return fm, nil
}

func (m *filterStateMatcher) Match(in *Input) bool {
	obj := in.Dynamic.FilterState(m.key)
	if obj == nil {
		return false
	}
	s, ok := obj.PlainString()
	if !ok {
		return false
	}
	if m.str != nil {
		return m.str.Match(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return false
		}
		a = ap.Addr()
	}
	return m.ranges.Contains(a) != m.invert
}
