package admin

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/admin/dashboard"
	"github.com/legate-proxy/legate/internal/stats"
)

// serveAdmin runs the admin handler on a loopback socket.
func serveAdmin(t *testing.T, deps Deps) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Serve(ctx, ln, New(deps)) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url, accept string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

func TestDashboardWiring(t *testing.T) {
	store := stats.NewStore()
	store.Counter("cluster.service1.upstream_rq_total").Add(1)
	d := dashboard.New(dashboard.Deps{Store: store})
	base := serveAdmin(t, Deps{Store: store, Dashboard: d.Handler()})

	tests := []struct {
		path, accept string
		code         int
		ctype        string
		contains     string
	}{
		{path: "/", code: 200, ctype: "text/html; charset=utf-8", contains: `<script src="dashboard/static/app.js">`},
		{path: "/dashboard/static/app.js", code: 200, ctype: "text/javascript; charset=utf-8", contains: "function drawChart"},
		{path: "/dashboard/static/style.css", code: 200, ctype: "text/css; charset=utf-8", contains: ".span-bar"},
		{path: "/dashboard/data", code: 200, ctype: "application/json", contains: `"clusters":[`},
		{path: "/dashboard/data?since=x", code: 400},
		{path: "/dashboard/nope", code: 404},
		// The endpoint index stays reachable: text for scripts, HTML with
		// POST buttons for browsers.
		{path: "/help", code: 200, ctype: "text/plain; charset=UTF-8", contains: "admin commands are:\n"},
		{path: "/help", accept: browserAccept, code: 200, ctype: "text/html; charset=UTF-8", contains: `<form action="/quitquitquit" method="post">`},
		{path: "/stats?filter=upstream_rq_total", code: 200, contains: "cluster.service1.upstream_rq_total: 1\n"},
	}
	for _, tc := range tests {
		t.Run(tc.path+" "+tc.accept, func(t *testing.T) {
			code, body, h := get(t, base+tc.path, tc.accept)
			if code != tc.code {
				t.Fatalf("status %d, want %d; body:\n%s", code, tc.code, body)
			}
			if tc.ctype != "" && h.Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", h.Get("Content-Type"), tc.ctype)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body lacks %q:\n%.500s", tc.contains, body)
			}
		})
	}
}

func TestNoDashboardKeepsIndex(t *testing.T) {
	base := serveAdmin(t, Deps{Store: stats.NewStore()})
	code, body, _ := get(t, base+"/", browserAccept)
	if code != 200 || !strings.Contains(body, `<a href="/stats">`) || strings.Contains(body, "Live dashboard") {
		t.Fatalf("/: %d\n%s", code, body)
	}
	if code, body, _ := get(t, base+"/help", browserAccept); code != 200 || !strings.HasPrefix(body, "admin commands are:\n") {
		t.Fatalf("/help: %d\n%s", code, body)
	}
	if code, _, _ := get(t, base+"/dashboard/data", ""); code != 404 {
		t.Fatalf("/dashboard/data without a dashboard: %d, want 404", code)
	}
}
