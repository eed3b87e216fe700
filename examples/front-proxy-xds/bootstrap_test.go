// Package frontproxyxds holds the docker-compose deployment of the case
// study with service discovery; its test keeps the front proxy's bootstrap
// loadable by Legate and in step with the compose file.
package frontproxyxds

import (
	"os"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/bootstrap"
)

// TestBootstrapLoads loads legate-xds.yaml as `legate -c` would: parsed,
// validated and support-checked. It must take LDS and CDS over ADS from
// control-plane:18000 over HTTP/2, as node front-proxy.
func TestBootstrapLoads(t *testing.T) {
	bs, err := bootstrap.Load(bootstrap.Options{ConfigPath: "legate-xds.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if id := bs.GetNode().GetId(); id != "front-proxy" {
		t.Errorf("node.id %q, want front-proxy", id)
	}
	dyn := bs.GetDynamicResources()
	ads := dyn.GetAdsConfig()
	if ads.GetApiType() != corev3.ApiConfigSource_GRPC || len(ads.GetGrpcServices()) != 1 ||
		ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != "xds_cluster" {
		t.Errorf("ads_config %v: want GRPC through xds_cluster", ads)
	}
	if dyn.GetCdsConfig().GetAds() == nil || dyn.GetLdsConfig().GetAds() == nil {
		t.Error("cds_config and lds_config must come over ADS")
	}
	if n := len(bs.GetStaticResources().GetListeners()); n != 0 {
		t.Errorf("%d static listeners: the listener comes from legate-cp", n)
	}
	clusters := bs.GetStaticResources().GetClusters()
	if len(clusters) != 1 || clusters[0].GetName() != "xds_cluster" {
		t.Fatalf("static clusters %v, want only xds_cluster", clusters)
	}
	c := clusters[0]
	if c.GetType().String() != "STRICT_DNS" {
		t.Errorf("xds_cluster type %v, want STRICT_DNS", c.GetType())
	}
	sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "control-plane" || sa.GetPortValue() != 18000 {
		t.Errorf("xds_cluster endpoint %s:%d, want control-plane:18000", sa.GetAddress(), sa.GetPortValue())
	}
	var hpo httpv3.HttpProtocolOptions
	opts := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if err := opts.UnmarshalTo(&hpo); err != nil || hpo.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Errorf("xds_cluster must speak HTTP/2 (gRPC): %v %v", err, &hpo)
	}
	if a := bs.GetAdmin().GetAddress().GetSocketAddress(); a.GetPortValue() != 9901 {
		t.Errorf("admin port %d, want 9901 (docker-compose.yml publishes it)", a.GetPortValue())
	}
}

// TestComposeMatchesBootstrap checks what docker-compose.yml assumes of the
// images and of legate-xds.yaml.
func TestComposeMatchesBootstrap(t *testing.T) {
	src, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image       string            `json:"image"`
			Command     []string          `json:"command"`
			Ports       []string          `json:"ports"`
			Environment map[string]string `json:"environment"`
		} `json:"services"`
	}
	// Not strict: compose has fields this test does not look at.
	if err := yaml.Unmarshal(src, &f); err != nil {
		t.Fatal(err)
	}
	cp, ok := f.Services["control-plane"]
	if !ok || !strings.HasPrefix(cp.Image, "legate-cp:") {
		t.Fatalf("control-plane service %+v: want the legate-cp image", cp)
	}
	// The proxy's published 8080 is the embedded default's listener port.
	if i := slices.Index(cp.Command, "--listen-port"); i < 0 || i+1 >= len(cp.Command) || cp.Command[i+1] != "8080" {
		t.Errorf("control-plane command %q: want --listen-port 8080", cp.Command)
	}
	fp := f.Services["front-proxy"]
	if !slices.ContainsFunc(fp.Ports, func(p string) bool { return strings.HasSuffix(p, ":8080") }) ||
		!slices.ContainsFunc(fp.Ports, func(p string) bool { return strings.HasSuffix(p, ":9901") }) {
		t.Errorf("front-proxy ports %q: want 8080 and 9901 published", fp.Ports)
	}
	for _, id := range []string{"1", "2"} {
		name := "service" + id
		s := f.Services[name]
		if s.Environment["SERVICE_ID"] != id {
			t.Errorf("%s: SERVICE_ID %q", name, s.Environment["SERVICE_ID"])
		}
		want := []string{"--register", "http://control-plane:18001", "--service", name, "--ttl", "5s"}
		if !slices.Equal(s.Command, want) {
			t.Errorf("%s command %q, want %q", name, s.Command, want)
		}
		// No --advertise: each replica registers its own container address.
		if len(s.Ports) != 0 {
			t.Errorf("%s publishes ports %q: replicas must scale", name, s.Ports)
		}
	}
}
