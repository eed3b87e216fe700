package http1

import (
	"io"
	"testing"

	"github.com/legate-proxy/legate/internal/http/message"
)

// A request as curl and wrk send it.
const benchRequest = "GET /service/1?x=1 HTTP/1.1\r\n" +
	"Host: localhost:8080\r\n" +
	"User-Agent: curl/8.5.0\r\n" +
	"Accept: */*\r\n" +
	"Accept-Encoding: gzip, deflate\r\n" +
	"Connection: keep-alive\r\n" +
	"X-Request-Id: 6f1c2b8e-0c1d-4a7b-9d5e-2f3a4b5c6d7e\r\n" +
	"\r\n"

func BenchmarkReadRequest(b *testing.B) {
	nc := newMemConn("")
	in := []byte(benchRequest)
	c := NewServerConn(nc, Limits{})
	defer c.Release()
	rw := c.ResponseWriter()
	var req message.Request
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		nc.r.Reset(in)
		c.bufs.br.Reset(nc)
		if err := c.ReadRequest(&req); err != nil {
			b.Fatal(err)
		}
		// Finish the exchange so the next ReadRequest may proceed.
		c.rw.headerWritten, c.rw.finished = true, true
		_ = rw
	}
}

func BenchmarkWriteResponse(b *testing.B) {
	nc := newMemConn("")
	c := NewServerConn(nc, Limits{})
	defer c.Release()
	c.proto = message.HTTP11
	c.active = true
	h := message.Headers{
		{Name: "content-type", Value: "application/json"},
		{Name: "date", Value: "Mon, 02 Jan 2006 15:04:05 GMT"},
		{Name: "server", Value: "envoy"},
		{Name: "x-envoy-upstream-service-time", Value: "1"},
	}
	body := []byte(`{"hostname":"a","ip":"127.0.0.1","serviceid":"1","success":true}`)
	b.ReportAllocs()
	for b.Loop() {
		nc.w.Reset()
		c.rw = respWriter{c: c}
		w := c.ResponseWriter()
		if err := w.WriteHeader(200, h, int64(len(body))); err != nil {
			b.Fatal(err)
		}
		w.Write(body)
		if err := c.FinishResponse(); err != nil {
			b.Fatal(err)
		}
	}
	_ = io.EOF
}

func BenchmarkClientRoundTrip(b *testing.B) {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\nok")
	nc := newMemConn("")
	c := NewClientConn(nc)
	defer c.Release()
	req := &message.Request{Method: "GET", Authority: "service1", Path: "/service/1", Header: message.Headers{
		{Name: "user-agent", Value: "curl/8.5.0"}, {Name: "accept", Value: "*/*"},
		{Name: "x-forwarded-proto", Value: "http"}, {Name: "x-request-id", Value: "6f1c2b8e-0c1d-4a7b-9d5e-2f3a4b5c6d7e"},
	}}
	var r message.Response
	buf := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		nc.w.Reset()
		nc.r.Reset(resp)
		if err := c.WriteRequest(req); err != nil {
			b.Fatal(err)
		}
		if err := c.ReadResponse(&r, "GET"); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Body.Read(buf); err != io.EOF {
			b.Fatal(err)
		}
		if !c.Reusable() {
			b.Fatal("not reusable")
		}
	}
}
