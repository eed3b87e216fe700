package tcp_proxy

import (
	"crypto/tls"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// tlsCluster is clusterPB with an UpstreamTlsContext sending sni.
func tlsCluster(t *testing.T, name, sni string, addrs ...string) *clusterv3.Cluster {
	t.Helper()
	c := clusterPB(name, addrs...)
	tc, err := anypb.New(&tlsv3.UpstreamTlsContext{Sni: sni})
	if err != nil {
		t.Fatal(err)
	}
	c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tc}}
	return c
}

// TestTLSUpstream originates TLS to the upstream: the downstream speaks
// plain TCP, the upstream sees a TLS session with the cluster's SNI.
func TestTLSUpstream(t *testing.T) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{testutil.SelfSigned(t, "backend.test")}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	sni := make(chan string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		tc := c.(*tls.Conn)
		if tc.Handshake() != nil {
			return
		}
		sni <- tc.ConnectionState().ServerName
		io.Copy(c, c) // until the proxy's close_notify
		tc.CloseWrite()
	}()
	h := newHarness(t, simple("svc"), tlsCluster(t, "svc", "backend.test", ln.Addr().String()))
	c := h.dial()
	c.Write([]byte("over tls"))
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "over tls" {
		t.Fatalf("read %q, %v", got, err)
	}
	if s := <-sni; s != "backend.test" {
		t.Errorf("upstream saw SNI %q", s)
	}
	if si := h.wait(); si.Flags != 0 || si.BytesReceived != 8 || si.BytesSent != 8 {
		t.Errorf("flags %v bytes %d/%d", si.Flags, si.BytesReceived, si.BytesSent)
	}
}

// TestTLSHandshakeFailure: an upstream that does not speak TLS fails the
// connect (UF) with a TLS failure reason.
func TestTLSHandshakeFailure(t *testing.T) {
	up := startServer(t, echo) // echoes the ClientHello back: not TLS
	h := newHarness(t, simple("svc"), tlsCluster(t, "svc", "", up))
	c := h.dial()
	io.ReadAll(c)
	si := h.wait()
	if si.Flags.String() != "UF,URX" || !strings.HasPrefix(si.UpstreamTransportFailureReason, "TLS_error:") {
		t.Errorf("flags %v reason %q", si.Flags, si.UpstreamTransportFailureReason)
	}
	if n := h.counter("cluster.svc.upstream_cx_connect_fail"); n != 1 {
		t.Errorf("upstream_cx_connect_fail = %d", n)
	}
}
