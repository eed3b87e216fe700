package xds_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/legate-proxy/legate/test/legatetest"
)

func TestSDSSotWADS(t *testing.T)  { t.Parallel(); testSDS(t, modes[0]) }
func TestSDSDeltaADS(t *testing.T) { t.Parallel(); testSDS(t, modes[1]) }

// cert is a self-signed certificate for 127.0.0.1 and its key, in PEM.
type cert struct {
	serial          *big.Int
	certPEM, keyPEM []byte
	x509            *x509.Certificate
}

func newCert(t testing.TB, serial int64) cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: fmt.Sprintf("legate-test-%d", serial)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return cert{serial: tmpl.SerialNumber, x509: parsed,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}
}

// secret is an SDS tls_certificate secret.
func secret(name string, c cert) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c.certPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c.keyPEM}},
	}}}
}

// tlsListener is httpListener terminating TLS with the certificate SDS
// delivers as secretName.
func tlsListener(t testing.TB, m Mode, name string, port int, secretName string) *listenerv3.Listener {
	l := httpListener(t, name, port, hcmOpts{StatPrefix: name, RDS: "rc_main", Source: m.Source()})
	l.FilterChains[0].TransportSocket = &corev3.TransportSocket{
		Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &tlsv3.DownstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{
				Name: secretName, SdsConfig: m.Source()}}},
		})},
	}
	return l
}

// tlsClient trusts the given certificates; keepAlive says whether
// connections are reused.
func tlsClient(keepAlive bool, certs ...cert) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c.x509)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: nil, DisableKeepAlives: !keepAlive,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

// servedSerial is the serial of the certificate a request to url was
// answered with; it requires a 200 from upstream a.
func servedSerial(c *http.Client, url string) (*big.Int, error) {
	return servedSerialCtx(context.Background(), c, url)
}

func servedSerialCtx(ctx context.Context, c *http.Client, url string) (*big.Int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	// Read to the end, so that the connection can be reused.
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Upstream") != "a" {
		return nil, fmt.Errorf("%s from %q", resp.Status, resp.Header.Get("X-Upstream"))
	}
	return resp.TLS.PeerCertificates[0].SerialNumber, nil
}

// testSDS: a listener's certificate comes over SDS; rotating the secret
// changes what new connections get while an open keep-alive connection
// keeps working; a listener whose secret does not exist yet warms and only
// goes live when the secret arrives.
func testSDS(t *testing.T, m Mode) {
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	cert1, cert2, cert3 := newCert(t, 1), newCert(t, 2), newCert(t, 3)
	cp := startControlPlane(t)
	port := legatetest.FreePort(t)
	w := baseWorld(t, m, port, a, b, "svc_a")
	w.Listeners = []types.Resource{tlsListener(t, m, "tls_main", port, "server_cert")}
	secrets := []types.Resource{secret("server_cert", cert1)}
	set := func() {
		res := w.Resources()
		res[resource.SecretType] = secrets
		cp.Set(res)
	}
	set()
	l := startLegate(t, func(admin int) string { return m.Bootstrap(cp.Port, admin) })
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/"
	fresh := tlsClient(false, cert1, cert2, cert3)
	kept := tlsClient(true, cert1, cert2, cert3)

	waitSerial := func(c *http.Client, url string, want *big.Int) {
		t.Helper()
		var got *big.Int
		var err error
		eventually(t, waitTimeout, func() bool {
			got, err = servedSerial(c, url)
			return err == nil && got.Cmp(want) == 0
		}, func() string { return fmt.Sprintf("GET %s: want certificate %v; got %v, %v", url, want, got, err) })
	}
	waitSerial(fresh, url, cert1.serial)
	waitSerial(kept, url, cert1.serial) // opens the connection kept across the rotation
	l.waitStat(t, "sds.server_cert.update_success", ">= 1", func(v int64) bool { return v >= 1 })

	t.Run("rotation", func(t *testing.T) {
		secrets = []types.Resource{secret("server_cert", cert2)}
		set()
		waitSerial(fresh, url, cert2.serial)
		// The connection opened before the rotation is still good.
		var reused bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }})
		got, err := servedSerialCtx(ctx, kept, url)
		if err != nil || got.Cmp(cert1.serial) != 0 || !reused {
			t.Errorf("the keep-alive connection from before the rotation: certificate %v, %v, connection reused %v; want %v on the same connection", got, err, reused, cert1.serial)
		}
	})

	t.Run("listener warms until its secret arrives", func(t *testing.T) {
		port2 := legatetest.FreePort(t)
		addr2 := net.JoinHostPort("127.0.0.1", strconv.Itoa(port2))
		w.Listeners = append(w.Listeners, tlsListener(t, m, "tls_second", port2, "second_cert"))
		set()
		l.waitStat(t, "listener_manager.total_listeners_warming", "== 1", func(v int64) bool { return v == 1 })
		// Not served yet: a request gets no answer (the connection may be
		// refused, or wait in the kernel's backlog until the listener is live).
		impatient := tlsClient(false, cert1, cert2, cert3)
		impatient.Timeout = time.Second
		if serial, err := servedSerial(impatient, "https://"+addr2+"/"); err == nil {
			t.Errorf("a listener still waiting for its secret served a request with certificate %v", serial)
		}
		secrets = append(secrets, secret("second_cert", cert3))
		set()
		waitSerial(fresh, "https://"+addr2+"/", cert3.serial)
		l.waitStat(t, "listener_manager.total_listeners_warming", "== 0", func(v int64) bool { return v == 0 })
		l.waitStat(t, "listener_manager.total_listeners_active", "== 2", func(v int64) bool { return v == 2 })
	})
}
