// Command mkdeb builds Legate's Debian package from the binaries that
// `make build` left in bin/, with nfpm used as a library (only its deb
// packager), so no packaging tool has to be installed:
//
//	go run ./packaging/mkdeb -bin bin -out dist
//
// The version is the newest release in CHANGELOG.md, which also becomes
// changelog.Debian.gz. File times are SOURCE_DATE_EPOCH (else that release's
// date), so the same inputs give a byte-identical .deb. It prints the path of
// the package it wrote.
package main

import (
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

const (
	pkgName    = "legate"
	versionPkg = "github.com/legate-proxy/legate/internal/version"
)

type options struct {
	binDir, root, changelog, outDir string
	release, maintainer             string
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin", "bin", "directory holding legate (and legate-cp, if built)")
	flag.StringVar(&o.root, "root", "packaging", "the packaging/ directory (unit, scripts, man page, copyright, default config)")
	flag.StringVar(&o.changelog, "changelog", "CHANGELOG.md", "the changelog; its newest release is the package version")
	flag.StringVar(&o.outDir, "out", "dist", "where to write the .deb")
	flag.StringVar(&o.release, "release", "1", "Debian revision")
	flag.StringVar(&o.maintainer, "maintainer", "Legate Maintainers <maintainers@legate-proxy.org>", "Maintainer field and changelog signature")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mkdeb: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	path, err := build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

func build(o options) (string, error) {
	src, err := os.ReadFile(o.changelog)
	if err != nil {
		return "", err
	}
	rels, err := parseChangelog(bytes.NewReader(src))
	if err != nil {
		return "", fmt.Errorf("%s: %w", o.changelog, err)
	}
	version := rels[0].Version

	legate := filepath.Join(o.binDir, "legate")
	arch, err := checkBinary(legate)
	if err != nil {
		return "", fmt.Errorf("%s: %w", legate, err)
	}
	if err := checkStamp(legate, version); err != nil {
		return "", fmt.Errorf("%s: %w", legate, err)
	}
	mtime, err := sourceDate(rels[0].Date)
	if err != nil {
		return "", err
	}

	// Generated files are staged outside the tree; nfpm reads them by path.
	stage, err := os.MkdirTemp("", "mkdeb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	debianDir := filepath.Join(o.root, "debian")
	changelogGz := filepath.Join(stage, "changelog.Debian.gz")
	if err := writeGzip(changelogGz, debianChangelog(pkgName, o.release, o.maintainer, rels)); err != nil {
		return "", err
	}

	var contents files.Contents
	add := func(src, dst, typ string, mode os.FileMode) {
		contents = append(contents, &files.Content{
			Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Mode: mode, MTime: mtime},
		})
	}
	// Each program ships with its man page (Debian policy 12.1).
	for _, prog := range []string{"legate", "legate-cp"} {
		bin := filepath.Join(o.binDir, prog)
		if _, err := os.Stat(bin); err != nil {
			if prog == "legate" || !errors.Is(err, os.ErrNotExist) {
				return "", err
			}
			continue // legate-cp is optional until it exists
		}
		if prog != "legate" {
			if _, err := checkBinary(bin); err != nil {
				return "", fmt.Errorf("%s: %w", bin, err)
			}
		}
		man, err := os.ReadFile(filepath.Join(debianDir, prog+".1"))
		if err != nil {
			return "", fmt.Errorf("%s has no man page: %w", prog, err)
		}
		manGz := filepath.Join(stage, prog+".1.gz")
		if err := writeGzip(manGz, man); err != nil {
			return "", err
		}
		add(bin, "/usr/bin/"+prog, "", 0o755)
		add(manGz, "/usr/share/man/man1/"+prog+".1.gz", "", 0o644)
	}
	add(filepath.Join(o.root, "legate.yaml"), "/etc/legate/legate.yaml", files.TypeConfig, 0o644)
	add(filepath.Join(debianDir, "legate.service"), "/lib/systemd/system/legate.service", "", 0o644)
	add(filepath.Join(debianDir, "copyright"), "/usr/share/doc/legate/copyright", "", 0o644)
	add(changelogGz, "/usr/share/doc/legate/changelog.Debian.gz", "", 0o644)
	// Overrides, each with its reason, for what lintian cannot know about a
	// static Go program.
	if overrides := filepath.Join(debianDir, "lintian-overrides"); fileExists(overrides) {
		add(overrides, "/usr/share/lintian/overrides/legate", "", 0o644)
	}

	info := &nfpm.Info{
		Name:          pkgName,
		Arch:          arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none",
		Release:       o.release,
		Section:       "net",
		Priority:      "optional",
		Maintainer:    o.maintainer,
		Homepage:      "https://github.com/legate-proxy/legate",
		Description: `Envoy-compatible L4/L7 proxy
Legate serves an ordinary Envoy v3 bootstrap (YAML or JSON) with Envoy's
command-line flags: listeners with the HTTP connection manager and the
router, HTTP/1.1 and HTTP/2, TLS, route matching, retries, static and
DNS-discovered clusters with load balancing, and the admin interface with
Envoy's statistic names. Configuration it does not implement is refused at
start-up with the field's path.
.
This package runs Legate as the systemd service legate.service, under its
own user, with /etc/legate/legate.yaml as its configuration.`,
		MTime: mtime,
		Overridables: nfpm.Overridables{
			Depends:  []string{"adduser"},
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(debianDir, "postinst"),
				PreRemove:   filepath.Join(debianDir, "prerm"),
				PostRemove:  filepath.Join(debianDir, "postrm"),
			},
			Deb: nfpm.Deb{Compression: "gzip"},
		},
	}

	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(o.outDir, deb.Default.ConventionalFileName(info))
	// Write beside the target and rename, so a failed build never leaves a
	// truncated package where a good one was.
	tmp, err := os.CreateTemp(o.outDir, ".mkdeb-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := deb.Default.Package(info, tmp); err != nil {
		tmp.Close()
		return "", fmt.Errorf("package: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}

// checkBinary refuses a binary that was not built the way the package
// promises (static, -trimpath, for Linux) and returns its Debian
// architecture.
func checkBinary(path string) (string, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", err
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOOS"] != "linux" {
		return "", fmt.Errorf("built for GOOS=%q, want linux", settings["GOOS"])
	}
	if settings["CGO_ENABLED"] != "0" {
		return "", errors.New("not built with CGO_ENABLED=0 (run make build)")
	}
	if settings["-trimpath"] != "true" {
		return "", errors.New("not built with -trimpath (run make build)")
	}
	return debianArch(settings["GOARCH"], settings["GOARM"])
}

// checkStamp runs `legate --version` (when it can run here) to make sure the
// binary carries the version being packaged; -trimpath keeps -ldflags out of
// the build info, so asking the binary is the only way to know.
func checkStamp(path, version string) error {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return err
	}
	for _, s := range bi.Settings {
		if s.Key == "GOARCH" && s.Value != runtime.GOARCH {
			return nil // cross-built: cannot run it here
		}
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return fmt.Errorf("--version: %w", err)
	}
	if !strings.Contains(string(out), "/"+version+"/") {
		return fmt.Errorf("--version says %q, want version %s (run make build; CHANGELOG.md's newest release is %s)",
			strings.TrimSpace(string(out)), version, version)
	}
	return nil
}

// debianArch maps Go's GOARCH (and GOARM) to Debian's architecture name.
func debianArch(goarch, goarm string) (string, error) {
	switch goarch {
	case "amd64", "arm64", "riscv64", "s390x", "loong64":
		return goarch, nil
	case "386":
		return "i386", nil
	case "ppc64le":
		return "ppc64el", nil
	case "arm":
		if strings.HasPrefix(goarm, "5") {
			return "armel", nil
		}
		return "armhf", nil
	}
	return "", fmt.Errorf("GOARCH %q has no Debian architecture here", goarch)
}

// sourceDate is SOURCE_DATE_EPOCH (see reproducible-builds.org), else the
// newest release's date: never the clock, so rebuilds are identical.
func sourceDate(fallback time.Time) (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return fallback.UTC(), nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", v, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeGzip compresses like `gzip -9n`: no file name and no time stamp in
// the header, which Debian policy asks for and reproducibility needs.
func writeGzip(path string, data []byte) error {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, bytes.NewReader(data)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
