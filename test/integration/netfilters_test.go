package integration

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	"github.com/legate-proxy/legate/internal/testutil/loopback"
	"github.com/legate-proxy/legate/test/legatetest"
)

// Network filter chains through the binary: rbac, local_ratelimit,
// connection_limit and sni_cluster in front of tcp_proxy and the HCM.

const (
	rbacType            = "envoy.extensions.filters.network.rbac.v3.RBAC"
	localRateLimitType  = "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit"
	connectionLimitType = "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit"
	sniClusterType      = "envoy.extensions.filters.network.sni_cluster.v3.SniCluster"
)

// netFilter is one network filter of a chain: its name, config type (the
// part after type.googleapis.com/) and config body.
func netFilter(name, typ, body string) string {
	s := "- name: " + name + "\n  typed_config:\n    \"@type\": type.googleapis.com/" + typ + "\n"
	if body != "" {
		s += indent(body, 4) + "\n"
	}
	return s
}

func tcpProxyFilter(statPrefix, cluster, extra string) string {
	body := "stat_prefix: " + statPrefix + "\ncluster: " + cluster
	if extra != "" {
		body += "\n" + extra
	}
	return netFilter("envoy.filters.network.tcp_proxy", "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", body)
}

func hcmFilter(statPrefix, cluster, extra string) string {
	body := "stat_prefix: " + statPrefix + "\n" + routeAll(cluster) +
		"\nhttp_filters:\n- name: envoy.filters.http.router\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	if extra != "" {
		body += "\n" + extra
	}
	return netFilter("envoy.filters.network.http_connection_manager", "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", body)
}

// chainListener is a listener named name on {{port "<name>"}} with one
// filter chain of filters; chainExtra goes into the chain (a
// transport_socket), extra at the listener level (access_log).
func chainListener(name string, filters []string, chainExtra, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- name: %s\n  address:\n    socket_address: {address: 127.0.0.1, port_value: {{port %q}}}\n", name, name)
	if extra != "" {
		b.WriteString(indent(extra, 2) + "\n")
	}
	b.WriteString("  filter_chains:\n  - filters:\n")
	for _, f := range filters {
		b.WriteString(indent(f, 4) + "\n")
	}
	if chainExtra != "" {
		b.WriteString(indent(chainExtra, 4) + "\n")
	}
	return b.String()
}

// tcpSpy is a TCP upstream that echoes and counts what reaches it.
type tcpSpy struct {
	Addr         string
	conns, bytes atomic.Int64
}

func startTCPSpy(t *testing.T) *tcpSpy {
	t.Helper()
	s := &tcpSpy{}
	s.Addr = loopback.Serve(t, func(c net.Conn) {
		s.conns.Add(1)
		c.SetDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			s.bytes.Add(int64(n))
			if n > 0 {
				c.Write(buf[:n])
			}
			if err != nil {
				c.(*net.TCPConn).CloseWrite()
				return
			}
		}
	})
	return s
}

// namedTCP is a TCP upstream that writes its name, then echoes.
func namedTCP(t *testing.T, name string) string {
	return loopback.Serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		c.Write([]byte(name + ":"))
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

// try writes msg on a new connection to addr, half-closes and reads until
// the end: what came back, and whether the proxy cut the connection
// (reset) rather than ending it.
func try(t *testing.T, dial func() (net.Conn, error), msg string) string {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(msg))
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	got, err := io.ReadAll(c)
	if err != nil && !isCut(err) {
		t.Fatalf("reading: %v", err)
	}
	return string(got)
}

// isCut: the peer closed with unread bytes (a reset) or went away.
func isCut(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe")
}

func dialer(addr string) func() (net.Conn, error) {
	return func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }
}

func rbacBody(statPrefix, rules string) string {
	return "stat_prefix: " + statPrefix + "\n" + rules
}

// onlyFrom is RBAC rules allowing connections from prefix/len only.
func onlyFrom(prefix string, n int) string {
	return fmt.Sprintf(`rules:
  action: ALLOW
  policies:
    from-%s:
      permissions: [{any: true}]
      principals: [{remote_ip: {address_prefix: %s, prefix_len: %d}}]`, prefix, prefix, n)
}

func TestNetworkRBACBeforeTCPProxy(t *testing.T) {
	t.Parallel()
	spy := startTCPSpy(t)
	firstByteSpy := startTCPSpy(t)
	dir := t.TempDir()
	listenerLog, tcpLog := filepath.Join(dir, "listener.log"), filepath.Join(dir, "tcp.log")
	shadowFormat := "%DYNAMIC_METADATA(envoy.filters.network.rbac:shadow_engine_result)% %DYNAMIC_METADATA(envoy.filters.network.rbac:shadow_effective_policy_id)% %BYTES_RECEIVED%\n"
	rbacFilter := func(body string) string { return netFilter("envoy.filters.network.rbac", rbacType, body) }
	cfg := bootstrapYAML([]string{
		chainListener("allow", []string{rbacFilter(rbacBody("allow.", onlyFrom("127.0.0.0", 8))), tcpProxyFilter("allow", "spy", "")}, "", ""),
		chainListener("deny", []string{rbacFilter(rbacBody("deny.", onlyFrom("10.0.0.0", 8))), tcpProxyFilter("deny", "spy", "")}, "", ""),
		// A policy on filter state nobody sets: decided on the first byte,
		// as in Envoy, after tcp_proxy has connected.
		chainListener("firstbyte", []string{rbacFilter(rbacBody("firstbyte.", `rules:
  policies:
    tagged:
      permissions: [{any: true}]
      principals: [{filter_state: {key: tag, string_match: {exact: ok}}}]`)), tcpProxyFilter("firstbyte", "firstbytespy", "")}, "", ""),
		chainListener("shadow", []string{rbacFilter(rbacBody("shadow", `shadow_rules:
  action: DENY
  policies:
    no-loopback:
      permissions: [{destination_port_range: {start: 1, end: 65536}}]
      principals: [{direct_remote_ip: {address_prefix: 127.0.0.1, prefix_len: 32}}]`)),
			tcpProxyFilter("shadow", "spy", fileAccessLog(tcpLog, shadowFormat))}, "", fileAccessLog(listenerLog, shadowFormat)),
	}, []string{testutil.StaticClusterYAML("spy", "", spy.Addr), testutil.StaticClusterYAML("firstbytespy", "", firstByteSpy.Addr)})
	l := startLegate(t, cfg, nil)

	if got := try(t, dialer(l.Addr("allow")), "hello"); got != "hello" {
		t.Errorf("allowed connection echoed %q", got)
	}
	if got := try(t, dialer(l.Addr("deny")), "secret"); got != "" {
		t.Errorf("denied connection got %q back", got)
	}
	if got := try(t, dialer(l.Addr("firstbyte")), "secret"); got != "" {
		t.Errorf("connection denied on its first byte got %q back", got)
	}
	if got := try(t, dialer(l.Addr("shadow")), "shadowed"); got != "shadowed" {
		t.Errorf("shadow rules changed the connection: echoed %q", got)
	}
	eventually(t, 10*time.Second, "rbac stats", func() bool {
		s := l.Stats(t)
		return s["allow.rbac.allowed"] == "1" && s["deny.rbac.denied"] == "1" && s["firstbyte.rbac.denied"] == "1" &&
			s["shadow.rbac.shadow_denied"] == "1" && s["shadow.rbac.allowed"] == "0" && s["shadow.rbac.denied"] == "0"
	})
	// Decided at connection start: the upstream never saw the denied
	// connection. Decided on the first byte: it saw the connection
	// (tcp_proxy connects first) but not one byte.
	if n := spy.conns.Load(); n != 2 {
		t.Errorf("the upstream saw %d connections, want 2 (allow and shadow; not deny)", n)
	}
	if n := spy.bytes.Load(); n != int64(len("hello")+len("shadowed")) {
		t.Errorf("the upstream received %d bytes", n)
	}
	if n := firstByteSpy.bytes.Load(); n != 0 {
		t.Errorf("%d bytes of a denied connection reached the upstream", n)
	}
	if n := l.Counter(t, "tcp.deny.downstream_cx_total"); n != 0 {
		t.Errorf("tcp_proxy saw %d denied connections", n)
	}
	// Shadow results travel to the TCP proxy's and the listener's logs.
	for _, path := range []string{tcpLog, listenerLog} {
		if lines := readLines(t, path, 1); lines[0] != "denied no-loopback 8" {
			t.Errorf("%s: %q, want %q", filepath.Base(path), lines[0], "denied no-loopback 8")
		}
	}
}

func TestNetworkRBACBeforeHCM(t *testing.T) {
	t.Parallel()
	web := startUpstream(t, "web", nil)
	hcmLog := filepath.Join(t.TempDir(), "hcm.log")
	rbacFilter := func(body string) string { return netFilter("envoy.filters.network.rbac", rbacType, body) }
	cfg := bootstrapYAML([]string{
		chainListener("deny", []string{rbacFilter(rbacBody("hdeny", onlyFrom("10.0.0.0", 8))), hcmFilter("deny", "web", "")}, "", ""),
		chainListener("shadow", []string{rbacFilter(rbacBody("hshadow", onlyFrom("127.0.0.0", 8)+`
shadow_rules:
  policies:
    only-port-1:
      permissions: [{destination_port: 1}]
      principals: [{any: true}]`)), hcmFilter("shadow", "web",
			fileAccessLog(hcmLog, "%RESPONSE_CODE% %DYNAMIC_METADATA(envoy.filters.network.rbac:shadow_engine_result)% %DYNAMIC_METADATA(envoy.filters.network.rbac)%\n"))}, "", ""),
	}, []string{testutil.StaticClusterYAML("web", "", web.Addr)})
	l := startLegate(t, cfg, nil)

	if _, err := newClient().Get(l.URL("deny", "/")); err == nil {
		t.Error("a request on a denied connection was answered")
	}
	if resp, _ := httpGet(t, l.URL("shadow", "/ok")); resp.StatusCode != http.StatusOK {
		t.Errorf("allowed connection: status %d", resp.StatusCode)
	}
	eventually(t, 10*time.Second, "rbac stats", func() bool {
		s := l.Stats(t)
		return s["hdeny.rbac.denied"] == "1" && s["hshadow.rbac.allowed"] == "1" && s["hshadow.rbac.shadow_denied"] == "1"
	})
	if n := web.Requests.Load(); n != 1 {
		t.Errorf("the upstream served %d requests, want 1 (the denied connection's never reaches it)", n)
	}
	// The request's stream info starts from its connection's.
	want := `200 denied {"shadow_engine_result":"denied"}`
	if lines := readLines(t, hcmLog, 1); lines[0] != want {
		t.Errorf("HCM access log %q, want %q", lines[0], want)
	}
}

// TestNetworkRBACAuthenticated matches the client certificate of an mTLS
// listener.
func TestNetworkRBACAuthenticated(t *testing.T) {
	t.Parallel()
	spy := startTCPSpy(t)
	pki := newPKI(t)
	srv := pki.Issue(t, "proxy", false, "proxy.test")
	tlsCtx := "transport_socket:\n  name: envoy.transport_sockets.tls\n  typed_config:\n" +
		"    \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n" +
		indent("require_client_certificate: true\ncommon_tls_context:\n  tls_certificates:\n  - certificate_chain:\n      inline_string: "+
			inlineYAML(srv.CertPEM, "        ")+"\n    private_key:\n      inline_string: "+inlineYAML(srv.KeyPEM, "        ")+
			"\n  validation_context:\n    trusted_ca:\n      inline_string: "+inlineYAML(pki.CAPEM, "        "), 4)
	cfg := bootstrapYAML([]string{
		chainListener("mtls", []string{netFilter("envoy.filters.network.rbac", rbacType, rbacBody("mtls", `rules:
  policies:
    frontend:
      permissions: [{any: true}]
      principals:
      - authenticated: {principal_name: {exact: frontend.svc.test}}
      - authenticated: {principal_name: {exact: CN=batch-job}}`)), tcpProxyFilter("mtls", "spy", "")}, tlsCtx, ""),
	}, []string{testutil.StaticClusterYAML("spy", "", spy.Addr)})
	l := startLegate(t, cfg, nil)
	dialAs := func(cert Issued) func() (net.Conn, error) {
		return func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr("mtls"),
				&tls.Config{ServerName: "proxy.test", RootCAs: pki.Pool, Certificates: []tls.Certificate{cert.TLS}})
		}
	}
	for _, tt := range []struct {
		who  Issued
		want string
	}{
		{pki.Issue(t, "frontend", true, "frontend.svc.test"), "ok"}, // DNS SAN
		{pki.Issue(t, "batch-job", true), "ok"},                     // subject
		{pki.Issue(t, "intruder", true, "intruder.svc.test"), ""},
	} {
		if got := try(t, dialAs(tt.who), "ok"); got != tt.want {
			t.Errorf("client %s: got %q, want %q", tt.who.TLS.Leaf.Subject, got, tt.want)
		}
	}
	eventually(t, 10*time.Second, "rbac stats", func() bool {
		s := l.Stats(t)
		return s["mtls.rbac.allowed"] == "2" && s["mtls.rbac.denied"] == "1"
	})
}

// concurrently opens n connections at once, each sending "x" and waiting
// for it to come back; it reports how many did, and keeps those open
// until release is closed.
func concurrently(t *testing.T, addr string, n int, release <-chan struct{}) int {
	t.Helper()
	var ok atomic.Int32
	var wg, echoed sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		echoed.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				echoed.Done()
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, 1)
			_, err = c.Write([]byte("x"))
			if err == nil {
				_, err = io.ReadFull(c, b)
			}
			if err == nil {
				ok.Add(1)
			}
			echoed.Done()
			if err == nil {
				<-release
			}
		}()
	}
	close(start)
	echoed.Wait()
	t.Cleanup(wg.Wait)
	return int(ok.Load())
}

func TestNetworkLocalRateLimit(t *testing.T) {
	t.Parallel()
	spy := startTCPSpy(t)
	logPath, tcpLog := filepath.Join(t.TempDir(), "listener.log"), filepath.Join(t.TempDir(), "tcp.log")
	cfg := bootstrapYAML([]string{
		chainListener("lrl", []string{
			netFilter("envoy.filters.network.local_ratelimit", localRateLimitType, "stat_prefix: edge\ntoken_bucket: {max_tokens: 4, fill_interval: 3600s}"),
			tcpProxyFilter("lrl", "spy", fileAccessLog(tcpLog, "%RESPONSE_FLAGS%\n")),
		}, "", fileAccessLog(logPath, "%RESPONSE_FLAGS%\n")),
		chainListener("disabled", []string{
			netFilter("envoy.filters.network.local_ratelimit", localRateLimitType,
				"stat_prefix: disabled\ntoken_bucket: {max_tokens: 1, fill_interval: 3600s}\nruntime_enabled: {default_value: true, runtime_key: netfilters.lrl_enabled}"),
			tcpProxyFilter("disabled", "spy", ""),
		}, "", ""),
	}, []string{testutil.StaticClusterYAML("spy", "", spy.Addr)}) + `
layered_runtime:
  layers:
  - name: static
    static_layer: {netfilters: {lrl_enabled: false}}
`
	l := startLegate(t, cfg, nil)
	release := make(chan struct{})
	// 12 connections at once against a bucket of 4 that refills hourly.
	if got := concurrently(t, l.Addr("lrl"), 12, release); got != 4 {
		t.Errorf("%d of 12 concurrent connections got through a bucket of 4", got)
	}
	eventually(t, 10*time.Second, "rate_limited", func() bool {
		return l.Counter(t, "local_rate_limit.edge.rate_limited") == 8
	})
	if n := l.Counter(t, "tcp.lrl.downstream_cx_total"); n != 4 {
		t.Errorf("tcp_proxy saw %d connections, want the 4 allowed", n)
	}
	// Disabled by runtime: no limit.
	for i := range 3 {
		if got := try(t, dialer(l.Addr("disabled")), "y"); got != "y" {
			t.Fatalf("connection %d through a runtime-disabled limit: %q", i, got)
		}
	}
	// Refused connections are flagged URX in the listener's log and, as
	// in Envoy, in the TCP proxy's, which logs them too.
	close(release)
	for _, path := range []string{logPath, tcpLog} {
		urx := 0
		for _, line := range readLines(t, path, 12) {
			if line == "URX" {
				urx++
			}
		}
		if urx != 8 {
			t.Errorf("%s: %d lines flag URX, want the 8 refused connections", filepath.Base(path), urx)
		}
	}
}

func TestNetworkConnectionLimit(t *testing.T) {
	t.Parallel()
	spy := startTCPSpy(t)
	cfg := bootstrapYAML([]string{
		chainListener("cl", []string{
			netFilter("envoy.filters.network.connection_limit", connectionLimitType, "stat_prefix: db\nmax_connections: 3"),
			tcpProxyFilter("cl", "spy", ""),
		}, "", ""),
		chainListener("delayed", []string{
			netFilter("envoy.filters.network.connection_limit", connectionLimitType, "stat_prefix: slow\nmax_connections: 1\ndelay: 0.2s"),
			tcpProxyFilter("delayed", "spy", ""),
		}, "", ""),
	}, []string{testutil.StaticClusterYAML("spy", "", spy.Addr)})
	l := startLegate(t, cfg, nil)

	release := make(chan struct{})
	if got := concurrently(t, l.Addr("cl"), 10, release); got != 3 {
		t.Errorf("%d of 10 concurrent connections admitted, want max_connections 3", got)
	}
	eventually(t, 10*time.Second, "connection_limit stats", func() bool {
		s := l.Stats(t)
		return s["connection_limit.db.limited_connections"] == "7" && s["connection_limit.db.active_connections"] == "3"
	})
	close(release) // the 3 close: their places come back
	eventually(t, 10*time.Second, "active_connections back to 0", func() bool {
		return l.Counter(t, "connection_limit.db.active_connections") == 0
	})
	if got := try(t, dialer(l.Addr("cl")), "again"); got != "again" {
		t.Errorf("after the others closed: %q", got)
	}

	// With a delay, the refused connection is closed later, unread.
	hold := make(chan struct{})
	defer close(hold)
	if got := concurrently(t, l.Addr("delayed"), 1, hold); got != 1 {
		t.Fatal("the first connection was refused")
	}
	if got := try(t, dialer(l.Addr("delayed")), "late"); got != "" {
		t.Errorf("refused connection got %q", got)
	}
	if n := l.Counter(t, "connection_limit.slow.limited_connections"); n != 1 {
		t.Errorf("limited_connections = %d, want 1", n)
	}
}

// TestSNICluster sends each connection to the cluster its SNI names. The
// listener terminates TLS here; with tls_inspector (TLS passed through)
// only sniListenerChain changes.
func TestSNICluster(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	srv := pki.Issue(t, "edge", false, "alpha.test", "beta.test", "unknown.test")
	logPath := filepath.Join(t.TempDir(), "tcp.log")
	sniListenerChain := func(filters []string) string {
		tlsCtx := "transport_socket:\n  name: envoy.transport_sockets.tls\n  typed_config:\n" +
			"    \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n" +
			indent("common_tls_context:\n  tls_certificates:\n  - certificate_chain:\n      inline_string: "+
				inlineYAML(srv.CertPEM, "        ")+"\n    private_key:\n      inline_string: "+inlineYAML(srv.KeyPEM, "        "), 4)
		return chainListener("sni", filters, tlsCtx, "")
	}
	cfg := bootstrapYAML([]string{sniListenerChain([]string{
		netFilter("envoy.filters.network.sni_cluster", sniClusterType, ""),
		tcpProxyFilter("sni", "fallback", fileAccessLog(logPath, "%REQUESTED_SERVER_NAME% %FILTER_STATE(envoy.tcp_proxy.cluster:PLAIN)% %FILTER_STATE(envoy.tcp_proxy.cluster)% %UPSTREAM_CLUSTER% %RESPONSE_FLAGS%\n")),
	})}, []string{
		testutil.StaticClusterYAML("alpha.test", "", namedTCP(t, "alpha")),
		testutil.StaticClusterYAML("beta.test", "", namedTCP(t, "beta")),
		testutil.StaticClusterYAML("fallback", "", namedTCP(t, "fallback")),
	})
	l := startLegate(t, cfg, nil)
	dialSNI := func(sni string) func() (net.Conn, error) {
		return func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr("sni"), &tls.Config{ServerName: sni, RootCAs: pki.Pool})
		}
	}
	for _, tt := range []struct{ sni, want string }{
		{"alpha.test", "alpha:hi"},
		{"beta.test", "beta:hi"},
		{"unknown.test", ""}, // no such cluster: refused (NC)
	} {
		if got := try(t, dialSNI(tt.sni), "hi"); got != tt.want {
			t.Errorf("SNI %s: got %q, want %q", tt.sni, got, tt.want)
		}
	}
	if n := l.Counter(t, "tcp.sni.downstream_cx_no_route"); n != 1 {
		t.Errorf("downstream_cx_no_route = %d, want 1", n)
	}
	lines := readLines(t, logPath, 3)
	want := []string{
		`alpha.test alpha.test "alpha.test" alpha.test -`,
		`beta.test beta.test "beta.test" beta.test -`,
		`unknown.test unknown.test "unknown.test" - NC`,
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("log line %d: %q, want %q", i, lines[i], want[i])
		}
	}
}

// A chain must end in a terminal filter, and have no other.
func TestNetworkFilterChainValidation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		filters []string
		want    string
	}{
		{[]string{netFilter("envoy.filters.network.sni_cluster", sniClusterType, "")},
			"filter_chains[0].filters[0]: envoy.extensions.filters.network.sni_cluster.v3.SniCluster is not a terminal filter"},
		{[]string{tcpProxyFilter("a", "c", ""), tcpProxyFilter("b", "c", "")},
			"filter_chains[0].filters[0]: envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy is a terminal filter and must be the last of the chain"},
		{[]string{netFilter("envoy.filters.network.rbac", rbacType, "stat_prefix: r\nrules: {policies: {p: {permissions: [{header: {name: x, present_match: true}}], principals: [{any: true}]}}}"), tcpProxyFilter("a", "c", "")},
			"header: field is not supported"},
	} {
		cfg, _ := renderConfig(t, bootstrapYAML([]string{chainListener("l", tt.filters, "", "")}, []string{testutil.StaticClusterYAML("c", "", "127.0.0.1:1")}), nil)
		out, err := runLegateValidate(t, cfg)
		if err == nil || !strings.Contains(out, tt.want) {
			t.Errorf("validate: %v\n%s\nwant it to contain %q", err, out, tt.want)
		}
	}
}

// runLegateValidate runs legate --mode validate on cfg.
func runLegateValidate(t *testing.T, cfg string) (string, error) {
	t.Helper()
	out, err := exec.Command(legatetest.Bin(), "--mode", "validate", "-c", writeFile(t, "config.yaml", cfg)).CombinedOutput()
	return string(out), err
}
