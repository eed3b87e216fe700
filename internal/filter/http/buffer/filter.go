package buffer

import (
	"errors"

	"github.com/legate-proxy/legate/internal/httpfilter"
	"github.com/legate-proxy/legate/internal/httpfilter/perroute"
)

// Filter buffers request bodies.
type Filter struct {
	limit int
	id    perroute.ID
	next  httpfilter.Handler
	stats filterStats
}

// ServeStream reads the whole body (unless the route disables buffering),
// then passes the stream on.
func (f *Filter) ServeStream(s *httpfilter.Stream) {
	limit := f.limit
	if pr, ok := s.PerRouteConfig(f.id).(*perRoute); ok {
		if pr.disabled {
			f.next.ServeStream(s)
			return
		}
		limit = pr.limit
	}
	if s.Request.Body == nil {
		f.next.ServeStream(s)
		return
	}
	if _, err := s.BufferRequestBody(limit); err != nil {
		if errors.Is(err, httpfilter.ErrBodyTooLarge) {
			f.stats.rqTooLarge.Inc()
			s.ReplyPayloadTooLarge()
			return
		}
		// The downstream failed mid-body; the connection manager turns
		// this into the reply the failure calls for (400 for a malformed
		// body, nothing for a reset).
		s.SendLocalReply(400, "Bad Request", "downstream_remote_disconnect")
		return
	}
	f.next.ServeStream(s)
}
