// Package delivery tests what Legate ships: the Debian package (built through
// `make deb`, checked by lintian, installed and purged with dpkg), the
// reproducibility of the build, the container images and the docker-compose
// case study driven through ci/pipeline.sh, the script the Jenkinsfile runs.
//
// The builds run in throwaway copies of the source tree, never in the tree
// itself: `make test` is running other tests against bin/ at the same time.
// Tests that need root, dpkg, lintian or a Docker Engine skip with a message
// saying so.
package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/legate-proxy/legate/test/legatetest"
)

// tmpRoot holds the tree copies; TestMain removes it.
var tmpRoot string

func TestMain(m *testing.M) {
	var err error
	tmpRoot, err = os.MkdirTemp("", "legate-delivery-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// legateBin is the binary `make test` built (LEGATE_BIN), else bin/legate.
func legateBin(t testing.TB) string {
	t.Helper()
	return legatetest.Prebuilt(t, "legate")[0]
}

var headingRE = regexp.MustCompile(`(?m)^## ([0-9][0-9A-Za-z.+~]*) - [0-9]{4}-[0-9]{2}-[0-9]{2}\s*$`)

// changelogVersion is the newest release in CHANGELOG.md: the version the
// build stamps and the package carries.
func changelogVersion(t testing.TB) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(legatetest.RepoRoot(), "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := headingRE.FindSubmatch(src)
	if m == nil {
		t.Fatal("CHANGELOG.md has no '## <version> - <date>' heading")
	}
	return string(m[1])
}

// stamp is what the Makefile would take from git in the real tree; the
// copies have no .git, so it is passed to their make explicitly.
type stamp struct{ commit, epoch string }

var (
	stampOnce sync.Once
	stampVal  stamp
)

func buildStamp(t testing.TB) stamp {
	t.Helper()
	stampOnce.Do(func() {
		stampVal = stamp{commit: "unknown", epoch: "0"}
		root := legatetest.RepoRoot()
		if out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output(); err == nil {
			stampVal.commit = strings.TrimSpace(string(out))
		}
		if out, err := exec.Command("git", "-C", root, "log", "-1", "--format=%ct").Output(); err == nil {
			stampVal.epoch = strings.TrimSpace(string(out))
		}
	})
	return stampVal
}

// env is the environment for make and the pipeline script in a copy: the
// outer `make test` leaks MAKEFLAGS (with any command-line variables) into
// it, which must not reach the inner make.
func env(t testing.TB, extra ...string) []string {
	t.Helper()
	s := buildStamp(t)
	var out []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "COMMIT", "SOURCE_DATE_EPOCH", "VERSION":
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "COMMIT="+s.commit, "SOURCE_DATE_EPOCH="+s.epoch)
	return append(out, extra...)
}

// run runs a command with a deadline and returns its combined output,
// failing the test with that output on error.
func run(t testing.TB, dir string, environ []string, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := tryRun(dir, environ, timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return out
}

func tryRun(dir string, environ []string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = environ
	cmd.WaitDelay = 10 * time.Second
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// copyTree copies the source tree as a checkout would have it: no .git, no
// build output, no test binaries.
func copyTree(src, dst string) error {
	skipDir := map[string]bool{".git": true, "bin": true, "dist": true, "bench/results": true}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if skipDir[filepath.ToSlash(rel)] {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		case strings.HasSuffix(d.Name(), ".test"), strings.HasSuffix(d.Name(), ".prof"):
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// build is one copy of the tree after `make deb`.
type build struct {
	dir string // the copy
	deb string // its dist/legate_<version>-1_<arch>.deb
}

var (
	buildOnce sync.Once
	buildA    build
	buildErr  error
)

// debBuild copies the tree once and runs `make deb` in the copy, the same
// path a developer or the pipeline takes; later tests share the result.
// Nothing inside the Once may skip or fail the test: that would end the
// Once with neither a build nor an error for the tests after it.
func debBuild(t testing.TB) build {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("SKIP: make is not installed")
	}
	environ := env(t)
	buildOnce.Do(func() { buildA, buildErr = makeDeb(environ) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildA
}

func makeDeb(environ []string) (build, error) {
	dir := filepath.Join(tmpRoot, "a", "legate")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return build{}, err
	}
	if err := copyTree(legatetest.RepoRoot(), dir); err != nil {
		return build{}, err
	}
	out, err := tryRun(dir, environ, 10*time.Minute, "make", "deb")
	if err != nil {
		return build{}, fmt.Errorf("make deb in %s: %w\n%s", dir, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "dist", "*.deb"))
	if len(debs) != 1 {
		return build{}, fmt.Errorf("make deb left %d packages in dist/: %v\n%s", len(debs), debs, out)
	}
	return build{dir: dir, deb: debs[0]}, nil
}
