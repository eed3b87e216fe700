// Package routetable compiles an Envoy RouteConfiguration into an immutable
// route table: virtual hosts found by :authority, routes matched by path,
// headers and query parameters, and per route everything the router filter
// needs — cluster choice, rewrites, header mutations, timeouts, retries,
// redirects and direct responses.
//
// All parsing, regex compilation and cluster resolution happen in New;
// Match and the Route methods only read.
package routetable

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/httpfilter/perroute"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// Options configure New.
type Options struct {
	// Clusters resolves cluster names: at config time into Refs for
	// static and weighted clusters, per request for cluster_header routes.
	// Nil means no clusters exist.
	Clusters ClusterSource
	// ValidateClusters makes an unknown cluster name a config error. Envoy
	// defaults validate_clusters to true for inline route configs; the
	// caller decides (RouteConfiguration.validate_clusters, when set,
	// overrides it).
	ValidateClusters bool
	// SuppressEnvoyHeaders is the router filter's suppress_envoy_headers:
	// when false, a path rewrite records the original path in
	// x-envoy-original-path.
	SuppressEnvoyHeaders bool
}

// ClusterSource is what a route table needs of the cluster manager
// (*cluster.Manager implements it).
type ClusterSource interface {
	// Ref returns the stable handle for a cluster name.
	Ref(name string) *cluster.Ref
	// Has reports whether the cluster exists now (validate_clusters).
	Has(name string) bool
	// Get returns the active cluster called name, or nil; called per
	// request for cluster_header routes.
	Get(name string) *cluster.Cluster
}

type noClusters struct{}

func (noClusters) Ref(name string) *cluster.Ref { return cluster.NewRef(name) }
func (noClusters) Has(string) bool              { return false }
func (noClusters) Get(string) *cluster.Cluster  { return nil }

// DefaultTimeout is the route timeout when none is configured.
const DefaultTimeout = 15 * time.Second

// DefaultMaxDirectResponseBodySize is Envoy's limit on direct response bodies.
const DefaultMaxDirectResponseBodySize = 4096

// Table is a compiled RouteConfiguration. It is immutable; publish it with
// an atomic.Pointer.
type Table struct {
	Name         string
	VirtualHosts []*VirtualHost

	domains    domainIndex
	ignorePort bool
	global     *levelMutations
	opts       Options
}

// levelMutations are one level's request and response header mutations.
type levelMutations struct {
	req, resp *headerMutation
}

// VirtualHost is a compiled virtual host.
type VirtualHost struct {
	Name    string
	Domains []string
	Routes  []*Route
	// Retry is the virtual host's retry policy, used by routes without one.
	Retry *RetryPolicy
	// PerFilter is the virtual host's typed_per_filter_config.
	PerFilter perroute.Set

	mut *levelMutations
}

// Action is what a route does with a matching request.
type Action uint8

const (
	ActionForward Action = iota
	ActionRedirect
	ActionDirectResponse
)

// New compiles rc. Every error names the offending field by its path from
// the RouteConfiguration, e.g.
// `virtual_hosts[0].routes[1].route.cluster: unknown cluster "x"`.
func New(rc *routev3.RouteConfiguration, opts Options) (*Table, error) {
	if vc := rc.GetValidateClusters(); vc != nil {
		opts.ValidateClusters = vc.GetValue()
	}
	if opts.Clusters == nil {
		opts.Clusters = noClusters{}
	}
	t := &Table{Name: rc.GetName(), ignorePort: rc.GetIgnorePortInHostMatching(), opts: opts}
	var err error
	if t.global, err = compileLevel(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(),
		rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove(), ""); err != nil {
		return nil, err
	}
	maxBody := uint32(DefaultMaxDirectResponseBodySize)
	if m := rc.GetMaxDirectResponseBodySizeBytes(); m != nil {
		maxBody = m.GetValue()
	}
	mostSpecificWins := rc.GetMostSpecificHeaderMutationsWins()
	seen := map[string]int{}
	for vi, v := range rc.GetVirtualHosts() {
		vpath := fmt.Sprintf("virtual_hosts[%d]", vi)
		vh := &VirtualHost{Name: v.GetName()}
		if vh.mut, err = compileLevel(v.GetRequestHeadersToAdd(), v.GetRequestHeadersToRemove(),
			v.GetResponseHeadersToAdd(), v.GetResponseHeadersToRemove(), vpath+"."); err != nil {
			return nil, err
		}
		if vh.PerFilter, err = perroute.Compile(v.GetTypedPerFilterConfig(), vpath+".typed_per_filter_config"); err != nil {
			return nil, err
		}
		if rp := v.GetRetryPolicy(); rp != nil {
			if vh.Retry, err = compileRetryPolicy(rp, vpath+".retry_policy"); err != nil {
				return nil, err
			}
		}
		if len(v.GetDomains()) == 0 {
			return nil, fmt.Errorf("%s.domains: at least one domain is required", vpath)
		}
		for di, d := range v.GetDomains() {
			ld := strings.ToLower(d)
			dpath := fmt.Sprintf("%s.domains[%d]", vpath, di)
			if prev, dup := seen[ld]; dup {
				return nil, fmt.Errorf("%s: domain %q is already used by virtual_hosts[%d]; domains must be unique across virtual hosts", dpath, d, prev)
			}
			seen[ld] = vi
			switch {
			case ld == "":
				return nil, fmt.Errorf("%s: must not be empty", dpath)
			case ld == "*":
				t.domains.any = vh
			case ld[0] == '*':
				t.domains.suffixes = append(t.domains.suffixes, domainEntry{ld[1:], vh})
			case ld[len(ld)-1] == '*':
				t.domains.prefixes = append(t.domains.prefixes, domainEntry{ld[:len(ld)-1], vh})
			default:
				t.domains.exact = append(t.domains.exact, domainEntry{ld, vh})
			}
			vh.Domains = append(vh.Domains, ld)
		}
		for ri, r := range v.GetRoutes() {
			rt, err := t.compileRoute(r, vh, fmt.Sprintf("%s.routes[%d]", vpath, ri), maxBody)
			if err != nil {
				return nil, err
			}
			rt.mostSpecificWins = mostSpecificWins
			vh.Routes = append(vh.Routes, rt)
		}
		t.VirtualHosts = append(t.VirtualHosts, vh)
	}
	t.domains.sort()
	return t, nil
}

func compileLevel(reqAdd []*corev3.HeaderValueOption, reqRemove []string, respAdd []*corev3.HeaderValueOption, respRemove []string, prefix string) (*levelMutations, error) {
	req, err := compileHeaderMutation(reqAdd, reqRemove, prefix+"request_headers_to_add", prefix+"request_headers_to_remove")
	if err != nil {
		return nil, err
	}
	resp, err := compileHeaderMutation(respAdd, respRemove, prefix+"response_headers_to_add", prefix+"response_headers_to_remove")
	if err != nil {
		return nil, err
	}
	if req == nil && resp == nil {
		return nil, nil
	}
	return &levelMutations{req: req, resp: resp}, nil
}

// Match finds the virtual host for req's :authority and the first of its
// routes that matches. A nil route is Envoy's 404 (NR); the virtual host is
// nil too when no domain matched. Match does not allocate, except to join a
// header that appears several times when a header matcher reads it.
func (t *Table) Match(req *message.Request) (*Route, *VirtualHost) {
	host := req.Authority
	if t.ignorePort {
		if i := portStart(host); i >= 0 {
			host = host[:i]
		}
	}
	vh := t.domains.find(host)
	if vh == nil {
		return nil, nil
	}
	for _, r := range vh.Routes {
		if r.match.matches(req) {
			return r, vh
		}
	}
	return nil, vh
}

// compileRegexRewrite compiles regex_rewrite: every match of the pattern
// in the path is replaced by the substitution, where Envoy's (RE2) \N
// back-references become Go's ${N}.
func compileRegexRewrite(m *matcherv3.RegexMatchAndSubstitute, path string) (*regexRewrite, error) {
	re, err := regexp.Compile(m.GetPattern().GetRegex())
	if err != nil {
		return nil, fmt.Errorf("%s.pattern.regex: %w", path, err)
	}
	sub := m.GetSubstitution()
	var b strings.Builder
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		switch {
		case c == '$':
			b.WriteString("$$")
		case c == '\\' && i+1 < len(sub) && sub[i+1] >= '0' && sub[i+1] <= '9':
			n := int(sub[i+1] - '0')
			if n > re.NumSubexp() {
				return nil, fmt.Errorf("%s.substitution: \\%d refers to a group the pattern does not have", path, n)
			}
			fmt.Fprintf(&b, "${%d}", n)
			i++
		case c == '\\' && i+1 < len(sub) && sub[i+1] == '\\':
			b.WriteByte('\\')
			i++
		default:
			b.WriteByte(c)
		}
	}
	return &regexRewrite{re: re, repl: b.String()}, nil
}

type regexRewrite struct {
	re   *regexp.Regexp
	repl string
}

func (r *regexRewrite) apply(p string) string { return r.re.ReplaceAllString(p, r.repl) }

// readDataSource reads a DataSource at config time.
func readDataSource(ds *corev3.DataSource, path string) ([]byte, error) {
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return nil, fmt.Errorf("%s.filename: %w", path, err)
		}
		return b, nil
	case nil:
		return nil, nil
	default:
		return nil, fmt.Errorf("%s: only inline_string, inline_bytes and filename are supported", path)
	}
}
