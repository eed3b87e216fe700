package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	"github.com/legate-proxy/legate/internal/testutil/loopback"
	"github.com/legate-proxy/legate/test/legatetest"
)

const tcpProxyType = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

// tcpEcho is a raw TCP upstream that echoes and half-closes on EOF.
type tcpEcho struct {
	Addr string
	Host string
	Port int
}

func startTCPEcho(t *testing.T) *tcpEcho {
	t.Helper()
	addr := loopback.Serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return &tcpEcho{Addr: a.String(), Host: a.IP.String(), Port: a.Port}
}

// tcpProxyListener is a listener named name whose only filter is a
// tcp_proxy with the given body; extra is added at the listener level.
func tcpProxyListener(name, body, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- name: %s\n  address:\n    socket_address: {address: 127.0.0.1, port_value: {{port %q}}}\n", name, name)
	if extra != "" {
		b.WriteString(indent(extra, 2) + "\n")
	}
	b.WriteString("  filter_chains:\n  - filters:\n    - name: envoy.filters.network.tcp_proxy\n      typed_config:\n")
	b.WriteString("        \"@type\": " + tcpProxyType + "\n")
	b.WriteString(indent(body, 8) + "\n")
	return b.String()
}

// exchange writes msg, half-closes, and returns everything read until EOF.
func exchange(t *testing.T, addr string, msg []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading from %s: %v", addr, err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("writing to %s: %v", addr, err)
	}
	return got
}

func TestTCPProxy(t *testing.T) {
	t.Parallel()
	echo := startTCPEcho(t)
	dead := closedPort(t)
	listeners := []string{
		tcpProxyListener("tcp", "stat_prefix: echo\ncluster: echo", ""),
		tcpProxyListener("retry", "stat_prefix: retry\ncluster: flaky\nmax_connect_attempts: 3", ""),
		tcpProxyListener("down", "stat_prefix: down\ncluster: dead", ""),
		tcpProxyListener("split", `stat_prefix: split
weighted_clusters:
  clusters:
  - {name: wa, weight: 1}
  - {name: wb, weight: 1}`, ""),
	}
	clusters := []string{
		testutil.StaticClusterYAML("echo", "", echo.Addr),
		testutil.StaticClusterYAML("flaky", "", "127.0.0.1:"+itoa(dead), echo.Addr),
		testutil.StaticClusterYAML("dead", "", "127.0.0.1:"+itoa(dead)),
		testutil.StaticClusterYAML("wa", "", echo.Addr),
		testutil.StaticClusterYAML("wb", "", echo.Addr),
	}
	l := startLegate(t, bootstrapYAML(listeners, clusters), nil)

	t.Run("echo", func(t *testing.T) {
		msg := bytes.Repeat([]byte("legate tcp proxy "), 20000)
		if got := exchange(t, l.Addr("tcp"), msg); !bytes.Equal(got, msg) {
			t.Fatalf("echoed %d bytes, want %d identical", len(got), len(msg))
		}
		n := len(msg)
		eventually(t, 10*time.Second, "tcp proxy stats", func() bool {
			s := l.Stats(t)
			return s["tcp.echo.downstream_cx_total"] == "1" &&
				s["tcp.echo.downstream_cx_rx_bytes_total"] == itoa(n) &&
				s["tcp.echo.downstream_cx_tx_bytes_total"] == itoa(n) &&
				s["cluster.echo.upstream_cx_tx_bytes_total"] == itoa(n) &&
				s["cluster.echo.upstream_cx_destroy"] == "1"
		})
	})

	t.Run("connect retried on another host", func(t *testing.T) {
		for i := range 3 {
			msg := []byte("retry " + itoa(i))
			if got := exchange(t, l.Addr("retry"), msg); !bytes.Equal(got, msg) {
				t.Fatalf("connection %d: got %q", i, got)
			}
		}
		if n := l.Counter(t, "cluster.flaky.upstream_cx_connect_fail"); n < 1 {
			t.Errorf("upstream_cx_connect_fail = %d, want the dead host's failures counted", n)
		}
	})

	t.Run("connect failure closes downstream", func(t *testing.T) {
		// Nothing is sent: bytes left unread when the proxy closes would
		// turn its close into a reset (as in Envoy).
		if got := exchange(t, l.Addr("down"), nil); len(got) != 0 {
			t.Fatalf("got %q from a dead upstream", got)
		}
		eventually(t, 10*time.Second, "connect attempts exceeded", func() bool {
			return l.Counter(t, "cluster.dead.upstream_cx_connect_attempts_exceeded") == 1
		})
	})

	t.Run("weighted clusters", func(t *testing.T) {
		// Equal weights: 60 connections all landing on one cluster would
		// happen with probability 2^-59.
		for i := 0; i < 60; i++ {
			if got := exchange(t, l.Addr("split"), []byte("x")); string(got) != "x" {
				t.Fatalf("got %q", got)
			}
		}
		a, b := l.Counter(t, "cluster.wa.upstream_cx_total"), l.Counter(t, "cluster.wb.upstream_cx_total")
		if a < 1 || b < 1 || a+b != 60 {
			t.Errorf("connections per cluster: wa=%d wb=%d, want both used, 60 in all", a, b)
		}
	})
}

// TestTCPProxyTLSPassthroughExample validates Envoy's own TLS passthrough
// example, which is a bare tcp_proxy.
func TestTCPProxyTLSPassthroughExample(t *testing.T) {
	t.Parallel()
	f := filepath.Join(examplesDir(t), "tls", "envoy-https-passthrough.yaml")
	if _, err := os.Stat(f); err != nil {
		t.Skipf("SKIP: %v", err)
	}
	out, err := exec.Command(legatetest.Bin(), "--mode", "validate", "-c", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestTCPProxyTLSPassthrough proxies a TLS session end to end: legate sees
// only bytes.
func TestTCPProxyTLSPassthrough(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	srv := pki.Issue(t, "backend", false, "backend.test")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srv.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				b := make([]byte, 5)
				if _, err := io.ReadFull(c, b); err == nil {
					c.Write([]byte("tls:" + string(b)))
				}
			}()
		}
	}()
	cfg := bootstrapYAML(
		[]string{tcpProxyListener("pass", "stat_prefix: pass\ncluster: backend", "")},
		[]string{testutil.StaticClusterYAML("backend", "", ln.Addr().String())},
	)
	l := startLegate(t, cfg, nil)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", l.Addr("pass"),
		&tls.Config{RootCAs: pki.Pool, ServerName: "backend.test"})
	if err != nil {
		t.Fatalf("TLS through the proxy: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	c.Write([]byte("hello"))
	got, _ := io.ReadAll(c)
	if string(got) != "tls:hello" {
		t.Fatalf("got %q", got)
	}
}

// fileAccessLog is an access_log entry writing format to path.
func fileAccessLog(path, format string) string {
	return fmt.Sprintf(`access_log:
- name: envoy.access_loggers.file
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: %s
    log_format:
      text_format_source:
        inline_string: %q`, path, format)
}

// readLines polls a log file until it has n lines (the writer flushes
// asynchronously) and returns them.
func readLines(t *testing.T, path string, n int) []string {
	t.Helper()
	var lines []string
	eventually(t, 15*time.Second, fmt.Sprintf("%d lines in %s", n, filepath.Base(path)), func() bool {
		b, _ := os.ReadFile(path)
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		return len(b) > 0 && len(lines) >= n
	})
	if len(lines) != n {
		t.Fatalf("%s has %d lines, want %d:\n%s", filepath.Base(path), len(lines), n, strings.Join(lines, "\n"))
	}
	return lines
}

// TestTCPProxyAccessLogs checks the TCP proxy's access log and the
// listener access log: one line per connection, on the TCP proxy and on an
// HTTP listener alike.
func TestTCPProxyAccessLogs(t *testing.T) {
	t.Parallel()
	echo := startTCPEcho(t)
	dead := closedPort(t)
	httpUp := startUpstream(t, "web", nil)
	dir := t.TempDir()
	tcpLog := filepath.Join(dir, "tcp.log")
	connLog := filepath.Join(dir, "conn.log")
	httpConnLog := filepath.Join(dir, "http-conn.log")

	const tcpFormat = "%UPSTREAM_HOST% %BYTES_RECEIVED% %BYTES_SENT% %RESPONSE_FLAGS%\n"
	const connFormat = "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% %BYTES_RECEIVED% %BYTES_SENT% %RESPONSE_FLAGS%\n"
	listeners := []string{
		tcpProxyListener("tcp", "stat_prefix: logged\ncluster: echo\n"+fileAccessLog(tcpLog, tcpFormat),
			fileAccessLog(connLog, connFormat)),
		tcpProxyListener("down", "stat_prefix: down\ncluster: dead\n"+fileAccessLog(tcpLog, tcpFormat), ""),
		// An HTTP listener logs connections too, not requests.
		strings.Replace(listenerYAML("web", routeAll("web"), ""), "  filter_chains:",
			indent(fileAccessLog(httpConnLog, "conn %CONNECTION_ID% %BYTES_RECEIVED% %BYTES_SENT%\n"), 2)+"\n  filter_chains:", 1),
	}
	clusters := []string{
		testutil.StaticClusterYAML("echo", "", echo.Addr),
		testutil.StaticClusterYAML("dead", "", "127.0.0.1:"+itoa(dead)),
		testutil.StaticClusterYAML("web", "", httpUp.Addr),
	}
	l := startLegate(t, bootstrapYAML(listeners, clusters), nil)

	for _, msg := range []string{"first", "the second one"} {
		if got := exchange(t, l.Addr("tcp"), []byte(msg)); string(got) != msg {
			t.Fatalf("echo: %q", got)
		}
	}
	if got := exchange(t, l.Addr("down"), nil); len(got) != 0 {
		t.Fatalf("dead upstream answered %q", got)
	}

	// Lines come in the order connections close, which the test does
	// not fix.
	sameLines(t, "tcp_proxy log", readLines(t, tcpLog, 3), []string{
		echo.Addr + " 5 5 -",
		echo.Addr + " 14 14 -",
		"127.0.0.1:" + itoa(dead) + " 0 0 UF,URX",
	})
	sameLines(t, "listener log", readLines(t, connLog, 2), []string{
		"127.0.0.1 echo " + echo.Addr + " 5 5 -",
		"127.0.0.1 echo " + echo.Addr + " 14 14 -",
	})

	// Three requests on one keep-alive connection: one listener line.
	c, err := net.DialTimeout("tcp", l.Addr("web"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(15 * time.Second))
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }, MaxIdleConnsPerHost: 1}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range 3 {
		resp, err := hc.Get(l.URL("web", "/"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	tr.CloseIdleConnections()
	line := readLines(t, httpConnLog, 1)[0]
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "conn" || f[2] == "0" || f[3] == "0" {
		t.Errorf("HTTP listener log line %q: want conn <id> <rx> <tx>, bytes non-zero", line)
	}
}

// sameLines compares log lines ignoring their order.
func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s:\n%s\nwant (any order):\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
