package tracing

import (
	"math"
	"math/rand/v2"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/stats"
)

// Reason is why a request is (or is not) traced. As in Envoy's UUID
// request-id extension, it travels inside x-request-id itself: the UUID's
// version digit (position 14) is rewritten, so every proxy downstream of
// the decision sees it without another header.
type Reason uint8

const (
	NotTraceable  Reason = iota // '4', a plain v4 UUID
	Sampling                    // 'a': randomly sampled
	ServiceForced               // '9': x-envoy-force-trace
	ClientForced                // 'b': x-client-trace-id
)

const (
	hdrRequestID     = "x-request-id"
	hdrForceTrace    = "x-envoy-force-trace"
	hdrClientTraceID = "x-client-trace-id"
	uuidLen          = 36
	traceBytePos     = 14
)

func reasonOf(id string) Reason {
	if len(id) != uuidLen {
		return NotTraceable
	}
	switch id[traceBytePos] {
	case '9':
		return ServiceForced
	case 'a':
		return Sampling
	case 'b':
		return ClientForced
	}
	return NotTraceable
}

var reasonByte = [...]byte{NotTraceable: '4', Sampling: 'a', ServiceForced: '9', ClientForced: 'b'}

// setReason rewrites x-request-id's trace digit; ids that are not UUIDs are
// left alone (and so never carry a decision).
func setReason(h *message.Headers, id string, r Reason) {
	if len(id) != uuidLen || id[traceBytePos] == reasonByte[r] {
		return
	}
	b := []byte(id)
	b[traceBytePos] = reasonByte[r]
	h.Set(hdrRequestID, string(b))
}

// fraction is a FractionalPercent: enabled when v % denominator < numerator.
type fraction struct {
	num, den uint64
}

func (f fraction) enabled(v uint64) bool { return v%f.den < f.num }

// percentOf10000 converts an HCM Percent to a fraction of 10000, rounded, as
// Envoy does for random_sampling and overall_sampling (default 100%).
func percentOf10000(p *typev3.Percent) fraction {
	if p == nil {
		return fraction{10000, 10000}
	}
	return fraction{uint64(math.Round(p.GetValue() * 100)), 10000}
}

// sampling holds the connection manager's three sampling knobs.
type sampling struct {
	client  fraction // of 100, the value truncated (Envoy's behaviour)
	random  fraction // of 10000
	overall fraction // of 10000
}

func newSampling(client, random, overall *typev3.Percent) sampling {
	s := sampling{client: fraction{100, 100}, random: percentOf10000(random), overall: percentOf10000(overall)}
	if client != nil {
		s.client = fraction{uint64(client.GetValue()), 100}
	}
	return s
}

// decide applies Envoy's request tracing decision to req: a request id
// already carrying a reason keeps it; otherwise x-client-trace-id (subject
// to client_sampling), x-envoy-force-trace, then random_sampling on the
// request id's value; finally overall_sampling can veto. The outcome is
// packed back into x-request-id. Without a usable x-request-id nothing is
// decided and the request is not traced.
func (s *sampling) decide(h *message.Headers) Reason {
	id, ok := h.Get(hdrRequestID)
	if !ok || len(id) < 8 {
		return NotTraceable
	}
	v, ok := parseHex64(id[:8])
	if !ok {
		return NotTraceable
	}
	v %= 10000
	r := reasonOf(id)
	if r == NotTraceable {
		switch {
		case h.Has(hdrClientTraceID) && s.client.enabled(rand.Uint64()):
			r = ClientForced
		case h.Has(hdrForceTrace):
			r = ServiceForced
		case s.random.enabled(v):
			r = Sampling
		}
	}
	if !s.overall.enabled(v) {
		r = NotTraceable
	}
	if len(id) != uuidLen {
		// The decision lives in the UUID; an id that is not one cannot
		// carry it, and Envoy then reads "not traceable".
		return NotTraceable
	}
	setReason(h, id, r)
	return r
}

// decisionStats are the connection manager's tracing counters
// (http.<stat_prefix>.tracing.*).
type decisionStats struct {
	byReason [4]*stats.Counter
}

func newDecisionStats(st *stats.Store, prefix string) *decisionStats {
	sc := st.Scope("http").Scope(prefix).Scope("tracing")
	sc.Counter("health_check") // Legate does no health-check filtering; kept for parity
	return &decisionStats{byReason: [4]*stats.Counter{
		NotTraceable:  sc.Counter("not_traceable"),
		Sampling:      sc.Counter("random_sampling"),
		ServiceForced: sc.Counter("service_forced"),
		ClientForced:  sc.Counter("client_enabled"),
	}}
}
