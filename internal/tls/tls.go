// Package tls turns Envoy's DownstreamTlsContext and UpstreamTlsContext into
// crypto/tls configurations.
//
// Differences from Envoy that users may notice:
//   - TLS 1.3 cipher suites cannot be chosen in Go; their names are accepted
//     in cipher_suites and ignored (Envoy ignores cipher_suites for TLS 1.3
//     too). Go also orders suites itself, so the order given is not kept.
//   - Upstream certificates are verified against trusted_ca by chain only,
//     as Envoy does without match_typed_subject_alt_names; the host name is
//     not checked.
package tls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/legate-proxy/legate/internal/xds"
)

// ServerConfig builds the listener side. ALPN from the context is kept as
// given; the connection manager adds h2/http/1.1 when the context lists none.
// d resolves sds_config references (SDS); with a nil d.Subscriber they are
// config errors.
func ServerConfig(ctx *tlsv3.DownstreamTlsContext, d xds.Deps) (*tls.Config, error) {
	if ctx == nil {
		return nil, errors.New("DownstreamTlsContext is required")
	}
	common := ctx.GetCommonTlsContext()
	cfg := &tls.Config{}
	// Envoy's server defaults: TLS 1.2 to 1.3.
	if err := applyParams(cfg, common.GetTlsParams(), tls.VersionTLS12, tls.VersionTLS13, "common_tls_context.tls_params"); err != nil {
		return nil, err
	}
	certs, err := loadCertificates(common.GetTlsCertificates())
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("common_tls_context.tls_certificates: a server context needs at least one certificate")
	}
	cfg.Certificates = certs
	cfg.NextProtos = append([]string(nil), common.GetAlpnProtocols()...)

	pool, err := trustedCA(common)
	if err != nil {
		return nil, err
	}
	require := ctx.GetRequireClientCertificate().GetValue()
	switch {
	case pool != nil && require:
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case pool != nil:
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case require:
		// Envoy: without trusted_ca a presented certificate is not verified,
		// but require_client_certificate still demands one.
		cfg.ClientAuth = tls.RequireAnyClientCert
	default:
		cfg.ClientAuth = tls.NoClientCert
	}
	return cfg, nil
}

// ClientConfig builds the upstream side; sni is UpstreamTlsContext.sni. d is
// as for ServerConfig.
func ClientConfig(ctx *tlsv3.UpstreamTlsContext, d xds.Deps) (*tls.Config, error) {
	if ctx == nil {
		return nil, errors.New("UpstreamTlsContext is required")
	}
	common := ctx.GetCommonTlsContext()
	cfg := &tls.Config{ServerName: ctx.GetSni()}
	// Envoy's client defaults: TLS 1.2 only (docs of tls_maximum_protocol_version).
	if err := applyParams(cfg, common.GetTlsParams(), tls.VersionTLS12, tls.VersionTLS12, "common_tls_context.tls_params"); err != nil {
		return nil, err
	}
	certs, err := loadCertificates(common.GetTlsCertificates())
	if err != nil {
		return nil, err
	}
	if len(certs) > 1 {
		return nil, errors.New("common_tls_context.tls_certificates: a client context takes at most one certificate")
	}
	cfg.Certificates = certs // kept for FirstExpiry
	if len(certs) == 1 {
		// Send the certificate whatever CAs the server names, as BoringSSL
		// does; Go's default would send none when the issuer is not listed.
		cert := &certs[0]
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	cfg.NextProtos = append([]string(nil), common.GetAlpnProtocols()...)

	pool, err := trustedCA(common)
	if err != nil {
		return nil, err
	}
	// Envoy does not verify the upstream certificate unless a validation
	// context says how, and then checks the chain but not the host name.
	// Go always checks the name when it verifies, so verification is done
	// by hand in VerifyConnection.
	cfg.InsecureSkipVerify = true
	if pool != nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyChain(cs.PeerCertificates, pool)
		}
	}
	return cfg, nil
}

func verifyChain(peer []*x509.Certificate, roots *x509.CertPool) error {
	if len(peer) == 0 {
		return errors.New("upstream presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	_, err := peer[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// FirstExpiry returns the earliest NotAfter among cfg's certificates, for
// server.days_until_first_cert_expiring; ok is false when there are none.
func FirstExpiry(cfg *tls.Config) (t time.Time, ok bool) {
	if cfg == nil {
		return time.Time{}, false
	}
	for _, c := range cfg.Certificates {
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate) > 0 {
			l, err := x509.ParseCertificate(c.Certificate[0])
			if err != nil {
				continue
			}
			leaf = l
		}
		if leaf != nil && (!ok || leaf.NotAfter.Before(t)) {
			t, ok = leaf.NotAfter, true
		}
	}
	return t, ok
}

var versions = map[tlsv3.TlsParameters_TlsProtocol]uint16{
	tlsv3.TlsParameters_TLSv1_0: tls.VersionTLS10,
	tlsv3.TlsParameters_TLSv1_1: tls.VersionTLS11,
	tlsv3.TlsParameters_TLSv1_2: tls.VersionTLS12,
	tlsv3.TlsParameters_TLSv1_3: tls.VersionTLS13,
}

func applyParams(cfg *tls.Config, p *tlsv3.TlsParameters, defMin, defMax uint16, path string) error {
	cfg.MinVersion, cfg.MaxVersion = defMin, defMax
	if v := p.GetTlsMinimumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO {
		gv, ok := versions[v]
		if !ok {
			return fmt.Errorf("%s.tls_minimum_protocol_version: unknown version %v", path, v)
		}
		cfg.MinVersion = gv
	}
	if v := p.GetTlsMaximumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO {
		gv, ok := versions[v]
		if !ok {
			return fmt.Errorf("%s.tls_maximum_protocol_version: unknown version %v", path, v)
		}
		cfg.MaxVersion = gv
	}
	if cfg.MinVersion > cfg.MaxVersion {
		// Only an explicit setting can cause this (e.g. min 1.3 with the
		// client's default max 1.2); Envoy refuses it as well.
		return fmt.Errorf("%s: minimum protocol version %s is above maximum %s", path,
			tls.VersionName(cfg.MinVersion), tls.VersionName(cfg.MaxVersion))
	}
	if len(p.GetCipherSuites()) == 0 {
		cfg.CipherSuites = envoyDefaultSuites()
		return nil
	}
	suites, err := ParseCipherSuites(p.GetCipherSuites())
	if err != nil {
		return fmt.Errorf("%s.cipher_suites: %w", path, err)
	}
	cfg.CipherSuites = suites
	return nil
}

func loadCertificates(list []*tlsv3.TlsCertificate) ([]tls.Certificate, error) {
	var out []tls.Certificate
	for i, c := range list {
		path := fmt.Sprintf("common_tls_context.tls_certificates[%d]", i)
		chain, err := ReadDataSource(c.GetCertificateChain())
		if err != nil {
			return nil, fmt.Errorf("%s.certificate_chain: %w", path, err)
		}
		key, err := ReadDataSource(c.GetPrivateKey())
		if err != nil {
			return nil, fmt.Errorf("%s.private_key: %w", path, err)
		}
		cert, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, cert)
	}
	return out, nil
}

// trustedCA returns nil when the context has no validation_context.trusted_ca.
func trustedCA(common *tlsv3.CommonTlsContext) (*x509.CertPool, error) {
	ds := common.GetValidationContext().GetTrustedCa()
	if ds == nil {
		return nil, nil
	}
	const path = "common_tls_context.validation_context.trusted_ca"
	pem, err := ReadDataSource(ds)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates found", path)
	}
	return pool, nil
}

// ReadDataSource returns the bytes of an Envoy DataSource. A missing source
// is an error: every DataSource this package reads is required.
func ReadDataSource(ds *corev3.DataSource) ([]byte, error) {
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return nil, fmt.Errorf("filename: %w", err)
		}
		return b, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_EnvironmentVariable:
		return nil, errors.New("environment_variable is not supported")
	case nil:
		return nil, errors.New("no data source set")
	default:
		return nil, fmt.Errorf("data source %T is not supported", s)
	}
}

// ParseCipherSuites maps BoringSSL/OpenSSL cipher names (and the IANA names
// Go uses) to Go's suite IDs. Envoy's "[A|B]" equal-preference groups are
// flattened. TLS 1.3 suite names are accepted and dropped, since Go enables
// all of them unconditionally.
func ParseCipherSuites(names []string) ([]uint16, error) {
	var out []uint16
	for _, entry := range names {
		group := strings.TrimSuffix(strings.TrimPrefix(entry, "["), "]")
		for name := range strings.SplitSeq(group, "|") {
			name = strings.TrimSpace(name)
			if tls13Suites[name] {
				continue
			}
			id, ok := suiteByName(name)
			if !ok {
				return nil, fmt.Errorf("unknown or unsupported cipher suite %q", name)
			}
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no TLS 1.0-1.2 cipher suite left")
	}
	return out, nil
}

var tls13Suites = map[string]bool{
	"TLS_AES_128_GCM_SHA256":       true,
	"TLS_AES_256_GCM_SHA384":       true,
	"TLS_CHACHA20_POLY1305_SHA256": true,
}

// openSSLNames maps the names BoringSSL accepts to Go's suites. Names
// BoringSSL knows but Go lacks (PSK suites) are deliberately absent, so
// they fail with an error naming them.
var openSSLNames = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"ECDHE-ECDSA-AES128-SHA256":     tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-RSA-AES128-SHA256":       tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"AES128-SHA256":                 tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	"DES-CBC3-SHA":                  tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
	"ECDHE-RSA-DES-CBC3-SHA":        tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
}

func suiteByName(name string) (uint16, bool) {
	if id, ok := openSSLNames[name]; ok {
		return id, true
	}
	for _, s := range tls.CipherSuites() {
		if s.Name == name {
			return s.ID, true
		}
	}
	for _, s := range tls.InsecureCipherSuites() {
		if s.Name == name {
			return s.ID, true
		}
	}
	return 0, false
}

// envoyDefaultSuites is Envoy's documented non-FIPS default list for both
// sides; Go would otherwise also offer CBC suites.
func envoyDefaultSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	}
}
