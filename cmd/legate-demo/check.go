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
)

// serviceReply is the part of demo-service's answer the check reads.
type serviceReply struct {
	Hostname  string `json:"hostname"`
	IP        string `json:"ip"`
	ServiceID string `json:"serviceid"`
	Success   bool   `json:"success"`
}

// check is the demo's smoke test: through Legate, every replica of each
// service answers; HTTPS works; admin reports the clusters. It runs every
// step and reports each, so one failure does not hide the others.
func check(ctx context.Context, dc *demoConfig, reps []replica, n int, warmup time.Duration, out io.Writer) error {
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			// The demo's certificate is self-signed; curl -k does the same.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			ForceAttemptHTTP2: true,
		},
	}
	defer client.CloseIdleConnections()

	failed := 0
	report := func(name string, err error) {
		if err != nil {
			failed++
			fmt.Fprintf(out, "FAIL %s: %v\n", name, err)
			return
		}
		fmt.Fprintf(out, "ok   %s\n", name)
	}

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

	if failed > 0 {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	fmt.Fprintln(out, "all checks passed")
	return nil
}

// untilOK retries url until it answers 200 or timeout passes.
func untilOK(ctx context.Context, client *http.Client, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 within %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-time.After(200 * time.Millisecond):
		}
	}
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
