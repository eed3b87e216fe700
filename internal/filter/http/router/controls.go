package router

import (
	"strconv"
	"strings"
	"time"

	"github.com/legate-proxy/legate/internal/http/message"
	"github.com/legate-proxy/legate/internal/routetable"
)

// The x-envoy-* request headers that steer the router. The connection
// manager strips them from requests that are not internal, so whatever
// arrives here is trusted and honoured, as Envoy's router does.
const (
	hdrTimeout        = "x-envoy-upstream-rq-timeout-ms"
	hdrPerTryTimeout  = "x-envoy-upstream-rq-per-try-timeout-ms"
	hdrRetryOn        = "x-envoy-retry-on"
	hdrRetryGrpcOn    = "x-envoy-retry-grpc-on"
	hdrMaxRetries     = "x-envoy-max-retries"
	hdrRetriableCodes = "x-envoy-retriable-status-codes"
	hdrAltStatName    = "x-envoy-upstream-alt-stat-name"
	hdrAltResponse    = "x-envoy-upstream-rq-timeout-alt-response"
	hdrHedge          = "x-envoy-hedge-on-per-try-timeout"
	hdrExpectedTmo    = "x-envoy-expected-rq-timeout-ms"
	hdrAttemptCount   = "x-envoy-attempt-count"
)

// strictHeader is one of the headers strict_check_headers may name.
type strictHeader uint8

const (
	strictTimeout strictHeader = 1 << iota
	strictPerTryTimeout
	strictMaxRetries
	strictRetryOn
	strictRetryGrpcOn
)

var strictNames = map[string]strictHeader{
	hdrTimeout: strictTimeout, hdrPerTryTimeout: strictPerTryTimeout, hdrMaxRetries: strictMaxRetries,
	hdrRetryOn: strictRetryOn, hdrRetryGrpcOn: strictRetryGrpcOn,
}

// grpcRetryOn is a set of x-envoy-retry-grpc-on conditions.
type grpcRetryOn uint8

const (
	grpcCancelled grpcRetryOn = 1 << iota
	grpcDeadlineExceeded
	grpcInternal
	grpcResourceExhausted
	grpcUnavailable
)

var grpcRetryNames = []struct {
	name   string
	bit    grpcRetryOn
	status string // grpc-status value
}{
	{"cancelled", grpcCancelled, "1"},
	{"deadline-exceeded", grpcDeadlineExceeded, "4"},
	{"internal", grpcInternal, "13"},
	{"resource-exhausted", grpcResourceExhausted, "8"},
	{"unavailable", grpcUnavailable, "14"},
}

// Every retry_on value Envoy's header accepts; those Legate cannot act on
// (envoy-ratelimited, retriable-headers, reset-before-request,
// http3-post-connect-failure) are valid but do nothing.
var retryOnHeaderNames = map[string]routetable.RetryOn{
	"5xx": routetable.Retry5xx, "gateway-error": routetable.RetryGatewayError,
	"reset": routetable.RetryReset, "connect-failure": routetable.RetryConnectFailure,
	"retriable-4xx": routetable.RetryRetriable4xx, "refused-stream": routetable.RetryRefusedStream,
	"retriable-status-codes": routetable.RetryRetriableStatusCodes,
	"envoy-ratelimited":      0, "retriable-headers": 0, "reset-before-request": 0,
	"http3-post-connect-failure": 0,
}

// controls are what a request's x-envoy-* headers asked for.
type controls struct {
	timeout, perTry       time.Duration
	hasTimeout, hasPerTry bool
	retryOn               routetable.RetryOn
	grpcOn                grpcRetryOn
	maxRetries            uint32
	hasMaxRetries         bool
	retriableCodes        []uint32
	altStatName           string
	altResponse           bool
	hedge                 bool // x-envoy-hedge-on-per-try-timeout: true
}

// maxAltStatName bounds the stat tree a client can name.
const maxAltStatName = 64

// readControls parses the control headers and removes those Envoy
// consumes (the timeouts, the alternate stat name and response) from the
// upstream request. With strict_check_headers, the first invalid header
// named there is returned (bad != ""), and nothing else is done.
func (f *Filter) readControls(req *message.Request) (c controls, bad, badValue string) {
	h := req.Header
	consumed := false
	for i := range h {
		name := h[i].Name
		if len(name) < len("x-envoy-") || !strings.HasPrefix(name, "x-envoy-") {
			continue
		}
		v := h[i].Value
		switch name {
		case hdrTimeout:
			ms, err := strconv.ParseUint(v, 10, 32)
			if err != nil && f.strict&strictTimeout != 0 {
				return c, name, v
			}
			if err == nil {
				c.timeout, c.hasTimeout = time.Duration(ms)*time.Millisecond, true
			}
			consumed = true
		case hdrPerTryTimeout:
			ms, err := strconv.ParseUint(v, 10, 32)
			if err != nil && f.strict&strictPerTryTimeout != 0 {
				return c, name, v
			}
			if err == nil {
				c.perTry, c.hasPerTry = time.Duration(ms)*time.Millisecond, true
			}
			consumed = true
		case hdrMaxRetries:
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil && f.strict&strictMaxRetries != 0 {
				return c, name, v
			}
			if err == nil {
				c.maxRetries, c.hasMaxRetries = uint32(n), true
			}
		case hdrRetryOn:
			on, ok := parseRetryOn(v)
			if !ok && f.strict&strictRetryOn != 0 {
				return c, name, v
			}
			c.retryOn |= on
		case hdrRetryGrpcOn:
			on, ok := parseGrpcRetryOn(v)
			if !ok && f.strict&strictRetryGrpcOn != 0 {
				return c, name, v
			}
			c.grpcOn |= on
		case hdrRetriableCodes:
			for _, s := range strings.Split(v, ",") {
				if n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32); err == nil && n >= 100 && n <= 599 {
					c.retriableCodes = append(c.retriableCodes, uint32(n))
				}
			}
		case hdrAltStatName:
			if validStatName(v) {
				c.altStatName = v
			}
			consumed = true
		case hdrAltResponse:
			c.altResponse = true
			consumed = true
		case hdrHedge:
			c.hedge = v == "true"
			consumed = true
		}
	}
	if consumed {
		req.Header.Del(hdrTimeout)
		req.Header.Del(hdrPerTryTimeout)
		req.Header.Del(hdrAltStatName)
		req.Header.Del(hdrAltResponse)
		req.Header.Del(hdrHedge)
	}
	return c, "", ""
}

func parseRetryOn(v string) (routetable.RetryOn, bool) {
	var on routetable.RetryOn
	ok := true
	for v != "" {
		tok := v
		if i := strings.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = ""
		}
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		bit, found := retryOnHeaderNames[tok]
		if !found {
			ok = false
			continue
		}
		on |= bit
	}
	return on, ok
}

func parseGrpcRetryOn(v string) (grpcRetryOn, bool) {
	var on grpcRetryOn
	ok := true
	for _, tok := range strings.Split(v, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		found := false
		for _, n := range grpcRetryNames {
			if n.name == tok {
				on |= n.bit
				found = true
				break
			}
		}
		ok = ok && found
	}
	return on, ok
}

// validStatName allows what stat names are made of, and bounds the length.
func validStatName(s string) bool {
	if s == "" || len(s) > maxAltStatName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return s[0] != '.' && s[len(s)-1] != '.'
}

// retryOnGrpc reports whether a response's grpc-status (a headers-only
// gRPC response carries it in the headers) is one the request asked to
// retry.
func (c *controls) retryOnGrpc(resp *message.Response) bool {
	if c.grpcOn == 0 {
		return false
	}
	st, ok := resp.Header.Get("grpc-status")
	if !ok {
		return false
	}
	for _, n := range grpcRetryNames {
		if c.grpcOn&n.bit != 0 && st == n.status {
			return true
		}
	}
	return false
}

// effectivePolicy merges the headers' retry controls into the route's
// policy, as Envoy does: retry_on conditions add up, x-envoy-max-retries
// replaces num_retries, and the per-try timeout header replaces the
// route's. It returns the route's policy itself when nothing changes.
func (c *controls) effectivePolicy(p *routetable.RetryPolicy) *routetable.RetryPolicy {
	retrying := c.retryOn != 0 || c.grpcOn != 0
	if !retrying && !c.hasPerTry && len(c.retriableCodes) == 0 {
		return p
	}
	var e routetable.RetryPolicy
	if p != nil {
		e = *p
	} else {
		e = routetable.RetryPolicy{NumRetries: routetable.DefaultNumRetries, BaseInterval: routetable.DefaultBaseInterval,
			MaxInterval: 10 * routetable.DefaultBaseInterval, HostSelectionMaxAttempts: 1}
		if !retrying {
			e.NumRetries = 0
		}
	}
	e.On |= c.retryOn
	if c.hasMaxRetries && (e.On != 0 || c.grpcOn != 0) {
		e.NumRetries = c.maxRetries
	}
	if len(c.retriableCodes) > 0 {
		e.RetriableStatusCodes = append(append([]uint32(nil), e.RetriableStatusCodes...), c.retriableCodes...)
	}
	if c.hasPerTry {
		e.PerTryTimeout = c.perTry
	}
	return &e
}
