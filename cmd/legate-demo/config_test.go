package main

import (
	"bytes"
	"strings"
	"testing"

	frontproxy "github.com/legate-proxy/legate/examples/front-proxy"
)

func TestPrepareConfigEmbedded(t *testing.T) {
	dc, err := prepareConfig(frontproxy.DemoConfig, ports{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dc.YAML, frontproxy.DemoConfig) {
		t.Error("config without overrides was rewritten")
	}
	want := endpoints{HTTPAddr: "127.0.0.1:8080", HTTPSAddr: "127.0.0.1:8443", AdminAddr: "127.0.0.1:9901", DNSPort: 15353, Service: 8080}
	if dc.endpoints != want {
		t.Errorf("got %+v, want %+v", dc.endpoints, want)
	}
}

func TestPrepareConfigOverrides(t *testing.T) {
	over := ports{HTTP: 18080, HTTPS: 18443, Admin: 19901, DNS: 25353, Service: 28080}
	dc, err := prepareConfig(frontproxy.DemoConfig, over)
	if err != nil {
		t.Fatal(err)
	}
	// Re-reading the rewritten config must find the new ports, and only them.
	again, err := prepareConfig(dc.YAML, ports{})
	if err != nil {
		t.Fatal(err)
	}
	want := endpoints{HTTPAddr: "127.0.0.1:18080", HTTPSAddr: "127.0.0.1:18443", AdminAddr: "127.0.0.1:19901", DNSPort: 25353, Service: 28080}
	for _, got := range []*demoConfig{dc, again} {
		if got.endpoints != want {
			t.Errorf("got %+v, want %+v", got.endpoints, want)
		}
	}
	for _, old := range []string{"8443", "9901", "15353"} {
		if strings.Contains(string(dc.YAML), "port_value: "+old+"\n") {
			t.Errorf("port %s still in rewritten config", old)
		}
	}
	// The certificate survives the round trip byte for byte.
	if !strings.Contains(string(dc.YAML), "-----BEGIN CERTIFICATE-----\n") {
		t.Error("inline certificate lost")
	}
}

func TestPrepareConfigSystemResolver(t *testing.T) {
	dc, err := prepareConfig(frontproxy.Config, ports{})
	if err != nil {
		t.Fatal(err)
	}
	// Listeners on 0.0.0.0 are dialled on loopback; there is no demo resolver.
	if dc.HTTPAddr != "127.0.0.1:8080" || dc.DNSPort != 0 {
		t.Errorf("got %+v", dc.endpoints)
	}
}

func TestPrepareConfigErrors(t *testing.T) {
	for name, src := range map[string]string{
		"not yaml":    "static_resources: [",
		"no listener": "static_resources: {clusters: [{name: service1, load_assignment: {endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: service1, port_value: 80}}}}]}]}}]}",
		"no clusters": "static_resources: {listeners: [{address: {socket_address: {address: 127.0.0.1, port_value: 80}}}]}",
	} {
		if _, err := prepareConfig([]byte(src), ports{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPrefixWriter(t *testing.T) {
	var out bytes.Buffer
	w := &prefixWriter{prefix: []byte("[x] "), w: &out}
	for _, s := range []string{"one\ntw", "o\n", "three"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	w.flush()
	if got, want := out.String(), "[x] one\n[x] two\n[x] three\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDemoReplicas(t *testing.T) {
	rs := demoReplicas()
	if len(rs) != 6 {
		t.Fatalf("%d replicas", len(rs))
	}
	if rs[0].name != "service1-a" || rs[0].ip.String() != "127.0.0.11" || rs[5].name != "service2-c" || rs[5].ip.String() != "127.0.0.23" {
		t.Errorf("replicas %v", rs)
	}
}
