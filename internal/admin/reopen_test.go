package admin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/legate-proxy/legate/internal/accesslog"
	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

func serveReopenAdmin(t *testing.T, deps Deps) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, New(deps)) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + ln.Addr().String()
}

func callAdmin(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReopenLogs is logrotate against a real access log: rename the file,
// POST /reopen_logs, and new lines land in a new file.
func TestReopenLogs(t *testing.T) {
	st := stats.NewStore()
	files := accesslog.NewFileManager(st, nil)
	defer files.Close()
	path := filepath.Join(t.TempDir(), "access.log")
	tc, err := anypb.New(&filev3.FileAccessLog{Path: path, AccessLogFormat: &filev3.FileAccessLog_LogFormat{
		LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{
			TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "%RESPONSE_CODE%\n"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := accesslog.New([]*accesslogv3.AccessLog{{ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: tc}}}, accesslog.Deps{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	base := serveReopenAdmin(t, Deps{Store: st, ReopenLogs: files.Reopen})

	logs.Log(&formatter.Context{Info: &streaminfo.StreamInfo{ResponseCode: 200}})
	files.Flush()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if code, body := callAdmin(t, "GET", base+"/reopen_logs"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d %q", code, body)
	}
	if code, body := callAdmin(t, "POST", base+"/reopen_logs"); code != 200 || body != "OK\n" {
		t.Fatalf("POST: %d %q", code, body)
	}
	logs.Log(&formatter.Context{Info: &streaminfo.StreamInfo{ResponseCode: 503}})
	files.Flush()
	for p, want := range map[string]string{path + ".1": "200\n", path: "503\n"} {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
	if _, body := callAdmin(t, "GET", base+"/help"); !strings.Contains(body, "/reopen_logs: reopen access logs") {
		t.Errorf("help does not list /reopen_logs:\n%s", body)
	}
}

func TestReopenLogsFailureAndNoLogs(t *testing.T) {
	base := serveReopenAdmin(t, Deps{ReopenLogs: func() error { return errors.New(`access log "/x/a.log": permission denied`) }})
	if code, body := callAdmin(t, "POST", base+"/reopen_logs"); code != 500 || !strings.Contains(body, "permission denied") {
		t.Fatalf("failure: %d %q", code, body)
	}
	base = serveReopenAdmin(t, Deps{})
	if code, body := callAdmin(t, "POST", base+"/reopen_logs"); code != 200 || body != "OK\n" {
		t.Fatalf("no access logs: %d %q", code, body)
	}
}
