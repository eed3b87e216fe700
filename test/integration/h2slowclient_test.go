package integration

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	"golang.org/x/net/http2"
)

// TestH2SlowHeaders: a thousand HTTP/2 connections each stall inside a
// HEADERS frame (the frame header promises 100 bytes, 3 arrive). Each is
// closed once request_headers_timeout has passed since the frame began,
// none reaches the upstream, and a well-behaved client is served all along.
func TestH2SlowHeaders(t *testing.T) {
	t.Parallel()
	const (
		conns   = 1000
		timeout = 2 * time.Second
	)
	up := startUpstream(t, "up", nil)
	hcm := "request_headers_timeout: 2s\n" + routeAll("up")
	l := startLegate(t, bootstrapYAML([]string{listenerYAML("slow", hcm, "")}, []string{testutil.StaticClusterYAML("up", "", up.Addr)}), nil)
	addr := l.Addr("slow")

	var wg sync.WaitGroup
	lifetimes := make(chan time.Duration, conns)
	for range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			io.WriteString(c, http2.ClientPreface)
			http2.NewFramer(c, nil).WriteSettings()
			began := time.Now()
			c.Write([]byte{0, 0, 100, 1, 4, 0, 0, 0, 1, 0x82, 0x86, 0x84})
			// The server closing the connection ends the read.
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			io.Copy(io.Discard, c)
			lifetimes <- time.Since(began)
		}()
	}
	// Legitimate traffic is served while the stalled connections wait.
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
	// The bound is the timeout plus scheduling slack on a loaded machine.
	if longest > timeout+3*time.Second {
		t.Errorf("a stalled connection lived %v (request_headers_timeout %v)", longest, timeout)
	}
	if n := up.Requests.Load(); n != 5 {
		t.Errorf("upstream saw %d requests, want the 5 legitimate ones", n)
	}
	t.Logf("longest stalled connection: %v", longest)
}
