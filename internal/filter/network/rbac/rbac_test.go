package rbac

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
)

func build(t *testing.T, y string) (*Config, *stats.Store) {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var pb rbacnetv3.RBAC
	if err := protojson.Unmarshal(j, &pb); err != nil {
		t.Fatal(err)
	}
	st := stats.NewStore()
	f, err := Build(&pb, &networkfilter.FactoryContext{Stats: st})
	if err != nil {
		t.Fatal(err)
	}
	return f, st
}

// newConn is a connection from remote to 127.0.0.1:443 on one end of a pipe.
func newConn(t *testing.T, remote string) *networkfilter.Conn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &networkfilter.Conn{Conn: a, RemoteAddr: netip.MustParseAddrPort(remote), LocalAddr: netip.MustParseAddrPort("127.0.0.1:443")}
}

const internalOnly = `
stat_prefix: tcp.
rules:
  policies:
    internal:
      permissions: [{any: true}]
      principals: [{remote_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}]
`

func TestDecidesAtStart(t *testing.T) {
	f, st := build(t, internalOnly)
	if f.Hooks() != 0 || !f.atStart {
		t.Fatal("a policy on addresses only must decide at connection start, without data callbacks")
	}
	if got := f.NewConn(nil).OnNewConnection(newConn(t, "10.1.1.1:1")); got != networkfilter.Continue {
		t.Error("internal client denied")
	}
	c := newConn(t, "192.0.2.1:1")
	if got := f.NewConn(c).OnNewConnection(c); got != networkfilter.StopIteration {
		t.Error("outside client allowed")
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("a denied connection is still open")
	}
	counters := map[string]uint64{}
	for _, ctr := range st.Counters() {
		counters[ctr.Name()] = ctr.Value()
	}
	if counters["tcp.rbac.allowed"] != 1 || counters["tcp.rbac.denied"] != 1 {
		t.Errorf("stats %v", counters)
	}
}

func TestShadowRulesOnlyCountAndRecord(t *testing.T) {
	f, st := build(t, `
stat_prefix: net
shadow_rules_stat_prefix: trial_
shadow_rules:
  action: DENY
  policies:
    block-docs:
      permissions: [{destination_port: 443}]
      principals: [{any: true}]
`)
	c := newConn(t, "192.0.2.1:1")
	if got := f.NewConn(c).OnNewConnection(c); got != networkfilter.Continue {
		t.Fatal("shadow rules denied a connection")
	}
	md := c.Dynamic.Metadata("envoy.filters.network.rbac").GetFields()
	if md["trial_shadow_engine_result"].GetStringValue() != "denied" || md["trial_shadow_effective_policy_id"].GetStringValue() != "block-docs" {
		t.Errorf("metadata %v", md)
	}
	if v := st.Counter("net.rbac.trial_.shadow_denied").Value(); v != 1 {
		t.Errorf("net.rbac.trial_.shadow_denied = %d", v)
	}
	if st.Counter("net.rbac.allowed").Value() != 0 {
		t.Error("no rules, yet allowed was counted")
	}
}

func TestDynamicPoliciesDecideOnData(t *testing.T) {
	f, _ := build(t, `
stat_prefix: p
rules:
  action: ALLOW
  policies:
    tagged:
      permissions: [{any: true}]
      principals: [{filter_state: {key: tag, string_match: {exact: ok}}}]
`)
	if f.Hooks()&networkfilter.HookData == 0 || f.atStart {
		t.Fatal("a policy on filter state must decide on data")
	}
	c := newConn(t, "10.0.0.1:1")
	in := f.NewConn(c)
	if in == networkfilter.Instance(f) {
		t.Fatal("one-time decisions need per-connection state")
	}
	if in.OnNewConnection(c) != networkfilter.Continue {
		t.Fatal("decided at start")
	}
	if in.OnData(c, &networkfilter.Buffer{}, false) != networkfilter.StopIteration {
		t.Error("allowed without the filter state")
	}
	f2, _ := build(t, strings.Replace(`
stat_prefix: p
enforcement_type: CONTINUOUS
rules: {policies: {tagged: {permissions: [{any: true}], principals: [{metadata: {filter: f, path: [{key: k}], value: {present_match: true}}}]}}}
`, "\t", "", -1))
	c2 := newConn(t, "10.0.0.1:1")
	if f2.NewConn(c2) != networkfilter.Instance(f2) {
		t.Error("CONTINUOUS keeps no per-connection state")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct{ y, want string }{
		{"rules: {}", "stat_prefix: must not be empty"},
		{"stat_prefix: p\ndelay_deny: 1s", "delay_deny"},
		{"stat_prefix: p\nmatcher: {}", "matcher"},
		{"stat_prefix: p\nrules: {policies: {x: {permissions: [{header: {name: a}}], principals: [{any: true}]}}}", `rules.policies["x"].permissions[0]: matches HTTP requests`},
	} {
		j, _ := yaml.YAMLToJSON([]byte(tt.y))
		var pb rbacnetv3.RBAC
		if err := protojson.Unmarshal(j, &pb); err != nil {
			t.Fatal(err)
		}
		if _, err := Build(&pb, &networkfilter.FactoryContext{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.y, err, tt.want)
		}
	}
}
