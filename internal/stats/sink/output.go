package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	promv1 "github.com/prometheus/client_model/go"

	"github.com/legate-proxy/legate/internal/stats"
)

// sendTimeout bounds one flush's dial and writes on a sink.
const sendTimeout = 2 * time.Second

type output interface {
	send(lines []string) error
	close()
}

// sinkWorker sends one sink's flushes from its own goroutine.
type sinkWorker struct {
	name    string
	fm      format
	out     output
	ms      *metricsService // set for a metrics service sink, which gets families
	queue   chan flushData
	dropped atomic.Uint64 // flushes dropped because the previous one was still being sent
}

func (w *sinkWorker) run(log *slog.Logger) {
	failing := false
	for d := range w.queue {
		var err error
		if w.ms != nil {
			err = w.ms.sendFamilies(d.families)
		} else {
			err = w.out.send(d.lines)
		}
		switch {
		case err != nil && !failing:
			failing = true
			log.Warn("stats sink: sending failed; stats are dropped until it recovers", "sink", w.name, "error", err)
		case err == nil && failing:
			failing = false
			log.Info("stats sink: sending recovered", "sink", w.name)
		}
	}
}

// flushData is one flush for a sink: statsd lines, or metric families.
type flushData struct {
	lines    []string
	families []*promv1.MetricFamily
}

// udpOut writes statsd datagrams to one address: one line per datagram,
// or several newline-separated lines up to maxBytes (DogStatsD's
// max_bytes_per_datagram). A line longer than maxBytes goes alone.
// The socket is opened on the first send, so building a config (as
// --mode validate does) opens nothing.
type udpOut struct {
	addr     *net.UDPAddr
	maxBytes int

	mu     sync.Mutex
	conn   *net.UDPConn
	closed bool
}

func newUDP(addr string, maxBytes int) (*udpOut, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	return &udpOut{addr: ua, maxBytes: maxBytes}, nil
}

func (u *udpOut) send(lines []string) error {
	u.mu.Lock()
	if u.conn == nil && !u.closed {
		c, err := net.DialUDP("udp", nil, u.addr)
		if err != nil {
			u.mu.Unlock()
			return err
		}
		u.conn = c
	}
	conn := u.conn
	u.mu.Unlock()
	if conn == nil {
		return net.ErrClosed
	}
	conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	var first error
	write := func(p []byte) {
		// A refused datagram (no listener yet) surfaces as an error on a
		// later write; keep sending the rest.
		if _, err := conn.Write(p); err != nil && first == nil {
			first = err
		}
	}
	if u.maxBytes <= 0 {
		for _, l := range lines {
			write([]byte(l))
		}
		return first
	}
	buf := make([]byte, 0, u.maxBytes)
	for _, l := range lines {
		if len(l) >= u.maxBytes {
			write([]byte(l))
			continue
		}
		if len(buf) > 0 && len(buf)+1+len(l) > u.maxBytes {
			write(buf)
			buf = buf[:0]
		}
		if len(buf) > 0 {
			buf = append(buf, '\n')
		}
		buf = append(buf, l...)
	}
	if len(buf) > 0 {
		write(buf)
	}
	return first
}

func (u *udpOut) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	if u.conn != nil {
		u.conn.Close()
	}
}

// tcpOut keeps one connection to a host of a cluster and writes each flush
// as newline-terminated lines. A flush it cannot write within sendTimeout
// is dropped with the connection (statsd.cx_overflow); the next flush
// reconnects.
type tcpOut struct {
	cluster  string
	clusters ClusterLookup
	overflow *stats.Counter
	ctx      context.Context
	cancel   context.CancelFunc

	mu   sync.Mutex
	conn net.Conn
}

func newTCP(cluster string, clusters ClusterLookup, overflow *stats.Counter) *tcpOut {
	ctx, cancel := context.WithCancel(context.Background())
	return &tcpOut{cluster: cluster, clusters: clusters, overflow: overflow, ctx: ctx, cancel: cancel}
}

func (t *tcpOut) send(lines []string) error {
	t.mu.Lock()
	conn := t.conn
	t.mu.Unlock()
	if conn == nil {
		ctx, cancel := context.WithTimeout(t.ctx, sendTimeout)
		c, err := t.clusters.DialCluster(ctx, t.cluster)
		cancel()
		if err != nil {
			return fmt.Errorf("cluster %q: %w", t.cluster, err)
		}
		t.mu.Lock()
		if t.ctx.Err() != nil { // closed while dialling
			t.mu.Unlock()
			c.Close()
			return t.ctx.Err()
		}
		t.conn, conn = c, c
		t.mu.Unlock()
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	_, err := conn.Write([]byte(b.String()))
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.overflow.Inc()
	}
	conn.Close()
	t.mu.Lock()
	if t.conn == conn {
		t.conn = nil
	}
	t.mu.Unlock()
	return fmt.Errorf("cluster %q: %w", t.cluster, err)
}

func (t *tcpOut) close() {
	t.cancel()
	t.mu.Lock()
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
	t.mu.Unlock()
}
