package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"
)

// Slow and idle clients (issue 9, item 3): header blocks trickled byte by
// byte are cut off at request_headers_timeout while legitimate traffic is
// served; listener and global connection limits; the overload manager.

// TestSlowloris opens 2000 connections that trickle a header block one
// line every 500 ms. Each is answered 408 and closed at the configured
// request_headers_timeout (2 s), and requests on other connections are
// served throughout.
func TestSlowloris(t *testing.T) {
	const (
		trickling = 2000
		bound     = 2 * time.Second
	)
	up := startUpstream(t, "up", nil)
	cfg := bootstrapYAML([]string{chainListener("edge", []string{hcmFilter("edge", "up", "request_headers_timeout: 2s")}, "", "")},
		[]string{testutil.StaticClusterYAML("up", "", up.Addr)})
	l := startLegate(t, cfg, nil)
	addr := l.Addr("edge")

	type slow struct {
		c      net.Conn
		opened time.Time
	}
	conns := make([]slow, 0, trickling)
	for range trickling {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: slow\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, slow{c, time.Now()})
	}
	// Each connection's fate: how long it stayed open, what it was told.
	var (
		wg      sync.WaitGroup
		got408  atomic.Int64
		tooLong atomic.Int64
		maxOpen atomic.Int64
	)
	stopTrickle := make(chan struct{})
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopTrickle:
				return
			case <-t.C:
				for _, s := range conns {
					s.c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
					io.WriteString(s.c, "X-Slow: 1\r\n")
				}
			}
		}
	}()
	for _, s := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			b, _ := io.ReadAll(bufio.NewReader(s.c))
			open := time.Since(s.opened)
			if strings.HasPrefix(string(b), "HTTP/1.1 408") {
				got408.Add(1)
			}
			if open > bound+3*time.Second {
				tooLong.Add(1)
			}
			for {
				m := maxOpen.Load()
				if int64(open) <= m || maxOpen.CompareAndSwap(m, int64(open)) {
					break
				}
			}
		}()
	}
	// Legitimate requests while the trickling connections are open.
	var served, slowest int64
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	c := newClient()
	for loop := true; loop; {
		select {
		case <-done:
			loop = false
		default:
			start := time.Now()
			resp, err := c.Get(l.URL("edge", "/"))
			if err != nil {
				t.Fatalf("a legitimate request failed during the attack: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("a legitimate request got %d", resp.StatusCode)
			}
			served++
			slowest = max(slowest, int64(time.Since(start)))
			time.Sleep(20 * time.Millisecond)
		}
	}
	close(stopTrickle)
	t.Logf("%d trickling connections: %d answered 408, longest open %v; %d legitimate requests served, slowest %v",
		trickling, got408.Load(), time.Duration(maxOpen.Load()).Round(time.Millisecond), served, time.Duration(slowest).Round(time.Millisecond))
	if n := tooLong.Load(); n > 0 {
		t.Errorf("%d trickling connections were open longer than %v", n, bound+3*time.Second)
	}
	if got408.Load() != trickling {
		t.Errorf("%d of %d trickling connections were answered 408", got408.Load(), trickling)
	}
	if served == 0 {
		t.Error("no legitimate request was served")
	}
	if got := l.Counter(t, "http.edge.downstream_rq_header_timeout"); got != trickling {
		t.Errorf("http.edge.downstream_rq_header_timeout = %d, want %d", got, trickling)
	}
}

// TestConnectionLimits: the per-listener runtime limit and the global
// one (overload.global_downstream_max_connections) close connections past
// them on accept, with Envoy's stats.
func TestConnectionLimits(t *testing.T) {
	up := startUpstream(t, "up", nil)
	cfg := bootstrapYAML([]string{
		chainListener("one", []string{hcmFilter("one", "up", "")}, "", ""),
		chainListener("two", []string{hcmFilter("two", "up", "")}, "", ""),
	}, []string{testutil.StaticClusterYAML("up", "", up.Addr)}) + `
layered_runtime:
  layers:
  - name: static
    static_layer:
      envoy.resource_limits.listener.one.connection_limit: 2
      overload.global_downstream_max_connections: 3
`
	l := startLegate(t, cfg, nil)
	// hold opens a connection and proves it is served.
	hold := func(name string) (net.Conn, bool) {
		c, err := net.Dial("tcp", l.Addr(name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		return c, err == nil && strings.HasPrefix(line, "HTTP/1.1 200")
	}
	for i := range 2 {
		if _, ok := hold("one"); !ok {
			t.Fatalf("connection %d to listener one was not served", i+1)
		}
	}
	if _, ok := hold("one"); ok {
		t.Error("a third connection to listener one (limit 2) was served")
	}
	if _, ok := hold("two"); !ok {
		t.Fatal("the first connection to listener two was not served")
	}
	if _, ok := hold("two"); ok {
		t.Error("a fourth connection in all (global limit 3) was served")
	}
	if got := l.Counter(t, "listener.127.0.0.1_"+itoa(l.Port("one"))+".downstream_cx_overflow"); got != 1 {
		t.Errorf("downstream_cx_overflow = %d, want 1", got)
	}
	if got := l.Counter(t, "listener.127.0.0.1_"+itoa(l.Port("two"))+".downstream_global_cx_overflow"); got != 1 {
		t.Errorf("downstream_global_cx_overflow = %d, want 1", got)
	}
}

// TestOverloadStopAcceptingRequests: a fixed_heap monitor whose limit the
// process is always over fires stop_accepting_requests and shrink_heap.
func TestOverloadStopAcceptingRequests(t *testing.T) {
	up := startUpstream(t, "up", nil)
	cfg := bootstrapYAML([]string{chainListener("edge", []string{hcmFilter("edge", "up", "")}, "", "")},
		[]string{testutil.StaticClusterYAML("up", "", up.Addr)}) + `
overload_manager:
  refresh_interval: 0.1s
  resource_monitors:
  - name: envoy.resource_monitors.fixed_heap
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig
      max_heap_size_bytes: 1048576
  actions:
  - name: envoy.overload_actions.shrink_heap
    triggers:
    - name: envoy.resource_monitors.fixed_heap
      threshold: {value: 0.95}
  - name: envoy.overload_actions.stop_accepting_requests
    triggers:
    - name: envoy.resource_monitors.fixed_heap
      threshold: {value: 0.98}
`
	l := startLegate(t, cfg, nil)
	eventually(t, 5*time.Second, "stop_accepting_requests to fire", func() bool {
		return l.Counter(t, "overload.envoy.overload_actions.stop_accepting_requests.active") == 1
	})
	resp, body := httpGet(t, l.URL("edge", "/"))
	if resp.StatusCode != 503 || body != "envoy overloaded" {
		t.Errorf("got %d %q, want 503 envoy overloaded", resp.StatusCode, body)
	}
	if got := l.Counter(t, "http.edge.downstream_rq_overload_close"); got != 1 {
		t.Errorf("downstream_rq_overload_close = %d", got)
	}
	if got := l.Counter(t, "overload.envoy.resource_monitors.fixed_heap.pressure"); got != 100 {
		t.Errorf("fixed_heap pressure = %d, want 100", got)
	}
	if got := l.Counter(t, "overload.envoy.overload_actions.shrink_heap.active"); got != 1 {
		t.Errorf("shrink_heap.active = %d", got)
	}
}
