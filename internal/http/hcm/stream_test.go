package hcm

import (
	"net/netip"
	"regexp"
	"slices"
	"testing"

	"github.com/legate-proxy/legate/internal/cidr"
	"github.com/legate-proxy/legate/internal/http/http1"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/stats"
)

func TestXffAddr(t *testing.T) {
	tests := []struct {
		xff  string
		n    int
		want string
	}{
		{"", 1, ""},
		{"1.2.3.4", 1, "1.2.3.4"},
		{"1.2.3.4, 5.6.7.8", 1, "5.6.7.8"},
		{"1.2.3.4, 5.6.7.8", 2, "1.2.3.4"},
		{"1.2.3.4,5.6.7.8", 3, ""},
		{"garbage, 5.6.7.8", 2, ""},
		{" 2001:db8::1 ", 1, "2001:db8::1"},
	}
	for _, tt := range tests {
		got, ok := xffAddr(tt.xff, tt.n)
		if tt.want == "" {
			if ok {
				t.Errorf("xffAddr(%q, %d) = %v, want none", tt.xff, tt.n, got)
			}
			continue
		}
		if !ok || got.String() != tt.want {
			t.Errorf("xffAddr(%q, %d) = %v %v, want %s", tt.xff, tt.n, got, ok, tt.want)
		}
	}
}

func TestIsInternal(t *testing.T) {
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "172.16.0.1": true, "192.168.1.1": true, "127.0.0.1": true,
		"::1": true, "fd00::1": true, "::ffff:10.0.0.1": true,
		"8.8.8.8": false, "2001:db8::1": false, "172.32.0.1": false,
	} {
		if got := isInternal(netip.MustParseAddr(addr)); got != want {
			t.Errorf("isInternal(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestRequestIDIsRandomUUIDv4(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		if !re.MatchString(id) {
			t.Fatalf("%q is not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("duplicate request id %q", id)
		}
		seen[id] = true
	}
}

// TestPrepareRequest pins Envoy's x-forwarded-for, x-forwarded-proto,
// internal/external and x-request-id handling.
func TestPrepareRequest(t *testing.T) {
	peer := netip.MustParseAddrPort("203.0.113.7:5555")
	internalPeer := netip.MustParseAddrPort("10.0.0.9:5555")
	tests := []struct {
		name       string
		cfg        Config
		peer       netip.AddrPort
		tls        bool
		in         message.Headers
		wantRemote string
		want       map[string]string // header → value; "" means absent
	}{
		{
			name: "edge appends peer, overwrites proto, strips x-envoy, regenerates id",
			cfg:  Config{UseRemoteAddress: true, GenerateRequestID: true},
			peer: peer, tls: true,
			in:         hdrs("x-forwarded-for", "1.1.1.1", "x-forwarded-proto", "http", "x-envoy-retry-on", "5xx", "x-request-id", "client-chosen"),
			wantRemote: "203.0.113.7",
			want: map[string]string{"x-forwarded-for": "1.1.1.1,203.0.113.7", "x-forwarded-proto": "https",
				"x-envoy-retry-on": "", "x-envoy-external-address": "203.0.113.7", "x-envoy-internal": ""},
		},
		{
			name: "edge keeps the external id when told to",
			cfg:  Config{UseRemoteAddress: true, GenerateRequestID: true, PreserveExternalReqID: true},
			peer: peer,
			in:   hdrs("x-request-id", "client-chosen"),
			want: map[string]string{"x-request-id": "client-chosen"},
		},
		{
			name:       "internal peer is marked internal",
			cfg:        Config{UseRemoteAddress: true},
			peer:       internalPeer,
			in:         hdrs("x-envoy-internal", "false"),
			wantRemote: "10.0.0.9",
			want:       map[string]string{"x-envoy-internal": "true", "x-forwarded-for": "10.0.0.9"},
		},
		{
			name:       "trusted hops pick the client from xff",
			cfg:        Config{UseRemoteAddress: true, XffNumTrustedHops: 1},
			peer:       internalPeer,
			in:         hdrs("x-forwarded-for", "198.51.100.1, 192.0.2.1"),
			wantRemote: "192.0.2.1",
		},
		{
			name:       "not the edge: xff untouched, client is its last entry",
			cfg:        Config{},
			peer:       internalPeer,
			in:         hdrs("x-forwarded-for", "198.51.100.1", "x-forwarded-proto", "https"),
			wantRemote: "198.51.100.1",
			want:       map[string]string{"x-forwarded-for": "198.51.100.1", "x-forwarded-proto": "https"},
		},
		{
			name:       "edge: a peer that forwards for others is not internal",
			cfg:        Config{UseRemoteAddress: true},
			peer:       internalPeer,
			in:         hdrs("x-forwarded-for", "10.1.1.1", "x-envoy-retry-on", "5xx", "x-envoy-internal", "true"),
			wantRemote: "10.0.0.9",
			want:       map[string]string{"x-envoy-internal": "", "x-envoy-retry-on": "", "x-envoy-external-address": "10.0.0.9"},
		},
		{
			name:       "not the edge: one internal xff address is internal and keeps its controls",
			cfg:        Config{},
			peer:       peer,
			in:         hdrs("x-forwarded-for", "10.1.1.1", "x-envoy-retry-on", "5xx", "x-envoy-upstream-rq-timeout-ms", "20"),
			wantRemote: "10.1.1.1",
			want:       map[string]string{"x-envoy-internal": "true", "x-envoy-retry-on": "5xx", "x-envoy-upstream-rq-timeout-ms": "20"},
		},
		{
			name: "not the edge: no xff is external, controls stripped, others kept",
			cfg:  Config{},
			peer: internalPeer,
			in: hdrs("x-envoy-retry-on", "5xx", "x-envoy-max-retries", "3", "x-envoy-internal", "true",
				"x-envoy-hedge-on-per-try-timeout", "true", "x-envoy-decorator-operation", "op"),
			wantRemote: "10.0.0.9",
			want: map[string]string{"x-envoy-internal": "", "x-envoy-retry-on": "", "x-envoy-max-retries": "",
				"x-envoy-hedge-on-per-try-timeout": "", "x-envoy-decorator-operation": "op", "x-envoy-external-address": ""},
		},
		{
			name:       "not the edge: two xff addresses are external",
			cfg:        Config{},
			peer:       internalPeer,
			in:         hdrs("x-forwarded-for", "10.1.1.1,10.2.2.2", "x-envoy-retry-on", "5xx"),
			wantRemote: "10.2.2.2",
			want:       map[string]string{"x-envoy-internal": "", "x-envoy-retry-on": ""},
		},
		{
			name: "internal_address_config ranges replace the default",
			cfg: Config{UseRemoteAddress: true, Internal: InternalAddresses{
				Ranges: cidr.Set{netip.MustParsePrefix("203.0.113.0/24")}}},
			peer: peer,
			in:   hdrs("x-envoy-retry-on", "5xx"),
			want: map[string]string{"x-envoy-internal": "true", "x-envoy-retry-on": "5xx"},
		},
		{
			name:       "custom_header detection, trusted",
			cfg:        Config{ipDetectors: []ipDetector{{header: "x-real-ip", allowTrusted: true}}},
			peer:       peer,
			in:         hdrs("x-real-ip", "192.168.7.7", "x-envoy-retry-on", "5xx"),
			wantRemote: "192.168.7.7",
			want:       map[string]string{"x-envoy-internal": "true", "x-envoy-retry-on": "5xx"},
		},
		{
			name:       "custom_header detection, not trusted",
			cfg:        Config{ipDetectors: []ipDetector{{header: "x-real-ip"}}},
			peer:       peer,
			in:         hdrs("x-real-ip", "192.168.7.7", "x-envoy-retry-on", "5xx"),
			wantRemote: "192.168.7.7",
			want:       map[string]string{"x-envoy-internal": "", "x-envoy-retry-on": ""},
		},
		{
			name:       "xff detection with trusted cidrs and append",
			cfg:        Config{ipDetectors: []ipDetector{{trusted: cidr.Set{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("198.51.100.0/24")}}}},
			peer:       peer,
			in:         hdrs("x-forwarded-for", "192.0.2.5, 198.51.100.9"),
			wantRemote: "192.0.2.5",
			want:       map[string]string{"x-forwarded-for": "192.0.2.5, 198.51.100.9,203.0.113.7"},
		},
		{
			name: "skip_xff_append",
			cfg:  Config{UseRemoteAddress: true, SkipXffAppend: true},
			peer: peer,
			want: map[string]string{"x-forwarded-for": ""},
		},
		{
			name: "generate_request_id off adds none",
			cfg:  Config{},
			peer: peer,
			want: map[string]string{"x-request-id": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Stats = newStats(stats.NewStore().Scope("http.test"))
			s := &stream{cfg: &cfg, c: &conn{peerIP: tt.peer.Addr().String()}}
			s.info.DownstreamDirectAddr = tt.peer
			req := &message.Request{Header: tt.in.Clone()}
			if !cfg.prepareRequest(s, req, tt.tls) {
				t.Fatal("request rejected")
			}
			if tt.wantRemote != "" && s.info.DownstreamRemoteAddr.Addr().String() != tt.wantRemote {
				t.Errorf("downstream remote address = %v, want %s", s.info.DownstreamRemoteAddr, tt.wantRemote)
			}
			for name, want := range tt.want {
				got, ok := req.Header.Get(name)
				if want == "" && ok {
					t.Errorf("%s = %q, want absent", name, got)
				} else if want != "" && got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if cfg.GenerateRequestID && !req.Header.Has("x-request-id") {
				t.Error("x-request-id missing")
			}
			if req.Scheme == "" {
				t.Error("scheme not set")
			}
		})
	}
}

// hdrs builds headers from name, value pairs.
func hdrs(kv ...string) message.Headers {
	var h message.Headers
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestH2Underscores(t *testing.T) {
	in := hdrs("x-fine", "1", "x_under", "2", "x-also", "3", "a_b", "4")
	tests := []struct {
		name       string
		action     http1.UnderscoreAction
		wantOK     bool
		wantHeader message.Headers
		wantDrop   uint64
		wantReject uint64
	}{
		{"drop", http1.DropUnderscores, true, hdrs("x-fine", "1", "x-also", "3"), 2, 0},
		{"reject", http1.RejectUnderscores, false, nil, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{Limits: http1.Limits{Underscores: tt.action}}
			cfg.Stats = newStats(stats.NewStore().Scope("http.test"))
			req := &message.Request{Header: in.Clone()}
			if ok := cfg.h2Underscores(req); ok != tt.wantOK {
				t.Fatalf("h2Underscores = %v, want %v", ok, tt.wantOK)
			}
			if tt.wantOK && !slices.Equal(req.Header, tt.wantHeader) {
				t.Errorf("headers = %v, want %v", req.Header, tt.wantHeader)
			}
			if got := cfg.Stats.DroppedUnderscores.Value(); got != tt.wantDrop {
				t.Errorf("dropped_headers_with_underscores = %d, want %d", got, tt.wantDrop)
			}
			if got := cfg.Stats.RejectedUnderscores.Value(); got != tt.wantReject {
				t.Errorf("requests_rejected_with_underscores_in_headers = %d, want %d", got, tt.wantReject)
			}
		})
	}
}
