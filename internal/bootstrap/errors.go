package bootstrap

import "strings"

// FieldError is one problem in a configuration, located by its field path
// (proto field names, e.g. "static_resources.clusters[1].health_checks").
type FieldError struct {
	Path string
	Msg  string
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
