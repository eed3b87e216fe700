package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// resolver answers A/AAAA lookups. ttl is 0 when unknown.
type resolver interface {
	resolve(ctx context.Context, name string, family DNSFamily) (addrs []netip.Addr, ttl time.Duration, err error)
}

// queryTimeout bounds one query to one server.
const queryTimeout = 3 * time.Second

// applyFamily runs the per-family queries in dns_lookup_family's order.
// A name with no records of a family is an empty answer, not an error;
// the lookup fails only when every query it needed failed.
func applyFamily(family DNSFamily, q func(v6 bool) ([]netip.Addr, time.Duration, error)) ([]netip.Addr, time.Duration, error) {
	first, fallback := false, true // v4 then v6
	switch family {
	case V4Only:
		return q(false)
	case V6Only:
		return q(true)
	case Auto:
		first, fallback = true, false
	case V4Preferred:
	case All:
		a4, t4, e4 := q(false)
		a6, t6, e6 := q(true)
		if e4 != nil && e6 != nil {
			return nil, 0, e4
		}
		return append(a4, a6...), minTTL(t4, t6), nil
	}
	a, ttl, err := q(first)
	if err == nil && len(a) > 0 {
		return a, ttl, nil
	}
	b, ttl2, err2 := q(fallback)
	if err2 != nil {
		if err != nil {
			return nil, 0, err
		}
		// The preferred family answered (empty); report that.
		return a, ttl, nil
	}
	return b, ttl2, nil
}

func minTTL(a, b time.Duration) time.Duration {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// systemResolver is Go's resolver: /etc/hosts, then the system's DNS. It
// does not report TTLs.
type systemResolver struct{}

func (systemResolver) resolve(ctx context.Context, name string, family DNSFamily) ([]netip.Addr, time.Duration, error) {
	all, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, 0, nil
		}
		return nil, 0, err
	}
	return applyFamily(family, func(v6 bool) ([]netip.Addr, time.Duration, error) {
		var out []netip.Addr
		for _, a := range all {
			a = a.Unmap()
			if a.Is6() == v6 {
				out = append(out, a)
			}
		}
		return out, 0, nil
	})
}

// dnsResolver queries the configured servers directly (the c-ares
// resolvers of typed_dns_resolver_config, or dns_resolvers): UDP first,
// TCP when the answer is truncated, servers tried in order.
type dnsResolver struct {
	servers  []string
	udp, tcp *dns.Client
}

func newDNSResolver(servers []netip.AddrPort) *dnsResolver {
	r := &dnsResolver{
		udp: &dns.Client{Net: "udp", Timeout: queryTimeout},
		tcp: &dns.Client{Net: "tcp", Timeout: queryTimeout},
	}
	for _, s := range servers {
		r.servers = append(r.servers, s.String())
	}
	return r
}

func (r *dnsResolver) resolve(ctx context.Context, name string, family DNSFamily) ([]netip.Addr, time.Duration, error) {
	return applyFamily(family, func(v6 bool) ([]netip.Addr, time.Duration, error) {
		qtype := dns.TypeA
		if v6 {
			qtype = dns.TypeAAAA
		}
		return r.query(ctx, name, qtype)
	})
}

func (r *dnsResolver) query(ctx context.Context, name string, qtype uint16) ([]netip.Addr, time.Duration, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	var lastErr error
	for _, server := range r.servers {
		in, err := r.exchange(ctx, m, server)
		if err != nil {
			lastErr = fmt.Errorf("%s %s via %s: %w", dns.TypeToString[qtype], name, server, err)
			continue
		}
		switch in.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			// NXDOMAIN is an answer: the name has no addresses.
			return nil, 0, nil
		default:
			lastErr = fmt.Errorf("%s %s via %s: %s", dns.TypeToString[qtype], name, server, dns.RcodeToString[in.Rcode])
			continue
		}
		var out []netip.Addr
		var ttl uint32
		for _, rr := range in.Answer {
			var a netip.Addr
			switch rr := rr.(type) {
			case *dns.A:
				if qtype != dns.TypeA {
					continue
				}
				a, _ = netip.AddrFromSlice(rr.A.To4())
			case *dns.AAAA:
				if qtype != dns.TypeAAAA {
					continue
				}
				a, _ = netip.AddrFromSlice(rr.AAAA.To16())
			default:
				continue // CNAME chains: only the addresses matter
			}
			if !a.IsValid() {
				continue
			}
			out = append(out, a)
			if h := rr.Header().Ttl; len(out) == 1 || h < ttl {
				ttl = h
			}
		}
		return out, time.Duration(ttl) * time.Second, nil
	}
	if lastErr == nil {
		lastErr = errors.New("no DNS servers")
	}
	return nil, 0, lastErr
}

func (r *dnsResolver) exchange(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, error) {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	in, _, err := r.udp.ExchangeContext(qctx, m, server)
	if err == nil && in.Truncated {
		in, _, err = r.tcp.ExchangeContext(qctx, m, server)
	}
	return in, err
}
