package routetable

//lint:file-ignore SA1019 Envoy's deprecated v3 fields (append, exact_match, ...) are accepted because real configs still use them.

import (
	"fmt"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/strmatch"
)

type pathKind uint8

const (
	pathPrefix pathKind = iota
	pathExact
	pathRegex
	pathSeparatedPrefix
)

// routeMatch is a compiled RouteMatch.
type routeMatch struct {
	kind pathKind
	// value is the prefix or path; lower-cased when !caseSensitive.
	value         string
	caseSensitive bool
	re            *fullRegex
	headers       []headerMatcher
	query         []queryMatcher
	fraction      *runtimeFraction // nil: every request
}

func compileRouteMatch(m *routev3.RouteMatch, path string) (routeMatch, error) {
	rm := routeMatch{caseSensitive: true}
	if cs := m.GetCaseSensitive(); cs != nil {
		rm.caseSensitive = cs.GetValue()
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		rm.kind, rm.value = pathPrefix, ps.Prefix
	case *routev3.RouteMatch_Path:
		rm.kind, rm.value = pathExact, ps.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		v := ps.PathSeparatedPrefix
		if v == "" || v[0] != '/' || strings.ContainsAny(v, "?#") || (len(v) > 1 && v[len(v)-1] == '/') {
			return rm, fmt.Errorf("%s.path_separated_prefix: %q must start with '/', not end with '/' and contain no '?' or '#'", path, v)
		}
		rm.kind, rm.value = pathSeparatedPrefix, v
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(ps.SafeRegex, path+".safe_regex")
		if err != nil {
			return rm, err
		}
		rm.kind, rm.re = pathRegex, re
	default:
		return rm, fmt.Errorf("%s: a path specifier (prefix, path, safe_regex or path_separated_prefix) is required", path)
	}
	if !rm.caseSensitive {
		rm.value = strings.ToLower(rm.value)
	}
	for i, h := range m.GetHeaders() {
		hm, err := compileHeaderMatcher(h, fmt.Sprintf("%s.headers[%d]", path, i))
		if err != nil {
			return rm, err
		}
		rm.headers = append(rm.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		p := fmt.Sprintf("%s.query_parameters[%d]", path, i)
		qm := queryMatcher{name: q.GetName()}
		if qm.name == "" {
			return rm, fmt.Errorf("%s.name: must not be empty", p)
		}
		switch s := q.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_StringMatch:
			sm, err := compileStringMatcher(s.StringMatch, p+".string_match")
			if err != nil {
				return rm, err
			}
			qm.str = &sm
		case *routev3.QueryParameterMatcher_PresentMatch:
			qm.present = s.PresentMatch
			qm.presentSet = true
		default:
			// No specifier: the parameter must be present.
			qm.present, qm.presentSet = true, true
		}
		rm.query = append(rm.query, qm)
	}
	return rm, nil
}

// fullRegex is a whole-value regex (internal/strmatch).
type fullRegex = strmatch.Regex

func compileRegex(m *matcherv3.RegexMatcher, path string) (*fullRegex, error) {
	return strmatch.CompileRegex(m, path)
}

// matchPath matches the path part of the request; p is the whole :path.
// prefix matching sees the query string too, as in Envoy; the others match
// the path without it.
func (m *routeMatch) matchPath(p string) bool {
	switch m.kind {
	case pathPrefix:
		return hasPrefix(p, m.value, m.caseSensitive)
	case pathExact:
		p = stripQuery(p)
		if m.caseSensitive {
			return p == m.value
		}
		return len(p) == len(m.value) && equalFoldASCII(p, m.value)
	case pathSeparatedPrefix:
		p = stripQuery(p)
		if !hasPrefix(p, m.value, m.caseSensitive) {
			return false
		}
		return len(p) == len(m.value) || p[len(m.value)] == '/'
	case pathRegex:
		return m.re.MatchString(stripQuery(p))
	}
	return false
}

func (m *routeMatch) matches(req *message.Request) bool {
	if !m.matchPath(req.Path) {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].matches(req) {
			return false
		}
	}
	if len(m.query) > 0 {
		q := ""
		if i := strings.IndexByte(req.Path, '?'); i >= 0 {
			q = req.Path[i+1:]
		}
		for i := range m.query {
			if !m.query[i].matches(q) {
				return false
			}
		}
	}
	return m.fraction == nil || m.fraction.sample()
}

func stripQuery(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

func hasPrefix(s, prefix string, caseSensitive bool) bool {
	if len(s) < len(prefix) {
		return false
	}
	if caseSensitive {
		return s[:len(prefix)] == prefix
	}
	return equalFoldASCII(s[:len(prefix)], prefix)
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFoldASCII compares s with lower, which is already lower-case.
func equalFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lowerASCII(s[i]) != lower[i] {
			return false
		}
	}
	return true
}

// --- string matchers ---

// stringMatcher is a compiled StringMatcher (internal/strmatch).
type stringMatcher = strmatch.Matcher

func compileStringMatcher(m *matcherv3.StringMatcher, path string) (stringMatcher, error) {
	return strmatch.Compile(m, path)
}

// --- header matchers ---

type headerKind uint8

const (
	hdrString headerKind = iota
	hdrRange
	hdrPresent
)

type headerMatcher struct {
	name                 string
	kind                 headerKind
	str                  stringMatcher
	rangeStart, rangeEnd int64
	present              bool
	invert               bool
	treatMissingAsEmpty  bool
}

func compileHeaderMatcher(h *routev3.HeaderMatcher, path string) (headerMatcher, error) {
	hm := headerMatcher{
		name:                strings.ToLower(h.GetName()),
		invert:              h.GetInvertMatch(),
		treatMissingAsEmpty: h.GetTreatMissingHeaderAsEmpty(),
	}
	if hm.name == "" {
		return hm, fmt.Errorf("%s.name: must not be empty", path)
	}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := compileStringMatcher(s.StringMatch, path+".string_match")
		if err != nil {
			return hm, err
		}
		hm.str = sm
	case *routev3.HeaderMatcher_ExactMatch:
		hm.str = strmatch.Exact(s.ExactMatch)
		if s.ExactMatch == "" {
			hm.str = strmatch.Any()
		}
	case *routev3.HeaderMatcher_PrefixMatch:
		hm.str = strmatch.Prefix(s.PrefixMatch)
	case *routev3.HeaderMatcher_SuffixMatch:
		hm.str = strmatch.Suffix(s.SuffixMatch)
	case *routev3.HeaderMatcher_ContainsMatch:
		hm.str = strmatch.Contains(s.ContainsMatch)
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := compileRegex(s.SafeRegexMatch, path+".safe_regex_match")
		if err != nil {
			return hm, err
		}
		hm.str = strmatch.FromRegex(re)
	case *routev3.HeaderMatcher_RangeMatch:
		hm.kind = hdrRange
		hm.rangeStart, hm.rangeEnd = s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	case *routev3.HeaderMatcher_PresentMatch:
		hm.kind, hm.present = hdrPresent, s.PresentMatch
	default:
		// No specifier: match on presence.
		hm.kind, hm.present = hdrPresent, true
	}
	return hm, nil
}

// headerValue returns a request header for matching. Several fields of the
// same name are joined with ",", as Envoy does; only that case allocates.
func headerValue(req *message.Request, name string) (string, bool) {
	if name[0] == ':' || name == "host" {
		switch name {
		case ":path":
			return req.Path, true
		case ":authority", "host":
			return req.Authority, req.Authority != ""
		case ":method":
			return req.Method, true
		case ":scheme":
			return req.Scheme, req.Scheme != ""
		}
		return "", false
	}
	h := req.Header
	first, n := -1, 0
	for i := range h {
		if h[i].Name == name {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	switch n {
	case 0:
		return "", false
	case 1:
		return h[first].Value, true
	}
	var b strings.Builder
	for i := first; i < len(h); i++ {
		if h[i].Name == name {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(h[i].Value)
		}
	}
	return b.String(), true
}

func (m *headerMatcher) matches(req *message.Request) bool {
	v, ok := headerValue(req, m.name)
	return m.matchValue(v, ok)
}

// matchValue matches the header's value v; ok is false when it is missing.
func (m *headerMatcher) matchValue(v string, ok bool) bool {
	if !ok && !m.treatMissingAsEmpty {
		// A missing header only satisfies presence matchers (present_match
		// false, or an inverted present_match true).
		if m.kind != hdrPresent {
			return false
		}
		return m.present == m.invert
	}
	var r bool
	switch m.kind {
	case hdrPresent:
		r = m.present
	case hdrRange:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		r = err == nil && n >= m.rangeStart && n < m.rangeEnd
	default:
		r = m.str.Match(v)
	}
	return r != m.invert
}

// --- query parameter matchers ---

type queryMatcher struct {
	name       string
	str        *stringMatcher
	present    bool
	presentSet bool
}

// matches looks name up in the raw query q. Names and values are
// percent-decoded before comparison; decoding allocates only when a '%' is
// present.
func (m *queryMatcher) matches(q string) bool {
	v, ok := queryValue(q, m.name)
	if m.presentSet {
		return ok == m.present
	}
	return ok && m.str.Match(v)
}

func queryValue(q, name string) (string, bool) {
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if strings.IndexByte(k, '%') >= 0 {
			k = percentDecode(k)
		}
		if k != name {
			continue
		}
		if strings.IndexByte(v, '%') >= 0 {
			v = percentDecode(v)
		}
		return v, true
	}
	return "", false
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// percentDecode decodes %XX escapes, leaving malformed ones as they are.
func percentDecode(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, h<<4|l)
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}
