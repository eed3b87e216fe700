package hcm

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/legate-proxy/legate/internal/netpoll"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/testutil"
)

// parkServer serves HTTP/1 on loopback as a listener does (detachable
// connections whose end runs through OnEnd), answering 200 "ok".
type parkServer struct {
	addr   string
	cfg    *Config
	cancel context.CancelFunc
	ended  atomic.Int64
	conns  chan *networkfilter.Conn
}

func newParkServer(t *testing.T, idle time.Duration, tlsCfg *tls.Config) *parkServer {
	t.Helper()
	old := parkAfter
	parkAfter = 20 * time.Millisecond
	t.Cleanup(func() { parkAfter = old })
	cfg := directOKConfig(t, &hcmv3.HttpConnectionManager{
		StatPrefix:                "park",
		CodecType:                 hcmv3.HttpConnectionManager_AUTO,
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(idle)},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &parkServer{addr: ln.Addr().String(), cfg: cfg, cancel: cancel, conns: make(chan *networkfilter.Conn, 16)}
	t.Cleanup(func() { cancel(); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				nc := &networkfilter.Conn{Conn: c}
				if tlsCfg != nil {
					tc := tls.Server(c, tlsCfg)
					if tc.Handshake() != nil {
						c.Close()
						return
					}
					st := tc.ConnectionState()
					nc.Conn, nc.TLS = tc, &st
				}
				nc.AllowDetach()
				nc.OnEnd(func() { s.ended.Add(1) })
				select {
				case s.conns <- nc:
				default: // only the first connections are looked at
				}
				cfg.ServeConn(ctx, nc)
				if !nc.Detached() {
					nc.End()
				}
			}()
		}
	}()
	return s
}

func parked(t *testing.T) int64 {
	p, err := netpoll.Default()
	if err != nil {
		t.Skip("no netpoll on this platform:", err)
	}
	return p.Parked()
}

func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
}

// An idle keep-alive connection parks (no goroutine, no buffers) and
// serves its next requests when they come, pipelined ones included; its
// end runs once.
func TestParkedConnectionResumes(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"cleartext", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var srvTLS *tls.Config
			if tc.tls {
				srvTLS = &tls.Config{Certificates: []tls.Certificate{testutil.SelfSigned(t, "park.test")}}
			}
			s := newParkServer(t, time.Minute, srvTLS)
			base := parked(t)
			var c net.Conn
			var err error
			if tc.tls {
				c, err = tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true})
			} else {
				c, err = net.Dial("tcp", s.addr)
			}
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			for i := 0; i < 3; i++ {
				roundTrip(t, c, br)
				testutil.WaitFor(t, "the connection to park", func() bool { return parked(t) > base })
			}
			// Two requests in one write, arriving at a parked connection.
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
			for i := 0; i < 2; i++ {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if n := s.ended.Load(); n != 0 {
				t.Fatalf("connection ended %d times while open", n)
			}
			c.Close()
			testutil.WaitFor(t, "the connection to end", func() bool { return s.ended.Load() == 1 })
			testutil.WaitFor(t, "the parked count to drop", func() bool { return parked(t) == base })
		})
	}
}

// A parked connection still ends at its idle timeout, counted as one.
func TestParkedConnectionIdleTimeout(t *testing.T) {
	s := newParkServer(t, 300*time.Millisecond, nil)
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	start := time.Now()
	roundTrip(t, c, br)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("read after idle timeout: %v, want EOF", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("closed after %s, before the idle timeout", d)
	}
	testutil.WaitFor(t, "the connection to end", func() bool { return s.ended.Load() == 1 })
	if n := s.cfg.Stats.CxIdleTimeout.Value(); n != 1 {
		t.Fatalf("downstream_cx_idle_timeout = %d, want 1", n)
	}
}

// A drain, and the listener's close at the end of the drain time (Wake
// before closing the socket), end a parked connection.
func TestParkedConnectionDrainAndWake(t *testing.T) {
	for _, how := range []string{"drain", "wake"} {
		t.Run(how, func(t *testing.T) {
			s := newParkServer(t, time.Minute, nil)
			base := parked(t)
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			nc := <-s.conns
			br := bufio.NewReader(c)
			roundTrip(t, c, br)
			testutil.WaitFor(t, "the connection to park", func() bool { return parked(t) > base })
			if how == "drain" {
				s.cancel()
			} else {
				nc.Wake()
				nc.Conn.Close()
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := br.ReadByte(); err == nil {
				t.Fatal("connection still open")
			}
			testutil.WaitFor(t, "the connection to end", func() bool { return s.ended.Load() == 1 })
			testutil.WaitFor(t, "the parked count to drop", func() bool { return parked(t) == base })
		})
	}
}

// An idle HTTP/2 connection parks too and serves its next streams, and a
// parked one still ends at the idle timeout (GOAWAY, counted).
func TestParkedHTTP2Connection(t *testing.T) {
	s := newParkServer(t, 600*time.Millisecond, nil)
	base := parked(t)
	var dials atomic.Int64
	var last net.Conn
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: protos, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		last = c
		return c, err
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for i := 0; i < 3; i++ {
		code, body, _ := testutil.Get(t, client, "http://"+s.addr+"/")
		if code != 200 || body != "ok" {
			t.Fatalf("got %d %q", code, body)
		}
		testutil.WaitFor(t, "the connection to park", func() bool { return parked(t) > base })
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d connections for 3 requests, want 1", n)
	}
	// Idle on: the parked connection ends at the idle timeout.
	last.SetReadDeadline(time.Now().Add(10 * time.Second))
	testutil.WaitFor(t, "the connection to end", func() bool { return s.ended.Load() == 1 })
	if n := s.cfg.Stats.CxIdleTimeout.Value(); n != 1 {
		t.Fatalf("downstream_cx_idle_timeout = %d, want 1", n)
	}
	testutil.WaitFor(t, "the parked count to drop", func() bool { return parked(t) == base })
}
