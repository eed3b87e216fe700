package integration

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestSlowloris: a thousand connections trickle their request headers a
// byte at a time (HTTP/1.1), or stall inside an HTTP/2 HEADERS frame. Each
// is closed once request_headers_timeout has passed since its first byte,
// and a well-behaved client is served all along.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	const (
		h1Conns = 900
		h2Conns = 100
		timeout = 2 * time.Second
	)
	up := startUpstream(t, "up", nil)
	hcm := "request_headers_timeout: 2s\n" + routeAll("up")
	l := startLegate(t, bootstrapYAML([]string{listenerYAML("slow", hcm, "")}, []string{staticCluster("up", "", up.Addr)}), nil)
	addr := l.Addr("slow")

	var open atomic.Int64
	var wg sync.WaitGroup
	lifetimes := make(chan time.Duration, h1Conns+h2Conns)
	start := func(h2 bool) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		open.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			defer open.Add(-1)
			began := time.Now()
			closed := make(chan struct{})
			go func() {
				// The server closing the connection ends the read.
				io.Copy(io.Discard, c)
				close(closed)
			}()
			if h2 {
				io.WriteString(c, http2.ClientPreface)
				http2.NewFramer(c, nil).WriteSettings()
				// A HEADERS frame header announcing 100 bytes, then 3 of them.
				c.Write([]byte{0, 0, 100, 1, 4, 0, 0, 0, 1, 0x82, 0x86, 0x84})
			}
			req := "GET /slow HTTP/1.1\r\nHost: legate\r\nX-Slow: " + string(make([]byte, 100)) + "\r\n\r\n"
			for i := 0; ; i++ {
				select {
				case <-closed:
					lifetimes <- time.Since(began)
					return
				case <-time.After(200 * time.Millisecond):
				}
				if !h2 && i < len(req) {
					c.Write([]byte{req[i]})
				}
				if time.Since(began) > 30*time.Second {
					lifetimes <- time.Since(began)
					return
				}
			}
		}()
	}
	for i := range h1Conns + h2Conns {
		start(i >= h1Conns)
	}
	// Legitimate traffic is served while the trickling connections wait.
	for range 5 {
		resp, _ := httpGet(t, l.URL("slow", "/fine"))
		if resp.StatusCode != 200 {
			t.Fatalf("legitimate request: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	close(lifetimes)
	var longest time.Duration
	for d := range lifetimes {
		longest = max(longest, d)
	}
	// Each connection's first byte is written 200 ms after it opens; the
	// bound is the timeout from then, plus scheduling slack on a loaded
	// machine.
	if longest > timeout+3*time.Second {
		t.Errorf("a trickling connection lived %v (request_headers_timeout %v)", longest, timeout)
	}
	if n := up.Requests.Load(); n != 5 {
		t.Errorf("upstream saw %d requests, want the 5 legitimate ones", n)
	}
	if n := l.Counter(t, "http.slow.downstream_rq_header_timeout"); n < h1Conns {
		t.Errorf("downstream_rq_header_timeout = %d, want >= %d", n, h1Conns)
	}
	t.Logf("longest trickling connection: %v", longest)
}
