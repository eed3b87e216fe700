package tracing

import (
	"sync"
	"time"
)

// SpanRecord is a finished span as the admin dashboard shows it, kept in
// memory whatever the exporters do with it.
type SpanRecord struct {
	TraceID  string // hex, 16 or 32 digits
	SpanID   string // hex, 16 digits
	ParentID string // "" for a root span
	Name     string // operation name
	Service  string
	Kind     string // "SERVER", "CLIENT", ...
	Start    time.Time
	Duration time.Duration
	Tags     []Tag
	Sampled  bool
}

// Tag is one span tag.
type Tag struct {
	Key, Value string
}

// Ring keeps the last N finished spans. Add is called once per finished
// span (off the request path's critical section: a short lock, no
// allocation); Snapshot is for the dashboard.
type Ring struct {
	mu    sync.Mutex
	spans []SpanRecord
	next  int
	full  bool
}

// NewRing returns a ring holding up to n spans.
func NewRing(n int) *Ring {
	return &Ring{spans: make([]SpanRecord, n)}
}

// Add records a span, overwriting the oldest when full.
func (r *Ring) Add(s SpanRecord) {
	if r == nil || len(r.spans) == 0 {
		return
	}
	r.mu.Lock()
	r.spans[r.next] = s
	r.next++
	if r.next == len(r.spans) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

// Snapshot returns the spans held, oldest first.
func (r *Ring) Snapshot() []SpanRecord {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]SpanRecord(nil), r.spans[:r.next]...)
	}
	out := make([]SpanRecord, 0, len(r.spans))
	out = append(out, r.spans[r.next:]...)
	return append(out, r.spans[:r.next]...)
}
