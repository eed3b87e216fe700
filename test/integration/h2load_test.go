package integration

import (
	"regexp"
	"testing"

	"github.com/legate-proxy/legate/internal/testutil"
)

// TestH2Load is a smoke test under concurrency: h2load sends 1000 requests
// over HTTP/2 cleartext, 10 concurrent streams on one connection.
func TestH2Load(t *testing.T) {
	t.Parallel()
	h2load := needTool(t, "h2load")
	up := startUpstream(t, "load", nil)
	l := startLegate(t, bootstrapYAML([]string{listenerYAML("http", routeAll("up"), "")},
		[]string{testutil.StaticClusterYAML("up", "", up.Addr)}), nil)
	out, stderr, err := runCmd(t, h2load, "-n", "1000", "-c", "1", "-m", "10", l.URL("http", "/load"))
	if err != nil {
		t.Fatalf("h2load: %v\n%s\n%s", err, out, stderr)
	}
	m := regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`).FindStringSubmatch(out)
	if m == nil || m[1] != "1000" {
		t.Errorf("h2load did not get 1000 2xx:\n%s", out)
	}
	if !regexp.MustCompile(`requests: 1000 total, 1000 started, 1000 done, 1000 succeeded, 0 failed, 0 errored`).MatchString(out) {
		t.Errorf("h2load requests line:\n%s", out)
	}
	if n := up.Requests.Load(); n != 1000 {
		t.Errorf("upstream saw %d requests, want 1000", n)
	}
	if n := l.Counter(t, "http.http.downstream_cx_http2_total"); n != 1 {
		t.Errorf("downstream_cx_http2_total = %d, want 1", n)
	}
}
