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
