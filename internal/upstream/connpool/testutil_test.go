package connpool

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

type testPool struct {
	*Pool
	store *stats.Store
	c     *cluster.Cluster
	h     *cluster.Host
}

func newTestPool(t testing.TB, addr string, s cluster.Settings) *testPool {
	t.Helper()
	store := stats.NewStore()
	c := &cluster.Cluster{Name: "test", Settings: s, Stats: cluster.NewStats(store.Scope("cluster.test."))}
	h := &cluster.Host{Address: addr, Weight: 1}
	p := New(c, h)
	t.Cleanup(func() { p.Close() })
	return &testPool{Pool: p, store: store, c: c, h: h}
}

func (tp *testPool) counter(name string) uint64 {
	return tp.store.Counter("cluster.test." + name).Value()
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func get(path string) *message.Request {
	return &message.Request{Method: "GET", Scheme: "http", Authority: "upstream", Path: path, Protocol: message.HTTP11}
}

// readAll reads a response body to EOF.
func readAll(t testing.TB, resp *message.Response) string {
	t.Helper()
	if resp.Body == nil {
		return ""
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// readRequestHead reads one request head (no body) from br.
func readRequestHead(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		sb.WriteString(line)
		if line == "\r\n" {
			return sb.String(), nil
		}
	}
}
