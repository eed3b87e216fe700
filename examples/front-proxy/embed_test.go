package frontproxy

import (
	"bytes"
	"crypto/tls"
	"os"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/bootstrap"

	// Register the typed_config types the configs use so protojson resolves them.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/network/dns_resolver/cares/v3"
)

// TestConfigsAreEnvoyV3 checks both configs parse strictly (unknown fields
// are errors) as Envoy v3 bootstraps and pass the protos' validation rules.
// Legate's own support check is exercised by the integration tests.
func TestConfigsAreEnvoyV3(t *testing.T) {
	for name, src := range map[string][]byte{"legate-demo.yaml": DemoConfig, "legate.yaml": Config} {
		t.Run(name, func(t *testing.T) {
			js, err := yaml.YAMLToJSON(src)
			if err != nil {
				t.Fatal(err)
			}
			var b bootstrapv3.Bootstrap
			if err := protojson.Unmarshal(js, &b); err != nil {
				t.Fatal(err)
			}
			if err := b.ValidateAll(); err != nil {
				t.Fatal(err)
			}
			if got := len(b.GetStaticResources().GetListeners()); got != 2 {
				t.Errorf("%d listeners, want 2", got)
			}
			clusters := map[string]bool{}
			for _, c := range b.GetStaticResources().GetClusters() {
				clusters[c.GetName()] = true
				if c.GetName() == "zipkin" {
					continue // the demo's trace collector, checked below
				}
				if c.GetType().String() != "STRICT_DNS" || c.GetLbPolicy().String() != "ROUND_ROBIN" {
					t.Errorf("cluster %s: type %v lb %v", c.GetName(), c.GetType(), c.GetLbPolicy())
				}
				hasResolver := c.GetTypedDnsResolverConfig() != nil
				if wantResolver := name == "legate-demo.yaml"; hasResolver != wantResolver {
					t.Errorf("cluster %s: typed_dns_resolver_config present=%v, want %v", c.GetName(), hasResolver, wantResolver)
				}
			}
			if !clusters["service1"] || !clusters["service2"] {
				t.Errorf("clusters %v, want service1 and service2", clusters)
			}
			if a := b.GetAdmin().GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 9901 {
				t.Errorf("admin address %v", a)
			}

			// The inline certificate pair must load and be the one in certs/.
			var dtc tlsv3.DownstreamTlsContext
			ts := b.GetStaticResources().GetListeners()[1].GetFilterChains()[0].GetTransportSocket()
			if err := ts.GetTypedConfig().UnmarshalTo(&dtc); err != nil {
				t.Fatal(err)
			}
			pair := dtc.GetCommonTlsContext().GetTlsCertificates()[0]
			certPEM := []byte(pair.GetCertificateChain().GetInlineString())
			keyPEM := []byte(pair.GetPrivateKey().GetInlineString())
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				t.Fatal(err)
			}
			fileCert, err := os.ReadFile("certs/front-proxy.crt")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bytes.TrimSpace(fileCert), bytes.TrimSpace(certPEM)) {
				t.Error("inline certificate differs from certs/front-proxy.crt")
			}
		})
	}
}

// TestConfigsPassLegateSupportCheck loads both configs the way
// `legate --mode validate` does, so they use only what Legate implements.
func TestConfigsPassLegateSupportCheck(t *testing.T) {
	for name, src := range map[string][]byte{"legate-demo.yaml": DemoConfig, "legate.yaml": Config} {
		if _, err := bootstrap.Load(bootstrap.Options{ConfigYAML: string(src)}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDemoConfigObservability checks what `make demo` relies on to show
// traces and access logs: both connection managers report to the zipkin
// cluster (the collector legate-demo runs) and log to stdout, and every
// route's span is named after its service.
func TestDemoConfigObservability(t *testing.T) {
	js, err := yaml.YAMLToJSON(DemoConfig)
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatal(err)
	}
	// Zipkin spans carry node.cluster as their service name.
	if b.GetNode().GetCluster() == "" {
		t.Error("node.cluster is empty")
	}
	var zipkin *clusterv3.Cluster
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == "zipkin" {
			zipkin = c
		}
	}
	if zipkin == nil {
		t.Fatal("no zipkin cluster")
	}
	sa := zipkin.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if zipkin.GetType() != clusterv3.Cluster_STATIC || sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 9411 {
		t.Errorf("zipkin cluster: type %v address %v", zipkin.GetType(), sa)
	}

	for _, l := range b.GetStaticResources().GetListeners() {
		var hcm hcmv3.HttpConnectionManager
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
			t.Fatalf("listener %s: %v", l.GetName(), err)
		}
		var zc tracev3.ZipkinConfig
		if err := hcm.GetTracing().GetProvider().GetTypedConfig().UnmarshalTo(&zc); err != nil {
			t.Errorf("listener %s: tracing provider: %v", l.GetName(), err)
		} else if zc.GetCollectorCluster() != "zipkin" || zc.GetCollectorEndpoint() != "/api/v2/spans" ||
			zc.GetCollectorEndpointVersion() != tracev3.ZipkinConfig_HTTP_JSON {
			t.Errorf("listener %s: zipkin config %v", l.GetName(), &zc)
		}
		if als := hcm.GetAccessLog(); len(als) != 1 || !als[0].GetTypedConfig().MessageIs(&streamv3.StdoutAccessLog{}) {
			t.Errorf("listener %s: access_log %v, want one stdout logger", l.GetName(), als)
		}
		for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if got, want := r.GetDecorator().GetOperation(), r.GetRoute().GetCluster(); got != want {
					t.Errorf("listener %s: route %s: decorator operation %q, want %q", l.GetName(), r.GetMatch().GetPrefix(), got, want)
				}
			}
		}
	}
}
