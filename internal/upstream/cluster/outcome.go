package cluster

import "sync/atomic"

// OutcomeKind classifies one attempt to use a host, in the terms Envoy's
// outlier detection uses (external origin: the upstream's answer; local
// origin: connecting and the connection itself).
type OutcomeKind uint8

const (
	// OutcomeResponse: the upstream answered; Status holds the code.
	OutcomeResponse OutcomeKind = iota
	// OutcomeConnected: a connection was made (tcp_proxy's success).
	OutcomeConnected
	// OutcomeConnectFailed: no connection could be made.
	OutcomeConnectFailed
	// OutcomeTimeout: no answer within the request or per-try timeout.
	OutcomeTimeout
	// OutcomeReset: the connection or stream failed after connecting.
	OutcomeReset
)

// Outcome is one attempt's result for Host.
type Outcome struct {
	Host   *Host
	Kind   OutcomeKind
	Status int // for OutcomeResponse
}

// OutcomeObserver receives every attempt's outcome; it runs on the
// request path and must not block.
type OutcomeObserver func(c *Cluster, o Outcome)

// outcomes is the cluster's observer (outlier detection attaches here).
type outcomes struct {
	obs atomic.Pointer[OutcomeObserver]
}

// ObserveOutcomes sets the function ReportOutcome calls (nil: none).
func (c *Cluster) ObserveOutcomes(f OutcomeObserver) {
	if f == nil {
		c.outcomes.obs.Store(nil)
		return
	}
	c.outcomes.obs.Store(&f)
}

// ReportOutcome is called once per attempt by the router and tcp_proxy.
// Without an observer it costs one atomic load.
func (c *Cluster) ReportOutcome(o Outcome) {
	if f := c.outcomes.obs.Load(); f != nil {
		(*f)(c, o)
	}
}
