package tlscontext

import (
	"strings"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/xds"
)

// TestStaticSecrets: name-only SdsSecretConfigs resolve against
// static_resources.secrets, certificate and validation context alike,
// and anything else is refused without dynamic configuration.
func TestStaticSecrets(t *testing.T) {
	p := newPKI(t)
	ca := caSecret("ca", p.ca.pem)
	ca.GetValidationContext().MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{typed(tlsv3.SubjectAltNameMatcher_DNS, exact("client"))}
	sub, err := StaticSecrets([]*tlsv3.Secret{certSecret("server", p.server), ca}, nil)
	if err != nil {
		t.Fatal(err)
	}
	init := xds.NewInit()
	srv, err := ServerConfig(&tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "server"}},
			ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ca"}},
		},
		RequireClientCertificate: wrapperspb.Bool(true),
	}, xds.Deps{Subscriber: sub, Init: init})
	if err != nil {
		t.Fatal(err)
	}
	if init.Seal(); !initDone(init) {
		t.Error("static secrets left the listener warming")
	}
	for _, tc := range []struct {
		client *pair
		ok     bool
	}{{p.client, true}, {p.stranger, false}} {
		cli, err := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: withCA(&tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{certOf(tc.client)}}, p.ca.pem)})
		if err != nil {
			t.Fatal(err)
		}
		_, serr, cerr := handshake(t, srv, cli)
		if ok := serr == nil && cerr == nil; ok != tc.ok {
			t.Errorf("client %s: server %v, client %v", tc.client.cert.Subject.CommonName, serr, cerr)
		}
	}

	for _, tc := range []struct {
		ref  *tlsv3.SdsSecretConfig
		want string
	}{
		{&tlsv3.SdsSecretConfig{Name: "nope"}, `tls_certificate_sds_secret_configs[0]: unknown static secret "nope"`},
		{&tlsv3.SdsSecretConfig{Name: "ca"}, `tls_certificate_sds_secret_configs[0]: static_resources.secrets "ca": secret "ca": is referenced as a certificate but carries no tls_certificate`},
		{sdsRef("dyn"), "tls_certificate_sds_secret_configs[0].sds_config: needs dynamic configuration"},
	} {
		_, err := ServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{tc.ref}}}, xds.Deps{Subscriber: sub, Init: xds.NewInit()})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ref %v: err = %v, want %q", tc.ref, err, tc.want)
		}
	}
	if _, err := StaticSecrets([]*tlsv3.Secret{{Name: "a"}, {Name: "a"}}, nil); err == nil || !strings.Contains(err.Error(), `static_resources.secrets[1].name: "a" is not unique`) {
		t.Errorf("duplicate names: %v", err)
	}
}
