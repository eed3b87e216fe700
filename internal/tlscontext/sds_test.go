package tlscontext

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/testutil/loopback"
	"github.com/legate-proxy/legate/internal/xds"
)

// fakeSubscriber records watches and lets the test deliver updates, as the
// xDS client would.
type fakeSubscriber struct {
	mu      sync.Mutex
	watches map[string]*fakeWatch
	err     error // returned by Subscribe when set
}

type fakeWatch struct {
	w         xds.Watch
	cancelled bool
}

func newFakeSubscriber() *fakeSubscriber {
	return &fakeSubscriber{watches: map[string]*fakeWatch{}}
}

func (f *fakeSubscriber) Subscribe(w xds.Watch) (func(), error) {
	if f.err != nil {
		return nil, f.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fw := &fakeWatch{w: w}
	f.watches[w.Name] = fw
	return func() {
		f.mu.Lock()
		fw.cancelled = true
		f.mu.Unlock()
	}, nil
}

func (f *fakeSubscriber) watch(t *testing.T, name string) *fakeWatch {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	fw, ok := f.watches[name]
	if !ok {
		t.Fatalf("no watch for %q; have %v", name, f.watches)
	}
	return fw
}

// push delivers secret as a state-of-the-world update of the watch on its
// name and returns the watcher's answer (nil: ACK).
func (f *fakeSubscriber) push(t *testing.T, secret *tlsv3.Secret, version string) error {
	t.Helper()
	fw := f.watch(t, secret.GetName())
	return fw.w.Watcher.Update(&xds.Update{
		Version:   version,
		Resources: []xds.Resource{{Name: secret.GetName(), Version: version, Message: secret}},
		Full:      true,
	})
}

func (f *fakeSubscriber) mustPush(t *testing.T, secret *tlsv3.Secret, version string) {
	t.Helper()
	if err := f.push(t, secret, version); err != nil {
		t.Fatalf("update %s of %q refused: %v", version, secret.GetName(), err)
	}
}

func certSecret(name string, p *pair) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: certOf(p)}}
}

func caSecret(name string, pems ...[]byte) *tlsv3.Secret {
	var all []byte
	for _, p := range pems {
		all = append(all, p...)
	}
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{
		ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(all)},
	}}
}

var adsSource = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}

func sdsRef(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource}
}

// deps is an xds.Deps around a fake subscriber, recording releases.
type deps struct {
	xds.Deps
	sub      *fakeSubscriber
	released []func()
}

func newDeps() *deps {
	d := &deps{sub: newFakeSubscriber()}
	d.Deps = xds.Deps{
		Subscriber: d.sub,
		Init:       xds.NewInit(),
		Release:    func(f func()) { d.released = append(d.released, f) },
		Stats:      stats.NewStore(),
	}
	return d
}

func (d *deps) release() {
	for _, f := range d.released {
		f()
	}
}

// echoServer serves a config on loopback, echoing what each connection
// sends, and keeps the server side's handshake errors.
type echoServer struct {
	addr string
	mu   sync.Mutex
	errs []error
}

func serveEcho(t *testing.T, cfg *tls.Config) *echoServer {
	s := &echoServer{}
	s.addr = loopback.Serve(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		tc.SetDeadline(time.Now().Add(20 * time.Second))
		if err := tc.Handshake(); err != nil {
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.mu.Unlock()
			return
		}
		io.Copy(tc, tc)
	})
	return s
}

// refused dials and expects the server to refuse the handshake with an
// error containing want.
func (s *echoServer) refused(t *testing.T, cli *tls.Config, want string) {
	t.Helper()
	if _, err := dialEcho(t, s.addr, cli); err == nil {
		t.Fatalf("handshake succeeded, want the server to refuse it (%s)", want)
	}
	// The server's handshake may end just after the client's; wait for
	// its error.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		errs := s.errs
		s.mu.Unlock()
		for _, err := range errs {
			if strings.Contains(err.Error(), want) {
				s.mu.Lock()
				s.errs = nil
				s.mu.Unlock()
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server errors %v, want one containing %q", errs, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dialEcho(t *testing.T, addr string, cli *tls.Config) (*tls.Conn, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, cli)
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	if err := echo(tc); err != nil {
		tc.Close()
		return nil, err
	}
	t.Cleanup(func() { tc.Close() })
	return tc, nil
}

func echo(tc *tls.Conn) error {
	if _, err := tc.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(tc, buf); err != nil {
		return err
	}
	if string(buf) != "ping" {
		return fmt.Errorf("echo = %q", buf)
	}
	return nil
}

func peerCN(tc *tls.Conn) string {
	return tc.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func initDone(in *xds.Init) bool {
	select {
	case <-in.Done():
		return true
	default:
		return false
	}
}

func TestSDSServerCertificateRotation(t *testing.T) {
	p := newPKI(t)
	far := time.Now().Add(24 * time.Hour)
	first := newPair(t, "first.example", p.ca, false, far.Add(time.Hour))
	second := newPair(t, "second.example", p.ca, false, far.Truncate(time.Second))

	d := newDeps()
	srv, err := ServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("server_cert")},
	}}, d.Deps)
	if err != nil {
		t.Fatal(err)
	}
	d.Init.Seal()

	fw := d.sub.watch(t, "server_cert")
	if fw.w.TypeURL != xds.SecretType || fw.w.Source != adsSource {
		t.Errorf("watch = %+v", fw.w)
	}
	if fw.w.Stats == nil || fw.w.Stats.Counter("update_success").Name() != "sds.server_cert.update_success" {
		t.Errorf("watch stats scope is not sds.server_cert.")
	}
	if initDone(d.Init) {
		t.Fatal("Init done before the secret arrived")
	}
	if _, ok := FirstExpiry(srv); ok {
		t.Error("FirstExpiry reported a certificate before any arrived")
	}

	// Before the secret (as after initial_fetch_timeout) handshakes fail.
	es := serveEcho(t, srv)
	addr := es.addr
	cli, err := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: withCA(&tlsv3.CommonTlsContext{}, p.ca.pem)})
	if err != nil {
		t.Fatal(err)
	}
	es.refused(t, cli, `SDS secret "server_cert" has not been received`)

	d.sub.mustPush(t, certSecret("server_cert", first), "1")
	if !initDone(d.Init) {
		t.Fatal("Init not done after the first secret")
	}
	old, err := dialEcho(t, addr, cli)
	if err != nil {
		t.Fatal(err)
	}
	if cn := peerCN(old); cn != "first.example" {
		t.Fatalf("peer = %q, want first.example", cn)
	}

	d.sub.mustPush(t, certSecret("server_cert", second), "2")
	c2, err := dialEcho(t, addr, cli)
	if err != nil {
		t.Fatal(err)
	}
	if cn := peerCN(c2); cn != "second.example" {
		t.Fatalf("after rotation peer = %q, want second.example", cn)
	}
	// The connection made before the rotation carries on as it was.
	if err := echo(old); err != nil {
		t.Fatalf("old connection after rotation: %v", err)
	}
	if cn := peerCN(old); cn != "first.example" {
		t.Fatalf("old connection's peer = %q", cn)
	}
	if got, ok := FirstExpiry(srv); !ok || !got.Equal(second.cert.NotAfter) {
		t.Errorf("FirstExpiry = %v, %v; want %v", got, ok, second.cert.NotAfter)
	}

	// A key that does not match is NACKed and the last good pair stays.
	bad := certSecret("server_cert", first)
	bad.GetTlsCertificate().PrivateKey = inline(second.kpem)
	err = d.sub.push(t, bad, "3")
	if err == nil || !strings.Contains(err.Error(), `secret "server_cert": tls_certificate: tls: private key does not match public key`) {
		t.Fatalf("bad key: err = %v", err)
	}
	c3, err := dialEcho(t, addr, cli)
	if err != nil {
		t.Fatal(err)
	}
	if cn := peerCN(c3); cn != "second.example" {
		t.Fatalf("after NACK peer = %q, want second.example", cn)
	}

	if len(d.released) != 1 {
		t.Fatalf("%d release funcs registered, want 1", len(d.released))
	}
	d.release()
	if !d.sub.watch(t, "server_cert").cancelled {
		t.Error("release did not cancel the watch")
	}
}

// Two certificates over SDS: the client gets the one its hello supports.
func TestSDSServerPicksAmongCertificates(t *testing.T) {
	p := newPKI(t)
	d := newDeps()
	srv, err := ServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("a"), sdsRef("b")},
	}}, d.Deps)
	if err != nil {
		t.Fatal(err)
	}
	d.Init.Seal()
	d.sub.mustPush(t, certSecret("a", p.server), "1")
	if initDone(d.Init) {
		t.Fatal("Init done with one of two secrets")
	}
	if _, err := srv.GetCertificate(&tls.ClientHelloInfo{}); err == nil || !strings.Contains(err.Error(), `SDS secret "b" has not been received`) {
		t.Fatalf("GetCertificate with b missing: err = %v", err)
	}
	d.sub.mustPush(t, certSecret("b", p.client), "1")
	if !initDone(d.Init) {
		t.Fatal("Init not done with both secrets")
	}
	es := serveEcho(t, srv)
	addr := es.addr
	cli, _ := staticClientConfig(&tlsv3.UpstreamTlsContext{})
	c, err := dialEcho(t, addr, cli)
	if err != nil {
		t.Fatal(err)
	}
	if cn := peerCN(c); cn != p.server.cert.Subject.CommonName {
		t.Errorf("peer = %q", cn)
	}
	want := p.server.cert.NotAfter
	if p.client.cert.NotAfter.Before(want) {
		want = p.client.cert.NotAfter
	}
	if got, ok := FirstExpiry(srv); !ok || !got.Equal(want) {
		t.Errorf("FirstExpiry = %v, %v; want %v", got, ok, want)
	}
}

func TestSDSServerValidationContextRotation(t *testing.T) {
	p := newPKI(t)
	type variant struct {
		require bool
		version tlsv3.TlsParameters_TlsProtocol // the client's maximum
	}
	var variants []variant
	for _, r := range []bool{true, false} {
		for _, v := range []tlsv3.TlsParameters_TlsProtocol{tlsv3.TlsParameters_TLSv1_2, tlsv3.TlsParameters_TLSv1_3} {
			variants = append(variants, variant{r, v})
		}
	}
	for _, vt := range variants {
		require := vt.require
		t.Run(fmt.Sprintf("require=%v/%v", require, vt.version), func(t *testing.T) {
			client := func(certs ...*tlsv3.TlsCertificate) *tls.Config {
				cfg, err := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsCertificates: certs,
					TlsParams:       &tlsv3.TlsParameters{TlsMaximumProtocolVersion: vt.version},
				}})
				if err != nil {
					t.Fatal(err)
				}
				return cfg
			}
			strangerClient, trustedClient, noCertClient := client(certOf(p.stranger)), client(certOf(p.client)), client()
			d := newDeps()
			srv, err := ServerConfig(&tlsv3.DownstreamTlsContext{
				CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.server)},
					ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
						ValidationContextSdsSecretConfig: sdsRef("client_ca")},
				},
				RequireClientCertificate: wrapperspb.Bool(require),
			}, d.Deps)
			if err != nil {
				t.Fatal(err)
			}
			es := serveEcho(t, srv)
			addr := es.addr
			es.refused(t, trustedClient, `SDS secret "client_ca" has not been received`)

			d.sub.mustPush(t, caSecret("client_ca", p.ca.pem), "1")
			c, err := dialEcho(t, addr, trustedClient)
			if err != nil {
				t.Fatalf("client from test-ca with test-ca trusted: %v", err)
			}
			if want := map[tlsv3.TlsParameters_TlsProtocol]uint16{tlsv3.TlsParameters_TLSv1_2: tls.VersionTLS12, tlsv3.TlsParameters_TLSv1_3: tls.VersionTLS13}[vt.version]; c.ConnectionState().Version != want {
				t.Fatalf("negotiated %s", tls.VersionName(c.ConnectionState().Version))
			}
			es.refused(t, strangerClient, "certificate signed by unknown authority")
			if require {
				es.refused(t, noCertClient, "client didn't provide a certificate")
			} else if _, err := dialEcho(t, addr, noCertClient); err != nil {
				t.Fatalf("no client certificate, not required: %v", err)
			}

			d.sub.mustPush(t, caSecret("client_ca", p.otherCA.pem), "2")
			if _, err := dialEcho(t, addr, strangerClient); err != nil {
				t.Fatalf("client from other-ca after rotating to it: %v", err)
			}
			es.refused(t, trustedClient, "certificate signed by unknown authority")

			// NACKs: garbage CA, and a certificate where a CA is expected.
			err = d.sub.push(t, &tlsv3.Secret{Name: "client_ca", Type: &tlsv3.Secret_ValidationContext{
				ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline([]byte("junk"))}}}, "3")
			if err == nil || !strings.Contains(err.Error(), `secret "client_ca": validation_context.trusted_ca: no PEM certificates found`) {
				t.Fatalf("junk CA: err = %v", err)
			}
			err = d.sub.push(t, certSecret("client_ca", p.server), "4")
			if err == nil || !strings.Contains(err.Error(), "referenced as a validation context but carries no validation_context (it carries tls_certificate)") {
				t.Fatalf("wrong kind: err = %v", err)
			}
			if _, err := dialEcho(t, addr, strangerClient); err != nil {
				t.Fatalf("after NACKs the last good CA should hold: %v", err)
			}
		})
	}
}

func TestSDSCombinedValidationContext(t *testing.T) {
	p := newPKI(t)
	d := newDeps()
	srv, err := ServerConfig(&tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.server)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{TrustedCa: inline(p.ca.pem)},
					ValidationContextSdsSecretConfig: sdsRef("dyn"),
				}},
		},
		RequireClientCertificate: wrapperspb.Bool(true),
	}, d.Deps)
	if err != nil {
		t.Fatal(err)
	}
	es := serveEcho(t, srv)
	addr := es.addr
	trusted, _ := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.client)}}})
	stranger, _ := staticClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.stranger)}}})

	// An empty dynamic context leaves the default's trusted_ca in force.
	d.sub.mustPush(t, &tlsv3.Secret{Name: "dyn", Type: &tlsv3.Secret_ValidationContext{
		ValidationContext: &tlsv3.CertificateValidationContext{}}}, "1")
	if _, err := dialEcho(t, addr, trusted); err != nil {
		t.Fatalf("default trusted_ca: %v", err)
	}
	es.refused(t, stranger, "certificate signed by unknown authority")
	// A dynamic trusted_ca replaces the default's.
	d.sub.mustPush(t, caSecret("dyn", p.otherCA.pem), "2")
	if _, err := dialEcho(t, addr, stranger); err != nil {
		t.Fatalf("dynamic trusted_ca: %v", err)
	}
	es.refused(t, trusted, "certificate signed by unknown authority")
}

func TestSDSClientRotation(t *testing.T) {
	p := newPKI(t)
	// The upstream demands a client certificate from test-ca.
	srv, err := staticServerConfig(&tlsv3.DownstreamTlsContext{
		CommonTlsContext:         withCA(&tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.server)}}, p.ca.pem),
		RequireClientCertificate: wrapperspb.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	es := serveEcho(t, srv)
	addr := es.addr

	d := newDeps()
	cli, err := ClientConfig(&tlsv3.UpstreamTlsContext{Sni: "upstream.example", CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("client_cert")},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: sdsRef("upstream_ca")},
	}}, d.Deps)
	if err != nil {
		t.Fatal(err)
	}
	d.Init.Seal()
	if _, err := dialEcho(t, addr, cli); err == nil || !strings.Contains(err.Error(), "has not been received") {
		t.Fatalf("before secrets: err = %v", err)
	}

	// Only the certificate: the connection still waits for the CA.
	d.sub.mustPush(t, certSecret("client_cert", p.stranger), "1")
	if _, err := dialEcho(t, addr, cli); err == nil || !strings.Contains(err.Error(), `SDS secret "upstream_ca" has not been received`) {
		t.Fatalf("before the CA: err = %v", err)
	}
	if initDone(d.Init) {
		t.Fatal("Init done before the CA arrived")
	}

	d.sub.mustPush(t, caSecret("upstream_ca", p.otherCA.pem), "1")
	if !initDone(d.Init) {
		t.Fatal("Init not done")
	}
	if _, err := dialEcho(t, addr, cli); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("upstream from test-ca with only other-ca trusted: err = %v", err)
	}
	d.sub.mustPush(t, caSecret("upstream_ca", p.ca.pem), "2")
	es.refused(t, cli, "certificate signed by unknown authority")
	d.sub.mustPush(t, certSecret("client_cert", p.client), "2")
	c, err := dialEcho(t, addr, cli)
	if err != nil {
		t.Fatalf("after rotating both: %v", err)
	}
	if cn := peerCN(c); cn != "upstream.example" {
		t.Errorf("peer = %q", cn)
	}
	if got, ok := FirstExpiry(cli); !ok || !got.Equal(p.client.cert.NotAfter) {
		t.Errorf("FirstExpiry = %v, %v", got, ok)
	}

	// NACK: unsupported field and wrong kind; the good pair stays.
	withPassword := certSecret("client_cert", p.stranger)
	withPassword.GetTlsCertificate().Password = inline([]byte("secret"))
	if err := d.sub.push(t, withPassword, "3"); err == nil || !strings.Contains(err.Error(), `secret "client_cert": tls_certificate.password: not supported`) {
		t.Fatalf("password: err = %v", err)
	}
	if err := d.sub.push(t, caSecret("client_cert", p.ca.pem), "4"); err == nil || !strings.Contains(err.Error(), "referenced as a certificate but carries no tls_certificate (it carries validation_context)") {
		t.Fatalf("wrong kind: err = %v", err)
	}
	if _, err := dialEcho(t, addr, cli); err != nil {
		t.Fatalf("after NACKs: %v", err)
	}
	if len(d.released) != 2 {
		t.Errorf("%d release funcs, want 2", len(d.released))
	}
}

// The listener goes live on initial_fetch_timeout without its secret:
// Init is released, and handshakes fail until the secret comes.
// The listener goes live without its secret on initial_fetch_timeout or a
// refused first secret (Envoy lets start-up go on with a bad config):
// Init is released, and handshakes fail until a good secret comes.
func TestSDSWarmingEndsWithoutSecret(t *testing.T) {
	p := newPKI(t)
	for _, tt := range []struct {
		name    string
		u       *xds.Update
		wantErr string
	}{
		{"initial_fetch_timeout", &xds.Update{InitialFetchTimeout: true}, ""},
		{"refused", &xds.Update{Resources: []xds.Resource{{Name: "late", Message: caSecret("late", p.ca.pem)}}},
			"referenced as a certificate but carries no tls_certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeps()
			srv, err := ServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("late")},
			}}, d.Deps)
			if err != nil {
				t.Fatal(err)
			}
			d.Init.Seal()
			fw := d.sub.watch(t, "late")
			err = fw.w.Watcher.Update(tt.u)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if !initDone(d.Init) {
				t.Fatal("Init not done")
			}
			es := serveEcho(t, srv)
			cli, _ := staticClientConfig(&tlsv3.UpstreamTlsContext{})
			es.refused(t, cli, `SDS secret "late" has not been received`)
			d.sub.mustPush(t, certSecret("late", p.server), "1")
			if _, err := dialEcho(t, es.addr, cli); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSDSUpdateShapes(t *testing.T) {
	p := newPKI(t)
	d := newDeps()
	if _, err := ServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("s")},
	}}, d.Deps); err != nil {
		t.Fatal(err)
	}
	w := d.sub.watch(t, "s").w.Watcher
	tests := []struct {
		name    string
		u       *xds.Update
		wantErr string
	}{
		{"another secret", &xds.Update{Full: true, Resources: []xds.Resource{{Name: "t", Message: certSecret("t", p.server)}}},
			`SDS update carries "t", not the expected secret "s"`},
		{"not a secret", &xds.Update{Resources: []xds.Resource{{Name: "s", Message: &tlsv3.TlsCertificate{}}}},
			`secret "s": resource is a *tlsv3.TlsCertificate, not a Secret`},
		{"empty secret", &xds.Update{Resources: []xds.Resource{{Name: "s", Message: &tlsv3.Secret{Name: "s"}}}},
			"carries no tls_certificate (it is empty)"},
		{"missing key", &xds.Update{Resources: []xds.Resource{{Name: "s", Message: &tlsv3.Secret{Name: "s", Type: &tlsv3.Secret_TlsCertificate{
			TlsCertificate: &tlsv3.TlsCertificate{CertificateChain: inline(p.server.pem)}}}}}},
			`secret "s": tls_certificate.private_key: no data source set`},
		// Delta removal: Envoy keeps the last secret; not an error.
		{"removal", &xds.Update{Removed: []string{"s"}}, ""},
		{"good", &xds.Update{Resources: []xds.Resource{{Name: "s", Version: "7", Message: certSecret("s", p.server)}}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := w.Update(tc.u)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
			}
		})
	}
	if v := w.(*sdsSecret).cur.Load(); v == nil || v.version != "7" {
		t.Fatalf("current secret = %+v, want version 7", v)
	}
	// Removal after a good secret keeps it.
	if err := w.Update(&xds.Update{Removed: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	if w.(*sdsSecret).cur.Load() == nil {
		t.Fatal("removal dropped the secret")
	}
}

func TestSDSConfigErrors(t *testing.T) {
	p := newPKI(t)
	noSource := &tlsv3.SdsSecretConfig{Name: "x"}
	validationRef := func(ref *tlsv3.SdsSecretConfig) *tlsv3.CommonTlsContext {
		return &tlsv3.CommonTlsContext{
			TlsCertificates:       []*tlsv3.TlsCertificate{certOf(p.server)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: ref},
		}
	}
	combined := func(c *tlsv3.CommonTlsContext_CombinedCertificateValidationContext) *tlsv3.CommonTlsContext {
		return &tlsv3.CommonTlsContext{
			TlsCertificates:       []*tlsv3.TlsCertificate{certOf(p.server)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: c},
		}
	}
	tests := []struct {
		name    string
		common  *tlsv3.CommonTlsContext
		client  bool
		static  bool // no Subscriber
		subErr  error
		wantErr string
	}{
		{name: "no dynamic config", static: true,
			common:  &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("a")}},
			wantErr: "common_tls_context.tls_certificate_sds_secret_configs[0].sds_config: SDS needs dynamic configuration"},
		{name: "no dynamic config, validation", static: true, common: validationRef(sdsRef("ca")),
			wantErr: "common_tls_context.validation_context_sds_secret_config.sds_config: SDS needs dynamic configuration"},
		{name: "unknown static secret", static: true,
			common:  &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{noSource}},
			wantErr: `common_tls_context.tls_certificate_sds_secret_configs[0]: unknown static secret "x"`},
		{name: "no name",
			common:  &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{SdsConfig: adsSource}}},
			wantErr: "common_tls_context.tls_certificate_sds_secret_configs[0].name: required"},
		{name: "both static and SDS certificates",
			common: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.server)},
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("a")}},
			wantErr: "common_tls_context: tls_certificates and tls_certificate_sds_secret_configs cannot both be set"},
		{name: "two client certificates", client: true,
			common:  &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("a"), sdsRef("b")}},
			wantErr: "common_tls_context.tls_certificate_sds_secret_configs: a client context takes at most one certificate"},
		{name: "subscribe refused", subErr: errors.New("ads: no ads_config in the bootstrap"),
			common:  validationRef(sdsRef("ca")),
			wantErr: "common_tls_context.validation_context_sds_secret_config.sds_config: ads: no ads_config in the bootstrap"},
		{name: "combined without SDS reference",
			common:  combined(&tlsv3.CommonTlsContext_CombinedCertificateValidationContext{}),
			wantErr: "common_tls_context.combined_validation_context.validation_context_sds_secret_config: required"},
		{name: "combined default with an OTHER_NAME SAN matcher",
			common: combined(&tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_OTHER_NAME, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a"}}}}},
				ValidationContextSdsSecretConfig: sdsRef("ca")}),
			wantErr: "common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].san_type: OTHER_NAME is not supported"},
		{name: "combined default with a bad CA",
			common: combined(&tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{TrustedCa: inline([]byte("junk"))},
				ValidationContextSdsSecretConfig: sdsRef("ca")}),
			wantErr: "common_tls_context.combined_validation_context.default_validation_context.trusted_ca: no PEM certificates found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDeps()
			d.sub.err = tc.subErr
			deps := d.Deps
			if tc.static {
				deps = xds.Deps{}
			}
			var err error
			if tc.client {
				_, err = ClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: tc.common}, deps)
			} else {
				_, err = ServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: tc.common}, deps)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
			}
			// A failed build leaves nothing behind: watches cancelled,
			// Init not held, nothing handed to Release.
			for name, fw := range d.sub.watches {
				if !fw.cancelled {
					t.Errorf("watch %q left open", name)
				}
			}
			if n := d.Init.Pending(); n != 0 {
				t.Errorf("Init has %d pending targets", n)
			}
			if len(d.released) != 0 {
				t.Errorf("%d release funcs registered by a failed build", len(d.released))
			}
		})
	}
}

// The static path is unchanged by d: same certificates, no callbacks.
func TestStaticContextIgnoresDeps(t *testing.T) {
	p := newPKI(t)
	d := newDeps()
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: withCA(&tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{certOf(p.server)}}, p.ca.pem)}
	cfg, err := ServerConfig(proto.Clone(ctx).(*tlsv3.DownstreamTlsContext), d.Deps)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.sub.watches) != 0 || len(d.released) != 0 || d.Init.Pending() != 0 {
		t.Fatal("a static context subscribed")
	}
	if cfg.GetCertificate != nil || cfg.VerifyConnection != nil || len(cfg.Certificates) != 1 || cfg.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Fatalf("static config changed shape: %+v", cfg)
	}
}
