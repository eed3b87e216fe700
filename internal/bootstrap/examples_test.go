package bootstrap

import (
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// examplesDir finds ../shared/envoy-examples next to the module root (the
// repository is checked out beside the shared fixtures).
func examplesDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("module root not found")
		}
		dir = parent
	}
	ex := filepath.Join(dir, "..", "shared", "envoy-examples")
	if _, err := os.Stat(ex); err != nil {
		t.Skipf("Envoy examples absent: %v", err)
	}
	return ex
}

// notBootstraps are example files that are not Envoy bootstraps: rate limit
// service descriptors and filesystem xDS resource files.
var notBootstraps = map[string]bool{
	"global-ratelimit/ratelimit_config_config.yaml":  true,
	"global-ratelimit/ratelimit_config_example.yaml": true,
	"dynamic-config-fs/configs/cds.yaml":             true,
	"dynamic-config-fs/configs/lds.yaml":             true,
}

// TestEnvoyExamples loads every Envoy example bootstrap. front-proxy must load;
// for the others the outcome is pinned in a golden file, so what remains
// unsupported is visible and changes show up in review. No example may fail
// to parse: every problem must be a support or validation message.
func TestEnvoyExamples(t *testing.T) {
	dir := examplesDir(t)
	var b strings.Builder
	loaded, total := 0, 0
	err := filepath.WalkDir(dir, func(path string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if notBootstraps[rel] {
			return nil
		}
		_, lerr := Load(Options{ConfigPath: path})
		if strings.HasPrefix(rel, "front-proxy/") && lerr != nil {
			t.Errorf("%s must load:\n%v", rel, lerr)
		}
		if es, ok := lerr.(Errors); ok {
			for _, e := range es {
				if fe := (*FieldError)(nil); errors.As(e, &fe) && fe.parse {
					t.Errorf("%s: parse error: %v", rel, e)
				}
			}
		} else if lerr != nil {
			t.Errorf("%s: %v", rel, lerr)
		}
		b.WriteString("== " + rel + "\n" + outcome(lerr))
		total++
		if lerr == nil {
			loaded++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Envoy examples accepted by bootstrap.Load: %d of %d", loaded, total)
	checkGolden(t, "testdata/envoy-examples.golden", b.String())
}

// TestEnvoyExampleXDSFiles: the filesystem xDS files of dynamic-config-fs
// pass what --mode validate holds them to.
func TestEnvoyExampleXDSFiles(t *testing.T) {
	dir := examplesDir(t)
	for _, name := range []string{"cds.yaml", "lds.yaml"} {
		data, err := os.ReadFile(filepath.Join(dir, "dynamic-config-fs", "configs", name))
		if err != nil {
			t.Fatal(err)
		}
		resources, problems := decodeResources(data, false, name)
		for _, r := range resources {
			if err := CheckXDSResource(r); err != nil {
				problems = append(problems, err)
			}
		}
		if len(problems) > 0 {
			t.Errorf("%s:\n%v", name, problems)
		}
	}
}
