package connpool

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// auto_config: ALPN picks HTTP/2 when the upstream offers it, HTTP/1.1
// otherwise, and the pool keeps using what was chosen.
func TestAutoConfigFollowsALPN(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h2    bool
		proto string
	}{{"h2 upstream", true, "HTTP/2.0"}, {"http/1.1 upstream", false, "HTTP/1.1"}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, r.Proto)
			}))
			srv.EnableHTTP2 = tc.h2
			srv.StartTLS()
			t.Cleanup(srv.Close)
			p := newTestPool(t, srv.Listener.Addr().String(), cluster.Settings{
				Protocol: cluster.AutoHTTP, TLS: &tls.Config{InsecureSkipVerify: true},
				H2MaxConcurrentStreams: 100,
			})
			for range 3 {
				resp, err := p.RoundTrip(testCtx(t), get("/"))
				if err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, resp); got != tc.proto {
					t.Fatalf("upstream spoke %s, want %s", got, tc.proto)
				}
			}
			h1, h2 := p.counter("upstream_cx_http1_total"), p.counter("upstream_cx_http2_total")
			if p.counter("upstream_cx_total") != 1 || (tc.h2 && h2 != 1) || (!tc.h2 && h1 != 1) || h1+h2 != 1 {
				t.Errorf("cx_total %d, http1 %d, http2 %d", p.counter("upstream_cx_total"), h1, h2)
			}
		})
	}
}

// Without TLS there is no ALPN: HTTP/1.1.
func TestAutoConfigPlaintextIsHTTP1(t *testing.T) {
	addr, _ := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }))
	p := newTestPool(t, addr, cluster.Settings{Protocol: cluster.AutoHTTP, H2MaxConcurrentStreams: 100})
	resp, err := p.RoundTrip(testCtx(t), get("/"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "HTTP/1.1" {
		t.Fatalf("spoke %s", got)
	}
	if p.counter("upstream_cx_http1_total") != 1 {
		t.Errorf("upstream_cx_http1_total = %d", p.counter("upstream_cx_http1_total"))
	}
}
