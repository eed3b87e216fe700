package hcm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/routetable"
	"github.com/legate-proxy/legate/internal/streaminfo"
)

// Causes of a stream's context being cancelled by its own timers.
var (
	errStreamIdleTimeout = errors.New("stream idle timeout")
	errRequestTimeout    = errors.New("request timeout")
)

// armTimers starts the stream's idle and request timers when they can fire
// before anything else ends the stream. With Envoy's defaults (route
// timeout 15 s, stream idle 5 min) the route timeout always comes first and
// no timer is armed, keeping the common path free of timer work; HTTP/1
// downstream idleness is covered by connection deadlines either way.
func (s *stream) armTimers(route *routetable.Route, req *message.Request) {
	cfg := s.cfg
	idle := cfg.StreamIdleTimeout
	if route != nil && route.HasIdleTimeout {
		idle = route.IdleTimeout
	}
	needIdle := idle > 0 && route != nil && route.Action == routetable.ActionForward &&
		(route.Timeout == 0 || route.Timeout > idle)
	needReq := cfg.RequestTimeout > 0 && req.Body != nil
	if !needIdle && !needReq {
		return
	}
	ctx, cancel := context.WithCancelCause(s.fs.Ctx)
	s.fs.Ctx, s.cancel = ctx, cancel
	if needIdle {
		s.idle = idle
		s.idleTimer = time.AfterFunc(idle, func() { cancel(errStreamIdleTimeout) })
	}
	if needReq {
		s.reqTimer = time.AfterFunc(cfg.RequestTimeout-time.Since(s.info.StartTime), func() { cancel(errRequestTimeout) })
	}
	if req.Body != nil {
		s.body = timedBody{Body: req.Body, s: s}
		req.Body = &s.body
	}
}

// progress pushes the idle timer back; called on body bytes either way.
func (s *stream) progress() {
	if s.idleTimer == nil {
		return
	}
	now := time.Now().UnixNano()
	last := s.lastProgress.Load()
	if now-last < int64(100*time.Millisecond) || !s.lastProgress.CompareAndSwap(last, now) {
		return
	}
	s.idleTimer.Reset(s.idle)
}

// stopTimers ends the stream's timers and context.
func (s *stream) stopTimers() {
	if s.idleTimer != nil {
		s.idleTimer.Stop()
	}
	if s.reqTimer != nil {
		s.reqTimer.Stop()
	}
	if s.cancel != nil {
		s.cancel(nil)
	}
}

// timedBody watches the request body: bytes count as progress, and its end
// stops the request timer.
type timedBody struct {
	message.Body
	s *stream
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.Body.Read(p)
	if n > 0 {
		b.s.progress()
	}
	if err == io.EOF && b.s.reqTimer != nil {
		b.s.reqTimer.Stop()
	}
	return n, err
}

// timeoutReply turns a local reply caused by one of the stream's own timers
// into Envoy's 408, whatever the filter that noticed the failure wanted to
// send.
func (cfg *Config) timeoutReply(ctx context.Context, info *streaminfo.StreamInfo, status int, body, details string) (int, string, string) {
	switch context.Cause(ctx) {
	case errStreamIdleTimeout:
		cfg.Stats.RqIdleTimeout.Inc()
		info.Flags |= streaminfo.StreamIdleTimeout
		return http.StatusRequestTimeout, "stream timeout", "stream_idle_timeout"
	case errRequestTimeout:
		cfg.Stats.RqTimeout.Inc()
		return http.StatusRequestTimeout, "request timeout", "request_overall_timeout"
	}
	return status, body, details
}
