package connpool

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/legate-proxy/legate/internal/testutil"

	"github.com/legate-proxy/legate/internal/testutil/loopback"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// hostileServer answers the first request on each connection with evil
// (which may carry bytes after a complete response) and every later one,
// on any connection, with "ok <path>". afterFirst, when set, is written
// once the test signals it (a late stray write on an idle connection).
type hostileServer struct {
	addr  string
	conns atomic.Int64
	late  chan string
}

func startHostile(t *testing.T, evil string) *hostileServer {
	t.Helper()
	hs := &hostileServer{late: make(chan string, 1)}
	var first atomic.Bool
	hs.addr = loopback.Serve(t, func(c net.Conn) {
		hs.conns.Add(1)
		br := bufio.NewReader(c)
		for {
			head, err := readRequestHead(br)
			if err != nil {
				return
			}
			path := strings.Fields(head)[1]
			if first.CompareAndSwap(false, true) {
				if _, err := io.WriteString(c, evil); err != nil {
					return
				}
				go func() {
					if s, ok := <-hs.late; ok {
						io.WriteString(c, s)
					}
				}()
				continue
			}
			body := "ok " + path
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(body))+"\r\n\r\n"+body)
		}
	})
	return hs
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func TestH1StrayBytesNeverReachTheNextRequest(t *testing.T) {
	cases := []struct {
		name, method, evil, late string
	}{
		{"second response", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON", ""},
		{"204 then bytes", "GET", "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON", ""},
		{"304 with a body", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 39\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"[:39], ""},
		{"HEAD with a body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", ""},
		{"late bytes while idle", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
			"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs := startHostile(t, tc.evil)
			p := newTestPool(t, hs.addr, cluster.Settings{})
			req := get("/first")
			req.Method = tc.method
			resp, err := p.RoundTrip(testCtx(t), req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if tc.late != "" {
				hs.late <- tc.late
				// The stray bytes must have reached our socket before the
				// next request takes the connection.
				testutil.WaitFor(t, "stray bytes on the idle connection", func() bool {
					c := <-p.idle
					defer func() { p.idle <- c }()
					return c.peekSocket() == idleData
				})
			}
			for i, path := range []string{"/second", "/third"} {
				resp, err := p.RoundTrip(testCtx(t), get(path))
				if err != nil {
					t.Fatalf("request %d: %v", i+2, err)
				}
				if got := readAll(t, resp); resp.Status != 200 || got != "ok "+path {
					t.Fatalf("request %d got %d %q, want 200 %q", i+2, resp.Status, got, "ok "+path)
				}
			}
			if v := p.counter("upstream_cx_protocol_error"); v != 1 {
				t.Errorf("upstream_cx_protocol_error = %d, want 1", v)
			}
			if n := hs.conns.Load(); n != 2 {
				t.Errorf("%d upstream connections, want 2 (the poisoned one closed, the next reused)", n)
			}
		})
	}
}

// An idle connection the upstream closed is found closed before reuse:
// the request goes out on a new one without the stale-retry path.
func TestH1IdleCloseDetectedBeforeReuse(t *testing.T) {
	var conns atomic.Int64
	addr := loopback.Serve(t, func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		if _, err := readRequestHead(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close()
	})
	p := newTestPool(t, addr, cluster.Settings{})
	for i := range 2 {
		resp, err := p.RoundTrip(testCtx(t), get("/"))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if i == 0 {
			testutil.WaitFor(t, "the upstream's FIN", func() bool {
				c := <-p.idle
				defer func() { p.idle <- c }()
				return c.peekSocket() == idleClosed
			})
		}
	}
	if v := p.counter("upstream_cx_destroy_remote"); v != 1 {
		t.Errorf("upstream_cx_destroy_remote = %d, want 1", v)
	}
	if v := p.counter("upstream_cx_protocol_error"); v != 0 {
		t.Errorf("upstream_cx_protocol_error = %d, want 0", v)
	}
}

// Over TLS, stray application data is caught too, while the TLS 1.3
// session tickets a server sends after the handshake are not mistaken for
// it (the connection is reused).
func TestH1TLSStrayAndTickets(t *testing.T) {
	var hijack atomic.Bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/evil" {
			hijack.Store(true)
			c, brw, _ := http.NewResponseController(w).Hijack()
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON")
			brw.Flush()
			go func() { io.Copy(io.Discard, c); c.Close() }()
			return
		}
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p := newTestPool(t, srv.Listener.Addr().String(), cluster.Settings{TLS: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}})
	do := func(path string) (int, string) {
		t.Helper()
		resp, err := p.RoundTrip(testCtx(t), get(path))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Status, readAll(t, resp)
	}
	for _, path := range []string{"/a", "/b", "/c"} {
		if st, got := do(path); st != 200 || got != "ok "+path {
			t.Fatalf("%s: %d %q", path, st, got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d TLS connections for 3 sequential requests, want 1", n)
	}
	do("/evil")
	for _, path := range []string{"/d", "/e"} {
		if st, got := do(path); st != 200 || got != "ok "+path {
			t.Fatalf("%s after the poisoned response: %d %q", path, st, got)
		}
	}
	if v := p.counter("upstream_cx_protocol_error"); v != 1 {
		t.Errorf("upstream_cx_protocol_error = %d, want 1", v)
	}
}
