package integration

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/legate-proxy/legate/internal/testutil"
)

// TestHashPolicyStickiness: RING_HASH and MAGLEV clusters with the route's
// hash_policy send the same key to the same host, spread different keys,
// and a cookie policy with a ttl sets the cookie it then follows.
func TestHashPolicyStickiness(t *testing.T) {
	var addrs []string
	for i := range 3 {
		addrs = append(addrs, startUpstream(t, "u"+strconv.Itoa(i), nil).Addr)
	}
	routes := `route_config:
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: {prefix: "/ring/header"}
      route: {cluster: ring, hash_policy: [{header: {header_name: x-user}}]}
    - match: {prefix: "/maglev/header"}
      route: {cluster: maglev, hash_policy: [{header: {header_name: x-user}}]}
    - match: {prefix: "/ring/cookie"}
      route:
        cluster: ring
        hash_policy: [{cookie: {name: sticky, ttl: 60s, path: /}}]
    - match: {prefix: "/maglev/query"}
      route:
        cluster: maglev
        hash_policy: [{query_parameter: {name: u}, terminal: true}, {connection_properties: {source_ip: true}}]`
	l := startLegate(t, bootstrapYAML(
		[]string{listenerYAML("http", routes, "")},
		[]string{
			testutil.StaticClusterYAML("ring", "lb_policy: RING_HASH\nring_hash_lb_config: {minimum_ring_size: 512}", addrs...),
			testutil.StaticClusterYAML("maglev", "lb_policy: MAGLEV", addrs...),
		}), nil)
	upstreamOf := func(path string, hdr ...string) (string, *http.Response) {
		t.Helper()
		req := mustReq(t, "GET", l.URL("http", path), nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, body := do(t, defaultClient, req)
		return decodeEcho(t, body).Upstream, resp
	}
	for _, prefix := range []string{"/ring/header", "/maglev/header"} {
		seen := map[string]bool{}
		for u := range 30 {
			user := "user-" + strconv.Itoa(u)
			first, _ := upstreamOf(prefix, "x-user", user)
			for range 3 {
				if got, _ := upstreamOf(prefix, "x-user", user); got != first {
					t.Fatalf("%s: %s went to %s, then %s", prefix, user, first, got)
				}
			}
			seen[first] = true
		}
		if len(seen) != 3 {
			t.Errorf("%s: 30 users reached %d of 3 hosts", prefix, len(seen))
		}
	}

	// The generated cookie, then stickiness by it.
	first, resp := upstreamOf("/ring/cookie")
	sc := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(sc, `sticky="`) || !strings.Contains(sc, "Max-Age=60") || !strings.Contains(sc, "Path=/") {
		t.Fatalf("Set-Cookie = %q", sc)
	}
	cookie := strings.SplitN(sc, ";", 2)[0]
	for range 5 {
		got, resp := upstreamOf("/ring/cookie", "cookie", cookie)
		if got != first || resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("with the cookie: %s (first %s), Set-Cookie %q", got, first, resp.Header.Get("Set-Cookie"))
		}
	}

	// query_parameter is terminal; without it the source IP decides (one
	// client address here, so one host).
	byIP, _ := upstreamOf("/maglev/query")
	for range 3 {
		if got, _ := upstreamOf("/maglev/query"); got != byIP {
			t.Fatalf("source_ip hash moved from %s to %s", byIP, got)
		}
	}
	seen := map[string]bool{}
	for u := range 20 {
		got, _ := upstreamOf("/maglev/query?u=" + strconv.Itoa(u))
		seen[got] = true
	}
	if len(seen) < 2 {
		t.Errorf("query_parameter hash: 20 values reached %d hosts", len(seen))
	}
}
