package bootstrap

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

const compatibilityDoc = "../../docs/compatibility.md"

// renderCompatibility writes docs/compatibility.md from the allowlist.
func renderCompatibility() string {
	var b strings.Builder
	b.WriteString(`# Envoy compatibility

<!-- Generated from internal/bootstrap/allowlist.go by "go generate ./internal/bootstrap"; do not edit. -->

Legate is configured with Envoy's v3 API: a ` + "`Bootstrap`" + ` in YAML or JSON
(` + "`-c/--config-path`" + `, ` + "`--config-yaml`" + ` merged over it as Envoy does). The tables
below list every message and field Legate reads. Any other field that is set, any
other ` + "`typed_config`" + ` type and any value outside the listed ones is rejected at load
time with an error naming its path, for example:

` + "```" + `
static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0]: envoy.extensions.filters.http.lua.v3.Lua is not supported
static_resources.clusters[1].health_checks: field is not supported
` + "```" + `

Unknown fields (typos) are errors, and the protos' validation rules apply
(` + "`ValidateAll`" + `, including inside every ` + "`typed_config`" + `). Extensions are identified by
the type URL of their ` + "`typed_config`" + `; the ` + "`name`" + ` field is only a label.
` + "`typed_config`" + ` may be wrapped in ` + "`" + typeXDSTypedStruct + "`" + ` or ` + "`" + typeUDPATypedStruct + "`" + `.
A message listed without fields may be present but must be empty. As in Envoy, a single
value may stand for a one-element list (` + "`domains: \"*\"`" + `).

`)
	for _, a := range allowlist {
		fmt.Fprintf(&b, "## %s\n\n%s\n\n| Message | Supported fields |\n|---|---|\n", a.Title, a.Intro)
		for _, m := range a.Messages {
			var parts []string
			for _, f := range m.Fields {
				parts = append(parts, describeField(f))
			}
			fields := strings.Join(parts, "<br>")
			if fields == "" {
				fields = "(none: presence only)"
			}
			fmt.Fprintf(&b, "| `%s` | %s |\n", m.Name, fields)
		}
		b.WriteString("\n")
	}

	b.WriteString("## Extensions\n\nThe `typed_config` types accepted, by position.\n\n| Field | Types |\n|---|---|\n")
	for _, a := range allowlist {
		for _, m := range a.Messages {
			for _, f := range m.Fields {
				if f.Types != nil {
					fmt.Fprintf(&b, "| `%s.%s` | `%s` |\n", m.Name, f.Name, strings.Join(f.Types, "`, `"))
				}
			}
		}
	}

	b.WriteString("\n## Runtime keys\n\nOnly `static_layer` runtime layers are supported. Any key may be set; these are the keys Legate reads.\n\n| Key | Effect |\n|---|---|\n")
	for _, k := range runtimeKeys {
		fmt.Fprintf(&b, "| `%s` | %s |\n", k.Key, k.Meaning)
	}

	b.WriteString("\n## Not yet supported\n\nPlanned in later issues; rejected today with an error naming the field or type.\n\n")
	for _, s := range notYetSupported {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	return b.String()
}

func describeField(f field) string {
	s := "`" + f.Name + "`"
	var notes []string
	if f.Enum != nil {
		notes = append(notes, "values: "+strings.Join(f.Enum, ", "))
	}
	if f.Tokens != nil {
		notes = append(notes, "comma-separated: "+strings.Join(f.Tokens, ", "))
	}
	if f.Keys != nil {
		notes = append(notes, "keys: `"+strings.Join(f.Keys, "`, `")+"`")
	}
	if f.Types != nil {
		short := make([]string, len(f.Types))
		for i, t := range f.Types {
			short[i] = t[strings.LastIndexByte(t, '.')+1:]
		}
		notes = append(notes, "types: "+strings.Join(short, ", "))
	}
	if f.Note != "" {
		notes = append(notes, f.Note)
	}
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, "; ") + ")"
	}
	return s
}

// TestCompatibilityDoc keeps docs/compatibility.md equal to what the allowlist
// says. Regenerate with: go generate ./internal/bootstrap
func TestCompatibilityDoc(t *testing.T) {
	got := renderCompatibility()
	if *update {
		if err := os.WriteFile(compatibilityDoc, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(compatibilityDoc)
	if err != nil {
		t.Fatalf("%v (run go generate ./internal/bootstrap)", err)
	}
	if string(want) != got {
		t.Errorf("%s is out of date with allowlist.go; run go generate ./internal/bootstrap", compatibilityDoc)
	}
}
