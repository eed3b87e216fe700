package bootstrap

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// xdsCluster is a static cluster for management servers to live on.
const xdsCluster = `
  - name: xds_cluster
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds_cluster
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 18000}}}}]}]
`

// sdsRDSListener is a listener whose certificate, CA and routes all come
// from xDS.
const sdsRDSListener = `
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs: [{name: server_cert, sds_config: {ads: {}}}]
            validation_context_sds_secret_config: {name: ca, sds_config: {path_config_source: {path: /etc/legate/ca.yaml}}}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          rds: {route_config_name: local_route, config_source: {ads: {}, initial_fetch_timeout: 1s}}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
`

func xdsBootstrap(listeners, clusters, rest string) string {
	return "static_resources:\n  listeners:" + listeners + "\n  clusters:" + xdsCluster + clusters + rest
}

const adsGRPC = `
dynamic_resources:
  ads_config: {api_type: GRPC, grpc_services: [{envoy_grpc: {cluster_name: xds_cluster}}]}
`

func TestDynamicResourcesAccepted(t *testing.T) {
	tests := []struct{ name, listeners, clusters, rest string }{
		{"ads sotw", " []", "", `
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{envoy_grpc: {cluster_name: xds_cluster}, timeout: 5s}]
  lds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 0s}
  cds_config: {ads: {}, resource_api_version: V3}
`},
		{"ads delta over google_grpc", " []", "", `
dynamic_resources:
  ads_config:
    api_type: AGGREGATED_DELTA_GRPC
    transport_api_version: V3
    grpc_services: [{google_grpc: {target_uri: "127.0.0.1:18000", stat_prefix: xds}}]
  lds_config: {ads: {}}
  cds_config: {ads: {}}
`},
		{"per-type streams", " []", "", `
dynamic_resources:
  lds_config:
    api_config_source: {api_type: DELTA_GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds_cluster}}]}
  cds_config:
    api_config_source: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds_cluster, authority: cp.example}}]}
`},
		{"files", " []", "", `
dynamic_resources:
  lds_config: {path_config_source: {path: /etc/legate/lds.yaml, watched_directory: {path: /etc/legate}}}
  cds_config: {path: /etc/legate/cds.yaml}
`},
		{"node as Envoy dumps it", " []", "", `
dynamic_resources:
  lds_config: {path: /etc/legate/lds.yaml}
node:
  id: n1
  locality: {region: r1, zone: z1, sub_zone: s1}
  user_agent_name: envoy
  user_agent_build_version: {version: {major_number: 1, minor_number: 31}}
  client_features: [envoy.lb.does_not_support_overprovisioning]
`},
		{"rds, eds and sds", sdsRDSListener, `
  - name: svc
    type: EDS
    eds_cluster_config: {service_name: service1, eds_config: {ads: {}}}
`, adsGRPC},
		{"combined validation context", strings.Replace(sdsRDSListener,
			"validation_context_sds_secret_config: {name: ca, sds_config: {path_config_source: {path: /etc/legate/ca.yaml}}}",
			"combined_validation_context: {default_validation_context: {trusted_ca: {filename: /etc/legate/ca.pem}}, "+
				"validation_context_sds_secret_config: {name: ca, sds_config: {ads: {}}}}", 1), "", adsGRPC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := xdsBootstrap(tt.listeners, tt.clusters, tt.rest)
			if _, err := Load(Options{ConfigYAML: cfg}); err != nil {
				t.Fatalf("%v\nconfig:\n%s", err, cfg)
			}
		})
	}
}

func TestDynamicResourcesRefused(t *testing.T) {
	tests := []struct{ name, rest, want string }{
		{"REST", `
dynamic_resources:
  lds_config: {api_config_source: {api_type: REST, cluster_names: [xds_cluster], refresh_delay: 1s}}`,
			"dynamic_resources.lds_config.api_config_source.api_type: REST is not supported\n" +
				"dynamic_resources.lds_config.api_config_source.cluster_names: field is not supported\n" +
				"dynamic_resources.lds_config.api_config_source.refresh_delay: field is not supported"},
		{"resource locator", `
dynamic_resources:
  lds_resources_locator: xdstp://cp/envoy.config.listener.v3.Listener/*`,
			"dynamic_resources.lds_resources_locator: field is not supported"},
		{"self", `
dynamic_resources:
  cds_config: {self: {}}`,
			"dynamic_resources.cds_config.self: field is not supported"},
		{"v2 transport", `
dynamic_resources:
  ads_config: {api_type: GRPC, transport_api_version: V2, grpc_services: [{envoy_grpc: {cluster_name: xds_cluster}}], rate_limit_settings: {}}`,
			"dynamic_resources.ads_config.transport_api_version: V2 is not supported\n" +
				"dynamic_resources.ads_config.rate_limit_settings: field is not supported"},
		{"file polling", `
dynamic_resources:
  lds_config: {path_config_source: {path: /x, poll_interval: 1s}}`,
			"dynamic_resources.lds_config.path_config_source.poll_interval: field is not supported"},
		{"static secret with an unsupported field", `
  secrets: [{name: s, tls_certificate: {password: {inline_string: x}}}]`,
			"static_resources.secrets[0].tls_certificate.password: field is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(Options{ConfigYAML: xdsBootstrap(" []", "", tt.rest)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
}

// luaListener is an LDS listener whose HCM has a Lua filter; Lua is not
// linked into Legate, so it is built as a raw Any, as it arrives on the wire.
func luaListener(t *testing.T) *listenerv3.Listener {
	t.Helper()
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: "ingress",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: "r", ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "lua",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua", Value: []byte{0x0a, 0x00}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{
		Name:    "l0",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 10000}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
		}}}},
	}
}

func TestCheckXDSResource(t *testing.T) {
	healthy := func(status corev3.HealthStatus) *endpointv3.LbEndpoint {
		return &endpointv3.LbEndpoint{
			HealthStatus: status,
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Hostname: "a",
				Address:  &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}},
			}},
			LoadBalancingWeight: wrapperspb.UInt32(2),
		}
	}
	tests := []struct {
		name string
		msg  proto.Message
		want []string // nil: accepted
	}{
		{"lua in an LDS listener", luaListener(t), []string{
			`listener "l0": filter_chains[0].filters[0].typed_config.http_filters[0]: envoy.extensions.filters.http.lua.v3.Lua is not supported`}},
		{"load assignment", &endpointv3.ClusterLoadAssignment{ClusterName: "svc", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality:    &corev3.Locality{Region: "r", Zone: "z"},
			LbEndpoints: []*endpointv3.LbEndpoint{healthy(corev3.HealthStatus_HEALTHY), healthy(corev3.HealthStatus_DRAINING)},
		}}}, nil},
		{"locality weights and priorities", &endpointv3.ClusterLoadAssignment{ClusterName: "svc", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LoadBalancingWeight: wrapperspb.UInt32(10),
			Priority:            1,
			LbEndpoints:         []*endpointv3.LbEndpoint{healthy(corev3.HealthStatus_DEGRADED)},
		}}, Policy: &endpointv3.ClusterLoadAssignment_Policy{OverprovisioningFactor: wrapperspb.UInt32(140)}}, []string{
			`cluster_load_assignment "svc": endpoints[0].lb_endpoints[0].health_status: DEGRADED is not supported`,
			`cluster_load_assignment "svc": endpoints[0].load_balancing_weight: field is not supported`,
			`cluster_load_assignment "svc": endpoints[0].priority: field is not supported`,
			`cluster_load_assignment "svc": policy: field is not supported`}},
		{"secret", &tlsv3.Secret{Name: "cert", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/c.pem"}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/k.pem"}},
		}}}, nil},
		{"validation context secret", &tlsv3.Secret{Name: "ca", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "pem"}},
		}}}, nil},
		{"session ticket keys", &tlsv3.Secret{Name: "stk", Type: &tlsv3.Secret_SessionTicketKeys{SessionTicketKeys: &tlsv3.TlsSessionTicketKeys{Keys: []*corev3.DataSource{{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: make([]byte, 80)}}}}}}, []string{
			`secret "stk": session_ticket_keys: field is not supported`}},
		{"validation rules apply", &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "vh"}}}, []string{
			`route_configuration "r": virtual_hosts[0].domains: value must contain at least 1 item(s)`}},
		{"not a resource", &corev3.Node{}, []string{"envoy.config.core.v3.Node is not an xDS resource type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckXDSResource(tt.msg)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want %q", tt.want)
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(tt.want, "\n"))
			}
		})
	}
	var fe *FieldError
	if err := CheckXDSResource(luaListener(t)); !errors.As(err, &fe) || fe.Path != "filter_chains[0].filters[0].typed_config.http_filters[0]" {
		t.Errorf("errors.As FieldError: %v, path %v", err, fe)
	}
}

// TestEnvoyDynamicExamples: Envoy's dynamic-config-cp and dynamic-config-fs
// bootstraps load, and the fs example's resource files decode and pass the
// checks an xDS resource goes through.
func TestEnvoyDynamicExamples(t *testing.T) {
	dir := examplesDir(t)
	for _, f := range []string{"dynamic-config-cp/envoy.yaml", "dynamic-config-fs/envoy.yaml"} {
		if _, err := Load(Options{ConfigPath: filepath.Join(dir, f)}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	want := map[string]string{"lds.yaml": `listener "listener_0"`, "cds.yaml": `cluster "example_proxy_cluster"`}
	for file, id := range want {
		data, err := os.ReadFile(filepath.Join(dir, "dynamic-config-fs", "configs", file))
		if err != nil {
			t.Fatal(err)
		}
		_, rs, err := DecodeResources(data, false, file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(rs) != 1 {
			t.Fatalf("%s: %d resources, want 1", file, len(rs))
		}
		kind, name, _ := XDSResourceName(rs[0])
		if got := kind + " " + `"` + name + `"`; got != id {
			t.Errorf("%s: resource %s, want %s", file, got, id)
		}
		if err := CheckXDSResource(rs[0]); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}

func TestDecodeResources(t *testing.T) {
	const lua = `
version_info: "7"
resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: r
  virtual_hosts:
    name: vh
    domains: "*"
    routes: [{match: {prefix: /}, direct_response: {status: 200}}]
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: l0
  address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
  filter_chains:
  - filters:
    - name: hcm
      typed_config:
        "@type": type.googleapis.com/xds.type.v3.TypedStruct
        type_url: type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        value:
          stat_prefix: in
          rds: {route_config_name: r, config_source: {path: /etc/legate/rds.yaml}}
          http_filters:
          - name: lua
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua, default_source_code: {inline_string: x}}
`
	version, rs, err := DecodeResources([]byte(lua), false, "lds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if version != "7" || len(rs) != 2 {
		t.Fatalf("version %q, %d resources", version, len(rs))
	}
	rc, ok := rs[0].(*routev3.RouteConfiguration)
	if !ok || len(rc.GetVirtualHosts()) != 1 || rc.GetVirtualHosts()[0].GetDomains()[0] != "*" {
		t.Errorf("route configuration: single values did not become lists: %v", rs[0])
	}
	if err := CheckXDSResource(rs[0]); err != nil {
		t.Error(err)
	}
	const wantLua = `listener "l0": filter_chains[0].filters[0].typed_config.http_filters[0]: envoy.extensions.filters.http.lua.v3.Lua is not supported`
	if err := CheckXDSResource(rs[1]); err == nil || err.Error() != wantLua {
		t.Errorf("got %v\nwant %s", err, wantLua)
	}

	bad := []struct{ name, doc, want string }{
		{"not a resource type", `resources: [{"@type": type.googleapis.com/envoy.config.core.v3.Node, id: x}]`,
			"f.yaml: resources[0]: envoy.config.core.v3.Node is not an xDS resource type"},
		{"typo", `resources: [{"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c, conect_timeout: 1s}]`,
			`f.yaml: resources[0]: unknown field "conect_timeout" in envoy.config.cluster.v3.Cluster (did you mean "connect_timeout"?)`},
		{"not YAML", "resources: [", "f.yaml: "},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DecodeResources([]byte(tt.doc), false, "f.yaml")
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant it to start with %q", err, tt.want)
			}
		})
	}
}
