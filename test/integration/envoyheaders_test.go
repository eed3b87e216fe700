package integration

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	zmodel "github.com/openzipkin/zipkin-go/model"
)

// withRouter puts router config fields into a listener from listenerYAML.
func withRouter(listener, fields string) string {
	const typeLine = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n"
	return strings.Replace(listener, typeLine, typeLine+indent(fields, 12)+"\n", 1)
}

// The x-envoy-* request controls: honoured from internal clients, stripped
// from external ones, checked strictly when asked.
func TestEnvoyRequestControls(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{} // requests per path
	echo := echoHandler("up")
	up := startUpstream(t, "up", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		n := seen[r.URL.Path]
		mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/flaky/") && n == 1:
			w.WriteHeader(503)
			return
		case strings.HasPrefix(r.URL.Path, "/slowfirst/") && n == 1:
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
				return
			}
		case strings.HasPrefix(r.URL.Path, "/hedge/"):
			// The first attempt is slow but not hopeless; later ones
			// are slower still.
			d := 500 * time.Millisecond
			if n > 1 {
				d = 3 * time.Second
			}
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		case strings.HasPrefix(r.URL.Path, "/grpc/"):
			w.Header().Set("Content-Type", "application/grpc")
			if n == 1 {
				w.Header().Set("Grpc-Status", "14")
			} else {
				w.Header().Set("Grpc-Status", "0")
			}
			w.WriteHeader(200)
			return
		}
		echo(w, r)
	}))
	routes := func(cluster string) string {
		return `route_config:
  virtual_hosts:
  - name: all
    domains: ["*"]
    include_request_attempt_count: true
    include_attempt_count_in_response: true
    routes:
    - match: {prefix: "/canary", runtime_fraction: {default_value: {numerator: 0}}}
      direct_response: {status: 299}
    - match: {prefix: "/"}
      route: {cluster: ` + cluster + `}
use_remote_address: true
`
	}
	l := startLegate(t, bootstrapYAML([]string{
		withRouter(listenerYAML("internal", routes("up"), ""),
			"strict_check_headers: [x-envoy-max-retries, x-envoy-upstream-rq-timeout-ms, x-envoy-retry-on]"),
		// Loopback is not internal here: every client is external.
		listenerYAML("external", routes("up")+`internal_address_config:
  cidr_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]`, ""),
		withRouter(listenerYAML("quiet", routes("up2"), ""), "suppress_envoy_headers: true\ndynamic_stats: false"),
	}, []string{testutil.StaticClusterYAML("up", "", up.Addr), testutil.StaticClusterYAML("up2", "", up.Addr)}), nil)

	c := newClient()
	send := func(listener, path string, h ...string) (*http.Response, string, time.Duration) {
		t.Helper()
		req := mustReq(t, "GET", l.URL(listener, path), nil)
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
		start := time.Now()
		resp, body := do(t, c, req)
		return resp, body, time.Since(start)
	}

	t.Run("timeout from an internal client", func(t *testing.T) {
		resp, body, took := send("internal", "/t1", "x-envoy-upstream-rq-timeout-ms", "150", "x-echo-sleep", "2s")
		if resp.StatusCode != 504 || took > 1500*time.Millisecond {
			t.Errorf("status %d after %v (%q), want 504 after ~150ms", resp.StatusCode, took, body)
		}
		if resp.Header.Get("x-envoy-attempt-count") != "1" {
			t.Errorf("local reply x-envoy-attempt-count %q, want 1", resp.Header.Get("x-envoy-attempt-count"))
		}
		resp, body, _ = send("internal", "/t2", "x-envoy-upstream-rq-timeout-ms", "2000")
		e := decodeEcho(t, body)
		if resp.StatusCode != 200 || e.Has("x-envoy-upstream-rq-timeout-ms") || e.Header("x-envoy-expected-rq-timeout-ms") != "2000" {
			t.Errorf("status %d; upstream saw timeout header %v, expected-rq-timeout %q (want absent, 2000)",
				resp.StatusCode, e.Has("x-envoy-upstream-rq-timeout-ms"), e.Header("x-envoy-expected-rq-timeout-ms"))
		}
		if !e.Has("x-envoy-internal") || e.Header("x-envoy-attempt-count") != "1" || resp.Header.Get("x-envoy-attempt-count") != "1" {
			t.Errorf("x-envoy-internal %q, attempt count upstream %q, downstream %q", e.Header("x-envoy-internal"),
				e.Header("x-envoy-attempt-count"), resp.Header.Get("x-envoy-attempt-count"))
		}
	})
	t.Run("alternate timeout response", func(t *testing.T) {
		resp, body, _ := send("internal", "/t3", "x-envoy-upstream-rq-timeout-ms", "100",
			"x-envoy-upstream-rq-timeout-alt-response", "", "x-echo-sleep", "2s")
		if resp.StatusCode != 204 || body != "" {
			t.Errorf("status %d body %q, want 204 and no body", resp.StatusCode, body)
		}
	})
	t.Run("retry on 5xx with attempt counts", func(t *testing.T) {
		resp, body, _ := send("internal", "/flaky/a", "x-envoy-retry-on", "5xx")
		if resp.StatusCode != 200 || resp.Header.Get("x-envoy-attempt-count") != "2" {
			t.Fatalf("status %d, attempt count %q (%q); want 200 after 2 attempts", resp.StatusCode, resp.Header.Get("x-envoy-attempt-count"), body)
		}
		if e := decodeEcho(t, body); e.Header("x-envoy-attempt-count") != "2" {
			t.Errorf("upstream saw attempt %q on the retry, want 2", e.Header("x-envoy-attempt-count"))
		}
		if resp, _, _ := send("internal", "/flaky/b", "x-envoy-retry-on", "5xx", "x-envoy-max-retries", "0"); resp.StatusCode != 503 {
			t.Errorf("x-envoy-max-retries 0: status %d, want 503", resp.StatusCode)
		}
	})
	t.Run("per-try timeout", func(t *testing.T) {
		resp, _, took := send("internal", "/slowfirst/a", "x-envoy-upstream-rq-per-try-timeout-ms", "200", "x-envoy-retry-on", "5xx")
		if resp.StatusCode != 200 || took > 1500*time.Millisecond {
			t.Errorf("status %d after %v, want 200 after the per-try timeout and a retry", resp.StatusCode, took)
		}
		if n := l.Counter(t, "cluster.up.upstream_rq_per_try_timeout"); n < 1 {
			t.Errorf("cluster.up.upstream_rq_per_try_timeout = %d", n)
		}
	})
	t.Run("hedge on per-try timeout", func(t *testing.T) {
		// Without hedging the first attempt would be cancelled at 150ms
		// and the retry take 3s; hedged, the first one still answers.
		resp, body, took := send("internal", "/hedge/a", "x-envoy-upstream-rq-per-try-timeout-ms", "150",
			"x-envoy-retry-on", "5xx", "x-envoy-hedge-on-per-try-timeout", "true")
		if resp.StatusCode != 200 || took > 2*time.Second {
			t.Fatalf("status %d after %v, want the first attempt's 200 after ~500ms", resp.StatusCode, took)
		}
		if e := decodeEcho(t, body); e.Header("x-envoy-attempt-count") != "1" || e.Has("x-envoy-hedge-on-per-try-timeout") {
			t.Errorf("winner was attempt %q (want 1); hedge header forwarded: %v", e.Header("x-envoy-attempt-count"), e.Has("x-envoy-hedge-on-per-try-timeout"))
		}
		if resp.Header.Get("x-envoy-attempt-count") != "2" {
			t.Errorf("downstream x-envoy-attempt-count %q, want 2 (the hedge counts)", resp.Header.Get("x-envoy-attempt-count"))
		}
	})
	t.Run("retry on grpc status", func(t *testing.T) {
		resp, _, _ := send("internal", "/grpc/a", "x-envoy-retry-grpc-on", "unavailable", "content-type", "application/grpc")
		if resp.StatusCode != 200 || resp.Header.Get("grpc-status") != "0" {
			t.Errorf("status %d grpc-status %q, want the retried answer (0)", resp.StatusCode, resp.Header.Get("grpc-status"))
		}
	})
	t.Run("strict check", func(t *testing.T) {
		for _, h := range [][2]string{{"x-envoy-max-retries", "abc"}, {"x-envoy-upstream-rq-timeout-ms", "-1"}, {"x-envoy-retry-on", "5xx,bogus"}} {
			resp, body, _ := send("internal", "/strict", h[0], h[1])
			want := "invalid header '" + h[0] + "' with value '" + h[1] + "'"
			if resp.StatusCode != 400 || body != want {
				t.Errorf("%s: %s: status %d body %q, want 400 %q", h[0], h[1], resp.StatusCode, body, want)
			}
		}
		// Not listed in strict_check_headers: ignored.
		if resp, _, _ := send("internal", "/strict", "x-envoy-upstream-rq-per-try-timeout-ms", "abc"); resp.StatusCode != 200 {
			t.Errorf("unchecked header: status %d", resp.StatusCode)
		}
	})
	t.Run("alternate stat name", func(t *testing.T) {
		send("internal", "/alt", "x-envoy-upstream-alt-stat-name", "billing")
		eventually(t, 5*time.Second, "cluster.up.billing.upstream_rq_200", func() bool {
			return l.Counter(t, "cluster.up.billing.upstream_rq_200") == 1
		})
	})
	t.Run("external clients are not obeyed", func(t *testing.T) {
		resp, body, _ := send("external", "/ext", "x-envoy-upstream-rq-timeout-ms", "50", "x-envoy-retry-on", "5xx",
			"x-envoy-upstream-alt-stat-name", "ext", "x-echo-sleep", "300ms")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d (%q), want 200: the timeout header must be ignored", resp.StatusCode, body)
		}
		e := decodeEcho(t, body)
		for _, h := range []string{"x-envoy-retry-on", "x-envoy-upstream-rq-timeout-ms", "x-envoy-upstream-alt-stat-name", "x-envoy-internal"} {
			if e.Has(h) {
				t.Errorf("upstream saw %s from an external client", h)
			}
		}
		if e.Header("x-envoy-external-address") != "127.0.0.1" {
			t.Errorf("x-envoy-external-address %q", e.Header("x-envoy-external-address"))
		}
	})
	t.Run("suppress_envoy_headers and dynamic_stats off", func(t *testing.T) {
		resp, body, _ := send("quiet", "/q")
		e := decodeEcho(t, body)
		if resp.StatusCode != 200 || e.Has("x-envoy-expected-rq-timeout-ms") || resp.Header.Get("x-envoy-upstream-service-time") != "" {
			t.Errorf("status %d, expected-rq-timeout %q, upstream-service-time %q: want neither",
				resp.StatusCode, e.Header("x-envoy-expected-rq-timeout-ms"), resp.Header.Get("x-envoy-upstream-service-time"))
		}
		st := l.Stats(t)
		if _, ok := st["cluster.up2.upstream_rq_200"]; ok || st["cluster.up2.upstream_rq_total"] != "1" {
			t.Errorf("dynamic_stats off: upstream_rq_200 %q (want absent), upstream_rq_total %q (want 1)",
				st["cluster.up2.upstream_rq_200"], st["cluster.up2.upstream_rq_total"])
		}
	})
	t.Run("runtime_fraction 0 never matches", func(t *testing.T) {
		if resp, _, _ := send("internal", "/canary"); resp.StatusCode != 200 {
			t.Errorf("status %d, want the next route's 200", resp.StatusCode)
		}
	})
	t.Cleanup(func() {
		// Concurrent hedged attempts: a race-enabled binary reports here.
		if strings.Contains(l.Stderr(), "DATA RACE") {
			t.Errorf("legate reported a data race:\n%s", l.Stderr())
		}
	})
	t.Run("host with userinfo", func(t *testing.T) {
		status, _, _, err := rawExchange(l.Addr("internal"), "GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n", 5*time.Second, false)
		if status != 400 {
			t.Errorf("status %d (%v), want 400", status, err)
		}
	})
}

// original_ip_detection_extensions: the client address comes from a
// header the front proxy sets; a request without it is refused when the
// extension says so.
func TestOriginalIPDetection(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "up", nil)
	hcm := func(trusted bool) string {
		tr := "false"
		if trusted {
			tr = "true"
		}
		return routeAll("up") + `
original_ip_detection_extensions:
- name: envoy.extensions.http.original_ip_detection.custom_header
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.http.original_ip_detection.custom_header.v3.CustomHeaderConfig
    header_name: x-real-ip
    allow_extension_to_set_address_as_trusted: ` + tr + `
    reject_with_status: {code: 403}
access_log:
- name: envoy.access_loggers.stdout
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
    log_format: {text_format_source: {inline_string: "remote=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\n"}}`
	}
	l := startLegate(t, bootstrapYAML([]string{
		listenerYAML("trusted", hcm(true), ""),
		listenerYAML("untrusted", hcm(false), ""),
	}, []string{testutil.StaticClusterYAML("up", "", up.Addr)}), nil)
	c := newClient()
	send := func(listener string, h ...string) (*http.Response, string) {
		req := mustReq(t, "GET", l.URL(listener, "/"), nil)
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
		return do(t, c, req)
	}
	if resp, _ := send("trusted"); resp.StatusCode != 403 {
		t.Errorf("no x-real-ip: status %d, want 403", resp.StatusCode)
	}
	if resp, _ := send("trusted", "x-real-ip", "not-an-ip"); resp.StatusCode != 403 {
		t.Errorf("bad x-real-ip: status %d, want 403", resp.StatusCode)
	}
	if n := l.Counter(t, "http.trusted.downstream_rq_rejected_via_ip_detection"); n != 2 {
		t.Errorf("downstream_rq_rejected_via_ip_detection = %d, want 2", n)
	}
	resp, body := send("trusted", "x-real-ip", "10.9.9.9", "x-envoy-retry-on", "5xx")
	if e := decodeEcho(t, body); resp.StatusCode != 200 || e.Header("x-envoy-internal") != "true" || e.Header("x-envoy-retry-on") != "5xx" {
		t.Errorf("trusted internal address: status %d, x-envoy-internal %q, x-envoy-retry-on %q", resp.StatusCode,
			e.Header("x-envoy-internal"), e.Header("x-envoy-retry-on"))
	}
	resp, body = send("untrusted", "x-real-ip", "10.9.9.9", "x-envoy-retry-on", "5xx")
	if e := decodeEcho(t, body); resp.StatusCode != 200 || e.Has("x-envoy-internal") || e.Has("x-envoy-retry-on") {
		t.Errorf("untrusted: status %d, x-envoy-internal %q, x-envoy-retry-on %q", resp.StatusCode,
			e.Header("x-envoy-internal"), e.Header("x-envoy-retry-on"))
	}
	// The detected address is the downstream remote address access logs see.
	eventually(t, 5*time.Second, "access log with the detected address", func() bool {
		return strings.Contains(l.Stdout(), "remote=10.9.9.9\n")
	})
}

// An OUTBOUND listener's connection manager reports client spans.
func TestTracingEgressSpanKind(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "svc", nil)
	col := startZipkin(t)
	egress := listenerYAML("egress", zipkinTracing("", "")+decoratedRoutes, "")
	egress = strings.Replace(egress, "\n", "\n  traffic_direction: OUTBOUND\n", 1)
	l := startLegate(t, nodeYAML+bootstrapYAML([]string{egress},
		[]string{testutil.StaticClusterYAML("svc", "", up.Addr), testutil.StaticClusterYAML("zipkin", "", col.Addr)}), nil)
	resp, body := do(t, newClient(), mustReq(t, "GET", l.URL("egress", "/out"), nil))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	e := decodeEcho(t, body)
	sp := col.wait(t, e.Header("x-b3-traceid"), e.Header("x-b3-spanid"), filler(l, "egress"))
	if sp.Kind != zmodel.Client {
		t.Errorf("span kind %q, want CLIENT", sp.Kind)
	}
}
