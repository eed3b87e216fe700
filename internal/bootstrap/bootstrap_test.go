package bootstrap

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

var update = flag.Bool("update", false, "rewrite golden files and docs/compatibility.md")

// outcome renders Load's result as golden text: "OK" or one problem per line.
func outcome(err error) string {
	if err == nil {
		return "OK\n"
	}
	return err.Error() + "\n"
}

func checkGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test -update if the change is intended)\n--- got\n%s--- want\n%s", golden, got, want)
	}
}

// TestGolden loads every testdata config and pins its exact error text. A
// file x.overlay next to x.yaml is passed as --config-yaml.
func TestGolden(t *testing.T) {
	var files []string
	for _, pat := range []string{"testdata/*.yaml", "testdata/*.json"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			opts := Options{ConfigPath: f}
			base := strings.TrimSuffix(f, filepath.Ext(f))
			if overlay, err := os.ReadFile(base + ".overlay"); err == nil {
				opts.ConfigYAML = string(overlay)
			}
			_, err := Load(opts)
			checkGolden(t, base+".golden", outcome(err))
		})
	}
}

// TestGoldenExpectations keeps the golden files honest about what they are
// meant to show, so an -update cannot silently bless a regression.
func TestGoldenExpectations(t *testing.T) {
	tests := []struct {
		file string
		want []string // substrings of the error; nil means the file must load
	}{
		{"lua.yaml", []string{"static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0]: envoy.extensions.filters.http.lua.v3.Lua is not supported"}},
		{"typo.yaml", []string{`static_resources.clusters[0]: unknown field "conect_timeout" in envoy.config.cluster.v3.Cluster (did you mean "connect_timeout"?)`, `"lbPolicyy"`, `"timout"`, `"port_valu"`}},
		{"cluster_health_checks.yaml", []string{"static_resources.clusters[1].health_checks: field is not supported", "static_resources.clusters[1].circuit_breakers: field is not supported"}},
		{"invalid_value.yaml", []string{"static_resources.listeners[0].address.socket_address.port_value: value must be less than or equal to 65535", "static_resources.clusters[0].connect_timeout: value must be greater than 0s", "typed_config.stat_prefix: value length must be at least 1 runes"}},
		{"typed_struct.yaml", nil},
		{"unresolvable_type.yaml", []string{"static_resources.listeners[0].filter_chains[0].filters[0]: com.example.filters.Mystery is not supported", "filter_chains[1].filters[0]: com.example.filters.Wrapped is not supported", `filter_chains[1].filters[1].typed_config: unknown field "stat_prefx"`}},
		{"config.json", []string{"static_resources.clusters[0].lb_policy: CLUSTER_PROVIDED is not supported"}},
		{"merge.yaml", []string{"static_resources.clusters[1].outlier_detection: field is not supported"}},
		{"restricted_values.yaml", []string{"protocol: UDP is not supported", "codec_type: HTTP3 is not supported", `retry_on: "retriable-headers" is not supported`, "filter_chains[0].transport_socket: envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext is not supported here; expected envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", "lb_policy: CLUSTER_PROVIDED is not supported", `typed_extension_protocol_options["envoy.upstreams.http.http_protocol_options"]: key`}},
		{"type_mismatch.yaml", []string{"node.id: expected a string", "port_value: expected a number", "use_remote_address: expected true or false", `lb_policy: unknown value "ROUNDROBIN"`, "only one of"}},
		{"deprecated_fields.yaml", nil},
		{"typed_struct_typo.yaml", []string{`typed_config: unknown field "stat_prefix" in udpa.type.v1.TypedStruct`, `unknown field "valeu" in xds.type.v3.TypedStruct (did you mean "value"?)`}},
		{"protocol_options.yaml", []string{`["envoy.filters.network.redis_proxy"]: envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions is not supported`, "it names envoy.extensions.filters.network.thrift_proxy.v3.ThriftProtocolOptions", `["http"]: key "http" is not supported; envoy.extensions.upstreams.http.v3.HttpProtocolOptions goes under the key`}},
		{"everything.yaml", nil},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f := filepath.Join("testdata", tc.file)
			opts := Options{ConfigPath: f}
			if overlay, err := os.ReadFile(strings.TrimSuffix(f, filepath.Ext(f)) + ".overlay"); err == nil {
				opts.ConfigYAML = string(overlay)
			}
			_, err := Load(opts)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want OK, got:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error, got OK")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

func TestMerge(t *testing.T) {
	bs, err := Load(Options{
		ConfigPath: "testdata/merge.yaml",
		ConfigYAML: "static_resources: {clusters: [{name: two, type: STRICT_DNS}]}\nadmin: {address: {socket_address: {port_value: 9902}}}",
	})
	if err != nil {
		t.Fatal(err)
	}
	cs := bs.GetStaticResources().GetClusters()
	if len(cs) != 2 || cs[0].GetName() != "one" || cs[1].GetName() != "two" {
		t.Fatalf("repeated fields must append; clusters = %v", cs)
	}
	if cs[0].GetConnectTimeout().AsDuration().Seconds() != 1 || cs[1].GetType() != clusterv3.Cluster_STRICT_DNS {
		t.Errorf("cluster fields lost in merge: %v", cs)
	}
	sa := bs.GetAdmin().GetAddress().GetSocketAddress()
	if sa.GetPortValue() != 9902 || sa.GetAddress() != "127.0.0.1" {
		t.Errorf("scalars must overwrite and unset ones be kept; admin = %v", sa)
	}

	// --config-yaml alone is a whole configuration.
	bs, err = Load(Options{ConfigYAML: "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}"})
	if err != nil || bs.GetAdmin().GetAddress().GetSocketAddress().GetPortValue() != 1 {
		t.Fatalf("config-yaml only: %v, %v", bs, err)
	}
	// Errors in --config-yaml name it as their source.
	_, err = Load(Options{ConfigPath: "testdata/merge.yaml", ConfigYAML: "admin: {adress: {}}"})
	if err == nil || !strings.Contains(err.Error(), `--config-yaml: admin: unknown field "adress"`) {
		t.Errorf("config-yaml error = %v", err)
	}
}

func TestLoadSourceErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"nothing", Options{}, "no configuration"},
		{"missing file", Options{ConfigPath: "testdata/does-not-exist.yaml"}, "read config: open testdata/does-not-exist.yaml"},
		{"bad yaml", Options{ConfigYAML: "a: [1"}, "--config-yaml: yaml: "},
		{"not an object", Options{ConfigYAML: "[1, 2]"}, "expected an object for envoy.config.bootstrap.v3.Bootstrap, got a list"},
		{"duplicate key", Options{ConfigYAML: "admin: {}\nadmin: {}"}, `--config-yaml: yaml: unmarshal errors:` + "\n" + `  line 2: key "admin" already set in map`},
		{"trailing JSON", Options{ConfigPath: "testdata/trailing.json"}, "testdata/trailing.json: invalid JSON: data after the top-level value"},
		{"duplicate JSON key", Options{ConfigPath: "testdata/duplicate_key.json"}, "testdata/duplicate_key.json: static_resources.clusters[0].name: key already set in this object"},
		{"out of range", Options{ConfigYAML: "admin: {address: {socket_address: {port_value: 99999999999}}}"}, "--config-yaml: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want it to contain %q", err, tc.want)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Errorf("error is %T, want a non-empty Errors", err)
			}
		})
	}
}

func TestErrorsAreFieldErrors(t *testing.T) {
	_, err := Load(Options{ConfigPath: "testdata/cluster_health_checks.yaml"})
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %T", err)
	}
	if len(es) != 2 {
		t.Fatalf("want 2 problems, got %d:\n%v", len(es), err)
	}
	var fe *FieldError
	if !errors.As(es[0], &fe) || fe.Path != "static_resources.clusters[1].health_checks" || fe.Msg != "field is not supported" {
		t.Errorf("first problem = %#v", es[0])
	}
}

func TestLoadKeepsTypedStructContent(t *testing.T) {
	bs, err := Load(Options{ConfigPath: "testdata/typed_struct.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	tc := bs.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig()
	var hcm hcmv3.HttpConnectionManager
	if err := tc.UnmarshalTo(&hcm); err != nil {
		t.Fatalf("HCM not unwrapped: %v (type %s)", err, tc.GetTypeUrl())
	}
	var router routerv3.Router
	if err := hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&router); err != nil {
		t.Fatalf("router not unwrapped: %v", err)
	}
	if hcm.GetStatPrefix() != "ingress_http" || !router.GetSuppressEnvoyHeaders() {
		t.Errorf("content lost: %v / %v", &hcm, &router)
	}
}

// TestCheckResource uses the support check on a resource built in Go, as xDS will.
func TestCheckResource(t *testing.T) {
	router, err := anypb.New(&routerv3.Router{SuppressEnvoyHeaders: true})
	if err != nil {
		t.Fatal(err)
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:  "x",
		HttpFilters: []*hcmv3.HttpFilter{{Name: "r", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	}
	if errs := CheckResource(hcm, ""); len(errs) != 0 {
		t.Fatalf("supported HCM rejected: %v", errs)
	}
	hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{Name: "bad", ConfigType: &hcmv3.HttpFilter_TypedConfig{
		TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}}})
	hcm.AccessLog = nil
	hcm.Via = "legate" // an HCM field Legate does not support
	errs := CheckResource(hcm, "listener[x]")
	got := Errors(errs).Error()
	want := "listener[x].http_filters[1]: envoy.extensions.filters.http.cors.v3.Cors is not supported\nlistener[x].via: field is not supported"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	c := &clusterv3.Cluster{Name: "c", ConnectTimeout: durationpb.New(0), LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED}
	if got := Errors(CheckResource(c, "")).Error(); got != "lb_policy: CLUSTER_PROVIDED is not supported" {
		t.Errorf("cluster: %s", got)
	}
	if got := Errors(Check(c, "")).Error(); !strings.Contains(got, "connect_timeout: value must be greater than 0s") {
		t.Errorf("Check must validate too: %s", got)
	}
}

func TestGoCamelCase(t *testing.T) {
	for in, want := range map[string]string{
		"static_resources":             "StaticResources",
		"http2_protocol_options":       "Http2ProtocolOptions",
		"ipv4_compat":                  "Ipv4Compat",
		"max_request_headers_kb":       "MaxRequestHeadersKb",
		"tls_minimum_protocol_version": "TlsMinimumProtocolVersion",
		"_x":                           "XX",
		"name":                         "Name",
	} {
		if got := goCamelCase(in); got != want {
			t.Errorf("goCamelCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCompileAllowlistRejectsMistakes(t *testing.T) {
	bad := []area{
		{Messages: []message{{"envoy.config.cluster.v3.Nope", nil}}},
		{Messages: []message{{"envoy.config.cluster.v3.Cluster", fs("nmae")}}},
		{Messages: []message{{"envoy.config.cluster.v3.Cluster", fs(field{Name: "type", Enum: []string{"EDSS"}})}}},
		{Messages: []message{{"envoy.config.cluster.v3.Cluster", fs(field{Name: "name", Enum: []string{"X"}})}}},
		{Messages: []message{{"envoy.config.cluster.v3.Cluster", fs(field{Name: "transport_socket", Types: []string{"com.example.Nope"}})}}},
		{Messages: []message{{"envoy.config.cluster.v3.Cluster", fs(field{Name: "name", Keys: []string{"x"}})}}},
	}
	for i, a := range bad {
		if _, _, err := compileAllowlist([]area{a}); err == nil {
			t.Errorf("case %d: want an error", i)
		}
	}
}

// A typical bootstrap loads in well under a millisecond; keep it that way.
func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, err := Load(Options{ConfigPath: "testdata/everything.yaml"}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEnumCase: Envoy parses enum names in any letter case (upper-casing a
// name it does not know), in YAML and JSON bootstraps and in xDS files.
func TestEnumCase(t *testing.T) {
	const hcm = `{"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
	  "stat_prefix": "in", "codec_type": "auto",
	  "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "b"}}]}]},
	  "http_filters": [{"name": "router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}`
	const cluster = `{"name": "b", "type": "strict_dns", "lb_policy": "Round_Robin", "dns_lookup_family": "v4_only",
	  "load_assignment": {"cluster_name": "b", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "localhost", "port_value": 1}}}}]}]}}`
	const listener = `{"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 1, "protocol": "tcp"}},
	  "filter_chains": [{"filters": [{"name": "hcm", "typed_config": ` + hcm + `}]}]}`
	check := func(t *testing.T, c *clusterv3.Cluster, l *listenerv3.Listener) {
		t.Helper()
		if c.GetType() != clusterv3.Cluster_STRICT_DNS || c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN || c.GetDnsLookupFamily() != clusterv3.Cluster_V4_ONLY {
			t.Errorf("cluster enums: %v %v %v", c.GetType(), c.GetLbPolicy(), c.GetDnsLookupFamily())
		}
		var m hcmv3.HttpConnectionManager
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&m); err != nil {
			t.Fatal(err)
		}
		if m.GetCodecType() != hcmv3.HttpConnectionManager_AUTO {
			t.Errorf("codec_type = %v", m.GetCodecType())
		}
	}
	dir := t.TempDir()
	for _, tc := range []struct{ name, text string }{
		{"bootstrap.json", `{"static_resources": {"listeners": [` + listener + `], "clusters": [` + cluster + `]}}`},
		{"bootstrap.yaml", "static_resources:\n  listeners: [" + listener + "]\n  clusters: [" + cluster + "]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, tc.name)
			if err := os.WriteFile(f, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			bs, err := Load(Options{ConfigPath: f})
			if err != nil {
				t.Fatal(err)
			}
			check(t, bs.GetStaticResources().GetClusters()[0], bs.GetStaticResources().GetListeners()[0])
		})
	}
	t.Run("xds file", func(t *testing.T) {
		// A resource is its JSON object with "@type" added.
		res := `{"resources": [{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", ` + listener[1:] +
			`, {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", ` + cluster[1:] + `]}`
		_, rs, err := DecodeResources([]byte(res), true, "lds.json")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if err := CheckXDSResource(r); err != nil {
				t.Error(err)
			}
		}
		check(t, rs[1].(*clusterv3.Cluster), rs[0].(*listenerv3.Listener))
	})
	t.Run("unknown name", func(t *testing.T) {
		_, err := Load(Options{ConfigYAML: "static_resources: {clusters: [{name: b, type: strict_dnss}]}"})
		if err == nil || !strings.Contains(err.Error(), `static_resources.clusters[0].type: unknown value "strict_dnss"`) {
			t.Errorf("got %v", err)
		}
	})
}

func TestFlatten(t *testing.T) {
	in := errors.Join(
		errors.New(`static_resources.listeners[0]: filter_chains[0].filters[0].typed_config: route_config: virtual_hosts[0].routes[0].route.cluster: unknown cluster "nope"`),
		errors.New(`static_resources.clusters[1]: load_assignment: endpoints[0]: x: "a b" is not an IP address`),
		errors.New("static_resources.clusters[0].transport_socket: tls: failed to find any PEM data"),
		errors.New(`static_resources.clusters[2].typed_extension_protocol_options["a.b]"]: bad`),
		errors.New(`listener "l": filter_chains[0]: bad: thing`),
		errors.New("no configuration: set -c"),
	)
	want := []string{
		`static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster "nope"`,
		`static_resources.clusters[1].load_assignment.endpoints[0].x: "a b" is not an IP address`,
		"static_resources.clusters[0].transport_socket: tls: failed to find any PEM data",
		`static_resources.clusters[2].typed_extension_protocol_options["a.b]"]: bad`,
		`listener "l": filter_chains[0].bad: thing`,
		"no configuration: set -c",
	}
	got := Flatten(in)
	if len(got) != len(want) {
		t.Fatalf("got %d lines: %v", len(got), got)
	}
	for i := range want {
		if got[i].Error() != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	var fe *FieldError
	if !errors.As(got[0], &fe) || fe.Path != "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster" {
		t.Errorf("FieldError = %+v", fe)
	}
	if Flatten(nil) != nil {
		t.Error("Flatten(nil) != nil")
	}
}

// TestCheckFileSources: every filesystem xDS source is read and its
// resources held to the checks of xDS, the files they name in turn too.
func TestCheckFileSources(t *testing.T) {
	bs, err := Load(Options{ConfigPath: "testdata/filesources/bootstrap.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range CheckFileSources(bs) {
		b.WriteString(e.Error() + "\n")
	}
	checkGolden(t, "testdata/filesources/problems.golden", b.String())
	for _, want := range []string{
		`testdata/filesources/cds.yaml: resources[0]: unknown field "conect_timeout"`,
		`testdata/filesources/cds.yaml: cluster "unsupported": lb_policy: CLUSTER_PROVIDED is not supported`,
		`testdata/filesources/rds.yaml: route_configuration "local_route": virtual_hosts[0].routes[1]`,
		"testdata/filesources/eds.yaml: resources[0]: envoy.config.cluster.v3.Cluster where static_resources.clusters[0].eds_cluster_config.eds_config.path_config_source.path expects envoy.config.endpoint.v3.ClusterLoadAssignment",
		"static_resources.clusters[1].eds_cluster_config.eds_config.path_config_source.path: cannot read testdata/filesources/absent.yaml: no such file or directory",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q", want)
		}
	}
}
