// Package demo_test runs the front-proxy case study end to end: the built
// legate-demo in --check mode starts a DNS server, a Zipkin collector, six
// demo-service replicas and Legate, and verifies every replica answers
// through the proxy and the requests are traced and access-logged.
package demo_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/test/legatetest"
)

func TestDemoCheck(t *testing.T) {
	// Next to $LEGATE_BIN (set by `make test`), else in the repository's
	// bin/ (`make build`).
	bins := legatetest.Prebuilt(t, "legate", "legate-demo", "demo-service")
	legate, demo, service := bins[0], bins[1], bins[2]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Free ports, so the test neither needs nor disturbs 8080/8443/9901/15353.
	cmd := exec.CommandContext(ctx, demo, "--check", "--free-ports", "--requests", "12",
		"--legate", legate, "--service", service, "--start-timeout", "60s")
	cmd.WaitDelay = 20 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("legate-demo --check output:\n%s", out)
	if err != nil {
		t.Fatalf("legate-demo --check: %v", err)
	}
	// The observability checks ran (the exit status alone would not show
	// a check the demo skipped), and their evidence is in the output.
	for _, want := range []string{
		"\nok   zipkin collector on ", "\n[zipkin] ",
		"\nok   access log: ", "\n[access-log] ",
		// This legate serves the dashboard, so the demo must not skip it.
		"\nok   dashboard ",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
