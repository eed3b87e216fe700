// Package strmatch is Envoy's envoy.type.matcher.v3.StringMatcher and
// RegexMatcher, compiled once: routes, RBAC and TLS subject-alt-name checks
// all match strings with it, so they agree on every edge (ignore_case is
// ASCII-only, safe_regex must match the whole value).
package strmatch

import (
	"fmt"
	"regexp"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Regex is a regex that must match a whole value, as Envoy's safe_regex
// matchers require (Go's regexp is RE2 syntax, like Envoy's). Every match
// must begin with prefix; checking it first skips the regex engine for
// most non-matching values.
type Regex struct {
	re     *regexp.Regexp
	prefix string
}

// MatchString reports whether the whole of s matches.
func (r *Regex) MatchString(s string) bool {
	return strings.HasPrefix(s, r.prefix) && r.re.MatchString(s)
}

// CompileRegex compiles m; path names it in errors.
func CompileRegex(m *matcherv3.RegexMatcher, path string) (*Regex, error) {
	re, err := regexp.Compile(`^(?:` + m.GetRegex() + `)$`)
	if err != nil {
		return nil, fmt.Errorf("%s.regex: %w", path, err)
	}
	p, _ := re.LiteralPrefix()
	return &Regex{re: re, prefix: p}, nil
}

type kind uint8

const (
	kExact kind = iota
	kPrefix
	kSuffix
	kContains
	kRegex
	kAny // the deprecated header exact_match "" matches any value
)

// Matcher is a compiled StringMatcher. The zero value matches "" exactly.
type Matcher struct {
	kind       kind
	value      string // lower-cased when ignoreCase
	ignoreCase bool
	re         *Regex
}

// Compile compiles m; path names it in errors.
func Compile(m *matcherv3.StringMatcher, path string) (Matcher, error) {
	sm := Matcher{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		sm.kind, sm.value = kExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		sm.kind, sm.value = kPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		sm.kind, sm.value = kSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		sm.kind, sm.value = kContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := CompileRegex(p.SafeRegex, path+".safe_regex")
		if err != nil {
			return sm, err
		}
		sm.kind, sm.re = kRegex, re
	default:
		return sm, fmt.Errorf("%s: a match pattern (exact, prefix, suffix, contains or safe_regex) is required", path)
	}
	if sm.ignoreCase {
		sm.value = strings.ToLower(sm.value)
	}
	return sm, nil
}

// Case-sensitive matchers for the deprecated header matcher fields.
func Exact(v string) Matcher    { return Matcher{kind: kExact, value: v} }
func Prefix(v string) Matcher   { return Matcher{kind: kPrefix, value: v} }
func Suffix(v string) Matcher   { return Matcher{kind: kSuffix, value: v} }
func Contains(v string) Matcher { return Matcher{kind: kContains, value: v} }
func Any() Matcher              { return Matcher{kind: kAny} }
func FromRegex(re *Regex) Matcher {
	return Matcher{kind: kRegex, re: re}
}

// ExactValue returns the value of a case-sensitive exact matcher; ok is
// false for any other matcher.
func (m *Matcher) ExactValue() (v string, ok bool) {
	return m.value, m.kind == kExact && !m.ignoreCase
}

// Match reports whether v matches.
func (m *Matcher) Match(v string) bool {
	switch m.kind {
	case kAny:
		return true
	case kExact:
		if m.ignoreCase {
			return equalFoldASCII(v, m.value)
		}
		return v == m.value
	case kPrefix:
		if len(v) < len(m.value) {
			return false
		}
		if m.ignoreCase {
			return equalFoldASCII(v[:len(m.value)], m.value)
		}
		return v[:len(m.value)] == m.value
	case kSuffix:
		if len(v) < len(m.value) {
			return false
		}
		t := v[len(v)-len(m.value):]
		if m.ignoreCase {
			return equalFoldASCII(t, m.value)
		}
		return t == m.value
	case kContains:
		if !m.ignoreCase {
			return strings.Contains(v, m.value)
		}
		for i := 0; i+len(m.value) <= len(v); i++ {
			if equalFoldASCII(v[i:i+len(m.value)], m.value) {
				return true
			}
		}
		return false
	case kRegex:
		return m.re.MatchString(v)
	}
	return false
}

// equalFoldASCII compares s with lower, which is already lower-case.
func equalFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
