package original_dst

import (
	"net"
	"testing"

	"github.com/legate-proxy/legate/internal/listenerfilter"
	"github.com/legate-proxy/legate/internal/networkfilter"
	"github.com/legate-proxy/legate/internal/testutil/loopback"
)

// A connection that was not redirected keeps its local address (the test
// cannot set up iptables).
func TestNotRedirected(t *testing.T) {
	ln := loopback.Listen(t)
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &networkfilter.Conn{Conn: nc, LocalAddr: nc.LocalAddr().(*net.TCPAddr).AddrPort()}
	want := c.LocalAddr
	if err := (Filter{}).OnAccept(listenerfilter.NewConn(c)); err != nil {
		t.Fatal(err)
	}
	if c.LocalAddr != want || c.LocalRestored {
		t.Fatalf("local %s restored=%v, want %s", c.LocalAddr, c.LocalRestored, want)
	}
}
