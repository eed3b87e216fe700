package connpool

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/testutil/loopback"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// httpServer serves h on a counting loopback listener.
func httpServer(t *testing.T, h http.Handler) (string, *countingListener) {
	t.Helper()
	ln := &countingListener{Listener: loopback.Listen(t)}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), ln
}

func TestH1KeepAliveReuse(t *testing.T) {
	addr, ln := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	}))
	p := newTestPool(t, addr, cluster.Settings{})
	for i := range 5 {
		resp, err := p.RoundTrip(testCtx(t), get(fmt.Sprintf("/%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := readAll(t, resp), fmt.Sprintf("hello /%d", i); got != want || resp.Status != 200 {
			t.Fatalf("got %d %q, want %q", resp.Status, got, want)
		}
	}
	if n := ln.accepted.Load(); n != 1 {
		t.Fatalf("%d connections for 5 sequential requests, want 1", n)
	}
	if v := p.counter("upstream_cx_total"); v != 1 {
		t.Errorf("upstream_cx_total = %d", v)
	}
	if v := p.counter("upstream_cx_http1_total"); v != 1 {
		t.Errorf("upstream_cx_http1_total = %d", v)
	}
	// Only the first request waited for a connection.
	if v := p.counter("upstream_rq_pending_total"); v != 1 {
		t.Errorf("upstream_rq_pending_total = %d, want 1", v)
	}
	if v := p.stats.UpstreamRqPendingActive.Value(); v != 0 {
		t.Errorf("upstream_rq_pending_active = %d, want 0", v)
	}
	if p.counter("upstream_cx_rx_bytes_total") == 0 || p.counter("upstream_cx_tx_bytes_total") == 0 {
		t.Error("byte counters did not move")
	}
	if v := p.h.CxActive.Load(); v != 1 {
		t.Errorf("host cx active = %d", v)
	}
	p.Close()
	if v := p.h.CxActive.Load(); v != 0 {
		t.Errorf("host cx active after Close = %d", v)
	}
	if v := p.counter("upstream_cx_destroy_local"); v != 1 {
		t.Errorf("upstream_cx_destroy_local = %d", v)
	}
}

func TestH1ConcurrentRequestsOpenConnections(t *testing.T) {
	const n = 3
	var arrived sync.WaitGroup
	arrived.Add(n)
	release := make(chan struct{})
	var first atomic.Int32
	addr, ln := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.Add(1) <= n {
			arrived.Done()
			<-release
		}
		io.WriteString(w, "ok")
	}))
	p := newTestPool(t, addr, cluster.Settings{})
	errs := make(chan error, n)
	for range n {
		go func() {
			resp, err := p.RoundTrip(testCtx(t), get("/"))
			if err == nil {
				_, err = io.ReadAll(resp.Body)
			}
			errs <- err
		}()
	}
	arrived.Wait() // all n are in the server at once: n connections
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := ln.accepted.Load(); got != n {
		t.Fatalf("accepted %d connections, want %d", got, n)
	}
	// All n went back to the free list: n more requests need no dial.
	for range n {
		resp, err := p.RoundTrip(testCtx(t), get("/"))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	if got := ln.accepted.Load(); got != n {
		t.Fatalf("accepted %d connections after reuse, want %d", got, n)
	}
}

// TestH1StaleKeepAliveRetry: the upstream closes a kept-alive connection
// once the request is on it, before answering (a close the idle check could
// not see yet); a body-less request is sent again on a fresh connection
// without the caller noticing, a request with a body is not.
func TestH1StaleKeepAliveRetry(t *testing.T) {
	var dropped atomic.Bool
	addr := loopback.Serve(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			head, err := readRequestHead(br)
			if err != nil {
				return
			}
			switch path := strings.Fields(head)[1]; {
			case path == "/drop", path == "/drop-once" && dropped.CompareAndSwap(false, true):
				return // without an answer or a connection: close
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
		}
	})
	p := newTestPool(t, addr, cluster.Settings{})
	resp, err := p.RoundTrip(testCtx(t), get("/1"))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	resp, err = p.RoundTrip(testCtx(t), get("/drop-once"))
	if err != nil {
		t.Fatalf("stale connection not retried: %v", err)
	}
	if got := readAll(t, resp); got != "ok" {
		t.Fatalf("retried request got %q", got)
	}
	if v := p.counter("upstream_cx_total"); v != 2 {
		t.Errorf("upstream_cx_total = %d, want 2", v)
	}

	// With a body the request cannot be replayed.
	req := get("/drop")
	req.Method = "POST"
	req.Body = &strBody{r: strings.NewReader("data")}
	req.ContentLength = 4
	_, err = p.RoundTrip(testCtx(t), req)
	var pe *Error
	if !errors.As(err, &pe) || pe.Reason != ConnectionTermination {
		t.Fatalf("POST on a stale connection: %v, want connection termination", err)
	}
	if want := "upstream connect error or disconnect/reset before headers. reset reason: connection termination"; pe.Error() != want {
		t.Errorf("Error() = %q", pe.Error())
	}
	if v := p.counter("upstream_cx_total"); v != 2 {
		t.Errorf("upstream_cx_total = %d, want 2 (the POST reused the connection)", v)
	}
}

type strBody struct {
	r  io.Reader
	tr message.Headers
}

func (b *strBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *strBody) Trailers() message.Headers  { return b.tr }

func TestConnectRefused(t *testing.T) {
	ln := loopback.Listen(t)
	addr := ln.Addr().String()
	ln.Close()
	for _, proto := range []cluster.Protocol{cluster.HTTP1, cluster.HTTP2} {
		p := newTestPool(t, addr, cluster.Settings{ConnectTimeout: 5 * time.Second, Protocol: proto})
		_, err := p.RoundTrip(testCtx(t), get("/"))
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("proto %d: err %v, want *Error", proto, err)
		}
		want := "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused"
		if pe.Reason != ConnectionFailure || pe.Error() != want {
			t.Fatalf("proto %d: got %v (%q)", proto, pe.Reason, pe.Error())
		}
		if p.counter("upstream_cx_connect_fail") != 1 || p.h.CxConnectFail.Load() != 1 {
			t.Errorf("proto %d: connect_fail stats not counted", proto)
		}
		if v := p.store.Gauge("cluster.test.upstream_cx_active", 0).Value(); v != 0 {
			t.Errorf("proto %d: upstream_cx_active = %d", proto, v)
		}
	}
}

// TestConnectTimeout dials a listener that accepts TCP but never answers
// the TLS handshake, so the connect timeout always fires.
func TestConnectTimeout(t *testing.T) {
	addr := loopback.Serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	p := newTestPool(t, addr, cluster.Settings{
		ConnectTimeout: 100 * time.Millisecond,
		TLS:            &tls.Config{InsecureSkipVerify: true},
	})
	_, err := p.RoundTrip(testCtx(t), get("/"))
	var pe *Error
	if !errors.As(err, &pe) || pe.Reason != ConnectionTimeout {
		t.Fatalf("err %v, want connection timeout", err)
	}
	if want := "upstream connect error or disconnect/reset before headers. reset reason: connection timeout"; pe.Error() != want {
		t.Errorf("Error() = %q", pe.Error())
	}
	if p.counter("upstream_cx_connect_timeout") != 1 || p.counter("upstream_cx_connect_fail") != 1 {
		t.Error("connect timeout stats not counted")
	}
}

func TestH1BodyCloseBeforeEOFDiscardsConnection(t *testing.T) {
	addr, ln := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 1<<16))
	}))
	p := newTestPool(t, addr, cluster.Settings{})
	resp, err := p.RoundTrip(testCtx(t), get("/"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.(io.Closer).Close()
	resp, err = p.RoundTrip(testCtx(t), get("/"))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if n := ln.accepted.Load(); n != 2 {
		t.Fatalf("accepted %d, want 2 (closed body must not be reused)", n)
	}
}

// TestH1StreamingAndTrailers: the request body streams while the response
// streams back (full duplex), and chunked trailers pass both ways.
func TestH1StreamingAndTrailers(t *testing.T) {
	addr, _ := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Trailer", "X-Sum")
		w.WriteHeader(200)
		br := bufio.NewReader(r.Body)
		n := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				break
			}
			n++
			io.WriteString(w, "echo "+line)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Sum", fmt.Sprintf("%d lines, in-trailer=%s", n, r.Trailer.Get("X-In")))
	}))
	p := newTestPool(t, addr, cluster.Settings{})
	pr, pw := io.Pipe()
	body := &strBody{r: pr, tr: message.Headers{{Name: "x-in", Value: "yes"}}}
	req := get("/")
	req.Method = "POST"
	req.Header = message.Headers{{Name: "trailer", Value: "X-In"}}
	req.Body = body
	req.ContentLength = -1
	go io.WriteString(pw, "one\n")
	resp, err := p.RoundTrip(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	// The first echo arrives while the request body is still open.
	if line, err := br.ReadString('\n'); err != nil || line != "echo one\n" {
		t.Fatalf("first line %q %v", line, err)
	}
	io.WriteString(pw, "two\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo two\n" {
		t.Fatalf("second line %q %v", line, err)
	}
	pw.Close()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("rest %q %v", rest, err)
	}
	if v := resp.Body.Trailers().Value("x-sum"); v != "2 lines, in-trailer=yes" {
		t.Fatalf("trailer x-sum = %q", v)
	}
}

// TestH1Upgrade: a 101 response yields the raw stream, including bytes the
// upstream sent right behind the 101.
func TestH1Upgrade(t *testing.T) {
	addr := loopback.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		head, err := readRequestHead(br)
		if err != nil || !strings.Contains(strings.ToLower(head), "upgrade: echo") {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\nhello ")
		io.Copy(c, br)
	})
	p := newTestPool(t, addr, cluster.Settings{})
	req := get("/ws")
	req.Header = message.Headers{{Name: "upgrade", Value: "echo"}, {Name: "connection", Value: "upgrade"}}
	resp, err := p.RoundTrip(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 101 {
		t.Fatalf("status %d", resp.Status)
	}
	rw, ok := Upgraded(resp)
	if !ok {
		t.Fatal("no upgraded stream")
	}
	defer rw.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "hello " {
		t.Fatalf("early bytes %q %v", buf, err)
	}
	if _, err := io.WriteString(rw, "ping"); err != nil {
		t.Fatal(err)
	}
	buf = make([]byte, 4)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
	if _, ok := Upgraded(&message.Response{Status: 200}); ok {
		t.Error("Upgraded on a plain response")
	}
}

func TestH1IdleTimeoutClosesConnection(t *testing.T) {
	gone := make(chan struct{})
	addr := loopback.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequestHead(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
		// The pool must close the connection on its own.
		br.ReadByte()
		close(gone)
	})
	p := newTestPool(t, addr, cluster.Settings{IdleTimeout: 50 * time.Millisecond})
	resp, err := p.RoundTrip(testCtx(t), get("/"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 204 || resp.Body != nil {
		t.Fatalf("204: %d %v", resp.Status, resp.Body)
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("idle connection not closed")
	}
	testutil.WaitFor(t, "destroy stats", func() bool { return p.counter("upstream_cx_destroy_local") == 1 })
}

func TestH1ContextCancelResetsConnection(t *testing.T) {
	addr, _ := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	p := newTestPool(t, addr, cluster.Settings{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.RoundTrip(ctx, get("/"))
	if !errors.Is(err, ctx.Err()) || ctx.Err() == nil {
		t.Fatalf("err %v, want ctx error", err)
	}
}

func TestH1OverTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %v", r.Proto, r.TLS != nil)
	}))
	srv.StartTLS()
	defer srv.Close()
	p := newTestPool(t, srv.Listener.Addr().String(), cluster.Settings{TLS: &tls.Config{InsecureSkipVerify: true}})
	resp, err := p.RoundTrip(testCtx(t), get("/"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "HTTP/1.1 true" {
		t.Fatalf("got %q", got)
	}
}

type errBody struct{ err error }

func (b errBody) Read([]byte) (int, error)  { return 0, b.err }
func (b errBody) Trailers() message.Headers { return nil }

// TestH1EarlyResponseAndBrokenBody: an upstream may answer before the
// request body ends (the answer arrives whole), and a request body that
// fails aborts the upstream connection instead of leaving it waiting.
func TestH1EarlyResponseAndBrokenBody(t *testing.T) {
	aborted := make(chan struct{}, 1)
	addr := loopback.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		head, err := readRequestHead(br)
		if err != nil {
			return
		}
		if strings.Contains(head, "/early") {
			io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbig!")
			return
		}
		// /broken: the body never completes; the proxy must hang up.
		io.Copy(io.Discard, br)
		aborted <- struct{}{}
	})
	p := newTestPool(t, addr, cluster.Settings{})

	pr, pw := io.Pipe()
	defer pw.Close()
	req := get("/early")
	req.Method = "POST"
	req.Body = &strBody{r: pr}
	req.ContentLength = -1
	resp, err := p.RoundTrip(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.Status != 413 || got != "big!" {
		t.Fatalf("early response %d %q", resp.Status, got)
	}

	req = get("/broken")
	req.Method = "POST"
	req.Body = errBody{errors.New("downstream reset")}
	req.ContentLength = 10
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := p.RoundTrip(ctx, req); err == nil {
		t.Fatal("RoundTrip with a failing body succeeded")
	}
	select {
	case <-aborted:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream connection not aborted")
	}
}
