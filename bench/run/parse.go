package main

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// wrkResult is what the bench reads from wrk's report.
type wrkResult struct {
	Requests     int64
	Duration     time.Duration
	RPS          float64
	P50, P99     time.Duration
	Non2xx       int64 // "Non-2xx or 3xx responses"
	SocketErrors int64 // connect + read + write + timeout
}

var (
	reRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),`)
	reRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	reP50      = regexp.MustCompile(`(?m)^\s+50(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$`)
	reP99      = regexp.MustCompile(`(?m)^\s+99(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$`)
	reNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
	reSockErr  = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// parseWrk reads the report of `wrk --latency`. The request count, rate and
// both percentiles are required; the error lines appear only when non-zero.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := reRequests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output has no %q line", "N requests in T")
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.Duration = parseDuration(m[2], m[3])

	m = reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output has no Requests/sec line")
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)

	for _, p := range []struct {
		re  *regexp.Regexp
		dst *time.Duration
		pct string
	}{{reP50, &r.P50, "50%"}, {reP99, &r.P99, "99%"}} {
		m = p.re.FindStringSubmatch(out)
		if m == nil {
			return r, fmt.Errorf("wrk output has no %s latency (was --latency given?)", p.pct)
		}
		*p.dst = parseDuration(m[1], m[2])
	}

	if m = reNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m = reSockErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.SocketErrors += n
		}
	}
	return r, nil
}

// parseDuration reads wrk's "297.00us" style values.
func parseDuration(num, unit string) time.Duration {
	f, _ := strconv.ParseFloat(num, 64)
	scale := map[string]float64{
		"us": float64(time.Microsecond), "ms": float64(time.Millisecond),
		"s": float64(time.Second), "m": float64(time.Minute), "h": float64(time.Hour),
	}[unit]
	return time.Duration(f * scale)
}
