package hcm

import "github.com/legate-proxy/legate/internal/stats"

// Stats are the connection manager's Envoy-named stats ("http.<prefix>.").
type Stats struct {
	CxTotal, CxHTTP1Total, CxHTTP2Total, CxSSLTotal *stats.Counter
	CxActive, CxHTTP1Active, CxHTTP2Active          *stats.Gauge
	CxDestroy, CxIdleTimeout, CxProtocolError       *stats.Counter
	CxMaxRequestsReached, CxDrainClose              *stats.Counter
	CxRxBytesTotal, CxTxBytesTotal                  *stats.Counter
	CxLengthMs                                      *stats.Histogram

	RqTotal, RqHTTP1Total, RqHTTP2Total                    *stats.Counter
	RqActive                                               *stats.Gauge
	RqClass                                                [6]*stats.Counter // downstream_rq_1xx..5xx at 1..5
	RqCompleted, RqTimeout, RqIdleTimeout, RqHeaderTimeout *stats.Counter
	RqWsOnNonWsRoute, RqTooLarge                           *stats.Counter
	RqRxReset, RqTxReset                                   *stats.Counter
	RqTooManyPrematureResets                               *stats.Counter
	RqTime                                                 *stats.Histogram

	RejectedUnderscores, DroppedUnderscores *stats.Counter

	// A router stat Envoy keeps under the HCM prefix; the router filter
	// creates the others (no_route, rq_total, ...) under the same prefix.
	RqResetAfterResponseStarted *stats.Counter
}

func newStats(sc stats.Scope) *Stats {
	c := sc.Counter
	g := func(n string) *stats.Gauge { return sc.Gauge(n, stats.Accumulate) }
	s := &Stats{
		CxTotal: c("downstream_cx_total"), CxHTTP1Total: c("downstream_cx_http1_total"),
		CxHTTP2Total: c("downstream_cx_http2_total"), CxSSLTotal: c("downstream_cx_ssl_total"),
		CxActive: g("downstream_cx_active"), CxHTTP1Active: g("downstream_cx_http1_active"),
		CxHTTP2Active: g("downstream_cx_http2_active"),
		CxDestroy:     c("downstream_cx_destroy"), CxIdleTimeout: c("downstream_cx_idle_timeout"),
		CxProtocolError: c("downstream_cx_protocol_error"), CxMaxRequestsReached: c("downstream_cx_max_requests_reached"),
		CxDrainClose:   c("downstream_cx_drain_close"),
		CxRxBytesTotal: c("downstream_cx_rx_bytes_total"), CxTxBytesTotal: c("downstream_cx_tx_bytes_total"),
		CxLengthMs: sc.Histogram("downstream_cx_length_ms", stats.Milliseconds),

		RqTotal: c("downstream_rq_total"), RqHTTP1Total: c("downstream_rq_http1_total"),
		RqHTTP2Total: c("downstream_rq_http2_total"), RqActive: g("downstream_rq_active"),
		RqCompleted: c("downstream_rq_completed"), RqTimeout: c("downstream_rq_timeout"),
		RqIdleTimeout: c("downstream_rq_idle_timeout"), RqHeaderTimeout: c("downstream_rq_header_timeout"),
		RqWsOnNonWsRoute: c("downstream_rq_ws_on_non_ws_route"), RqTooLarge: c("downstream_rq_too_large"),
		RqRxReset: c("downstream_rq_rx_reset"), RqTxReset: c("downstream_rq_tx_reset"),
		RqTooManyPrematureResets: c("downstream_rq_too_many_premature_resets"),
		RqTime:                   sc.Histogram("downstream_rq_time", stats.Milliseconds),

		RejectedUnderscores: c("requests_rejected_with_underscores_in_headers"),
		DroppedUnderscores:  c("dropped_headers_with_underscores"),

		RqResetAfterResponseStarted: c("rq_reset_after_downstream_response_started"),
	}
	for i, name := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		s.RqClass[i+1] = c("downstream_rq_" + name)
	}
	return s
}

// recordStatus counts a response code into its class.
func (s *Stats) recordStatus(code int) {
	if cls := code / 100; cls >= 1 && cls <= 5 {
		s.RqClass[cls].Inc()
	}
}
