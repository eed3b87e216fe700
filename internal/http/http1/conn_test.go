package http1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/legate-proxy/legate/internal/http/message"
)

// serve answers every request on sc by echoing method, path and body,
// until ReadRequest fails; it returns that error.
func serve(sc *ServerConn) error {
	for {
		var req message.Request
		if err := sc.ReadRequest(&req); err != nil {
			return err
		}
		var body []byte
		if req.Body != nil {
			b, err := io.ReadAll(req.Body)
			if err != nil {
				return err
			}
			body = b
		}
		out := req.Method + " " + req.Path + " " + string(body)
		w := sc.ResponseWriter()
		if err := w.WriteHeader(200, message.Headers{{Name: "x-n", Value: req.Header.Value("x-n")}}, int64(len(out))); err != nil {
			return err
		}
		w.Write([]byte(out))
		if err := sc.FinishResponse(); err != nil {
			return err
		}
		if !sc.KeepAlive() {
			return nil
		}
	}
}

func TestServerPipelining(t *testing.T) {
	cc, nc := loopback(t)
	sc := NewServerConn(nc, Limits{})
	defer sc.Release()
	done := make(chan error, 1)
	go func() { done <- serve(sc) }()

	// Three requests in one write: the parser must not over-read.
	_, err := io.WriteString(cc, "GET /1 HTTP/1.1\r\nHost: a\r\nX-N: 1\r\n\r\n"+
		"POST /2 HTTP/1.1\r\nHost: a\r\nX-N: 2\r\nContent-Length: 3\r\n\r\nabc"+
		"POST /3 HTTP/1.1\r\nHost: a\r\nX-N: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(cc)
	for i, want := range []string{"GET /1 ", "POST /2 abc", "POST /3 de"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want || resp.Header.Get("X-N") != string(rune('1'+i)) {
			t.Fatalf("response %d: %q %q", i, b, resp.Header.Get("X-N"))
		}
	}
	cc.CloseWrite()
	if err := <-done; err != io.EOF {
		t.Fatalf("after the last request: %v, want io.EOF", err)
	}
}

func TestServerUnreadBodyDrained(t *testing.T) {
	cc, nc := loopback(t)
	sc := NewServerConn(nc, Limits{})
	defer sc.Release()
	go io.WriteString(cc, "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"+
		"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
	var req message.Request
	if err := sc.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	sc.ResponseWriter().WriteHeader(204, nil, -1)
	if err := sc.FinishResponse(); err != nil {
		t.Fatal(err)
	}
	if !sc.KeepAlive() {
		t.Fatal("a small unread body should be drained")
	}
	if err := sc.ReadRequest(&req); err != nil || req.Path != "/b" {
		t.Fatalf("second request: %v %q", err, req.Path)
	}

	// Too large to drain: close instead.
	sc2 := NewServerConn(newMemConn("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999\r\n\r\nxx"), Limits{})
	if err := sc2.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	sc2.ResponseWriter().WriteHeader(413, nil, 0)
	sc2.FinishResponse()
	if sc2.KeepAlive() {
		t.Fatal("huge unread body must close the connection")
	}
}

func TestServerExpectContinue(t *testing.T) {
	cc, nc := loopback(t)
	sc := NewServerConn(nc, Limits{})
	defer sc.Release()
	done := make(chan error, 1)
	go func() { done <- serve(sc) }()

	if _, err := io.WriteString(cc, "PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(cc)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim response: %q %v", line, err)
	}
	if l, _ := br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("interim response not terminated: %q", l)
	}
	io.WriteString(cc, "data")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "PUT /up data" {
		t.Fatalf("body %q", b)
	}
	cc.CloseWrite()
	if err := <-done; err != io.EOF {
		t.Fatal(err)
	}
}

func TestServerExpectContinueRejected(t *testing.T) {
	// A response before the body is read: no 100, and the connection must
	// close because the client may or may not send the body.
	cc, nc := loopback(t)
	sc := NewServerConn(nc, Limits{})
	defer sc.Release()
	io.WriteString(cc, "PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	var req message.Request
	if err := sc.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	sc.CloseAfterResponse()
	sc.ResponseWriter().WriteHeader(417, nil, 0)
	sc.FinishResponse()
	if sc.KeepAlive() {
		t.Fatal("keep-alive after an unanswered expect")
	}
	nc.Close()
	got, _ := io.ReadAll(cc)
	if want := "HTTP/1.1 417 Expectation Failed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestWriteResponseFraming(t *testing.T) {
	type step struct {
		status   int
		cl       int64
		body     string
		trailers message.Headers
	}
	cases := []struct {
		name  string
		req   string
		steps []step
		close bool
		want  string
	}{
		{"fixed", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", []step{{200, 5, "hello", nil}}, false,
			"HTTP/1.1 200 OK\r\nx: y\r\ncontent-length: 5\r\n\r\nhello"},
		{"chunked with trailers", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", []step{{200, -1, "hello", message.Headers{{Name: "grpc-status", Value: "0"}}}}, false,
			"HTTP/1.1 200 OK\r\nx: y\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n"},
		{"chunked empty", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", []step{{500, -1, "", nil}}, false,
			"HTTP/1.1 500 Internal Server Error\r\nx: y\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"head", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", []step{{200, 5, "hello", nil}}, false,
			"HTTP/1.1 200 OK\r\nx: y\r\ncontent-length: 5\r\n\r\n"},
		{"head unknown length", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", []step{{200, -1, "hello", nil}}, false,
			"HTTP/1.1 200 OK\r\nx: y\r\n\r\n"},
		{"204", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", []step{{204, 0, "", nil}}, false,
			"HTTP/1.1 204 No Content\r\nx: y\r\n\r\n"},
		{"304", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", []step{{304, -1, "", nil}}, false,
			"HTTP/1.1 304 Not Modified\r\nx: y\r\n\r\n"},
		{"1.0 close delimited", "GET / HTTP/1.0\r\n\r\n", []step{{200, -1, "hello", message.Headers{{Name: "t", Value: "dropped"}}}}, true,
			"HTTP/1.1 200 OK\r\nx: y\r\nconnection: close\r\n\r\nhello"},
		{"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", []step{{200, 2, "hi", nil}}, false,
			"HTTP/1.1 200 OK\r\nx: y\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nhi"},
		{"request close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []step{{200, 2, "hi", nil}}, true,
			"HTTP/1.1 200 OK\r\nx: y\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"},
		{"interim then final", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", []step{{103, -1, "", nil}, {200, 0, "", nil}}, false,
			"HTTP/1.1 103 Early Hints\r\nx: y\r\n\r\nHTTP/1.1 200 OK\r\nx: y\r\ncontent-length: 0\r\n\r\n"},
		{"unknown status", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", []step{{599, 0, "", nil}}, false,
			"HTTP/1.1 599 \r\nx: y\r\ncontent-length: 0\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc := newMemConn(tc.req)
			sc := NewServerConn(nc, Limits{})
			defer sc.Release()
			var req message.Request
			if err := sc.ReadRequest(&req); err != nil {
				t.Fatal(err)
			}
			w := sc.ResponseWriter()
			// Framing and invalid fields given by a filter never reach the wire.
			h := message.Headers{{Name: "x", Value: "y"}, {Name: "content-length", Value: "7"},
				{Name: "connection", Value: "keep-alive"}, {Name: "transfer-encoding", Value: "gzip"},
				{Name: "bad", Value: "a\r\nx-injected: 1"}, {Name: "bad name", Value: "v"}}
			for _, s := range tc.steps {
				if err := w.WriteHeader(s.status, h, s.cl); err != nil {
					t.Fatal(err)
				}
				if s.body != "" {
					if _, err := w.Write([]byte(s.body)); err != nil {
						t.Fatal(err)
					}
				}
				if s.trailers != nil {
					w.WriteTrailers(s.trailers)
				}
			}
			if err := sc.FinishResponse(); err != nil {
				t.Fatal(err)
			}
			if got := nc.w.String(); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			if sc.KeepAlive() == tc.close {
				t.Fatalf("KeepAlive = %v", !tc.close)
			}
		})
	}
}

func TestWriteResponseTooLong(t *testing.T) {
	sc := NewServerConn(newMemConn("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Limits{})
	var req message.Request
	sc.ReadRequest(&req)
	w := sc.ResponseWriter()
	w.WriteHeader(200, nil, 2)
	if _, err := w.Write([]byte("abc")); err == nil {
		t.Fatal("wrote past content-length")
	}
	sc.FinishResponse()
	if sc.KeepAlive() {
		t.Fatal("keep-alive after a framing error")
	}
	// Short of the declared length: the client only learns by the close.
	sc = NewServerConn(newMemConn("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Limits{})
	sc.ReadRequest(&req)
	sc.ResponseWriter().WriteHeader(200, nil, 10)
	sc.ResponseWriter().Write([]byte("abc"))
	sc.FinishResponse()
	if sc.KeepAlive() {
		t.Fatal("keep-alive after a truncated response")
	}
}

func TestServerUpgradeHijack(t *testing.T) {
	cc, nc := loopback(t)
	sc := NewServerConn(nc, Limits{})
	defer sc.Release()
	io.WriteString(cc, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nearly-bytes")
	var req message.Request
	if err := sc.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	if req.Header.Value("upgrade") != "websocket" {
		t.Fatalf("upgrade header: %q", req.Header)
	}
	if err := sc.ResponseWriter().WriteHeader(101, message.Headers{{Name: "upgrade", Value: "websocket"}}, -1); err != nil {
		t.Fatal(err)
	}
	conn, r := sc.Hijack()
	if sc.KeepAlive() {
		t.Fatal("keep-alive after 101")
	}
	buf := make([]byte, len("early-bytes"))
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "early-bytes" {
		t.Fatalf("buffered bytes: %q %v", buf, err)
	}
	conn.Write([]byte("pong"))
	br := bufio.NewReader(cc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Connection") != "upgrade" || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("101: %v %+v", err, resp)
	}
	buf = make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("after upgrade: %q %v", buf, err)
	}
}

// TestServerWithNetHTTPClient runs net/http's client against ServerConn.
func TestServerWithNetHTTPClient(t *testing.T) {
	cc, nc := loopback(t)
	sc := NewServerConn(nc, Limits{})
	defer sc.Release()
	done := make(chan error, 1)
	go func() {
		for {
			var req message.Request
			if err := sc.ReadRequest(&req); err != nil {
				done <- err
				return
			}
			var body []byte
			if req.Body != nil {
				body, _ = io.ReadAll(req.Body)
			}
			w := sc.ResponseWriter()
			w.WriteHeader(200, message.Headers{{Name: "trailer", Value: "x-t"}}, -1)
			w.Write(body)
			w.Write([]byte("!"))
			w.WriteTrailers(message.Headers{{Name: "x-t", Value: "v"}})
			sc.FinishResponse()
			if !sc.KeepAlive() {
				done <- nil
				return
			}
		}
	}()
	br := bufio.NewReader(cc)
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("POST", "http://a/x", strings.NewReader("body"))
		req.ContentLength = -1 // chunked
		if err := req.Write(cc); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "body!" || resp.Trailer.Get("X-T") != "v" {
			t.Fatalf("%q %v trailer %v", b, err, resp.Trailer)
		}
	}
	cc.CloseWrite()
	if err := <-done; err != io.EOF {
		t.Fatal(err)
	}
}

func TestClientAgainstNetHTTPServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Got-Host", r.Host)
		w.Header().Set("X-Got-Te", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("X-Got-Trailer", r.Trailer.Get("X-Req-T"))
		w.Header().Set("X-Got-Secret", r.Header.Get("X-Secret"))
		io.WriteString(w, r.Method+" "+r.RequestURI+" "+string(b))
		w.Header().Set("X-Sum", "1")
	}))
	defer srv.Close()
	conn, err := dial(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := NewClientConn(conn)
	defer c.Release()

	// Chunked request with trailers, then a fixed one, then a HEAD, on one connection.
	body := &testBody{r: strings.NewReader("streamed"), trailers: message.Headers{{Name: "x-req-t", Value: "tv"}}}
	reqs := []*message.Request{
		{Method: "POST", Authority: "up.example", Path: "/a?b=c", Header: message.Headers{{Name: "x-secret", Value: "s"}, {Name: "connection", Value: "close"}}, Body: body, ContentLength: -1},
		{Method: "PUT", Authority: "up.example", Path: "/b", Body: &testBody{r: strings.NewReader("fixed")}, ContentLength: 5},
		{Method: "HEAD", Authority: "up.example", Path: "/c"},
	}
	wants := []string{"POST /a?b=c streamed", "PUT /b fixed", ""}
	for i, req := range reqs {
		if err := c.WriteRequest(req); err != nil {
			t.Fatal(err)
		}
		var resp message.Response
		if err := c.ReadResponse(&resp, req.Method); err != nil {
			t.Fatal(err)
		}
		var got []byte
		if resp.Body != nil {
			got, err = io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
		}
		if string(got) != wants[i] || resp.Status != 200 || resp.Protocol != message.HTTP11 {
			t.Fatalf("request %d: %d %q", i, resp.Status, got)
		}
		if resp.Header.Value("x-got-host") != "up.example" {
			t.Fatalf("host %q", resp.Header.Value("x-got-host"))
		}
		if i == 0 {
			if resp.Header.Value("x-got-te") != "chunked" || resp.Header.Value("x-got-trailer") != "tv" || resp.Header.Value("x-got-secret") != "s" {
				t.Fatalf("chunked request: %q", resp.Header)
			}
			if !slices.Equal(resp.Body.Trailers(), message.Headers{{Name: "x-sum", Value: "1"}}) {
				t.Fatalf("response trailers %q", resp.Body.Trailers())
			}
		}
		if i == 2 && resp.Body != nil {
			t.Fatal("HEAD response with a body")
		}
		if !c.Reusable() {
			t.Fatalf("request %d: connection not reusable", i)
		}
	}
}

type testBody struct {
	r        io.Reader
	trailers message.Headers
}

func (b *testBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *testBody) Trailers() message.Headers  { return b.trailers }

func TestReadResponse(t *testing.T) {
	cases := []struct {
		name, raw, method string
		status            int
		body              string
		hasBody           bool
		cl                int64
		reusable          bool
		header            message.Headers
	}{
		{"fixed", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nhi", "GET", 200, "hi", true, 2, true, hdrs("x", "y")},
		{"interim skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", "POST", 201, "", false, 0, true, nil},
		{"no reason", "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx", "GET", 200, "x", true, 1, true, nil},
		{"head", "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n", "HEAD", 200, "", false, 20, true, nil},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", "GET", 204, "", false, 0, true, nil},
		{"304 with te", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 304, "", false, -1, true, nil},
		{"close delimited", "HTTP/1.1 200 OK\r\n\r\nuntil close", "GET", 200, "until close", true, -1, false, nil},
		{"1.0 close delimited", "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nold", "GET", 200, "old", true, -1, false, hdrs("server", "old")},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", "GET", 200, "x", true, 1, false, nil},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n1\r\na\r\n0\r\n\r\n", "GET", 200, "a", true, -1, true, nil},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "GET", 101, "", false, 0, false, hdrs("upgrade", "websocket")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClientConn(newMemConn(tc.raw))
			c.wrote.Store(true)
			var resp message.Response
			if err := c.ReadResponse(&resp, tc.method); err != nil {
				t.Fatal(err)
			}
			var got []byte
			if resp.Body != nil {
				var err error
				if got, err = io.ReadAll(resp.Body); err != nil {
					t.Fatal(err)
				}
			}
			if resp.Status != tc.status || string(got) != tc.body || (resp.Body != nil) != tc.hasBody || resp.ContentLength != tc.cl {
				t.Fatalf("got %d %q body=%v cl=%d", resp.Status, got, resp.Body != nil, resp.ContentLength)
			}
			if !slices.Equal(resp.Header, tc.header) && (len(resp.Header) > 0 || len(tc.header) > 0) {
				t.Fatalf("header %q want %q", resp.Header, tc.header)
			}
			if c.Reusable() != tc.reusable {
				t.Fatalf("Reusable = %v", !tc.reusable)
			}
		})
	}
}

func TestReadResponseRejects(t *testing.T) {
	cases := []struct{ name, raw string }{
		{"http2", "HTTP/2.0 200 OK\r\n\r\n"},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n"},
		{"status range", "HTTP/1.1 099 X\r\n\r\n"},
		{"no space", "HTTP/1.1 200OK\r\n\r\n"},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"},
		{"cl and te", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"te gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{"differing cl", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"},
		{"NUL", "HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n"},
		{"space before colon", "HTTP/1.1 200 OK\r\nX : a\r\n\r\n"},
		{"ctl in reason", "HTTP/1.1 200 O\x01K\r\n\r\n"},
		{"endless interim", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 20) + "HTTP/1.1 200 OK\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClientConn(newMemConn(tc.raw))
			var resp message.Response
			err := c.ReadResponse(&resp, "GET")
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Status != 502 {
				t.Fatalf("got %v, want a 502 ProtocolError", err)
			}
			if c.Reusable() {
				t.Fatal("reusable after a protocol error")
			}
		})
	}
	c := NewClientConn(newMemConn(""))
	if err := c.ReadResponse(&message.Response{}, "GET"); err != io.EOF {
		t.Fatalf("closed before a response: %v, want io.EOF", err)
	}
}

func TestErrorReplyAfterProtocolError(t *testing.T) {
	nc := newMemConn("GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n")
	sc := NewServerConn(nc, Limits{})
	defer sc.Release()
	var req message.Request
	err := sc.ReadRequest(&req)
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v", err)
	}
	w := sc.ResponseWriter()
	body := "Bad Request"
	w.WriteHeader(pe.Status, hdrs("content-type", "text/plain"), int64(len(body)))
	w.Write([]byte(body))
	sc.FinishResponse()
	want := "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 11\r\nconnection: close\r\n\r\nBad Request"
	if nc.w.String() != want {
		t.Fatalf("got %q", nc.w.String())
	}
	if sc.KeepAlive() {
		t.Fatal("keep-alive after a protocol error")
	}
	if err := sc.ReadRequest(&req); err == nil {
		t.Fatal("read a request after a protocol error")
	}
}
