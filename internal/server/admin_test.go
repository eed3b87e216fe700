package server

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/legate-proxy/legate/internal/bootstrap"
)

// The admin access log goes through the access logs' file manager: one
// line per admin request, written out by Close.
func TestAdminAccessLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.log")
	bs := &bootstrapv3.Bootstrap{Admin: &bootstrapv3.Admin{
		//lint:ignore SA1019 the deprecated field is what this tests.
		AccessLogPath: path,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
		}}},
	}}
	s, err := New(Options{Bootstrap: bs})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/ready", nil)
	req.Header.Set("User-Agent", "admin-test")
	s.admin.handler.ServeHTTP(rec, req)
	s.Close()

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := string(b)
	if strings.Count(line, "\n") != 1 || !strings.Contains(line, `"GET /ready HTTP/1.1" `+strconv.Itoa(rec.Code)) ||
		!strings.HasSuffix(line, "\"admin-test\"\n") {
		t.Errorf("admin access log = %q (status %d)", line, rec.Code)
	}
}

// admin.access_log: the access loggers of HCMs, for admin requests.
func TestAdminAccessLogList(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.log")
	bs, err := bootstrap.Load(bootstrap.Options{ConfigYAML: `
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
  profile_path: ` + filepath.Join(dir, "x.prof") + `
  access_log:
  - name: envoy.access_loggers.file
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
      path: ` + path + `
      log_format: {text_format_source: {inline_string: "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %REQ(USER-AGENT)%\n"}}
cluster_manager:
  outlier_detection: {event_log_path: ` + filepath.Join(dir, "outlier.log") + `}
`})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Bootstrap: bs})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/ready?x=1", nil)
	req.Header.Set("User-Agent", "admin-test")
	s.admin.handler.ServeHTTP(rec, req)
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "GET /ready?x=1 HTTP/1.1 " + strconv.Itoa(rec.Code) + " admin_filter_response admin-test\n"; string(b) != want {
		t.Errorf("admin access log = %q, want %q", b, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "outlier.log")); err != nil {
		t.Errorf("outlier event log not created: %v", err)
	}
}

func TestLocalClusterName(t *testing.T) {
	bs, err := bootstrap.Load(bootstrap.Options{ConfigYAML: `cluster_manager: {local_cluster_name: here}`})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Bootstrap: bs})
	if want := `cluster_manager.local_cluster_name: local cluster "here" must be defined in static_resources.clusters`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	bs, err = bootstrap.Load(bootstrap.Options{ConfigYAML: `{cluster_manager: {local_cluster_name: here}, static_resources: {clusters: [{name: here}]}}`})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Bootstrap: bs})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
