package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// h2cClient speaks HTTP/2 with prior knowledge over cleartext.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{Protocols: &p}}
}

func tlsClient(cfg *tls.Config) *http.Client {
	return &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true},
	}
}

// upgradeUpstream answers any request with 101 and then echoes bytes.
func upgradeUpstream(t *testing.T) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &Upstream{Name: "upgrade", Addr: ln.Addr().String(), Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.Conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				u.Requests.Add(1)
				if !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
					fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
				_, _ = io.Copy(c, br)
			}()
		}
	}()
	return u
}

func TestHCM(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	srvCert := pki.Issue(t, "legate", false, "localhost", "127.0.0.1")
	cliCert := pki.Issue(t, "client", true)
	certFile := writeFile(t, "srv.crt", srvCert.CertPEM)
	keyFile := writeFile(t, "srv.key", srvCert.KeyPEM)

	echo := startUpstream(t, "echo", nil)
	h2up := startH2CUpstream(t, "h2echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Resp-Trailer, X-Got-Req-Trailer")
		w.Header().Set("X-Proto", r.Proto)
		w.WriteHeader(200)
		_, _ = w.Write(body)
		w.Header().Set("X-Resp-Trailer", "done")
		w.Header().Set("X-Got-Req-Trailer", r.Trailer.Get("X-Req-Trailer"))
	}))
	upg := upgradeUpstream(t)

	// Streaming upstreams: /upload reports what it read and signals the
	// first bytes; /stream sends a first piece, then waits.
	firstBytes := make(chan struct{}, 1)
	sendLast := make(chan struct{})
	stream := startUpstream(t, "stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			h := sha256.New()
			buf := make([]byte, 32<<10)
			var n int64
			signalled := false
			for {
				k, err := r.Body.Read(buf)
				h.Write(buf[:k])
				n += int64(k)
				if n > 0 && !signalled {
					signalled = true
					firstBytes <- struct{}{}
				}
				if err != nil {
					break
				}
			}
			fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
		case "/stream":
			_, _ = io.WriteString(w, "first-piece;")
			w.(http.Flusher).Flush()
			select {
			case <-sendLast:
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "last-piece")
		}
	}))

	routes := `route_config:
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: {prefix: "/h2"}
      route: {cluster: h2up}
    - match: {prefix: "/ws"}
      route: {cluster: upg}
    - match: {prefix: "/upload"}
      route: {cluster: stream}
    - match: {prefix: "/stream"}
      route: {cluster: stream}
    - match: {prefix: "/"}
      route: {cluster: echo}
`
	tlsCert := func(inline bool, extra string) string {
		var c string
		if inline {
			c = "common_tls_context:\n  alpn_protocols: [h2, http/1.1]\n  tls_certificates:\n  - certificate_chain:\n      inline_string: " +
				inlineYAML(srvCert.CertPEM, "        ") + "\n    private_key:\n      inline_string: " + inlineYAML(srvCert.KeyPEM, "        ")
		} else {
			c = "common_tls_context:\n  alpn_protocols: [h2, http/1.1]\n  tls_certificates:\n  - certificate_chain: {filename: " + certFile +
				"}\n    private_key: {filename: " + keyFile + "}"
		}
		if extra != "" {
			c += "\n" + extra
		}
		return c
	}
	cfg := bootstrapYAML([]string{
		listenerYAML("http", routes+"upgrade_configs: [{upgrade_type: websocket}]", ""),
		listenerYAML("noup", routes, ""),
		listenerYAML("xff", routes+"use_remote_address: true\nxff_num_trusted_hops: 1\nserver_name: legate-test", ""),
		listenerYAML("tlsfile", routes, tlsCert(false, "")),
		listenerYAML("tlsinline13", routes, tlsCert(true, "  tls_params: {tls_minimum_protocol_version: TLSv1_3}")),
		listenerYAML("tls12", routes, tlsCert(true, "  tls_params: {tls_maximum_protocol_version: TLSv1_2}")),
		listenerYAML("mtls", routes, tlsCert(true, "  validation_context:\n    trusted_ca:\n      inline_string: "+
			inlineYAML(pki.CAPEM, "        ")+"\nrequire_client_certificate: true")),
	}, []string{
		testutil.StaticClusterYAML("echo", "", echo.Addr),
		testutil.StaticClusterYAML("h2up", "typed_extension_protocol_options:\n  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"+
			"    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"+
			"    explicit_http_config: {http2_protocol_options: {}}", h2up.Addr),
		testutil.StaticClusterYAML("upg", "", upg.Addr),
		testutil.StaticClusterYAML("stream", "", stream.Addr),
	})
	l := startLegate(t, cfg, nil)

	t.Run("days until first cert expiring", func(t *testing.T) {
		// The test PKI's leaf certificates are valid for 24 hours.
		if got := l.Counter(t, "server.days_until_first_cert_expiring"); got != 0 {
			t.Errorf("server.days_until_first_cert_expiring = %d, want 0", got)
		}
	})

	t.Run("http1 keep-alive", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
		conns := map[string]bool{}
		for i := 0; i < 5; i++ {
			resp, body := do(t, c, mustReq(t, "GET", l.URL("http", "/ka"), nil))
			e := decodeEcho(t, body)
			if resp.StatusCode != 200 || e.Upstream != "echo" || resp.Proto != "HTTP/1.1" {
				t.Fatalf("got %d %s %+v", resp.StatusCode, resp.Proto, e)
			}
			conns[e.Remote] = true
		}
		// The upstream side: one pooled connection served all five.
		if len(conns) != 1 {
			t.Errorf("upstream saw %d connections for 5 sequential requests, want 1", len(conns))
		}
		before := l.Counter(t, "http.http.downstream_cx_total")
		if before != 1 {
			t.Errorf("http.http.downstream_cx_total = %d, want 1 (client keep-alive)", before)
		}
	})

	t.Run("h2 prior knowledge", func(t *testing.T) {
		resp, body := do(t, h2cClient(), mustReq(t, "POST", l.URL("http", "/pk"), strings.NewReader("hi")))
		e := decodeEcho(t, body)
		if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || e.Body != "hi" || e.Method != "POST" {
			t.Errorf("got %d %s %+v", resp.StatusCode, resp.Proto, e)
		}
	})

	t.Run("h2 prior knowledge curl", func(t *testing.T) {
		out, stderr, err := runCmd(t, "curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", l.URL("http", "/curl"))
		if err != nil || out != "200 2" {
			t.Errorf("curl: %q %v %s", out, err, stderr)
		}
	})

	for _, tc := range []struct{ name, listener string }{{"by filename", "tlsfile"}, {"inline", "tlsinline13"}} {
		t.Run("h2 over TLS ALPN "+tc.name, func(t *testing.T) {
			c := tlsClient(&tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
			resp, body := do(t, c, mustReq(t, "GET", "https://"+l.Addr(tc.listener)+"/tls", nil))
			e := decodeEcho(t, body)
			if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || e.Upstream != "echo" {
				t.Errorf("got %d %s %+v", resp.StatusCode, resp.Proto, e)
			}
			if got := e.Header("x-forwarded-proto"); got != "https" {
				t.Errorf("x-forwarded-proto = %q, want https", got)
			}
			caFile := writeFile(t, "ca.pem", pki.CAPEM)
			out, stderr, err := runCmd(t, "curl", "-sS", "--http2", "--cacert", caFile, "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
				"https://localhost:"+itoa(l.Port(tc.listener))+"/curl")
			if err != nil || out != "200 2" {
				t.Errorf("curl --http2: %q %v %s", out, err, stderr)
			}
			out, stderr, err = runCmd(t, "curl", "-sS", "--http1.1", "--cacert", caFile, "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
				"https://localhost:"+itoa(l.Port(tc.listener))+"/curl")
			if err != nil || out != "200 1.1" {
				t.Errorf("curl --http1.1: %q %v %s", out, err, stderr)
			}
		})
	}

	t.Run("TLS versions", func(t *testing.T) {
		for _, tc := range []struct {
			listener string
			min, max uint16
			ok       bool
		}{
			{"tlsinline13", tls.VersionTLS12, tls.VersionTLS12, false},
			{"tlsinline13", tls.VersionTLS13, tls.VersionTLS13, true},
			{"tls12", tls.VersionTLS13, tls.VersionTLS13, false},
			{"tls12", tls.VersionTLS12, tls.VersionTLS13, true},
		} {
			conn, err := tls.Dial("tcp", l.Addr(tc.listener), &tls.Config{RootCAs: pki.Pool, ServerName: "localhost", MinVersion: tc.min, MaxVersion: tc.max})
			if (err == nil) != tc.ok {
				t.Errorf("%s with TLS %x..%x: handshake err %v, want ok=%v", tc.listener, tc.min, tc.max, err, tc.ok)
			}
			if err == nil {
				if tc.listener == "tls12" && conn.ConnectionState().Version != tls.VersionTLS12 {
					t.Errorf("tls12 listener negotiated %x", conn.ConnectionState().Version)
				}
				conn.Close()
			}
		}
	})

	t.Run("client certificate required", func(t *testing.T) {
		noCert := tlsClient(&tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
		if resp, err := noCert.Get("https://" + l.Addr("mtls") + "/m"); err == nil {
			resp.Body.Close()
			t.Errorf("request without client certificate succeeded: %d", resp.StatusCode)
		}
		other := newPKI(t).Issue(t, "stranger", true)
		wrongCA := tlsClient(&tls.Config{RootCAs: pki.Pool, ServerName: "localhost", Certificates: []tls.Certificate{other.TLS}})
		if resp, err := wrongCA.Get("https://" + l.Addr("mtls") + "/m"); err == nil {
			resp.Body.Close()
			t.Errorf("request with an untrusted client certificate succeeded: %d", resp.StatusCode)
		}
		withCert := tlsClient(&tls.Config{RootCAs: pki.Pool, ServerName: "localhost", Certificates: []tls.Certificate{cliCert.TLS}})
		resp, body := do(t, withCert, mustReq(t, "GET", "https://"+l.Addr("mtls")+"/m", nil))
		if resp.StatusCode != 200 || decodeEcho(t, body).Upstream != "echo" {
			t.Errorf("with client cert: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("streaming upload", func(t *testing.T) {
		const size = 8 << 20
		pr, pw := io.Pipe()
		h := sha256.New()
		go func() {
			chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
			h.Write(chunk)
			if _, err := pw.Write(chunk); err != nil {
				return
			}
			// The rest is sent only once the upstream has seen the start:
			// a proxy that buffered whole bodies would stall here.
			select {
			case <-firstBytes:
			case <-time.After(10 * time.Second):
				pw.CloseWithError(fmt.Errorf("upstream saw no bytes before the body ended"))
				return
			}
			for sent := len(chunk); sent < size; sent += len(chunk) {
				h.Write(chunk)
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Close()
		}()
		resp, body := do(t, defaultClient, mustReq(t, "POST", l.URL("http", "/upload"), pr))
		want := fmt.Sprintf("%d %s", size, hex.EncodeToString(h.Sum(nil)))
		if resp.StatusCode != 200 || body != want {
			t.Errorf("upload: %d %q, want %q", resp.StatusCode, body, want)
		}
	})

	t.Run("streaming response", func(t *testing.T) {
		resp, err := defaultClient.Get(l.URL("http", "/stream"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		first := make([]byte, len("first-piece;"))
		if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first-piece;" {
			t.Fatalf("first piece: %q %v", first, err)
		}
		// Only now does the upstream send the rest.
		close(sendLast)
		rest, err := io.ReadAll(resp.Body)
		if err != nil || string(rest) != "last-piece" {
			t.Errorf("rest: %q %v", rest, err)
		}
	})

	t.Run("h2 trailers end to end", func(t *testing.T) {
		req := mustReq(t, "POST", l.URL("http", "/h2/trailers"), io.MultiReader(strings.NewReader("body")))
		req.Trailer = http.Header{"X-Req-Trailer": nil}
		pr, pw := io.Pipe()
		req.Body = pr
		req.ContentLength = -1
		go func() {
			_, _ = pw.Write([]byte("body"))
			req.Trailer.Set("X-Req-Trailer", "client-side")
			pw.Close()
		}()
		resp, body := do(t, h2cClient(), req)
		if resp.StatusCode != 200 || body != "body" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if got := resp.Header.Get("X-Proto"); got != "HTTP/2.0" {
			t.Errorf("upstream spoke %q, want HTTP/2.0", got)
		}
		if got := resp.Trailer.Get("X-Resp-Trailer"); got != "done" {
			t.Errorf("response trailer = %q, want done (trailers %v)", got, resp.Trailer)
		}
		// The upstream (Go's HTTP/2 server) keeps only declared trailers,
		// so this also checks the "trailer" declaration is forwarded.
		if got := resp.Trailer.Get("X-Got-Req-Trailer"); got != "client-side" {
			t.Errorf("request trailer seen by the upstream = %q, want client-side", got)
		}
	})

	t.Run("expect 100-continue curl", func(t *testing.T) {
		data := writeFile(t, "body.bin", strings.Repeat("x", 100000))
		out, stderr, err := runCmd(t, "curl", "-sS", "-v", "-H", "Expect: 100-continue", "--expect100-timeout", "30",
			"--data-binary", "@"+data, l.URL("http", "/continue"))
		if err != nil {
			t.Fatalf("curl: %v %s", err, stderr)
		}
		if !strings.Contains(stderr, "HTTP/1.1 100 Continue") {
			t.Errorf("no 100 Continue seen by curl:\n%s", stderr)
		}
		e := decodeEcho(t, out)
		if len(e.Body) != 100000 {
			t.Errorf("upstream got %d body bytes", len(e.Body))
		}
	})

	t.Run("upgrade allowed", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", l.Addr("http"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 101 {
			t.Fatalf("status %d, want 101", resp.StatusCode)
		}
		for _, msg := range []string{"ping", "pong-and-more"} {
			fmt.Fprint(c, msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
				t.Fatalf("echo through upgrade: %q %v", got, err)
			}
		}
	})

	t.Run("upgrade refused", func(t *testing.T) {
		before := upg.Requests.Load()
		status, body, _, err := rawExchange(l.Addr("noup"), "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 10*time.Second, false)
		if status != 403 {
			t.Errorf("got %d %q %v, want 403", status, body, err)
		}
		if upg.Requests.Load() != before {
			t.Error("refused upgrade reached the upstream")
		}
	})

	t.Run("forwarding headers", func(t *testing.T) {
		// Plain listener: x-request-id generated, x-forwarded-proto set,
		// the default server name, upstream service time.
		resp, body := httpGet(t, l.URL("http", "/hdr"))
		e := decodeEcho(t, body)
		if id := e.Header("x-request-id"); !uuidRE.MatchString(id) {
			t.Errorf("x-request-id %q is not a UUID", id)
		}
		if got := e.Header("x-forwarded-proto"); got != "http" {
			t.Errorf("x-forwarded-proto = %q", got)
		}
		if got := resp.Header.Get("server"); got != "envoy" {
			t.Errorf("server = %q, want envoy", got)
		}
		if resp.Header.Get("x-envoy-upstream-service-time") == "" {
			t.Error("no x-envoy-upstream-service-time")
		}
		// A client's x-request-id is preserved.
		req := mustReq(t, "GET", l.URL("http", "/hdr"), nil)
		req.Header.Set("x-request-id", "client-chosen-id")
		_, body = do(t, defaultClient, req)
		if got := decodeEcho(t, body).Header("x-request-id"); got != "client-chosen-id" {
			t.Errorf("x-request-id = %q, want the client's", got)
		}

		// use_remote_address + one trusted hop.
		req = mustReq(t, "GET", l.URL("xff", "/hdr"), nil)
		req.Header.Set("x-forwarded-for", "203.0.113.7")
		resp, body = do(t, defaultClient, req)
		e = decodeEcho(t, body)
		var hops []string
		for _, h := range strings.Split(e.Header("x-forwarded-for"), ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
		if len(hops) != 2 || hops[0] != "203.0.113.7" || hops[1] != "127.0.0.1" {
			t.Errorf("x-forwarded-for = %q, want 203.0.113.7 then 127.0.0.1", e.Header("x-forwarded-for"))
		}
		if got := e.Header("x-forwarded-proto"); got != "http" {
			t.Errorf("x-forwarded-proto = %q", got)
		}
		if got := resp.Header.Get("server"); got != "legate-test" {
			t.Errorf("server = %q, want legate-test", got)
		}
	})
}
