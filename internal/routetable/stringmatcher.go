package routetable

import (
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// StringMatcher is a compiled envoy.type.matcher.v3.StringMatcher,
// exported so that other config consumers (RBAC's server names,
// principals and metadata) match strings exactly as routes do.
type StringMatcher struct {
	m stringMatcher
}

// CompileStringMatcher compiles m; path names it in errors.
func CompileStringMatcher(m *matcherv3.StringMatcher, path string) (*StringMatcher, error) {
	sm, err := compileStringMatcher(m, path)
	if err != nil {
		return nil, err
	}
	return &StringMatcher{m: sm}, nil
}

// Match reports whether v matches.
func (m *StringMatcher) Match(v string) bool { return m.m.Match(v) }
