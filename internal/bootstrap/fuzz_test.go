package bootstrap

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// located reports whether err says where the problem is: a field path,
// or the source (file or --config-yaml) for whole-document problems.
func located(err error, source string) bool {
	var fe *FieldError
	if errors.As(err, &fe) && fe.Path != "" {
		return true
	}
	return strings.HasPrefix(err.Error(), source+": ")
}

// FuzzLoad: any document, YAML or JSON, either loads or fails with
// Errors in which every problem names its path (a field path, or the
// source for a document that does not parse); it never panics. A
// configuration that loads, written back out as JSON, loads again to the
// same configuration.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	jsons, _ := filepath.Glob("testdata/*.json")
	for _, p := range append(files, jsons...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b), strings.HasSuffix(p, ".json"))
		}
	}
	for _, s := range []string{
		"", "{}", "null", "[]", "1", "admin: {}\nadmin: {}", "a: [1", "\t", "---\n---\n",
		"static_resources: {clusters: [{name: c, connect_timeout: -1s}]}",
		"static_resources: {clusters: [{name: c, connect_timeout: 99999999999999999999s}]}",
		"admin: {address: {socket_address: {port_value: 99999999999}}}",
		"static_resources: {listeners: [{filter_chains: [{filters: [{name: x, typed_config: {'@type': type.googleapis.com/nope}}]}]}]}",
		"static_resources: {listeners: [{filter_chains: [{filters: [{name: x, typed_config: {'@type': 'type.googleapis.com/udpa.type.v1.TypedStruct', type_url: x, value: 1}}]}]}]}",
		"static_resources: {listeners: [{filter_chains: [{filters: [{name: x, typed_config: {'@type': ''}}]}]}]}",
		"static_resources: {listeners: [{filter_chains: [{filters: [{name: x, typed_config: {}}]}]}]}",
		"&a [*a]",
		"a: &a {b: *a}",
		"static_resources: {clusters: [{name: \"\\u0000\"}]}",
		"node: {id: \xff\xfe}",
		"{\"admin\": {}, \"admin\": {}}",
		"layered_runtime: {layers: [{name: a, static_layer: {a: {b: [1, {c: null}]}}}]}",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, doc string, isJSON bool) {
		opts, source := Options{ConfigYAML: doc}, configYAMLSource
		if isJSON {
			source = filepath.Join(dir, "config.json")
			if err := os.WriteFile(source, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			opts = Options{ConfigPath: source}
		}
		if doc == "" && !isJSON {
			return // no configuration at all: a usage error
		}
		bs, err := Load(opts)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			for _, e := range es {
				if !located(e, source) {
					t.Fatalf("problem without a path: %q\ndocument %q", e, doc)
				}
			}
			return
		}
		out, merr := protojson.Marshal(bs)
		if merr != nil {
			t.Fatalf("a loaded configuration does not marshal: %v", merr)
		}
		again, err := Load(Options{ConfigYAML: string(out)})
		if err != nil {
			t.Fatalf("a loaded configuration does not load again: %v\n%s", err, out)
		}
		if !proto.Equal(bs, again) {
			t.Fatalf("reloading changes the configuration:\n%v\n%v", bs, again)
		}
	})
}
