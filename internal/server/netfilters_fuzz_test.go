package server

import (
	"regexp"
	"testing"

	clv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/connection_limit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	sniv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/sni_cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/bootstrap"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/stats"
)

// The non-terminal network filters FuzzNetworkFilterConfig builds.
var netFilterTypes = []proto.Message{&rbacnetv3.RBAC{}, &clv3.ConnectionLimit{}, &lrlv3.LocalRateLimit{}, &sniv3.SniCluster{}}

// fieldPathError is "<field path>: <what is wrong>", the form every
// configuration error takes.
var fieldPathError = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\[[^\]]*\])?(\.[a-z_][a-z0-9_]*(\[[^\]]*\])?)*: .`)

// FuzzNetworkFilterConfig decodes arbitrary bytes as the typed_config of
// each non-terminal network filter and, when the config passes the checks
// a listener's config goes through first (validation and the support
// check), builds the filter from it: that never panics, and a refusal
// names the offending field.
func FuzzNetworkFilterConfig(f *testing.F) {
	for i, y := range []string{
		`{stat_prefix: r, rules: {action: DENY, policies: {p: {permissions: [{destination_port: 22}], principals: [{any: true}]}}}, shadow_rules: {policies: {s: {permissions: [{any: true}], principals: [{not_id: {any: true}}]}}}, enforcement_type: CONTINUOUS}`,
		`{stat_prefix: c, max_connections: 10, delay: 1s}`,
		`{stat_prefix: l, token_bucket: {max_tokens: 1, tokens_per_fill: 1, fill_interval: 0.05s}, share_key: k}`,
		`{}`,
	} {
		var j []byte
		j, err := yaml.YAMLToJSON([]byte(y))
		m := netFilterTypes[i].ProtoReflect().New().Interface()
		if err == nil {
			err = protojson.Unmarshal(j, m)
		}
		if err != nil {
			f.Fatalf("%s: %v", y, err)
		}
		b, _ := proto.Marshal(m)
		f.Add(uint8(i), b)
	}
	f.Add(uint8(0), []byte(nil))
	f.Add(uint8(1), []byte{0x10, 0x00})
	rt, err := runtime.New(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which uint8, cfg []byte) {
		typ := netFilterTypes[int(which)%len(netFilterTypes)]
		m := typ.ProtoReflect().New().Interface()
		if proto.Unmarshal(cfg, m) != nil {
			return
		}
		if len(bootstrap.Check(m, "")) > 0 {
			return
		}
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		factory, msg, err := networkfilter.Registry.Lookup(a)
		if err != nil {
			t.Fatalf("a registered type does not look up: %v", err)
		}
		flt, err := factory(msg, &networkfilter.FactoryContext{Stats: stats.NewStore(), Runtime: rt})
		if err != nil {
			if !fieldPathError.MatchString(err.Error()) {
				t.Fatalf("refusal does not name a field: %q", err)
			}
			return
		}
		if flt == nil {
			t.Fatalf("no filter and no error")
		}
	})
}
