package integration

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/legate-proxy/legate/internal/testutil"
)

// TestUpstreamBindConfig: upstream_bind_config's source address is what
// the upstream sees, and the connection counts in the cluster's stats.
func TestUpstreamBindConfig(t *testing.T) {
	up := startUpstream(t, "bound", nil)
	l := startLegate(t, bootstrapYAML(
		[]string{listenerYAML("http", routeAll("bound"), "")},
		[]string{testutil.StaticClusterYAML("bound", `upstream_bind_config:
  source_address: {address: 127.0.0.2, port_value: 0}
  socket_options: [{level: 1, name: 7, int_value: 65536}]`, up.Addr)}), nil)
	_, body := httpGet(t, l.URL("http", "/"))
	if e := decodeEcho(t, body); !strings.HasPrefix(e.Remote, "127.0.0.2:") {
		t.Errorf("upstream saw the connection from %s, want 127.0.0.2", e.Remote)
	}
	if v := l.Counter(t, "cluster.bound.upstream_cx_total"); v != 1 {
		t.Errorf("upstream_cx_total = %d", v)
	}
}

// TestAutoConfigALPN: auto_config speaks HTTP/2 to a TLS upstream that
// offers h2 and HTTP/1.1 to one that does not.
func TestAutoConfigALPN(t *testing.T) {
	pki := newPKI(t)
	cert := pki.Issue(t, "upstream.test", false, "upstream.test").TLS
	start := func(name string, h2 bool) *Upstream {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		protos := []string{"http/1.1"}
		if h2 {
			protos = []string{"h2", "http/1.1"}
		}
		tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: protos})
		return serveUpstream(t, name, tln, nil, func(s *http.Server) {
			s.Protocols = new(http.Protocols)
			s.Protocols.SetHTTP1(true)
			s.Protocols.SetHTTP2(h2)
		})
	}
	h2up, h1up := start("h2", true), start("h1", false)
	auto := func(name, addr string) string {
		return testutil.StaticClusterYAML(name, "typed_extension_protocol_options:\n  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"+
			"    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"+
			"    auto_config: {http2_protocol_options: {}}\n"+
			"transport_socket:\n  name: envoy.transport_sockets.tls\n  typed_config:\n"+
			"    \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n"+
			"    sni: upstream.test\n    common_tls_context:\n      validation_context:\n        trusted_ca:\n          inline_string: "+
			inlineYAML(pki.CAPEM, "            "), addr)
	}
	routes := `route_config:
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: {prefix: "/h2"}
      route: {cluster: auto_h2}
    - match: {prefix: "/h1"}
      route: {cluster: auto_h1}`
	l := startLegate(t, bootstrapYAML([]string{listenerYAML("http", routes, "")},
		[]string{auto("auto_h2", h2up.Addr), auto("auto_h1", h1up.Addr)}), nil)
	for _, tc := range []struct{ path, proto, cluster string }{
		{"/h2", "HTTP/2.0", "auto_h2"}, {"/h1", "HTTP/1.1", "auto_h1"}, {"/h2", "HTTP/2.0", "auto_h2"},
	} {
		_, body := httpGet(t, l.URL("http", tc.path))
		if e := decodeEcho(t, body); e.Proto != tc.proto {
			t.Errorf("%s: upstream saw %s, want %s", tc.path, e.Proto, tc.proto)
		}
	}
	if v := l.Counter(t, "cluster.auto_h2.upstream_cx_http2_total"); v != 1 {
		t.Errorf("auto_h2 upstream_cx_http2_total = %d", v)
	}
	if v := l.Counter(t, "cluster.auto_h1.upstream_cx_http1_total"); v != 1 {
		t.Errorf("auto_h1 upstream_cx_http1_total = %d", v)
	}
}
