//lint:file-ignore SA1019 net/http's own HTTP/2 cannot serve or dial over a caller-owned net.Conn; x/net/http2 still can (from go1.27 it wraps net/http behind the same API).

package h2

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/testutil/loopback"
)

// bytesBody is a message.Body over a byte slice with trailers.
type bytesBody struct {
	r  io.Reader
	tr message.Headers
}

func (b *bytesBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *bytesBody) Trailers() message.Headers  { return b.tr }

// serveLegate runs Serve for every connection accepted on a loopback
// listener and returns its address.
func serveLegate(t *testing.T, ctx context.Context, cfg ServerConfig, handle func(*message.Request, message.ResponseWriter)) string {
	t.Helper()
	return loopback.Serve(t, func(c net.Conn) {
		Serve(ctx, c, cfg, func(_ context.Context, req *message.Request, w message.ResponseWriter) { handle(req, w) })
	})
}

// serveXNet runs an x/net h2c server with an ordinary http.Handler.
func serveXNet(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http2.Server{}
	return loopback.Serve(t, func(c net.Conn) { srv.ServeConn(c, &http2.ServeConnOpts{Handler: h}) })
}

func dialClient(t *testing.T, addr string, cfg ClientConfig) *ClientConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := NewClientConn(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestLegateToLegate runs the client against the server: headers, a
// streamed body and trailers both ways.
func TestLegateToLegate(t *testing.T) {
	addr := serveLegate(t, ctxT(t), ServerConfig{}, func(req *message.Request, w message.ResponseWriter) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Errorf("server read: %v", err)
			return
		}
		h := message.Headers{
			{Name: "x-method", Value: req.Method},
			{Name: "x-path", Value: req.Path},
			{Name: "x-authority", Value: req.Authority},
			{Name: "x-scheme", Value: req.Scheme},
			{Name: "x-req-hdr", Value: req.Header.Value("x-custom")},
			{Name: "x-req-trailer", Value: req.Body.Trailers().Value("x-req-tr")},
			{Name: "content-type", Value: "text/x-echo"},
		}
		w.WriteHeader(201, h, -1)
		w.Write(bytes.ToUpper(body))
		w.Flush()
		w.WriteTrailers(message.Headers{{Name: "x-resp-tr", Value: "done"}})
	})
	cc := dialClient(t, addr, ClientConfig{})
	req := &message.Request{
		Method: "POST", Scheme: "http", Authority: "example.com", Path: "/a//b?x=1&y",
		Header: message.Headers{
			{Name: "x-custom", Value: "v1"},
			// x/net's server only surfaces pre-declared request trailers.
			{Name: "trailer", Value: "x-req-tr"},
			{Name: "connection", Value: "close"}, // must be dropped, not sent
		},
		Body:          &bytesBody{r: strings.NewReader("hello h2"), tr: message.Headers{{Name: "x-req-tr", Value: "tv"}}},
		ContentLength: -1,
	}
	resp, err := cc.RoundTrip(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 201 || string(got) != "HELLO H2" {
		t.Fatalf("status %d body %q", resp.Status, got)
	}
	for name, want := range map[string]string{
		"x-method": "POST", "x-path": "/a//b?x=1&y", "x-authority": "example.com", "x-scheme": "http",
		"x-req-hdr": "v1", "x-req-trailer": "tv", "content-type": "text/x-echo",
	} {
		if v := resp.Header.Value(name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	if resp.Header.Has("date") {
		t.Error("server added a date header")
	}
	if v := resp.Body.Trailers().Value("x-resp-tr"); v != "done" {
		t.Errorf("response trailer = %q", v)
	}
	if n := cc.ActiveStreams(); n != 0 {
		t.Errorf("active streams after EOF = %d", n)
	}
}

// TestClientAgainstXNet checks the client against x/net's own server:
// undeclared response trailers, content-length, no user-agent injection,
// a body-less response.
func TestClientAgainstXNet(t *testing.T) {
	addr := serveXNet(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-UA", strings.Join(r.Header.Values("User-Agent"), ","))
		w.Header().Set("X-Len", r.Header.Get("Content-Length"))
		w.Header().Set("X-Trailer-In", r.Trailer.Get("X-T"))
		if r.URL.Path == "/empty" {
			w.WriteHeader(204)
			return
		}
		w.Header().Set("Content-Length", "5")
		w.Write(append(b, "12345"...)[:5])
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	}))
	cc := dialClient(t, addr, ClientConfig{})
	resp, err := cc.RoundTrip(ctxT(t), &message.Request{
		Method: "PUT", Scheme: "http", Authority: "h", Path: "/p",
		Header:        message.Headers{{Name: "trailer", Value: "x-t"}},
		Body:          &bytesBody{r: strings.NewReader("ab"), tr: message.Headers{{Name: "x-t", Value: "tt"}}},
		ContentLength: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "ab123" || resp.ContentLength != 5 {
		t.Fatalf("body %q cl %d", b, resp.ContentLength)
	}
	if ua := resp.Header.Value("x-ua"); ua != "" {
		t.Errorf("user-agent injected: %q", ua)
	}
	if v := resp.Header.Value("x-len"); v != "2" {
		t.Errorf("content-length sent = %q", v)
	}
	if v := resp.Header.Value("x-trailer-in"); v != "tt" {
		t.Errorf("request trailer = %q", v)
	}
	if v := resp.Body.Trailers().Value("grpc-status"); v != "0" {
		t.Errorf("grpc-status trailer = %q", v)
	}

	resp, err = cc.RoundTrip(ctxT(t), &message.Request{Method: "GET", Scheme: "http", Authority: "h", Path: "/empty"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 204 || resp.Body != nil || resp.ContentLength != 0 {
		t.Fatalf("204: status %d body %v cl %d", resp.Status, resp.Body, resp.ContentLength)
	}
}

// TestServerAgainstXNetClient drives Serve with x/net's Transport: the
// server's conversion and its response-writer framing.
func TestServerAgainstXNetClient(t *testing.T) {
	addr := serveLegate(t, ctxT(t), ServerConfig{MaxHeaders: 5}, func(req *message.Request, w message.ResponseWriter) {
		if req.Body != nil {
			t.Errorf("GET has a body")
		}
		w.WriteHeader(200, message.Headers{{Name: "x-path", Value: req.Path}, {Name: "x-proto", Value: req.Protocol.String()}}, 4)
		w.Write([]byte("pong"))
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := (&http2.Transport{}).NewClientConn(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	r, _ := http.NewRequest("GET", "http://x/ping?q", nil)
	res, err := cc.RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if string(b) != "pong" || res.ContentLength != 4 || res.Header.Get("X-Path") != "/ping?q" || res.Header.Get("X-Proto") != "HTTP/2" {
		t.Fatalf("got %q cl %d hdr %v", b, res.ContentLength, res.Header)
	}
	if _, ok := res.Header["Content-Type"]; ok {
		t.Error("server sniffed a content-type")
	}

	r, _ = http.NewRequest("GET", "http://x/many", nil)
	for _, k := range []string{"A", "B", "C", "D", "E", "F"} {
		r.Header.Set(k, "1")
	}
	res, err = cc.RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 431 {
		t.Fatalf("too many headers: status %d", res.StatusCode)
	}
}

// TestResetMapping maps RST_STREAM(REFUSED_STREAM) to RefusedStream with
// Unprocessed set, and other resets to RemoteReset.
func TestResetMapping(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A raw framer server: answers SETTINGS, then resets stream 1 with
	// REFUSED_STREAM and stream 3 with CANCEL.
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil {
			return
		}
		fr := http2.NewFramer(c, c)
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
			case *http2.HeadersFrame:
				code := http2.ErrCodeRefusedStream
				if f.StreamID == 3 {
					code = http2.ErrCodeCancel
				}
				fr.WriteRSTStream(f.StreamID, code)
			}
		}
	}()
	cc := dialClient(t, ln.Addr().String(), ClientConfig{})
	req := &message.Request{Method: "GET", Scheme: "http", Authority: "h", Path: "/"}
	for _, want := range []ErrorKind{RefusedStream, RemoteReset} {
		_, err := cc.RoundTrip(ctxT(t), req)
		var e *Error
		if !errors.As(err, &e) || e.Kind != want {
			t.Fatalf("err %v (%#v), want kind %d", err, e, want)
		}
		if e.Unprocessed != (want == RefusedStream) {
			t.Errorf("kind %d: Unprocessed = %v", want, e.Unprocessed)
		}
	}
}

// TestGracefulShutdown cancels Serve's ctx while a stream is open: the
// stream completes, the client sees GOAWAY (no new streams), Serve returns.
func TestGracefulShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	inHandler := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		Serve(ctx, c, ServerConfig{}, func(_ context.Context, req *message.Request, w message.ResponseWriter) {
			close(inHandler)
			<-release
			w.WriteHeader(200, nil, 2)
			w.Write([]byte("ok"))
		})
	}()
	cc := dialClient(t, ln.Addr().String(), ClientConfig{})
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := cc.RoundTrip(ctxT(t), &message.Request{Method: "GET", Scheme: "http", Authority: "h", Path: "/"})
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		res <- result{string(b), err}
	}()
	<-inHandler
	cancel()
	// Wait until the client has seen the GOAWAY.
	deadline := time.Now().Add(10 * time.Second)
	for cc.CanTakeNewRequest() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if cc.CanTakeNewRequest() {
		t.Fatal("client never saw GOAWAY")
	}
	close(release)
	r := <-res
	if r.err != nil || r.body != "ok" {
		t.Fatalf("in-flight stream: %q %v", r.body, r.err)
	}
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after graceful shutdown")
	}
}

// TestAbortStream resets the downstream stream after headers.
func TestAbortStream(t *testing.T) {
	addr := serveLegate(t, ctxT(t), ServerConfig{}, func(req *message.Request, w message.ResponseWriter) {
		w.WriteHeader(200, nil, -1)
		w.Write([]byte("partial"))
		w.Flush()
		AbortStream()
	})
	cc := dialClient(t, addr, ClientConfig{})
	resp, err := cc.RoundTrip(ctxT(t), &message.Request{Method: "GET", Scheme: "http", Authority: "h", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	var e *Error
	if !errors.As(err, &e) || e.Kind != RemoteReset {
		t.Fatalf("body error %v, want RemoteReset", err)
	}
}
