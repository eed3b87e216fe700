package bootstrap

import (
	"fmt"
	"strings"
)

// FieldError is one problem in a configuration, located by its field path
// (proto field names, e.g. "static_resources.clusters[1].health_checks").
type FieldError struct {
	Path string
	Msg  string
	// parse marks a problem found while parsing (unknown field, type
	// mismatch), as opposed to validation and the support check.
	parse bool
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem found in a configuration. Its message has one
// problem per line, so a caller can print it as is or range over it.
type Errors []error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is and errors.As see each problem.
func (es Errors) Unwrap() []error { return es }

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// Flatten puts errors built by wrapping ("static_resources.listeners[0]:
// filter_chains[0].filters[0]: route_config: unknown cluster") into the
// one style of the support check: one problem per element, its leading
// path segments merged into a single field path
// ("static_resources.listeners[0].filter_chains[0].filters[0].route_config: unknown cluster").
// A leading resource name (`listener "x": `) is kept as is. err may be an
// Errors, an errors.Join or a single error of several lines; nil gives nil.
func Flatten(err error) Errors {
	if err == nil {
		return nil
	}
	var out Errors
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		out = append(out, flattenLine(line))
	}
	return out
}

func flattenLine(line string) error {
	var resource, path string
	rest := line
	for {
		i := strings.Index(rest, ": ")
		if i < 0 {
			break
		}
		seg := rest[:i]
		switch {
		case resource == "" && path == "" && isResourceName(seg):
			resource = seg
		case isFieldPath(seg) && !libraryPrefixes[seg]:
			if strings.HasPrefix(seg, "[") {
				path += seg
			} else {
				path = joinPath(path, seg)
			}
		default:
			goto done
		}
		rest = rest[i+2:]
	}
done:
	if resource == "" && path == "" {
		return &FieldError{Msg: line}
	}
	fe := &FieldError{Path: path, Msg: rest}
	if resource != "" {
		return fmt.Errorf("%s: %w", resource, fe)
	}
	return fe
}

// libraryPrefixes start error texts of Go's libraries ("tls: ...",
// "x509: ..."); they look like field names but end the path.
var libraryPrefixes = map[string]bool{
	"tls": true, "x509": true, "asn1": true, "pem": true, "crypto": true, "open": true, "read": true,
	"dial": true, "lookup": true, "json": true, "yaml": true, "proto": true, "regexp": true, "strconv": true,
}

// isResourceName matches how xDS resources are named in errors: a kind
// and a quoted name (`cluster "backend"`).
func isResourceName(s string) bool {
	kind, name, ok := strings.Cut(s, " ")
	return ok && isIdent(kind) && len(name) >= 2 && name[0] == '"' && name[len(name)-1] == '"'
}

// isFieldPath matches a proto field path: identifiers joined by dots, each
// optionally followed by list indexes or quoted map keys ("a.b[0]", `m["k"]`),
// or such a path starting with an index.
func isFieldPath(s string) bool {
	if s == "" {
		return false
	}
	for s != "" {
		switch {
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if s[1:2] == `"` {
				// A quoted key may contain ']': find the closing quote first.
				q := strings.Index(s[2:], `"]`)
				if q < 0 {
					return false
				}
				end = q + 3
			}
			if end < 0 {
				return false
			}
			s = s[end+1:]
		case s[0] == '.':
			s = s[1:]
			if s == "" || s[0] == '.' || s[0] == '[' {
				return false
			}
		default:
			n := 0
			for n < len(s) && (isLower(s[n]) || s[n] == '_' || (n > 0 && s[n] >= '0' && s[n] <= '9')) {
				n++
			}
			if n == 0 {
				return false
			}
			s = s[n:]
		}
	}
	return true
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLower(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}
