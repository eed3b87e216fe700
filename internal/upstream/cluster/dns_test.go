package cluster

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testDNS is a real DNS server on loopback (UDP and TCP on one port)
// whose answers tests change as they go.
type testDNS struct {
	addr netip.AddrPort

	mu       sync.Mutex
	records  map[string][]netip.Addr // fqdn → addresses (A and AAAA)
	ttl      uint32
	servfail bool
	truncUDP bool // answer UDP with TC set and no records

	queries atomic.Int64
}

func newTestDNS(t *testing.T) *testDNS {
	t.Helper()
	d := &testDNS{records: map[string][]netip.Addr{}, ttl: 30}
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if try > 20 {
			t.Fatalf("no UDP+TCP port pair: %v", err)
		}
	}
	d.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	udp := &dns.Server{PacketConn: pc, Handler: d}
	tcp := &dns.Server{Listener: ln, Handler: d}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return d
}

func (d *testDNS) set(name string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	d.records[dns.Fqdn(name)] = as
}

func (d *testDNS) setTTL(ttl uint32) {
	d.mu.Lock()
	d.ttl = ttl
	d.mu.Unlock()
}

func (d *testDNS) setServfail(v bool) {
	d.mu.Lock()
	d.servfail = v
	d.mu.Unlock()
}

func (d *testDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	d.queries.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	switch {
	case d.servfail:
		m.Rcode = dns.RcodeServerFailure
	case d.truncUDP && w.LocalAddr().Network() == "udp":
		m.Truncated = true
	default:
		addrs, ok := d.records[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
			break
		}
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: d.ttl}
		for _, a := range addrs {
			switch {
			case a.Is4() && q.Qtype == dns.TypeA:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case a.Is6() && q.Qtype == dns.TypeAAAA:
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
	}
	w.WriteMsg(m)
}

func TestResolverFamilies(t *testing.T) {
	d := newTestDNS(t)
	d.set("both.test", "10.0.0.1", "10.0.0.2", "fd00::1")
	d.set("v4.test", "10.0.0.1")
	d.set("v6.test", "fd00::1")
	r := newDNSResolver([]netip.AddrPort{d.addr})
	tests := []struct {
		name   string
		family DNSFamily
		want   string
	}{
		{"both.test", V4Only, "10.0.0.1 10.0.0.2"},
		{"both.test", V6Only, "fd00::1"},
		{"both.test", Auto, "fd00::1"},
		{"both.test", V4Preferred, "10.0.0.1 10.0.0.2"},
		{"both.test", All, "10.0.0.1 10.0.0.2 fd00::1"},
		{"v4.test", Auto, "10.0.0.1"},
		{"v4.test", V6Only, ""},
		{"v6.test", V4Preferred, "fd00::1"},
		{"v6.test", V4Only, ""},
		{"missing.test", Auto, ""},
	}
	for _, tt := range tests {
		addrs, ttl, err := r.resolve(context.Background(), tt.name, tt.family)
		if err != nil {
			t.Errorf("%s family %d: %v", tt.name, tt.family, err)
			continue
		}
		if got := joinAddrs(addrs); got != tt.want {
			t.Errorf("%s family %d = %q, want %q", tt.name, tt.family, got, tt.want)
		}
		if len(addrs) > 0 && ttl != 30*time.Second {
			t.Errorf("%s: ttl %v, want 30s", tt.name, ttl)
		}
	}
}

func TestResolverTruncatedFallsBackToTCP(t *testing.T) {
	d := newTestDNS(t)
	d.set("big.test", "10.0.0.7")
	d.mu.Lock()
	d.truncUDP = true
	d.mu.Unlock()
	r := newDNSResolver([]netip.AddrPort{d.addr})
	addrs, _, err := r.resolve(context.Background(), "big.test", V4Only)
	if err != nil || joinAddrs(addrs) != "10.0.0.7" {
		t.Fatalf("resolve = %v, %v; want 10.0.0.7 over TCP", addrs, err)
	}
}

func TestResolverFailureAndFallbackServer(t *testing.T) {
	bad := newTestDNS(t)
	bad.setServfail(true)
	good := newTestDNS(t)
	good.set("x.test", "10.0.0.9")

	if _, _, err := newDNSResolver([]netip.AddrPort{bad.addr}).resolve(context.Background(), "x.test", V4Only); err == nil ||
		!strings.Contains(err.Error(), "SERVFAIL") {
		t.Fatalf("SERVFAIL: err = %v", err)
	}
	addrs, _, err := newDNSResolver([]netip.AddrPort{bad.addr, good.addr}).resolve(context.Background(), "x.test", V4Only)
	if err != nil || joinAddrs(addrs) != "10.0.0.9" {
		t.Fatalf("second server: %v, %v", addrs, err)
	}
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

func hostAddrs(c *Cluster) []string {
	var out []string
	for _, h := range c.Hosts() {
		out = append(out, h.Address)
	}
	slices.Sort(out)
	return out
}
