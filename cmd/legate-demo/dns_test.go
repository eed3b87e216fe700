package main

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestDNSServer(t *testing.T) {
	s, err := startDNS("127.0.0.1:0", map[string][]net.IP{
		"service1": {net.IPv4(127, 0, 0, 11), net.IPv4(127, 0, 0, 12), net.IPv4(127, 0, 0, 13)},
		"Service2": {net.IPv4(127, 0, 0, 21)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"service1.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}},
		{"SERVICE1.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}},
		{"service1.search.example.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}},
		{"service2.", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.21"}},
		{"service2.", dns.TypeAAAA, dns.RcodeSuccess, nil},
		{"service3.", dns.TypeA, dns.RcodeNameError, nil},
		{"example.com.", dns.TypeA, dns.RcodeNameError, nil},
	}
	for _, proto := range []string{"udp", "tcp"} {
		client := &dns.Client{Net: proto, Timeout: 10 * time.Second}
		for _, tc := range tests {
			t.Run(proto+"/"+tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
				m := new(dns.Msg)
				m.SetQuestion(tc.name, tc.qtype)
				r, _, err := client.Exchange(m, s.Addr())
				if err != nil {
					t.Fatal(err)
				}
				if r.Rcode != tc.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				var got []string
				for _, rr := range r.Answer {
					a, ok := rr.(*dns.A)
					if !ok {
						t.Fatalf("unexpected record %v", rr)
					}
					if a.Hdr.Name != tc.name || a.Hdr.Ttl != dnsTTL {
						t.Errorf("record header %v", a.Hdr)
					}
					got = append(got, a.A.String())
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("answers %v, want %v", got, tc.want)
				}
			})
		}
	}

	// A stock stub resolver pointed at the server finds the replicas, as
	// Legate's resolver (or the system's, in a container) would.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr())
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, "service1")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(addrs)
	if want := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}; !slices.Equal(addrs, want) {
		t.Errorf("LookupHost = %v, want %v", addrs, want)
	}
}
