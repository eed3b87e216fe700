package integration

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestEdgeBestPractices runs Envoy's edge-best-practices/edge.yaml with
// its ports, certificate files and upstream pointed at the test's, and
// checks what it sets: SNI-matched TLS chain (tls_inspector), HTTP/2 and
// HTTP/1.1 over ALPN, headers with underscores refused, the overload
// manager's monitor and actions, the global connection limit.
func TestEdgeBestPractices(t *testing.T) {
	dir := examplesDir(t)
	src, err := os.ReadFile(filepath.Join(dir, "edge-best-practices", "edge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pki := newPKI(t)
	cert := pki.Issue(t, "example.com", false, "example.com", "www.example.com")
	certFile := writeFile(t, "servercert.pem", cert.CertPEM)
	keyFile := writeFile(t, "serverkey.pem", cert.KeyPEM)
	up := startH2CUpstream(t, "foo", nil) // the cluster speaks HTTP/2
	cfg := string(src)
	for old, repl := range map[string]string{
		"port_value: 443":      `port_value: {{port "edge"}}`,
		"address: 0.0.0.0":     "address: 127.0.0.1",
		"port_value: 9090":     `port_value: {{port "admin"}}`,
		"port_value: 8080":     "port_value: " + itoa(up.Port),
		"certs/servercert.pem": certFile,
		"certs/serverkey.pem":  keyFile,
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("edge.yaml no longer has %q", old)
		}
		cfg = strings.ReplaceAll(cfg, old, repl)
	}
	l := startLegate(t, cfg, nil)

	for _, alpn := range []string{"h2", "http/1.1"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "www.example.com", RootCAs: pki.Pool, NextProtos: []string{alpn}},
			ForceAttemptHTTP2: alpn == "h2"}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := c.Get("https://" + l.Addr("edge") + "/")
		if err != nil {
			t.Fatalf("%s: %v", alpn, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if e := decodeEcho(t, string(b)); e.Upstream != "foo" {
			t.Errorf("%s: upstream %q", alpn, e.Upstream)
		}
		if want := map[string]int{"h2": 2, "http/1.1": 1}[alpn]; resp.ProtoMajor != want {
			t.Errorf("%s: served over %s", alpn, resp.Proto)
		}
		req, _ := http.NewRequest("GET", "https://"+l.Addr("edge")+"/", nil)
		req.Header["X_bad"] = []string{"1"}
		// headers_with_underscores_action: REJECT_REQUEST answers HTTP/1
		// with 400 and resets an HTTP/2 stream, as in Envoy.
		resp, err = c.Do(req)
		switch {
		case alpn == "h2" && err == nil:
			resp.Body.Close()
			t.Errorf("h2: a header with an underscore got %d, want a stream reset", resp.StatusCode)
		case alpn != "h2" && err != nil:
			t.Fatal(err)
		case alpn != "h2":
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Errorf("%s: a header with an underscore got %d, want 400", alpn, resp.StatusCode)
			}
		}
		// normalize_path, merge_slashes, path_with_escaped_slashes_action:
		// a path that climbs above the root never reaches the upstream.
		before := up.Requests.Load()
		req, _ = http.NewRequest("GET", "https://"+l.Addr("edge")+"/../../etc/passwd", nil)
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 || up.Requests.Load() != before {
			t.Errorf("%s: /../../etc/passwd got %d, upstream requests %d -> %d; want 400 and none", alpn, resp.StatusCode, before, up.Requests.Load())
		}
		tr.CloseIdleConnections()
	}
	// A name no chain serves: closed.
	if c, err := tls.Dial("tcp", l.Addr("edge"), &tls.Config{ServerName: "other.test", InsecureSkipVerify: true}); err == nil {
		c.Close()
		t.Error("an SNI the config does not serve completed a handshake")
	}
	st := l.Stats(t)
	for _, name := range []string{
		"overload.envoy.resource_monitors.fixed_heap.pressure",
		"overload.envoy.overload_actions.shrink_heap.active",
		"overload.envoy.overload_actions.stop_accepting_requests.active",
	} {
		if v, ok := st[name]; !ok || v != "0" {
			t.Errorf("%s = %q, want 0 (present)", name, v)
		}
	}
}

// TestTLSInspectorExample serves Envoy's tls-inspector sandbox config: TLS
// passed through by ALPN (h2 and http/1.1 to different upstreams, which
// terminate it with their own certificates) and plaintext to a third.
func TestTLSInspectorExample(t *testing.T) {
	dir := examplesDir(t)
	src, err := os.ReadFile(filepath.Join(dir, "tls-inspector", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pki := newPKI(t)
	var sni1, sni0 atomic.Value
	dns := startDNS(t)
	ups := map[string]*Upstream{
		"service-https1": startTLSUpstream(t, "https1", pki.Issue(t, "https1", false, "example.test").TLS, &sni1),
		"service-https0": startTLSUpstream(t, "https0", pki.Issue(t, "https0", false, "example.test").TLS, &sni0),
		"service-http":   startUpstream(t, "http", nil),
	}
	for name := range ups {
		dns.Set(name, "127.0.0.1")
	}
	l := startLegate(t, rewriteFrontProxy(t, src, dns, ups), nil)
	for alpn, want := range map[string]string{"h2": "https1", "http/1.1": "https0"} {
		var cn string
		eventually(t, 10*time.Second, "the "+want+" upstream", func() bool {
			c, err := tls.Dial("tcp", l.Addr("l0"), &tls.Config{ServerName: "example.test", RootCAs: pki.Pool, NextProtos: []string{alpn}})
			if err != nil {
				return false
			}
			defer c.Close()
			cn = c.ConnectionState().PeerCertificates[0].Subject.CommonName
			return true
		})
		if cn != want {
			t.Errorf("ALPN %s reached the upstream with certificate %s, want %s", alpn, cn, want)
		}
	}
	var e Echo
	eventually(t, 10*time.Second, "the plaintext upstream", func() bool {
		resp, err := newClient().Get(l.URL("l0", "/"))
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e = decodeEcho(t, string(b))
		return true
	})
	if e.Upstream != "http" {
		t.Errorf("plaintext reached %q", e.Upstream)
	}
}
