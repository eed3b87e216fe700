package routetable

import (
	"fmt"
	"strings"
	"testing"
)

// realisticTable is 20 virtual hosts of 25 routes each, mixing prefix,
// path, regex, header and query matchers, plus wildcard hosts.
func realisticTable(tb testing.TB) *Table {
	var b strings.Builder
	b.WriteString("virtual_hosts:\n")
	for v := 0; v < 20; v++ {
		fmt.Fprintf(&b, "- name: vh%d\n  domains: [\"svc%d.example.com\", \"svc%d.example.com:8080\"]\n  routes:\n", v, v, v)
		for r := 0; r < 5; r++ {
			fmt.Fprintf(&b, "  - {match: {path: \"/api/v%d/health\"}, route: {cluster: a}}\n", r)
			fmt.Fprintf(&b, "  - {match: {safe_regex: {regex: \"/api/v%d/users/[0-9]+\"}}, route: {cluster: b}}\n", r)
			fmt.Fprintf(&b, "  - {match: {prefix: \"/api/v%d/\", headers: [{name: x-canary, string_match: {exact: \"true\"}}]}, route: {cluster: c}}\n", r)
			fmt.Fprintf(&b, "  - {match: {prefix: \"/api/v%d/\", query_parameters: [{name: debug, present_match: true}]}, route: {cluster: c}}\n", r)
			fmt.Fprintf(&b, "  - {match: {path_separated_prefix: \"/static%d\", case_sensitive: false}, route: {cluster: a}}\n", r)
		}
	}
	b.WriteString(`- name: wild
  domains: ["*.internal.example.com", "api.*"]
  routes: [{match: {prefix: "/"}, route: {cluster: a}}]
- name: default
  domains: ["*"]
  routes:
  - {match: {prefix: "/service/1"}, route: {cluster: service1}}
  - {match: {prefix: "/service/2"}, route: {cluster: service2}}
`)
	return build(tb, b.String())
}

var benchRequests = []struct {
	host, path string
	hdrs       []string
}{
	{"svc17.example.com", "/api/v4/users/12345", []string{"user-agent", "wrk", "accept", "*/*", "x-request-id", "4f1c"}},
	{"SVC3.example.com:8080", "/Static4/app.js", []string{"user-agent", "wrk"}},
	{"svc9.example.com", "/api/v2/orders?id=3&debug", []string{"user-agent", "wrk"}},
	{"svc1.example.com", "/api/v0/x", []string{"x-canary", "true"}},
	{"db.internal.example.com", "/x", nil},
	{"localhost:8080", "/service/1", []string{"user-agent", "curl"}},
	{"svc5.example.com", "/nothing/matches", nil},
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tbl := realisticTable(t)
	for _, br := range benchRequests {
		rq := req(br.host, br.path, br.hdrs...)
		if n := testing.AllocsPerRun(200, func() { tbl.Match(rq) }); n != 0 {
			t.Errorf("Match(%s%s) allocates %v times", br.host, br.path, n)
		}
	}
	r, vh := tbl.Match(req("svc17.example.com", "/api/v4/users/12345"))
	if vh == nil || vh.Name != "vh17" || r == nil || r.cluster.Name() != "b" {
		t.Fatalf("realistic table misroutes: %v %v", r, vh)
	}
}

func BenchmarkMatch(b *testing.B) {
	tbl := realisticTable(b)
	for _, br := range benchRequests {
		rq := req(br.host, br.path, br.hdrs...)
		b.Run(br.host+br.path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tbl.Match(rq)
			}
		})
	}
}

// FuzzMatch feeds arbitrary hosts, paths and headers to a realistic table:
// matching must never panic, and a matched route must belong to the
// returned virtual host (see checkMatch for the other invariants).
func FuzzMatch(f *testing.F) {
	tbl := realisticTable(f)
	f.Add("svc1.example.com", "/api/v0/users/1?debug", "x-canary", "true")
	f.Add("", "", "", "")
	f.Add("[::1]:80", "%zz?&=&debug=%4", "x", "y")
	f.Add("SVC3.example.com:8080", "/Static4/app.js", "", "")
	f.Add("DB.Internal.Example.COM", "/x", "", "")
	f.Add("api.", "/", "", "")
	f.Add("\x00", "/api/v0/health\x00", "x-canary", "true\r\n")
	f.Fuzz(func(t *testing.T, host, path, hn, hv string) {
		checkMatch(t, tbl, host, path, hn, hv)
	})
}

func slicesContains(rs []*Route, r *Route) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}
