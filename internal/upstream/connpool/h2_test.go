//lint:file-ignore SA1019 net/http's own HTTP/2 cannot serve or dial over a caller-owned net.Conn; x/net/http2 still can (from go1.27 it wraps net/http behind the same API).

package connpool

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/testutil/loopback"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// h2cServer serves h over cleartext HTTP/2 (prior knowledge).
func h2cServer(t *testing.T, h http.Handler) (string, *countingListener) {
	t.Helper()
	ln := &countingListener{Listener: loopback.Listen(t)}
	srv := &http2.Server{}
	addr := loopback.ServeListener(t, ln, func(c net.Conn) { srv.ServeConn(c, &http2.ServeConnOpts{Handler: h}) })
	return addr, ln
}

func h2Settings() cluster.Settings {
	return cluster.Settings{Protocol: cluster.HTTP2, ConnectTimeout: 5 * time.Second}
}

// TestH2StreamingTrailersAndMultiplexing: concurrent requests share one
// connection; request and response bodies stream at the same time; trailers
// pass both ways.
func TestH2StreamingTrailersAndMultiplexing(t *testing.T) {
	addr, ln := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		w.Header().Set(http.TrailerPrefix+"X-Sum", fmt.Sprintf("%d/%s", n, r.Trailer.Get("X-In")))
	}))
	p := newTestPool(t, addr, h2Settings())

	const streams = 4
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr, pw := io.Pipe()
			req := get("/")
			req.Method = "POST"
			req.Protocol = message.HTTP2
			req.Header = message.Headers{{Name: "trailer", Value: "x-in"}}
			req.Body = &strBody{r: pr, tr: message.Headers{{Name: "x-in", Value: fmt.Sprint(i)}}}
			req.ContentLength = -1
			go io.WriteString(pw, "a\n")
			resp, err := p.RoundTrip(testCtx(t), req)
			if err != nil {
				errs <- err
				return
			}
			br := bufio.NewReader(resp.Body)
			if l, err := br.ReadString('\n'); err != nil || l != "echo a\n" {
				errs <- fmt.Errorf("first line %q %v", l, err)
				return
			}
			io.WriteString(pw, "b\n")
			if l, err := br.ReadString('\n'); err != nil || l != "echo b\n" {
				errs <- fmt.Errorf("second line %q %v", l, err)
				return
			}
			pw.Close()
			if _, err := io.ReadAll(br); err != nil {
				errs <- err
				return
			}
			if v, want := resp.Body.Trailers().Value("x-sum"), fmt.Sprintf("2/%d", i); v != want {
				errs <- fmt.Errorf("trailer %q, want %q", v, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := ln.accepted.Load(); n != 1 {
		t.Errorf("%d connections for %d concurrent streams, want 1", n, streams)
	}
	if v := p.counter("upstream_cx_http2_total"); v != 1 {
		t.Errorf("upstream_cx_http2_total = %d", v)
	}
	// Streams that found the connection up did not wait; at least the
	// first one did.
	if v := p.counter("upstream_rq_pending_total"); v < 1 || v > streams {
		t.Errorf("upstream_rq_pending_total = %d, want 1..%d", v, streams)
	}
	if v := p.stats.UpstreamRqPendingActive.Value(); v != 0 {
		t.Errorf("upstream_rq_pending_active = %d, want 0", v)
	}
}

// TestH2MaxConcurrentStreamsOpensMore: with a cap of one stream per
// connection, two concurrent requests need two connections.
func TestH2MaxConcurrentStreamsOpensMore(t *testing.T) {
	var arrived sync.WaitGroup
	arrived.Add(2)
	release := make(chan struct{})
	addr, ln := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release
	}))
	s := h2Settings()
	s.H2MaxConcurrentStreams = 1
	p := newTestPool(t, addr, s)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			resp, err := p.RoundTrip(testCtx(t), get("/"))
			if err == nil && resp.Body != nil {
				_, err = io.ReadAll(resp.Body)
			}
			errs <- err
		}()
	}
	arrived.Wait()
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := ln.accepted.Load(); n != 2 {
		t.Fatalf("accepted %d, want 2", n)
	}
}

// frameServer is a raw HTTP/2 peer: it acknowledges SETTINGS and calls
// onHeaders for every request.
func frameServer(t *testing.T, onHeaders func(fr *http2.Framer, f *http2.MetaHeadersFrame)) (string, *countingListener) {
	t.Helper()
	ln := &countingListener{Listener: loopback.Listen(t)}
	addr := loopback.ServeListener(t, ln, func(c net.Conn) {
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil {
			return
		}
		fr := http2.NewFramer(c, c)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		fr.WriteSettings()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.MetaHeadersFrame:
				onHeaders(fr, f)
			}
		}
	})
	return addr, ln
}

func TestH2ResetReasons(t *testing.T) {
	for _, tc := range []struct {
		code http2.ErrCode
		want ResetReason
		text string
	}{
		{http2.ErrCodeRefusedStream, RemoteRefusedStreamReset, "remote refused stream reset"},
		{http2.ErrCodeInternal, RemoteReset, "remote reset"},
	} {
		addr, _ := frameServerRST(t, tc.code)
		p := newTestPool(t, addr, h2Settings())
		_, err := p.RoundTrip(testCtx(t), get("/"))
		var pe *Error
		if !errors.As(err, &pe) || pe.Reason != tc.want {
			t.Fatalf("RST %v: err %v, want %v", tc.code, err, tc.want)
		}
		if got := pe.Reason.String(); got != tc.text {
			t.Errorf("String() = %q", got)
		}
	}
}

func frameServerRST(t *testing.T, code http2.ErrCode) (string, *countingListener) {
	return frameServer(t, func(fr *http2.Framer, f *http2.MetaHeadersFrame) {
		fr.WriteRSTStream(f.StreamID, code)
	})
}

// TestH2GoAwayReplacesConnection: after the upstream sends GOAWAY and
// closes, the next request opens a new connection.
func TestH2GoAwayReplacesConnection(t *testing.T) {
	addr, ln := frameServer(t, func(fr *http2.Framer, f *http2.MetaHeadersFrame) {
		var hb bytes.Buffer
		hpack.NewEncoder(&hb).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: true})
		fr.WriteGoAway(f.StreamID, http2.ErrCodeNo, nil)
	})
	p := newTestPool(t, addr, h2Settings())
	for i := range 3 {
		resp, err := p.RoundTrip(testCtx(t), get("/"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.Status != 200 {
			t.Fatalf("status %d", resp.Status)
		}
		// Let the client see the GOAWAY before the next request, so the
		// test is about replacement rather than about the race.
		testutil.WaitFor(t, "GOAWAY seen", func() bool {
			for _, c := range *p.h2.conns.Load() {
				if c.cc.CanTakeNewRequest() {
					return false
				}
			}
			return true
		})
	}
	if n := ln.accepted.Load(); n != 3 {
		t.Fatalf("accepted %d, want 3", n)
	}
}

func TestH2OverTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	s := h2Settings()
	s.TLS = &tls.Config{InsecureSkipVerify: true}
	p := newTestPool(t, srv.Listener.Addr().String(), s)
	resp, err := p.RoundTrip(testCtx(t), get("/"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "HTTP/2.0" {
		t.Fatalf("got %q", got)
	}
}

func TestH2PoolCloseDrains(t *testing.T) {
	addr, ln := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	p := newTestPool(t, addr, h2Settings())
	resp, err := p.RoundTrip(testCtx(t), get("/"))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	p.Close()
	testutil.WaitFor(t, "connection closed after pool Close", func() bool { return p.h.CxActive.Load() == 0 })
	if n := ln.accepted.Load(); n != 1 {
		t.Fatalf("accepted %d", n)
	}
}

func TestH2IdleTimeoutAndHead(t *testing.T) {
	addr, _ := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1234")
	}))
	s := h2Settings()
	s.IdleTimeout = 50 * time.Millisecond
	p := newTestPool(t, addr, s)
	req := get("/")
	req.Method = "HEAD"
	resp, err := p.RoundTrip(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Body != nil || resp.ContentLength != 1234 {
		t.Fatalf("HEAD: body %v, content-length %d", resp.Body, resp.ContentLength)
	}
	testutil.WaitFor(t, "idle h2 connection closed", func() bool { return p.h.CxActive.Load() == 0 })
	if n := len(*p.h2.conns.Load()); n != 0 {
		t.Fatalf("%d connections still listed", n)
	}
}
