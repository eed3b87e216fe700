package accesslog

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

// filterContexts are the requests every filter is evaluated against.
func filterContexts() []struct {
	name string
	ctx  *formatter.Context
} {
	ok := httpContext() // 201, 21 ms, x-request-id 0000002a-… (42)
	notFound := httpContext()
	notFound.Info.ResponseCode, notFound.Info.Flags = 404, streaminfo.NoRouteFound
	notFound.Request.Header = message.Headers{{Name: "x-request-id", Value: "00000063-0000-4000-8000-000000000000"}} // 99
	failed := httpContext()
	failed.Info.ResponseCode, failed.Info.Flags = 503, streaminfo.UpstreamConnectionFailure|streaminfo.UpstreamRetryLimitExceeded
	failed.Request.Header = append(failed.Request.Header, message.Header{Name: "x-debug", Value: "on"})
	slow := httpContext()
	slow.Info.LastDownstreamTxByte = 2500 * time.Millisecond
	slow.Request.Header = message.Headers{{Name: "x-request-id", Value: "not-hex!"}}
	noResponse := httpContext()
	noResponse.Info.ResponseCode, noResponse.Info.Flags = 0, streaminfo.DownstreamConnectionTermination
	return []struct {
		name string
		ctx  *formatter.Context
	}{
		{"ok201", ok}, {"nr404", notFound}, {"uf503", failed}, {"slow", slow}, {"dc0", noResponse}, {"tcp", tcpContext()},
	}
}

var filterCases = []struct{ name, yaml string }{
	{"status >= 400", `status_code_filter: {comparison: {op: GE, value: {default_value: 400, runtime_key: al.min_status}}}`},
	{"status >= runtime 500", `status_code_filter: {comparison: {op: GE, value: {default_value: 400, runtime_key: al.status}}}`},
	{"status = 201", `status_code_filter: {comparison: {op: EQ, value: {default_value: 201, runtime_key: k}}}`},
	{"status <= 299", `status_code_filter: {comparison: {op: LE, value: {default_value: 299, runtime_key: k}}}`},
	{"status != 0", `status_code_filter: {comparison: {op: NE, value: {default_value: 0, runtime_key: k}}}`},
	{"duration >= 1000", `duration_filter: {comparison: {op: GE, value: {default_value: 1000, runtime_key: k}}}`},
	{"duration <= 21", `duration_filter: {comparison: {op: LE, value: {default_value: 21, runtime_key: k}}}`},
	{"not health check", `not_health_check_filter: {}`},
	{"any response flag", `response_flag_filter: {}`},
	{"flags UF or NR", `response_flag_filter: {flags: [UF, NR]}`},
	{"flag URX", `response_flag_filter: {flags: [URX]}`},
	{"flag UAEX (never set)", `response_flag_filter: {flags: [UAEX]}`},
	{"header x-debug present", `header_filter: {header: {name: x-debug, present_match: true}}`},
	{"header x-debug absent", `header_filter: {header: {name: x-debug, present_match: true, invert_match: true}}`},
	{"header user-agent prefix curl", `header_filter: {header: {name: user-agent, string_match: {prefix: curl}}}`},
	{"header :method POST", `header_filter: {header: {name: ":method", exact_match: POST}}`},
	{"header x-missing empty", `header_filter: {header: {name: x-missing, string_match: {exact: ""}, treat_missing_header_as_empty: true}}`},
	{"runtime 50% by request id", `runtime_filter: {runtime_key: al.sample, percent_sampled: {numerator: 50, denominator: HUNDRED}}`},
	{"runtime 0% default", `runtime_filter: {runtime_key: al.unset}`},
	{"runtime 100% default", `runtime_filter: {runtime_key: al.unset, percent_sampled: {numerator: 100}}`},
	{"runtime int override 0%", `runtime_filter: {runtime_key: al.zero, percent_sampled: {numerator: 100}}`},
	{"runtime struct override 43/100", `runtime_filter: {runtime_key: al.frac, percent_sampled: {numerator: 0}}`},
	{"runtime 4300/10000", `runtime_filter: {runtime_key: al.unset, percent_sampled: {numerator: 4300, denominator: TEN_THOUSAND}}`},
	{"and(status>=400, flag UF)", `and_filter: {filters: [{status_code_filter: {comparison: {op: GE, value: {default_value: 400, runtime_key: k}}}}, {response_flag_filter: {flags: [UF]}}]}`},
	{"or(status>=500, duration>=1000)", `or_filter: {filters: [{status_code_filter: {comparison: {op: GE, value: {default_value: 500, runtime_key: k}}}}, {duration_filter: {comparison: {op: GE, value: {default_value: 1000, runtime_key: k}}}}]}`},
	{"or(and(...), not health check)", `or_filter: {filters: [{and_filter: {filters: [{not_health_check_filter: {}}, {status_code_filter: {comparison: {op: EQ, value: {default_value: 1, runtime_key: k}}}}]}}, {header_filter: {header: {name: x-debug}}}]}`},
}

// TestFiltersGolden evaluates every filter kind against a set of requests;
// testdata/filters.golden is the truth table.
func TestFiltersGolden(t *testing.T) {
	rt := testRuntime(t, map[string]any{
		"al": map[string]any{
			"status": 500,
			"zero":   0,
			"frac":   map[string]any{"numerator": 43, "denominator": "HUNDRED"},
		},
	})
	// Requests without a usable request id draw a random number: fix it.
	defer func(r func() uint64) { random = r }(random)
	random = func() uint64 { return 77 }
	ctxs := filterContexts()
	var b strings.Builder
	b.WriteString("# filter:")
	for _, c := range ctxs {
		b.WriteString(" " + c.name)
	}
	b.WriteString("\n")
	for _, fc := range filterCases {
		f, err := compileFilter(parseFilter(t, fc.yaml), rt, "filter")
		if err != nil {
			t.Fatalf("%s: %v", fc.name, err)
		}
		b.WriteString(fc.name + ":")
		for _, c := range ctxs {
			fmt.Fprintf(&b, " %s=%v", c.name, f.match(c.ctx))
		}
		b.WriteString("\n")
	}
	golden(t, "filters.golden", b.String())
}

// TestRuntimeFilterSampling checks the fraction over many request ids and
// that independent randomness does not follow the request id.
func TestRuntimeFilterSampling(t *testing.T) {
	const n = 10000
	for _, tt := range []struct {
		yaml        string
		independent bool
	}{
		{`runtime_filter: {runtime_key: k, percent_sampled: {numerator: 25, denominator: HUNDRED}}`, false},
		{`runtime_filter: {runtime_key: k, percent_sampled: {numerator: 25, denominator: HUNDRED}, use_independent_randomness: true}`, true},
	} {
		f, err := compileFilter(parseFilter(t, tt.yaml), nil, "filter")
		if err != nil {
			t.Fatal(err)
		}
		ctx := httpContext()
		hits, stable := 0, true
		for i := range n {
			ctx.Request.Header = message.Headers{{Name: "x-request-id", Value: fmt.Sprintf("%08x-0000-4000-8000-000000000000", i*7919)}}
			a := f.match(ctx)
			if a {
				hits++
			}
			if f.match(ctx) != a {
				stable = false
			}
		}
		// Request ids i*7919 mod 100 cover every residue evenly: exactly
		// 25%. Random draws land near it.
		if !tt.independent && (hits != n/4 || !stable) {
			t.Errorf("by request id: %d of %d sampled (stable=%v), want exactly %d and stable", hits, n, stable, n/4)
		}
		if tt.independent && (hits < n/5 || hits > n*3/10 || stable) {
			t.Errorf("independent: %d of %d sampled (stable=%v), want about 25%% and not tied to the request id", hits, n, stable)
		}
	}
}
