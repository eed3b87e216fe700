package dialer

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/testutil/loopback"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

type fixture struct {
	store *stats.Store
	c     *cluster.Cluster
	h     *cluster.Host
}

func newFixture(addr string, s cluster.Settings) *fixture {
	store := stats.NewStore()
	return &fixture{
		store: store,
		c:     &cluster.Cluster{Name: "t", Settings: s, Stats: cluster.NewStats(store.Scope("cluster.t."))},
		h:     &cluster.Host{Address: addr, Weight: 1},
	}
}

func (f *fixture) counter(name string) uint64 { return f.store.Counter("cluster.t." + name).Value() }

func TestDialCountsTheConnection(t *testing.T) {
	peer := make(chan net.Conn, 1)
	addr := loopback.Serve(t, func(c net.Conn) {
		peer <- c
		io.Copy(c, c) // echo until the client closes
	})
	f := newFixture(addr, cluster.Settings{ConnectTimeout: time.Second})
	nc, raw, err := Dial(context.Background(), ForCluster(f.c, f.h, HTTP1))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(nc, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(nc, buf); err != nil {
		t.Fatal(err)
	}
	if raw.RxTotal() != 4 {
		t.Errorf("RxTotal = %d", raw.RxTotal())
	}
	for name, want := range map[string]uint64{"upstream_cx_total": 1, "upstream_cx_http1_total": 1,
		"upstream_cx_rx_bytes_total": 4, "upstream_cx_tx_bytes_total": 4} {
		if v := f.counter(name); v != want {
			t.Errorf("%s = %d, want %d", name, v, want)
		}
	}
	if v := f.h.CxActive.Load(); v != 1 {
		t.Errorf("host cx active = %d", v)
	}
	// The peer closes: the read sees it, and Close counts a remote destroy.
	(<-peer).Close()
	if _, err := nc.Read(buf); err == nil {
		t.Fatal("read after the peer closed succeeded")
	}
	nc.Close()
	nc.Close()
	if v := f.counter("upstream_cx_destroy_remote"); v != 1 {
		t.Errorf("upstream_cx_destroy_remote = %d", v)
	}
	if v := f.counter("upstream_cx_destroy"); v != 1 {
		t.Errorf("upstream_cx_destroy = %d (closing twice counts once)", v)
	}
	if v := f.h.CxActive.Load(); v != 0 {
		t.Errorf("host cx active after close = %d", v)
	}
}

// A TLS handshake that never completes is a connect timeout.
func TestDialHandshakeTimeout(t *testing.T) {
	addr := loopback.Serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	f := newFixture(addr, cluster.Settings{ConnectTimeout: 50 * time.Millisecond, TLS: &tls.Config{InsecureSkipVerify: true}})
	_, _, err := Dial(context.Background(), ForCluster(f.c, f.h, Raw))
	var de *Error
	if !errors.As(err, &de) || !de.Handshake || !de.Timeout() {
		t.Fatalf("err = %v, want a handshake timeout", err)
	}
	if f.counter("upstream_cx_connect_timeout") != 1 || f.counter("upstream_cx_connect_fail") != 1 || f.h.CxConnectFail.Load() != 1 {
		t.Errorf("connect_timeout %d, connect_fail %d, host connect fail %d", f.counter("upstream_cx_connect_timeout"),
			f.counter("upstream_cx_connect_fail"), f.h.CxConnectFail.Load())
	}
	if f.counter("upstream_cx_destroy") != 0 || f.c.Stats.UpstreamCxActive.Value() != 0 {
		t.Errorf("a failed connect counted as open or destroyed")
	}
}

// A caller that gives up is not a connect failure.
func TestDialCancelledIsNotAFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := newFixture("127.0.0.1:1", cluster.Settings{})
	if _, _, err := Dial(ctx, ForCluster(f.c, f.h, Raw)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if f.counter("upstream_cx_connect_fail") != 0 {
		t.Error("counted a connect failure")
	}
}

// upstream_bind_config: the source address and socket options apply.
func TestDialBindConfig(t *testing.T) {
	remote := make(chan string, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err == nil {
			remote <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	bind := &cluster.BindConfig{
		LocalAddr:     &net.TCPAddr{IP: net.ParseIP("127.0.0.2")},
		SocketOptions: []cluster.SocketOption{{Level: syscall.SOL_SOCKET, Name: syscall.SO_RCVBUF, Int: 65536}},
	}
	f := newFixture(ln.Addr().String(), cluster.Settings{Bind: bind})
	nc, raw, err := Dial(context.Background(), ForCluster(f.c, f.h, Raw))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	got := <-remote
	if !strings.HasPrefix(got, "127.0.0.2:") {
		t.Errorf("upstream saw the connection from %s, want 127.0.0.2", got)
	}
	rc, _ := raw.Raw().(syscall.Conn).SyscallConn()
	var rcvbuf int
	rc.Control(func(fd uintptr) { rcvbuf, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF) })
	// Linux doubles the value for its bookkeeping.
	if rcvbuf != 65536 && rcvbuf != 2*65536 {
		t.Errorf("SO_RCVBUF = %d, want 65536 set", rcvbuf)
	}
}
