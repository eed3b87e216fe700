package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	fixed := time.Date(2021, 10, 22, 18, 5, 12, 0, time.Local)
	srv := httptest.NewServer(newHandler(config{serviceID: "1", hostname: "service1-a", now: func() time.Time { return fixed }}))
	defer srv.Close()

	tests := []struct {
		name     string
		method   string
		path     string
		status   int
		wantBody string // exact JSON, or "" to skip
		success  bool
	}{
		{
			name: "own id", method: "GET", path: "/service/1", status: 200, success: true,
			wantBody: `{"hostname":"service1-a","ip":"127.0.0.1","serviceid":"1","success":true,"time":"2021-10-22 18:05:12"}`,
		},
		{
			name: "other id", method: "GET", path: "/service/2", status: 404, success: false,
			wantBody: `{"hostname":"service1-a","ip":"127.0.0.1","serviceid":"1","success":false,"time":"2021-10-22 18:05:12","error":"this is service 1, not service 2"}`,
		},
		{name: "health", method: "GET", path: "/healthz", status: 200},
		{name: "unknown path", method: "GET", path: "/nope", status: 404},
		{name: "post refused", method: "POST", path: "/service/1", status: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			if tc.wantBody != "" {
				if got := strings.TrimSpace(string(body)); got != tc.wantBody {
					t.Errorf("body =\n%s\nwant\n%s", got, tc.wantBody)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				var r reply
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatal(err)
				}
				if r.Success != tc.success {
					t.Errorf("success = %v, want %v", r.Success, tc.success)
				}
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	t.Setenv("SERVICE_ID", "")
	if _, err := parseFlags(nil, io.Discard); err == nil {
		t.Error("missing service id accepted")
	}
	if _, err := parseFlags([]string{"--service-id", "1", "extra"}, io.Discard); err == nil {
		t.Error("positional argument accepted")
	}

	t.Setenv("SERVICE_ID", "7")
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.serviceID != "7" || cfg.listen != "0.0.0.0:8080" || cfg.hostname == "" {
		t.Errorf("defaults from env: %+v", cfg)
	}

	cfg, err = parseFlags([]string{"--service-id", "2", "--name", "service2-b", "--listen", "127.0.0.1:9"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.serviceID != "2" || cfg.hostname != "service2-b" || cfg.listen != "127.0.0.1:9" {
		t.Errorf("flags: %+v", cfg)
	}
}

// TestRun serves on a real socket, checks the reported IP and time format,
// and checks that cancelling the context shuts the server down cleanly.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--service-id", "2", "--name", "service2-c"}, io.Discard, ready)
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run exited early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}

	resp, err := http.Get("http://" + addr.String() + "/service/2")
	if err != nil {
		t.Fatal(err)
	}
	var r reply
	err = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !r.Success || r.Hostname != "service2-c" || r.ServiceID != "2" || r.IP != "127.0.0.1" {
		t.Errorf("got %d %+v", resp.StatusCode, r)
	}
	if _, err := time.ParseInLocation(timeLayout, r.Time, time.Local); err != nil {
		t.Errorf("time %q: %v", r.Time, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not shut down")
	}
	if _, err := net.DialTimeout("tcp", addr.String(), 5*time.Second); err == nil {
		t.Error("still accepting after shutdown")
	}
}
