package integration

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"
)

// rawRoundTrip sends one raw HTTP/1.1 request and returns the response
// with its body read (into body), for request-targets net/http would not
// send as written.
func rawRoundTrip(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// An access rule written as a route prefix holds against path tricks once
// normalization is on: /pub is public, everything else is refused by a
// direct response.
func TestPathNormalization(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "pub", nil)
	routes := `route_config:
  virtual_hosts:
  - name: guarded
    domains: ["example.com"]
    routes:
    - match: {prefix: "/pub/"}
      route: {cluster: up}
    - match: {prefix: "/"}
      direct_response: {status: 403, body: {inline_string: "denied"}}
`
	l := startLegate(t, bootstrapYAML([]string{
		listenerYAML("raw", routes, ""),
		listenerYAML("norm", routes+`normalize_path: true
merge_slashes: true
path_with_escaped_slashes_action: REJECT_REQUEST
strip_any_host_port: true`, ""),
		listenerYAML("redirect", routes+`normalize_path: true
merge_slashes: true
path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT
strip_matching_host_port: true`, ""),
		listenerYAML("forward", routes+`normalize_path: true
path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD`, ""),
	}, []string{testutil.StaticClusterYAML("up", "", up.Addr)}), nil)

	get := func(listener, target, host string) (*http.Response, string) {
		return rawRoundTrip(t, l.Addr(listener), "GET "+target+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	}
	for _, tc := range []struct {
		listener, target string
		status           int
		upstreamPath     string // the path the upstream saw, for 200s
		location         string
	}{
		// Without normalization the raw path matches /pub/ and reaches
		// the upstream unchanged: the bypass this guards against.
		{"raw", "/pub/../admin", 200, "/pub/../admin", ""},
		{"raw", "/pub/%2e%2e/admin", 200, "/pub/%2e%2e/admin", ""},

		{"norm", "/pub/../admin", 403, "", ""},
		{"norm", "/pub/%2e%2e/admin", 403, "", ""},
		{"norm", "/pub/%2E%2E/admin", 403, "", ""},
		{"norm", "/pub/./a/../b?q=/../x", 200, "/pub/b?q=/../x", ""},
		{"norm", "//pub//a//b", 200, "/pub/a/b", ""},
		{"norm", "/pub/%7euser/%61", 200, "/pub/~user/a", ""},
		{"norm", "/../../etc/passwd", 400, "", ""},
		{"norm", "/pub/../../etc/passwd", 400, "", ""},
		{"norm", "/pub/a%2Fb", 400, "", ""},
		{"norm", "/pub/a%5cb", 400, "", ""},
		{"norm", "/pub/..%2F..%2Fadmin", 400, "", ""},

		{"redirect", "/pub/a%2Fb", 307, "", "/pub/a/b"},
		{"redirect", "/pub/a%2F..%2F..%2Fadmin", 307, "", "/admin"},
		{"redirect", "/pub/a/b", 200, "/pub/a/b", ""},

		{"forward", "/pub/a%2Fb", 200, "/pub/a/b", ""},
		{"forward", "/pub/x%2F..%2F..%2Fadmin", 403, "", ""},
	} {
		resp, body := get(tc.listener, tc.target, "example.com")
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d (%q), want %d", tc.listener, tc.target, resp.StatusCode, body, tc.status)
			continue
		}
		if tc.upstreamPath != "" {
			if e := decodeEcho(t, body); e.Path != tc.upstreamPath {
				t.Errorf("%s %s: upstream saw %q, want %q", tc.listener, tc.target, e.Path, tc.upstreamPath)
			}
		}
		if loc := resp.Header.Get("Location"); loc != tc.location {
			t.Errorf("%s %s: location %q, want %q", tc.listener, tc.target, loc, tc.location)
		}
	}

	// The same over HTTP/2: :path is normalized alike.
	h2 := h2cClient()
	for _, tc := range []struct {
		target string
		status int
	}{
		{"/pub/../admin", 403},
		{"/pub/%2e%2e/admin", 403},
		{"/../../etc/passwd", 400},
		{"/pub/a%2Fb", 400},
		{"/pub/./ok", 200},
	} {
		// url.Parse keeps the escaping and the dot segments as written.
		req := mustReq(t, "GET", l.URL("norm", tc.target), nil)
		req.Host = "example.com"
		if got := req.URL.RequestURI(); got != tc.target {
			t.Fatalf("client would send %q, not %q", got, tc.target)
		}
		resp, body := do(t, h2, req)
		if resp.StatusCode != tc.status || resp.ProtoMajor != 2 {
			t.Errorf("h2 %s: %s %d (%q), want %d", tc.target, resp.Proto, resp.StatusCode, body, tc.status)
		}
	}

	// strip_any_host_port: the virtual host for example.com matches with
	// any port; strip_matching_host_port only with the listener's own.
	resp, body := get("norm", "/pub/x", "example.com:1234")
	if resp.StatusCode != 200 || decodeEcho(t, body).Host != "example.com" {
		t.Errorf("strip_any_host_port: %d %q", resp.StatusCode, body)
	}
	resp, body = get("redirect", "/pub/x", "example.com:"+itoa(l.Port("redirect")))
	if resp.StatusCode != 200 || decodeEcho(t, body).Host != "example.com" {
		t.Errorf("strip_matching_host_port, own port: %d %q", resp.StatusCode, body)
	}
	if resp, _ = get("redirect", "/pub/x", "example.com:1234"); resp.StatusCode != 404 {
		t.Errorf("strip_matching_host_port, other port: %d, want 404 (no virtual host)", resp.StatusCode)
	}

	if n := l.Counter(t, "http.norm.downstream_rq_failed_path_normalization"); n != 7 {
		t.Errorf("http.norm.downstream_rq_failed_path_normalization = %d, want 7 (5 HTTP/1.1, 2 HTTP/2)", n)
	}
	if n := l.Counter(t, "http.redirect.downstream_rq_redirected_with_normalized_path"); n != 2 {
		t.Errorf("http.redirect.downstream_rq_redirected_with_normalized_path = %d, want 2", n)
	}
}
