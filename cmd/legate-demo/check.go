package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/legate-proxy/legate/internal/tooling/child"
)

// serviceReply is the part of demo-service's answer the check reads.
type serviceReply struct {
	Hostname  string `json:"hostname"`
	IP        string `json:"ip"`
	ServiceID string `json:"serviceid"`
	Success   bool   `json:"success"`
}

// observers are what the demo watches besides the answers: the spans Legate
// reports and the access-log lines it prints.
type observers struct {
	zipkin    *collector   // nil when the config traces to no loopback collector
	accessLog *lineCounter // counts accessLogPatterns; nil without a stdout access log
}

// accessLogPatterns pick the demo's requests out of access-log lines in
// Envoy's default format ("GET /service/1 HTTP/1.1" ...).
var accessLogPatterns = [2]string{`"GET /service/1 `, `"GET /service/2 `}

// observeTimeout bounds the wait for spans and log lines: Legate sends
// spans in batches of 5 or every 5 s, and flushes access logs every second.
const observeTimeout = 30 * time.Second

// check is the demo's smoke test: through Legate, every replica of each
// service answers; HTTPS works; admin reports the clusters; the requests
// reach the Zipkin collector, the dashboard's trace list and the access
// log. It runs every step and reports each, so one failure does not hide
// the others.
func check(ctx context.Context, dc *demoConfig, reps []replica, n int, warmup time.Duration, obs observers, out io.Writer) error {
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			// The demo's certificate is self-signed; curl -k does the same.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			ForceAttemptHTTP2: true,
		},
	}
	defer client.CloseIdleConnections()

	checks := &checkReport{out: out}
	report := checks.report

	for _, svc := range []string{"1", "2"} {
		var want []string
		for _, r := range reps {
			if r.service == svc {
				want = append(want, r.name)
			}
		}
		url := "http://" + dc.HTTPAddr + "/service/" + svc
		// STRICT_DNS hosts appear once the first resolution completes.
		if err := untilOK(ctx, client, url, warmup); err != nil {
			report("service"+svc+" first answer", err)
			continue
		}
		seen, err := roundRobin(client, url, svc, n)
		if err == nil && !slices.Equal(seen, want) {
			err = fmt.Errorf("answered by %v, want all of %v", seen, want)
		}
		report(fmt.Sprintf("service%s: %d requests via %s answered by %v", svc, n, dc.HTTPAddr, seen), err)
	}

	if dc.HTTPSAddr != "" {
		url := "https://" + dc.HTTPSAddr + "/service/2"
		var proto string
		err := func() error {
			resp, err := client.Get(url)
			if err != nil {
				return err
			}
			proto = resp.Proto
			r, err := decodeReply(resp, "2")
			if err != nil {
				return err
			}
			if !strings.HasPrefix(r.Hostname, "service2-") {
				return fmt.Errorf("answered by %q", r.Hostname)
			}
			return nil
		}()
		report(fmt.Sprintf("HTTPS %s (%s)", url, proto), err)
	}

	if dc.AdminAddr != "" {
		base := "http://" + dc.AdminAddr
		report("admin /ready", expectBody(client, base+"/ready", "LIVE"))
		report("admin /stats/prometheus", expectBody(client, base+"/stats/prometheus",
			`envoy_cluster_upstream_rq_total{envoy_cluster_name="service1"}`))
		var hostLines []string
		for _, r := range reps {
			hostLines = append(hostLines, fmt.Sprintf("service%s::%s:%d::", r.service, r.ip, dc.Service))
		}
		report("admin /clusters", expectBody(client, base+"/clusters", hostLines...))
	}

	if obs.zipkin != nil {
		var name string
		err := eventually(ctx, observeTimeout, func() error {
			var err error
			name, err = checkSpans(obs.zipkin)
			return err
		})
		report(name, err)
	}
	if dc.AdminAddr != "" {
		var name string
		var skipped bool
		err := eventually(ctx, observeTimeout, func() error {
			var err error
			name, skipped, err = checkDashboard(client, dc.AdminAddr, obs.zipkin)
			return err
		})
		if skipped {
			fmt.Fprintf(out, "skip dashboard not available: skipped (%s)\n", name)
		} else {
			report(name, err)
		}
	}
	if obs.accessLog != nil {
		var name string
		err := eventually(ctx, observeTimeout, func() error {
			one, two := obs.accessLog.count(0), obs.accessLog.count(1)
			name = fmt.Sprintf("access log: Legate printed %d lines for /service/1 and %d for /service/2", one, two)
			if one < int64(n) || two < int64(n) {
				return fmt.Errorf("want at least %d of each", n)
			}
			return nil
		})
		report(name, err)
	}

	return checks.result()
}

// untilOK retries url until it answers 200 or timeout passes.
func untilOK(ctx context.Context, client *http.Client, url string, timeout time.Duration) error {
	err := child.Poll(ctx, nil, timeout, 200*time.Millisecond, func() error { return child.GetOK(client, url) })
	if te, ok := errors.AsType[*child.TimeoutError](err); ok {
		return fmt.Errorf("no 200 within %v: %w", timeout, te.Err)
	}
	return err
}

// roundRobin sends n requests and returns the sorted distinct hostnames that
// answered; every answer must be a 200 from the right service.
func roundRobin(client *http.Client, url, svc string, n int) ([]string, error) {
	var seen []string
	for i := 0; i < n; i++ {
		resp, err := client.Get(url)
		if err != nil {
			return seen, fmt.Errorf("request %d: %w", i+1, err)
		}
		r, err := decodeReply(resp, svc)
		if err != nil {
			return seen, fmt.Errorf("request %d: %w", i+1, err)
		}
		if !slices.Contains(seen, r.Hostname) {
			seen = append(seen, r.Hostname)
		}
	}
	slices.Sort(seen)
	return seen, nil
}

func decodeReply(resp *http.Response, svc string) (serviceReply, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return serviceReply{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return serviceReply{}, fmt.Errorf("status %s: %q", resp.Status, body)
	}
	var r serviceReply
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("body %q: %w", body, err)
	}
	if !r.Success || r.ServiceID != svc {
		return r, fmt.Errorf("unexpected answer %q", body)
	}
	return r, nil
}

// expectBody GETs url and requires a 200 whose body contains every want.
func expectBody(client *http.Client, url string, want ...string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<22))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	for _, w := range want {
		if !strings.Contains(string(body), w) {
			return fmt.Errorf("body lacks %q", w)
		}
	}
	return nil
}

// eventually retries try every 200 ms until it succeeds or timeout passes,
// returning its last error.
func eventually(ctx context.Context, timeout time.Duration, try func() error) error {
	err := child.Poll(ctx, nil, timeout, 200*time.Millisecond, try)
	if te, ok := errors.AsType[*child.TimeoutError](err); ok {
		return te.Err
	}
	return err
}

// demoServices are the operations (route decorators) and clusters of the
// demo's two routes.
var demoServices = []string{"service1", "service2"}

// checkSpans requires the collector to hold spans of both services, by
// operation name or by the upstream_cluster tag. It returns the line to
// report.
func checkSpans(c *collector) (string, error) {
	reports, total, spans := c.snapshot()
	name := fmt.Sprintf("zipkin collector on %s: %d spans in %d reports", c.addr(), total, reports)
	var missing []string
	for _, svc := range demoServices {
		if !slices.ContainsFunc(spans, func(s zipkinSpan) bool { return s.Name == svc || s.Tags["upstream_cluster"] == svc }) {
			missing = append(missing, svc)
		}
	}
	if len(missing) > 0 {
		return name, fmt.Errorf("no span of %v yet", missing)
	}
	return name + ", with spans of " + strings.Join(demoServices, " and "), nil
}

// dashboardTrace is the part of a /dashboard/data trace summary the check
// reads.
type dashboardTrace struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Spans int    `json:"spans"`
}

// checkDashboard requires the admin dashboard's trace list to show a trace
// of one of the demo's services, and, with a collector, one the collector
// also received (the same request seen both ways). skipped is true when
// this Legate has no dashboard; name then says why.
func checkDashboard(client *http.Client, adminAddr string, zc *collector) (name string, skipped bool, err error) {
	url := "http://" + adminAddr + "/dashboard/data"
	name = "dashboard http://" + adminAddr + "/ lists a recent trace"
	resp, err := client.Get(url)
	if err != nil {
		return name, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<24))
	if err != nil {
		return name, false, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return "GET /dashboard/data: 404; the admin root page is the plain endpoint index", true, nil
	}
	if resp.StatusCode != http.StatusOK {
		return name, false, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var data struct {
		Traces *[]dashboardTrace `json:"traces"`
	}
	if err := json.Unmarshal(body, &data); err != nil {
		return name, false, fmt.Errorf("GET %s: %w", url, err)
	}
	if data.Traces == nil {
		return name, false, fmt.Errorf("GET %s: no trace list (\"traces\" is null: Legate keeps no span ring)", url)
	}
	received := map[string]bool{}
	if zc != nil {
		_, _, spans := zc.snapshot()
		for _, s := range spans {
			received[normTraceID(s.TraceID)] = true
		}
	}
	for _, t := range *data.Traces {
		if !slices.Contains(demoServices, t.Name) {
			continue
		}
		if zc != nil && !received[normTraceID(t.ID)] {
			continue
		}
		name = fmt.Sprintf("dashboard http://%s/ lists %d recent traces, e.g. %s (%s, %d %s)", adminAddr, len(*data.Traces), t.ID, t.Name, t.Spans, plural(t.Spans, "span", "spans"))
		if zc != nil {
			name += ", also received by the collector"
		}
		return name, false, nil
	}
	if zc != nil {
		return name, false, fmt.Errorf("none of its %d traces is of %v and received by the collector", len(*data.Traces), demoServices)
	}
	return name, false, fmt.Errorf("none of its %d traces is of %v", len(*data.Traces), demoServices)
}

// normTraceID lets a 64-bit trace id match its 128-bit spelling.
func normTraceID(id string) string {
	return strings.TrimLeft(strings.ToLower(id), "0")
}

// checkReport prints one line per check, "ok" or "FAIL", and counts the
// failures.
type checkReport struct {
	out    io.Writer
	failed int
}

func (c *checkReport) report(name string, err error) {
	if err != nil {
		c.failed++
		fmt.Fprintf(c.out, "FAIL %s: %v\n", name, err)
		return
	}
	fmt.Fprintf(c.out, "ok   %s\n", name)
}

// result is the checks' outcome, after a last line when all passed.
func (c *checkReport) result() error {
	if c.failed > 0 {
		return fmt.Errorf("%d check(s) failed", c.failed)
	}
	fmt.Fprintln(c.out, "all checks passed")
	return nil
}
