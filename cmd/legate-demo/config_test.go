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
	want := endpoints{HTTPAddr: "127.0.0.1:8080", HTTPSAddr: "127.0.0.1:8443", AdminAddr: "127.0.0.1:9901", DNSPort: 15353, Service: 8080,
		ZipkinAddr: "127.0.0.1:9411", ZipkinPath: "/api/v2/spans", StdoutAccessLog: true}
	if dc.endpoints != want {
		t.Errorf("got %+v, want %+v", dc.endpoints, want)
	}
}

func TestPrepareConfigOverrides(t *testing.T) {
	over := ports{HTTP: 18080, HTTPS: 18443, Admin: 19901, DNS: 25353, Service: 28080, Zipkin: 29411}
	dc, err := prepareConfig(frontproxy.DemoConfig, over)
	if err != nil {
		t.Fatal(err)
	}
	// Re-reading the rewritten config must find the new ports, and only them.
	again, err := prepareConfig(dc.YAML, ports{})
	if err != nil {
		t.Fatal(err)
	}
	want := endpoints{HTTPAddr: "127.0.0.1:18080", HTTPSAddr: "127.0.0.1:18443", AdminAddr: "127.0.0.1:19901", DNSPort: 25353, Service: 28080,
		ZipkinAddr: "127.0.0.1:29411", ZipkinPath: "/api/v2/spans", StdoutAccessLog: true}
	for _, got := range []*demoConfig{dc, again} {
		if got.endpoints != want {
			t.Errorf("got %+v, want %+v", got.endpoints, want)
		}
	}
	for _, old := range []string{"8443", "9901", "15353", "9411"} {
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
	// Listeners on 0.0.0.0 are dialled on loopback; there is no demo
	// resolver, collector or access log to watch.
	if dc.HTTPAddr != "127.0.0.1:8080" || dc.DNSPort != 0 || dc.ZipkinAddr != "" || dc.StdoutAccessLog {
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

// TestPrepareConfigRemoteCollector: a collector_cluster off loopback is a
// Zipkin the user runs; the demo neither starts a collector nor moves it.
func TestPrepareConfigRemoteCollector(t *testing.T) {
	src := strings.Replace(string(frontproxy.DemoConfig), "                address: 127.0.0.1\n                port_value: 9411",
		"                address: 192.0.2.7\n                port_value: 9411", 1)
	if src == string(frontproxy.DemoConfig) {
		t.Fatal("zipkin cluster address not found in the demo config")
	}
	dc, err := prepareConfig([]byte(src), ports{Zipkin: 29411})
	if err != nil {
		t.Fatal(err)
	}
	if dc.ZipkinAddr != "" || strings.Contains(string(dc.YAML), "29411") {
		t.Errorf("remote collector taken over: ZipkinAddr %q", dc.ZipkinAddr)
	}
}

func TestLineCounter(t *testing.T) {
	lc := newLineCounter(accessLogPatterns[:]...)
	var out bytes.Buffer
	w := &prefixWriter{prefix: []byte("[access-log] "), w: &out, onLine: lc.observe}
	log := `[2026-01-02T03:04:05.000Z] "GET /service/1 HTTP/1.1" 200 - 0 104 1 1 "-" "curl" "id" "h" "127.0.0.11:8080"
[2026-01-02T03:04:05.000Z] "GET /service/2 HTTP/2" 200 - 0 104 1 1 "-" "curl" "id" "h" "127.0.0.21:8080"
[2026-01-02T03:04:05.000Z] "GET /service/10 HTTP/1.1" 404 NR 0 0 0 - "-" "curl" "id" "h" "-"
[2026-01-02T03:04:05.000Z] "GET /service/1 HTTP/1.1" 503 UF 0 91 1 - "-" "curl" "id" "h" "127.0.0.12:8080"`
	for _, chunk := range []string{log[:50], log[50:]} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if lc.count(0) != 1 {
		t.Errorf("before flush: %d lines for /service/1, want 1 (the last line is incomplete)", lc.count(0))
	}
	w.flush()
	if lc.count(0) != 2 || lc.count(1) != 1 {
		t.Errorf("counted %d and %d, want 2 and 1", lc.count(0), lc.count(1))
	}
	if got := strings.Count(out.String(), "[access-log] "); got != 4 {
		t.Errorf("%d prefixed lines, want 4", got)
	}
}
