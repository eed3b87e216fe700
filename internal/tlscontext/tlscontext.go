// Package tlscontext turns Envoy's DownstreamTlsContext and UpstreamTlsContext into
// crypto/tls configurations.
//
// Differences from Envoy that users may notice:
//   - TLS 1.3 cipher suites cannot be chosen in Go; their names are accepted
//     in cipher_suites and ignored (Envoy ignores cipher_suites for TLS 1.3
//     too). Go also orders suites itself, so the order given is not kept.
//   - Upstream certificates are verified against trusted_ca by chain and,
//     when set, match_typed_subject_alt_names (or the deprecated
//     match_subject_alt_names), as Envoy does; the sni is not checked
//     against the certificate unless a matcher says so.
package tlscontext

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
//
// d resolves SDS references (tls_certificate_sds_secret_configs,
// validation_context_sds_secret_config, combined_validation_context); with
// a nil d.Subscriber they are config errors. Each reference becomes a watch
// whose cancel goes to d.Release and an Init target ready on its first
// valid secret. The returned config reads the latest secrets on every
// handshake (GetCertificate, VerifyConnection) rather than through
// GetConfigForClient, so that changes the caller makes to it, such as
// NextProtos, hold for every handshake; handshakes before a secret has
// arrived fail.
func ServerConfig(ctx *tlsv3.DownstreamTlsContext, d xds.Deps) (_ *tls.Config, err error) {
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
	pool, err := trustedCA(common)
	if err != nil {
		return nil, err
	}
	sans, err := staticSANs(common, pool)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 && len(common.GetTlsCertificateSdsSecretConfigs()) == 0 {
		return nil, errors.New("common_tls_context.tls_certificates: a server context needs at least one certificate (tls_certificates or tls_certificate_sds_secret_configs)")
	}
	refs := &secretRefs{d: d}
	defer func() { refs.done(err) }()
	certSecrets, validation, err := refs.open(common)
	if err != nil {
		return nil, err
	}
	if len(certSecrets) > 0 {
		cfg.GetCertificate = serverCertificate(certSecrets)
	} else {
		cfg.Certificates = certs
	}
	cfg.NextProtos = alpnList(common.GetAlpnProtocols())

	require := ctx.GetRequireClientCertificate().GetValue()
	switch {
	case validation != nil:
		// The trusted CAs change with the secret, so Go cannot verify
		// against a fixed ClientCAs: ask for a certificate and verify it
		// by hand, with the same rules as Go's own check.
		cfg.ClientAuth = tls.RequestClientCert
		if require {
			cfg.ClientAuth = tls.RequireAnyClientCert
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			v := validation.cur.Load()
			if v == nil {
				return validation.errNotReady()
			}
			if v.roots == nil || len(cs.PeerCertificates) == 0 {
				return nil
			}
			if err := verifyChain(cs.PeerCertificates, v.roots, x509.ExtKeyUsageClientAuth); err != nil {
				return err
			}
			return v.sans.verify(cs.PeerCertificates[0])
		}
	case pool != nil:
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if require {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		if sans != nil {
			// Go has verified the chain; the SANs are checked here.
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return nil
				}
				return sans.verify(cs.PeerCertificates[0])
			}
		}
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
// as for ServerConfig; the latest secrets are read through
// GetClientCertificate and VerifyConnection.
func ClientConfig(ctx *tlsv3.UpstreamTlsContext, d xds.Deps) (_ *tls.Config, err error) {
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
	if len(common.GetTlsCertificateSdsSecretConfigs()) > 1 {
		return nil, errors.New("common_tls_context.tls_certificate_sds_secret_configs: a client context takes at most one certificate")
	}
	pool, err := trustedCA(common)
	if err != nil {
		return nil, err
	}
	sans, err := staticSANs(common, pool)
	if err != nil {
		return nil, err
	}
	refs := &secretRefs{d: d}
	defer func() { refs.done(err) }()
	certSecrets, validation, err := refs.open(common)
	if err != nil {
		return nil, err
	}

	cfg.Certificates = certs // kept for FirstExpiry
	switch {
	case len(certSecrets) == 1:
		cfg.GetClientCertificate = clientCertificate(certSecrets[0])
	case len(certs) == 1:
		// Send the certificate whatever CAs the server names, as BoringSSL
		// does; Go's default would send none when the issuer is not listed.
		cert := &certs[0]
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	cfg.NextProtos = alpnList(common.GetAlpnProtocols())

	// Envoy does not verify the upstream certificate unless a validation
	// context says how, and then checks the chain but not the host name.
	// Go always checks the name when it verifies, so verification is done
	// by hand in VerifyConnection.
	cfg.InsecureSkipVerify = true
	// Every SDS reference must have its secret before a connection is
	// made, like Envoy's not-ready transport socket; a client certificate
	// alone would only be noticed if the server asked for it.
	pending := certSecrets
	if validation != nil {
		pending = append(pending, validation)
	}
	if pool != nil || len(pending) > 0 {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := allReady(pending); err != nil {
				return err
			}
			roots, sans := pool, sans
			if validation != nil {
				v := validation.cur.Load()
				roots, sans = v.roots, v.sans
			}
			if roots == nil {
				return nil
			}
			if err := verifyChain(cs.PeerCertificates, roots, x509.ExtKeyUsageAny); err != nil {
				return err
			}
			return sans.verify(cs.PeerCertificates[0])
		}
	}
	return cfg, nil
}

func verifyChain(peer []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	if len(peer) == 0 {
		return errors.New("peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	_, err := peer[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	return err
}

// FirstExpiry returns the earliest NotAfter among cfg's certificates, for
// server.days_until_first_cert_expiring; ok is false when there are none.
// Certificates from SDS count as their current secret, if any has arrived.
func FirstExpiry(cfg *tls.Config) (t time.Time, ok bool) {
	if cfg == nil {
		return time.Time{}, false
	}
	consider := func(c *tls.Certificate) {
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate) > 0 {
			l, err := x509.ParseCertificate(c.Certificate[0])
			if err != nil {
				return
			}
			leaf = l
		}
		if leaf != nil && (!ok || leaf.NotAfter.Before(t)) {
			t, ok = leaf.NotAfter, true
		}
	}
	for i := range cfg.Certificates {
		consider(&cfg.Certificates[i])
	}
	// The callbacks this package installs answer the sentinels with the
	// certificate that expires first.
	if cfg.GetCertificate != nil {
		if c, err := cfg.GetCertificate(expiryHello); err == nil && c != nil {
			consider(c)
		}
	}
	if cfg.GetClientCertificate != nil {
		if c, err := cfg.GetClientCertificate(expiryRequest); err == nil && c != nil {
			consider(c)
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
		cert, err := keyPair(c, fmt.Sprintf("common_tls_context.tls_certificates[%d]", i))
		if err != nil {
			return nil, err
		}
		out = append(out, cert)
	}
	return out, nil
}

// keyPair parses one TlsCertificate; path names it in errors. Leaf is
// always set, for FirstExpiry.
func keyPair(c *tlsv3.TlsCertificate, path string) (tls.Certificate, error) {
	chain, err := ReadDataSource(c.GetCertificateChain())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s.certificate_chain: %w", path, err)
	}
	key, err := ReadDataSource(c.GetPrivateKey())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s.private_key: %w", path, err)
	}
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", path, err)
	}
	if cert.Leaf == nil {
		// GODEBUG=x509keypairleaf=0 leaves it unset.
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("%s.certificate_chain: %w", path, err)
		}
	}
	return cert, nil
}

// staticSANs compiles the inline validation_context's SAN matchers; like
// Envoy it refuses them without a trusted_ca, since a SAN proves nothing
// about a certificate whose chain is not checked.
func staticSANs(common *tlsv3.CommonTlsContext, pool *x509.CertPool) (sanMatchers, error) {
	const path = "common_tls_context.validation_context"
	sans, err := compileSANs(common.GetValidationContext(), path)
	if err != nil {
		return nil, err
	}
	if sans != nil && pool == nil {
		return nil, fmt.Errorf("%s: SAN-based verification of peer certificates without trusted_ca is insecure and not allowed", path)
	}
	return sans, nil
}

// trustedCA returns nil when the context has no validation_context.trusted_ca.
func trustedCA(common *tlsv3.CommonTlsContext) (*x509.CertPool, error) {
	return caPool(common.GetValidationContext(), "common_tls_context.validation_context.trusted_ca")
}

// caPool returns vc's trusted_ca (path names it), or nil when unset.
func caPool(vc *tlsv3.CertificateValidationContext, path string) (*x509.CertPool, error) {
	ds := vc.GetTrustedCa()
	if ds == nil {
		return nil, nil
	}
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

// alpnList is alpn_protocols as Envoy reads it: the entries joined with
// commas and split again, so an entry "h2,http/1.1" (as in Envoy's own
// edge example) is two protocols.
func alpnList(ps []string) []string {
	var out []string
	for _, p := range ps {
		for _, q := range strings.Split(p, ",") {
			if q != "" {
				out = append(out, q)
			}
		}
	}
	return out
}
