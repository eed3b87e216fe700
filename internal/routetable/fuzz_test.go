package routetable

import (
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// FuzzTable compiles arbitrary route configurations (binary protobuf)
// and matches a fuzzed request against them. No panic; a refusal names
// its field path; a matched route belongs to the returned virtual host;
// matching is deterministic; and host matching ignores case, as Envoy's
// domain matching does.
func FuzzTable(f *testing.F) {
	for _, y := range []string{
		`virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: a}}]}]`,
		`virtual_hosts: [{name: a, domains: ["Foo.COM", "*.bar.com", "baz.*"], routes: [{match: {path: "/x", case_sensitive: false}, route: {cluster: a}}, {match: {safe_regex: {regex: "/u/[0-9]+"}}, direct_response: {status: 200}}]}]`,
		`virtual_hosts: [{name: a, domains: ["h:8080"], routes: [{match: {prefix: "/", headers: [{name: x, string_match: {exact: v}, invert_match: true}], query_parameters: [{name: q, present_match: true}]}, redirect: {path_redirect: "/r"}}]}]`,
		`ignore_port_in_host_matching: true
virtual_hosts: [{name: a, domains: ["h"], routes: [{match: {path_separated_prefix: "/api"}, route: {cluster: b, prefix_rewrite: "/"}}]}]`,
		`virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: nope}}]}]`,
		`virtual_hosts: [{name: a, domains: ["a"]}, {name: b, domains: ["a"]}]`,
		`virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {safe_regex: {regex: "("}}, route: {cluster: a}}]}]`,
	} {
		b, err := proto.Marshal(parseRC(f, y))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "foo.com", "/x?q", "x", "v")
	}
	f.Fuzz(func(t *testing.T, cfg []byte, host, path, hn, hv string) {
		var rc routev3.RouteConfiguration
		if proto.Unmarshal(cfg, &rc) != nil || len(rc.GetVirtualHosts()) > 16 {
			return
		}
		tbl, err := New(&rc, Options{Clusters: lookup, ValidateClusters: true})
		if err != nil {
			msg := err.Error()
			if i := strings.Index(msg, ": "); i <= 0 || strings.ContainsAny(msg[:i], " \t\n") {
				t.Fatalf("refusal does not start with a field path: %q", msg)
			}
			return
		}
		checkMatch(t, tbl, host, path, hn, hv)
	})
}

func checkMatch(t *testing.T, tbl *Table, host, path, hn, hv string) {
	t.Helper()
	rq := req(host, path, strings.ToLower(hn), hv)
	r, vh := tbl.Match(rq)
	if r != nil && (vh == nil || !slicesContains(vh.Routes, r)) {
		t.Fatalf("route %v not in vhost %v", r, vh)
	}
	if r2, vh2 := tbl.Match(rq); r2 != r || vh2 != vh {
		t.Fatalf("matching is not deterministic")
	}
	for _, h := range []string{asciiCase(host, true), asciiCase(host, false)} {
		if _, vh2 := tbl.Match(req(h, path, strings.ToLower(hn), hv)); vh2 != vh {
			t.Fatalf("host %q and %q pick different virtual hosts (%v, %v)", host, h, vh, vh2)
		}
	}
}

// asciiCase maps ASCII letters only: hosts are compared case-insensitively
// in ASCII, and strings.ToUpper would also rewrite other UTF-8.
func asciiCase(s string, upper bool) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}
