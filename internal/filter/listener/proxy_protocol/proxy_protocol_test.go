package proxy_protocol

import (
	"io"
	"net"
	"testing"

	ppv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/proxy_protocol/v3"

	"github.com/legate-proxy/legate/internal/listenerfilter"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/testutil/loopback"
)

// run sends b on a fresh connection and runs the filter on the server side.
func run(t *testing.T, pb *ppv3.ProxyProtocol, st *stats.Store, b []byte) (*networkfilter.Conn, error) {
	t.Helper()
	ln := loopback.Listen(t)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		c.Write(b)
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
		c.Close()
	}()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	f, err := Build(pb, st)
	if err != nil {
		t.Fatal(err)
	}
	c := &networkfilter.Conn{Conn: nc}
	c.RemoteAddr = nc.RemoteAddr().(*net.TCPAddr).AddrPort()
	lc := listenerfilter.NewConn(c)
	err = f.OnAccept(lc)
	lc.Finish()
	return c, err
}

func rest(t *testing.T, c *networkfilter.Conn) string {
	b, _ := io.ReadAll(c.Conn)
	return string(b)
}

func TestV1(t *testing.T) {
	st := stats.NewStore()
	c, err := run(t, &ppv3.ProxyProtocol{}, st, []byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /"))
	if err != nil {
		t.Fatal(err)
	}
	if c.RemoteAddr.String() != "192.0.2.1:56324" || c.LocalAddr.String() != "198.51.100.2:443" || !c.DirectRemoteAddr.Addr().IsLoopback() {
		t.Fatalf("remote %s local %s direct %s", c.RemoteAddr, c.LocalAddr, c.DirectRemoteAddr)
	}
	if got := rest(t, c); got != "GET /" {
		t.Fatalf("chain reads %q", got)
	}
	if st.Counter("proxy_proto.versions.v1.found").Value() != 1 {
		t.Error("versions.v1.found not counted")
	}
}

func TestV2WithTLV(t *testing.T) {
	hdr := append([]byte(nil), v2Signature...)
	payload := []byte{192, 0, 2, 7, 203, 0, 113, 9, 0x30, 0x39, 0x01, 0xbb}
	payload = append(payload, 0xE0, 0, 3, 'a', 'b', 'c') // custom TLV with a rule
	payload = append(payload, 0x04, 0, 2, 0, 0)          // NOOP
	hdr = append(hdr, 0x21, 0x11, 0, byte(len(payload))) // v2 PROXY, INET STREAM
	hdr = append(append(hdr, payload...), "hello"...)
	st := stats.NewStore()
	pb := &ppv3.ProxyProtocol{StatPrefix: "pp", Rules: []*ppv3.ProxyProtocol_Rule{{TlvType: 0xE0, OnTlvPresent: &ppv3.ProxyProtocol_KeyValuePair{Key: "vpc"}}}}
	c, err := run(t, pb, st, hdr)
	if err != nil {
		t.Fatal(err)
	}
	if c.RemoteAddr.String() != "192.0.2.7:12345" || c.LocalAddr.String() != "203.0.113.9:443" {
		t.Fatalf("remote %s local %s", c.RemoteAddr, c.LocalAddr)
	}
	if v, ok := c.Dynamic.MetadataValue(defaultNamespace, []string{"vpc"}); !ok || v.GetStringValue() != "abc" {
		t.Fatalf("TLV metadata %v %v", v, ok)
	}
	if got := rest(t, c); got != "hello" {
		t.Fatalf("chain reads %q", got)
	}
	if st.Counter("proxy_proto.pp.versions.v2.found").Value() != 1 {
		t.Error("versions.v2.found not counted")
	}
}

func TestWithout(t *testing.T) {
	st := stats.NewStore()
	if _, err := run(t, &ppv3.ProxyProtocol{}, st, []byte("GET / HTTP/1.1\r\n")); err == nil {
		t.Fatal("a connection without a header was accepted")
	}
	c, err := run(t, &ppv3.ProxyProtocol{AllowRequestsWithoutProxyProtocol: true}, st, []byte("PRI * HTTP/2.0"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rest(t, c); got != "PRI * HTTP/2.0" {
		t.Fatalf("chain reads %q", got)
	}
	if st.Counter("proxy_proto.not_found_disallowed").Value() != 1 || st.Counter("proxy_proto.not_found_allowed").Value() != 1 {
		t.Error("not_found stats")
	}
}

func TestMalformed(t *testing.T) {
	for _, in := range []string{
		"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",
		"PROXY TCP4 ::1 5.6.7.8 80 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 70000 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 80 80\n",
		"PROXY " + string(make([]byte, 120)),
		string(v2Signature) + "\x21\x11\x00\x04abcd",
		string(v2Signature) + "\x21\x31\x00\x00",
	} {
		if _, err := run(t, &ppv3.ProxyProtocol{}, stats.NewStore(), []byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
