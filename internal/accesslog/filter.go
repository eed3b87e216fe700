package accesslog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/legate-proxy/legate/internal/formatter"
	"github.com/legate-proxy/legate/internal/routetable"
	"github.com/legate-proxy/legate/internal/runtime"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

// filter decides whether a request is logged. Filters are compiled once;
// runtime values are read at config time (Legate's runtime is a static
// snapshot), so evaluation only compares numbers.
type filter interface {
	match(ctx *formatter.Context) bool
}

func compileFilter(pb *accesslogv3.AccessLogFilter, rt *runtime.Snapshot, path string) (filter, error) {
	switch f := pb.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		c, err := compileComparison(f.StatusCodeFilter.GetComparison(), rt, path+".status_code_filter.comparison")
		if err != nil {
			return nil, err
		}
		return statusFilter{c}, nil
	case *accesslogv3.AccessLogFilter_DurationFilter:
		c, err := compileComparison(f.DurationFilter.GetComparison(), rt, path+".duration_filter.comparison")
		if err != nil {
			return nil, err
		}
		return durationFilter{c}, nil
	case *accesslogv3.AccessLogFilter_NotHealthCheckFilter:
		return notHealthCheckFilter{}, nil
	case *accesslogv3.AccessLogFilter_ResponseFlagFilter:
		return compileResponseFlagFilter(f.ResponseFlagFilter, path+".response_flag_filter")
	case *accesslogv3.AccessLogFilter_HeaderFilter:
		if f.HeaderFilter.GetHeader() == nil {
			return nil, fmt.Errorf("%s.header_filter.header: required", path)
		}
		m, err := routetable.CompileHeaderMatcher(f.HeaderFilter.GetHeader(), path+".header_filter.header")
		if err != nil {
			return nil, err
		}
		return headerFilter{m}, nil
	case *accesslogv3.AccessLogFilter_RuntimeFilter:
		return compileRuntimeFilter(f.RuntimeFilter, rt, path+".runtime_filter")
	case *accesslogv3.AccessLogFilter_AndFilter:
		fs, err := compileFilters(f.AndFilter.GetFilters(), rt, path+".and_filter.filters")
		if err != nil {
			return nil, err
		}
		return andFilter(fs), nil
	case *accesslogv3.AccessLogFilter_OrFilter:
		fs, err := compileFilters(f.OrFilter.GetFilters(), rt, path+".or_filter.filters")
		if err != nil {
			return nil, err
		}
		return orFilter(fs), nil
	case nil:
		return nil, fmt.Errorf("%s: a filter kind is required", path)
	}
	return nil, fmt.Errorf("%s: filter kind %T is not supported", path, pb.GetFilterSpecifier())
}

func compileFilters(pbs []*accesslogv3.AccessLogFilter, rt *runtime.Snapshot, path string) ([]filter, error) {
	// Envoy requires at least two; a single filter is still meaningful, so
	// only an empty list is refused.
	if len(pbs) == 0 {
		return nil, fmt.Errorf("%s: at least one filter is required", path)
	}
	out := make([]filter, 0, len(pbs))
	for i, pb := range pbs {
		f, err := compileFilter(pb, rt, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// comparison is a ComparisonFilter with its runtime value resolved.
type comparison struct {
	op    accesslogv3.ComparisonFilter_Op
	value uint64
}

func compileComparison(c *accesslogv3.ComparisonFilter, rt *runtime.Snapshot, path string) (comparison, error) {
	if c == nil {
		return comparison{}, fmt.Errorf("%s: required", path)
	}
	if c.GetValue() == nil {
		return comparison{}, fmt.Errorf("%s.value: required", path)
	}
	switch c.GetOp() {
	case accesslogv3.ComparisonFilter_EQ, accesslogv3.ComparisonFilter_GE,
		accesslogv3.ComparisonFilter_LE, accesslogv3.ComparisonFilter_NE:
	default:
		return comparison{}, fmt.Errorf("%s.op: unknown operator %d", path, c.GetOp())
	}
	v := uint64(c.GetValue().GetDefaultValue())
	if key := c.GetValue().GetRuntimeKey(); key != "" {
		v = rt.Uint(key, v)
	}
	return comparison{op: c.GetOp(), value: v}, nil
}

func (c comparison) compare(v uint64) bool {
	switch c.op {
	case accesslogv3.ComparisonFilter_EQ:
		return v == c.value
	case accesslogv3.ComparisonFilter_GE:
		return v >= c.value
	case accesslogv3.ComparisonFilter_LE:
		return v <= c.value
	case accesslogv3.ComparisonFilter_NE:
		return v != c.value
	}
	return false
}

// statusFilter compares the response code; 0 when no response was sent.
type statusFilter struct{ c comparison }

func (f statusFilter) match(ctx *formatter.Context) bool {
	code := 0
	if ctx.Info != nil {
		code = ctx.Info.ResponseCode
	}
	return f.c.compare(uint64(max(code, 0)))
}

// durationFilter compares the request's total duration in milliseconds;
// when the response has not finished, the time elapsed so far.
type durationFilter struct{ c comparison }

func (f durationFilter) match(ctx *formatter.Context) bool {
	si := ctx.Info
	if si == nil {
		return false
	}
	d := si.LastDownstreamTxByte
	if d <= 0 {
		if si.StartTime.IsZero() {
			return false
		}
		d = time.Since(si.StartTime)
	}
	return f.c.compare(uint64(d.Milliseconds()))
}

// notHealthCheckFilter drops health-check requests. Legate has no health
// check filter, so no request is one and every request passes.
type notHealthCheckFilter struct{}

func (notHealthCheckFilter) match(*formatter.Context) bool { return true }

// envoyFlags are the codes Envoy's ResponseFlagFilter accepts.
var envoyFlags = []string{"LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE",
	"DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR", "UDO"}

// flagByCode maps codes to the flags Legate sets; codes Envoy knows and
// Legate never sets are accepted and never match.
var flagByCode = func() map[string]streaminfo.ResponseFlags {
	m := map[string]streaminfo.ResponseFlags{}
	for i := range 32 {
		f := streaminfo.ResponseFlags(1) << i
		if s := f.String(); s != "" && s != "-" {
			m[s] = f
		}
	}
	return m
}()

type responseFlagFilter struct {
	mask streaminfo.ResponseFlags
	any  bool // no flags listed: any flag matches
}

func compileResponseFlagFilter(pb *accesslogv3.ResponseFlagFilter, path string) (filter, error) {
	f := responseFlagFilter{any: len(pb.GetFlags()) == 0}
	for i, code := range pb.GetFlags() {
		known := false
		for _, c := range envoyFlags {
			if c == code {
				known = true
				break
			}
		}
		if !known {
			return nil, fmt.Errorf("%s.flags[%d]: unknown response flag %q", path, i, code)
		}
		f.mask |= flagByCode[code]
	}
	return f, nil
}

func (f responseFlagFilter) match(ctx *formatter.Context) bool {
	if ctx.Info == nil {
		return false
	}
	if f.any {
		return ctx.Info.Flags != 0
	}
	return ctx.Info.Flags&f.mask != 0
}

type headerFilter struct{ m *routetable.HeaderMatcher }

func (f headerFilter) match(ctx *formatter.Context) bool { return f.m.Matches(ctx.Request) }

// runtimeFilter samples a fraction of requests. As in Envoy, unless
// use_independent_randomness is set the x-request-id picks the sample (its
// first 8 hex digits), so the same requests are chosen by every logger and
// by tracing; without a usable request id a random number is drawn.
type runtimeFilter struct {
	numerator, denominator uint64
	independent            bool
}

func compileRuntimeFilter(pb *accesslogv3.RuntimeFilter, rt *runtime.Snapshot, path string) (filter, error) {
	key := pb.GetRuntimeKey()
	if key == "" {
		return nil, fmt.Errorf("%s.runtime_key: must not be empty", path)
	}
	// Envoy's default when percent_sampled is unset: 0%.
	num, den := uint64(0), uint64(100)
	if ps := pb.GetPercentSampled(); ps != nil {
		d, err := denominatorValue(ps.GetDenominator())
		if err != nil {
			return nil, fmt.Errorf("%s.percent_sampled.denominator: %w", path, err)
		}
		num, den = uint64(ps.GetNumerator()), d
	}
	// The runtime may override the default: an integer is a percentage; a
	// {numerator, denominator} struct is a FractionalPercent.
	if _, ok := rt.Get(key + ".numerator"); ok {
		num = rt.Uint(key+".numerator", num)
		den = 100
		if ds, ok := rt.Get(key + ".denominator"); ok {
			v, found := typev3.FractionalPercent_DenominatorType_value[ds]
			if !found {
				return nil, fmt.Errorf("%s: runtime key %s.denominator: unknown denominator %q", path, key, ds)
			}
			den, _ = denominatorValue(typev3.FractionalPercent_DenominatorType(v))
		}
	} else if _, ok := rt.Get(key); ok {
		num, den = rt.Uint(key, num), 100
	}
	return runtimeFilter{numerator: min(num, den), denominator: den, independent: pb.GetUseIndependentRandomness()}, nil
}

func denominatorValue(d typev3.FractionalPercent_DenominatorType) (uint64, error) {
	switch d {
	case typev3.FractionalPercent_HUNDRED:
		return 100, nil
	case typev3.FractionalPercent_TEN_THOUSAND:
		return 10_000, nil
	case typev3.FractionalPercent_MILLION:
		return 1_000_000, nil
	}
	return 0, errors.New("unknown denominator " + strconv.Itoa(int(d)))
}

func (f runtimeFilter) match(ctx *formatter.Context) bool {
	if f.numerator == 0 {
		return false
	}
	if f.numerator >= f.denominator {
		return true
	}
	var r uint64
	ok := false
	if !f.independent && ctx.Request != nil {
		if id, found := ctx.Request.Header.Get("x-request-id"); found {
			r, ok = requestIDInteger(id)
		}
	}
	if !ok {
		r = random()
	}
	return r%f.denominator < f.numerator
}

// requestIDInteger reads the first 8 hex digits of a UUID request id.
func requestIDInteger(id string) (uint64, bool) {
	if len(id) < 8 {
		return 0, false
	}
	var v uint64
	for i := range 8 {
		c := id[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// random is the independent source; a variable so tests can fix it.
var random = rand.Uint64

type andFilter []filter

func (fs andFilter) match(ctx *formatter.Context) bool {
	for _, f := range fs {
		if !f.match(ctx) {
			return false
		}
	}
	return true
}

type orFilter []filter

func (fs orFilter) match(ctx *formatter.Context) bool {
	for _, f := range fs {
		if f.match(ctx) {
			return true
		}
	}
	return false
}
