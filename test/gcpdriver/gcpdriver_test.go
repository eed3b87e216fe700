// Package gcpdriver runs go-control-plane's own integration driver (the
// program that certifies Envoy against go-control-plane: its pkg/test/main
// with the internal/upstream echo server and the sample bootstraps)
// against the real legate binary. The driver serves xDS snapshots, pushes
// a few updates, sends requests through every listener and counts them in
// its gRPC access log service; it exits 0 when each update was served.
//
// Both programs are built from the module cache at the go-control-plane
// version in go.mod, not copied here; the test skips only when that
// module cannot be had.
package gcpdriver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/testutil"
	"github.com/legate-proxy/legate/test/legatetest"
)

func TestMain(m *testing.M) {
	os.Exit(legatetest.Main(m))
}

const gcpModule = "github.com/envoyproxy/go-control-plane"

// Listeners the driver configures: -http and -tcp (its defaults, 2 each).
// Scoped-route (SRDS) and VHDS listeners are turned off (-scopedhttp 0,
// -vhdshttp 0): Legate has neither API.
const numListeners = 4

// rtdsSupported: the xds and delta samples subscribe to a runtime layer
// over RTDS.
const rtdsSupported = false

var tools struct {
	once             sync.Once
	driver, upstream string
	samples          string
	err              error
}

// buildTools builds the driver and the echo server once per test binary.
func buildTools(t *testing.T) {
	tools.once.Do(func() {
		root := legatetest.RepoRoot()
		out, err := goCmd(root, "list", "-m", "-f", "{{.Dir}}", gcpModule)
		if err != nil {
			tools.err = fmt.Errorf("locating %s: %v\n%s", gcpModule, err, out)
			return
		}
		tools.samples = filepath.Join(strings.TrimSpace(out), "sample")
		dir, err := os.MkdirTemp("", "gcpdriver-")
		if err != nil {
			tools.err = err
			return
		}
		tools.driver, tools.upstream = filepath.Join(dir, "driver"), filepath.Join(dir, "upstream")
		for bin, pkg := range map[string]string{tools.driver: gcpModule + "/pkg/test/main", tools.upstream: gcpModule + "/internal/upstream"} {
			if out, err := goCmd(root, "build", "-o", bin, pkg); err != nil {
				tools.err = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if tools.err != nil {
		t.Skipf("go-control-plane's driver is not available: %v", tools.err)
	}
}

func goCmd(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// portRange returns the first of n consecutive free loopback ports.
func portRange(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		base := legatetest.FreePort(t)
		if base+n > 65535 {
			continue
		}
		free := true
		for p := base; p < base+n && free; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no range of free ports")
	return 0
}

// startProc runs a tool until the test ends.
func startProc(t *testing.T, out *legatetest.SyncBuffer, bin string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait() //nolint:errcheck // killed on purpose
	})
	return cmd
}

var alsEntry = regexp.MustCompile(`\[echo[^\]]*\] 127\.0\.0\.1:\d+ / https? 200 \S+ cluster-v\d+-\d+`)

func TestDriver(t *testing.T) {
	modes := []struct{ mode, bootstrap string }{
		{"ads", "ads"},
		{"xds", "xds"},
		{"delta", "delta"},
		{"delta-ads", "delta-ads"},
	}
	for _, tlsOn := range []bool{false, true} {
		for _, m := range modes {
			name := m.mode
			if tlsOn {
				name += "-tls"
			}
			t.Run(name, func(t *testing.T) {
				buildTools(t)
				runDriver(t, m.mode, m.bootstrap, tlsOn)
			})
		}
	}
}

func runDriver(t *testing.T, mode, bootstrap string, tlsOn bool) {
	sample, err := os.ReadFile(filepath.Join(tools.samples, "bootstrap-"+bootstrap+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sample), "rtds_layer") && !rtdsSupported {
		t.Skipf("bootstrap-%s.yaml has a layered_runtime rtds_layer; Legate has no RTDS yet", bootstrap)
	}
	xdsPort, gwPort, alsPort := legatetest.FreePort(t), legatetest.FreePort(t), legatetest.FreePort(t)
	upPort, adminPort := legatetest.FreePort(t), legatetest.FreePort(t)
	base := portRange(t, numListeners)
	// The samples name the driver's default ports; point them at ours.
	cfg := strings.NewReplacer("18000", strconv.Itoa(xdsPort), "18090", strconv.Itoa(alsPort), "19000", strconv.Itoa(adminPort)).Replace(string(sample))

	var upOut, drvOut legatetest.SyncBuffer
	startProc(t, &upOut, tools.upstream, "-upstream", strconv.Itoa(upPort))
	args := []string{"-xds", mode, "-debug",
		"-port", strconv.Itoa(xdsPort), "-gateway", strconv.Itoa(gwPort), "-als", strconv.Itoa(alsPort),
		"-upstream", strconv.Itoa(upPort), "-base", strconv.Itoa(base),
		"-scopedhttp", "0", "-vhdshttp", "0"}
	if tlsOn {
		args = append(args, "-tls")
	}
	drv := startProc(t, &drvOut, tools.driver, args...)
	testutil.WaitFor(t, "the driver's management server", func() bool {
		return strings.Contains(drvOut.String(), "management server listening")
	})
	exited := make(chan error, 1)
	go func() { exited <- drv.Wait() }()

	legatetest.Start(t, cfg, legatetest.Options{AdminPort: adminPort, Args: []string{"--drain-time-s", "1"}})

	select {
	case err := <-exited:
		out := drvOut.String()
		if err != nil || !strings.Contains(out, "Test for "+mode+" passed!") {
			t.Fatalf("driver failed (%v):\n%s", err, out)
		}
		n := len(alsEntry.FindAllString(out, -1))
		t.Logf("%s (tls %v): passed; %d requests counted by the driver's access log service", mode, tlsOn, n)
		if n == 0 {
			t.Errorf("the driver's access log service saw no request:\n%s", out)
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("driver did not finish:\n%s", drvOut.String())
	}
}
