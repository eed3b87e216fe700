package routetable

import (
	"fmt"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// RetryOn is a set of retry_on conditions.
type RetryOn uint16

const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryReset
	RetryConnectFailure
	RetryRetriable4xx
	RetryRefusedStream
	RetryRetriableStatusCodes
)

var retryOnNames = []struct {
	name string
	bit  RetryOn
}{
	{"5xx", Retry5xx},
	{"gateway-error", RetryGatewayError},
	{"reset", RetryReset},
	{"connect-failure", RetryConnectFailure},
	{"retriable-4xx", RetryRetriable4xx},
	{"refused-stream", RetryRefusedStream},
	{"retriable-status-codes", RetryRetriableStatusCodes},
}

// ResetKind is why an upstream attempt ended without a response.
type ResetKind uint8

const (
	// ResetConnectFailure: the connection to the host could not be made.
	ResetConnectFailure ResetKind = iota + 1
	// ResetReset: the stream or connection was reset or closed before
	// response headers, or the per-try timeout fired.
	ResetReset
	// ResetRefusedStream: HTTP/2 REFUSED_STREAM.
	ResetRefusedStream
)

// Default retry values, as in Envoy.
const (
	DefaultNumRetries   = 1
	DefaultBaseInterval = 25 * time.Millisecond
)

// RetryPolicy is a compiled retry_policy. It is immutable.
type RetryPolicy struct {
	On         RetryOn
	NumRetries uint32
	// PerTryTimeout is 0 when unset (the route timeout then bounds tries).
	PerTryTimeout time.Duration
	BaseInterval  time.Duration
	MaxInterval   time.Duration
	// RetriableStatusCodes apply when On has RetryRetriableStatusCodes.
	RetriableStatusCodes []uint32
	// PreviousHosts is the previous_hosts retry_host_predicate: retries
	// avoid hosts already tried.
	PreviousHosts bool
	// HostSelectionMaxAttempts is host_selection_retry_max_attempts (1 by default).
	HostSelectionMaxAttempts int64
}

const previousHostsType = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"

func compileRetryPolicy(rp *routev3.RetryPolicy, path string) (*RetryPolicy, error) {
	p := &RetryPolicy{
		NumRetries:               DefaultNumRetries,
		BaseInterval:             DefaultBaseInterval,
		HostSelectionMaxAttempts: 1,
	}
	if rp.GetRetryOn() != "" {
		for _, s := range strings.Split(rp.GetRetryOn(), ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			found := false
			for _, n := range retryOnNames {
				if n.name == s {
					p.On |= n.bit
					found = true
					break
				}
			}
			if !found {
				return nil, fmt.Errorf("%s.retry_on: %q is not supported", path, s)
			}
		}
	}
	if n := rp.GetNumRetries(); n != nil {
		p.NumRetries = n.GetValue()
	}
	if d := rp.GetPerTryTimeout(); d != nil {
		p.PerTryTimeout = d.AsDuration()
	}
	if bo := rp.GetRetryBackOff(); bo != nil {
		if bo.GetBaseInterval() == nil || bo.GetBaseInterval().AsDuration() <= 0 {
			return nil, fmt.Errorf("%s.retry_back_off.base_interval: must be greater than zero", path)
		}
		p.BaseInterval = bo.GetBaseInterval().AsDuration()
		if bo.GetMaxInterval() != nil {
			p.MaxInterval = bo.GetMaxInterval().AsDuration()
			if p.MaxInterval < p.BaseInterval {
				return nil, fmt.Errorf("%s.retry_back_off.max_interval: must be greater than or equal to the base_interval", path)
			}
		}
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = 10 * p.BaseInterval
	}
	p.RetriableStatusCodes = append([]uint32(nil), rp.GetRetriableStatusCodes()...)
	for i, hp := range rp.GetRetryHostPredicate() {
		tc := hp.GetTypedConfig()
		switch {
		case tc != nil && tc.GetTypeUrl() == previousHostsType,
			tc == nil && hp.GetName() == "envoy.retry_host_predicates.previous_hosts":
			p.PreviousHosts = true
		default:
			what := hp.GetName()
			if tc != nil {
				what = strings.TrimPrefix(tc.GetTypeUrl(), "type.googleapis.com/")
			}
			return nil, fmt.Errorf("%s.retry_host_predicate[%d]: %s is not supported", path, i, what)
		}
	}
	if n := rp.GetHostSelectionRetryMaxAttempts(); n > 0 {
		p.HostSelectionMaxAttempts = n
	}
	return p, nil
}

// RetryOnStatus reports whether a response with this status may be retried.
func (p *RetryPolicy) RetryOnStatus(code int) bool {
	if p == nil {
		return false
	}
	if p.On&Retry5xx != 0 && code >= 500 && code <= 599 {
		return true
	}
	if p.On&RetryGatewayError != 0 && (code == 502 || code == 503 || code == 504) {
		return true
	}
	if p.On&RetryRetriable4xx != 0 && code == 409 {
		return true
	}
	if p.On&RetryRetriableStatusCodes != 0 {
		for _, c := range p.RetriableStatusCodes {
			if int(c) == code {
				return true
			}
		}
	}
	return false
}

// RetryOnReset reports whether an attempt that ended without a response may
// be retried. As in Envoy, 5xx, gateway-error and reset cover every kind,
// including connect failures.
func (p *RetryPolicy) RetryOnReset(kind ResetKind) bool {
	if p == nil {
		return false
	}
	if p.On&(Retry5xx|RetryGatewayError|RetryReset) != 0 {
		return true
	}
	switch kind {
	case ResetConnectFailure:
		return p.On&RetryConnectFailure != 0
	case ResetRefusedStream:
		return p.On&RetryRefusedStream != 0
	}
	return false
}

// Backoff returns how long to wait before retry number attempt (1 for the
// first retry). It is Envoy's fully jittered exponential back-off: a
// uniform value in [0, (2^attempt - 1) * base), the bound capped at
// MaxInterval. rnd is a random number.
func (p *RetryPolicy) Backoff(attempt int, rnd uint64) time.Duration {
	base, maxI := p.BaseInterval, p.MaxInterval
	if base <= 0 {
		base = DefaultBaseInterval
	}
	if maxI <= 0 {
		maxI = 10 * base
	}
	if attempt < 1 {
		attempt = 1
	}
	bound := maxI
	if attempt < 62 {
		mult := int64(1)<<uint(attempt) - 1
		if b := int64(base); b <= int64(maxI)/mult {
			bound = time.Duration(b * mult)
		}
	}
	if bound > maxI {
		bound = maxI
	}
	return time.Duration(rnd % uint64(bound))
}
