package integration

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/legate-proxy/legate/internal/testutil"
)

const routingRoutes = `
route_config:
  name: rc
  request_headers_to_add:
  - header: {key: x-rc, value: rc}
  response_headers_to_add:
  - header: {key: x-rc-resp, value: rc}
  response_headers_to_remove: [x-rc-strip]
  request_headers_to_remove: [x-rc-remove]
  virtual_hosts:
  - name: exact
    domains: ["exact.test"]
    routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {inline_string: "vh:exact"}}}]
  - name: suffix
    domains: ["*.suffix.test"]
    routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {inline_string: "vh:suffix"}}}]
  - name: prefix
    domains: ["prefix.*"]
    routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {inline_string: "vh:prefix"}}}]
  - name: port
    domains: ["port.test:8080"]
    routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {inline_string: "vh:port"}}}]
  - name: default
    domains: ["*"]
    request_headers_to_add:
    - header: {key: x-vh, value: vh}
    response_headers_to_add:
    - header: {key: x-vh-resp, value: vh}
    response_headers_to_remove: [x-vh-strip]
    request_headers_to_remove: [x-vh-remove]
    routes:
    - match: {path: "/exact-path"}
      direct_response: {status: 200, body: {inline_string: "r:path"}}
    - match: {prefix: "/CaseFree", case_sensitive: false}
      direct_response: {status: 200, body: {inline_string: "r:nocase"}}
    - match: {safe_regex: {regex: "/re/[0-9]+"}}
      direct_response: {status: 200, body: {inline_string: "r:regex"}}
    - match: {path_separated_prefix: "/psp"}
      direct_response: {status: 200, body: {inline_string: "r:psp"}}
    - match:
        prefix: "/hdr"
        headers: [{name: x-match, string_match: {exact: "yes"}}]
      direct_response: {status: 200, body: {inline_string: "r:hdr-exact"}}
    - match:
        prefix: "/hdr"
        headers: [{name: x-match, string_match: {prefix: "pre"}}]
      direct_response: {status: 200, body: {inline_string: "r:hdr-prefix"}}
    - match:
        prefix: "/hdr"
        headers: [{name: x-match, string_match: {safe_regex: {regex: "^[a-c]+$"}}}]
      direct_response: {status: 200, body: {inline_string: "r:hdr-regex"}}
    - match:
        prefix: "/hdr"
        headers: [{name: x-present, present_match: true}]
      direct_response: {status: 200, body: {inline_string: "r:hdr-present"}}
    - match:
        prefix: "/hdr"
        headers: [{name: x-range, range_match: {start: 10, end: 20}}]
      direct_response: {status: 200, body: {inline_string: "r:hdr-range"}}
    - match:
        prefix: "/hdr"
        headers: [{name: x-inv, string_match: {exact: "bad"}, invert_match: true}]
      direct_response: {status: 200, body: {inline_string: "r:hdr-inverted"}}
    - match:
        prefix: "/q"
        query_parameters: [{name: debug, string_match: {exact: "1"}}]
      direct_response: {status: 200, body: {inline_string: "r:query"}}
    - match:
        prefix: "/q"
        query_parameters: [{name: flag, present_match: true}]
      direct_response: {status: 200, body: {inline_string: "r:query-present"}}
    - match: {prefix: "/weighted"}
      route:
        weighted_clusters:
          clusters:
          - {name: a, weight: 50}
          - {name: b, weight: 50}
    - match: {prefix: "/byheader"}
      route: {cluster_header: x-cluster}
    - match: {prefix: "/rewrite/"}
      route: {cluster: a, prefix_rewrite: "/rewritten/"}
    - match: {prefix: "/regexrw/"}
      route:
        cluster: a
        regex_rewrite:
          pattern: {regex: "^/regexrw/([a-z]+)/([a-z]+)$"}
          substitution: "/swapped/\\2/\\1"
    - match: {prefix: "/hostlit"}
      route: {cluster: a, host_rewrite_literal: literal.example}
    - match: {prefix: "/autohost"}
      route: {cluster: dnsa, auto_host_rewrite: true}
    - match: {prefix: "/direct"}
      direct_response: {status: 418, body: {inline_string: "teapot"}}
    - match: {prefix: "/redir-https"}
      redirect: {https_redirect: true}
    - match: {prefix: "/redir-path"}
      redirect: {path_redirect: "/new/path"}
    - match: {prefix: "/hdrs"}
      request_headers_to_add:
      - header: {key: x-route, value: "%DOWNSTREAM_REMOTE_ADDRESS%"}
      - header: {key: x-copy, value: "%REQ(x-source)%"}
      request_headers_to_remove: [x-remove-me]
      response_headers_to_add:
      - header: {key: x-route-resp, value: "route"}
      response_headers_to_remove: [x-upstream]
      route: {cluster: a}
    - match: {prefix: "/nohealthy"}
      route: {cluster: empty}
    - match: {prefix: "/refused"}
      route: {cluster: refused}
    - match: {prefix: "/slow"}
      route: {cluster: a, timeout: 0.5s}
`

func TestRouting(t *testing.T) {
	t.Parallel()
	a := startUpstream(t, "a", nil)
	b := startUpstream(t, "b", nil)
	dns := startDNS(t)
	dns.Set("auto.test", "127.0.0.1")
	l := startLegate(t, bootstrapYAML([]string{listenerYAML("http", routingRoutes, "")}, []string{
		testutil.StaticClusterYAML("a", "", a.Addr),
		testutil.StaticClusterYAML("b", "", b.Addr),
		dnsCluster("dnsa", dns, "", "auto.test", a.Port),
		dnsCluster("empty", dns, "", "nothing.test", 80),
		testutil.StaticClusterYAML("refused", "", "127.0.0.1:"+itoa(closedPort(t))),
	}), nil)

	get := func(t *testing.T, host, path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req := mustReq(t, "GET", l.URL("http", path), nil)
		if host != "" {
			req.Host = host
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		return do(t, defaultClient, req)
	}

	t.Run("match", func(t *testing.T) {
		for _, tc := range []struct {
			name, host, path string
			hdr              []string
			status           int
			body             string
		}{
			{"exact domain", "exact.test", "/", nil, 200, "vh:exact"},
			{"exact domain other port", "exact.test:99", "/exact-path", nil, 200, "r:path"},
			{"suffix domain", "a.b.suffix.test", "/", nil, 200, "vh:suffix"},
			{"prefix domain", "prefix.anything", "/", nil, 200, "vh:prefix"},
			{"domain with port", "port.test:8080", "/", nil, 200, "vh:port"},
			{"domain case-insensitive", "EXACT.test", "/", nil, 200, "vh:exact"},
			{"wildcard domain", "other.test", "/exact-path", nil, 200, "r:path"},
			{"path", "", "/exact-path", nil, 200, "r:path"},
			{"path is exact", "", "/exact-path/more", nil, 404, ""},
			{"path case sensitive", "", "/EXACT-PATH", nil, 404, ""},
			{"prefix case insensitive", "", "/casefree/x", nil, 200, "r:nocase"},
			{"safe_regex", "", "/re/123", nil, 200, "r:regex"},
			{"safe_regex full match", "", "/re/123x", nil, 404, ""},
			{"path_separated_prefix", "", "/psp", nil, 200, "r:psp"},
			{"path_separated_prefix segment", "", "/psp/x", nil, 200, "r:psp"},
			{"path_separated_prefix not a segment", "", "/pspx", nil, 404, ""},
			{"header exact", "", "/hdr", []string{"x-match", "yes"}, 200, "r:hdr-exact"},
			{"header prefix", "", "/hdr", []string{"x-match", "prefix-ok"}, 200, "r:hdr-prefix"},
			{"header regex", "", "/hdr", []string{"x-match", "abcab"}, 200, "r:hdr-regex"},
			{"header present", "", "/hdr", []string{"x-present", ""}, 200, "r:hdr-present"},
			{"header range", "", "/hdr", []string{"x-range", "15", "x-inv", "bad"}, 200, "r:hdr-range"},
			{"header range end exclusive", "", "/hdr", []string{"x-range", "20", "x-inv", "bad"}, 404, ""},
			{"header inverted", "", "/hdr", []string{"x-inv", "good"}, 200, "r:hdr-inverted"},
			// A missing header matches nothing, inverted or not (Envoy).
			{"header inverted missing", "", "/hdr", nil, 404, ""},
			{"header inverted no match", "", "/hdr", []string{"x-inv", "bad"}, 404, ""},
			{"query exact", "", "/q?debug=1", nil, 200, "r:query"},
			{"query exact mismatch", "", "/q?debug=2", nil, 404, ""},
			{"query present", "", "/q?x=1&flag", nil, 200, "r:query-present"},
			{"direct response", "", "/direct", nil, 418, "teapot"},
			{"no route", "", "/nothing-matches", nil, 404, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := get(t, tc.host, tc.path, tc.hdr...)
				if resp.StatusCode != tc.status || body != tc.body {
					t.Errorf("%s %s → %d %q, want %d %q", tc.host, tc.path, resp.StatusCode, body, tc.status, tc.body)
				}
			})
		}
	})

	t.Run("weighted clusters", func(t *testing.T) {
		counts := map[string]int{}
		for i := 0; i < 200; i++ {
			_, body := get(t, "", "/weighted")
			counts[decodeEcho(t, body).Upstream]++
		}
		// 50/50: each side gets far more than 20% unless weights are ignored.
		if counts["a"] < 40 || counts["b"] < 40 {
			t.Errorf("weighted split %v, want roughly even", counts)
		}
	})

	t.Run("cluster_header", func(t *testing.T) {
		for _, want := range []string{"a", "b"} {
			_, body := get(t, "", "/byheader", "x-cluster", want)
			if got := decodeEcho(t, body).Upstream; got != want {
				t.Errorf("x-cluster %s → upstream %s", want, got)
			}
		}
		if resp, _ := get(t, "", "/byheader", "x-cluster", "nope"); resp.StatusCode != 503 {
			t.Errorf("unknown cluster → %d, want 503", resp.StatusCode)
		}
	})

	t.Run("rewrites", func(t *testing.T) {
		for _, tc := range []struct {
			path, wantPath, wantHost string
		}{
			{"/rewrite/x?y=1", "/rewritten/x?y=1", ""},
			{"/regexrw/one/two", "/swapped/two/one", ""},
			{"/hostlit/p", "/hostlit/p", "literal.example"},
			{"/autohost/p", "/autohost/p", "auto.test"},
		} {
			resp, body := get(t, "orig.test", tc.path)
			if resp.StatusCode != 200 {
				t.Errorf("%s → %d %s", tc.path, resp.StatusCode, body)
				continue
			}
			e := decodeEcho(t, body)
			if e.Path != tc.wantPath {
				t.Errorf("%s: upstream path %q, want %q", tc.path, e.Path, tc.wantPath)
			}
			wantHost := tc.wantHost
			if wantHost == "" {
				wantHost = "orig.test"
			}
			if e.Host != wantHost {
				t.Errorf("%s: upstream host %q, want %q", tc.path, e.Host, wantHost)
			}
			if tc.wantHost != "" && e.Header("x-forwarded-host") != "" && e.Header("x-forwarded-host") != "orig.test" {
				t.Errorf("%s: x-forwarded-host %q", tc.path, e.Header("x-forwarded-host"))
			}
		}
	})

	t.Run("redirects", func(t *testing.T) {
		for _, tc := range []struct{ path, location string }{
			{"/redir-https/x?q=1", "https://redir.test/redir-https/x?q=1"},
			// path_redirect keeps the query unless strip_query.
			{"/redir-path/x?q=1", "http://redir.test/new/path?q=1"},
		} {
			resp, _ := get(t, "redir.test", tc.path)
			if resp.StatusCode != 301 || resp.Header.Get("location") != tc.location {
				t.Errorf("%s → %d location %q, want 301 %q", tc.path, resp.StatusCode, resp.Header.Get("location"), tc.location)
			}
		}
	})

	t.Run("header manipulation", func(t *testing.T) {
		resp, body := get(t, "", "/hdrs", "x-source", "copied", "x-remove-me", "1", "x-rc-remove", "1", "x-vh-remove", "1",
			"x-echo-header", "x-rc-strip=1", "x-echo-header", "x-vh-strip=1")
		e := decodeEcho(t, body)
		checks := map[string]string{"x-rc": "rc", "x-vh": "vh", "x-copy": "copied"}
		for k, v := range checks {
			if got := e.Header(k); got != v {
				t.Errorf("upstream %s = %q, want %q", k, got, v)
			}
		}
		if got := e.Header("x-route"); !regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(got) {
			t.Errorf("x-route (%%DOWNSTREAM_REMOTE_ADDRESS%%) = %q", got)
		}
		for _, h := range []string{"x-remove-me", "x-rc-remove", "x-vh-remove"} {
			if e.Has(h) {
				t.Errorf("%s reached the upstream", h)
			}
		}
		for k, v := range map[string]string{"x-rc-resp": "rc", "x-vh-resp": "vh", "x-route-resp": "route"} {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("response %s = %q, want %q", k, got, v)
			}
		}
		for _, h := range []string{"x-upstream", "x-rc-strip", "x-vh-strip"} {
			if resp.Header.Get(h) != "" {
				t.Errorf("response_headers_to_remove %s ignored", h)
			}
		}
	})

	t.Run("local replies", func(t *testing.T) {
		for _, tc := range []struct {
			path   string
			hdr    []string
			status int
			body   string // prefix
		}{
			{"/nothing-matches", nil, 404, ""},
			{"/nohealthy", nil, 503, "no healthy upstream"},
			{"/refused", nil, 503, "upstream connect error or disconnect/reset before headers. reset reason: "},
			{"/slow", []string{"x-echo-sleep", "5s"}, 504, "upstream request timeout"},
		} {
			resp, body := get(t, "", tc.path, tc.hdr...)
			if resp.StatusCode != tc.status || !strings.HasPrefix(body, tc.body) || (tc.body == "" && body != "") {
				t.Errorf("%s → %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.status, tc.body)
			}
			if tc.status == 404 && resp.Header.Get("content-length") != "0" {
				t.Errorf("404 content-length %q", resp.Header.Get("content-length"))
			}
		}
		resp, _ := get(t, "", "/hdrs")
		if resp.Header.Get("x-envoy-upstream-service-time") == "" {
			t.Error("proxied response lacks x-envoy-upstream-service-time")
		}
	})
}
