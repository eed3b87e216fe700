package tls_inspector

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"

	tiv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"

	"github.com/legate-proxy/legate/internal/listenerfilter"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/testutil/loopback"
)

// inspect runs the filter on the server side of a connection whose client
// does send(conn), and returns the connection after the filter.
func inspect(t *testing.T, st *stats.Store, send func(net.Conn)) (*networkfilter.Conn, error) {
	t.Helper()
	ln := loopback.Listen(t)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		send(c)
	}()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	f, err := Build(&tiv3.TlsInspector{}, st)
	if err != nil {
		t.Fatal(err)
	}
	c := &networkfilter.Conn{Conn: nc}
	lc := listenerfilter.NewConn(c)
	err = f.OnAccept(lc)
	lc.Finish()
	return c, err
}

func TestClientHello(t *testing.T) {
	st := stats.NewStore()
	c, err := inspect(t, st, func(c net.Conn) {
		tc := tls.Client(c, &tls.Config{ServerName: "Www.Example.COM", NextProtos: []string{"h2", "http/1.1"}})
		tc.Handshake()
		c.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.TransportProtocol != "tls" || c.RequestedServerName != "www.example.com" ||
		len(c.ApplicationProtocols) != 2 || c.ApplicationProtocols[0] != "h2" {
		t.Fatalf("got transport %q sni %q alpn %q", c.TransportProtocol, c.RequestedServerName, c.ApplicationProtocols)
	}
	// The chain reads the ClientHello again.
	head := make([]byte, 3)
	if _, err := io.ReadFull(c.Conn, head); err != nil || !bytes.Equal(head, []byte{0x16, 3, 1}) {
		t.Fatalf("replayed %x, %v", head, err)
	}
	for name, want := range map[string]uint64{"tls_inspector.tls_found": 1, "tls_inspector.sni_found": 1, "tls_inspector.alpn_found": 1} {
		if got := st.Counter(name).Value(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

func TestNotTLS(t *testing.T) {
	st := stats.NewStore()
	c, err := inspect(t, st, func(c net.Conn) { c.Write([]byte("GET / HTTP/1.1\r\n\r\n")) })
	if err != nil {
		t.Fatal(err)
	}
	if c.TransportProtocol != "" || c.RequestedServerName != "" {
		t.Fatalf("plaintext got transport %q sni %q", c.TransportProtocol, c.RequestedServerName)
	}
	b := make([]byte, 3)
	if _, err := io.ReadFull(c.Conn, b); err != nil || string(b) != "GET" {
		t.Fatalf("replayed %q, %v", b, err)
	}
	if got := st.Counter("tls_inspector.tls_not_found").Value(); got != 1 {
		t.Errorf("tls_not_found = %d", got)
	}
}

func TestTooLarge(t *testing.T) {
	st := stats.NewStore()
	_, err := inspect(t, st, func(c net.Conn) {
		// Records of 16 KiB each claiming a 16 MB ClientHello.
		hello := []byte{1, 0xff, 0xff, 0xff}
		for range 5 {
			rec := append([]byte{0x16, 3, 1, 0x40, 0}, make([]byte, 1<<14)...)
			copy(rec[5:], hello)
			hello = nil
			if _, err := c.Write(rec); err != nil {
				break
			}
		}
		c.Close()
	})
	if err == nil {
		t.Fatal("a ClientHello over 64 KiB was accepted")
	}
	if got := st.Counter("tls_inspector.client_hello_too_large").Value(); got != 1 {
		t.Errorf("client_hello_too_large = %d", got)
	}
}

func FuzzParseClientHello(f *testing.F) {
	f.Add([]byte{3, 3})
	f.Fuzz(func(t *testing.T, b []byte) { parseClientHello(b) })
}
