package router

import (
	"context"
	"strconv"
	"time"

	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/routetable"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
)

// Hedging on per-try timeout (x-envoy-hedge-on-per-try-timeout), as
// Envoy's router does it: when an attempt outlives the per-try timeout it
// is not cancelled; another attempt starts beside it (a retry, within
// num_retries), and the first usable response wins. Losers are cancelled
// and drained in the background. Each attempt works on its own copy of the
// request and stream info, so concurrent attempts share nothing mutable.

// hedgeable reports whether a request can be hedged: a policy with a
// per-try timeout and retries, and no body (a body can be sent once).
func (c *controls) hedgeable(p *routetable.RetryPolicy, s *httpfilter.Stream) bool {
	return c.hedge && p != nil && p.PerTryTimeout > 0 && p.NumRetries > 0 && s.Request.Body == nil
}

// hedgedAttempt is one attempt's outcome with the stream info it filled.
type hedgedAttempt struct {
	a    attempt
	info streaminfo.StreamInfo
	idx  int // its cancel in cancels
}

// hedgeEnd says how forwardHedged ended.
type hedgeEnd uint8

const (
	hedgeDone   hedgeEnd = iota // an attempt is the answer
	hedgeNoHost                 // no healthy host for the first attempt
	hedgeGone                   // the downstream went away, or no attempt is left
)

// forwardHedged runs the attempts; it returns the winning attempt (its
// info merged into s.Info) and the number of retries made.
func (f *Filter) forwardHedged(s *httpfilter.Stream, c *cluster.Cluster, policy *routetable.RetryPolicy, ctl *controls,
	pc *cluster.PickContext, tried *[]*cluster.Host, globalDeadline time.Time, autoHost, attemptCount bool) (a attempt, retries int, end hedgeEnd) {
	cs := c.Stats
	// Attempts are bounded by the route timeout only; the per-try timeout
	// starts hedges instead of cancelling.
	unbounded := *policy
	unbounded.PerTryTimeout = 0
	results := make(chan hedgedAttempt, 1+policy.NumRetries)
	var cancels []context.CancelFunc
	outstanding := 0
	launch := func(n int) bool {
		host := c.Pick(pc)
		if host == nil {
			return false
		}
		*tried = append(*tried, host)
		req := *s.Request
		req.Header = s.Request.Header.Clone()
		if autoHost && host.Hostname != "" {
			req.Authority = host.Hostname
		}
		if attemptCount {
			req.Header.Set(hdrAttemptCount, strconv.Itoa(n))
		}
		ctx, cancel := context.WithCancel(s.Ctx)
		idx := len(cancels)
		cancels = append(cancels, cancel)
		as := *s
		as.Ctx, as.Request = ctx, &req
		info := *s.Info
		as.Info = &info
		outstanding++
		s.Info.Attempts++
		go func() {
			r := f.try(&as, c, host, &unbounded, globalDeadline)
			results <- hedgedAttempt{a: r, info: info, idx: idx}
		}()
		return true
	}
	finish := func(w hedgedAttempt) attempt {
		// Losers still running are cancelled and settled as they end; the
		// winner's context lives until its response has been relayed.
		for i, cancel := range cancels {
			if i != w.idx {
				cancel()
			}
		}
		if rest := outstanding; rest > 0 {
			go func() {
				for range rest {
					r := <-results
					if r.a.err == nil {
						f.endAttempt(c, &r.a)
					}
					r.a.discard()
				}
			}()
		}
		s.Info.UpstreamHost = w.info.UpstreamHost
		s.Info.FirstUpstreamTxByte = w.info.FirstUpstreamTxByte
		s.Info.FirstUpstreamRxByte = w.info.FirstUpstreamRxByte
		own, ctxCancel := w.a.cancel, cancels[w.idx]
		w.a.cancel = func() { own(); ctxCancel() }
		return w.a
	}

	if !launch(1) {
		return attempt{}, 0, hedgeNoHost
	}
	timer := time.NewTimer(policy.PerTryTimeout)
	defer timer.Stop()
	var last *hedgedAttempt
	for {
		select {
		case r := <-results:
			outstanding--
			usable := !retriable(policy, &r.a) && !(r.a.err == nil && ctl.retryOnGrpc(r.a.resp))
			if usable {
				if last != nil {
					settle(f, c, &last.a)
				}
				return finish(r), retries, hedgeDone
			}
			if retries < int(policy.NumRetries) && (globalDeadline.IsZero() || time.Now().Before(globalDeadline)) {
				settle(f, c, &r.a)
				retries++
				cs.UpstreamRqRetry.Inc()
				if launch(retries + 1) {
					timer.Reset(policy.PerTryTimeout)
					continue
				}
				if outstanding == 0 {
					return attempt{}, retries, hedgeGone
				}
				continue
			}
			if outstanding > 0 {
				// Wait for the others; this one is the answer if none
				// does better.
				if last != nil {
					settle(f, c, &last.a)
				}
				last = &r
				continue
			}
			if last != nil {
				settle(f, c, &last.a)
			}
			return finish(r), retries, hedgeDone
		case <-timer.C:
			cs.UpstreamRqPerTryTimeout.Inc()
			if retries < int(policy.NumRetries) {
				retries++
				cs.UpstreamRqRetry.Inc()
				if launch(retries + 1) {
					timer.Reset(policy.PerTryTimeout)
				}
			}
		case <-s.Ctx.Done():
			for _, cancel := range cancels {
				cancel()
			}
			go func(n int) {
				for range n {
					r := <-results
					settle(f, c, &r.a)
				}
			}(outstanding)
			if last != nil {
				settle(f, c, &last.a)
			}
			return attempt{}, retries, hedgeGone
		}
	}
}

// settle ends an attempt that will not be used.
func settle(f *Filter, c *cluster.Cluster, a *attempt) {
	if a.err == nil {
		f.endAttempt(c, a)
	}
	a.discard()
}
