package integration

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"

	"github.com/legate-proxy/legate/internal/testutil"
)

// TestStaticSecretsAndSANs: a listener takes its certificate and its
// validation context from static_resources.secrets (no dynamic_resources),
// and the validation context admits only clients whose SAN matches.
func TestStaticSecretsAndSANs(t *testing.T) {
	pki := newPKI(t)
	srv := pki.Issue(t, "legate", false, "127.0.0.1", "localhost")
	good := pki.Issue(t, "good", true, "good-client.example")
	bad := pki.Issue(t, "bad", true, "bad-client.example")
	echo := startUpstream(t, "echo", echoHandler("echo"))
	certFile, keyFile, caFile := writeFile(t, "srv.pem", srv.CertPEM), writeFile(t, "srv.key", srv.KeyPEM), writeFile(t, "ca.pem", pki.CAPEM)

	cfg := bootstrapYAML([]string{
		listenerYAML("mtls", routeAll("echo"), `require_client_certificate: true
common_tls_context:
  tls_certificate_sds_secret_configs: [{name: server_cert}]
  validation_context_sds_secret_config: {name: clients}`),
	}, []string{testutil.StaticClusterYAML("echo", "", echo.Addr)}) + `
  secrets:
  - name: server_cert
    tls_certificate:
      certificate_chain: {filename: ` + certFile + `}
      private_key: {filename: ` + keyFile + `}
  - name: clients
    validation_context:
      trusted_ca: {filename: ` + caFile + `}
      match_typed_subject_alt_names:
      - san_type: DNS
        matcher: {suffix: "good-client.example"}
`
	l := startLegate(t, cfg, nil)
	client := func(c Issued) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pki.Pool, ServerName: "localhost", Certificates: []tls.Certificate{c.TLS},
		}}}
	}
	resp, err := client(good).Get("https://" + l.Addr("mtls") + "/")
	if err != nil {
		t.Fatalf("client with a matching SAN: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status = %d", resp.StatusCode)
	}
	if _, err := client(bad).Get("https://" + l.Addr("mtls") + "/"); err == nil {
		t.Error("a client whose SAN matches nothing was served")
	} else if !strings.Contains(err.Error(), "tls") && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
		t.Errorf("unexpected error: %v", err)
	}
}
