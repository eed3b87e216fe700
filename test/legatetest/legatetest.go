// Package legatetest is for tests that run the real binaries (legate,
// legate-demo, demo-service) as subprocesses: it locates them ($LEGATE_BIN)
// or builds legate, starts legate on a config, waits until its admin
// /ready says LIVE, and stops it when the test ends. It is not for use
// outside tests.
package legatetest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// bin is legate's path, set by Main.
var bin string

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// MainOption adjusts Main.
type MainOption func(*mainConfig)

type mainConfig struct{ build bool }

// BuildIf makes Main build legate (when $LEGATE_BIN is unset) only if need
// holds: a package whose tests would all skip need not wait for a build.
func BuildIf(need bool) MainOption {
	return func(c *mainConfig) { c.build = need }
}

// Main is the body of a TestMain: os.Exit(legatetest.Main(m)). It runs m
// with Bin set to $LEGATE_BIN (made absolute), or, when that is unset, to a
// legate built from this tree into a temporary directory, removed after m.
func Main(m *testing.M, opts ...MainOption) int {
	c := mainConfig{build: true}
	for _, o := range opts {
		o(&c)
	}
	if p, ok, err := envBin(); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "LEGATE_BIN:", err)
			return 1
		}
		bin = p
		return m.Run()
	}
	if !c.build {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "legatetest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "legate")
	cmd := exec.Command("go", "build", "-o", p, "./cmd/legate")
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building legate: %v\n%s", err, out)
		return 1
	}
	bin = p
	return m.Run()
}

// Bin is the legate binary Main located or built.
func Bin() string {
	if bin == "" {
		panic("legatetest: no legate binary; TestMain must call legatetest.Main (without BuildIf(false))")
	}
	return bin
}

// envBin is $LEGATE_BIN made absolute; ok says whether it is set.
func envBin() (path string, ok bool, err error) {
	p := os.Getenv("LEGATE_BIN")
	if p == "" {
		return "", false, nil
	}
	abs, err := filepath.Abs(p)
	return abs, true, err
}

// Find locates binaries that `make build` made, without building: "legate"
// is $LEGATE_BIN, or bin/legate in the repository when that is unset; any
// other name (legate-demo, demo-service) is the file of that name next to
// it. The error names the first one missing.
func Find(names ...string) ([]string, error) {
	legate, ok, err := envBin()
	if err != nil {
		return nil, fmt.Errorf("LEGATE_BIN: %w", err)
	}
	if !ok {
		legate = filepath.Join(RepoRoot(), "bin", "legate")
	}
	paths := make([]string, len(names))
	for i, name := range names {
		paths[i] = legate
		if name != "legate" {
			paths[i] = filepath.Join(filepath.Dir(legate), name)
		}
		if _, err := os.Stat(paths[i]); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// Prebuilt is Find for a test: it skips the test when a binary is missing,
// or fails it when LEGATE_BIN is set, since whoever set it meant them to be
// there.
func Prebuilt(t testing.TB, names ...string) []string {
	t.Helper()
	paths, err := Find(names...)
	if err != nil {
		if os.Getenv("LEGATE_BIN") != "" {
			t.Fatalf("LEGATE_BIN is set but a binary is missing: %v", err)
		}
		t.Skipf("SKIP: %v; run `make test` (or `make build`, or set LEGATE_BIN)", err)
	}
	return paths
}

// FreePort returns a loopback port that was free a moment ago. Legate binds
// exactly the configured port, so tests choose ports up front; StartRetry
// copes with another process taking one in between.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// SyncBuffer collects a subprocess's output while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
