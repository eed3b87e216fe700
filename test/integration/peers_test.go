package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNSServer answers A queries from a mutable table; unknown names get
// NXDOMAIN.
type DNSServer struct {
	Addr    string
	Port    int
	mu      sync.Mutex
	records map[string][]string // fqdn → IPv4s
	Queries atomic.Int64
}

func startDNS(t testing.TB) *DNSServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &DNSServer{records: map[string][]string{}}
	d.Addr = pc.LocalAddr().String()
	d.Port = pc.LocalAddr().(*net.UDPAddr).Port
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("DNS server did not start")
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	return d
}

// Set replaces the A records of name.
func (d *DNSServer) Set(name string, ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[dns.Fqdn(name)] = ips
}

func (d *DNSServer) serve(w dns.ResponseWriter, r *dns.Msg) {
	d.Queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) == 1 {
		q := r.Question[0]
		d.mu.Lock()
		ips, ok := d.records[strings.ToLower(q.Name)]
		d.mu.Unlock()
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A:   net.ParseIP(ip).To4(),
				})
			}
		}
	}
	_ = w.WriteMsg(m)
}

// resolverYAML is the typed_dns_resolver_config pointing a cluster at d.
func (d *DNSServer) resolverYAML() string {
	return `typed_dns_resolver_config:
  name: envoy.network.dns_resolver.cares
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig
    resolvers:
    - socket_address: {address: 127.0.0.1, port_value: ` + itoa(d.Port) + `}`
}

// sameLoopbackPort binds the same free port on 127.0.0.2, .3, .4 ... so a
// STRICT_DNS name can resolve to several hosts sharing one endpoint port.
func sameLoopbackPort(t testing.TB, n int) []net.Listener {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		first, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for i := 1; i < n; i++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0."+itoa(2+i), itoa(port)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == n {
			return lns
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Fatal("could not bind one port on several loopback addresses")
	return nil
}

// startH2CUpstream serves h over HTTP/2 cleartext (prior knowledge) and
// HTTP/1.1 on one port.
func startH2CUpstream(t testing.TB, name string, h http.Handler) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = echoHandler(name)
	}
	return serveUpstream(t, name, ln, h, func(s *http.Server) {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetHTTP1(true)
		s.Protocols.SetUnencryptedHTTP2(true)
	})
}

// startTLSUpstream serves the echo handler over TLS with cert, recording
// the SNI it was offered.
func startTLSUpstream(t testing.TB, name string, cert tls.Certificate, sni *atomic.Value) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			sni.Store(hi.ServerName)
			return nil, nil
		},
	})
	return serveUpstream(t, name, tln, nil)
}

// PKI is a test CA with helpers to issue server and client certificates.
type PKI struct {
	CA     *x509.Certificate
	CAKey  *ecdsa.PrivateKey
	CAPEM  string
	Pool   *x509.CertPool
	serial int64
	mu     sync.Mutex
}

func newPKI(t testing.TB) *PKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "legate-test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &PKI{CA: ca, CAKey: key, serial: 1, Pool: x509.NewCertPool()}
	p.Pool.AddCert(ca)
	p.CAPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return p
}

// Issued is a certificate with its PEM forms.
type Issued struct {
	CertPEM, KeyPEM string
	TLS             tls.Certificate
}

// Issue makes a leaf for names (DNS names or IPs); client selects client
// auth usage.
func (p *PKI) Issue(t testing.TB, cn string, client bool, names ...string) Issued {
	t.Helper()
	p.mu.Lock()
	p.serial++
	serial := p.serial
	p.mu.Unlock()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CA, &key.PublicKey, p.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	is := Issued{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})),
	}
	is.TLS, err = tls.X509KeyPair([]byte(is.CertPEM), []byte(is.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// writeFile writes content into the test's temp dir and returns its path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// inlineYAML renders a multi-line PEM as a YAML block scalar at indent.
func inlineYAML(pemText, indent string) string {
	return "|\n" + indent + strings.ReplaceAll(strings.TrimRight(pemText, "\n"), "\n", "\n"+indent)
}

func itoa(i int) string { return strconv.Itoa(i) }
