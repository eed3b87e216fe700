// Package demo_test runs the front-proxy case study end to end: the built
// legate-demo in --check mode starts a DNS server, a Zipkin collector, six
// demo-service replicas and Legate, and verifies every replica answers
// through the proxy and the requests are traced and access-logged.
package demo_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// binaries finds legate, legate-demo and demo-service: next to $LEGATE_BIN
// (set by `make test`), else in the repository's bin/ (`make build`).
func binaries(t *testing.T) (legate, demo, service string) {
	t.Helper()
	legate = os.Getenv("LEGATE_BIN")
	if legate == "" {
		legate = filepath.Join("..", "..", "bin", "legate")
	}
	legate, err := filepath.Abs(legate)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(legate)
	demo = filepath.Join(dir, "legate-demo")
	service = filepath.Join(dir, "demo-service")
	for _, p := range []string{legate, demo, service} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("LEGATE_BIN") != "" {
				t.Fatalf("LEGATE_BIN is set but %s is missing: %v", p, err)
			}
			t.Skipf("SKIP: %s not built; run `make test` (or `make build`, or set LEGATE_BIN) to run the demo smoke test", p)
		}
	}
	return legate, demo, service
}

func TestDemoCheck(t *testing.T) {
	legate, demo, service := binaries(t)
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
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(string(out), "\nok   dashboard ") && !strings.Contains(string(out), "\nskip dashboard not available") {
		t.Error("output reports no dashboard check")
	}
}
