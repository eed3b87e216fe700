package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/admin"
	"github.com/legate-proxy/legate/internal/admin/dashboard"
	"github.com/legate-proxy/legate/internal/stats"
	"github.com/legate-proxy/legate/internal/tracing"
)

// syncBuffer is a bytes.Buffer safe for the collector's handler goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startTestCollector(t *testing.T) (*collector, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	c, err := startCollector("127.0.0.1:0", "", out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c, out
}

// Spans as Legate's Zipkin exporter writes them (zipkin-go's JSON model).
const (
	span1 = `{"traceId":"7a8d6443bb9936c8","id":"7a8d6443bb9936c8","name":"service1","kind":"SERVER",` +
		`"timestamp":1763780000000000,"duration":1200,"localEndpoint":{"serviceName":"front-proxy","ipv4":"127.0.0.1"},` +
		`"tags":{"upstream_cluster":"service1","http.status_code":"200"}}`
	span2 = `{"traceId":"00000000000000000000000000c0ffee","id":"00000000000000b2","parentId":"00000000000000a1","name":"",` +
		`"tags":{"upstream_cluster":"service2"}}`
)

func TestCollector(t *testing.T) {
	gz := func(s string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		_, _ = w.Write([]byte(s))
		_ = w.Close()
		return b.String()
	}
	tests := []struct {
		name, method, path, ctype, encoding, body string
		status                                    int
		spans                                     int    // counted after this request, in all
		line                                      string // report line printed, "" for none
	}{
		{"one span", "POST", "/api/v2/spans", "application/json", "", "[" + span1 + "]", 202, 1,
			"[zipkin] 1 span received (1 in all), latest trace 7a8d6443bb9936c8 (service1)"},
		{"batch, unnamed span labelled by cluster", "POST", "/api/v2/spans", "application/json; charset=utf-8", "", "[" + span1 + "," + span2 + "]", 202, 3,
			"[zipkin] 2 spans received (3 in all), latest trace 00000000000000000000000000c0ffee (service2)"},
		{"gzip", "POST", "/api/v2/spans", "application/json", "gzip", gz("[" + span1 + "]"), 202, 4,
			"[zipkin] 1 span received (4 in all), latest trace 7a8d6443bb9936c8 (service1)"},
		{"no content type", "POST", "/api/v2/spans", "", "", "[" + span1 + "]", 202, 5, "[zipkin] 1 span received (5 in all)"},
		{"empty list", "POST", "/api/v2/spans", "application/json", "", "[]", 202, 5, ""},
		{"not a list", "POST", "/api/v2/spans", "application/json", "", span1, 400, 5, ""},
		{"truncated", "POST", "/api/v2/spans", "application/json", "", "[" + span1, 400, 5, ""},
		{"span without ids", "POST", "/api/v2/spans", "application/json", "", `[{"name":"x"}]`, 400, 5, ""},
		{"bad gzip", "POST", "/api/v2/spans", "application/json", "gzip", "[]", 400, 5, ""},
		{"protobuf", "POST", "/api/v2/spans", "application/x-protobuf", "", "\x0a\x00", 415, 5, ""},
		{"GET", "GET", "/api/v2/spans", "", "", "", 405, 5, ""},
		{"other path", "POST", "/api/v1/spans", "application/json", "", "[" + span1 + "]", 404, 5, ""},
	}
	c, out := startTestCollector(t)
	client := &http.Client{Timeout: 10 * time.Second}
	for _, tt := range tests {
		before := out.String()
		req, err := http.NewRequest(tt.method, "http://"+c.addr()+tt.path, strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if tt.ctype != "" {
			req.Header.Set("Content-Type", tt.ctype)
		}
		if tt.encoding != "" {
			req.Header.Set("Content-Encoding", tt.encoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d (%q), want %d", tt.name, resp.StatusCode, msg, tt.status)
		}
		// The line is printed before the handler returns, so it is there now.
		if _, total, _ := c.snapshot(); total != tt.spans {
			t.Errorf("%s: %d spans in all, want %d", tt.name, total, tt.spans)
		}
		printed := strings.TrimPrefix(out.String(), before)
		if tt.line == "" && printed != "" {
			t.Errorf("%s: printed %q, want nothing", tt.name, printed)
		}
		if tt.line != "" && !strings.HasPrefix(printed, tt.line) {
			t.Errorf("%s: printed %q, want %q", tt.name, printed, tt.line)
		}
	}
	reports, _, spans := c.snapshot()
	if reports != 4 || len(spans) != 5 || spans[2].TraceID != "00000000000000000000000000c0ffee" || spans[2].ParentID != "00000000000000a1" {
		t.Errorf("%d reports, spans %+v", reports, spans)
	}
}

func TestCollectorTooLarge(t *testing.T) {
	c, _ := startTestCollector(t)
	body := "[" + strings.Repeat(span1+",", maxReportBytes/len(span1)+1) + span1 + "]"
	resp, err := http.Post("http://"+c.addr()+"/api/v2/spans", "application/json", strings.NewReader(body))
	if err != nil {
		// The server may close the connection while the body is still
		// being sent; nothing must have been counted either way.
		t.Logf("POST: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
	}
	if _, total, _ := c.snapshot(); total != 0 {
		t.Errorf("%d spans counted from an oversized report", total)
	}
}

func TestCollectorPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if c, err := startCollector(ln.Addr().String(), "", nil); err == nil {
		c.close()
		t.Fatal("collector started on a port in use")
	}
}

func postSpans(t *testing.T, c *collector, spans ...string) {
	t.Helper()
	resp, err := http.Post("http://"+c.addr()+"/api/v2/spans", "application/json", strings.NewReader("["+strings.Join(spans, ",")+"]"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %s", resp.Status)
	}
}

func TestCheckSpans(t *testing.T) {
	c, _ := startTestCollector(t)
	if _, err := checkSpans(c); err == nil {
		t.Error("passed with no spans")
	}
	postSpans(t, c, span1)
	if _, err := checkSpans(c); err == nil || !strings.Contains(err.Error(), "service2") {
		t.Errorf("with service1 only: %v, want service2 missing", err)
	}
	// span2 has no name: its upstream_cluster tag counts.
	postSpans(t, c, span2)
	name, err := checkSpans(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(name, "2 spans in 2 reports") {
		t.Errorf("reported %q", name)
	}
}

// serveAdmin serves Legate's admin handler on loopback, with the dashboard
// when d is set, as the server wires it.
func serveAdmin(t *testing.T, d *dashboard.Dashboard) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var deps admin.Deps
	if d != nil {
		deps.Dashboard = d.Handler()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = admin.Serve(ctx, ln, admin.New(deps))
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

func TestCheckDashboard(t *testing.T) {
	client := &http.Client{Timeout: 10 * time.Second}
	record := func(traceID, name string) tracing.SpanRecord {
		return tracing.SpanRecord{TraceID: traceID, SpanID: "00000000000000b2", Name: name, Service: "front-proxy",
			Kind: "SERVER", Start: time.Now(), Duration: time.Millisecond, Sampled: true}
	}

	t.Run("no dashboard", func(t *testing.T) {
		addr := serveAdmin(t, nil)
		why, skipped, err := checkDashboard(client, addr, nil)
		if !skipped || err != nil {
			t.Errorf("skipped %v, err %v", skipped, err)
		}
		t.Log(why)
	})
	t.Run("no span ring", func(t *testing.T) {
		addr := serveAdmin(t, dashboard.New(dashboard.Deps{Store: stats.NewStore()}))
		if _, skipped, err := checkDashboard(client, addr, nil); skipped || err == nil {
			t.Errorf("skipped %v, err %v; want a failure", skipped, err)
		}
	})
	t.Run("traces", func(t *testing.T) {
		ring := tracing.NewRing(16)
		addr := serveAdmin(t, dashboard.New(dashboard.Deps{Store: stats.NewStore(), Ring: ring}))
		c, _ := startTestCollector(t)

		if _, _, err := checkDashboard(client, addr, c); err == nil {
			t.Error("passed with an empty ring")
		}
		ring.Add(record("0000000000000000000000000000abcd", "other"))
		ring.Add(record("00000000000000000000000000c0ffee", "service2"))
		if _, _, err := checkDashboard(client, addr, nil); err != nil {
			t.Errorf("without a collector: %v", err)
		}
		// The collector has not received that trace yet.
		if _, _, err := checkDashboard(client, addr, c); err == nil {
			t.Error("passed with a trace the collector never saw")
		}
		postSpans(t, c, span2) // the same trace id
		name, skipped, err := checkDashboard(client, addr, c)
		if err != nil || skipped {
			t.Fatalf("skipped %v, err %v", skipped, err)
		}
		if !strings.Contains(name, "c0ffee (service2, 1 span), also received by the collector") {
			t.Errorf("reported %q", name)
		}
	})
}

func TestNormTraceID(t *testing.T) {
	if normTraceID("0000000000000000000000000000C0FFEE") != normTraceID("0000000000c0ffee") {
		t.Error("64-bit id does not match its 128-bit spelling")
	}
	if normTraceID("00000000000000010000000000c0ffee") == normTraceID("0000000000c0ffee") {
		t.Error("different 128-bit id matched")
	}
}
