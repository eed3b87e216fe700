package h2

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/http/message"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestServeTLSALPN serves a TLS connection that negotiated "h2": requests
// carry scheme https.
func TestServeTLSALPN(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvCfg := &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"h2", "http/1.1"}}
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
