package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/legate-proxy/legate/internal/tooling/controlplane"
)

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *controlplane.Server, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--xds-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0", "--listen-port", "10444", "-l", "off"}, io.Discard, io.Discard, ready)
	}()
	var srv *controlplane.Server
	select {
	case srv = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	if !strings.HasPrefix(srv.Version(), "1-") {
		t.Errorf("version %q", srv.Version())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--log-level", "loud"},
		{"--listen-port", "70000"},
		{"extra"},
		{"--xds-address", "256.0.0.1:1"},
		{"--resources", "/nonexistent/legate-cp"},
	} {
		if err := run(context.Background(), append([]string{"--http-address", "127.0.0.1:0"}, args...), io.Discard, io.Discard, nil); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
