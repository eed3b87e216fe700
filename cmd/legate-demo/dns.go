package main

import (
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// dnsTTL is short so that a changed replica set would be picked up quickly,
// as with docker's embedded DNS.
const dnsTTL = 5

// dnsServer answers A queries for the demo's service names from a fixed
// table, over UDP and TCP on the same loopback port. It stands in for the
// container DNS of the docker-compose version of the case study, without
// touching the machine's /etc/hosts or resolv.conf.
type dnsServer struct {
	records map[string][]net.IP // lower-case first label → addresses
	udp     *dns.Server
	tcp     *dns.Server
	addr    string
	wg      sync.WaitGroup
}

// startDNS binds addr (host:port; port 0 picks one) on UDP and TCP and serves
// records until close. A query matches a record when its first label equals
// the record's name, so "service1", "service1." and a search-domain expansion
// such as "service1.example.com." all resolve.
func startDNS(addr string, records map[string][]net.IP) (*dnsServer, error) {
	s := &dnsServer{records: make(map[string][]net.IP, len(records))}
	for name, ips := range records {
		s.records[strings.ToLower(name)] = ips
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dns: listen udp %s: %w", addr, err)
	}
	// TCP on the same port as UDP, so that one resolver address serves both.
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dns: listen tcp %s: %w", pc.LocalAddr(), err)
	}
	s.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: ln, Handler: h}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = srv.ActivateAndServe() // returns when shut down
		}()
		<-started
	}
	return s, nil
}

// Addr is the host:port the server answers on.
func (s *dnsServer) Addr() string { return s.addr }

func (s *dnsServer) Close() {
	_ = s.udp.Shutdown()
	_ = s.tcp.Shutdown()
	s.wg.Wait()
}

func (s *dnsServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	ips, ok := s.lookup(q.Name)
	switch {
	case !ok:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA && q.Qclass == dns.ClassINET:
		for _, ip := range ips {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: dnsTTL},
				A:   ip.To4(),
			})
		}
	default:
		// The name exists but has no records of this type (e.g. AAAA): an
		// empty NOERROR answer, so resolvers fall back to A rather than fail.
	}
	_ = w.WriteMsg(m)
}

func (s *dnsServer) lookup(name string) ([]net.IP, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	label, _, _ := strings.Cut(name, ".")
	ips, ok := s.records[label]
	return ips, ok
}
