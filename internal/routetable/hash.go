package routetable

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/lb"
)

// HashPolicy is a route's hash_policy list: what RING_HASH and MAGLEV
// clusters place a request by.
type HashPolicy struct {
	policies []hashPolicy
}

type hashKind uint8

const (
	hashHeader hashKind = iota
	hashCookie
	hashSourceIP
	hashQuery
	hashFilterState
)

type hashPolicy struct {
	kind     hashKind
	name     string // header (lower-case), cookie, query parameter or filter state key
	terminal bool
	// Cookie with a ttl: generated when absent.
	hasTTL     bool
	ttl        time.Duration
	cookiePath string
	attrs      string // "; name=value" for each attribute
}

// HashInput is the per-request data hash policies read.
type HashInput struct {
	Request *message.Request
	// Source is the downstream remote address (after XFF processing).
	Source  netip.Addr
	Dynamic *streaminfo.Dynamic
	// Unique seeds a generated cookie (the connection and stream).
	Unique uint64
}

// Compute returns the request's hash and whether any policy produced one.
// Each policy's value hashes with xxHash64 and folds into the result as
// Envoy does (rotate left by one, xor); a terminal policy that produced a
// hash ends the list. setCookie, when not empty, is a Set-Cookie value the
// response must carry: a cookie policy with a ttl generated the cookie.
func (hp *HashPolicy) Compute(in HashInput) (hash uint64, ok bool, setCookie string) {
	for i := range hp.policies {
		p := &hp.policies[i]
		h, got := uint64(0), false
		switch p.kind {
		case hashHeader:
			h, got = headerHash(in.Request.Header, p.name)
		case hashCookie:
			if v, found := cookieValue(in.Request.Header, p.name); found {
				h, got = lb.HashString(v), true
			} else if p.hasTTL {
				v := strconv.FormatUint(lb.HashString(in.Source.String()+"/"+strconv.FormatUint(in.Unique, 10)+"/"+strconv.FormatInt(time.Now().UnixNano(), 10)), 16)
				h, got = lb.HashString(v), true
				setCookie = p.cookie(v)
			}
		case hashSourceIP:
			if in.Source.IsValid() {
				h, got = lb.HashString(in.Source.String()), true
			}
		case hashQuery:
			if v, found := pathQueryValue(in.Request.Path, p.name); found {
				h, got = lb.HashString(v), true
			}
		case hashFilterState:
			if in.Dynamic != nil {
				if obj := in.Dynamic.FilterState(p.name); obj != nil {
					if s, sok := obj.PlainString(); sok {
						h, got = lb.HashString(s), true
					}
				}
			}
		}
		if !got {
			continue
		}
		if ok {
			hash = (hash<<1 | hash>>63) ^ h
		} else {
			hash, ok = h, true
		}
		if p.terminal {
			break
		}
	}
	return hash, ok, setCookie
}

// cookie renders the Set-Cookie value for a generated cookie.
func (p *hashPolicy) cookie(v string) string {
	var b strings.Builder
	b.WriteString(p.name)
	b.WriteString("=\"")
	b.WriteString(v)
	b.WriteByte('"')
	if p.ttl > 0 {
		// A zero ttl makes a session cookie, as in Envoy.
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(int64(p.ttl/time.Second), 10))
	}
	if p.cookiePath != "" {
		b.WriteString("; Path=")
		b.WriteString(p.cookiePath)
	}
	b.WriteString(p.attrs)
	b.WriteString("; HttpOnly")
	return b.String()
}

// headerHash hashes a header's values; several values hash in sorted
// order so that their order does not matter (Envoy's rule).
func headerHash(h message.Headers, name string) (uint64, bool) {
	var first string
	n := 0
	for i := range h {
		if h[i].Name == name {
			if n == 0 {
				first = h[i].Value
			}
			n++
		}
	}
	switch n {
	case 0:
		return 0, false
	case 1:
		return lb.HashString(first), true
	}
	vals := make([]string, 0, n)
	for i := range h {
		if h[i].Name == name {
			vals = append(vals, h[i].Value)
		}
	}
	slices.Sort(vals)
	var hash uint64
	for _, v := range vals {
		hash = lb.HashSeeded(v, hash)
	}
	return hash, true
}

// cookieValue finds a cookie in the request's cookie headers.
func cookieValue(h message.Headers, name string) (string, bool) {
	for i := range h {
		if h[i].Name != "cookie" {
			continue
		}
		for part := range strings.SplitSeq(h[i].Value, ";") {
			k, v, found := strings.Cut(strings.TrimSpace(part), "=")
			if found && k == name {
				return strings.Trim(v, "\""), true
			}
		}
	}
	return "", false
}

// pathQueryValue is a query parameter's first value (percent-decoded, as
// query_parameters matchers see it).
func pathQueryValue(path, name string) (string, bool) {
	_, q, found := strings.Cut(path, "?")
	if !found {
		return "", false
	}
	if i := strings.IndexByte(q, '#'); i >= 0 {
		q = q[:i]
	}
	return queryValue(q, name)
}

// compileHashPolicy compiles a RouteAction's hash_policy list.
func compileHashPolicy(in []*routev3.RouteAction_HashPolicy, path string) (*HashPolicy, error) {
	hp := &HashPolicy{}
	for i, p := range in {
		f := fmt.Sprintf("%s[%d]", path, i)
		hpol := hashPolicy{terminal: p.GetTerminal()}
		switch v := p.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			if v.Header.GetRegexRewrite() != nil {
				return nil, fmt.Errorf("%s.header.regex_rewrite: is not supported", f)
			}
			name := strings.ToLower(v.Header.GetHeaderName())
			if name == "" {
				return nil, fmt.Errorf("%s.header.header_name: must not be empty", f)
			}
			if name == "host" {
				name = ":authority"
			}
			hpol.kind, hpol.name = hashHeader, name
		case *routev3.RouteAction_HashPolicy_Cookie_:
			c := v.Cookie
			if c.GetName() == "" {
				return nil, fmt.Errorf("%s.cookie.name: must not be empty", f)
			}
			hpol.kind, hpol.name, hpol.cookiePath = hashCookie, c.GetName(), c.GetPath()
			if t := c.GetTtl(); t != nil {
				hpol.hasTTL, hpol.ttl = true, t.AsDuration()
			}
			for j, a := range c.GetAttributes() {
				if a.GetName() == "" || strings.ContainsAny(a.GetName()+a.GetValue(), ";\r\n") {
					return nil, fmt.Errorf("%s.cookie.attributes[%d]: name must be set and neither may contain ';' or line breaks", f, j)
				}
				hpol.attrs += "; " + a.GetName()
				if a.GetValue() != "" {
					hpol.attrs += "=" + a.GetValue()
				}
			}
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			if !v.ConnectionProperties.GetSourceIp() {
				// Envoy produces no hash for source_ip: false.
				continue
			}
			hpol.kind = hashSourceIP
		case *routev3.RouteAction_HashPolicy_QueryParameter_:
			if v.QueryParameter.GetName() == "" {
				return nil, fmt.Errorf("%s.query_parameter.name: must not be empty", f)
			}
			hpol.kind, hpol.name = hashQuery, v.QueryParameter.GetName()
		case *routev3.RouteAction_HashPolicy_FilterState_:
			if v.FilterState.GetKey() == "" {
				return nil, fmt.Errorf("%s.filter_state.key: must not be empty", f)
			}
			hpol.kind, hpol.name = hashFilterState, v.FilterState.GetKey()
		default:
			return nil, fmt.Errorf("%s: a policy specifier (header, cookie, connection_properties, query_parameter, filter_state) is required", f)
		}
		hp.policies = append(hp.policies, hpol)
	}
	if len(hp.policies) == 0 {
		return nil, nil
	}
	return hp, nil
}
