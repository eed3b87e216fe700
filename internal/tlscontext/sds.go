package tlscontext

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/legate-proxy/legate/internal/xds"
)

// validationFields are the CertificateValidationContext fields Legate
// implements, in secrets as in the bootstrap.
var validationFields = []string{"trusted_ca", "match_typed_subject_alt_names", "match_subject_alt_names"}

// secretKind is what a reference expects its secret to carry.
type secretKind int

const (
	kindCertificate secretKind = iota
	kindValidation
)

// sdsSecret is one SdsSecretConfig reference: its watch and the latest
// secret that validated. Handshakes read cur with one atomic load.
type sdsSecret struct {
	name string
	kind secretKind
	// base is combined_validation_context.default_validation_context, merged
	// under every validation secret as Envoy does.
	base  *tlsv3.CertificateValidationContext
	cur   atomic.Pointer[secretValue]
	ready func()
}

// secretValue is one accepted secret, compiled. Immutable once stored.
type secretValue struct {
	version string
	cert    *tls.Certificate // kindCertificate
	roots   *x509.CertPool   // kindValidation; nil: no trusted_ca, nothing verified
	sans    sanMatchers      // kindValidation
}

// errNotReady fails handshakes that come before the first secret, when a
// listener or cluster went live on initial_fetch_timeout without it.
func (s *sdsSecret) errNotReady() error {
	return fmt.Errorf("SDS secret %q has not been received", s.name)
}

// Update implements xds.Watcher: validate, then publish. An error NACKs and
// leaves the last good secret in place. Every update ends warming, a
// refused one too: Envoy lets start-up go on with a bad config, and
// handshakes fail until a good secret comes.
func (s *sdsSecret) Update(u *xds.Update) error {
	defer s.ready()
	if u.InitialFetchTimeout {
		return nil
	}
	var res *xds.Resource
	for i := range u.Resources {
		if u.Resources[i].Name == s.name {
			res = &u.Resources[i]
		}
	}
	if res == nil {
		if len(u.Resources) > 0 {
			return fmt.Errorf("SDS update carries %q, not the expected secret %q", u.Resources[0].Name, s.name)
		}
		// A removal: Envoy keeps serving with the last secret.
		return nil
	}
	secret, ok := res.Message.(*tlsv3.Secret)
	if !ok {
		return fmt.Errorf("secret %q: resource is a %T, not a Secret", s.name, res.Message)
	}
	v, err := s.compile(secret)
	if err != nil {
		return fmt.Errorf("secret %q: %w", s.name, err)
	}
	v.version = res.Version
	s.cur.Store(v)
	return nil
}

func (s *sdsSecret) compile(secret *tlsv3.Secret) (*secretValue, error) {
	switch s.kind {
	case kindCertificate:
		tc := secret.GetTlsCertificate()
		if tc == nil {
			return nil, fmt.Errorf("is referenced as a certificate but carries no tls_certificate%s", carries(secret))
		}
		if err := onlyFields(tc, "certificate_chain", "private_key"); err != nil {
			return nil, fmt.Errorf("tls_certificate.%w", err)
		}
		cert, err := keyPair(tc, "tls_certificate")
		if err != nil {
			return nil, err
		}
		return &secretValue{cert: &cert}, nil
	default:
		vc := secret.GetValidationContext()
		if vc == nil {
			return nil, fmt.Errorf("is referenced as a validation context but carries no validation_context%s", carries(secret))
		}
		if err := onlyFields(vc, validationFields...); err != nil {
			return nil, fmt.Errorf("validation_context.%w", err)
		}
		if s.base != nil {
			// Envoy merges the dynamic context over the default one.
			merged := proto.Clone(s.base).(*tlsv3.CertificateValidationContext)
			proto.Merge(merged, vc)
			vc = merged
		}
		pool, err := caPool(vc, "validation_context.trusted_ca")
		if err != nil {
			return nil, err
		}
		sans, err := compileSANs(vc, "validation_context")
		if err != nil {
			return nil, err
		}
		if sans != nil && pool == nil {
			return nil, errors.New("validation_context: SAN-based verification of peer certificates without trusted_ca is insecure and not allowed")
		}
		return &secretValue{roots: pool, sans: sans}, nil
	}
}

// carries names the kind a secret does have, for the wrong-kind error.
func carries(secret *tlsv3.Secret) string {
	var name string
	secret.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.ContainingOneof() != nil {
			name = string(fd.Name())
			return false
		}
		return true
	})
	if name == "" {
		return " (it is empty)"
	}
	return " (it carries " + name + ")"
}

// onlyFields refuses a message that sets a field outside allowed: secrets
// arrive at run time, past the bootstrap's allowlist, and a field Legate
// would ignore (a password, an OCSP staple, SAN matchers) must not be
// silently dropped. The error starts with the field's name.
func onlyFields(m proto.Message, allowed ...string) error {
	var bad string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		for _, a := range allowed {
			if string(fd.Name()) == a {
				return true
			}
		}
		bad = string(fd.Name())
		return false
	})
	if bad != "" {
		return fmt.Errorf("%s: not supported", bad)
	}
	if len(m.ProtoReflect().GetUnknown()) > 0 {
		return errors.New("unknown fields: not supported")
	}
	return nil
}

// secretRefs subscribes a context's SDS references. If building the
// context fails after some watches opened, done cancels them and releases
// their Init targets, since the context will never be used.
type secretRefs struct {
	d       xds.Deps
	cancels []func()
	secrets []*sdsSecret
}

// ref validates one SdsSecretConfig at path and opens its watch.
func (r *secretRefs) ref(cfg *tlsv3.SdsSecretConfig, path string, kind secretKind, base *tlsv3.CertificateValidationContext) (*sdsSecret, error) {
	if err := onlyFields(cfg, "name", "sds_config"); err != nil {
		return nil, fmt.Errorf("%s.%w", path, err)
	}
	name := cfg.GetName()
	if name == "" {
		return nil, fmt.Errorf("%s.name: required", path)
	}
	// Without sds_config the name refers to static_resources.secrets
	// (StaticSecrets serves those watches).
	src := cfg.GetSdsConfig()
	if r.d.Subscriber == nil {
		if src == nil {
			return nil, fmt.Errorf("%s: unknown static secret %q (static_resources.secrets has none)", path, name)
		}
		return nil, fmt.Errorf("%s.sds_config: SDS needs dynamic configuration", path)
	}
	s := &sdsSecret{name: name, kind: kind, base: base, ready: r.d.Init.Add()}
	w := xds.Watch{Source: src, TypeURL: xds.SecretType, Name: name, Watcher: s}
	if r.d.Stats != nil {
		// Envoy's SDS stat prefix: sds.<secret name>.
		sc := r.d.Stats.Scope("sds." + name)
		w.Stats = &sc
	}
	cancel, err := r.d.Subscriber.Subscribe(w)
	if err != nil {
		s.ready() // nothing will ever arrive; do not hold the Init open
		if src == nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, fmt.Errorf("%s.sds_config: %w", path, err)
	}
	r.cancels = append(r.cancels, cancel)
	r.secrets = append(r.secrets, s)
	return s, nil
}

// done hands the watches to d.Release on success and cancels them on error.
func (r *secretRefs) done(err error) {
	if err != nil {
		for _, c := range r.cancels {
			c()
		}
		for _, s := range r.secrets {
			s.ready()
		}
		return
	}
	for _, c := range r.cancels {
		r.d.OnRelease(c)
	}
}

// open resolves every SDS reference of common: its certificates and its
// validation context (nil when that does not refer to SDS).
func (r *secretRefs) open(common *tlsv3.CommonTlsContext) (certs []*sdsSecret, validation *sdsSecret, err error) {
	if certs, err = r.certRefs(common); err != nil {
		return nil, nil, err
	}
	if validation, err = r.validationRef(common); err != nil {
		return nil, nil, err
	}
	return certs, validation, nil
}

// validationRef resolves the validation_context_type of common when it
// refers to SDS; nil when it does not.
func (r *secretRefs) validationRef(common *tlsv3.CommonTlsContext) (*sdsSecret, error) {
	const path = "common_tls_context"
	switch v := common.GetValidationContextType().(type) {
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		return r.ref(v.ValidationContextSdsSecretConfig, path+".validation_context_sds_secret_config", kindValidation, nil)
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		const cpath = path + ".combined_validation_context"
		c := v.CombinedValidationContext
		if err := onlyFields(c, "default_validation_context", "validation_context_sds_secret_config"); err != nil {
			return nil, fmt.Errorf("%s.%w", cpath, err)
		}
		base := c.GetDefaultValidationContext()
		if base != nil {
			if err := onlyFields(base, validationFields...); err != nil {
				return nil, fmt.Errorf("%s.default_validation_context.%w", cpath, err)
			}
			// A bad default would fail every secret; say so up front.
			if _, err := caPool(base, cpath+".default_validation_context.trusted_ca"); err != nil {
				return nil, err
			}
			if _, err := compileSANs(base, cpath+".default_validation_context"); err != nil {
				return nil, err
			}
		}
		if c.GetValidationContextSdsSecretConfig() == nil {
			return nil, fmt.Errorf("%s.validation_context_sds_secret_config: required", cpath)
		}
		return r.ref(c.GetValidationContextSdsSecretConfig(), cpath+".validation_context_sds_secret_config", kindValidation, base)
	case nil, *tlsv3.CommonTlsContext_ValidationContext:
		return nil, nil
	default:
		return nil, fmt.Errorf("%s: validation context %T is not supported", path, v)
	}
}

// certRefs resolves tls_certificate_sds_secret_configs.
func (r *secretRefs) certRefs(common *tlsv3.CommonTlsContext) ([]*sdsSecret, error) {
	list := common.GetTlsCertificateSdsSecretConfigs()
	if len(list) > 0 && len(common.GetTlsCertificates()) > 0 {
		return nil, errors.New("common_tls_context: tls_certificates and tls_certificate_sds_secret_configs cannot both be set")
	}
	var out []*sdsSecret
	for i, c := range list {
		s, err := r.ref(c, fmt.Sprintf("common_tls_context.tls_certificate_sds_secret_configs[%d]", i), kindCertificate, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// expiryHello and expiryRequest are sentinels FirstExpiry passes to a
// config's certificate callbacks: ours answer them with the certificate
// that expires first instead of choosing one for a handshake.
var (
	expiryHello   = &tls.ClientHelloInfo{}
	expiryRequest = &tls.CertificateRequestInfo{}
)

// serverCertificate returns the GetCertificate of a server whose
// certificates come over SDS: the latest secret of each reference, chosen
// for the client as Go chooses among Config.Certificates.
func serverCertificate(secrets []*sdsSecret) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if len(secrets) == 1 {
		s := secrets[0]
		return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			v := s.cur.Load()
			if v == nil {
				return nil, s.errNotReady()
			}
			return v.cert, nil
		}
	}
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		var first, earliest *tls.Certificate
		for _, s := range secrets {
			v := s.cur.Load()
			if v == nil {
				return nil, s.errNotReady()
			}
			if hello == expiryHello {
				if earliest == nil || v.cert.Leaf.NotAfter.Before(earliest.Leaf.NotAfter) {
					earliest = v.cert
				}
				continue
			}
			if first == nil {
				first = v.cert
			}
			if hello.SupportsCertificate(v.cert) == nil {
				return v.cert, nil
			}
		}
		if earliest != nil {
			return earliest, nil
		}
		return first, nil
	}
}

// clientCertificate is GetClientCertificate for a client certificate over
// SDS. It is sent whatever CAs the server names, as for a static one.
func clientCertificate(s *sdsSecret) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		v := s.cur.Load()
		if v == nil {
			return nil, s.errNotReady()
		}
		return v.cert, nil
	}
}

// allReady reports whether every reference has a secret; a handshake before
// that fails, as Envoy's not-ready transport socket does.
func allReady(secrets []*sdsSecret) error {
	for _, s := range secrets {
		if s.cur.Load() == nil {
			return s.errNotReady()
		}
	}
	return nil
}
