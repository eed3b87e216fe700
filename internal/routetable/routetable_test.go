package routetable

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/omit_canary_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

var testClusters = map[string]*cluster.Cluster{}

// lookup is the ClusterSource the tests compile against.
var lookup = mapSource{}

func init() {
	for _, n := range []string{"a", "b", "c", "service1", "service2"} {
		testClusters[n] = &cluster.Cluster{Name: n}
		lookup[n] = cluster.NewRef(n)
		lookup[n].Store(testClusters[n])
	}
}

// mapSource is a ClusterSource over Refs made up front: a name without one
// gets a fresh empty Ref, not kept, so that tests may share a source.
type mapSource map[string]*cluster.Ref

func (s mapSource) Ref(name string) *cluster.Ref {
	if r := s[name]; r != nil {
		return r
	}
	return cluster.NewRef(name)
}
func (s mapSource) Has(name string) bool             { return s[name].Load() != nil }
func (s mapSource) Get(name string) *cluster.Cluster { return s[name].Load() }

func parseRC(t testing.TB, y string) *routev3.RouteConfiguration {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	rc := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal(j, rc); err != nil {
		t.Fatalf("protojson: %v\n%s", err, y)
	}
	return rc
}

func build(t testing.TB, y string) *Table {
	t.Helper()
	tbl, err := New(parseRC(t, y), Options{Clusters: lookup, ValidateClusters: true})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func req(authority, path string, h ...string) *message.Request {
	r := &message.Request{Method: "GET", Scheme: "http", Authority: authority, Path: path, Protocol: message.HTTP11}
	for i := 0; i+1 < len(h); i += 2 {
		r.Header.Add(h[i], h[i+1])
	}
	return r
}

func TestDomainMatching(t *testing.T) {
	tbl := build(t, `
virtual_hosts:
- {name: exact, domains: ["www.foo.com", "Mixed.Example"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}
- {name: withport, domains: ["www.foo.com:8080"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}
- {name: suffix, domains: ["*.foo.com"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}
- {name: longsuffix, domains: ["*.bar.foo.com"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}
- {name: dashsuffix, domains: ["*-bar.baz.com"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}
- {name: prefix, domains: ["foo.*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}
- {name: longprefix, domains: ["foo.bar.*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}
- {name: any, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}
`)
	tests := []struct{ host, want string }{
		{"www.foo.com", "exact"},
		{"WWW.FOO.COM", "exact"},
		{"mixed.example", "exact"},
		{"www.foo.com:8080", "withport"},
		{"www.foo.com:9090", "suffix"}, // port kept: *.foo.com does not match, but ".foo.com:9090"... falls through
		{"a.foo.com", "suffix"},
		{"x.bar.foo.com", "longsuffix"},
		{"bar.foo.com", "suffix"},
		{".foo.com", "any"}, // a wildcard never matches the empty string
		{"baz-bar.baz.com", "dashsuffix"},
		{"-bar.baz.com", "any"},
		{"foo.org", "prefix"},
		{"foo.bar.org", "longprefix"},
		{"foo.", "any"},
		{"a.foo.com.foo.x", "any"},
		{"other", "any"},
		{"", "any"},
	}
	// With the port kept, "www.foo.com:9090" matches the prefix wildcard
	// "foo.*"? No: it starts with "www". It does not end in ".foo.com"
	// either, so it falls through to "*".
	tests[4].want = "any"
	for _, tt := range tests {
		_, vh := tbl.Match(req(tt.host, "/"))
		got := ""
		if vh != nil {
			got = vh.Name
		}
		if got != tt.want {
			t.Errorf("host %q: got vhost %q, want %q", tt.host, got, tt.want)
		}
	}
}

func TestDomainIgnorePortAndNoDefault(t *testing.T) {
	tbl := build(t, `
ignore_port_in_host_matching: true
virtual_hosts:
- {name: v, domains: ["example.com", "[::1]"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}
`)
	for _, h := range []string{"example.com", "example.com:8080", "[::1]:80", "[::1]"} {
		if _, vh := tbl.Match(req(h, "/")); vh == nil {
			t.Errorf("%q: no vhost", h)
		}
	}
	if r, vh := tbl.Match(req("other.com", "/")); r != nil || vh != nil {
		t.Errorf("other.com matched %v %v", r, vh)
	}
}

func TestRouteMatching(t *testing.T) {
	tbl := build(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {name: exact, match: {path: "/exact"}, route: {cluster: a}}
  - {name: exact-ci, match: {path: "/CI", case_sensitive: false}, route: {cluster: a}}
  - {name: sep, match: {path_separated_prefix: "/api"}, route: {cluster: a}}
  - {name: regex, match: {safe_regex: {regex: "/re/[0-9]+"}}, route: {cluster: a}}
  - {name: prefix-ci, match: {prefix: "/Upper", case_sensitive: false}, route: {cluster: a}}
  - name: hdr-exact
    match: {prefix: "/h", headers: [{name: x-env, string_match: {exact: prod}}]}
    route: {cluster: a}
  - name: hdr-deprecated
    match: {prefix: "/h", headers: [{name: x-env, prefix_match: "sta"}]}
    route: {cluster: a}
  - name: hdr-range
    match: {prefix: "/h", headers: [{name: x-n, range_match: {start: 10, end: 20}}]}
    route: {cluster: a}
  - name: hdr-absent
    match: {prefix: "/h", headers: [{name: x-gone, present_match: false}]}
    route: {cluster: a}
  - {name: h-fallback, match: {prefix: "/h"}, route: {cluster: b}}
  - name: hdr-invert
    match: {prefix: "/i", headers: [{name: x-env, string_match: {exact: prod}, invert_match: true}]}
    route: {cluster: a}
  - name: hdr-missing-empty
    match: {prefix: "/missing", headers: [{name: x-e, string_match: {exact: ""}, treat_missing_header_as_empty: true}]}
    route: {cluster: a}
  - name: hdr-multi
    match: {prefix: "/multi", headers: [{name: x-m, string_match: {exact: "1,2"}}]}
    route: {cluster: a}
  - name: hdr-regex
    match: {prefix: "/rx", headers: [{name: x-r, safe_regex_match: {regex: "ab+c"}}]}
    route: {cluster: a}
  - name: hdr-ci
    match: {prefix: "/zci", headers: [{name: X-Case, string_match: {suffix: "END", ignore_case: true}}]}
    route: {cluster: a}
  - name: hdr-method
    match: {prefix: "/post", headers: [{name: ":method", string_match: {exact: POST}}]}
    route: {cluster: a}
  - name: query
    match: {prefix: "/q", query_parameters: [{name: debug, present_match: true}, {name: v, string_match: {exact: "a b"}}]}
    route: {cluster: a}
  - name: query-contains
    match: {prefix: "/qc", query_parameters: [{name: tag, string_match: {contains: "x"}}]}
    route: {cluster: a}
  - {name: catchall, match: {prefix: "/"}, route: {cluster: c}}
`)
	tests := []struct {
		path string
		hdrs []string
		want string
	}{
		{"/exact", nil, "exact"},
		{"/exact?x=1", nil, "exact"},
		{"/EXACT", nil, "catchall"},
		{"/exact/", nil, "catchall"},
		{"/ci", nil, "exact-ci"},
		{"/Ci?q", nil, "exact-ci"},
		{"/api", nil, "sep"},
		{"/api/v1", nil, "sep"},
		{"/api?x", nil, "sep"},
		{"/apix", nil, "catchall"},
		{"/re/123", nil, "regex"},
		{"/re/123?x=y", nil, "regex"},
		{"/re/12a", nil, "catchall"},
		{"/x/re/1", nil, "catchall"},
		{"/upperCASE", nil, "prefix-ci"},
		{"/h", []string{"x-env", "prod", "x-gone", "1"}, "hdr-exact"},
		{"/h", []string{"x-env", "staging", "x-gone", "1"}, "hdr-deprecated"},
		{"/h", []string{"x-n", "15", "x-gone", "1"}, "hdr-range"},
		{"/h", []string{"x-n", "20", "x-gone", "1"}, "h-fallback"},
		{"/h", []string{"x-n", "9", "x-gone", "1"}, "h-fallback"},
		{"/h", []string{"x-n", "abc", "x-gone", "1"}, "h-fallback"},
		{"/h", nil, "hdr-absent"},
		{"/i", []string{"x-env", "dev"}, "hdr-invert"},
		{"/i", []string{"x-env", "prod"}, "catchall"},
		{"/i", nil, "catchall"}, // a missing header fails an inverted string match
		{"/missing", nil, "hdr-missing-empty"},
		{"/missing", []string{"x-e", "v"}, "catchall"},
		{"/multi", []string{"x-m", "1", "x-m", "2"}, "hdr-multi"},
		{"/multi", []string{"x-m", "1"}, "catchall"},
		{"/rx", []string{"x-r", "abbbc"}, "hdr-regex"},
		{"/rx", []string{"x-r", "xabc"}, "catchall"},
		{"/zci", []string{"x-case", "the-end"}, "hdr-ci"},
		{"/post", nil, "catchall"},
		{"/q?debug&v=a%20b", nil, "query"},
		{"/q?v=a%20b&debug=1", nil, "query"},
		{"/q?v=a%20b", nil, "catchall"},
		{"/q?debug&v=ab", nil, "catchall"},
		{"/qc?tag=axb", nil, "query-contains"},
		{"/qc?tag=ab", nil, "catchall"},
	}
	for _, tt := range tests {
		r, _ := tbl.Match(req("host", tt.path, tt.hdrs...))
		got := "<nil>"
		if r != nil {
			got = r.Name
		}
		if got != tt.want {
			t.Errorf("%s %v: got route %q, want %q", tt.path, tt.hdrs, got, tt.want)
		}
	}
	post := req("host", "/post")
	post.Method = "POST"
	if r, _ := tbl.Match(post); r == nil || r.Name != "hdr-method" {
		t.Errorf(":method matcher did not match POST: %v", r)
	}
}

func TestNoRoute(t *testing.T) {
	tbl := build(t, `
virtual_hosts:
- {name: v, domains: ["example.com"], routes: [{match: {prefix: "/api"}, route: {cluster: a}}]}
`)
	if r, vh := tbl.Match(req("example.com", "/other")); r != nil || vh == nil || vh.Name != "v" {
		t.Fatalf("got %v %v, want nil route in vhost v", r, vh)
	}
	if r, vh := tbl.Match(req("nope.com", "/api")); r != nil || vh != nil {
		t.Fatalf("got %v %v, want nothing", r, vh)
	}
}

func TestRouteDefaultsAndOverrides(t *testing.T) {
	tbl := build(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  retry_policy: {retry_on: "5xx", num_retries: 3}
  routes:
  - {name: d, match: {prefix: "/d"}, route: {cluster: a}}
  - name: o
    match: {prefix: "/o"}
    route:
      cluster: a
      timeout: 0s
      idle_timeout: 2s
      cluster_not_found_response_code: NOT_FOUND
      retry_policy: {retry_on: "connect-failure"}
      upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: CONNECT, enabled: false}]
`)
	d, _ := tbl.Match(req("h", "/d"))
	if d.Timeout != 15*time.Second || d.HasIdleTimeout || d.ClusterNotFoundStatus != 503 || d.Action != ActionForward {
		t.Errorf("defaults: %+v", d)
	}
	if d.Retry == nil || d.Retry.NumRetries != 3 || d.Retry.On != Retry5xx {
		t.Errorf("vhost retry policy not inherited: %+v", d.Retry)
	}
	if !d.UpgradeEnabled("websocket", true) || d.UpgradeEnabled("websocket", false) {
		t.Error("route without upgrade_configs must follow the connection manager")
	}
	o, _ := tbl.Match(req("h", "/o"))
	if o.Timeout != 0 || !o.HasIdleTimeout || o.IdleTimeout != 2*time.Second || o.ClusterNotFoundStatus != 404 {
		t.Errorf("overrides: %+v", o)
	}
	if o.Retry == nil || o.Retry.On != RetryConnectFailure || o.Retry.NumRetries != 1 {
		t.Errorf("route retry policy: %+v", o.Retry)
	}
	if !o.UpgradeEnabled("WebSocket", false) || o.UpgradeEnabled("connect", true) {
		t.Error("route upgrade_configs must override the connection manager")
	}
}

func TestClusterSelection(t *testing.T) {
	tbl := build(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {match: {prefix: "/static"}, route: {cluster: a}}
  - {match: {prefix: "/header"}, route: {cluster_header: X-Cluster}}
  - match: {prefix: "/weighted"}
    route:
      weighted_clusters:
        total_weight: 100
        clusters: [{name: a, weight: 10}, {name: b, weight: 0}, {name: c, weight: 90}]
`)
	r, _ := tbl.Match(req("h", "/static"))
	if c, wc, n := r.Cluster(req("h", "/static"), 0); c != testClusters["a"] || wc != nil || n != "a" {
		t.Errorf("static: %v %v %q", c, wc, n)
	}
	r, _ = tbl.Match(req("h", "/header"))
	if c, _, n := r.Cluster(req("h", "/header", "x-cluster", "b"), 0); c != testClusters["b"] || n != "b" {
		t.Errorf("cluster_header: %v %q", c, n)
	}
	if c, _, n := r.Cluster(req("h", "/header", "x-cluster", "nope"), 0); c != nil || n != "nope" {
		t.Errorf("unknown cluster_header: %v %q", c, n)
	}
	if c, _, n := r.Cluster(req("h", "/header"), 0); c != nil || n != "" {
		t.Errorf("missing cluster_header: %v %q", c, n)
	}
	r, _ = tbl.Match(req("h", "/weighted"))
	counts := map[string]int{}
	for rnd := uint64(0); rnd < 1000; rnd++ {
		c, wc, n := r.Cluster(nil, rnd)
		if c == nil || wc == nil || wc.Name != n || c.Name != n {
			t.Fatalf("rnd %d: %v %v %q", rnd, c, wc, n)
		}
		counts[n]++
	}
	if counts["a"] != 100 || counts["b"] != 0 || counts["c"] != 900 {
		t.Errorf("weighted distribution: %v", counts)
	}
}

func TestLateClusterResolution(t *testing.T) {
	rc := parseRC(t, `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: later}}]}
`)
	later := cluster.NewRef("later")
	tbl, err := New(rc, Options{Clusters: mapSource{"later": later}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := tbl.Match(req("h", "/"))
	if c, _, _ := r.Cluster(nil, 0); c != nil {
		t.Fatal("cluster should be unknown")
	}
	known := &cluster.Cluster{Name: "later"}
	later.Store(known) // as CDS adding the cluster would
	if c, _, _ := r.Cluster(nil, 0); c != known {
		t.Fatal("cluster unknown at config time must resolve per request when not validated")
	}
}

func TestRewrites(t *testing.T) {
	tbl := build(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {match: {prefix: "/old/"}, route: {cluster: a, prefix_rewrite: "/new/"}}
  - {match: {prefix: "/strip"}, route: {cluster: a, prefix_rewrite: "/"}}
  - {match: {path: "/exact"}, route: {cluster: a, prefix_rewrite: "/other"}}
  - {match: {prefix: "/UP", case_sensitive: false}, route: {cluster: a, prefix_rewrite: "/up"}}
  - match: {prefix: "/svc"}
    route:
      cluster: a
      regex_rewrite: {pattern: {regex: "^/svc/([^/]+)/(.*)$"}, substitution: "/\\2/by/\\1$"}
  - {match: {safe_regex: {regex: "/re/.*"}}, route: {cluster: a, prefix_rewrite: "/fixed"}}
  - {match: {prefix: "/host"}, route: {cluster: a, host_rewrite_literal: "upstream.internal"}}
  - {match: {prefix: "/auto"}, route: {cluster: a, auto_host_rewrite: true}}
`)
	tests := []struct{ path, wantPath, wantHost string }{
		{"/old/x?q=1", "/new/x?q=1", "h"},
		{"/strip/a", "//a", "h"},
		{"/stripped", "/ped", "h"},
		{"/exact?z", "/other?z", "h"},
		{"/UPPER/x", "/upPER/x", "h"},
		{"/svc/users/list?x=1", "/list/by/users$?x=1", "h"},
		{"/re/abc?k", "/fixed?k", "h"},
		{"/host/a", "/host/a", "upstream.internal"},
		{"/auto", "/auto", "picked.example"},
	}
	for _, tt := range tests {
		rq := req("h", tt.path)
		r, vh := tbl.Match(rq)
		if r == nil {
			t.Fatalf("%s: no route", tt.path)
		}
		r.ApplyRequest(rq, vh, nil, &streaminfo.StreamInfo{}, "picked.example")
		if rq.Path != tt.wantPath || rq.Authority != tt.wantHost {
			t.Errorf("%s: got path %q host %q, want %q %q", tt.path, rq.Path, rq.Authority, tt.wantPath, tt.wantHost)
		}
		orig, ok := rq.Header.Get("x-envoy-original-path")
		if rewritten := tt.path != tt.wantPath; rewritten != ok || (ok && orig != tt.path) {
			t.Errorf("%s: x-envoy-original-path = %q, %v", tt.path, orig, ok)
		}
	}
	r, _ := tbl.Match(req("h", "/auto"))
	if !r.AutoHostRewrite() {
		t.Error("AutoHostRewrite() false")
	}
	// Without a hostname (host not yet chosen) the authority stays.
	rq := req("h", "/auto")
	r.ApplyRequest(rq, nil, nil, nil, "")
	if rq.Authority != "h" {
		t.Errorf("authority changed without a hostname: %q", rq.Authority)
	}
	// suppress_envoy_headers: no x-envoy-original-path.
	tbl2, err := New(parseRC(t, `
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/old/"}, route: {cluster: a, prefix_rewrite: "/new/"}}]}
`), Options{Clusters: lookup, SuppressEnvoyHeaders: true})
	if err != nil {
		t.Fatal(err)
	}
	rq = req("h", "/old/x")
	r, vh := tbl2.Match(rq)
	r.ApplyRequest(rq, vh, nil, nil, "")
	if rq.Path != "/new/x" || rq.Header.Has("x-envoy-original-path") {
		t.Errorf("suppressed: %q %v", rq.Path, rq.Header)
	}
}

func TestRedirects(t *testing.T) {
	tbl := build(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {match: {prefix: "/https"}, redirect: {https_redirect: true}}
  - {match: {prefix: "/http"}, redirect: {scheme_redirect: http}}
  - {match: {prefix: "/host"}, redirect: {host_redirect: "new.example", response_code: FOUND}}
  - {match: {prefix: "/port"}, redirect: {port_redirect: 8443, scheme_redirect: https, response_code: TEMPORARY_REDIRECT}}
  - {match: {prefix: "/path"}, redirect: {path_redirect: "/elsewhere", response_code: SEE_OTHER}}
  - {match: {prefix: "/pq"}, redirect: {path_redirect: "/elsewhere?a=b", strip_query: true}}
  - {match: {prefix: "/pre/"}, redirect: {prefix_rewrite: "/post/", response_code: PERMANENT_REDIRECT}}
  - {match: {prefix: "/strip"}, redirect: {strip_query: true}}
  - match: {prefix: "/rx"}
    redirect: {regex_rewrite: {pattern: {regex: "x"}, substitution: "y"}}
`)
	tests := []struct {
		host, path, xfp string
		status          int
		loc             string
	}{
		{"example.com", "/https/a?q=1", "", 301, "https://example.com/https/a?q=1"},
		{"example.com:80", "/https", "", 301, "https://example.com/https"},
		{"example.com:8080", "/https", "", 301, "https://example.com:8080/https"},
		{"example.com", "/https", "https", 301, "https://example.com/https"},
		{"example.com:443", "/https", "https", 301, "https://example.com:443/https"},
		{"example.com:443", "/http", "https", 301, "http://example.com/http"},
		{"example.com:80", "/http", "https", 301, "http://example.com:80/http"},
		{"example.com:80", "/host/x", "", 302, "http://new.example/host/x"},
		{"example.com:80", "/port", "", 307, "https://example.com:8443/port"},
		{"[::1]:80", "/port", "", 307, "https://[::1]:8443/port"},
		{"example.com", "/path?k=v", "", 303, "http://example.com/elsewhere?k=v"},
		{"example.com", "/pq?k=v", "", 301, "http://example.com/elsewhere?a=b"},
		{"example.com", "/pre/a/b?z", "", 308, "http://example.com/post/a/b?z"},
		{"example.com", "/strip/a?z=1", "", 301, "http://example.com/strip/a"},
		{"example.com", "/rxaxb", "", 301, "http://example.com/ryayb"},
	}
	for _, tt := range tests {
		rq := req(tt.host, tt.path)
		if tt.xfp != "" {
			rq.Header.Add("x-forwarded-proto", tt.xfp)
		}
		r, _ := tbl.Match(rq)
		if r == nil || r.Action != ActionRedirect {
			t.Fatalf("%s: not a redirect route: %v", tt.path, r)
		}
		st, loc := r.Redirect(rq)
		if st != tt.status || loc != tt.loc {
			t.Errorf("%s%s: got %d %q, want %d %q", tt.host, tt.path, st, loc, tt.status, tt.loc)
		}
	}
}

func TestDirectResponse(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "body.txt")
	if err := os.WriteFile(file, []byte("from file"), 0o600); err != nil {
		t.Fatal(err)
	}
	tbl := build(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - {match: {prefix: "/s"}, direct_response: {status: 200, body: {inline_string: "hello"}}}
  - {match: {prefix: "/b"}, direct_response: {status: 403, body: {inline_bytes: "Ynl0ZXM="}}}
  - {match: {prefix: "/f"}, direct_response: {status: 503, body: {filename: "`+file+`"}}}
  - {match: {prefix: "/e"}, direct_response: {status: 204}}
`)
	tests := []struct {
		path   string
		status int
		body   string
	}{{"/s", 200, "hello"}, {"/b", 403, "bytes"}, {"/f", 503, "from file"}, {"/e", 204, ""}}
	for _, tt := range tests {
		r, _ := tbl.Match(req("h", tt.path))
		if r.Action != ActionDirectResponse {
			t.Fatalf("%s: action %v", tt.path, r.Action)
		}
		st, body := r.DirectResponse()
		if st != tt.status || string(body) != tt.body {
			t.Errorf("%s: got %d %q", tt.path, st, body)
		}
	}
}

func TestHeaderMutationOrder(t *testing.T) {
	cfg := `
request_headers_to_add:
- header: {key: x-level, value: global}
  append_action: OVERWRITE_IF_EXISTS_OR_ADD
- header: {key: x-all, value: global}
request_headers_to_remove: [x-remove-global]
response_headers_to_add:
- header: {key: x-resp, value: global}
  append: false
virtual_hosts:
- name: v
  domains: ["*"]
  request_headers_to_add:
  - header: {key: x-level, value: vhost}
    append_action: OVERWRITE_IF_EXISTS_OR_ADD
  - header: {key: x-all, value: vhost}
  response_headers_to_add:
  - header: {key: x-resp, value: vhost}
    append: false
  routes:
  - match: {prefix: "/"}
    request_headers_to_add:
    - header: {key: x-level, value: route}
      append_action: OVERWRITE_IF_EXISTS_OR_ADD
    - header: {key: x-all, value: route}
    response_headers_to_add:
    - header: {key: x-resp, value: route}
      append: false
    response_headers_to_remove: [server]
    route:
      weighted_clusters:
        clusters:
        - name: a
          weight: 1
          request_headers_to_add:
          - header: {key: x-level, value: wc}
            append_action: OVERWRITE_IF_EXISTS_OR_ADD
          - header: {key: x-all, value: wc}
          response_headers_to_add:
          - header: {key: x-resp, value: wc}
            append: false
`
	for _, mostSpecific := range []bool{false, true} {
		y := cfg
		if mostSpecific {
			y = "most_specific_header_mutations_wins: true\n" + cfg
		}
		tbl := build(t, y)
		rq := req("h", "/", "x-remove-global", "1", "x-keep", "1")
		r, vh := tbl.Match(rq)
		_, wc, _ := r.Cluster(rq, 0)
		r.ApplyRequest(rq, vh, wc, nil, "")
		wantLevel, wantAll := "global", []string{"wc", "route", "vhost", "global"}
		if mostSpecific {
			wantLevel, wantAll = "wc", []string{"global", "vhost", "route", "wc"}
		}
		if v := rq.Header.Value("x-level"); v != wantLevel {
			t.Errorf("mostSpecific=%v: x-level = %q, want %q", mostSpecific, v, wantLevel)
		}
		var all []string
		for _, h := range rq.Header {
			if h.Name == "x-all" {
				all = append(all, h.Value)
			}
		}
		if !slices.Equal(all, wantAll) {
			t.Errorf("mostSpecific=%v: x-all = %v, want %v", mostSpecific, all, wantAll)
		}
		if rq.Header.Has("x-remove-global") || !rq.Header.Has("x-keep") {
			t.Errorf("removes: %v", rq.Header)
		}
		resp := message.Headers{{Name: "server", Value: "upstream"}, {Name: "x-resp", Value: "upstream"}}
		r.ApplyResponse(&resp, rq, vh, wc, nil)
		if v := resp.Value("x-resp"); v != wantLevel || resp.Has("server") {
			t.Errorf("mostSpecific=%v: response headers %v", mostSpecific, resp)
		}
	}
}

func TestHeaderAppendActionsAndSubstitution(t *testing.T) {
	tbl := build(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: a}
    request_headers_to_add:
    - {header: {key: x-append, value: new}}
    - {header: {key: x-append-true, value: new}, append: true}
    - {header: {key: x-absent, value: new}, append_action: ADD_IF_ABSENT}
    - {header: {key: x-absent-missing, value: new}, append_action: ADD_IF_ABSENT}
    - {header: {key: x-ow, value: new}, append_action: OVERWRITE_IF_EXISTS}
    - {header: {key: x-ow-missing, value: new}, append_action: OVERWRITE_IF_EXISTS}
    - {header: {key: x-owa-missing, value: new}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
    - {header: {key: X-Client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}
    - {header: {key: x-copy, value: "ua=%REQ(user-agent)% path=%REQ(:path)%"}}
    - {header: {key: x-empty, value: "%REQ(x-nothing)%"}}
    - {header: {key: x-empty-kept, value: "%REQ(x-nothing)%"}, keep_empty_value: true}
    - {header: {key: x-literal, value: "100%%"}}
    - {header: {key: x-self, value: "was-%REQ(x-ow)%"}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
    response_headers_to_add:
    - {header: {key: x-upstream-ct, value: "%RESP(content-type)%"}}
    - {header: {key: x-code, value: "%RESPONSE_CODE%"}}
`)
	rq := req("h", "/p?q", "x-append", "old", "x-append-true", "old", "x-absent", "old", "x-ow", "old", "user-agent", "ua1")
	info := &streaminfo.StreamInfo{DownstreamRemoteAddr: netip.MustParseAddrPort("192.0.2.7:1234"), ResponseCode: 200}
	r, vh := tbl.Match(rq)
	r.ApplyRequest(rq, vh, nil, info, "")
	all := func(h message.Headers, name string) []string {
		var out []string
		for _, f := range h {
			if f.Name == name {
				out = append(out, f.Value)
			}
		}
		return out
	}
	checks := []struct {
		name string
		want []string
	}{
		{"x-append", []string{"old", "new"}},
		{"x-append-true", []string{"old", "new"}},
		{"x-absent", []string{"old"}},
		{"x-absent-missing", []string{"new"}},
		{"x-ow", []string{"new"}},
		{"x-ow-missing", nil},
		{"x-owa-missing", []string{"new"}},
		{"x-client", []string{"192.0.2.7"}},
		{"x-copy", []string{"ua=ua1 path=/p?q"}},
		{"x-empty", nil},
		{"x-empty-kept", []string{""}},
		{"x-literal", []string{"100%"}},
		{"x-self", []string{"was-old"}}, // values are computed before this level's writes
	}
	for _, c := range checks {
		if got := all(rq.Header, c.name); !slices.Equal(got, c.want) {
			t.Errorf("%s = %q, want %q", c.name, got, c.want)
		}
	}
	resp := message.Headers{{Name: "content-type", Value: "text/html"}}
	r.ApplyResponse(&resp, rq, vh, nil, info)
	if resp.Value("x-upstream-ct") != "text/html" || resp.Value("x-code") != "200" {
		t.Errorf("response substitutions: %v", resp)
	}
}

func TestRetryPolicy(t *testing.T) {
	tbl := build(t, `
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route:
      cluster: a
      retry_policy:
        retry_on: "gateway-error, retriable-4xx,refused-stream,retriable-status-codes"
        num_retries: 4
        per_try_timeout: 0.5s
        retry_back_off: {base_interval: 0.1s}
        retriable_status_codes: [418]
        host_selection_retry_max_attempts: 5
        retry_host_predicate:
        - name: envoy.retry_host_predicates.previous_hosts
          typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}
`)
	r, _ := tbl.Match(req("h", "/"))
	p := r.Retry
	if p.NumRetries != 4 || p.PerTryTimeout != 500*time.Millisecond || p.BaseInterval != 100*time.Millisecond ||
		p.MaxInterval != time.Second || !p.PreviousHosts || p.HostSelectionMaxAttempts != 5 {
		t.Fatalf("policy: %+v", p)
	}
	for code, want := range map[int]bool{500: false, 502: true, 503: true, 504: true, 409: true, 418: true, 404: false, 200: false} {
		if got := p.RetryOnStatus(code); got != want {
			t.Errorf("RetryOnStatus(%d) = %v", code, got)
		}
	}
	// gateway-error covers resets of every kind.
	for _, k := range []ResetKind{ResetConnectFailure, ResetReset, ResetRefusedStream} {
		if !p.RetryOnReset(k) {
			t.Errorf("RetryOnReset(%d) = false", k)
		}
	}
	cf := &RetryPolicy{On: RetryConnectFailure | RetryRefusedStream}
	if !cf.RetryOnReset(ResetConnectFailure) || cf.RetryOnReset(ResetReset) || !cf.RetryOnReset(ResetRefusedStream) {
		t.Error("connect-failure/refused-stream reset mapping")
	}
	if cf.RetryOnStatus(503) {
		t.Error("connect-failure must not retry on a 503 response")
	}
	five := &RetryPolicy{On: Retry5xx}
	if !five.RetryOnStatus(500) || !five.RetryOnStatus(599) || five.RetryOnStatus(409) || !five.RetryOnReset(ResetConnectFailure) {
		t.Error("5xx mapping")
	}
	var none *RetryPolicy
	if none.RetryOnStatus(503) || none.RetryOnReset(ResetReset) {
		t.Error("nil policy retries")
	}
}

func TestBackoffBounds(t *testing.T) {
	p := &RetryPolicy{BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond}
	// Bounds: (2^n - 1) * 25ms, capped at 250ms.
	bounds := map[int]time.Duration{1: 25 * time.Millisecond, 2: 75 * time.Millisecond, 3: 175 * time.Millisecond, 4: 250 * time.Millisecond, 10: 250 * time.Millisecond, 100: 250 * time.Millisecond}
	for attempt, bound := range bounds {
		var maxSeen time.Duration
		for rnd := uint64(0); rnd < 5000; rnd++ {
			d := p.Backoff(attempt, rnd*7919+rnd*rnd*104729)
			if d < 0 || d >= bound {
				t.Fatalf("attempt %d: backoff %v outside [0, %v)", attempt, d, bound)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < bound*9/10 {
			t.Errorf("attempt %d: backoff never came near its bound %v (max %v)", attempt, bound, maxSeen)
		}
	}
	if d := p.Backoff(1, uint64(25*time.Millisecond)-1); d != 25*time.Millisecond-1 {
		t.Errorf("rnd is taken modulo the bound: %v", d)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{`
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: a}}, {match: {prefix: "/"}, route: {cluster: x}}]}`,
			`virtual_hosts[0].routes[1].route.cluster: unknown cluster "x"`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {weighted_clusters: {clusters: [{name: a, weight: 1}, {name: zz, weight: 1}]}}}]}`,
			`virtual_hosts[0].routes[0].route.weighted_clusters.clusters[1].name: unknown cluster "zz"`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {weighted_clusters: {total_weight: 5, clusters: [{name: a, weight: 1}]}}}]}`,
			`virtual_hosts[0].routes[0].route.weighted_clusters.total_weight: the weights of the clusters add up to 1, not 5`},
		{`
virtual_hosts:
- {name: v, domains: ["a.com", "*"]}
- {name: w, domains: ["A.com"]}`,
			`virtual_hosts[1].domains[0]: domain "A.com" is already used by virtual_hosts[0]`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {safe_regex: {regex: "("}}, route: {cluster: a}}]}`,
			`virtual_hosts[0].routes[0].match.safe_regex.regex: error parsing regexp`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/", headers: [{name: x, string_match: {safe_regex: {regex: "[z-a]"}}}]}, route: {cluster: a}}]}`,
			`virtual_hosts[0].routes[0].match.headers[0].string_match.safe_regex.regex: error parsing regexp`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: a, retry_policy: {retry_on: "5xx,bogus"}}}]}`,
			`virtual_hosts[0].routes[0].route.retry_policy.retry_on: "bogus" is not supported`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], retry_policy: {retry_on: "5xx", retry_back_off: {base_interval: 1s, max_interval: 0.5s}}}`,
			`virtual_hosts[0].retry_policy.retry_back_off.max_interval: must be greater than or equal to the base_interval`},
		{`
virtual_hosts:
- name: v
  domains: ["*"]
  retry_policy:
    retry_host_predicate: [{name: x, typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.omit_canary_hosts.v3.OmitCanaryHostsPredicate}}]`,
			`virtual_hosts[0].retry_policy.retry_host_predicate[0]: envoy.extensions.retry.host.omit_canary_hosts.v3.OmitCanaryHostsPredicate is not supported`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: a}, request_headers_to_add: [{header: {key: ":path", value: "/x"}}]}]}`,
			`virtual_hosts[0].routes[0].request_headers_to_add[0].header.key: :-prefixed or host headers may not be modified`},
		{`
request_headers_to_add: [{header: {key: Host, value: "x"}}]`,
			`request_headers_to_add[0].header.key: :-prefixed or host headers may not be modified`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], response_headers_to_remove: ["host"]}`,
			`virtual_hosts[0].response_headers_to_remove[0]: :-prefixed or host headers may not be removed`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], request_headers_to_add: [{header: {key: x, value: "%NOPE%"}}]}`,
			`virtual_hosts[0].request_headers_to_add[0].header.value: format "%NOPE%" at position 0: unsupported command operator %NOPE%`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], request_headers_to_add: [{header: {key: x, value: "y"}, append: true, append_action: ADD_IF_ABSENT}]}`,
			`virtual_hosts[0].request_headers_to_add[0]: both append and append_action are set`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {filename: "/nonexistent/legate/body"}}}]}`,
			`virtual_hosts[0].routes[0].direct_response.body.filename: open /nonexistent/legate/body`},
		{`
max_direct_response_body_size_bytes: 3
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {inline_string: "toolong"}}}]}`,
			`virtual_hosts[0].routes[0].direct_response.body: response body size is 7 bytes; maximum is 3`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: a, prefix_rewrite: "/x", regex_rewrite: {pattern: {regex: "a"}, substitution: "b"}}}]}`,
			`virtual_hosts[0].routes[0].route: specify only one of prefix_rewrite and regex_rewrite`},
		{`
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: a, regex_rewrite: {pattern: {regex: "a"}, substitution: "\\1"}}}]}`,
			`virtual_hosts[0].routes[0].route.regex_rewrite.substitution: \1 refers to a group the pattern does not have`},
	}
	for _, tt := range tests {
		_, err := New(parseRC(t, tt.yaml), Options{Clusters: lookup, ValidateClusters: true})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error = %v\nwant it to contain %q", err, tt.want)
		}
	}
}

func TestValidateClustersField(t *testing.T) {
	rc := parseRC(t, `
validate_clusters: false
virtual_hosts:
- {name: v, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: x}}]}`)
	if _, err := New(rc, Options{Clusters: lookup, ValidateClusters: true}); err != nil {
		t.Fatalf("validate_clusters: false must override the caller's default: %v", err)
	}
}

func TestFrontProxyExample(t *testing.T) {
	// A route config shaped like Envoy's front-proxy example.
	tbl := build(t, `
name: local_route
virtual_hosts:
- name: backend
  domains: ["*"]
  routes:
  - {match: {prefix: "/service/1"}, route: {cluster: service1}}
  - {match: {prefix: "/service/2"}, route: {cluster: service2}}
`)
	r, _ := tbl.Match(req("localhost:8080", "/service/1"))
	if c, _, _ := r.Cluster(nil, 0); c == nil || c.Name != "service1" {
		t.Fatalf("got %v", c)
	}
	r, _ = tbl.Match(req("localhost:8080", "/service/2"))
	if c, _, _ := r.Cluster(nil, 0); c == nil || c.Name != "service2" {
		t.Fatalf("got %v", c)
	}
}
