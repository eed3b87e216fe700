package rbac

import (
	"net/netip"
	"sort"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// FuzzEngine compiles arbitrary RBAC configs (binary protobuf) and
// evaluates them on a connection built from the other inputs. No panic;
// a refusal names its path below "rules"; the verdict follows the action
// (ALLOW: allowed iff matched, DENY: iff not, LOG: always) with the same
// matched policy whatever the action; evaluation is deterministic; and
// negation is exact: for each policy, its permissions and their not_rule
// never both match, and one of them does exactly when the principals do.
func FuzzEngine(f *testing.F) {
	for _, y := range []string{
		`{action: ALLOW, policies: {p: {permissions: [{destination_port: 443}], principals: [{source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}]}}}`,
		`{action: DENY, policies: {a: {permissions: [{any: true}], principals: [{remote_ip: {address_prefix: "::", prefix_len: 0}}]}, b: {permissions: [{not_rule: {destination_ip: {address_prefix: 127.0.0.1, prefix_len: 32}}}], principals: [{any: true}]}}}`,
		`{action: LOG, policies: {p: {permissions: [{and_rules: {rules: [{destination_port_range: {start: 1, end: 1024}}, {requested_server_name: {suffix: ".example.com"}}]}}], principals: [{or_ids: {ids: [{direct_remote_ip: {address_prefix: 10.1.2.3, prefix_len: 32}}, {not_id: {any: true}}]}}]}}}`,
		`{policies: {p: {permissions: [{requested_server_name: {safe_regex: {regex: "^a.*"}}}], principals: [{authenticated: {principal_name: {exact: x}}}]}}}`,
		`{policies: {p: {permissions: [{destination_ip: {address_prefix: 10.0.0.0, prefix_len: 33}}], principals: [{any: true}]}}}`,
		`{policies: {p: {permissions: [{destination_port_range: {start: 5, end: 5}}], principals: [{any: true}]}}}`,
		`{policies: {p: {permissions: [{metadata: {filter: f, path: [{key: k}], value: {string_match: {exact: v}}}}], principals: [{filter_state: {key: k, string_match: {prefix: a}}}]}}}`,
		`{policies: {p: {permissions: [{not_rule: {}}], principals: [{any: true}]}}}`,
		`{policies: {p: {permissions: [], principals: [{any: true}]}}}`,
		`{action: 7}`,
	} {
		f.Add(yamlRBAC(f, y), []byte{10, 1, 2, 3}, uint16(443), "api.example.com")
	}
	f.Fuzz(func(t *testing.T, cfg []byte, src []byte, port uint16, sni string) {
		var pb rbacv3.RBAC
		if proto.Unmarshal(cfg, &pb) != nil || len(pb.GetPolicies()) > 8 {
			return
		}
		e, err := Compile(&pb, "rules", Options{})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "rules.") {
				t.Fatalf("refusal without its path: %v", err)
			}
			return
		}
		addr, ok := netip.AddrFromSlice(src)
		if !ok {
			addr = netip.IPv4Unspecified()
		}
		in := &Input{
			Source: netip.AddrPortFrom(addr, 5000), Remote: netip.AddrPortFrom(addr, 5000), DirectRemote: netip.AddrPortFrom(addr, 5000),
			Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), RequestedServerName: sni,
		}
		d := e.Evaluate(in)
		if d != e.Evaluate(in) {
			t.Fatalf("evaluation is not deterministic")
		}
		if d.Matched != (d.Policy != "") {
			t.Fatalf("matched %v with policy %q", d.Matched, d.Policy)
		}
		for _, action := range []rbacv3.RBAC_Action{rbacv3.RBAC_ALLOW, rbacv3.RBAC_DENY, rbacv3.RBAC_LOG} {
			pb2 := proto.Clone(&pb).(*rbacv3.RBAC)
			pb2.Action = action
			e2, err := Compile(pb2, "rules", Options{})
			if err != nil {
				t.Fatalf("compiles as %v, not as %v: %v", pb.GetAction(), action, err)
			}
			d2 := e2.Evaluate(in)
			if d2.Matched != d.Matched || d2.Policy != d.Policy {
				t.Fatalf("%v matches %q, %v matches %q", pb.GetAction(), d.Policy, action, d2.Policy)
			}
			want := map[rbacv3.RBAC_Action]bool{rbacv3.RBAC_ALLOW: d.Matched, rbacv3.RBAC_DENY: !d.Matched, rbacv3.RBAC_LOG: true}[action]
			if d2.Allowed != want {
				t.Fatalf("%v: allowed %v with matched %v", action, d2.Allowed, d.Matched)
			}
		}
		names := make([]string, 0, len(pb.GetPolicies()))
		for name := range pb.GetPolicies() {
			names = append(names, name)
		}
		sort.Strings(names)
		first := ""
		for _, name := range names {
			p := pb.GetPolicies()[name]
			one := func(perms []*rbacv3.Permission) bool {
				q := &rbacv3.Policy{Permissions: perms, Principals: p.GetPrincipals()}
				e, err := Compile(&rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{name: q}}, "rules", Options{})
				if err != nil {
					t.Fatalf("policy %q alone does not compile: %v", name, err)
				}
				return e.Evaluate(in).Matched
			}
			pos := one(p.GetPermissions())
			neg := one([]*rbacv3.Permission{{Rule: &rbacv3.Permission_NotRule{NotRule: &rbacv3.Permission{
				Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: p.GetPermissions()}}}}}})
			who := one([]*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}})
			if pos && neg || (pos || neg) != who {
				t.Fatalf("policy %q: permissions %v, negated %v, principals %v", name, pos, neg, who)
			}
			if pos && first == "" {
				first = name
			}
		}
		if first != d.Policy {
			t.Fatalf("engine matched %q, the first matching policy alone is %q", d.Policy, first)
		}
	})
}

func yamlRBAC(f *testing.F, y string) []byte {
	var pb rbacv3.RBAC
	j, err := yaml.YAMLToJSON([]byte(y))
	if err == nil {
		err = protojson.Unmarshal(j, &pb)
	}
	if err != nil {
		f.Fatalf("%s: %v", y, err)
	}
	b, err := proto.Marshal(&pb)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
