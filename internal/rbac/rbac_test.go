package rbac

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

func parse(t *testing.T, y string) *rbacv3.RBAC {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var pb rbacv3.RBAC
	if err := protojson.Unmarshal(j, &pb); err != nil {
		t.Fatal(err)
	}
	return &pb
}

func compile(t *testing.T, y string) *Engine {
	t.Helper()
	e, err := Compile(parse(t, y), "rules", Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// conn is a plaintext connection from 10.1.2.3 to 127.0.0.1:443.
func conn() *Input {
	ap := netip.MustParseAddrPort
	return &Input{
		Source: ap("10.1.2.3:5000"), Remote: ap("10.1.2.3:5000"), DirectRemote: ap("10.1.2.3:5000"),
		Local: ap("127.0.0.1:443"), RequestedServerName: "api.example.com",
	}
}

func TestActions(t *testing.T) {
	policies := `
policies:
  b-internal:
    permissions: [{destination_port: 443}]
    principals: [{source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}]
  a-also:
    permissions: [{any: true}]
    principals: [{remote_ip: {address_prefix: 10.1.0.0, prefix_len: 16}}]
`
	outside := conn()
	outside.Source = netip.MustParseAddrPort("192.0.2.1:1")
	outside.Remote = outside.Source
	for _, tt := range []struct {
		action    string
		in        *Input
		allowed   bool
		matchedBy string
	}{
		{"ALLOW", conn(), true, "a-also"}, // policies are tried in name order
		{"ALLOW", outside, false, ""},
		{"DENY", conn(), false, "a-also"},
		{"DENY", outside, true, ""},
		{"LOG", conn(), true, "a-also"},
		{"LOG", outside, true, ""},
	} {
		e := compile(t, "action: "+tt.action+policies)
		d := e.Evaluate(tt.in)
		if d.Allowed != tt.allowed || d.Policy != tt.matchedBy || d.Matched != (tt.matchedBy != "") {
			t.Errorf("%s from %v: %+v, want allowed %v by %q", tt.action, tt.in.Source, d, tt.allowed, tt.matchedBy)
		}
	}
	// Present but without policies: nothing matches, so ALLOW denies.
	if compile(t, "action: ALLOW").Evaluate(conn()).Allowed {
		t.Error("rules without policies must deny")
	}
}

// matches compiles a policy with one permission and one principal and
// evaluates it against in.
func matches(t *testing.T, permission, principal string, in *Input) bool {
	t.Helper()
	e := compile(t, "policies:\n  p:\n    permissions: ["+permission+"]\n    principals: ["+principal+"]\n")
	return e.Evaluate(in).Allowed
}

func TestConnectionRules(t *testing.T) {
	proxied := conn()
	proxied.Source = netip.MustParseAddrPort("203.0.113.7:9")
	proxied.Remote = netip.MustParseAddrPort("198.51.100.1:9")
	any := "{any: true}"
	for _, tt := range []struct {
		perm, prin string
		in         *Input
		want       bool
	}{
		{"{destination_port: 443}", any, conn(), true},
		{"{destination_port: 80}", any, conn(), false},
		{"{destination_port_range: {start: 400, end: 444}}", any, conn(), true},
		{"{destination_port_range: {start: 400, end: 443}}", any, conn(), false}, // end is exclusive
		{"{destination_ip: {address_prefix: 127.0.0.0, prefix_len: 8}}", any, conn(), true},
		{"{destination_ip: {address_prefix: '::1', prefix_len: 128}}", any, conn(), false},
		{"{requested_server_name: {suffix: .example.com}}", any, conn(), true},
		{"{requested_server_name: {exact: other}}", any, conn(), false},
		{"{and_rules: {rules: [{destination_port: 443}, {requested_server_name: {prefix: api.}}]}}", any, conn(), true},
		{"{and_rules: {rules: [{destination_port: 443}, {requested_server_name: {prefix: www.}}]}}", any, conn(), false},
		{"{or_rules: {rules: [{destination_port: 1}, {destination_port: 443}]}}", any, conn(), true},
		{"{not_rule: {destination_port: 443}}", any, conn(), false},
		{any, "{source_ip: {address_prefix: 203.0.113.0, prefix_len: 24}}", proxied, true},
		{any, "{remote_ip: {address_prefix: 198.51.100.0, prefix_len: 24}}", proxied, true},
		{any, "{remote_ip: {address_prefix: 203.0.113.0, prefix_len: 24}}", proxied, false},
		{any, "{direct_remote_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}", proxied, true},
		{any, "{and_ids: {ids: [{direct_remote_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}, {not_id: {any: true}}]}}", conn(), false},
		{any, "{or_ids: {ids: [{not_id: {any: true}}, {source_ip: {address_prefix: 10.1.2.3, prefix_len: 32}}]}}", conn(), true},
		{any, "{authenticated: {}}", conn(), false}, // plaintext
	} {
		if got := matches(t, tt.perm, tt.prin, tt.in); got != tt.want {
			t.Errorf("permission %s, principal %s: %v, want %v", tt.perm, tt.prin, got, tt.want)
		}
	}
}

func TestAuthenticated(t *testing.T) {
	spiffe, _ := url.Parse("spiffe://cluster.local/ns/default/sa/frontend")
	withCert := func(c *x509.Certificate) *Input {
		in := conn()
		in.TLS = &tls.ConnectionState{}
		if c != nil {
			in.TLS.PeerCertificates = []*x509.Certificate{c}
		}
		return in
	}
	full := withCert(&x509.Certificate{
		URIs: []*url.URL{spiffe}, DNSNames: []string{"frontend.internal"},
		Subject: pkix.Name{CommonName: "frontend", Organization: []string{"Acme"}},
	})
	subjectOnly := withCert(&x509.Certificate{Subject: pkix.Name{CommonName: "legacy", Organization: []string{"Acme"}}})
	for _, tt := range []struct {
		name string
		in   *Input
		want bool
	}{
		{"{}", withCert(nil), true}, // any TLS connection
		{"{principal_name: {exact: 'spiffe://cluster.local/ns/default/sa/frontend'}}", full, true},
		{"{principal_name: {exact: frontend.internal}}", full, true},
		{"{principal_name: {exact: 'CN=frontend,O=Acme'}}", full, true},
		{"{principal_name: {prefix: 'spiffe://other/'}}", full, false},
		{"{principal_name: {exact: 'CN=legacy,O=Acme'}}", subjectOnly, true},
		{"{principal_name: {exact: ''}}", withCert(nil), true}, // no certificate: the empty subject
	} {
		if got := matches(t, "{any: true}", "{authenticated: "+tt.name+"}", tt.in); got != tt.want {
			t.Errorf("authenticated %s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDynamicRules(t *testing.T) {
	var d streaminfo.Dynamic
	st, _ := structpb.NewStruct(map[string]any{
		"op": "select", "rows": 7, "ro": true, "tables": []any{"users", "orders"}, "none": nil,
		"nested": map[string]any{"db": "prod"},
	})
	d.SetMetadata("envoy.filters.network.mysql_proxy", st)
	d.SetFilterState("envoy.tcp_proxy.cluster", streaminfo.StringObject("db_cluster"))
	d.SetFilterState("client.ip", streaminfo.StringObject("10.9.8.7"))
	in := conn()
	in.Dynamic = &d
	md := func(path, value string) string {
		return "{metadata: {filter: envoy.filters.network.mysql_proxy, path: [" + path + "], value: " + value + "}}"
	}
	any := "{any: true}"
	for _, tt := range []struct {
		perm, prin string
		want       bool
	}{
		{md("{key: op}", "{string_match: {exact: select}}"), any, true},
		{md("{key: op}", "{string_match: {exact: drop}}"), any, false},
		{md("{key: nested}, {key: db}", "{string_match: {exact: prod}}"), any, true},
		{md("{key: rows}", "{double_match: {range: {start: 5, end: 8}}}"), any, true},
		{md("{key: rows}", "{double_match: {exact: 8}}"), any, false},
		{md("{key: ro}", "{bool_match: true}"), any, true},
		{md("{key: none}", "{null_match: {}}"), any, true},
		{md("{key: missing}", "{null_match: {}}"), any, false},
		{md("{key: op}", "{present_match: true}"), any, true},
		{md("{key: missing}", "{present_match: true}"), any, false},
		{md("{key: tables}", "{list_match: {one_of: {string_match: {exact: orders}}}}"), any, true},
		{md("{key: op}", "{or_match: {value_matchers: [{string_match: {exact: insert}}, {string_match: {exact: select}}]}}"), any, true},
		{"{metadata: {filter: envoy.filters.network.mysql_proxy, path: [{key: op}], value: {string_match: {exact: select}}, invert: true}}", any, false},
		{any, "{metadata: {filter: other.ns, path: [{key: op}], value: {present_match: true}}}", false},
		{"{sourced_metadata: {metadata_matcher: {filter: envoy.filters.network.mysql_proxy, path: [{key: op}], value: {string_match: {exact: select}}}}}", any, true},
		{any, "{sourced_metadata: {metadata_matcher: {filter: envoy.filters.network.mysql_proxy, path: [{key: op}], value: {string_match: {exact: drop}}}}}", false},
		{any, "{filter_state: {key: envoy.tcp_proxy.cluster, string_match: {prefix: db_}}}", true},
		{any, "{filter_state: {key: absent, string_match: {prefix: ''}}}", false},
		{any, "{filter_state: {key: client.ip, address_match: {ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]}}}", true},
		{any, "{filter_state: {key: envoy.tcp_proxy.cluster, address_match: {ranges: [{address_prefix: 0.0.0.0}]}}}", false}, // not an address
	} {
		e := compile(t, "policies:\n  p:\n    permissions: ["+tt.perm+"]\n    principals: ["+tt.prin+"]\n")
		if !e.UsesDynamic() {
			t.Errorf("%s %s: UsesDynamic is false", tt.perm, tt.prin)
		}
		if got := e.Evaluate(in).Allowed; got != tt.want {
			t.Errorf("permission %s, principal %s: %v, want %v", tt.perm, tt.prin, got, tt.want)
		}
		if tt.want {
			empty := conn()
			if e.Evaluate(empty).Allowed && !strings.Contains(tt.perm+tt.prin, "invert") {
				t.Errorf("%s %s matched a connection with no dynamic data", tt.perm, tt.prin)
			}
		}
	}
	if compile(t, "policies: {p: {permissions: [{any: true}], principals: [{source_ip: {address_prefix: 10.0.0.0}}]}}").UsesDynamic() {
		t.Error("a policy on addresses only reports UsesDynamic")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tt := range []struct{ y, want string }{
		{"policies: {p: {permissions: [{any: true}], principals: [{any: true}], condition: {const_expr: {bool_value: true}}}}",
			`rules.policies["p"].condition: CEL expressions are not supported`},
		{"policies: {p: {principals: [{any: true}]}}", `rules.policies["p"].permissions: at least one permission`},
		{"policies: {p: {permissions: [{any: true}]}}", `rules.policies["p"].principals: at least one principal`},
		{"policies: {p: {permissions: [{header: {name: x, present_match: true}}], principals: [{any: true}]}}",
			`rules.policies["p"].permissions[0]: matches HTTP requests and is only available in the HTTP RBAC filter`},
		{"policies: {p: {permissions: [{any: true}], principals: [{url_path: {path: {exact: /}}}]}}", "only available in the HTTP RBAC filter"},
		{"policies: {p: {permissions: [{destination_port_range: {start: 10, end: 10}}], principals: [{any: true}]}}", "destination_port_range"},
		{"policies: {p: {permissions: [{destination_port: 70000}], principals: [{any: true}]}}", "destination_port: 70000"},
		{"policies: {p: {permissions: [{any: true}], principals: [{source_ip: {address_prefix: nope}}]}}", "principals[0].source_ip.address_prefix"},
		{"policies: {p: {permissions: [{and_rules: {rules: []}}], principals: [{any: true}]}}", "and_rules.rules: at least one rule"},
		{"policies: {p: {permissions: [{any: false}], principals: [{any: true}]}}", "any: must be true"},
		{"policies: {p: {permissions: [{sourced_metadata: {metadata_matcher: {filter: f, path: [{key: k}], value: {present_match: true}}, metadata_source: ROUTE}}], principals: [{any: true}]}}", "metadata_source: ROUTE matches HTTP requests"},
		{"policies: {p: {permissions: [{any: true}], principals: [{metadata: {filter: ns, path: [{key: k}]}}]}}", "metadata.value: is required"},
		{"policies: {p: {permissions: [{requested_server_name: {safe_regex: {regex: '('}}}], principals: [{any: true}]}}", "requested_server_name.safe_regex"},
	} {
		_, err := Compile(parse(t, tt.y), "rules", Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s:\n  error %v\n  want  %q", tt.y, err, tt.want)
		}
	}
}

// HTTP rules plug in through Options, evaluated with the request.
func TestOptionsExtendRules(t *testing.T) {
	opts := Options{Permission: func(p *rbacv3.Permission, path string) (Matcher, bool, error) {
		if p.GetHeader() == nil {
			return nil, false, nil
		}
		return requestPresent{}, true, nil
	}}
	e, err := Compile(parse(t, "policies: {p: {permissions: [{header: {name: x, present_match: true}}], principals: [{any: true}]}}"), "rules", opts)
	if err != nil {
		t.Fatal(err)
	}
	in := conn()
	if e.Evaluate(in).Allowed {
		t.Error("matched without a request")
	}
	in.Request = &message.Request{Method: "GET"}
	if !e.Evaluate(in).Allowed {
		t.Error("the extension's matcher was not used")
	}
}

type requestPresent struct{}

func (requestPresent) Match(in *Input) bool { return in.Request != nil }

func TestEvaluateAllocatesNothing(t *testing.T) {
	e := compile(t, `
policies:
  p:
    permissions: [{and_rules: {rules: [{destination_port: 443}, {requested_server_name: {suffix: .example.com}}]}}]
    principals: [{not_id: {source_ip: {address_prefix: 192.0.2.0, prefix_len: 24}}}]
`)
	in := conn()
	if n := testing.AllocsPerRun(100, func() { e.Evaluate(in) }); n != 0 {
		t.Errorf("%v allocations per evaluation", n)
	}
}
