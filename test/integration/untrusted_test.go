package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"
)

func TestUntrustedDownstream(t *testing.T) {
	t.Parallel()
	var seen sync.Map // request paths the upstream received
	up := startUpstream(t, "guarded", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.Path, true)
		if r.URL.Path == "/hop" {
			// Hop-by-hop headers an upstream might send back.
			w.Header().Set("Connection", "x-resp-hop")
			w.Header().Set("X-Resp-Hop", "1")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("Proxy-Connection", "keep-alive")
			w.Header().Set("X-Resp-Normal", "1")
		}
		echoHandler("guarded")(w, r)
	}))
	hcm := func(underscores string) string {
		return routeAll("up") + `
max_request_headers_kb: 8
request_headers_timeout: 1s
common_http_protocol_options:
  idle_timeout: 1s
  max_headers_count: 20
  headers_with_underscores_action: ` + underscores
	}
	l := startLegate(t, bootstrapYAML([]string{
		listenerYAML("reject", hcm("REJECT_REQUEST"), ""),
		listenerYAML("drop", hcm("DROP_HEADER"), ""),
	}, []string{testutil.StaticClusterYAML("up", "", up.Addr)}), nil)

	manyHeaders := ""
	for i := 0; i < 25; i++ {
		manyHeaders += fmt.Sprintf("X-H%d: v\r\n", i)
	}
	bigHeader := "X-Big: " + strings.Repeat("a", 9*1024) + "\r\n"

	var rejectedPaths []string
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"two different CLs", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", 400},
		{"bare LF in header", "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400},
		{"space in header name", "GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", 400},
		{"invalid header name char", "GET / HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400},
		{"CTL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400},
		{"header block too large", "GET / HTTP/1.1\r\nHost: x\r\n" + bigHeader + "\r\n", 431},
		{"too many headers", "GET / HTTP/1.1\r\nHost: x\r\n" + manyHeaders + "\r\n", 431},
		{"underscore rejected", "GET / HTTP/1.1\r\nHost: x\r\nX_Under: 1\r\n\r\n", 400},
	} {
		// A path of its own, so a late arrival is blamed on the right case.
		path := "/case-" + strings.ReplaceAll(tc.name, " ", "-")
		rejectedPaths = append(rejectedPaths, path)
		t.Run(tc.name, func(t *testing.T) {
			req := strings.Replace(tc.req, " / ", " "+path+" ", 1)
			status, body, closed, err := rawExchange(l.Addr("reject"), req, 10*time.Second, true)
			var problems []string
			if status != tc.status {
				problems = append(problems, fmt.Sprintf("status %d (body %q, err %v), want %d", status, body, err, tc.status))
			}
			if !closed {
				problems = append(problems, fmt.Sprintf("connection not closed after the %d", status))
			}
			if _, ok := seen.Load(path); ok {
				problems = append(problems, "the upstream saw the request; it must see none")
			}
			for _, p := range problems {
				t.Error(p)
			}
		})
	}

	// A bad chunk that arrives after the request went upstream can no longer
	// be kept from the upstream, but the client still gets the codec's 400
	// (not a 503 blaming the upstream) and the connection closes.
	t.Run("bad chunk after forwarding", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", l.Addr("reject"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := io.WriteString(c, "POST /late-bad-chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "upstream sees the request", func() bool {
			_, ok := seen.Load("/late-bad-chunk")
			return ok
		})
		if _, err := io.WriteString(c, "zz\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || string(body) != "Bad Request" {
			t.Errorf("got %d %q, want 400 Bad Request", resp.StatusCode, body)
		}
		if !resp.Close {
			t.Error("the 400 does not say connection: close")
		}
		if _, err := br.ReadByte(); err == nil {
			t.Error("connection still open after the 400")
		}
	})

	t.Run("underscore dropped", func(t *testing.T) {
		status, body, _, err := rawExchange(l.Addr("drop"), "GET /u HTTP/1.1\r\nHost: x\r\nX_Under: 1\r\nX-Fine: 2\r\n\r\n", 10*time.Second, false)
		if status != 200 {
			t.Fatalf("status %d %v", status, err)
		}
		e := decodeEcho(t, body)
		if e.Has("X_Under") || e.Header("x-fine") != "2" {
			t.Errorf("upstream headers %v: want X_Under dropped, X-Fine kept", e.Headers)
		}
	})

	t.Run("hop-by-hop stripped both ways", func(t *testing.T) {
		req := "GET /hop HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, x-custom\r\nX-Custom: secret\r\n" +
			"Keep-Alive: timeout=5\r\nTE: gzip\r\nProxy-Connection: keep-alive\r\nX-Normal: 1\r\n\r\n"
		c, err := net.DialTimeout("tcp", l.Addr("reject"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, req)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		e := decodeEcho(t, string(body))
		for _, h := range []string{"X-Custom", "Keep-Alive", "Te", "Proxy-Connection"} {
			if e.Has(h) {
				t.Errorf("upstream received hop-by-hop %s: %v", h, e.Headers[h])
			}
		}
		if c := e.Header("connection"); c != "" && !strings.EqualFold(c, "keep-alive") && !strings.EqualFold(c, "close") {
			t.Errorf("upstream received Connection: %q", c)
		}
		if e.Header("x-normal") != "1" {
			t.Error("end-to-end header X-Normal lost")
		}
		for _, h := range []string{"X-Resp-Hop", "Keep-Alive", "Proxy-Connection"} {
			if v := resp.Header.Values(h); len(v) > 0 {
				t.Errorf("client received hop-by-hop %s: %v", h, v)
			}
		}
		if strings.Contains(strings.ToLower(resp.Header.Get("Connection")), "x-resp-hop") {
			t.Errorf("client received Connection: %q", resp.Header.Get("Connection"))
		}
		if resp.Header.Get("X-Resp-Normal") != "1" {
			t.Error("end-to-end response header lost")
		}
	})

	// waitClosed reads until the peer closes; a deadline hit means legate
	// kept the connection open.
	waitClosed := func(t *testing.T, c net.Conn, br *bufio.Reader) string {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		rest, err := io.ReadAll(br)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection still open after 15 s (read %q)", rest)
		}
		return string(rest)
	}

	t.Run("request headers timeout", func(t *testing.T) {
		before := l.Counter(t, "http.reject.downstream_rq_header_timeout")
		c, err := net.DialTimeout("tcp", l.Addr("reject"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /slowl")
		rest := waitClosed(t, c, bufio.NewReader(c))
		if rest != "" && !strings.HasPrefix(rest, "HTTP/1.1 408") {
			t.Errorf("legate answered %q; want a 408 or a plain close", rest)
		}
		if after := l.Counter(t, "http.reject.downstream_rq_header_timeout"); after != before+1 {
			t.Errorf("downstream_rq_header_timeout %d → %d", before, after)
		}
	})

	t.Run("idle keep-alive timeout", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", l.Addr("reject"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("first request: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.Close {
			t.Fatal("legate closed a keep-alive connection after the response")
		}
		waitClosed(t, c, br)
		if n := l.Counter(t, "http.reject.downstream_cx_idle_timeout"); n < 1 {
			t.Errorf("downstream_cx_idle_timeout = %d", n)
		}
	})

	// Seconds later: no rejected request may have reached the upstream.
	for _, p := range rejectedPaths {
		if _, ok := seen.Load(p); ok {
			t.Errorf("the upstream received rejected request %s", p)
		}
	}
}
