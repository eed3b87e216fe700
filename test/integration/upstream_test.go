package integration

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	"github.com/legate-proxy/legate/internal/testutil/loopback"
)

func TestUpstreams(t *testing.T) {
	t.Parallel()
	dns := startDNS(t)
	pki := newPKI(t)

	// Three replicas sharing one port on 127.0.0.2-4, found by DNS.
	var replicas []*Upstream
	for i, ln := range sameLoopbackPort(t, 3) {
		replicas = append(replicas, serveUpstream(t, "svc-"+itoa(i+2), ln, nil))
	}
	dns.Set("svc.test", "127.0.0.2", "127.0.0.3", "127.0.0.4")
	svcPort := replicas[0].Port

	lbHosts := []*Upstream{startUpstream(t, "lb1", nil), startUpstream(t, "lb2", nil), startUpstream(t, "lb3", nil)}
	lbAddrs := []string{lbHosts[0].Addr, lbHosts[1].Addr, lbHosts[2].Addr}
	good := startUpstream(t, "good", nil)
	bad := startUpstream(t, "bad", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
	}))
	var sleepyHits atomic.Int64
	sleepy := startUpstream(t, "sleepy", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every odd attempt hangs (until legate gives up on it).
		if sleepyHits.Add(1)%2 == 1 {
			<-r.Context().Done()
			return
		}
		echoHandler("sleepy")(w, r)
	}))
	h2up := startH2CUpstream(t, "h2", nil)
	var sni atomic.Value
	tlsUp := startTLSUpstream(t, "tls", pki.Issue(t, "upstream.test", false, "upstream.test").TLS, &sni)
	reuse := startUpstream(t, "reuse", nil)
	dead := "127.0.0.1:" + itoa(closedPort(t))
	// Accepts TCP and never answers the TLS handshake: a TLS cluster's
	// connect (TCP + handshake) to it always times out.
	mute := loopback.Serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })

	routes := `route_config:
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: {prefix: "/rr"}
      route: {cluster: rr}
    - match: {prefix: "/lr"}
      route: {cluster: lr}
    - match: {prefix: "/random"}
      route: {cluster: random}
    - match: {prefix: "/retry5xx"}
      route:
        cluster: flaky
        retry_policy:
          retry_on: 5xx
          num_retries: 2
          retry_host_predicate:
          - name: envoy.retry_host_predicates.previous_hosts
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
          host_selection_retry_max_attempts: 5
    - match: {prefix: "/retryconnect"}
      route:
        cluster: halfdead
        retry_policy:
          retry_on: connect-failure
          num_retries: 2
          retry_host_predicate:
          - name: envoy.retry_host_predicates.previous_hosts
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
          host_selection_retry_max_attempts: 5
    - match: {prefix: "/pertry"}
      route:
        cluster: sleepy
        timeout: 10s
        retry_policy: {retry_on: 5xx, num_retries: 1, per_try_timeout: 0.3s}
    - match: {prefix: "/h2explicit"}
      route: {cluster: h2explicit}
    - match: {prefix: "/h2legacy"}
      route: {cluster: h2legacy}
    - match: {prefix: "/tls"}
      route: {cluster: tls}
    - match: {prefix: "/reuse"}
      route: {cluster: reuse}
    - match: {prefix: "/mute"}
      route: {cluster: mute}
`
	l := startLegate(t, bootstrapYAML([]string{listenerYAML("http", routes, "")}, []string{
		dnsCluster("rr", dns, "lb_policy: ROUND_ROBIN\ndns_refresh_rate: 0.2s", "svc.test", svcPort),
		testutil.StaticClusterYAML("lr", "lb_policy: LEAST_REQUEST", lbAddrs...),
		testutil.StaticClusterYAML("random", "lb_policy: RANDOM", lbAddrs...),
		testutil.StaticClusterYAML("flaky", "", good.Addr, bad.Addr),
		testutil.StaticClusterYAML("halfdead", "", dead, good.Addr),
		testutil.StaticClusterYAML("sleepy", "", sleepy.Addr),
		testutil.StaticClusterYAML("h2explicit", "typed_extension_protocol_options:\n  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"+
			"    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"+
			"    explicit_http_config: {http2_protocol_options: {}}", h2up.Addr),
		testutil.StaticClusterYAML("h2legacy", "http2_protocol_options: {}", h2up.Addr),
		testutil.StaticClusterYAML("tls", "transport_socket:\n  name: envoy.transport_sockets.tls\n  typed_config:\n"+
			"    \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n"+
			"    sni: upstream.test\n    common_tls_context:\n      validation_context:\n        trusted_ca:\n          inline_string: "+
			inlineYAML(pki.CAPEM, "            "), tlsUp.Addr),
		testutil.StaticClusterYAML("reuse", "", reuse.Addr),
		testutil.StaticClusterYAML("mute", "transport_socket:\n  name: envoy.transport_sockets.tls\n  typed_config:\n"+
			"    \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", mute),
	}), nil)

	t.Run("connect timeout is a connection failure", func(t *testing.T) {
		// Envoy: 503 with flag UF, not the 504 of a response timeout.
		resp, body := httpGet(t, l.URL("http", "/mute"))
		const want = "upstream connect error or disconnect/reset before headers. reset reason: connection timeout"
		if resp.StatusCode != 503 || body != want {
			t.Errorf("got %d %q, want 503 %q", resp.StatusCode, body, want)
		}
		if n := l.Counter(t, "cluster.mute.upstream_cx_connect_timeout"); n != 1 {
			t.Errorf("upstream_cx_connect_timeout = %d", n)
		}
		if n := l.Counter(t, "cluster.mute.upstream_rq_timeout"); n > 0 {
			t.Errorf("upstream_rq_timeout = %d for a connect timeout", n)
		}
	})

	hits := func(t *testing.T, path string, n int) map[string]int {
		t.Helper()
		m := map[string]int{}
		for i := 0; i < n; i++ {
			resp, body := httpGet(t, l.URL("http", path))
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
			}
			m[decodeEcho(t, body).Upstream]++
		}
		return m
	}

	t.Run("strict_dns round robin and re-resolution", func(t *testing.T) {
		m := hits(t, "/rr", 30)
		for _, want := range []string{"svc-2", "svc-3", "svc-4"} {
			if m[want] == 0 {
				t.Errorf("round robin over 3 DNS answers: %v, %s never hit", m, want)
			}
		}
		if n := l.Counter(t, "cluster.rr.membership_total"); n != 3 {
			t.Errorf("cluster.rr.membership_total = %d, want 3", n)
		}
		dns.Set("svc.test", "127.0.0.3")
		eventually(t, 15*time.Second, "traffic to follow the DNS change", func() bool {
			m := hits(t, "/rr", 6)
			return m["svc-3"] == 6
		})
	})

	for _, policy := range []string{"lr", "random"} {
		t.Run("spread "+policy, func(t *testing.T) {
			m := hits(t, "/"+policy, 90)
			for _, u := range lbHosts {
				if m[u.Name] < 5 {
					t.Errorf("%s spread %v: %s got too few", policy, m, u.Name)
				}
			}
		})
	}

	t.Run("retry 5xx with previous_hosts", func(t *testing.T) {
		m := hits(t, "/retry5xx", 20) // hits fails on any non-200
		if m["good"] != 20 {
			t.Errorf("answers %v", m)
		}
		if bad.Requests.Load() == 0 {
			t.Error("the failing host was never tried; the test proves nothing")
		}
		if n := l.Counter(t, "cluster.flaky.upstream_rq_retry"); n <= 0 {
			t.Errorf("cluster.flaky.upstream_rq_retry = %d, want > 0", n)
		}
	})

	t.Run("retry connect-failure", func(t *testing.T) {
		m := hits(t, "/retryconnect", 20)
		if m["good"] != 20 {
			t.Errorf("answers %v", m)
		}
		if n := l.Counter(t, "cluster.halfdead.upstream_cx_connect_fail"); n <= 0 {
			t.Errorf("cluster.halfdead.upstream_cx_connect_fail = %d, want > 0", n)
		}
	})

	t.Run("per_try_timeout", func(t *testing.T) {
		m := hits(t, "/pertry", 3)
		if m["sleepy"] != 3 {
			t.Errorf("answers %v", m)
		}
		if n := l.Counter(t, "cluster.sleepy.upstream_rq_per_try_timeout"); n < 3 {
			t.Errorf("cluster.sleepy.upstream_rq_per_try_timeout = %d, want >= 3", n)
		}
	})

	for _, c := range []string{"h2explicit", "h2legacy"} {
		t.Run("http2 upstream "+c, func(t *testing.T) {
			_, body := httpGet(t, l.URL("http", "/"+c))
			if e := decodeEcho(t, body); e.Proto != "HTTP/2.0" {
				t.Errorf("upstream saw %s, want HTTP/2.0", e.Proto)
			}
		})
	}

	t.Run("upstream TLS with SNI", func(t *testing.T) {
		resp, body := httpGet(t, l.URL("http", "/tls"))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if e := decodeEcho(t, body); e.SNI != "upstream.test" {
			t.Errorf("upstream saw SNI %q, want upstream.test", e.SNI)
		}
		if got, _ := sni.Load().(string); got != "upstream.test" {
			t.Errorf("ClientHello SNI %q", got)
		}
	})

	t.Run("upstream keep-alive reuse", func(t *testing.T) {
		hits(t, "/reuse", 20)
		if n := reuse.Conns.Load(); n != 1 {
			t.Errorf("20 sequential requests used %d upstream connections, want 1", n)
		}
	})
}
