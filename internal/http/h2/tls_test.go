package h2

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/legate-proxy/legate/internal/testutil"

	"github.com/legate-proxy/legate/internal/http/message"
)

// TestServeTLSALPN serves a TLS connection that negotiated "h2": requests
// carry scheme https.
func TestServeTLSALPN(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvCfg := &tls.Config{Certificates: []tls.Certificate{testutil.SelfSigned(t, "localhost")}, NextProtos: []string{"h2", "http/1.1"}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		tc := tls.Server(c, srvCfg)
		if err := tc.HandshakeContext(ctxT(t)); err != nil || tc.ConnectionState().NegotiatedProtocol != "h2" {
			t.Errorf("handshake: %v, alpn %q", err, tc.ConnectionState().NegotiatedProtocol)
			tc.Close()
			return
		}
		Serve(ctxT(t), tc, ServerConfig{}, func(_ context.Context, req *message.Request, w message.ResponseWriter) {
			w.WriteHeader(200, nil, int64(len(req.Scheme)))
			w.Write([]byte(req.Scheme))
		})
	}()
	nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := NewClientConn(nc, ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cc.RoundTrip(ctxT(t), &message.Request{Method: "GET", Scheme: "https", Authority: "localhost", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "https" {
		t.Fatalf("body %q %v", b, err)
	}
	cc.Close()
	<-done
}
