package cluster

import (
	"strconv"

	"github.com/legate-proxy/legate/internal/stats"
)

// newStats creates every cluster stat up front (under "cluster.<name>."),
// so the request path only does atomic adds. upstream_rq_<code> counters
// are the exception: they appear on first use, as in Envoy.
func newStats(sc stats.Scope) *Stats {
	c := sc.Counter
	g := func(name string) *stats.Gauge { return sc.Gauge(name, stats.Accumulate) }
	gNever := func(name string) *stats.Gauge { return sc.Gauge(name, stats.NeverImport) }
	h := func(name string) *stats.Histogram { return sc.Histogram(name, stats.Milliseconds) }
	s := &Stats{
		UpstreamCxTotal:          c("upstream_cx_total"),
		UpstreamCxActive:         g("upstream_cx_active"),
		UpstreamCxHTTP1Total:     c("upstream_cx_http1_total"),
		UpstreamCxHTTP2Total:     c("upstream_cx_http2_total"),
		UpstreamCxConnectFail:    c("upstream_cx_connect_fail"),
		UpstreamCxConnectTimeout: c("upstream_cx_connect_timeout"),
		UpstreamCxDestroy:        c("upstream_cx_destroy"),
		UpstreamCxDestroyLocal:   c("upstream_cx_destroy_local"),
		UpstreamCxDestroyRemote:  c("upstream_cx_destroy_remote"),
		UpstreamCxRxBytesTotal:   c("upstream_cx_rx_bytes_total"),
		UpstreamCxTxBytesTotal:   c("upstream_cx_tx_bytes_total"),
		UpstreamCxConnectMs:      h("upstream_cx_connect_ms"),
		UpstreamCxLengthMs:       h("upstream_cx_length_ms"),
		UpstreamCxProtocolError:  c("upstream_cx_protocol_error"),

		UpstreamRqTotal:              c("upstream_rq_total"),
		UpstreamRqActive:             g("upstream_rq_active"),
		UpstreamRqPendingTotal:       c("upstream_rq_pending_total"),
		UpstreamRqPendingActive:      g("upstream_rq_pending_active"),
		UpstreamRqCompleted:          c("upstream_rq_completed"),
		UpstreamRqTimeout:            c("upstream_rq_timeout"),
		UpstreamRqPerTryTimeout:      c("upstream_rq_per_try_timeout"),
		UpstreamRqRetry:              c("upstream_rq_retry"),
		UpstreamRqRetrySuccess:       c("upstream_rq_retry_success"),
		UpstreamRqRetryLimitExceeded: c("upstream_rq_retry_limit_exceeded"),
		UpstreamRqRxReset:            c("upstream_rq_rx_reset"),
		UpstreamRqTxReset:            c("upstream_rq_tx_reset"),
		UpstreamRqTime:               h("upstream_rq_time"),

		MembershipHealthy: gNever("membership_healthy"),
		MembershipTotal:   gNever("membership_total"),
		MembershipChange:  c("membership_change"),
		UpdateAttempt:     c("update_attempt"),
		UpdateSuccess:     c("update_success"),
		UpdateFailure:     c("update_failure"),
		UpdateNoRebuild:   c("update_no_rebuild"),
		LbHealthyPanic:    c("lb_healthy_panic"),
		UpstreamCxNone:    c("upstream_cx_none_healthy"),
		scope:             sc,
	}
	for i := 1; i <= 5; i++ {
		s.UpstreamRqClass[i] = c("upstream_rq_" + strconv.Itoa(i) + "xx")
	}
	// Envoy reports these for every cluster; Legate has no health checking
	// or EDS health, so they stay 0.
	gNever("membership_degraded")
	gNever("membership_excluded")
	return s
}

// RecordStatus counts one upstream response: upstream_rq_<code> and
// upstream_rq_<n>xx. Codes outside 100..599 are ignored. The per-code
// counter is created on first use and cached in its atomic slot; two
// racing first uses get the same counter from the store.
func (s *Stats) RecordStatus(code int) {
	if code < 100 || code > 599 {
		return
	}
	slot := &s.UpstreamRqCode[code-100]
	ctr := slot.Load()
	if ctr == nil {
		ctr = s.scope.Counter("upstream_rq_" + strconv.Itoa(code))
		slot.Store(ctr)
	}
	ctr.Inc()
	s.UpstreamRqClass[code/100].Inc()
}

// RecordAltStatus counts a response code in the dual stat tree
// x-envoy-upstream-alt-stat-name asks for ("cluster.<name>.<alt>."). The
// router calls it only for requests that carry the header, so the store
// lookups happen only then.
func (s *Stats) RecordAltStatus(alt string, code int) {
	if code < 100 || code > 599 {
		return
	}
	sc := s.scope.Scope(alt + ".")
	sc.Counter("upstream_rq_" + strconv.Itoa(code)).Inc()
	sc.Counter("upstream_rq_" + strconv.Itoa(code/100) + "xx").Inc()
}

// RecordAltTime records upstream_rq_time in the dual stat tree.
func (s *Stats) RecordAltTime(alt string, ms uint64) {
	s.scope.Scope(alt+".").Histogram("upstream_rq_time", stats.Milliseconds).Record(ms)
}
