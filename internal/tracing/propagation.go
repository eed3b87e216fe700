package tracing

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/legate-proxy/legate/internal/http/message"
)

// Propagation header names.
const (
	hdrB3TraceID   = "x-b3-traceid"
	hdrB3SpanID    = "x-b3-spanid"
	hdrB3ParentID  = "x-b3-parentspanid"
	hdrB3Sampled   = "x-b3-sampled"
	hdrB3Flags     = "x-b3-flags"
	hdrB3Single    = "b3"
	hdrTraceparent = "traceparent"
	hdrTracestate  = "tracestate"
)

// spanContext is what propagation carries: ids and the sampling decision.
// A zero parent means none.
type spanContext struct {
	traceHi, traceLo uint64 // traceHi is 0 for 64-bit trace ids
	spanID, parentID uint64
	sampled          bool
	tracestate       string
}

var errBadContext = errors.New("malformed trace context")

// newID returns a random non-zero 64-bit id. math/rand/v2's global source
// is a per-thread ChaCha8: lock-free and unpredictable enough for ids.
func newID() uint64 {
	for {
		if v := rand.Uint64(); v != 0 {
			return v
		}
	}
}

// newTraceHi returns the high half of a new trace id: random, or (Zipkin's
// timestamp_trace_ids) epoch seconds in the top 32 bits.
func newTraceHi(timestamp bool) uint64 {
	if timestamp {
		return uint64(uint32(time.Now().Unix()))<<32 | uint64(rand.Uint32())
	}
	return newID()
}

const hexDigits = "0123456789abcdef"

// appendHex64 appends v as 16 lower-case hex digits.
func appendHex64(b []byte, v uint64) []byte {
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hexDigits[(v>>uint(i))&0xf])
	}
	return b
}

func hex64(v uint64) string {
	var a [16]byte
	return string(appendHex64(a[:0], v))
}

// traceIDHex renders a trace id: 16 digits for 64-bit ids, else 32.
func traceIDHex(hi, lo uint64) string {
	var a [32]byte
	b := a[:0]
	if hi != 0 {
		b = appendHex64(b, hi)
	}
	return string(appendHex64(b, lo))
}

// parseHex64 parses 1..16 lower- or upper-case hex digits.
func parseHex64(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 16 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

// parseTraceID parses a 16- or 32-digit trace id.
func parseTraceID(s string) (hi, lo uint64, ok bool) {
	switch len(s) {
	case 16:
		lo, ok = parseHex64(s)
		return 0, lo, ok
	case 32:
		if hi, ok = parseHex64(s[:16]); !ok {
			return 0, 0, false
		}
		lo, ok = parseHex64(s[16:])
		return hi, lo, ok
	}
	return 0, 0, false
}

// b3Sampled reads the sampling state from B3 headers as Envoy's Zipkin
// tracer does: the single b3 header first, then x-b3-sampled ("1", "true"),
// else the connection manager's decision.
func b3Sampled(h message.Headers, decision bool) bool {
	if b3, ok := h.Get(hdrB3Single); ok {
		pos := 0
		switch len(b3) {
		case 1:
		case 35, 52: // 64-bit trace id, then -sampled[-parent]
			pos = 34
		case 51, 68: // 128-bit trace id
			pos = 50
		default:
			return decision
		}
		switch b3[pos] {
		case '0':
			return false
		case '1', 'd':
			return true
		}
		return decision
	}
	v, ok := h.Get(hdrB3Sampled)
	if !ok {
		return decision
	}
	return v == "1" || v == "true"
}

// extractB3 reads an incoming B3 context (single b3 header first, then the
// multi-header form). found is false when there is none; an error means a
// malformed one, on which Envoy traces nothing.
func extractB3(h message.Headers, sampled bool) (sc spanContext, found bool, err error) {
	sc.sampled = sampled
	if b3, ok := h.Get(hdrB3Single); ok {
		if len(b3) == 1 {
			return sc, false, nil // sampling state only
		}
		// traceid-spanid[-sampling[-parentspanid]]
		tid, rest, ok := cut(b3)
		if !ok {
			return sc, false, errBadContext
		}
		if sc.traceHi, sc.traceLo, ok = parseTraceID(tid); !ok {
			return sc, false, errBadContext
		}
		sid, rest, more := cut(rest)
		if len(sid) != 16 {
			return sc, false, errBadContext
		}
		if sc.spanID, ok = parseHex64(sid); !ok {
			return sc, false, errBadContext
		}
		if more {
			state, parent, hasParent := cut(rest)
			if len(state) != 1 {
				return sc, false, errBadContext
			}
			if hasParent {
				if len(parent) != 16 {
					return sc, false, errBadContext
				}
				if sc.parentID, ok = parseHex64(parent); !ok {
					return sc, false, errBadContext
				}
			}
		}
		return sc, true, nil
	}
	tid, okT := h.Get(hdrB3TraceID)
	sid, okS := h.Get(hdrB3SpanID)
	if !okT || !okS {
		return sc, false, nil
	}
	var ok bool
	if sc.traceHi, sc.traceLo, ok = parseTraceID(tid); !ok {
		return sc, false, errBadContext
	}
	if sc.spanID, ok = parseHex64(sid); !ok || len(sid) != 16 {
		return sc, false, errBadContext
	}
	if p, has := h.Get(hdrB3ParentID); has {
		if sc.parentID, ok = parseHex64(p); !ok || len(p) != 16 {
			return sc, false, errBadContext
		}
	}
	return sc, true, nil
}

func cut(s string) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// injectB3 writes the multi-header form, and rewrites a single b3 header
// when the request carried one, so whichever form the upstream reads it
// sees Legate's span as its parent.
func injectB3(h *message.Headers, sc *spanContext) {
	h.Set(hdrB3TraceID, traceIDHex(sc.traceHi, sc.traceLo))
	h.Set(hdrB3SpanID, hex64(sc.spanID))
	if sc.parentID != 0 {
		h.Set(hdrB3ParentID, hex64(sc.parentID))
	} else {
		h.Del(hdrB3ParentID)
	}
	if sc.sampled {
		h.Set(hdrB3Sampled, "1")
	} else {
		h.Set(hdrB3Sampled, "0")
	}
	if h.Has(hdrB3Single) {
		h.Set(hdrB3Single, b3Single(sc))
	}
}

func b3Single(sc *spanContext) string {
	var a [68]byte
	b := a[:0]
	if sc.traceHi != 0 {
		b = appendHex64(b, sc.traceHi)
	}
	b = appendHex64(b, sc.traceLo)
	b = append(b, '-')
	b = appendHex64(b, sc.spanID)
	if sc.sampled {
		b = append(b, "-1"...)
	} else {
		b = append(b, "-0"...)
	}
	if sc.parentID != 0 {
		b = append(b, '-')
		b = appendHex64(b, sc.parentID)
	}
	return string(b)
}

// extractW3C parses traceparent (W3C Trace Context level 1). found is
// false when the header is absent.
func extractW3C(h message.Headers) (sc spanContext, found bool, err error) {
	tp, ok := h.Get(hdrTraceparent)
	if !ok {
		return sc, false, nil
	}
	// version "-" trace-id(32) "-" parent-id(16) "-" flags(2); later
	// versions may append fields after another '-'.
	if len(tp) < 55 || (len(tp) > 55 && (tp[:2] == "00" || tp[55] != '-')) ||
		tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return sc, true, errBadContext
	}
	if !lowerHex(tp[:2]) || tp[:2] == "ff" || !lowerHex(tp[3:35]) || !lowerHex(tp[36:52]) || !lowerHex(tp[53:55]) {
		return sc, true, errBadContext
	}
	sc.traceHi, _ = parseHex64(tp[3:19])
	sc.traceLo, _ = parseHex64(tp[19:35])
	sc.spanID, _ = parseHex64(tp[36:52])
	if sc.traceHi == 0 && sc.traceLo == 0 || sc.spanID == 0 {
		return sc, true, errBadContext
	}
	flags, _ := parseHex64(tp[53:55])
	sc.sampled = flags&1 == 1
	sc.tracestate = h.Value(hdrTracestate)
	return sc, true, nil
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// injectW3C writes traceparent (and tracestate when there is one). A 64-bit
// trace id is left-padded with zeros, as W3C ids are 128-bit.
func injectW3C(h *message.Headers, sc *spanContext) {
	var a [55]byte
	b := append(a[:0], "00-"...)
	b = appendHex64(b, sc.traceHi)
	b = appendHex64(b, sc.traceLo)
	b = append(b, '-')
	b = appendHex64(b, sc.spanID)
	if sc.sampled {
		b = append(b, "-01"...)
	} else {
		b = append(b, "-00"...)
	}
	h.Set(hdrTraceparent, string(b))
	if sc.tracestate != "" {
		h.Set(hdrTracestate, sc.tracestate)
	}
}
