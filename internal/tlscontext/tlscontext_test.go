package tlscontext

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	"github.com/legate-proxy/legate/internal/xds"
)

type pair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte // certificate
	kpem []byte // key
}

var serial int64

func newPair(t *testing.T, cn string, parent *pair, isCA bool, notAfter time.Time) *pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		DNSNames:              []string{cn},
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &pair{
		cert: cert, key: key,
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		kpem: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: string(b)}}
}

func certOf(p *pair) *tlsv3.TlsCertificate {
	return &tlsv3.TlsCertificate{CertificateChain: inline(p.pem), PrivateKey: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: p.kpem}}}
}

func withCA(common *tlsv3.CommonTlsContext, ca []byte) *tlsv3.CommonTlsContext {
	common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{
		ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(ca)},
	}
	return common
}

type pki struct{ ca, server, client, otherCA, stranger *pair }

func newPKI(t *testing.T) pki {
	far := time.Now().Add(24 * time.Hour)
	ca := newPair(t, "test-ca", nil, true, far)
	other := newPair(t, "other-ca", nil, true, far)
	return pki{
		ca:       ca,
		server:   newPair(t, "upstream.example", ca, false, far),
		client:   newPair(t, "client", ca, false, far),
		otherCA:  other,
		stranger: newPair(t, "stranger", other, false, far),
	}
}

// handshake runs one TLS handshake over loopback and returns both errors
// and what the client saw.
func handshake(t *testing.T, srv, cli *tls.Config) (state tls.ConnectionState, serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, srv)
		tc.SetDeadline(time.Now().Add(20 * time.Second))
		err = tc.Handshake()
		if err == nil {
			// Under TLS 1.3 the client learns of a rejected certificate
			// only on its first read, so answer one byte.
			_, err = tc.Write([]byte("x"))
		}
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, cli)
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	clientErr = tc.Handshake()
	if clientErr == nil {
		_, clientErr = io.ReadFull(tc, make([]byte, 1))
		state = tc.ConnectionState()
	}
	if clientErr != nil {
		c.Close()
	}
	serverErr = <-done
	return state, serverErr, clientErr
}

func TestMutualTLSHandshake(t *testing.T) {
	p := newPKI(t)
	srv, err := staticServerConfig(&tlsv3.DownstreamTlsContext{
		CommonTlsContext: withCA(&tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.server)},
			AlpnProtocols:   []string{"h2", "http/1.1"},
		}, p.ca.pem),
		RequireClientCertificate: wrapperspb.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if srv.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("ClientAuth = %v", srv.ClientAuth)
	}

	tests := []struct {
		name    string
		client  *tlsv3.UpstreamTlsContext
		wantErr bool
	}{
		{"trusted client cert", &tlsv3.UpstreamTlsContext{Sni: "upstream.example", CommonTlsContext: withCA(&tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.client)}, AlpnProtocols: []string{"h2"},
		}, p.ca.pem)}, false},
		{"no client cert", &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}}, true},
		{"client cert from another CA", &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.stranger)},
		}}, true},
		{"client distrusts server", &tlsv3.UpstreamTlsContext{CommonTlsContext: withCA(&tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.client)},
		}, p.otherCA.pem)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cli, err := staticClientConfig(tc.client)
			if err != nil {
				t.Fatal(err)
			}
			st, serr, cerr := handshake(t, srv, cli)
			if tc.wantErr {
				if serr == nil && cerr == nil {
					t.Fatal("handshake succeeded, want failure")
				}
				return
			}
			if serr != nil || cerr != nil {
				t.Fatalf("server err %v, client err %v", serr, cerr)
			}
			if st.NegotiatedProtocol != "h2" {
				t.Errorf("ALPN = %q, want h2", st.NegotiatedProtocol)
			}
			// Client default max is TLS 1.2, as in Envoy.
			if st.Version != tls.VersionTLS12 {
				t.Errorf("version = %s, want TLS 1.2", tls.VersionName(st.Version))
			}
		})
	}
}

func TestClientWithoutValidationContextSkipsVerification(t *testing.T) {
	p := newPKI(t)
	srv, err := staticServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.stranger)},
		TlsParams:       &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if srv.ClientAuth != tls.NoClientCert {
		t.Fatalf("ClientAuth = %v", srv.ClientAuth)
	}
	cli, err := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
	}})
	if err != nil {
		t.Fatal(err)
	}
	st, serr, cerr := handshake(t, srv, cli)
	if serr != nil || cerr != nil {
		t.Fatalf("server err %v, client err %v", serr, cerr)
	}
	if st.Version != tls.VersionTLS13 {
		t.Errorf("version = %s", tls.VersionName(st.Version))
	}
}

func TestTrustedCAWithoutRequireVerifiesIfGiven(t *testing.T) {
	p := newPKI(t)
	srv, err := staticServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: withCA(&tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.server)},
	}, p.ca.pem)})
	if err != nil {
		t.Fatal(err)
	}
	if srv.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Fatalf("ClientAuth = %v", srv.ClientAuth)
	}
	noCert, _ := staticClientConfig(&tlsv3.UpstreamTlsContext{})
	if _, serr, cerr := handshake(t, srv, noCert); serr != nil || cerr != nil {
		t.Fatalf("without cert: server err %v, client err %v", serr, cerr)
	}
	bad, _ := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.stranger)},
	}})
	if _, serr, cerr := handshake(t, srv, bad); serr == nil && cerr == nil {
		t.Fatal("untrusted client cert accepted")
	}

	// require without trusted_ca: a certificate is demanded, not verified.
	srv2, err := staticServerConfig(&tlsv3.DownstreamTlsContext{
		CommonTlsContext:         &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.server)}},
		RequireClientCertificate: wrapperspb.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if srv2.ClientAuth != tls.RequireAnyClientCert {
		t.Fatalf("ClientAuth = %v", srv2.ClientAuth)
	}
}

func TestVersionsAndCiphers(t *testing.T) {
	p := newPKI(t)
	certs := []*tlsv3.TlsCertificate{certOf(p.server)}
	tests := []struct {
		name         string
		params       *tlsv3.TlsParameters
		server       bool
		wantMin      uint16
		wantMax      uint16
		wantSuites   []uint16
		wantErrMatch string
	}{
		{name: "server defaults", server: true, wantMin: tls.VersionTLS12, wantMax: tls.VersionTLS13, wantSuites: envoyDefaultSuites()},
		{name: "client defaults", wantMin: tls.VersionTLS12, wantMax: tls.VersionTLS12, wantSuites: envoyDefaultSuites()},
		{name: "explicit", server: true, params: &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_1,
			TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
			CipherSuites:              []string{"[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]", "ECDHE-RSA-AES256-GCM-SHA384", "TLS_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA"},
		}, wantMin: tls.VersionTLS11, wantMax: tls.VersionTLS12, wantSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA,
		}},
		{name: "unknown cipher", server: true, params: &tlsv3.TlsParameters{CipherSuites: []string{"ECDHE-RSA-AES128-GCM-SHA256", "PSK-AES128-CBC-SHA"}},
			wantErrMatch: `common_tls_context.tls_params.cipher_suites: unknown or unsupported cipher suite "PSK-AES128-CBC-SHA"`},
		{name: "only TLS 1.3 ciphers", server: true, params: &tlsv3.TlsParameters{CipherSuites: []string{"TLS_AES_128_GCM_SHA256"}},
			wantErrMatch: "cipher_suites: no TLS 1.0-1.2 cipher suite left"},
		{name: "client min above default max", params: &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
			wantErrMatch: "common_tls_context.tls_params: minimum protocol version TLS 1.3 is above maximum TLS 1.2"},
		{name: "bad enum", server: true, params: &tlsv3.TlsParameters{TlsMaximumProtocolVersion: 9},
			wantErrMatch: "tls_maximum_protocol_version: unknown version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			common := &tlsv3.CommonTlsContext{TlsCertificates: certs, TlsParams: tc.params}
			var cfg *tls.Config
			var err error
			if tc.server {
				cfg, err = staticServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: common})
			} else {
				cfg, err = staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: common})
			}
			if tc.wantErrMatch != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrMatch) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErrMatch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MinVersion != tc.wantMin || cfg.MaxVersion != tc.wantMax {
				t.Errorf("versions = %x..%x, want %x..%x", cfg.MinVersion, cfg.MaxVersion, tc.wantMin, tc.wantMax)
			}
			if !equalU16(cfg.CipherSuites, tc.wantSuites) {
				t.Errorf("suites = %v, want %v", cfg.CipherSuites, tc.wantSuites)
			}
		})
	}
}

func equalU16(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDataSourcesAndErrors(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	certFile := filepath.Join(dir, "cert.pem")
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, p.server.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, p.server.kpem, 0o600); err != nil {
		t.Fatal(err)
	}
	file := func(n string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: n}}
	}
	env := &corev3.DataSource{Specifier: &corev3.DataSource_EnvironmentVariable{EnvironmentVariable: "CERT"}}

	tests := []struct {
		name    string
		ctx     *tlsv3.DownstreamTlsContext
		wantErr string
	}{
		{"files", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: file(certFile), PrivateKey: file(keyFile)}},
		}}, ""},
		{"missing file", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: file(certFile), PrivateKey: file(filepath.Join(dir, "nope"))}},
		}}, "common_tls_context.tls_certificates[0].private_key: filename: open"},
		{"environment variable", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: env, PrivateKey: file(keyFile)}},
		}}, "common_tls_context.tls_certificates[0].certificate_chain: environment_variable is not supported"},
		{"mismatched key", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: inline(p.server.pem), PrivateKey: inline(p.client.kpem)}},
		}}, "common_tls_context.tls_certificates[0]: tls: private key does not match public key"},
		{"no certificate", &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}},
			"common_tls_context.tls_certificates: a server context needs at least one certificate"},
		{"bad trusted_ca", &tlsv3.DownstreamTlsContext{CommonTlsContext: withCA(&tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.server)},
		}, []byte("not pem"))}, "common_tls_context.validation_context.trusted_ca: no PEM certificates found"},
		{"nil", nil, "DownstreamTlsContext is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := staticServerConfig(tc.ctx)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(cfg.Certificates) != 1 {
					t.Fatalf("certificates = %d", len(cfg.Certificates))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
			}
		})
	}

	_, err := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.client), certOf(p.server)},
	}})
	if err == nil || !strings.Contains(err.Error(), "at most one certificate") {
		t.Fatalf("two client certs: err = %v", err)
	}
}

func TestFirstExpiry(t *testing.T) {
	ca := newPair(t, "ca", nil, true, time.Now().Add(48*time.Hour))
	soon := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	a := newPair(t, "a", ca, false, time.Now().Add(40*time.Hour))
	b := newPair(t, "b", ca, false, soon)
	cfg, err := staticServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{certOf(a), certOf(b)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := FirstExpiry(cfg)
	if !ok || !got.Equal(soon) {
		t.Fatalf("FirstExpiry = %v, %v; want %v", got, ok, soon)
	}
	if _, ok := FirstExpiry(&tls.Config{}); ok {
		t.Fatal("FirstExpiry of no certificates reported one")
	}
}

// The front-proxy example's 8443 listener carries an inline RSA pair.
func TestFrontProxyExampleCertificate(t *testing.T) {
	raw, err := os.ReadFile("../../../shared/envoy-examples/front-proxy/envoy.yaml")
	if err != nil {
		t.Skipf("envoy examples not present: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	// Dig out the listener's transport_socket typed_config rather than
	// parsing the whole bootstrap, which would pull in every filter type.
	var found map[string]any
	for _, l := range dig(doc, "static_resources", "listeners").([]any) {
		for _, fc := range dig(l, "filter_chains").([]any) {
			if ts, ok := dig(fc, "transport_socket", "typed_config").(map[string]any); ok {
				found = ts
			}
		}
	}
	if found == nil {
		t.Fatal("no transport_socket in front-proxy/envoy.yaml")
	}
	delete(found, "@type")
	js, _ := json.Marshal(found)
	var dtc tlsv3.DownstreamTlsContext
	if err := protojson.Unmarshal(js, &dtc); err != nil {
		t.Fatal(err)
	}
	srv, err := staticServerConfig(&dtc)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := staticClientConfig(&tlsv3.UpstreamTlsContext{Sni: "front-envoy"})
	if err != nil {
		t.Fatal(err)
	}
	st, serr, cerr := handshake(t, srv, cli)
	if serr != nil || cerr != nil {
		t.Fatalf("server err %v, client err %v", serr, cerr)
	}
	if cn := st.PeerCertificates[0].Subject.CommonName; cn != "front-envoy" {
		t.Errorf("peer CN = %q", cn)
	}
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func staticServerConfig(ctx *tlsv3.DownstreamTlsContext) (*tls.Config, error) {
	return ServerConfig(ctx, xds.Deps{})
}

func staticClientConfig(ctx *tlsv3.UpstreamTlsContext) (*tls.Config, error) {
	return ClientConfig(ctx, xds.Deps{})
}
