package controlplane_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/test/legatetest"
)

// demoBins are legate, legate-demo and demo-service: next to $LEGATE_BIN
// (make test), else built from this tree beside the legate-cp TestMain built.
func demoBins(t *testing.T) (legate, demo, service string) {
	t.Helper()
	names := []string{"legate", "legate-demo", "demo-service"}
	if os.Getenv("LEGATE_BIN") != "" {
		p, err := legatetest.Find(names...)
		if err != nil {
			t.Fatalf("LEGATE_BIN is set but a binary is missing: %v", err)
		}
		return p[0], p[1], p[2]
	}
	dir := filepath.Dir(cpBin)
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/legate", "./cmd/legate-demo", "./cmd/demo-service")
	cmd.Dir = legatetest.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return filepath.Join(dir, names[0]), filepath.Join(dir, names[1]), filepath.Join(dir, names[2])
}

// TestDemoXDS is `make demo-xds` as a smoke test: Legate learns the case
// study from legate-cp over ADS/EDS, every registered replica answers, and
// replicas that crash or stop leave the pool.
func TestDemoXDS(t *testing.T) {
	legate, demo, service := demoBins(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, demo, "--xds", "--check", "--free-ports", "--legate", legate,
		"--service", service, "--legate-cp", cpBin, "--start-timeout", "60s")
	cmd.WaitDelay = 20 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("legate-demo --xds --check output:\n%s", out)
	if err != nil {
		t.Fatalf("legate-demo --xds --check: %v", err)
	}
	for _, want := range []string{
		"\nok   service1 over EDS", "\nok   service2 over EDS",
		"\nok   legate-cp http://", "\nok   crashed service1-c", "\nok   stopped service2-c",
		"all checks passed",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
