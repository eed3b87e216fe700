package tlscontext

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/legate-proxy/legate/internal/strmatch"
)

// sanMatcher is one compiled SubjectAltNameMatcher.
type sanMatcher struct {
	typ tlsv3.SubjectAltNameMatcher_SanType
	m   strmatch.Matcher
}

// sanMatchers is a validation context's subject-alt-name check: the peer's
// leaf certificate must have a SAN that one of them matches. Nil checks
// nothing.
type sanMatchers []sanMatcher

// errSANMismatch is what a handshake fails with, as Envoy's
// ssl.fail_verify_san.
var errSANMismatch = errors.New("peer certificate's subject alternative names match none of match_typed_subject_alt_names")

// compileSANs compiles vc's match_typed_subject_alt_names and the
// deprecated match_subject_alt_names (path names vc). A deprecated matcher
// carries no type, so, as in Envoy, it is tried against DNS, URI, email
// and IP SANs alike.
func compileSANs(vc *tlsv3.CertificateValidationContext, path string) (sanMatchers, error) {
	var out sanMatchers
	for i, t := range vc.GetMatchTypedSubjectAltNames() {
		p := fmt.Sprintf("%s.match_typed_subject_alt_names[%d]", path, i)
		switch t.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_DNS, tlsv3.SubjectAltNameMatcher_URI,
			tlsv3.SubjectAltNameMatcher_EMAIL, tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
		case tlsv3.SubjectAltNameMatcher_OTHER_NAME:
			return nil, fmt.Errorf("%s.san_type: OTHER_NAME is not supported (DNS, URI, EMAIL and IP_ADDRESS are)", p)
		default:
			return nil, fmt.Errorf("%s.san_type: must be set", p)
		}
		if t.GetOid() != "" {
			return nil, fmt.Errorf("%s.oid: is only for OTHER_NAME, which is not supported", p)
		}
		if t.GetMatcher() == nil {
			return nil, fmt.Errorf("%s.matcher: is required", p)
		}
		m, err := strmatch.Compile(t.GetMatcher(), p+".matcher")
		if err != nil {
			return nil, err
		}
		out = append(out, sanMatcher{typ: t.GetSanType(), m: m})
	}
	//lint:ignore SA1019 the deprecated field is still widely used; Envoy honours it
	legacy := vc.GetMatchSubjectAltNames()
	if len(legacy) > 0 && len(out) > 0 {
		// Envoy ignores the deprecated list then; refusing is clearer.
		return nil, fmt.Errorf("%s: set match_typed_subject_alt_names or the deprecated match_subject_alt_names, not both", path)
	}
	for i, sm := range legacy {
		m, err := strmatch.Compile(sm, fmt.Sprintf("%s.match_subject_alt_names[%d]", path, i))
		if err != nil {
			return nil, err
		}
		for _, typ := range []tlsv3.SubjectAltNameMatcher_SanType{tlsv3.SubjectAltNameMatcher_DNS, tlsv3.SubjectAltNameMatcher_URI,
			tlsv3.SubjectAltNameMatcher_EMAIL, tlsv3.SubjectAltNameMatcher_IP_ADDRESS} {
			out = append(out, sanMatcher{typ: typ, m: m})
		}
	}
	return out, nil
}

// verify checks leaf's SANs; nil matchers accept any certificate.
func (ms sanMatchers) verify(leaf *x509.Certificate) error {
	if len(ms) == 0 {
		return nil
	}
	for i := range ms {
		if ms[i].matches(leaf) {
			return nil
		}
	}
	return errSANMismatch
}

func (s *sanMatcher) matches(leaf *x509.Certificate) bool {
	switch s.typ {
	case tlsv3.SubjectAltNameMatcher_DNS:
		exact, isExact := s.m.ExactValue()
		for _, n := range leaf.DNSNames {
			// An exact matcher names a host; a wildcard SAN in the
			// certificate covers it (Envoy's dnsNameMatch).
			if isExact && dnsNameMatch(exact, n) || s.m.Match(n) {
				return true
			}
		}
	case tlsv3.SubjectAltNameMatcher_URI:
		for _, u := range leaf.URIs {
			if s.m.Match(u.String()) {
				return true
			}
		}
	case tlsv3.SubjectAltNameMatcher_EMAIL:
		for _, e := range leaf.EmailAddresses {
			if s.m.Match(e) {
				return true
			}
		}
	case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
		for _, ip := range leaf.IPAddresses {
			if s.m.Match(ip.String()) {
				return true
			}
		}
	}
	return false
}

// dnsNameMatch reports whether host is covered by the certificate name
// pattern: equal ignoring case, or "*.rest" covering exactly one label
// before rest.
func dnsNameMatch(host, pattern string) bool {
	if strings.EqualFold(host, pattern) {
		return true
	}
	if !strings.HasPrefix(pattern, "*.") {
		return false
	}
	suffix := pattern[1:] // ".rest"
	if len(host) <= len(suffix) || !strings.EqualFold(host[len(host)-len(suffix):], suffix) {
		return false
	}
	return !strings.Contains(host[:len(host)-len(suffix)], ".")
}
