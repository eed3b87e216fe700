package cluster

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	// Registered for the typed configs the YAML fixtures use.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/network/dns_resolver/cares/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/legate-proxy/legate/internal/stats"
)

var update = flag.Bool("update", false, "rewrite golden files")

func parseClusters(t *testing.T, y string) []*clusterv3.Cluster {
	t.Helper()
	var raw []any
	if err := yaml.Unmarshal([]byte(y), &raw); err != nil {
		t.Fatal(err)
	}
	var out []*clusterv3.Cluster
	for _, r := range raw {
		j, err := yaml.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(j)
		if err != nil {
			t.Fatal(err)
		}
		c := &clusterv3.Cluster{}
		if err := protojson.Unmarshal(js, c); err != nil {
			t.Fatalf("%v\n%s", err, js)
		}
		out = append(out, c)
	}
	return out
}

// fakePool records Close; the real pool lives in connpool.
type fakePool struct {
	host   *Host
	closed atomic.Bool
}

func (p *fakePool) Close() error {
	if p.closed.Swap(true) {
		panic("pool closed twice")
	}
	return nil
}

type poolRecorder struct {
	mu    sync.Mutex
	pools []*fakePool
}

func (r *poolRecorder) newPool(_ *Cluster, h *Host) HostPool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &fakePool{host: h}
	r.pools = append(r.pools, p)
	return p
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newManager(t *testing.T, y string, opts Options) *Manager {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	m, err := NewManager(parseClusters(t, y), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func waitInit(t *testing.T, m *Manager) {
	t.Helper()
	select {
	case <-m.Initialized():
	case <-time.After(15 * time.Second):
		t.Fatal("manager never initialized")
	}
}

func counter(st *stats.Store, name string) uint64 { return st.Counter(name).Value() }

func TestStaticWeightsAndPools(t *testing.T) {
	var rec poolRecorder
	m := newManager(t, `
- name: web
  connect_timeout: 0.25s
  type: STATIC
  load_assignment:
    cluster_name: web
    endpoints:
    - lb_endpoints:
      - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8001}}}
        load_balancing_weight: 1
      - endpoint: {address: {socket_address: {address: "::1", port_value: 8002}}}
        load_balancing_weight: 3
`, Options{NewPool: rec.newPool})
	select {
	case <-m.Initialized():
	default:
		t.Fatal("static-only manager not initialized at construction")
	}
	c := m.Get("web")
	if c == nil || m.Get("nope") != nil {
		t.Fatal("Get")
	}
	if got := hostAddrs(c); !slices.Equal(got, []string{"127.0.0.1:8001", "[::1]:8002"}) {
		t.Fatalf("hosts = %v", got)
	}
	if c.Settings.ConnectTimeout != 250*time.Millisecond {
		t.Errorf("connect timeout = %v", c.Settings.ConnectTimeout)
	}
	n := map[string]int{}
	for range 4000 {
		n[c.Pick(nil).Address]++
	}
	if n["127.0.0.1:8001"] != 1000 || n["[::1]:8002"] != 3000 {
		t.Fatalf("weighted round robin 1:3 over 4000 picks: %v", n)
	}
	if len(rec.pools) != 2 || rec.pools[0].host.Pool() != HostPool(rec.pools[0]) {
		t.Fatalf("pools = %d, want one per host", len(rec.pools))
	}
	m.Close()
	for _, p := range rec.pools {
		if !p.closed.Load() {
			t.Fatalf("pool of %s not closed by Manager.Close", p.host.Address)
		}
	}
}

func TestPickExclude(t *testing.T) {
	m := newManager(t, `
- name: c
  type: STATIC
  load_assignment:
    endpoints:
    - lb_endpoints:
      - endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}
      - endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 80}}}
      - endpoint: {address: {socket_address: {address: 10.0.0.3, port_value: 80}}}
`, Options{})
	c := m.Get("c")
	first := c.Hosts()[0]
	exclude := func(h *Host) bool { return h == first }
	for range 300 {
		if c.Pick(&PickContext{Exclude: exclude, MaxAttempts: 3}) == first {
			t.Fatal("excluded host picked although others were available")
		}
	}
	// Without retries the predicate cannot steer round robin away.
	seen := false
	for range 3 {
		seen = seen || c.Pick(&PickContext{Exclude: exclude}) == first
	}
	if !seen {
		t.Fatal("MaxAttempts 0 should make one selection only")
	}
	// Everything excluded: the last pick is still returned.
	if c.Pick(&PickContext{Exclude: func(*Host) bool { return true }, MaxAttempts: 2}) == nil {
		t.Fatal("all excluded: want a host, got nil")
	}
	pc := &PickContext{Exclude: exclude, MaxAttempts: 3}
	if a := testing.AllocsPerRun(100, func() { c.Pick(pc) }); a != 0 {
		t.Fatalf("Pick allocates %v times", a)
	}
}

func TestSettings(t *testing.T) {
	m := newManager(t, `
- name: defaults
  load_assignment: {endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]}
- name: legacy_h2
  http2_protocol_options: {max_concurrent_streams: 100}
  per_connection_buffer_limit_bytes: 32768
  lb_policy: LEAST_REQUEST
  least_request_lb_config: {choice_count: 3}
- name: typed_h2
  lb_policy: RANDOM
  typed_extension_protocol_options:
    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
      common_http_protocol_options: {idle_timeout: 30s}
      explicit_http_config:
        http2_protocol_options: {initial_stream_window_size: 65536}
- name: hc
  load_assignment: {endpoints: [{lb_endpoints: [
    {endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}, health_check_config: {port_value: 8080, hostname: probe.example}}},
    {endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 80}}, health_check_config: {address: {socket_address: {address: 10.9.9.9, port_value: 9}}}}},
    {endpoint: {address: {socket_address: {address: 10.0.0.3, port_value: 80}}}}]}]}
- name: bound
  upstream_bind_config:
    source_address: {address: 127.0.0.2, port_value: 0}
    freebind: true
    socket_options: [{level: 1, name: 8, int_value: 65536, state: STATE_PREBIND}, {level: 6, name: 13, buf_value: "AAE="}]
- name: typed_h1
  typed_extension_protocol_options:
    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
      common_http_protocol_options: {idle_timeout: 0s}
      explicit_http_config: {http_protocol_options: {}}
`, Options{})
	d := m.Get("defaults")
	if d.Type != Static || d.LB.Policy != 0 || d.Settings.ConnectTimeout != 5*time.Second ||
		d.Settings.Protocol != HTTP1 || d.Settings.IdleTimeout != time.Hour ||
		d.Settings.PerConnectionBufferLimit != 1<<20 || d.Settings.TLS != nil || d.ObservabilityName != "defaults" {
		t.Errorf("defaults: %+v %+v", d.Settings, d.LB)
	}
	l := m.Get("legacy_h2").Settings
	if l.Protocol != HTTP2 || l.H2MaxConcurrentStreams != 100 || l.H2InitialStreamWindow != DefaultH2InitialStreamWindow ||
		l.PerConnectionBufferLimit != 32768 || m.Get("legacy_h2").LB.ChoiceCount != 3 {
		t.Errorf("legacy_h2: %+v %+v", l, m.Get("legacy_h2").LB)
	}
	ty := m.Get("typed_h2").Settings
	if ty.Protocol != HTTP2 || ty.IdleTimeout != 30*time.Second || ty.H2InitialStreamWindow != 65536 ||
		ty.H2MaxConcurrentStreams != DefaultH2MaxConcurrentStreams {
		t.Errorf("typed_h2: %+v", ty)
	}
	if h1 := m.Get("typed_h1").Settings; h1.Protocol != HTTP1 || h1.IdleTimeout != 0 {
		t.Errorf("typed_h1: %+v", h1)
	}
	b := m.Get("bound").Settings.Bind
	if b == nil || b.LocalAddr.String() != "127.0.0.2:0" || len(b.SocketOptions) != 3 ||
		!reflect.DeepEqual(b.SocketOptions[1], SocketOption{Level: 1, Name: 8, Int: 65536}) || string(b.SocketOptions[2].Buf) != "\x00\x01" {
		t.Errorf("bound: %+v", b)
	}
	hcHosts := m.Get("hc").Hosts()
	if got := hcHosts[0].HealthCheckAddress().String(); got != "10.0.0.1:8080" || hcHosts[0].HealthCheck.Hostname != "probe.example" {
		t.Errorf("health_check_config port: %s %+v", got, hcHosts[0].HealthCheck)
	}
	if got := hcHosts[1].HealthCheckAddress().String(); got != "10.9.9.9:9" {
		t.Errorf("health_check_config address: %s", got)
	}
	if got := hcHosts[2].HealthCheckAddress().String(); got != "10.0.0.3:80" {
		t.Errorf("no health_check_config: %s", got)
	}
	if got := m.Get("legacy_h2").Pick(nil); got != nil {
		t.Errorf("empty cluster picked %v", got)
	}
	var names []string
	for _, c := range m.Clusters() {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"bound", "defaults", "hc", "legacy_h2", "typed_h1", "typed_h2"}) {
		t.Errorf("Clusters() = %v", names)
	}
}

func TestConfigErrors(t *testing.T) {
	ep := `load_assignment: {endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: 80}}}}]}]}`
	tests := []struct {
		yaml, want string
	}{
		{`[{name: a}, {name: a}]`, `clusters[1].name: duplicate cluster name "a" (also clusters[0])`},
		{`[{name: a, connect_timeout: -1s}]`, `clusters[0]: connect_timeout: must be greater than 0, got -1s`},
		{`[{name: a, type: EDS}]`, `clusters[0]: eds_cluster_config.eds_config: is required for EDS clusters`},
		{`[{name: a, type: EDS, eds_cluster_config: {eds_config: {ads: {}}}}]`,
			`clusters[0]: eds_cluster_config.eds_config: EDS needs dynamic configuration, and the bootstrap has none`},
		{`[{name: a, type: EDS, eds_cluster_config: {eds_config: {ads: {}}}, ` + fmt.Sprintf(ep, "127.0.0.1") + `}]`,
			`clusters[0]: load_assignment: is not used by EDS clusters (endpoints come from eds_cluster_config)`},
		{`[{name: a, type: ORIGINAL_DST}]`, `clusters[0]: type: ORIGINAL_DST is not supported`},
		{`[{name: a, lb_policy: CLUSTER_PROVIDED}]`, `clusters[0]: lb_policy: CLUSTER_PROVIDED is not supported`},
		{`[{name: a, lb_policy: RING_HASH, maglev_lb_config: {}}]`, `clusters[0]: maglev_lb_config: is only valid with lb_policy MAGLEV`},
		{`[{name: a, lb_policy: MAGLEV, maglev_lb_config: {table_size: 1000}}]`, `clusters[0]: maglev_lb_config.table_size: must be a prime number, got 1000`},
		{`[{name: a, dns_refresh_rate: 0s}]`, `clusters[0]: dns_refresh_rate: must be greater than 0, got 0s`},
		{`[{name: a, least_request_lb_config: {choice_count: 1}}]`,
			`clusters[0]: least_request_lb_config.choice_count: must be at least 2, got 1`},
		{`[{name: a, ` + fmt.Sprintf(ep, "service1") + `}]`,
			`clusters[0]: load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "service1" is not an IP address (STATIC clusters need IP literals; use STRICT_DNS or LOGICAL_DNS for names)`},
		{`[{name: a, type: LOGICAL_DNS}]`,
			`clusters[0]: load_assignment: LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint`},
		{`[{name: a, typed_dns_resolver_config: {name: x, typed_config: {"@type": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig, resolvers: [{socket_address: {address: dns.example, port_value: 53}}]}}}]`,
			`clusters[0]: typed_dns_resolver_config.typed_config.resolvers[0]: address "dns.example" is not an IP address`},
		{`[{name: a, typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, auto_config: {http3_protocol_options: {}}}}}]`,
			`clusters[0]: typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].auto_config: HTTP/3 (http3_protocol_options, alternate_protocols_cache_options) is not supported`},
		{`[{name: a, typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, common_http_protocol_options: {max_headers_count: 200}}}}]`,
			`clusters[0]: typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].common_http_protocol_options.max_headers_count: is not supported on clusters`},
		{`[{name: a, upstream_bind_config: {source_address: {address: localhost, port_value: 0}}}]`,
			`clusters[0]: upstream_bind_config.source_address.address: must be an IP address, got "localhost"`},
		{`[{name: a, upstream_bind_config: {socket_options: [{level: 1, name: 8, int_value: 1, state: STATE_LISTENING}]}}]`,
			`clusters[0]: upstream_bind_config.socket_options[0].state: STATE_LISTENING does not apply to upstream sockets`},
		{`[{name: a, http2_protocol_options: {max_outbound_control_frames: 5}}]`,
			`clusters[0]: http2_protocol_options.max_outbound_control_frames: is not supported on clusters (downstream only)`},
		{`[{name: a, typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http2_protocol_options: {stream_error_on_invalid_http_messaging: true}}}}}]`,
			`clusters[0]: typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].explicit_http_config.http2_protocol_options.stream_error_on_invalid_http_messaging: is not supported on clusters (downstream only)`},
		{`[{name: a, transport_socket: {name: tls, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext}}}]`,
			`clusters[0]: transport_socket: envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext is not supported`},
	}
	for _, tt := range tests {
		_, err := NewManager(parseClusters(t, tt.yaml), Options{Logger: quietLogger()})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s:\n got %v\nwant %s", tt.yaml, err, tt.want)
		}
	}
}

func TestStatsNames(t *testing.T) {
	st := stats.NewStore()
	m := newManager(t, `
- name: plain
- name: aliased
  alt_stat_name: alias
  load_assignment: {endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]}
`, Options{Stats: st})
	a := m.Get("aliased")
	if a.ObservabilityName != "alias" {
		t.Fatalf("observability name %q", a.ObservabilityName)
	}
	a.Stats.RecordStatus(503)
	a.Stats.RecordStatus(503)
	a.Stats.RecordStatus(200)
	a.Stats.RecordStatus(42) // ignored
	a.Stats.UpstreamRqTotal.Inc()
	for name, want := range map[string]uint64{
		"cluster.alias.upstream_rq_503":   2,
		"cluster.alias.upstream_rq_5xx":   2,
		"cluster.alias.upstream_rq_200":   1,
		"cluster.alias.upstream_rq_2xx":   1,
		"cluster.alias.upstream_rq_total": 1,
		"cluster_manager.cluster_added":   2,
	} {
		if got := counter(st, name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	gauges := map[string]int64{}
	for _, g := range st.Gauges() {
		gauges[g.Name()] = g.Value()
	}
	for name, want := range map[string]int64{
		"cluster_manager.active_clusters":  2,
		"cluster.alias.membership_total":   1,
		"cluster.alias.membership_healthy": 1,
		"cluster.plain.membership_total":   0,
		"cluster.plain.upstream_cx_active": 0,
		"cluster.plain.upstream_rq_active": 0,
	} {
		if got, ok := gauges[name]; !ok || got != want {
			t.Errorf("gauge %s = %d (present %v), want %d", name, got, ok, want)
		}
	}
	var names []string
	for _, c := range st.Counters() {
		if n, ok := strings.CutPrefix(c.Name(), "cluster.plain."); ok {
			names = append(names, n)
		}
	}
	for _, h := range st.Histograms() {
		if n, ok := strings.CutPrefix(h.Name(), "cluster.plain."); ok {
			names = append(names, n)
		}
	}
	want := []string{
		"lb_healthy_panic", "membership_change", "update_attempt", "update_failure", "update_no_rebuild", "update_success",
		"upstream_cx_connect_fail", "upstream_cx_connect_timeout", "upstream_cx_destroy", "upstream_cx_destroy_local",
		"upstream_cx_destroy_remote", "upstream_cx_http1_total", "upstream_cx_http2_total", "upstream_cx_none_healthy", "upstream_cx_protocol_error",
		"upstream_cx_rx_bytes_total", "upstream_cx_total", "upstream_cx_tx_bytes_total",
		"upstream_rq_1xx", "upstream_rq_2xx", "upstream_rq_3xx", "upstream_rq_4xx", "upstream_rq_5xx",
		"upstream_rq_completed", "upstream_rq_pending_total", "upstream_rq_per_try_timeout", "upstream_rq_retry",
		"upstream_rq_retry_limit_exceeded", "upstream_rq_retry_success", "upstream_rq_rx_reset", "upstream_rq_timeout",
		"upstream_rq_total", "upstream_rq_tx_reset",
		"upstream_cx_connect_ms", "upstream_cx_length_ms", "upstream_rq_time",
	}
	if !slices.Equal(names, want) {
		t.Errorf("cluster.plain stats:\n got %q\nwant %q", names, want)
	}
}

const dnsClusterYAML = `
- name: svc
  type: %s
  dns_refresh_rate: %s
  respect_dns_ttl: %v
  dns_lookup_family: %s
  typed_dns_resolver_config:
    name: envoy.network.dns_resolver.cares
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig
      resolvers: [{socket_address: {address: 127.0.0.1, port_value: %d}}]
  load_assignment:
    cluster_name: svc
    endpoints:
    - lb_endpoints:
      - endpoint: {address: {socket_address: {address: service1, port_value: 8080}}}
        load_balancing_weight: 2
`

func TestStrictDNS(t *testing.T) {
	d := newTestDNS(t)
	d.set("service1", "127.0.0.11", "127.0.0.12", "127.0.0.13")
	var rec poolRecorder
	st := stats.NewStore()
	m := newManager(t, fmt.Sprintf(dnsClusterYAML, "STRICT_DNS", "0.05s", false, "V4_ONLY", d.addr.Port()),
		Options{Stats: st, NewPool: rec.newPool})
	select {
	case <-m.Initialized():
		t.Fatal("initialized before Start")
	default:
	}
	m.Start(context.Background())
	waitInit(t, m)
	c := m.Get("svc")
	if got := hostAddrs(c); !slices.Equal(got, []string{"127.0.0.11:8080", "127.0.0.12:8080", "127.0.0.13:8080"}) {
		t.Fatalf("hosts = %v", got)
	}
	byAddr := map[string]*Host{}
	for _, h := range c.Hosts() {
		byAddr[h.Address] = h
		if h.Hostname != "service1" || h.Weight != 2 || h.Pool() == nil {
			t.Fatalf("host %s: hostname %q weight %d pool %v", h.Address, h.Hostname, h.Weight, h.Pool())
		}
	}

	// The answer changes: hosts follow; survivors keep their identity.
	d.set("service1", "127.0.0.12", "127.0.0.13", "127.0.0.14")
	testutil.WaitFor(t, "hosts to follow DNS", func() bool {
		return slices.Equal(hostAddrs(c), []string{"127.0.0.12:8080", "127.0.0.13:8080", "127.0.0.14:8080"})
	})
	for _, h := range c.Hosts() {
		if old := byAddr[h.Address]; old != nil && old != h {
			t.Errorf("host %s was replaced although its address stayed", h.Address)
		}
	}
	if !rec.pools[0].closed.Load() || rec.pools[0].host.Address != "127.0.0.11:8080" {
		t.Errorf("removed host's pool not closed")
	}
	for _, p := range rec.pools[1:] {
		if p.closed.Load() {
			t.Errorf("pool of live host %s closed", p.host.Address)
		}
	}

	// The server fails: the last good hosts stay.
	failures := counter(st, "cluster.svc.update_failure")
	d.setServfail(true)
	testutil.WaitFor(t, "two failed updates", func() bool { return counter(st, "cluster.svc.update_failure") >= failures+2 })
	if got := hostAddrs(c); len(got) != 3 {
		t.Fatalf("hosts after DNS failure = %v, want the last good 3", got)
	}

	for name, min := range map[string]uint64{
		"cluster.svc.update_attempt":    4,
		"cluster.svc.update_success":    2,
		"cluster.svc.membership_change": 2,
	} {
		if got := counter(st, name); got < min {
			t.Errorf("%s = %d, want ≥ %d", name, got, min)
		}
	}
	if got := st.Gauge("cluster.svc.membership_total", stats.NeverImport).Value(); got != 3 {
		t.Errorf("membership_total = %d", got)
	}
	m.Close()
	for _, p := range rec.pools {
		if !p.closed.Load() {
			t.Errorf("pool of %s open after Close", p.host.Address)
		}
	}
}

func TestStrictDNSRespectsTTL(t *testing.T) {
	d := newTestDNS(t)
	d.setTTL(1)
	d.set("service1", "127.0.0.11")
	// With a one-hour refresh rate only the TTL can trigger a re-resolve.
	m := newManager(t, fmt.Sprintf(dnsClusterYAML, "STRICT_DNS", "3600s", true, "V4_ONLY", d.addr.Port()), Options{})
	m.Start(context.Background())
	waitInit(t, m)
	c := m.Get("svc")
	d.set("service1", "127.0.0.21", "127.0.0.22")
	testutil.WaitFor(t, "TTL-driven refresh", func() bool {
		return slices.Equal(hostAddrs(c), []string{"127.0.0.21:8080", "127.0.0.22:8080"})
	})
}

func TestStrictDNSFamilies(t *testing.T) {
	d := newTestDNS(t)
	d.set("service1", "127.0.0.11", "::1")
	for _, tc := range []struct{ family, want string }{
		{"V4_ONLY", "127.0.0.11:8080"},
		{"V6_ONLY", "[::1]:8080"},
		{"AUTO", "[::1]:8080"},
		{"V4_PREFERRED", "127.0.0.11:8080"},
		{"ALL", "127.0.0.11:8080 [::1]:8080"},
	} {
		m := newManager(t, fmt.Sprintf(dnsClusterYAML, "STRICT_DNS", "3600s", false, tc.family, d.addr.Port()), Options{})
		m.Start(context.Background())
		waitInit(t, m)
		if got := strings.Join(hostAddrs(m.Get("svc")), " "); got != tc.want {
			t.Errorf("%s: hosts %q, want %q", tc.family, got, tc.want)
		}
		m.Close()
	}
}

func TestFirstResolutionFailureStillInitializes(t *testing.T) {
	d := newTestDNS(t)
	d.setServfail(true)
	st := stats.NewStore()
	m := newManager(t, fmt.Sprintf(dnsClusterYAML, "STRICT_DNS", "3600s", false, "AUTO", d.addr.Port()), Options{Stats: st})
	m.Start(context.Background())
	waitInit(t, m)
	if h := m.Get("svc").Pick(nil); h != nil {
		t.Fatalf("picked %v from a cluster with no hosts", h.Address)
	}
	if got := counter(st, "cluster.svc.update_failure"); got != 1 {
		t.Fatalf("update_failure = %d", got)
	}
}

func TestLogicalDNS(t *testing.T) {
	d := newTestDNS(t)
	d.set("service1", "127.0.0.11", "127.0.0.12")
	var rec poolRecorder
	m := newManager(t, fmt.Sprintf(dnsClusterYAML, "LOGICAL_DNS", "0.05s", false, "V4_ONLY", d.addr.Port()),
		Options{NewPool: rec.newPool})
	m.Start(context.Background())
	waitInit(t, m)
	c := m.Get("svc")
	if got := hostAddrs(c); !slices.Equal(got, []string{"127.0.0.11:8080"}) {
		t.Fatalf("hosts = %v, want the first address only", got)
	}
	first := c.Hosts()[0]

	// Only the order of the other addresses changes: same host.
	d.set("service1", "127.0.0.11", "127.0.0.13")
	q := d.queries.Load()
	testutil.WaitFor(t, "two more resolutions", func() bool { return d.queries.Load() >= q+2 })
	if c.Hosts()[0] != first {
		t.Fatal("logical host replaced although its first address stayed")
	}

	// The first address changes: new connections go to the new address.
	d.set("service1", "127.0.0.12")
	testutil.WaitFor(t, "new address", func() bool { return slices.Equal(hostAddrs(c), []string{"127.0.0.12:8080"}) })
	if !rec.pools[0].closed.Load() {
		t.Fatal("old logical host's pool not closed")
	}
	if c.Pick(nil).Address != "127.0.0.12:8080" {
		t.Fatal("Pick does not use the new address")
	}
}

func TestSystemResolverHonoursHostsFile(t *testing.T) {
	b, err := os.ReadFile("/etc/hosts")
	if err != nil || !strings.Contains(string(b), "localhost") {
		t.Skip("no localhost entry in /etc/hosts")
	}
	m := newManager(t, `
- name: local
  type: STRICT_DNS
  dns_lookup_family: V4_ONLY
  load_assignment: {endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: localhost, port_value: 9}}}}]}]}
`, Options{})
	m.Start(context.Background())
	waitInit(t, m)
	if got := hostAddrs(m.Get("local")); !slices.Contains(got, "127.0.0.1:9") {
		t.Fatalf("localhost resolved to %v", got)
	}
}

func TestStrictDNSLiteralNeedsNoResolution(t *testing.T) {
	m := newManager(t, `
- name: lit
  type: STRICT_DNS
  load_assignment: {endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.5, port_value: 80}}}}]}]}
`, Options{})
	select {
	case <-m.Initialized():
	default:
		t.Fatal("IP-literal STRICT_DNS cluster waits for DNS")
	}
	if got := hostAddrs(m.Get("lit")); !slices.Equal(got, []string{"127.0.0.5:80"}) {
		t.Fatalf("hosts = %v", got)
	}
}

const adminYAML = `
- name: service1
  type: STATIC
  load_assignment:
    endpoints:
    - lb_endpoints:
      - endpoint: {address: {socket_address: {address: 127.0.0.11, port_value: 8080}}, hostname: service1}
      - endpoint: {address: {socket_address: {address: 127.0.0.12, port_value: 8080}}}
        load_balancing_weight: 5
- name: empty
  alt_stat_name: empty_stats
`

func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s mismatch (run with -update to accept):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

func adminManager(t *testing.T) *Manager {
	m := newManager(t, adminYAML, Options{})
	h := m.Get("service1").Hosts()[0]
	h.CxTotal.Store(3)
	h.CxActive.Store(1)
	h.RqTotal.Store(7)
	h.RqSuccess.Store(6)
	h.RqError.Store(1)
	h.RqActive.Store(2)
	h.CxConnectFail.Store(4)
	h.RqTimeout.Store(5)
	return m
}

func TestClustersText(t *testing.T) {
	var b bytes.Buffer
	adminManager(t).WriteText(&b)
	golden(t, "clusters.txt", b.Bytes())
}

func TestClustersJSON(t *testing.T) {
	var b bytes.Buffer
	adminManager(t).WriteJSON(&b)
	// protojson randomises whitespace between runs to discourage byte
	// comparisons; compare the canonical compact form.
	var v any
	if err := yaml.Unmarshal(b.Bytes(), &v); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, b.Bytes())
	}
	canon, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "clusters_json.yaml", canon)
}

func TestLeastRequestReadsActiveRequests(t *testing.T) {
	m := newManager(t, `
- name: lr
  lb_policy: LEAST_REQUEST
  load_assignment:
    endpoints:
    - lb_endpoints:
      - endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}
      - endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 80}}}
`, Options{})
	c := m.Get("lr")
	busy := c.Hosts()[0]
	busy.ActiveRequests.Store(100)
	n := 0
	for range 4000 {
		if c.Pick(nil) == busy {
			n++
		}
	}
	// The busy host wins only when both choices land on it: p = 1/4,
	// expected 1000, σ ≈ 27.
	if n > 1300 {
		t.Fatalf("busy host picked %d of 4000 times", n)
	}
}

// The clusters of Envoy's front-proxy example decode as Envoy would read
// them (the files are not part of this repository).
func TestEnvoyExampleClusters(t *testing.T) {
	files, _ := filepath.Glob("../../../../shared/envoy-examples/front-proxy/*.yaml")
	if len(files) == 0 {
		t.Skip("../shared/envoy-examples not present")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var boot struct {
			StaticResources struct {
				Clusters []any `json:"clusters"`
			} `json:"static_resources"`
		}
		if err := yaml.Unmarshal(b, &boot); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		y, err := yaml.Marshal(boot.StaticResources.Clusters)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewManager(parseClusters(t, string(y)), Options{Logger: quietLogger()})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range m.Clusters() {
			if c.Settings.ConnectTimeout <= 0 || len(c.targets) == 0 {
				t.Errorf("%s: cluster %s: %+v, %d endpoints", f, c.Name, c.Settings, len(c.targets))
			}
		}
		m.Close()
	}
}

type taggedPool struct{ proto Protocol }

func (taggedPool) Close() error { return nil }

// Each cluster's hosts get the pool of its protocol's factory.
func TestPoolFactoryByProtocol(t *testing.T) {
	tag := func(p Protocol) PoolFactory {
		return func(*Cluster, *Host) HostPool { return taggedPool{p} }
	}
	m := newManager(t, `
- name: h1
  load_assignment: {endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]}
- name: h2
  http2_protocol_options: {}
  load_assignment: {endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]}
`, Options{Pools: map[Protocol]PoolFactory{HTTP1: tag(HTTP1), HTTP2: tag(HTTP2)}})
	for name, want := range map[string]Protocol{"h1": HTTP1, "h2": HTTP2} {
		if got := m.Get(name).Hosts()[0].Pool(); got != (taggedPool{want}) {
			t.Errorf("%s: pool %v", name, got)
		}
	}
}
