package tlscontext

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// sanPair is a leaf signed by parent with the given SANs.
func sanPair(t *testing.T, parent *pair, dns []string, uris []string, ips []string, emails []string) *pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "san-leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:       dns,
		EmailAddresses: emails,
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.cert, &key.PublicKey, parent.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	return &pair{cert: cert, key: key,
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		kpem: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}
}

func exact(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func prefix(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v}}
}

func typed(typ tlsv3.SubjectAltNameMatcher_SanType, m *matcherv3.StringMatcher) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: typ, Matcher: m}
}

// TestSANMatchers: each SAN type is matched only against its own kind of
// name, with StringMatcher semantics, exact DNS matchers honour wildcard
// certificate names, and the deprecated untyped list tries every type.
func TestSANMatchers(t *testing.T) {
	p := newPKI(t)
	leaf := sanPair(t, p.ca, []string{"*.svc.example", "api.example"}, []string{"spiffe://example.org/ns/prod/sa/web"},
		[]string{"10.1.2.3", "2001:db8::1"}, []string{"ops@example.org"}).cert
	DNS, URI, IP, EMAIL := tlsv3.SubjectAltNameMatcher_DNS, tlsv3.SubjectAltNameMatcher_URI, tlsv3.SubjectAltNameMatcher_IP_ADDRESS, tlsv3.SubjectAltNameMatcher_EMAIL
	tests := []struct {
		name  string
		vc    *tlsv3.CertificateValidationContext
		match bool
	}{
		{"dns exact", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(DNS, exact("api.example"))}}, true},
		{"dns exact under a wildcard SAN", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(DNS, exact("db.svc.example"))}}, true},
		{"wildcard covers one label only", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(DNS, exact("a.b.svc.example"))}}, false},
		{"dns exact ignore_case", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{
			typed(DNS, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "API.example"}, IgnoreCase: true})}}, true},
		{"dns does not look at URIs", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(DNS, prefix("spiffe://"))}}, false},
		{"spiffe uri prefix", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(URI, prefix("spiffe://example.org/ns/prod/"))}}, true},
		{"spiffe uri other trust domain", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(URI, prefix("spiffe://evil.org/"))}}, false},
		{"spiffe uri regex", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(URI,
			&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `spiffe://example\.org/ns/[^/]+/sa/web`}}})}}, true},
		{"ipv4", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(IP, exact("10.1.2.3"))}}, true},
		{"ipv6", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(IP, exact("2001:db8::1"))}}, true},
		{"email", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(EMAIL, exact("ops@example.org"))}}, true},
		{"any of several", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(DNS, exact("nope")), typed(IP, exact("10.1.2.3"))}}, true},
		{"none of several", &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(DNS, exact("nope")), typed(IP, exact("10.9.9.9"))}}, false},
		//lint:ignore SA1019 the deprecated field is under test
		{"deprecated untyped: uri", &tlsv3.CertificateValidationContext{MatchSubjectAltNames: []*matcherv3.StringMatcher{exact("spiffe://example.org/ns/prod/sa/web")}}, true},
		//lint:ignore SA1019 the deprecated field is under test
		{"deprecated untyped: ip", &tlsv3.CertificateValidationContext{MatchSubjectAltNames: []*matcherv3.StringMatcher{exact("10.1.2.3")}}, true},
		//lint:ignore SA1019 the deprecated field is under test
		{"deprecated untyped: none", &tlsv3.CertificateValidationContext{MatchSubjectAltNames: []*matcherv3.StringMatcher{exact("other.example")}}, false},
	}
	for _, tc := range tests {
		ms, err := compileSANs(tc.vc, "vc")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := ms.verify(leaf) == nil; got != tc.match {
			t.Errorf("%s: match = %v, want %v", tc.name, got, tc.match)
		}
	}
}

// TestSANHandshakes: the checks apply on both sides of a real handshake.
func TestSANHandshakes(t *testing.T) {
	p := newPKI(t)
	web := sanPair(t, p.ca, nil, []string{"spiffe://example.org/ns/prod/sa/web"}, nil, nil)
	batch := sanPair(t, p.ca, nil, []string{"spiffe://example.org/ns/prod/sa/batch"}, nil, nil)
	onlyWeb := &tlsv3.CertificateValidationContext{TrustedCa: inline(p.ca.pem),
		MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(tlsv3.SubjectAltNameMatcher_URI, exact("spiffe://example.org/ns/prod/sa/web"))}}
	srv, err := staticServerConfig(&tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates:       []*tlsv3.TlsCertificate{certOf(p.server)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: onlyWeb},
		},
		RequireClientCertificate: wrapperspb.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		client *pair
		ok     bool
	}{{"downstream SAN matches", web, true}, {"downstream SAN does not match", batch, false}} {
		cli, err := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{certOf(tc.client)}}})
		if err != nil {
			t.Fatal(err)
		}
		_, serr, cerr := handshake(t, srv, cli)
		if ok := serr == nil && cerr == nil; ok != tc.ok {
			t.Errorf("%s: server %v, client %v", tc.name, serr, cerr)
		}
		if !tc.ok && (serr == nil || !strings.Contains(serr.Error(), "subject alternative names")) {
			t.Errorf("%s: server error = %v", tc.name, serr)
		}
	}

	// Upstream: the server's certificate names upstream.example.
	plain, err := staticServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.server)}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{{"upstream SAN matches", "upstream.example", true}, {"upstream SAN does not match", "db.example", false}} {
		cli, err := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa:                 inline(p.ca.pem),
				MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(tlsv3.SubjectAltNameMatcher_DNS, exact(tc.want))}}}}})
		if err != nil {
			t.Fatal(err)
		}
		_, serr, cerr := handshake(t, plain, cli)
		if ok := serr == nil && cerr == nil; ok != tc.ok {
			t.Errorf("%s: server %v, client %v", tc.name, serr, cerr)
		}
	}
}

// TestSANSecret: a validation context over SDS carries SAN matchers too.
func TestSANSecret(t *testing.T) {
	p := newPKI(t)
	d := newDeps()
	srv, err := ServerConfig(&tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates:       []*tlsv3.TlsCertificate{certOf(p.server)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sdsRef("ca")},
		},
		RequireClientCertificate: wrapperspb.Bool(true),
	}, d.Deps)
	if err != nil {
		t.Fatal(err)
	}
	sec := caSecret("ca", p.ca.pem)
	sec.GetValidationContext().MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{typed(tlsv3.SubjectAltNameMatcher_DNS, exact("client"))}
	d.sub.mustPush(t, sec, "1")
	for _, tc := range []struct {
		client *pair
		ok     bool
	}{{p.client, true}, {sanPair(t, p.ca, []string{"intruder"}, nil, nil, nil), false}} {
		cli, err := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{certOf(tc.client)}}})
		if err != nil {
			t.Fatal(err)
		}
		_, serr, cerr := handshake(t, srv, cli)
		if ok := serr == nil && cerr == nil; ok != tc.ok {
			t.Errorf("client %v: server %v, client %v", tc.client.cert.DNSNames, serr, cerr)
		}
	}
	// Without a trusted CA the secret is refused, as in Envoy.
	bad := &tlsv3.Secret{Name: "ca", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(tlsv3.SubjectAltNameMatcher_DNS, exact("client"))}}}}
	if err := d.sub.push(t, bad, "2"); err == nil || !strings.Contains(err.Error(), "without trusted_ca") {
		t.Errorf("push without trusted_ca = %v", err)
	}
}

func TestSANConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		vc   *tlsv3.CertificateValidationContext
		want string
	}{
		{&tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(tlsv3.SubjectAltNameMatcher_DNS, exact("a"))}},
			"common_tls_context.validation_context: SAN-based verification of peer certificates without trusted_ca is insecure"},
		{&tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{Matcher: exact("a")}}},
			"match_typed_subject_alt_names[0].san_type: must be set"},
		{&tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{typed(tlsv3.SubjectAltNameMatcher_URI, nil)}},
			"match_typed_subject_alt_names[0].matcher: is required"},
	} {
		_, err := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: tc.vc}}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}
