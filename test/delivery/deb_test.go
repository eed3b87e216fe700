package delivery

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/legate-proxy/legate/test/legatetest"
)

func TestVersionStamp(t *testing.T) {
	bin := legateBin(t)
	out := run(t, "", os.Environ(), time.Minute, bin, "--version")
	// legate  version: <commit>/<version>/Clean or Modified/RELEASE/<go> built <date> (<os>/<arch>)
	re := regexp.MustCompile(`^legate  version: ([0-9a-f]{12}|unknown)/([^/]+)/(?:Clean|Modified)/RELEASE/(go[0-9][^ ]*) built ([0-9TZ:-]+) \(linux/[a-z0-9]+\)\n$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s --version printed %q, want %s\n(an unstamped binary: build it with `make build`, as `make test` does)", bin, out, re)
	}
	if want := changelogVersion(t); m[2] != want {
		t.Errorf("version %q, want %q (the newest release in CHANGELOG.md)", m[2], want)
	}
	if _, err := time.Parse(time.RFC3339, m[4]); err != nil {
		t.Errorf("build date %q is not RFC 3339: %v", m[4], err)
	}
	// The commit must be a real one (the build may predate the newest).
	if m[1] == "unknown" {
		if buildStamp(t).commit != "unknown" {
			t.Errorf("commit not stamped although git knows HEAD")
		}
	} else if _, err := exec.Command("git", "-C", legatetest.RepoRoot(), "cat-file", "-e", m[1]+"^{commit}").CombinedOutput(); err != nil && buildStamp(t).commit != "unknown" {
		t.Errorf("stamped commit %s is not a commit of this repository", m[1])
	}
}

// TestReproducibleBuild builds the same sources twice, in two directories,
// through `make deb`, and requires byte-identical binaries and packages;
// then once more from an empty build cache.
func TestReproducibleBuild(t *testing.T) {
	a := debBuild(t)
	b := filepath.Join(tmpRoot, "b", "legate")
	if err := os.MkdirAll(b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(a.dir, b); err != nil { // the same sources as a, whatever happens to the tree meanwhile
		t.Fatal(err)
	}
	run(t, b, env(t), 10*time.Minute, "make", "deb")

	bins, _ := filepath.Glob(filepath.Join(a.dir, "bin", "*"))
	if len(bins) == 0 {
		t.Fatal("make deb left no binaries in bin/")
	}
	for _, pa := range bins {
		pb := filepath.Join(b, "bin", filepath.Base(pa))
		sameBytes(t, pa, pb)
	}
	sameBytes(t, a.deb, filepath.Join(b, "dist", filepath.Base(a.deb)))

	// b shared a's build cache, so its compiled packages may be a's. Build
	// one program again from an empty cache so the compiler and linker
	// really run a second time (demo-service: the standard library only, so
	// this takes about half a minute, not the minutes the proxy's
	// dependencies would).
	c := filepath.Join(tmpRoot, "c")
	run(t, b, env(t, "GOCACHE="+filepath.Join(c, "gocache")), 10*time.Minute,
		"make", "build", "BIN="+filepath.Join(c, "bin"), "CMDS=./cmd/demo-service")
	sameBytes(t, filepath.Join(a.dir, "bin", "demo-service"), filepath.Join(c, "bin", "demo-service"))
	os.RemoveAll(filepath.Join(c, "gocache"))
}

func sameBytes(t *testing.T, a, b string) {
	t.Helper()
	da, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(da, db) {
		t.Errorf("%s differs between two builds of the same sources (%d vs %d bytes)", filepath.Base(a), len(da), len(db))
	}
}

func TestDebLintian(t *testing.T) {
	lintian, err := exec.LookPath("lintian")
	if err != nil {
		t.Skip("SKIP: lintian is not installed (apt-get install lintian)")
	}
	deb := debBuild(t).deb
	out, err := tryRun("", os.Environ(), 5*time.Minute, lintian, "--fail-on", "error,warning", "--display-info", deb)
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") {
			bad = append(bad, l)
		}
	}
	if err != nil || len(bad) > 0 {
		t.Fatalf("lintian: %v; errors and warnings:\n%s\nfull output:\n%s", err, strings.Join(bad, "\n"), out)
	}
	t.Logf("lintian: no errors or warnings\n%s", out)
}

// debFile is one member of the package's control or data archive.
type debFile struct {
	hdr  *tar.Header
	data []byte
}

// readDeb splits a .deb (an ar archive of debian-binary, control.tar.gz and
// data.tar.gz) into its control and data members, keyed by path without
// the leading "./".
func readDeb(t *testing.T, path string) (control, data map[string]debFile) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("!<arch>\n")) {
		t.Fatalf("%s is not an ar archive", path)
	}
	members := map[string][]byte{}
	for rest := raw[8:]; len(rest) >= 60; {
		name := strings.TrimRight(strings.TrimSpace(string(rest[:16])), "/")
		size, err := strconv.Atoi(strings.TrimSpace(string(rest[48:58])))
		if err != nil || 60+size > len(rest) {
			t.Fatalf("%s: bad ar member header %q", path, rest[:60])
		}
		members[name] = rest[60 : 60+size]
		rest = rest[60+size:]
		if size%2 == 1 && len(rest) > 0 {
			rest = rest[1:]
		}
	}
	if string(members["debian-binary"]) != "2.0\n" {
		t.Fatalf("debian-binary is %q", members["debian-binary"])
	}
	return untar(t, members["control.tar.gz"]), untar(t, members["data.tar.gz"])
}

func untar(t *testing.T, gz []byte) map[string]debFile {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]debFile{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = debFile{hdr: h, data: data}
	}
	return files
}

func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("gzip header carries a time stamp or name (%v, %q); Debian wants gzip -n", zr.ModTime, zr.Name)
	}
	return string(out)
}

func TestDebContents(t *testing.T) {
	bld := debBuild(t)
	version := changelogVersion(t)
	if want := fmt.Sprintf("legate_%s-1_", version); !strings.HasPrefix(filepath.Base(bld.deb), want) {
		t.Errorf("package %s, want %s<arch>.deb", filepath.Base(bld.deb), want)
	}
	control, data := readDeb(t, bld.deb)

	want := map[string]int64{ // path -> mode
		"usr/bin/legate":                           0o755,
		"etc/legate/legate.yaml":                   0o644,
		"lib/systemd/system/legate.service":        0o644,
		"usr/share/doc/legate/copyright":           0o644,
		"usr/share/doc/legate/changelog.Debian.gz": 0o644,
		"usr/share/man/man1/legate.1.gz":           0o644,
	}
	if _, err := os.Stat(filepath.Join(bld.dir, "bin", "legate-cp")); err == nil {
		want["usr/bin/legate-cp"] = 0o755
		want["usr/share/man/man1/legate-cp.1.gz"] = 0o644
	}
	for path, mode := range want {
		f, ok := data[path]
		switch {
		case !ok:
			t.Errorf("package lacks /%s", path)
		case f.hdr.Mode&0o7777 != mode || f.hdr.Uname != "root" || f.hdr.Gname != "root":
			t.Errorf("/%s: mode %o %s:%s, want %o root:root", path, f.hdr.Mode, f.hdr.Uname, f.hdr.Gname, mode)
		}
	}
	if got := string(control["conffiles"].data); got != "/etc/legate/legate.yaml\n" {
		t.Errorf("conffiles = %q, want only /etc/legate/legate.yaml", got)
	}
	ctl := string(control["control"].data)
	for _, field := range []string{"Package: legate\n", "Version: " + version + "-1\n", "Depends: adduser\n", "Section: net\n"} {
		if !strings.Contains(ctl, field) {
			t.Errorf("control lacks %q:\n%s", field, ctl)
		}
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		f, ok := control[s]
		if !ok || f.hdr.Mode&0o777 != 0o755 {
			t.Errorf("maintainer script %s missing or not 0755", s)
			continue
		}
		// Scripts must cope without a running systemd (containers, chroots).
		if strings.Contains(string(f.data), "systemctl") && !strings.Contains(string(f.data), "[ -d /run/systemd/system ]") {
			t.Errorf("%s calls systemctl without checking for a running systemd", s)
		}
	}

	// The binary is the static one make build stamped.
	bi, err := buildinfo.Read(bytes.NewReader(data["usr/bin/legate"].data))
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("packaged legate built with CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
	}

	// changelog.Debian.gz comes from CHANGELOG.md.
	cl := gunzip(t, data["usr/share/doc/legate/changelog.Debian.gz"].data)
	if first := strings.SplitN(cl, "\n", 2)[0]; first != "legate ("+version+"-1) unstable; urgency=medium" {
		t.Errorf("changelog.Debian starts %q", first)
	}
	if man := gunzip(t, data["usr/share/man/man1/legate.1.gz"].data); !strings.HasPrefix(man, ".TH LEGATE 1") {
		t.Errorf("legate.1 does not start with .TH: %.40q", man)
	}

	// The unit: the user, capabilities, hardening and validation the
	// package promises.
	unit := string(data["lib/systemd/system/legate.service"].data)
	for _, line := range []string{
		"User=legate",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"NoNewPrivileges=yes",
		"ProtectSystem=strict",
		"ExecStartPre=/usr/bin/legate --mode validate -c /etc/legate/legate.yaml",
		"ExecStart=/usr/bin/legate -c /etc/legate/legate.yaml",
		"ExecReload=/usr/bin/legate --mode validate -c /etc/legate/legate.yaml",
		"Restart=on-failure",
		"WantedBy=multi-user.target",
	} {
		if !hasLine(unit, line) {
			t.Errorf("legate.service lacks the line %q", line)
		}
	}

	// The shipped configuration is valid for the legate being shipped.
	cfg := filepath.Join(t.TempDir(), "legate.yaml")
	if err := os.WriteFile(cfg, data["etc/legate/legate.yaml"].data, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(bld.dir, "bin", "legate")
	if out := run(t, "", os.Environ(), time.Minute, bin, "--mode", "validate", "-c", cfg); !strings.Contains(out, "OK") {
		t.Errorf("shipped legate.yaml: %s", out)
	}
}

func hasLine(text, line string) bool {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == line {
			return true
		}
	}
	return false
}

// TestCopyrightCoversModules: every Go module linked into legate is named
// in a Files: paragraph of the copyright file, with its licence.
func TestCopyrightCoversModules(t *testing.T) {
	bi, err := buildinfo.ReadFile(legateBin(t))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(legatetest.RepoRoot(), "packaging", "debian", "copyright"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	inFiles := false
	for _, l := range strings.Split(string(src), "\n") {
		switch {
		case strings.HasPrefix(l, "Files:"):
			inFiles = true
			patterns = append(patterns, strings.Fields(strings.TrimPrefix(l, "Files:"))...)
		case inFiles && strings.HasPrefix(l, " "):
			patterns = append(patterns, strings.Fields(l)...)
		default:
			inFiles = false
		}
	}
	for _, dep := range bi.Deps {
		path := dep.Path
		if dep.Replace != nil {
			path = dep.Replace.Path
		}
		covered := false
		for _, p := range patterns {
			if prefix := strings.TrimSuffix(p, "/*"); prefix != "" && prefix != "*" && (path == prefix || strings.HasPrefix(path, prefix+"/")) {
				covered = true
			}
		}
		if !covered {
			t.Errorf("module %s is linked into legate but has no Files: paragraph in packaging/debian/copyright", path)
		}
	}
}

// TestDebInstallPurge installs the package with dpkg, runs the installed
// legate, and purges it, leaving nothing behind. Only as root on Debian.
func TestDebInstallPurge(t *testing.T) {
	switch {
	case os.Geteuid() != 0:
		t.Skip("SKIP: dpkg -i needs root; run make test as root on the CI machine")
	case !fileExists("/etc/debian_version"):
		t.Skip("SKIP: not a Debian system")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("SKIP: dpkg is not installed")
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "legate").Output(); strings.Contains(string(out), "installed") {
		t.Skipf("SKIP: a legate package is already installed here (%s); not touching it", out)
	}
	deb := debBuild(t).deb
	version := changelogVersion(t)
	environ := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	t.Cleanup(func() {
		if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "legate").Output(); len(out) > 0 && !strings.Contains(string(out), "not-installed") {
			exec.Command("dpkg", "--purge", "legate").Run()
		}
	})

	run(t, "", environ, 5*time.Minute, "dpkg", "-i", deb)
	if out := run(t, "", environ, time.Minute, "/usr/bin/legate", "--version"); !strings.Contains(out, "/"+version+"/") {
		t.Errorf("installed legate --version: %q, want version %s", out, version)
	}
	if out := run(t, "", environ, time.Minute, "/usr/bin/legate", "--mode", "validate", "-c", "/etc/legate/legate.yaml"); !strings.Contains(out, "configuration '/etc/legate/legate.yaml' OK") {
		t.Errorf("validate: %q", out)
	}
	pw := run(t, "", environ, time.Minute, "getent", "passwd", "legate")
	if !strings.Contains(pw, "/usr/sbin/nologin") && !strings.Contains(pw, "/bin/false") {
		t.Errorf("legate user can log in: %s", pw)
	}
	// The service user can read the configuration it runs with.
	if _, err := exec.LookPath("runuser"); err == nil {
		run(t, "", environ, time.Minute, "runuser", "-u", "legate", "--", "/usr/bin/legate", "--mode", "validate", "-c", "/etc/legate/legate.yaml")
	}
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		// Reports problems in the unit as "legate.service: ..." lines.
		out, _ := tryRun("", environ, time.Minute, sa, "verify", "/lib/systemd/system/legate.service")
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "legate.service:") || strings.Contains(l, "/legate.service:") {
				t.Errorf("systemd-analyze verify: %s", l)
			}
		}
	}
	// Reinstalling is the upgrade path (postinst configure <old version>).
	run(t, "", environ, 5*time.Minute, "dpkg", "-i", deb)
	run(t, "", environ, 5*time.Minute, "dpkg", "--purge", "legate")

	for _, p := range []string{
		"/usr/bin/legate", "/etc/legate", "/lib/systemd/system/legate.service",
		"/usr/share/doc/legate", "/usr/share/man/man1/legate.1.gz",
		"/etc/systemd/system/multi-user.target.wants/legate.service",
		"/var/lib/systemd/deb-systemd-helper-enabled/legate.service.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/legate.service",
	} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is left behind after dpkg --purge", p)
		}
	}
	for _, db := range []string{"passwd", "group"} {
		if out, err := exec.Command("getent", db, "legate").Output(); err == nil {
			t.Errorf("%s entry legate is left behind after dpkg --purge: %s", db, out)
		}
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "legate").Output(); len(out) > 0 && !strings.Contains(string(out), "not-installed") {
		t.Errorf("dpkg still knows legate: %s", out)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
