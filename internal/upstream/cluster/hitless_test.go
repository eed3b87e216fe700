package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/testutil/loopback"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/upstream/connpool"
	"github.com/legate-proxy/legate/internal/xds"
)

// upstream is a real HTTP/1.1 server on loopback that answers with its
// name, holds /slow until released, and reports connections closing.
type upstream struct {
	name    string
	addr    *net.TCPAddr
	release chan struct{}
	slowIn  chan struct{}

	mu     sync.Mutex
	closed int
	open   int
	cond   *sync.Cond
}

func newUpstream(t *testing.T, name string) *upstream {
	u := &upstream{name: name, release: make(chan struct{}), slowIn: make(chan struct{}, 8)}
	u.cond = sync.NewCond(&u.mu)
	ln := loopback.Listen(t)
	u.addr = ln.Addr().(*net.TCPAddr)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				u.slowIn <- struct{}{}
				<-u.release
			}
			io.WriteString(w, u.name)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			u.mu.Lock()
			switch s {
			case http.StateNew:
				u.open++
			case http.StateClosed, http.StateHijacked:
				u.open--
				u.closed++
			}
			u.cond.Broadcast()
			u.mu.Unlock()
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return u
}

// waitClosed waits until n connections have closed; the test's own
// deadline bounds it.
func (u *upstream) waitClosed(n int) {
	u.mu.Lock()
	for u.closed < n {
		u.cond.Wait()
	}
	u.mu.Unlock()
}

func (u *upstream) counts() (open, closed int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.open, u.closed
}

func cdsFull(version string, cs ...*clusterv3.Cluster) *xds.Update {
	u := &xds.Update{Version: version, Full: true}
	for _, c := range cs {
		u.Resources = append(u.Resources, xds.Resource{Name: c.GetName(), Message: c})
	}
	return u
}

// get sends one request through the cluster behind ref, as the router
// does: load the cluster, pick a host, use its pool.
func get(t *testing.T, ref *cluster.Ref, path string) (string, error) {
	t.Helper()
	c := ref.Load()
	if c == nil {
		return "", fmt.Errorf("no cluster %q", ref.Name())
	}
	h := c.Pick(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := h.Pool().(*connpool.Pool).RoundTrip(ctx, &message.Request{
		Method: "GET", Scheme: "http", Authority: "up", Path: path, Protocol: message.HTTP11,
	})
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func newPoolManager(t *testing.T) (*cluster.Manager, *stats.Store) {
	st := stats.NewStore()
	m, err := cluster.NewManager(nil, cluster.Options{
		Stats:   st,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewPool: func(c *cluster.Cluster, h *cluster.Host) cluster.HostPool { return connpool.New(c, h) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.Start(context.Background())
	return m, st
}

// TestCDSSwapsUpstreams adds, modifies and removes a cluster over real
// upstreams: each change takes effect for the next request, and the
// replaced cluster's idle keep-alive connection is closed.
func TestCDSSwapsUpstreams(t *testing.T) {
	a, b := newUpstream(t, "A"), newUpstream(t, "B")
	m, st := newPoolManager(t)
	ref := m.Ref("web")
	if _, err := get(t, ref, "/"); err == nil {
		t.Fatal("request to an unknown cluster succeeded")
	}
	if err := m.CDS().Update(cdsFull("1", testutil.StaticCluster("web", a.addr))); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if body, err := get(t, ref, "/"); err != nil || body != "A" {
			t.Fatalf("v1: %q %v", body, err)
		}
	}
	if open, _ := a.counts(); open != 1 {
		t.Fatalf("keep-alive: %d connections to A, want 1", open)
	}
	if err := m.CDS().Update(cdsFull("2", testutil.StaticCluster("web", b.addr))); err != nil {
		t.Fatal(err)
	}
	if body, err := get(t, ref, "/"); err != nil || body != "B" {
		t.Fatalf("v2: %q %v", body, err)
	}
	a.waitClosed(1) // the old cluster's idle connection
	if err := m.CDS().Update(cdsFull("3")); err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, ref, "/"); err == nil {
		t.Fatal("request to a removed cluster succeeded")
	}
	b.waitClosed(1)
	// The pools count connections: one to A (v1), one to B (v2), in
	// the one cluster.web scope.
	if n := st.Counter("cluster.web.upstream_cx_total").Value(); n != 2 {
		t.Fatalf("upstream_cx_total = %d: stats must carry across versions", n)
	}
}

// TestRemovedClusterFinishesInFlight removes a cluster while one request
// is in flight on it and another connection sits idle: the idle one closes
// at once, the request completes, then its connection closes too.
func TestRemovedClusterFinishesInFlight(t *testing.T) {
	a := newUpstream(t, "A")
	m, _ := newPoolManager(t)
	ref := m.Ref("web")
	if err := m.CDS().Update(cdsFull("1", testutil.StaticCluster("web", a.addr))); err != nil {
		t.Fatal(err)
	}
	type result struct {
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		body, err := get(t, ref, "/slow")
		slow <- result{body, err}
	}()
	<-a.slowIn // the slow request holds connection 1
	if body, err := get(t, ref, "/"); err != nil || body != "A" {
		t.Fatalf("second request: %q %v", body, err) // connection 2, now idle
	}
	if open, _ := a.counts(); open != 2 {
		t.Fatalf("%d connections, want 2", open)
	}

	if err := m.CDS().Update(cdsFull("2")); err != nil {
		t.Fatal(err)
	}
	if ref.Load() != nil {
		t.Fatal("cluster still active")
	}
	a.waitClosed(1) // the idle connection
	if open, _ := a.counts(); open != 1 {
		t.Fatalf("after removal %d connections open, want the busy one", open)
	}
	close(a.release)
	if r := <-slow; r.err != nil || r.body != "A" {
		t.Fatalf("in-flight request on a removed cluster: %q %v", r.body, r.err)
	}
	a.waitClosed(2) // released, not reused: the pool is closed
}
