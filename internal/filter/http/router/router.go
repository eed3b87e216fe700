// Package router is the terminal HTTP filter: it forwards a routed stream to
// an upstream host, with Envoy's timeouts, retries and local replies, and
// streams the response back.
package router

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	"google.golang.org/protobuf/proto"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/routetable"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/streaminfo"
	"github.com/legate-proxy/legate/internal/upstream/cluster"
	"github.com/legate-proxy/legate/internal/upstream/connpool"
)

func init() {
	httpfilter.Registry.Register(&routerv3.Router{}, New)
	httpfilter.Terminal[string((&routerv3.Router{}).ProtoReflect().Descriptor().FullName())] = true
}

// Filter forwards streams upstream.
type Filter struct {
	suppressEnvoyHeaders bool
	noRoute, noCluster   *stats.Counter
	rqRedirect, rqDirect *stats.Counter
	rqTotal              *stats.Counter
}

// New builds the router from its config.
func New(cfg proto.Message, fc *httpfilter.FactoryContext, next httpfilter.Handler) (httpfilter.Handler, error) {
	pb := cfg.(*routerv3.Router)
	sc := fc.Stats.Scope(fc.StatPrefix)
	return &Filter{
		suppressEnvoyHeaders: pb.GetSuppressEnvoyHeaders(),
		noRoute:              sc.Counter("no_route"),
		noCluster:            sc.Counter("no_cluster"),
		rqRedirect:           sc.Counter("rq_redirect"),
		rqDirect:             sc.Counter("rq_direct_response"),
		rqTotal:              sc.Counter("rq_total"),
	}, nil
}

// ServeStream answers from the route: redirect, direct response, or proxy.
func (f *Filter) ServeStream(s *httpfilter.Stream) {
	r := s.Route
	if r == nil {
		f.noRoute.Inc()
		s.Info.Flags |= streaminfo.NoRouteFound
		s.SendLocalReply(http.StatusNotFound, "", "route_not_found")
		return
	}
	switch r.Action {
	case routetable.ActionRedirect:
		f.rqRedirect.Inc()
		status, location := r.Redirect(s.Request)
		h := message.Headers{{Name: "location", Value: location}}
		r.ApplyResponse(&h, s.Request, s.VirtualHost, nil, s.Info)
		s.Info.ResponseCodeDetails = "direct_response"
		s.Response.WriteHeader(status, h, 0)
		return
	case routetable.ActionDirectResponse:
		f.rqDirect.Inc()
		status, body := r.DirectResponse()
		var h message.Headers
		if len(body) > 0 {
			h = message.Headers{{Name: "content-type", Value: "text/plain"}}
		}
		r.ApplyResponse(&h, s.Request, s.VirtualHost, nil, s.Info)
		s.Info.ResponseCodeDetails = "direct_response"
		if s.Response.WriteHeader(status, h, int64(len(body))) == nil && s.Request.Method != http.MethodHead {
			s.Response.Write(body)
		}
		return
	}
	f.rqTotal.Inc()
	f.forward(s, r)
}

// attempt is one try's outcome.
type attempt struct {
	resp    *message.Response
	err     error
	host    *cluster.Host
	started time.Time
	cancel  context.CancelFunc
}

func (f *Filter) forward(s *httpfilter.Stream, r *routetable.Route) {
	req := s.Request
	// The connection manager picked the weighted cluster when the route
	// matched (its per-filter config applies to the filters before).
	var c *cluster.Cluster
	wc := s.WeightedCluster
	if wc != nil {
		c = wc.Cluster()
	} else {
		c, wc, _ = r.Cluster(req, rand.Uint64())
	}
	if c == nil {
		// As in Envoy, a cluster that was not found leaves no upstream
		// cluster in the stream info (%UPSTREAM_CLUSTER% logs "-").
		f.noCluster.Inc()
		s.Info.Flags |= streaminfo.NoClusterFound
		s.SendLocalReply(r.ClusterNotFoundStatus, "", "cluster_not_found")
		return
	}
	s.Info.UpstreamCluster = c.Name
	cs := c.Stats
	r.ApplyRequest(req, s.VirtualHost, wc, s.Info, "")
	autoHost := r.AutoHostRewrite()

	var globalDeadline time.Time
	if r.Timeout > 0 {
		globalDeadline = s.Info.StartTime.Add(r.Timeout)
	}
	policy := r.Retry
	if !f.suppressEnvoyHeaders && r.Timeout > 0 {
		t := r.Timeout
		if policy != nil && policy.PerTryTimeout > 0 && policy.PerTryTimeout < t {
			t = policy.PerTryTimeout
		}
		req.Header.Set("x-envoy-expected-rq-timeout-ms", timeoutMs(t))
	}

	var tried []*cluster.Host // for the previous_hosts predicate
	var pc cluster.PickContext
	if policy != nil && policy.PreviousHosts {
		pc.Exclude = func(h *cluster.Host) bool {
			for _, t := range tried {
				if t == h {
					return true
				}
			}
			return false
		}
		pc.MaxAttempts = int(policy.HostSelectionMaxAttempts)
	}
	// The route's hash_policy places the request on RING_HASH and MAGLEV
	// clusters; as in Envoy it is computed only when the balancer asks.
	var setCookie string
	if r.Hash != nil && c.UsesHash() {
		pc.Hash, pc.HasHash, setCookie = r.Hash.Compute(routetable.HashInput{
			Request: req, Source: s.Info.DownstreamRemoteAddr.Addr(), Dynamic: s.Info.Dynamic, Unique: s.Info.ConnectionID,
		})
	}

	var a attempt
	retries := 0
	for {
		host := c.Pick(&pc)
		if host == nil {
			s.Info.Flags |= streaminfo.NoHealthyUpstream
			cs.UpstreamCxNone.Inc()
			s.SendLocalReply(http.StatusServiceUnavailable, "no healthy upstream", "no_healthy_upstream")
			return
		}
		if autoHost && host.Hostname != "" {
			req.Authority = host.Hostname
		}
		a = f.try(s, c, host, policy, globalDeadline)
		s.Info.Attempts++
		if policy == nil || retries >= int(policy.NumRetries) || req.Body != nil {
			break
		}
		if !retriable(policy, &a) {
			break
		}
		backoff := policy.Backoff(retries, rand.Uint64())
		if !globalDeadline.IsZero() && time.Now().Add(backoff).After(globalDeadline) {
			break
		}
		if a.err == nil {
			f.endAttempt(c, &a)
		}
		a.discard()
		retries++
		cs.UpstreamRqRetry.Inc()
		tried = append(tried, host)
		if !sleepCtx(s.Ctx, backoff) {
			return
		}
	}
	defer a.cancel()
	if a.err != nil {
		f.upstreamFailure(s, c, &a, policy != nil && retries > 0 && retries >= int(policy.NumRetries))
		return
	}
	if retries > 0 {
		cs.UpstreamRqRetrySuccess.Inc()
	}
	if setCookie != "" {
		a.resp.Header.Add("set-cookie", setCookie)
	}
	f.respond(s, r, wc, c, &a)
}

// try sends one attempt and waits for response headers.
func (f *Filter) try(s *httpfilter.Stream, c *cluster.Cluster, host *cluster.Host, policy *routetable.RetryPolicy, globalDeadline time.Time) attempt {
	cs := c.Stats
	s.Info.UpstreamHost = host.Address
	deadline := globalDeadline
	perTry := false // the per-try timeout, not the route's, bounds this attempt
	if policy != nil && policy.PerTryTimeout > 0 {
		if d := time.Now().Add(policy.PerTryTimeout); deadline.IsZero() || d.Before(deadline) {
			deadline, perTry = d, true
		}
	}
	ctx, cancel := s.Ctx, context.CancelFunc(noop)
	switch {
	case deadline.IsZero():
	case s.Ctx.Done() == nil && c.Settings.Protocol == cluster.HTTP1:
		// The pool turns the deadline into a socket deadline: no timer.
		ctx = &connpool.DeadlineContext{Context: s.Ctx, At: deadline}
	default:
		ctx, cancel = context.WithDeadline(s.Ctx, deadline)
	}
	a := attempt{host: host, started: time.Now(), cancel: cancel}
	cs.UpstreamRqTotal.Inc()
	cs.UpstreamRqActive.Inc()
	host.RqTotal.Add(1)
	host.RqActive.Add(1)
	host.ActiveRequests.Add(1)
	pool, _ := host.Pool().(*connpool.Pool)
	if pool == nil {
		a.err = &connpool.Error{Reason: connpool.ConnectionFailure, Err: errors.New("host has no connection pool")}
	} else {
		if s.Info.FirstUpstreamTxByte == 0 {
			s.Info.FirstUpstreamTxByte = max(time.Since(s.Info.StartTime), 1)
		}
		a.resp, a.err = pool.RoundTrip(ctx, s.Request)
	}
	if a.err != nil {
		if perTry && isTimeout(a.err) && s.Ctx.Err() == nil {
			cs.UpstreamRqPerTryTimeout.Inc()
		}
		f.endAttempt(c, &a)
	}
	if a.err == nil {
		s.Info.FirstUpstreamRxByte = max(time.Since(s.Info.StartTime), 1)
	}
	return a
}

// endAttempt settles the per-attempt gauges once the attempt is over.
func (f *Filter) endAttempt(c *cluster.Cluster, a *attempt) {
	c.Stats.UpstreamRqActive.Dec()
	a.host.RqActive.Add(-1)
	a.host.ActiveRequests.Add(-1)
	o := cluster.Outcome{Host: a.host}
	if a.err != nil {
		a.host.RqError.Add(1)
		if isTimeout(a.err) {
			a.host.RqTimeout.Add(1)
		}
		o.Kind = outcomeOf(a.err)
	} else {
		o.Status = a.resp.Status
	}
	c.ReportOutcome(o)
}

// outcomeOf classifies a failed attempt for the outcome hook.
func outcomeOf(err error) cluster.OutcomeKind {
	var pe *connpool.Error
	switch {
	case errors.As(err, &pe) && (pe.Reason == connpool.ConnectionFailure || pe.Reason == connpool.ConnectionTimeout):
		return cluster.OutcomeConnectFailed
	case isTimeout(err):
		return cluster.OutcomeTimeout
	}
	return cluster.OutcomeReset
}

// discard drops a response that will be retried.
func (a *attempt) discard() {
	if a.resp != nil && a.resp.Body != nil {
		if cl, ok := a.resp.Body.(io.Closer); ok {
			cl.Close()
		}
	}
	a.cancel()
}

func noop() {}

// defaultTimeoutMs spares formatting Envoy's default route timeout on
// every request.
var defaultTimeoutMs = strconv.FormatInt(routetable.DefaultTimeout.Milliseconds(), 10)

func timeoutMs(t time.Duration) string {
	if t == routetable.DefaultTimeout {
		return defaultTimeoutMs
	}
	return strconv.FormatInt(t.Milliseconds(), 10)
}

// retriable applies retry_on to an attempt's outcome.
func retriable(p *routetable.RetryPolicy, a *attempt) bool {
	if a.err == nil {
		return p.RetryOnStatus(a.resp.Status)
	}
	if isTimeout(a.err) {
		// A per-try timeout is retried under the reset-like conditions.
		return p.RetryOnReset(routetable.ResetReset)
	}
	var pe *connpool.Error
	if !errors.As(a.err, &pe) {
		return false
	}
	switch pe.Reason {
	case connpool.ConnectionFailure, connpool.ConnectionTimeout:
		return p.RetryOnReset(routetable.ResetConnectFailure)
	case connpool.RemoteRefusedStreamReset:
		return p.RetryOnReset(routetable.ResetRefusedStream)
	default:
		return p.RetryOnReset(routetable.ResetReset)
	}
}

// isTimeout reports a route or per-try timeout. A cluster's connect
// timeout is a connection failure (503, UF, retried under connect-failure),
// as in Envoy, although the dial error underneath is a deadline too.
func isTimeout(err error) bool {
	var pe *connpool.Error
	if errors.As(err, &pe) {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// upstreamFailure answers a stream whose last attempt got no response
// headers, with Envoy's local replies and response flags.
func (f *Filter) upstreamFailure(s *httpfilter.Stream, c *cluster.Cluster, a *attempt, retriesExhausted bool) {
	cs := c.Stats
	if retriesExhausted {
		s.Info.Flags |= streaminfo.UpstreamRetryLimitExceeded
		cs.UpstreamRqRetryLimitExceeded.Inc()
	}
	if isTimeout(a.err) && s.Ctx.Err() == nil {
		cs.UpstreamRqTimeout.Inc()
		s.Info.Flags |= streaminfo.UpstreamRequestTimeout
		cs.RecordStatus(http.StatusGatewayTimeout)
		s.SendLocalReply(http.StatusGatewayTimeout, "upstream request timeout", "upstream_response_timeout")
		return
	}
	reason := connpool.LocalReset
	transport := ""
	var pe *connpool.Error
	if errors.As(a.err, &pe) {
		reason, transport = pe.Reason, pe.TransportFailure
	}
	switch reason {
	case connpool.ConnectionFailure, connpool.ConnectionTimeout:
		s.Info.Flags |= streaminfo.UpstreamConnectionFailure
	case connpool.ConnectionTermination:
		s.Info.Flags |= streaminfo.UpstreamConnectionTermination
	case connpool.Overflow:
		s.Info.Flags |= streaminfo.UpstreamOverflow
	case connpool.ProtocolError:
		s.Info.Flags |= streaminfo.UpstreamProtocolError
	default:
		s.Info.Flags |= streaminfo.UpstreamRemoteReset
	}
	s.Info.UpstreamTransportFailureReason = transport
	body := "upstream connect error or disconnect/reset before headers. reset reason: " + reason.String()
	if transport != "" {
		body += ", transport failure reason: " + transport
	}
	cs.RecordStatus(http.StatusServiceUnavailable)
	s.SendLocalReply(http.StatusServiceUnavailable, body, "upstream_reset_before_response_started{"+reasonDetail(reason)+"}")
}

// reasonDetail is the reset reason as Envoy spells it in response code
// details (words joined by underscores).
func reasonDetail(r connpool.ResetReason) string {
	b := []byte(r.String())
	for i, c := range b {
		if c == ' ' {
			b[i] = '_'
		}
	}
	return string(b)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// respond streams the upstream response downstream.
func (f *Filter) respond(s *httpfilter.Stream, r *routetable.Route, wc *routetable.WeightedCluster, c *cluster.Cluster, a *attempt) {
	resp := a.resp
	cs := c.Stats
	defer f.endAttempt(c, a)
	cs.RecordStatus(resp.Status)
	cs.UpstreamRqTime.Record(uint64(time.Since(a.started).Milliseconds()))
	if resp.Status >= 500 {
		a.host.RqError.Add(1)
	} else {
		a.host.RqSuccess.Add(1)
	}
	if !f.suppressEnvoyHeaders {
		resp.Header.Set("x-envoy-upstream-service-time", strconv.FormatInt(time.Since(a.started).Milliseconds(), 10))
	}
	r.ApplyResponse(&resp.Header, s.Request, s.VirtualHost, wc, s.Info)
	s.Info.ResponseCodeDetails = "via_upstream"

	if resp.Status == http.StatusSwitchingProtocols {
		f.upgrade(s, resp)
		return
	}
	if err := s.Response.WriteHeader(resp.Status, resp.Header, resp.ContentLength); err != nil {
		closeBody(resp)
		return
	}
	if resp.Body == nil {
		s.Info.LastUpstreamRxByte = s.Info.FirstUpstreamRxByte
		return
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := s.Response.Write(buf[:n]); werr != nil {
				closeBody(resp)
				s.Info.Flags |= streaminfo.DownstreamConnectionTermination
				return
			}
			// Flushing per read keeps streamed responses (SSE, gRPC)
			// moving; a small body is a single read, so it costs nothing.
			s.Response.Flush()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			closeBody(resp)
			if isTimeout(err) {
				cs.UpstreamRqTimeout.Inc()
				s.Info.Flags |= streaminfo.UpstreamRequestTimeout
			} else {
				s.Info.Flags |= streaminfo.UpstreamRemoteReset
			}
			if rs, ok := s.Response.(message.Resetter); ok {
				rs.Reset()
			}
			return
		}
	}
	s.Info.LastUpstreamRxByte = time.Since(s.Info.StartTime)
	if t := resp.Body.Trailers(); len(t) > 0 {
		s.Response.WriteTrailers(t)
	}
}

func closeBody(resp *message.Response) {
	if c, ok := resp.Body.(io.Closer); ok {
		c.Close()
	}
}

// upgrade completes an HTTP/1.1 upgrade (WebSocket): the 101 goes
// downstream, then bytes are copied both ways until either side closes.
func (f *Filter) upgrade(s *httpfilter.Stream, resp *message.Response) {
	up, ok := connpool.Upgraded(resp)
	if !ok || s.HijackDownstream == nil {
		s.Info.Flags |= streaminfo.UpstreamProtocolError
		s.SendLocalReply(http.StatusBadGateway, "", "upgrade_failed")
		return
	}
	defer up.Close()
	if err := s.Response.WriteHeader(resp.Status, resp.Header, -1); err != nil {
		return
	}
	s.Response.Flush()
	down, ok := s.HijackDownstream()
	if !ok {
		return
	}
	defer down.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst io.Writer, src io.Reader) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, down)
	go pipe(down, up)
	<-done
	// One side finished; give the other a moment to flush its half, then
	// tear both down.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}
