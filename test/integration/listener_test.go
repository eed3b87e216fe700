package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	"github.com/legate-proxy/legate/internal/testutil/loopback"
)

// Filter chain matching and listener filters through the binary: SNI to
// two certificates and a TLS passthrough on one port, ALPN chains, the
// HTTP inspector, PROXY protocol from haproxy, source-IP chains with RBAC,
// and a filter-chain-only LDS update under load.

const (
	tlsInspectorType  = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
	httpInspectorType = "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
	proxyProtocolType = "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"
	downstreamTLSType = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
)

// listenerFilter is one listener_filters entry.
func listenerFilter(name, typ, body string) string {
	s := "- name: " + name + "\n  typed_config:\n    \"@type\": type.googleapis.com/" + typ + "\n"
	if body != "" {
		s += indent(body, 4) + "\n"
	}
	return s
}

// chain is one filter_chains entry: its match (YAML body, may be empty),
// filters and an optional DownstreamTlsContext body.
type chain struct {
	Name, Match string
	Filters     []string
	TLS         string
}

func (c chain) yaml() string {
	var b strings.Builder
	b.WriteString("- ")
	first := true
	line := func(s string) {
		if !first {
			b.WriteString("  ")
		}
		first = false
		b.WriteString(s + "\n")
	}
	if c.Name != "" {
		line("name: " + c.Name)
	}
	if c.Match != "" {
		line("filter_chain_match:")
		b.WriteString(indent(c.Match, 4) + "\n")
	}
	line("filters:")
	for _, f := range c.Filters {
		b.WriteString(indent(f, 2) + "\n")
	}
	if c.TLS != "" {
		b.WriteString("  transport_socket:\n    name: envoy.transport_sockets.tls\n    typed_config:\n      \"@type\": type.googleapis.com/" + downstreamTLSType + "\n")
		b.WriteString(indent(c.TLS, 6) + "\n")
	}
	return b.String()
}

// multiChainListener is a listener named name on {{port "<name>"}} with
// listener filters, chains and listener-level extra fields.
func multiChainListener(name string, lfilters []string, chains []chain, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- name: %s\n  address:\n    socket_address: {address: 127.0.0.1, port_value: {{port %q}}}\n", name, name)
	if extra != "" {
		b.WriteString(indent(extra, 2) + "\n")
	}
	if len(lfilters) > 0 {
		b.WriteString("  listener_filters:\n")
		for _, f := range lfilters {
			b.WriteString(indent(f, 2) + "\n")
		}
	}
	b.WriteString("  filter_chains:\n")
	for _, c := range chains {
		b.WriteString(indent(c.yaml(), 2) + "\n")
	}
	return b.String()
}

func certTLS(is Issued, alpn ...string) string {
	s := "common_tls_context:\n  tls_certificates:\n  - certificate_chain:\n      inline_string: " + inlineYAML(is.CertPEM, "        ") +
		"\n    private_key:\n      inline_string: " + inlineYAML(is.KeyPEM, "        ")
	if len(alpn) > 0 {
		s += "\n  alpn_protocols: [" + strings.Join(alpn, ", ") + "]"
	}
	return s
}

// dialFrom connects to addr from the loopback address src.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// clientFrom is an HTTP/1.1 client whose connections come from src.
func clientFrom(src string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dialFrom(src, addr) },
	}}
}

func TestSNIChainsAndPassthrough(t *testing.T) {
	pki := newPKI(t)
	certA := pki.Issue(t, "a.test", false, "a.test")
	certB := pki.Issue(t, "b.test", false, "*.b.test")
	certPass := pki.Issue(t, "pass.test", false, "pass.test")
	upA, upB := startUpstream(t, "a", nil), startUpstream(t, "b", nil)
	var sni atomic.Value
	upPass := startTLSUpstream(t, "pass", certPass.TLS, &sni)
	cfg := bootstrapYAML([]string{multiChainListener("edge",
		[]string{listenerFilter("envoy.filters.listener.tls_inspector", tlsInspectorType, "")},
		[]chain{
			{Name: "a", Match: "server_names: [a.test]", Filters: []string{hcmFilter("a", "a", "")}, TLS: certTLS(certA)},
			{Name: "b", Match: `server_names: ["*.b.test"]`, Filters: []string{hcmFilter("b", "b", "")}, TLS: certTLS(certB)},
			{Name: "pass", Match: "server_names: [pass.test]", Filters: []string{tcpProxyFilter("pass", "pass", "")}},
		}, "")},
		[]string{testutil.StaticClusterYAML("a", "", upA.Addr), testutil.StaticClusterYAML("b", "", upB.Addr), testutil.StaticClusterYAML("pass", "", upPass.Addr)})
	l := startLegate(t, cfg, nil)

	get := func(name string) (Echo, *x509Name) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: name, RootCAs: pki.Pool}}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := c.Get("https://" + l.Addr("edge") + "/x")
		if err != nil {
			t.Fatalf("SNI %s: %v", name, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return decodeEcho(t, string(b)), &x509Name{resp.TLS.PeerCertificates[0].Subject.CommonName}
	}
	if e, cn := get("a.test"); e.Upstream != "a" || cn.CN != "a.test" {
		t.Errorf("a.test: upstream %s, certificate %s", e.Upstream, cn.CN)
	}
	if e, cn := get("x.b.test"); e.Upstream != "b" || cn.CN != "b.test" {
		t.Errorf("x.b.test: upstream %s, certificate %s", e.Upstream, cn.CN)
	}
	// Passthrough: the upstream terminates TLS with its own certificate.
	if e, cn := get("pass.test"); e.Upstream != "pass" || cn.CN != "pass.test" || e.SNI != "pass.test" {
		t.Errorf("pass.test: upstream %s, certificate %s, upstream saw SNI %q", e.Upstream, cn.CN, e.SNI)
	}
	// No chain for this name and no default chain: closed.
	c, err := tls.Dial("tcp", l.Addr("edge"), &tls.Config{ServerName: "other.test", InsecureSkipVerify: true})
	if err == nil {
		c.Close()
		t.Error("a connection no chain matches completed a handshake")
	}
	eventually(t, 5*time.Second, "no_filter_chain_match", func() bool {
		return l.Counter(t, "listener.127.0.0.1_"+itoa(l.Port("edge"))+".no_filter_chain_match") == 1
	})
	if got := l.Counter(t, "tls_inspector.sni_found"); got != 4 {
		t.Errorf("tls_inspector.sni_found = %d, want 4", got)
	}
}

type x509Name struct{ CN string }

func TestALPNAndHTTPInspectorChains(t *testing.T) {
	pki := newPKI(t)
	cert := pki.Issue(t, "alpn.test", false, "alpn.test")
	upH2, upH1 := startUpstream(t, "h2", nil), startUpstream(t, "h1", nil)
	cfg := bootstrapYAML([]string{
		multiChainListener("tls",
			[]string{listenerFilter("envoy.filters.listener.tls_inspector", tlsInspectorType, "")},
			[]chain{
				{Match: "application_protocols: [h2]", Filters: []string{hcmFilter("tls_h2", "h2", "")}, TLS: certTLS(cert, "h2")},
				{Match: "application_protocols: [http/1.1]", Filters: []string{hcmFilter("tls_h1", "h1", "")}, TLS: certTLS(cert, "http/1.1")},
			}, ""),
		multiChainListener("plain",
			[]string{listenerFilter("envoy.filters.listener.http_inspector", httpInspectorType, "")},
			[]chain{
				{Match: "application_protocols: [h2c]", Filters: []string{hcmFilter("plain_h2", "h2", "")}},
				{Match: "application_protocols: [http/1.1]", Filters: []string{hcmFilter("plain_h1", "h1", "")}},
			}, ""),
	}, []string{testutil.StaticClusterYAML("h2", "", upH2.Addr), testutil.StaticClusterYAML("h1", "", upH1.Addr)})
	l := startLegate(t, cfg, nil)

	fetch := func(c *http.Client, url string) (string, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return decodeEcho(t, string(b)).Upstream, resp.Proto
	}
	tlsCfg := func(alpn ...string) *tls.Config {
		return &tls.Config{ServerName: "alpn.test", RootCAs: pki.Pool, NextProtos: alpn}
	}
	h2 := tlsClient(tlsCfg("h2"))
	h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg("http/1.1")}}
	if up, proto := fetch(h2, "https://"+l.Addr("tls")+"/"); up != "h2" || proto != "HTTP/2.0" {
		t.Errorf("ALPN h2: upstream %s over %s", up, proto)
	}
	if up, proto := fetch(h1, "https://"+l.Addr("tls")+"/"); up != "h1" || proto != "HTTP/1.1" {
		t.Errorf("ALPN http/1.1: upstream %s over %s", up, proto)
	}
	if up, proto := fetch(h2cClient(), l.URL("plain", "/")); up != "h2" || proto != "HTTP/2.0" {
		t.Errorf("h2c: upstream %s over %s", up, proto)
	}
	if up, _ := fetch(newClient(), l.URL("plain", "/")); up != "h1" {
		t.Errorf("HTTP/1.1: upstream %s", up)
	}
	if l.Counter(t, "http_inspector.http2_found") != 1 || l.Counter(t, "http_inspector.http11_found") != 1 {
		t.Errorf("http_inspector stats: %d h2, %d h1.1", l.Counter(t, "http_inspector.http2_found"), l.Counter(t, "http_inspector.http11_found"))
	}
}

// TestSourceIPChainsAndRBAC: chains by source address, one of them with
// an L4 RBAC filter denying one address, and a default chain.
func TestSourceIPChainsAndRBAC(t *testing.T) {
	upA, upB, upD := startUpstream(t, "a", nil), startUpstream(t, "b", nil), startUpstream(t, "default", nil)
	deny := netFilter("envoy.filters.network.rbac", rbacType, `stat_prefix: l4
rules:
  action: DENY
  policies:
    block:
      permissions: [{any: true}]
      principals: [{remote_ip: {address_prefix: 127.0.0.4, prefix_len: 32}}]`)
	cfg := bootstrapYAML([]string{multiChainListener("src", nil, []chain{
		{Name: "two", Match: "source_prefix_ranges: [{address_prefix: 127.0.0.2, prefix_len: 32}]", Filters: []string{hcmFilter("two", "a", "")}},
		{Name: "wide", Match: "source_prefix_ranges: [{address_prefix: 127.0.0.0, prefix_len: 29}]", Filters: []string{deny, hcmFilter("wide", "b", "")}},
	}, "default_filter_chain:\n  filters:\n"+indent(hcmFilter("dflt", "default", ""), 2))},
		[]string{testutil.StaticClusterYAML("a", "", upA.Addr), testutil.StaticClusterYAML("b", "", upB.Addr), testutil.StaticClusterYAML("default", "", upD.Addr)})
	l := startLegate(t, cfg, nil)
	for src, want := range map[string]string{"127.0.0.2": "a", "127.0.0.3": "b", "127.0.0.9": "default"} {
		resp, err := clientFrom(src).Get(l.URL("src", "/"))
		if err != nil {
			t.Fatalf("from %s: %v", src, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if e := decodeEcho(t, string(b)); e.Upstream != want {
			t.Errorf("from %s: upstream %s, want %s", src, e.Upstream, want)
		}
	}
	if _, err := clientFrom("127.0.0.4").Get(l.URL("src", "/")); err == nil {
		t.Error("127.0.0.4 was served despite the RBAC deny")
	}
	if got := l.Counter(t, "l4.rbac.denied"); got != 1 {
		t.Errorf("l4.rbac.denied = %d", got)
	}
}

// TestProxyProtocolFromHAProxy: haproxy sends PROXY v1 and v2 headers;
// the client's address (127.0.0.2) is what x-forwarded-for, the source-IP
// chain match and RBAC see, not haproxy's.
func TestProxyProtocolFromHAProxy(t *testing.T) {
	haproxy := needTool(t, "haproxy")
	up := startUpstream(t, "up", nil)
	other := startUpstream(t, "other", nil)
	pp := listenerFilter("envoy.filters.listener.proxy_protocol", proxyProtocolType, "stat_prefix: pp")
	cfg := bootstrapYAML([]string{multiChainListener("pp", []string{pp}, []chain{
		{Match: "source_prefix_ranges: [{address_prefix: 127.0.0.2, prefix_len: 32}]", Filters: []string{hcmFilter("pp", "up", "use_remote_address: true")}},
		{Filters: []string{hcmFilter("pp_other", "other", "use_remote_address: true")}},
	}, "")}, []string{testutil.StaticClusterYAML("up", "", up.Addr), testutil.StaticClusterYAML("other", "", other.Addr)})
	l := startLegate(t, cfg, nil)

	v1, v2 := freeListenPort(t), freeListenPort(t)
	hcfg := fmt.Sprintf(`global
  maxconn 100
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend v1
  bind 127.0.0.1:%d
  default_backend legate_v1
frontend v2
  bind 127.0.0.1:%d
  default_backend legate_v2
backend legate_v1
  server l 127.0.0.1:%d send-proxy
backend legate_v2
  server l 127.0.0.1:%d send-proxy-v2
`, v1, v2, l.Port("pp"), l.Port("pp"))
	path := writeFile(t, "haproxy.cfg", hcfg)
	cmd := exec.Command(haproxy, "-db", "-f", path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for _, port := range []int{v1, v2} {
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		var e Echo
		eventually(t, 10*time.Second, "haproxy to answer", func() bool {
			resp, err := clientFrom("127.0.0.2").Get(url)
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			e = decodeEcho(t, string(b))
			return true
		})
		if e.Upstream != "up" || e.Header("x-forwarded-for") != "127.0.0.2" {
			t.Errorf("via haproxy :%d: upstream %s, x-forwarded-for %q; want up, 127.0.0.2", port, e.Upstream, e.Header("x-forwarded-for"))
		}
	}
	if l.Counter(t, "proxy_proto.pp.versions.v1.found") < 1 || l.Counter(t, "proxy_proto.pp.versions.v2.found") < 1 {
		t.Errorf("proxy_proto stats: v1 %d, v2 %d", l.Counter(t, "proxy_proto.pp.versions.v1.found"), l.Counter(t, "proxy_proto.pp.versions.v2.found"))
	}
	// Without a header the connection is refused.
	if _, err := newClient().Get(l.URL("pp", "/")); err == nil {
		t.Error("a connection without a PROXY header was served")
	}
	if got := l.Counter(t, "proxy_proto.pp.not_found_disallowed"); got != 1 {
		t.Errorf("not_found_disallowed = %d", got)
	}
}

func freeListenPort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestFilterChainOnlyUpdateUnderLoad: an LDS update that changes one
// chain drains only that chain's connections; keep-alive load on the
// unchanged chain sees no failure and keeps its connections.
func TestFilterChainOnlyUpdateUnderLoad(t *testing.T) {
	up := startUpstream(t, "up", nil)
	dir := t.TempDir()
	lds := filepath.Join(dir, "lds.yaml")
	port := freeListenPort(t)
	writeLDS := func(version string) {
		l := multiChainListener("dyn", nil, []chain{
			{Name: "stable", Match: "source_prefix_ranges: [{address_prefix: 127.0.0.1, prefix_len: 32}]", Filters: []string{hcmFilter("stable", "up", "")}},
			{Name: "changing", Match: "source_prefix_ranges: [{address_prefix: 127.0.0.2, prefix_len: 32}]",
				Filters: []string{hcmFilter("changing_"+version, "up", "")}},
		}, "")
		l = strings.Replace(l, "{{port \"dyn\"}}", itoa(port), 1)
		body := "version_info: \"" + version + "\"\nresources:\n" +
			indent(strings.Replace(l, "- name: dyn\n", "- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: dyn\n", 1), 0) + "\n"
		tmp := lds + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, lds); err != nil {
			t.Fatal(err)
		}
	}
	writeLDS("1")
	cfg := "dynamic_resources:\n  lds_config:\n    path_config_source: {path: " + lds + "}\nstatic_resources:\n  clusters:\n" +
		indent(testutil.StaticClusterYAML("up", "", up.Addr), 2) + "\n"
	l := startLegate(t, cfg, nil)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	eventually(t, 10*time.Second, "the LDS listener", func() bool {
		resp, err := newClient().Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Close {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	changing := clientFrom("127.0.0.2")
	if resp, err := changing.Get(url); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	eventually(t, 10*time.Second, "load", func() bool { return ok.Load() > 200 })
	cxBefore := l.Counter(t, "http.stable.downstream_cx_total")

	writeLDS("2")
	eventually(t, 10*time.Second, "the in-place update", func() bool { return l.Counter(t, "listener_manager.listener_in_place_updated") == 1 })
	// The changed chain's keep-alive connection is drained: its next
	// response says close.
	resp, err := changing.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !resp.Close {
		t.Error("a connection of the changed chain was not drained")
	}
	n := ok.Load()
	eventually(t, 10*time.Second, "load after the update", func() bool { return ok.Load() > n+200 })
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d requests on the unchanged chain failed or were told to close (%d ok)", failed.Load(), ok.Load())
	}
	if after := l.Counter(t, "http.stable.downstream_cx_total"); after != cxBefore {
		t.Errorf("the unchanged chain's connections were replaced: downstream_cx_total %d → %d", cxBefore, after)
	}
	if resp, err := clientFrom("127.0.0.2").Get(url); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	if got := l.Counter(t, "http.changing_2.downstream_rq_total"); got != 1 {
		t.Errorf("http.changing_2.downstream_rq_total = %d, want 1", got)
	}
}

// TestListenerFiltersTimeout: a client that sends nothing (a server-first
// protocol) is closed at listener_filters_timeout, or, with
// continue_on_listener_filters_timeout, served by the chain the match
// picks with what the inspector found (nothing: the default chain).
func TestListenerFiltersTimeout(t *testing.T) {
	banner := loopback.Serve(t, func(c net.Conn) { io.WriteString(c, "220 hello\r\n"); io.Copy(io.Discard, c) })
	pki := newPKI(t)
	cert := pki.Issue(t, "x.test", false, "x.test")
	inspector := []string{listenerFilter("envoy.filters.listener.tls_inspector", tlsInspectorType, "")}
	chains := []chain{{Match: "server_names: [x.test]", Filters: []string{tcpProxyFilter("tls", "banner", "")}, TLS: certTLS(cert)}}
	dflt := "default_filter_chain:\n  filters:\n" + indent(tcpProxyFilter("banner", "banner", ""), 2)
	cfg := bootstrapYAML([]string{
		multiChainListener("close", inspector, chains, "listener_filters_timeout: 0.5s\n"+dflt),
		multiChainListener("cont", inspector, chains, "listener_filters_timeout: 0.5s\ncontinue_on_listener_filters_timeout: true\n"+dflt),
	}, []string{testutil.StaticClusterYAML("banner", "", banner)})
	l := startLegate(t, cfg, nil)

	read := func(name string) (string, time.Duration) {
		c, err := net.Dial("tcp", l.Addr(name))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 64)
		n, _ := c.Read(b)
		return string(b[:n]), time.Since(start)
	}
	if got, took := read("close"); got != "" || took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("without continue: read %q after %v, want a close after 0.5 s", got, took)
	}
	if got, took := read("cont"); got != "220 hello\r\n" || took < 400*time.Millisecond {
		t.Errorf("with continue: read %q after %v, want the banner after 0.5 s", got, took)
	}
	if got := l.Counter(t, "listener.127.0.0.1_"+itoa(l.Port("close"))+".downstream_pre_cx_timeout"); got != 1 {
		t.Errorf("downstream_pre_cx_timeout = %d", got)
	}
}
