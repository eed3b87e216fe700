package tracing

import (
	"testing"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/legate-proxy/legate/internal/http/message"
)

func hdrs(kv ...string) message.Headers {
	var h message.Headers
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestExtractB3(t *testing.T) {
	tests := []struct {
		name     string
		h        message.Headers
		found    bool
		bad      bool
		want     spanContext
		decision bool
		sampled  bool
	}{
		{name: "none", h: hdrs(), decision: true, sampled: true},
		{name: "multi 64-bit", h: hdrs("x-b3-traceid", "463ac35c9f6413ad", "x-b3-spanid", "a2fb4a1d1a96d312", "x-b3-sampled", "1"),
			found: true, want: spanContext{traceLo: 0x463ac35c9f6413ad, spanID: 0xa2fb4a1d1a96d312}, sampled: true},
		{name: "multi 128-bit with parent", h: hdrs("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7", "x-b3-spanid", "e457b5a2e4d86bd1",
			"x-b3-parentspanid", "05e3ac9a4f6e3b90", "x-b3-sampled", "0"), decision: true,
			found: true, want: spanContext{traceHi: 0x80f198ee56343ba8, traceLo: 0x64fe8b2a57d3eff7, spanID: 0xe457b5a2e4d86bd1, parentID: 0x05e3ac9a4f6e3b90}},
		{name: "multi sampled=true (old tracers)", h: hdrs("x-b3-sampled", "true"), sampled: true},
		{name: "multi trace id only", h: hdrs("x-b3-traceid", "463ac35c9f6413ad"), decision: true, sampled: true},
		{name: "multi bad hex", h: hdrs("x-b3-traceid", "463ac35c9f6413zz", "x-b3-spanid", "a2fb4a1d1a96d312"), bad: true},
		{name: "multi short span id", h: hdrs("x-b3-traceid", "463ac35c9f6413ad", "x-b3-spanid", "a2fb"), bad: true},
		{name: "single full", h: hdrs("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"),
			found: true, want: spanContext{traceHi: 0x80f198ee56343ba8, traceLo: 0x64fe8b2a57d3eff7, spanID: 0xe457b5a2e4d86bd1, parentID: 0x05e3ac9a4f6e3b90}, sampled: true},
		{name: "single debug", h: hdrs("b3", "463ac35c9f6413ad-a2fb4a1d1a96d312-d"),
			found: true, want: spanContext{traceLo: 0x463ac35c9f6413ad, spanID: 0xa2fb4a1d1a96d312}, sampled: true},
		{name: "single no sampling state", h: hdrs("b3", "463ac35c9f6413ad-a2fb4a1d1a96d312"), decision: true,
			found: true, want: spanContext{traceLo: 0x463ac35c9f6413ad, spanID: 0xa2fb4a1d1a96d312}, sampled: true},
		{name: "single deny only", h: hdrs("b3", "0"), decision: true},
		{name: "single wins over multi", h: hdrs("b3", "0", "x-b3-sampled", "1"), decision: true},
		{name: "single garbage", h: hdrs("b3", "zz-yy"), bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sampled := b3Sampled(tt.h, tt.decision)
			if sampled != tt.sampled {
				t.Errorf("sampled = %v, want %v", sampled, tt.sampled)
			}
			sc, found, err := extractB3(tt.h, sampled)
			if (err != nil) != tt.bad {
				t.Fatalf("err = %v, want bad=%v", err, tt.bad)
			}
			if tt.bad {
				return
			}
			if found != tt.found {
				t.Fatalf("found = %v, want %v", found, tt.found)
			}
			tt.want.sampled = tt.sampled
			if found && sc != tt.want {
				t.Errorf("context = %+v, want %+v", sc, tt.want)
			}
		})
	}
}

func TestInjectB3RoundTrip(t *testing.T) {
	sc := spanContext{traceHi: 0x80f198ee56343ba8, traceLo: 0x64fe8b2a57d3eff7, spanID: 0xe457b5a2e4d86bd1, parentID: 5, sampled: true}
	h := hdrs("b3", "0", "x-b3-parentspanid", "0000000000000009")
	injectB3(&h, &sc)
	want := map[string]string{
		"x-b3-traceid":      "80f198ee56343ba864fe8b2a57d3eff7",
		"x-b3-spanid":       "e457b5a2e4d86bd1",
		"x-b3-parentspanid": "0000000000000005",
		"x-b3-sampled":      "1",
		"b3":                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-0000000000000005",
	}
	for k, v := range want {
		if got := h.Value(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	back, found, err := extractB3(h, b3Sampled(h, false))
	if err != nil || !found || back != sc {
		t.Fatalf("round trip: %+v %v %v, want %+v", back, found, err, sc)
	}
	// A root span drops a stale parent; unsampled says 0.
	root := spanContext{traceLo: 1, spanID: 2}
	injectB3(&h, &root)
	if h.Has("x-b3-parentspanid") || h.Value("x-b3-sampled") != "0" || h.Value("b3") != "0000000000000001-0000000000000002-0" {
		t.Fatalf("root injection: %v", h)
	}
}

func TestW3C(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tests := []struct {
		name  string
		h     message.Headers
		found bool
		bad   bool
		want  spanContext
	}{
		{name: "absent", h: hdrs()},
		{name: "valid", h: hdrs("traceparent", tp, "tracestate", "congo=t61rcWkgMzE"), found: true,
			want: spanContext{traceHi: 0x0af7651916cd43dd, traceLo: 0x8448eb211c80319c, spanID: 0xb7ad6b7169203331, sampled: true, tracestate: "congo=t61rcWkgMzE"}},
		{name: "not sampled", h: hdrs("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"), found: true,
			want: spanContext{traceHi: 0x0af7651916cd43dd, traceLo: 0x8448eb211c80319c, spanID: 0xb7ad6b7169203331}},
		{name: "future version with extra field", h: hdrs("traceparent", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xyz"), found: true,
			want: spanContext{traceHi: 0x0af7651916cd43dd, traceLo: 0x8448eb211c80319c, spanID: 0xb7ad6b7169203331, sampled: true}},
		{name: "version ff", h: hdrs("traceparent", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), found: true, bad: true},
		{name: "upper case", h: hdrs("traceparent", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"), found: true, bad: true},
		{name: "zero trace id", h: hdrs("traceparent", "00-00000000000000000000000000000000-b7ad6b7169203331-01"), found: true, bad: true},
		{name: "zero span id", h: hdrs("traceparent", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"), found: true, bad: true},
		{name: "v00 too long", h: hdrs("traceparent", tp+"-x"), found: true, bad: true},
		{name: "short", h: hdrs("traceparent", "00-abc"), found: true, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, found, err := extractW3C(tt.h)
			if found != tt.found || (err != nil) != tt.bad {
				t.Fatalf("found=%v err=%v, want found=%v bad=%v", found, err, tt.found, tt.bad)
			}
			if found && !tt.bad && sc != tt.want {
				t.Errorf("context = %+v, want %+v", sc, tt.want)
			}
			if found && !tt.bad {
				var out message.Headers
				injectW3C(&out, &sc)
				if got := out.Value("traceparent"); got[3:] != "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0"+map[bool]string{true: "1", false: "0"}[sc.sampled] {
					t.Errorf("injected traceparent %q", got)
				}
				if out.Value("tracestate") != sc.tracestate {
					t.Errorf("tracestate %q, want %q", out.Value("tracestate"), sc.tracestate)
				}
			}
		})
	}
	// 64-bit trace ids are zero-padded.
	var out message.Headers
	injectW3C(&out, &spanContext{traceLo: 0x1234, spanID: 1})
	if got, want := out.Value("traceparent"), "00-00000000000000000000000000001234-0000000000000001-00"; got != want {
		t.Fatalf("traceparent %q, want %q", got, want)
	}
}

func pct(v float64) *typev3.Percent { return &typev3.Percent{Value: v} }

func TestSamplingDecision(t *testing.T) {
	const (
		plain  = "00001388-0000-4000-8000-000000000000" // 0x1388 = 5000: bucket 5000 of 10000
		packed = "00001388-0000-a000-8000-000000000000" // already sampled upstream
	)
	tests := []struct {
		name                    string
		client, random, overall *typev3.Percent
		h                       message.Headers
		want                    Reason
		wantID                  string
	}{
		{name: "defaults sample everything", h: hdrs("x-request-id", plain), want: Sampling, wantID: "00001388-0000-a000-8000-000000000000"},
		{name: "random 0%", random: pct(0), h: hdrs("x-request-id", plain), want: NotTraceable, wantID: plain},
		{name: "random 100%", random: pct(100), h: hdrs("x-request-id", plain), want: Sampling},
		{name: "random 50% excludes bucket 5000", random: pct(50), h: hdrs("x-request-id", plain), want: NotTraceable},
		{name: "random 50.01% includes bucket 5000", random: pct(50.01), h: hdrs("x-request-id", plain), want: Sampling},
		{name: "forced despite random 0%", random: pct(0), h: hdrs("x-request-id", plain, "x-envoy-force-trace", "true"), want: ServiceForced,
			wantID: "00001388-0000-9000-8000-000000000000"},
		{name: "client trace id", random: pct(0), h: hdrs("x-request-id", plain, "x-client-trace-id", "abc"), want: ClientForced,
			wantID: "00001388-0000-b000-8000-000000000000"},
		{name: "client sampling 0% falls back to force", random: pct(0), client: pct(0),
			h: hdrs("x-request-id", plain, "x-client-trace-id", "abc", "x-envoy-force-trace", "1"), want: ServiceForced},
		{name: "client sampling 0% alone", random: pct(0), client: pct(0), h: hdrs("x-request-id", plain, "x-client-trace-id", "abc"), want: NotTraceable},
		{name: "overall 0% vetoes force", overall: pct(0), h: hdrs("x-request-id", plain, "x-envoy-force-trace", "true"), want: NotTraceable,
			wantID: plain},
		{name: "overall 0% unpacks an upstream decision", overall: pct(0), h: hdrs("x-request-id", packed), want: NotTraceable, wantID: plain},
		{name: "upstream decision kept despite random 0%", random: pct(0), h: hdrs("x-request-id", packed), want: Sampling, wantID: packed},
		{name: "no request id", h: hdrs("x-envoy-force-trace", "true"), want: NotTraceable},
		{name: "request id not hex", h: hdrs("x-request-id", "not-a-uuid-at-all"), want: NotTraceable, wantID: "not-a-uuid-at-all"},
		{name: "non-uuid hex id is sampled but left alone", h: hdrs("x-request-id", "deadbeef"), want: NotTraceable, wantID: "deadbeef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSampling(tt.client, tt.random, tt.overall)
			h := tt.h
			if got := s.decide(&h); got != tt.want {
				t.Errorf("reason = %v, want %v", got, tt.want)
			}
			if tt.wantID != "" {
				if got := h.Value("x-request-id"); got != tt.wantID {
					t.Errorf("x-request-id = %q, want %q", got, tt.wantID)
				}
			}
		})
	}
}
